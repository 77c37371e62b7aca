"""Memory and time of the maps step's HTML pages on a large district, without the full pipeline.

Usage::

    python benchmarks/maps_pages.py --layers <built district> --cache <out>/.cache [--repeat K]

``--layers`` is a district's layers (e.g. a ``demo-layers --scale 10`` build) and ``--cache`` the
``.cache`` folder of an earlier ``kaizhou-gis run --out <out>`` on them: the access and relocation
results are taken from there (the oldest cached file of each, whatever the code), so only the
industry step (a few seconds) and the maps run. ``--repeat K`` feeds the page code a
district K times larger: the settlements, roads, relocation assignment and works are repeated K
times (the same places, new ids), so a 10x build with ``--repeat 10`` gives the page code the
100x district's 200k settlements and 450k roads in a few minutes instead of the 100x run.

The maps step runs with ``--no-prints`` (HTML pages; the district PDF sheet is drawn in a worker
process) and its files are written under ``--out``; printed: CPU seconds and peak RSS of this
process (the pages are built here), and each page's size.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def _repeat(d, k: int):
    """``d`` (MapData) with its settlements, roads, assignment lines and works repeated k times."""
    import pandas as pd

    def rep(gdf, id_col=None):
        if gdf is None or k <= 1:
            return gdf
        parts = []
        for i in range(k):
            g = gdf.copy()
            if id_col and id_col in g.columns:
                g[id_col] = g[id_col].astype(str) + ("" if i == 0 else f"~{i}")
            parts.append(g)
        out = pd.concat(parts, ignore_index=True)
        return out.set_geometry(gdf.geometry.name) if hasattr(out, "set_geometry") else out

    d.settlements = rep(d.settlements, "settlement_id")
    d.roads = {s: rep(g) for s, g in d.roads.items()}
    d.roads_work = {s: rep(g) for s, g in d.roads_work.items()}
    d.assignment = rep(d.assignment, "settlement_id")
    d.works = rep(d.works, "work_id")
    d.works_work = rep(d.works_work, "work_id")
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", required=True)
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--township-pages", type=int, default=-1,
                    help="build only the first N township pages (default: all)")
    a = ap.parse_args(argv)

    from kaizhou_gis import outputs
    from kaizhou_gis.cli import _load
    from kaizhou_gis.maps import step
    from kaizhou_gis.pipeline import Context

    layers, plan = _load(a.layers, None, None, None, "wgs84")
    ctx = Context(layers=layers, plan=plan, options={"prints": False, "township": None},
                  cache_dir=a.cache)
    import pickle

    for name in ("access", "relocation"):
        # the run's cached results, whatever the code fingerprint (the maps code is what changes)
        cached = sorted(a.cache.glob(f"{name}-*.pickle"), key=lambda p: p.stat().st_mtime)
        if not cached:
            raise SystemExit(f"no cached {name} result in {a.cache}: run kaizhou-gis run first")
        with open(cached[0], "rb") as fh:
            ctx.results[name] = pickle.load(fh)["result"]
    needs = ctx.needs_of("maps")
    needs.result("industry")  # not cached; a few seconds
    gather = step.gather

    def big_gather(*args, **kw):
        return _repeat(gather(*args, **kw), a.repeat)

    step.gather = big_gather
    if a.township_pages >= 0:
        codes = sorted(layers.townships["township_code"].astype(str))[:a.township_pages]
        keep = set(codes)
        layers.townships = layers.townships[layers.townships["township_code"].astype(str).isin(keep)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c0, t0 = time.process_time(), time.perf_counter()
    res = step.run(ctx, needs)
    c1, t1 = time.process_time(), time.perf_counter()  # this process: the HTML pages
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    paths = outputs.write_products(a.out, res.files)
    c2, t2 = time.process_time(), time.perf_counter()
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    html = [p for p in paths if p.suffix == ".html"]
    sizes = sorted(((p.stat().st_size / 2**20, p) for p in html), reverse=True)
    print(f"repeat {a.repeat}: {len(html)} pages, settlements "
          f"{len(layers.settlements) * a.repeat}, roads {len(layers.roads) * a.repeat}")
    print(f"maps step: {c1 - c0:.1f} CPU-s in this process (the HTML pages; the district PDF "
          f"is drawn in a worker), {t1 - t0:.1f} s wall; write: {c2 - c1:.1f} CPU-s, "
          f"{t2 - t1:.1f} s wall")
    print(f"peak RSS: before the step {rss0:.0f} MB, after the step {rss1:.0f} MB, "
          f"after writing {rss2:.0f} MB")
    print(f"pages: total {sum(s for s, _ in sizes):.1f} MB; largest "
          + ", ".join(f"{p.relative_to(a.out)} {s:.1f} MB" for s, p in sizes[:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
