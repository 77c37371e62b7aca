"""Benchmark of `kaizhou-gis batch`: 8 synthetic districts on a LocalCluster of 1, then 2 worker
processes; prints wall times, the speedup, peak memory per worker and an estimate for a national
run (about 1,400 counties) on K workers from the measured per-district cost.

    python3 benchmarks/batch.py [--districts 8] [--townships 4] [--villages 30] [--keep DIR]

Everything is written under a temporary folder (or --keep DIR). The synthetic districts are
labelled synthetic; the figures measure the tool, not any place.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kaizhou_gis.batch import run_batch  # noqa: E402
from kaizhou_gis.demo.synthetic import write_synthetic_districts  # noqa: E402

#: Kaizhou (535 villages, ~1,500 settlements, 1.36 M DEM cells) relative to a benchmark district.
NATIONAL_COUNTIES = 1400


def run(manifest: Path, out: Path, workers: int) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    res = run_batch(manifest, out, workers=workers, force=True, echo=lambda s: None)
    wall = time.perf_counter() - t0
    if res.failed:
        raise SystemExit(f"districts failed: {res.failed}")
    return wall, res.rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--districts", type=int, default=8)
    ap.add_argument("--townships", type=int, default=4)
    ap.add_argument("--villages", type=int, default=30)
    ap.add_argument("--area-km2", type=float, default=300.0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the data and outputs here")
    a = ap.parse_args()
    base = a.keep or Path(tempfile.mkdtemp(prefix="kz-batch-bench-"))
    t0 = time.perf_counter()
    write_synthetic_districts(base / "data", a.districts, seed=20240101, townships=a.townships,
                              villages=a.villages, area_km2=a.area_km2)
    print(f"{a.districts} synthetic districts ({a.townships} townships, {a.villages} villages, "
          f"{a.area_km2:g} km2 each) built in {time.perf_counter() - t0:.1f} s under {base}")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start")
    manifest = base / "data" / "batch.toml"
    results = {}
    for k in (1, 2):
        wall, rows = run(manifest, base / f"out_{k}w", k)
        results[k] = (wall, rows)
        per = [r["seconds"] for r in rows]
        peak = max(r["peak_rss_mb"] for r in rows)
        print(f"{k} worker(s): {wall:6.1f} s wall for {len(rows)} districts "
              f"(per district {statistics.mean(per):.1f} s mean, {max(per):.1f} s max; "
              f"peak memory per worker {peak:.0f} MB RSS)")
    w1, w2 = results[1][0], results[2][0]
    speedup = w1 / w2
    print(f"speedup 1 -> 2 workers: {speedup:.2f}x (goal >= 1.7x on 2 free cores; load average "
          f"now {os.getloadavg()[0]:.1f})")
    # national estimate from the measured per-district cost on one worker
    per = statistics.mean(r["seconds"] for r in results[1][1])
    peak = max(r["peak_rss_mb"] for r in results[2][1])
    eff = min(1.0, speedup / 2.0)
    print(f"\nestimate for {NATIONAL_COUNTIES:,} counties of this size ({per:.1f} s each on one "
          f"worker, parallel efficiency {eff:.0%} as measured):")
    for k in (2, 16, 64, 256):
        hours = NATIONAL_COUNTIES * per / (k * eff) / 3600.0
        print(f"  K = {k:3d} workers: {hours:7.2f} h, memory {k * peak / 1024:6.1f} GB in all "
              f"({peak:.0f} MB per worker)")


if __name__ == "__main__":
    main()
