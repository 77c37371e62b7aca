"""The relocation step's scalable parts give the answers of their plain definitions: the site
selection (per-township near points, spacing grid) against a whole-district reference, the spacing
grid against the plain spacing test, and the road distances (searches bounded and widened step by
step) against networkx."""
from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString, Point

from kaizhou_gis import relocation
from kaizhou_gis.relocation import sites as sites_mod

WORK = "EPSG:4545"


def _reference_selection(ok, demand, hh, *, cap, min_spacing_m, max_m, own_before_neighbours):
    """select_sites' rules written out over whole-district matrices (every point x every
    settlement of a township, every site for the spacing): the picks in order."""
    xy = np.column_stack([ok.geometry.x.to_numpy(), ok.geometry.y.to_numpy()])
    tw_ok, suit = ok["township_code"].to_numpy(), ok["suitability"].to_numpy()
    need = {c: -(-int(v) // cap) for c, v in hh.items()}
    dist, rem = {}, {}
    for code in hh.index:
        pts = demand[demand["township_code"].astype(str) == code]
        sx, sy = pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()
        dist[code] = np.hypot(xy[:, 0][:, None] - sx[None, :], xy[:, 1][:, None] - sy[None, :])
        rem[code] = pts["households"].to_numpy(dtype=float)
    picks, free, all_xy = [], np.ones(len(ok), dtype=bool), []

    def give_room(code, k):
        room = float(cap)
        for j in np.argsort(dist[code][k], kind="stable"):
            if room <= 0 or dist[code][k, j] > max_m:
                break
            take = min(room, rem[code][j])
            rem[code][j] -= take
            room -= take

    for code in sorted(hh.index):
        chosen = []
        for k in np.flatnonzero(tw_ok == code):
            if len(chosen) >= need[code]:
                break
            if relocation._spaced(xy[k], chosen, min_spacing_m):
                chosen.append(xy[k])
                picks.append((k, code))
    for k, _code in picks:
        free[k] = False
        all_xy.append(xy[k])
    for k, code in list(picks):
        give_room(code, k)

    def order():
        short = [c for c in hh.index if rem[c].sum() > 0]
        n_free = {c: int((free & (dist[c][:, rem[c] > 0] <= max_m).any(axis=1)).sum()) for c in short}
        return sorted(short, key=lambda c: (n_free[c] - math.ceil(rem[c].sum() / cap), -rem[c].sum(), c))

    def fill(code, relaxed, own_only=False):
        while rem[code].sum() > 0:
            w = rem[code]
            reach = (dist[code][:, w > 0] <= max_m).any(axis=1)
            mean_d = (dist[code] * w).sum(axis=1) / w.sum()
            own_first = (tw_ok != code).astype(int) if relaxed else np.zeros(len(ok), dtype=int)
            pick = next((k for k in np.lexsort((-suit, mean_d, own_first))
                         if free[k] and reach[k] and (not own_only or tw_ok[k] == code)
                         and (relaxed or relocation._spaced(xy[k], all_xy, min_spacing_m))), None)
            if pick is None:
                return
            free[pick] = False
            all_xy.append(xy[pick])
            picks.append((pick, code))
            give_room(code, pick)

    if own_before_neighbours:
        for code in order():
            fill(code, True, own_only=True)
    for relaxed in (False, True):
        for code in order():
            fill(code, relaxed)
    return [(ok.index[k], code) for k, code in picks]


@pytest.mark.parametrize("seed,own_first", [(3, True), (5, False), (8, True)])
def test_select_sites_matches_the_whole_district_reference(seed, own_first):
    rng = np.random.default_rng(seed)
    # 9 townships in a 3 x 3 block of 10 km squares; a 1.5 km grid, many points vetoed
    xs = np.arange(750.0, 30000.0, 1500.0)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, xs))
    code = np.array([f"T{int(x // 10000)}{int(y // 10000)}" for x, y in zip(gx, gy)])
    ev = gpd.GeoDataFrame({"township_code": code,
                           "suitability": rng.integers(0, 1000, len(gx)) / 10.0,
                           "vetoes": np.where(rng.uniform(size=len(gx)) < 0.55, "slope 30.0° > 25°", "")},
                          geometry=[Point(x, y) for x, y in zip(gx, gy)], crs=WORK)
    # a township with no feasible ground of its own, and demand crowded into a corner
    ev.loc[ev["township_code"] == "T11", "vetoes"] = "elevation 1,200 m > 800 m"
    n = 70
    sx = np.concatenate([rng.uniform(0, 30000, n - 20), rng.uniform(20000, 30000, 20)])
    sy = np.concatenate([rng.uniform(0, 30000, n - 20), rng.uniform(0, 10000, 20)])
    demand = gpd.GeoDataFrame({"township_code": [f"T{int(x // 10000)}{int(y // 10000)}" for x, y in zip(sx, sy)],
                               "households": rng.integers(0, 60, n)},
                              geometry=[Point(x, y) for x, y in zip(sx, sy)], crs=WORK)
    kw = dict(capacity_households=70, min_spacing_m=3000.0, max_distance_km=12.0)
    sites, cov = relocation.select_sites(ev, demand, own_before_neighbours=own_first, **kw)

    ok = ev[ev["vetoes"] == ""].sort_values(["township_code", "suitability"], ascending=[True, False],
                                            kind="mergesort")
    d = demand[demand["households"] > 0]
    hh = d.groupby(d["township_code"].astype(str))["households"].sum().astype(int)
    ref = _reference_selection(ok, d, hh, cap=70, min_spacing_m=3000.0, max_m=12000.0,
                               own_before_neighbours=own_first)
    got = sorted(zip(sites.index, sites["serves_township_code"]))
    assert got == sorted(ref)
    assert len(ref) > len(hh)  # more than one site per township: the cover and relaxed rules ran
    assert (sites["site_role"] == "cover").any()
    assert cov.set_index("township_code").loc["T11", "own_sites"] == 0


def test_spacing_grid_agrees_with_the_plain_spacing_test():
    rng = np.random.default_rng(11)
    for spacing in (3000.0, 0.0, 250.0):
        grid = sites_mod._SpacingGrid(spacing)
        placed = []
        for _ in range(300):
            xy = rng.uniform(-20000, 20000, 2)
            if rng.uniform() < 0.2 and placed:  # exactly at the spacing from a placed site
                ang = rng.uniform(0, 2 * np.pi)
                xy = placed[rng.integers(len(placed))] + spacing * np.array([np.cos(ang), np.sin(ang)])
            assert grid.spaced(xy) == relocation._spaced(xy, placed, spacing)
            if rng.uniform() < 0.3:
                grid.add(xy)
                placed.append(xy)
    grid = sites_mod._SpacingGrid(3000.0)
    grid.add(np.array([0.0, 0.0]))
    assert not grid.spaced(np.array([2999.0, 0.0])) and grid.spaced(np.array([3000.0, 0.0]))
    assert not grid.spaced(np.array([np.nan, 0.0]))  # as the plain test: no coordinates, no spacing


def test_network_distance_km_matches_networkx_with_long_detours_and_a_detached_part():
    """A comb of dead-end valleys whose tips are 1 km apart as the crow flies but up to 40 km
    apart by road (the bounded search is widened several times), plus a detached road."""
    lines, u, v = [], [], []
    node = {}

    def nid(p):
        return node.setdefault(p, len(node))

    def road(a, b):
        lines.append(LineString([a, b]))
        u.append(nid(a))
        v.append(nid(b))

    for k in range(8):  # the trunk along y = 0 and valleys up to y = 20 km, 1 km apart
        x = 1000.0 * k
        if k:
            road((x - 1000.0, 0.0), (x, 0.0))
        for y in np.arange(0.0, 20000.0, 2500.0):
            road((x, y), (x, y + 2500.0))
    road((50000.0, 0.0), (51000.0, 0.0))  # detached
    edges = gpd.GeoDataFrame({"u": u, "v": v, "length_m": [ln.length for ln in lines]},
                             geometry=lines, crs=WORK)
    rng = np.random.default_rng(2)
    n = 60
    ox, tx = rng.integers(0, 8, n) * 1000.0, rng.integers(0, 8, n) * 1000.0
    oy, ty = rng.uniform(100, 19900, n), rng.uniform(100, 19900, n)
    origins = gpd.GeoSeries([Point(x + 40.0, y) for x, y in zip(ox, oy)], crs=WORK)
    targets = gpd.GeoSeries([Point(x - 25.0, y) for x, y in zip(tx, ty)], crs=WORK)
    origins.iloc[0] = Point(50500.0, 30.0)  # on the detached road
    km = relocation.network_distance_km(origins, targets, edges)

    g = nx.Graph()
    for a, b, ln in zip(u, v, edges["length_m"]):
        g.add_edge(a, b, weight=ln)
    exp = []
    for o, t in zip(origins, targets):
        best = math.inf
        (ko, ends_o), (kt, ends_t) = _ends(edges, o), _ends(edges, t)
        for (ta, tw) in ends_t:
            for (oa, ow) in ends_o:
                try:
                    best = min(best, tw + nx.dijkstra_path_length(g, ta, oa) + ow)
                except nx.NetworkXNoPath:
                    pass
        if ko == kt:  # along their shared edge
            best = min(best, abs(ends_o[0][1] - ends_t[0][1]))
        exp.append(best)
    exp = np.array(exp)
    assert math.isnan(km[0]) and not np.isfinite(exp[0])
    off = np.array([40.0 + 25.0] * n)
    np.testing.assert_allclose(km[1:], (exp[1:] + off[1:]) / 1000.0, rtol=1e-12)
    ratio = (exp[1:] + off[1:]) / np.hypot(ox - tx, oy - ty)[1:]
    assert ratio.max() > 12  # ways far longer than 3x the straight line (searched again)


def _ends(edges, p):
    """(edge, [(node, metres along the road from the point's foot to it)] for its two ends) of
    the nearest edge of ``p`` (the valley or trunk edge it lies beside)."""
    k = int(np.argmin(edges.geometry.distance(p).to_numpy()))
    ln = edges.geometry.iloc[k]
    a = ln.project(p)
    return k, [(int(edges["u"].iloc[k]), a), (int(edges["v"].iloc[k]), ln.length - a)]
