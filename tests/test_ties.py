"""Results never depend on float noise of the input coordinates.

A File Geodatabase stores coordinates on an integer grid (0.1 mm by default), other formats
round-trip through text or another CRS: the same layers come back moved by up to ~1e-4 m. Where
two choices are equally good (a point on a road junction is as near to every edge meeting there;
grid points two steps apart are exactly ``min_site_spacing_m`` apart), that noise must not decide.
Each rule has a unit test here (the documented winner, whatever the noise and the order of the
rows); tests/test_dbio.py runs the whole pipeline from a .gdb written with GDAL's default grid.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point

from kaizhou_gis import access, relocation
from kaizhou_gis.network import build_network, network_settings
from kaizhou_gis.plan import load_plan

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_400_000.0
NOISE = (-1e-4, -3e-5, 0.0, 2e-6, 7e-5, 1e-4)


def L(*pts):
    return LineString([(X0 + x, Y0 + y) for x, y in pts])


def _net(rows):
    roads = gpd.GeoDataFrame(
        {"road_id": [r[0] for r in rows], "road_class": "village", "surface": [r[1] for r in rows]},
        geometry=[r[2] for r in rows], crs=CRS)
    return build_network(roads, **network_settings(load_plan()))


def _snap_road(edges, x, y, *, shuffle_seed=None):
    if shuffle_seed is not None:
        edges = edges.sample(frac=1.0, random_state=shuffle_seed)
    s = access.snap_to_edges(gpd.GeoSeries([Point(X0 + x, Y0 + y)], crs=CRS), edges)
    e = edges.iloc[int(s["edge"].iloc[0])]
    return e["road_id"], int(e["edge_id"])


# four paved roads meeting at one junction (0, 0), listed in no particular order
CROSS = [("RC", "paved", L((0, 0), (0, -1000))), ("RA", "paved", L((0, 0), (1000, 0))),
         ("RD", "paved", L((-1000, 0), (0, 0))), ("RB", "paved", L((0, 0), (0, 1000)))]


@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_point_at_a_junction_snaps_to_the_lowest_road_id_whatever_the_noise_and_row_order(seed):
    net = _net(CROSS)
    # a point on the junction, and one off it diagonally: every edge equally near
    for px, py in ((0.0, 0.0), (-120.0, 0.0), (0.0, 250.0)):
        got = {_snap_road(net.edges, px + dx, py + dy, shuffle_seed=seed)[0]
               for dx in NOISE for dy in NOISE}
        # (-120, 0) lies on RD itself: a real nearest edge, not a tie
        assert got == ({"RD"} if px < 0 else {"RB"} if py > 0 else {"RA"}), (px, py)
    # off the junction's corner by the same distance from RA and RB (45 degrees): RA
    got = {_snap_road(net.edges, 100 + dx, 100 + dy, shuffle_seed=seed)[0] for dx in NOISE for dy in NOISE}
    assert got == {"RA"}


def test_a_paved_edge_wins_the_tie_then_the_road_id():
    rows = [(r, "unpaved" if r == "RA" else s, g) for r, s, g in CROSS]
    net = _net(rows)
    assert {_snap_road(net.edges, dx, dy)[0] for dx in NOISE for dy in NOISE} == {"RB"}
    # 2 cm nearer the unpaved RA: not a tie (TIE_M = 1 cm), the nearer edge wins
    assert access.TIE_M == 0.01
    assert _snap_road(net.edges, 100, 99.97)[0] == "RA"
    assert _snap_road(net.edges, 100, 99.995)[0] == "RB"


def test_two_edges_of_one_road_at_its_vertex_the_lower_edge_id_wins():
    # R1 is split at (500, 0) where R2 meets it: the point above that vertex is as near to
    # R1's first edge as to its second
    net = _net([("R2", "unpaved", L((500, 0), (500, -800))), ("R1", "paved", L((0, 0), (500, 0), (1000, 0)))])
    r1 = net.edges[net.edges["road_id"] == "R1"].sort_values("edge_id")
    assert len(r1) == 2
    for seed in (None, 0, 3):
        got = {_snap_road(net.edges, 500 + dx, 300 + dy, shuffle_seed=seed) for dx in NOISE for dy in NOISE}
        assert got == {("R1", int(r1["edge_id"].iloc[0]))}


def test_canonical_pick_ignores_the_order_of_the_pairs():
    net = _net(CROSS)
    e = net.edges
    pi = np.array([0, 0, 0, 1, 1, 1])
    rows = np.array([list(e["road_id"]).index(r) for r in ("RC", "RB", "RD", "RD", "RA", "RC")])
    dist = np.array([5.0, 5.004, 5.0, 7.0, 7.012, 6.995])
    want = (np.array([0, 1]), ["RB", "RC"])  # point 0: RB/RC/RD tie -> RB; point 1: RA is 1.7 cm off
    rng = np.random.default_rng(0)
    for _ in range(5):
        k = rng.permutation(len(pi))
        p, ee, d = access.canonical_pick(pi[k], rows[k], dist[k], e)
        assert p.tolist() == want[0].tolist() and e["road_id"].to_numpy()[ee].tolist() == want[1]


def test_seat_on_a_junction_of_the_main_network_takes_the_canonical_edge():
    net = _net(CROSS + [("RZ", "paved", L((5000, 5000), (5100, 5000)))])
    seats = gpd.GeoDataFrame({"township_code": ["500154001"], "name": ["镇"]}, crs=CRS,
                             geometry=[Point(X0 + 3e-5, Y0 - 7e-5)])
    for dx, dy in ((0, 0), (7e-5, -1e-4), (-1e-4, 2e-5)):
        s = seats.copy()
        s["geometry"] = [Point(X0 + dx, Y0 + dy)]
        sp = access.seat_paths(net, s, reach_distance_m=500.0)
        row = sp.seats.iloc[0]
        assert net.edges["road_id"].iloc[int(row["edge"])] == "RA"
        assert net.edges["road_id"].iloc[int(row["paved_edge"])] == "RA"


def test_site_spacing_of_exactly_two_grid_steps_is_kept_whatever_the_float_bits():
    # grid points two 1500 m steps apart: 3000 m up to float noise in either direction
    for x0 in (0.1, 0.3, 123456.789, 987654.321, 499999.99995):
        a = x0 + 1500.0 * 0.5
        b = x0 + 1500.0 * 2.5
        assert relocation._spaced(np.array([b, 0.0]), [np.array([a, 0.0])], 3000.0)
        assert relocation._spaced(np.array([a + 3000.0 - 5e-4, 0.0]), [np.array([a, 0.0])], 3000.0)
        assert not relocation._spaced(np.array([a + 2999.99, 0.0]), [np.array([a, 0.0])], 3000.0)


def _grid_noise(geoms: np.ndarray, grid: float, origin: float) -> np.ndarray:
    """Coordinates snapped to a grid, as a File Geodatabase stores them (equal points stay equal)."""
    return shapely.transform(geoms, lambda xy: np.round((xy - origin) / grid) * grid + origin)


def test_site_choice_and_assignment_do_not_move_with_the_coordinates_grid():
    """Sites on a grid whose origin comes from the boundary, picked at min_site_spacing_m = two
    grid steps, and households assigned to them: the same with every coordinate moved to a 0.1 mm
    grid (three different grid origins)."""
    rng = np.random.default_rng(7)
    n = 60
    xy = rng.uniform(0, 12000, size=(n, 2))
    bnd = shapely.box(X0 - 0.37, Y0 - 0.81, X0 + 12000.41, Y0 + 12000.13)
    tw = gpd.GeoDataFrame({"township_code": ["500154001"]}, geometry=[bnd], crs=CRS)

    def run(shift_grid):
        b = tw.copy()
        pts = shapely.points(X0 + xy[:, 0], Y0 + xy[:, 1])
        if shift_grid is not None:
            b["geometry"] = _grid_noise(b.geometry.to_numpy(), 1e-4, shift_grid)
            pts = _grid_noise(pts, 1e-4, shift_grid)
        grid = gpd.GeoDataFrame(geometry=relocation.grid_sites(b, spacing_m=1500.0))
        grid["township_code"] = "500154001"
        # suitability from a smooth field of the (noisy) coordinates, rounded as the step does
        gx, gy = grid.geometry.x - X0, grid.geometry.y - Y0
        grid["suitability"] = (100 - np.hypot(gx - 6000, gy - 6000) / 100).round(1)
        grid["vetoes"] = np.where((gx > 9000) & (gy < 3000), "slope 30.0° > 25°", "")
        demand = gpd.GeoDataFrame({"settlement_id": [f"S{i:03d}" for i in range(n)],
                                   "township_code": "500154001",
                                   "households": rng.integers(5, 40, size=n) if False else
                                   (np.arange(n) % 7 + 5) * 3}, geometry=pts, crs=CRS)
        sites, cov = relocation.select_sites(grid, demand, capacity_households=80, min_spacing_m=3000.0,
                                             max_distance_km=30.0)
        a, u = relocation.assign_households(demand, sites, max_distance_km=30.0,
                                            other_township_penalty_km=10.0)
        return sites.drop(columns="geometry").reset_index(drop=True), a, u

    ref = run(None)
    assert len(ref[0]) == -(-int(((np.arange(n) % 7 + 5) * 3).sum()) // 80)
    for origin in (0.0, 0.33e-4, 0.71e-4):
        got = run(origin)
        pd.testing.assert_frame_equal(ref[0], got[0])
        pd.testing.assert_frame_equal(ref[1].drop(columns="distance_km"), got[1].drop(columns="distance_km"))
        assert np.abs(ref[1]["distance_km"] - got[1]["distance_km"]).max() <= 0.01
        pd.testing.assert_frame_equal(ref[2], got[2])


def test_snap_finds_the_nearest_edge_near_and_far_as_a_brute_force_would():
    """snap_to_edges searches growing radii (then query_nearest for the far points): every point,
    on a road, near one or kilometres away, gets the edge a brute force over all edges gives
    (the tie rule: paved, then road_id), with its distance and position along the edge."""
    rng = np.random.default_rng(3)
    rows = []
    for k in range(40):
        x, y = rng.uniform(0, 4000, 2)
        a = rng.uniform(0, np.pi)
        rows.append((f"R{k:02d}", "paved" if k % 3 else "unpaved",
                     L((x, y), (x + 300 * np.cos(a), y + 300 * np.sin(a)), (x + 500, y + 40))))
    rows.append(("R90", "unpaved", L((0, 0), (0, 900))))
    rows.append(("R91", "paved", L((0, 0), (0, 900))))  # digitized twice: the paved one wins
    net = _net(rows)
    e = net.edges
    pts = [Point(X0 + x, Y0 + y) for x, y in rng.uniform(-3000, 7000, (150, 2))]
    pts += [Point(X0, Y0 + 450), Point(X0 + 60_000, Y0 - 40_000), Point(X0 + 2000, Y0 + 2000)]
    s = access.snap_to_edges(gpd.GeoSeries(pts, crs=CRS), e)
    lines = e.geometry.to_numpy()
    for i, p in enumerate(pts):
        d = shapely.distance(p, lines)
        near = np.flatnonzero(d <= d.min() + access.points.TIE_M)
        best = min(near, key=lambda j: (not e["paved"].iloc[j], e["road_id"].iloc[j], e["edge_id"].iloc[j]))
        assert s["edge"].iloc[i] == best, i
        assert s["snap_distance_m"].iloc[i] == d[best]
        assert s["along_m"].iloc[i] == pytest.approx(lines[best].project(p))
    assert e["road_id"].iloc[s["edge"].iloc[150]] == "R91"
    assert s["snap_distance_m"].iloc[151] > 40_000  # beyond the growing radii: query_nearest
