"""Time the full ``kaizhou-gis run`` on the shipped layers, step by step.

Usage::

    python benchmarks/run_default.py                 # shipped layers in layers/
    python benchmarks/run_default.py --scale 4       # a synthetic district 4x larger (demo-layers)
    python benchmarks/run_default.py --tracemalloc   # also Python peak memory per step (slower)
    python benchmarks/run_default.py --json bench.json

Prints a table of per-step wall seconds, the process's peak resident memory (RSS) after each step
and, with ``--tracemalloc``, the peak of Python allocations during the step. Outputs go to a
temporary folder (``--out`` to keep them). This script is a thin driver: it uses the pipeline's
own ``run_steps`` exactly as ``kaizhou-gis run`` does.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def benchmark(layers_path: Path | None, out_dir: Path, *, steps: list[str] | None = None,
              track_memory: bool = False) -> dict:
    """Run the pipeline once and return the timings (seconds, MB) per phase."""
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context, available_steps, run_steps
    from kaizhou_gis.plan import load_plan

    rows = []
    t0 = time.perf_counter()
    plan = load_plan()
    layers = load_layers(layers_path, plan=plan)
    rows.append({"step": "load layers", "status": "ok", "seconds": time.perf_counter() - t0,
                 "rss_mb": _rss_mb(), "py_peak_mb": None,
                 "note": f"{len(layers.villages)} villages, {len(layers.settlements)} settlements, "
                         f"{len(layers.roads)} roads"})
    ctx = Context(layers=layers, plan=plan, options={"header": "en", "township": None})
    names = steps or available_steps()

    def done(oc):
        rows.append({"step": oc.name, "status": oc.status, "seconds": oc.seconds,
                     "rss_mb": _rss_mb(), "py_peak_mb": oc.peak_mb if track_memory else None,
                     "note": (oc.message.splitlines() or [""])[0][:70] if oc.status != "ok"
                     else f"{len(oc.paths)} files"})
        print(f"  {oc.name:<11} {oc.status:<7} {oc.seconds:8.2f} s", file=sys.stderr, flush=True)

    run_steps(ctx, names, out_dir, on_done=done, track_memory=track_memory)
    total = time.perf_counter() - t0
    return {"layers": str(layers.source), "python": platform.python_version(),
            "machine": platform.machine(), "total_seconds": total, "peak_rss_mb": _rss_mb(),
            "steps": rows}


def format_table(result: dict) -> str:
    """The benchmark as a fixed-width text table."""
    lines = [f"layers: {result['layers']}",
             f"{'step':<12} {'status':<7} {'seconds':>8} {'peak RSS MB':>12} {'py peak MB':>11}  note"]
    for r in result["steps"]:
        py = f"{r['py_peak_mb']:11.1f}" if r["py_peak_mb"] is not None else f"{'-':>11}"
        lines.append(f"{r['step']:<12} {r['status']:<7} {r['seconds']:8.2f} {r['rss_mb']:12.1f} "
                     f"{py}  {r['note']}")
    lines.append(f"{'total':<12} {'':<7} {result['total_seconds']:8.2f} "
                 f"{result['peak_rss_mb']:12.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=Path, default=None,
                    help="layers to run on (default: the shipped layers in layers/)")
    ap.add_argument("--scale", type=int, default=None,
                    help="build a synthetic district K times larger with demo-layers first")
    ap.add_argument("--steps", default=None, help="comma-separated steps (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="keep the outputs in this folder")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also measure Python peak memory per step (slows the run down)")
    ap.add_argument("--json", type=Path, default=None, help="also save the figures as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kaizhou-bench-") as tmp:
        layers_path = args.layers
        if args.scale:
            # built in another process so that its memory does not count in the peak RSS below
            t0 = time.perf_counter()
            layers_path = Path(tmp) / "layers"  # the folder: kaizhou.gpkg + dem.tif
            subprocess.run([sys.executable, "-m", "kaizhou_gis", "demo-layers", "--scale",
                            str(args.scale), "--out", str(layers_path)], check=True,
                           stdout=subprocess.DEVNULL)
            print(f"built scale-{args.scale} layers in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        out = args.out or Path(tmp) / "out"
        steps = args.steps.split(",") if args.steps else None
        result = benchmark(layers_path, out, steps=steps, track_memory=args.tracemalloc)
    result["scale"] = args.scale or 1
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    return 0 if all(r["status"] == "ok" for r in result["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
