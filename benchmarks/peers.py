"""The tool's stages against the usual idioms of the field, in one process on the same data.

Usage::

    python benchmarks/peers.py                  # shipped layers, 200 000 random points
    python benchmarks/peers.py --points 50000 --repeat 5

Each line times a stage of kaizhou-gis and an "anchor" (what one would write with the well-known
library for that job), checks that both give the same answer, and prints the ratio
``anchor time / tool time`` (above 1: the tool is ahead). Ratios, not absolute times, are the
figures to keep: both sides run in the same process on the same data, so the load of a shared
machine cancels out to first order. Each timing is the best of ``--repeat`` runs.

Anchors:

* point elevation: ``terrain.sample_elevation`` vs a ``rasterio`` ``DatasetReader.sample`` loop;
* zonal statistics per township: ``terrain.zonal_stats`` vs ``exactextract`` (exact coverage:
  mean, min, max, count; the mean also as ``weighted_mean`` with the cells' ground areas as
  weights, which is the tool's figure) and ``rasterstats.zonal_stats`` (cell centres, unweighted);
* network distances from every township seat to every node: the one multi-source
  ``scipy.sparse.csgraph.dijkstra`` of ``access.seat_paths`` vs ``networkx``
  ``single_source_dijkstra_path_length`` per seat (on the same graph);
* nearest road edge of every settlement: ``access.snap_to_edges`` (STRtree ``dwithin`` queries at
  a growing radius, ``query_nearest`` for the few far points; every edge within 1 cm of the
  nearest, ties to the paved edge; position along the edge) vs a bare
  ``shapely.STRtree.query_nearest`` plus ``line_locate_point`` (the osmnx ``nearest_edges``
  idiom, which keeps whichever of equally near edges the tree returns).

``exactextract`` and ``rasterstats`` come with the ``bench`` extra (``pip install -e '.[bench]'``);
an anchor that is not installed is skipped with the reason.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, res = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def line(stage: str, tool_s: float, anchor: str, anchor_s: float, agree: str) -> str:
    ratio = anchor_s / tool_s if tool_s > 0 else float("inf")
    verdict = "tool ahead" if ratio > 1 else "ANCHOR AHEAD"
    return (f"| {stage} | {tool_s * 1000:.1f} | {anchor} | {anchor_s * 1000:.1f} | {ratio:.2f} | "
            f"{verdict} | {agree} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=None, help="layers (default: the shipped layers)")
    ap.add_argument("--points", type=int, default=200_000, help="random points for point elevation")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = ap.parse_args(argv)

    import geopandas as gpd
    import networkx as nx
    import shapely

    from kaizhou_gis import access, terrain
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.network import build_network, network_settings
    from kaizhou_gis.plan import load_plan

    plan = load_plan()
    layers = load_layers(args.layers, plan=plan)
    rows = ["| stage | tool ms | anchor | anchor ms | ratio anchor/tool | | same answer |",
            "|---|---:|---|---:|---:|---|---|"]
    skipped = []

    with layers.open_dem() as dem:
        # --- point elevation ------------------------------------------------------------
        rng = np.random.default_rng(16)
        b = dem.bounds
        xs = rng.uniform(b.left, b.right, args.points)
        ys = rng.uniform(b.bottom, b.top, args.points)
        pts = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=dem.crs)
        t_tool, z_tool = best_of(lambda: terrain.sample_elevation(pts, dem).to_numpy(), args.repeat)

        def sample_loop():
            return np.array([v[0] for v in dem.sample(zip(xs, ys), indexes=1, masked=False)], dtype=float)

        t_anc, z_anc = best_of(sample_loop, args.repeat)
        if dem.nodata is not None:
            z_anc[z_anc == dem.nodata] = np.nan
        # the tool puts a point within CELL_TOL of a cell edge into the cell right of / below
        # the edge (terrain.floor_cells); rasterio floors plainly: those points may differ
        inv = ~dem.transform
        fc, fr = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
        tol = terrain.sampling.CELL_TOL
        near = (np.abs(fc - np.round(fc)) < 2 * tol) | (np.abs(fr - np.round(fr)) < 2 * tol)
        diff = ~((z_tool == z_anc) | (np.isnan(z_tool) & np.isnan(z_anc)))
        if (diff & ~near).any():
            same = f"NO: {int((diff & ~near).sum())} points differ away from cell edges"
        else:
            same = (f"yes ({int(diff.sum())} points within CELL_TOL of a cell edge take the cell "
                    f"right of / below it: the tool's edge rule)" if diff.any() else "yes")
        rows.append(line(f"point elevation ({args.points:,} points)", t_tool,
                         "rasterio `sample` loop", t_anc, same))

        # --- zonal statistics -----------------------------------------------------------
        # both sides get the same polygons, already in the DEM's CRS
        tws = layers.townships
        tws_dem = tws.to_crs(dem.crs)
        t_tool, zs = best_of(lambda: terrain.zonal_stats(tws_dem.geometry, dem), args.repeat)
        try:
            from exactextract import exact_extract
            from exactextract.raster import NumPyRasterSource

            def ee():
                return exact_extract(dem, tws_dem, ["mean", "min", "max", "count"], output="pandas")

            t_anc, ex = best_of(ee, args.repeat)
            # the tool weighs each cell by share x ground area; exactextract's weighted_mean with
            # the cells' ground areas as weights is the same figure (its plain mean: share only)
            dx, dy = terrain.cell_size_m(dem.transform, dem.crs, dem.height)
            b = dem.bounds
            areas = NumPyRasterSource(np.repeat((dx * dy)[:, None], dem.width, axis=1),
                                      b.left, b.bottom, b.right, b.top, srs_wkt=dem.crs.to_wkt())
            exw = exact_extract(dem, tws_dem, ["weighted_mean"], weights=areas, output="pandas")

            def dmax(a, b):
                return float(np.nanmax(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))

            agree = (f"max abs diff per township: mean {dmax(exw['weighted_mean'], zs['mean_m']):.1e} m "
                     f"(area-weighted; share-only mean {dmax(ex['mean'], zs['mean_m']):.2f} m), "
                     f"min {dmax(ex['min'], zs['min_m']):.1e} m, max {dmax(ex['max'], zs['max_m']):.1e} m, "
                     f"covered cells {dmax(ex['count'], zs['covered_cells']):.1e}")
            rows.append(line(f"zonal stats ({len(tws)} townships)", t_tool,
                             "exactextract mean/min/max/count", t_anc, agree))
        except ImportError as e:
            skipped.append(f"exactextract: not installed ({e}); pip install -e '.[bench]'")
        try:
            from rasterstats import zonal_stats as rs_zonal

            arr = dem.read(1, masked=False)

            def rs():
                return rs_zonal(tws_dem.geometry, arr, affine=dem.transform, nodata=dem.nodata,
                                stats=["mean", "min", "max"])

            t_anc, rz = best_of(rs, args.repeat)
            d_mean = np.nanmax(np.abs(np.array([r["mean"] for r in rz], dtype=float)
                                      - zs["mean_m"].to_numpy()))
            rows.append(line(f"zonal stats ({len(tws)} townships)", t_tool,
                             "rasterstats (cell centres, array in memory)", t_anc,
                             f"mean within {d_mean:.2f} m (unweighted cell centres)"))
        except ImportError as e:
            skipped.append(f"rasterstats: not installed ({e}); pip install -e '.[bench]'")

    # --- network distances --------------------------------------------------------------
    net = build_network(layers.roads, **network_settings(plan))
    reach = float(plan["access.reach_distance_m"])

    def tool_all():  # every seat to every node, as the anchor computes them
        sp = access.seat_paths(net, layers.township_seats, reach_distance_m=reach)
        return sp, sp.dist_m.full()

    t_tool, (sp, d_tool) = best_of(tool_all, args.repeat)
    # the same graph for networkx: the seat graph seat_paths built (edges + virtual seat nodes)
    L = net.edges["length_m"].to_numpy()
    u, v = net.edges["u"].to_numpy(), net.edges["v"].to_numpy()
    info = sp.seats
    ok = info["on_network"].to_numpy()
    n = net.n_nodes
    vn = n + np.flatnonzero(ok)
    se, sa = info["edge"].to_numpy()[ok], info["along_m"].to_numpy()[ok]
    eps = 1e-9
    g = nx.Graph()
    for a, c, w in zip(u, v, np.maximum(L, eps)):
        if a != c and (not g.has_edge(a, c) or g[a][c]["w"] > w):
            g.add_edge(int(a), int(c), w=float(w))
    for node, e_, al in zip(vn, se, sa):
        g.add_edge(int(node), int(u[e_]), w=max(float(al), eps))
        g.add_edge(int(node), int(v[e_]), w=max(float(L[e_] - al), eps))

    def nx_all():
        out = np.full((len(vn), n), np.inf)
        for k, s in enumerate(vn):
            for node, d in nx.single_source_dijkstra_path_length(g, int(s), weight="w").items():
                if node < n:
                    out[k, node] = d
        return out

    t_anc, d_nx = best_of(nx_all, max(1, args.repeat // 3))
    fin = np.isfinite(d_nx)
    same = np.array_equal(fin, np.isfinite(d_tool[ok])) and \
        np.allclose(d_nx[fin], d_tool[ok][fin], rtol=1e-9, atol=1e-6)
    rows.append(line(f"network distances ({ok.sum()} seats x {n:,} nodes)", t_tool,
                     "networkx per-seat Dijkstra", t_anc, "yes" if same else "NO"))

    # --- nearest edges ------------------------------------------------------------------
    spts = layers.settlements.geometry
    t_tool, snap = best_of(lambda: access.snap_to_edges(spts, net.edges), args.repeat)
    lines = net.edges.geometry.to_numpy()

    def strtree():
        tree = shapely.STRtree(lines)
        (pi, ti), dist = tree.query_nearest(spts.to_numpy(), return_distance=True, all_matches=False)
        return ti, dist, shapely.line_locate_point(lines[ti], spts.to_numpy()[pi])

    t_anc, (ti, dist, _along) = best_of(strtree, args.repeat)
    same_d = np.allclose(dist, snap["snap_distance_m"].to_numpy(), atol=1e-6)
    same_e = float((ti == snap["edge"].to_numpy()).mean() * 100)
    rows.append(line(f"nearest edge ({len(spts):,} settlements, {len(lines):,} edges)", t_tool,
                     "STRtree query_nearest + line_locate_point", t_anc,
                     f"distances {'yes' if same_d else 'NO'}; same edge {same_e:.1f} % "
                     f"(the tool breaks ties toward paved edges)"))

    print("\n".join(rows))
    for s in skipped:
        print(f"skipped {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
