"""The new-link search of a large DEM window tile by tile gives the links of the one search over
the whole window: on rough terrain, in a geographic CRS, and where a naive window (a tile plus a
fixed margin) would give another answer (a cliff whose only pass lies beyond the margin, a
cheaper route beyond the margin, an enclosed pit)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point

from kaizhou_gis.access import linksearch
from kaizhou_gis.access.linksearch import LinkSearch, search_groups
from kaizhou_gis.crs import transformer
from kaizhou_gis.network import DemGrid

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_400_000.0


def run(dem: DemGrid, lines: list[LineString], points: list[Point], crs: str, *, tile: int,
        margin: int, limit_m: float = 150.0, max_link_km: float = 15.0):
    """Links of ``points`` to the ``lines`` with tiles of ``tile`` cells and a first margin of
    ``margin`` cells (a tile larger than the window: the one search over the whole window)."""
    cand = pd.DataFrame({"geometry": np.array(points, dtype=object)})
    s = LinkSearch(cand=cand, dem=dem, to_dem=transformer(crs, dem.crs), from_dem=transformer(dem.crs, crs),
                   no_link="no link", max_grade_pct=12.0, max_link_km=max_link_km, slope_weight=10.0,
                   sample_m=90.0, end_max_m=200.0, limit=np.full(len(points), limit_m),
                   switchback_terrain_max_pct=50.0,
                   cost_per_km={"flat": 8e5, "hilly": 1.2e6, "mountain": 1.8e6},
                   terrain_slope_deg={"hilly": 8.0, "mountain": 20.0})
    geoms = np.array(lines, dtype=object)
    out: list = [None] * len(points)
    old = linksearch.TILE_CELLS, linksearch.TILE_MARGIN, linksearch.WHOLE_WINDOW_MAX_CELLS
    linksearch.TILE_CELLS, linksearch.TILE_MARGIN = tile, margin
    if tile < 10**6:  # a tile size given: the window searched in tiles whatever its cell count
        linksearch.WHOLE_WINDOW_MAX_CELLS = 0
    try:
        search_groups(s, [(np.arange(len(points)), np.arange(len(lines)), True)], out, geoms,
                      shapely.length(geoms))
    finally:
        linksearch.TILE_CELLS, linksearch.TILE_MARGIN, linksearch.WHOLE_WINDOW_MAX_CELLS = old
    return out


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y)
        for k in x:
            if k == "geometry":
                assert shapely.to_wkb(x[k]) == shapely.to_wkb(y[k])
            elif isinstance(x[k], np.ndarray):
                assert np.array_equal(x[k], y[k]), k
            else:
                assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), k


@pytest.fixture
def parts(monkeypatch):
    """The margins of the parts searched (a list filled by the search)."""
    seen: list[tuple[int, int, int, int]] = []
    orig = linksearch._search_part

    def spy(s, f, wr0, wr1, wc0, wc1, *a):
        seen.append((wr0, wr1, wc0, wc1))
        return orig(s, f, wr0, wr1, wc0, wc1, *a)
    monkeypatch.setattr(linksearch, "_search_part", spy)
    return seen


def rough(n: int, seed: int) -> np.ndarray:
    """A rough terrain: smoothed noise, hundreds of metres of relief, integer metres (ties)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, n)).cumsum(axis=0).cumsum(axis=1)
    z = (z - z.min()) / (np.ptp(z) or 1.0) * 900.0 + 200.0
    z += rng.normal(scale=15.0, size=z.shape)
    return np.round(z)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rough_terrain_tiles_give_the_whole_window_links(seed, parts):
    n = 90
    dem = DemGrid(values=rough(n, seed), transform=from_origin(X0, Y0 + n * 100.0, 100.0, 100.0), crs=CRS)
    rng = np.random.default_rng(seed)
    lines = [LineString([(X0 + 500, Y0 + 500 + 2000 * i), (X0 + 8500, Y0 + 900 + 2000 * i)]) for i in range(4)]
    points = [Point(X0 + x, Y0 + y) for x, y in rng.uniform(300, 8700, size=(40, 2))]
    whole = run(dem, lines, points, CRS, tile=10_000, margin=64)
    assert not parts  # one search over the whole window
    tiled = run(dem, lines, points, CRS, tile=16, margin=3)
    assert len(parts) > 9  # 36 tiles (some without points), some searched again wider
    assert_same(tiled, whole)
    assert sum("geometry" in x for x in whole) >= 20  # real links, not only reasons


def cliff_dem(n: int = 80) -> np.ndarray:
    """Flat ground at 300 m cut west-east by a cliff (a 1,000 m wall on row 40) with one pass
    at its east end (columns 76-79)."""
    z = np.full((n, n), 300.0)
    z[40, :76] = 1300.0
    return z


def test_cliff_whose_pass_lies_beyond_the_margin(parts):
    """A point just north of the cliff with a road just south of it: its link must go round by the
    pass 7 km east (where the road ends), outside a naive window of its tile plus 3 cells; the tiles find it by
    searching again wider, as the whole window does."""
    dem = DemGrid(values=cliff_dem(), transform=from_origin(X0, Y0 + 8000.0, 100.0, 100.0), crs=CRS)
    road = [LineString([(X0 + 200, Y0 + 3850), (X0 + 7950, Y0 + 3850)])]  # row 41, south of the wall
    pts = [Point(X0 + 550, Y0 + 4150), Point(X0 + 1250, Y0 + 4450), Point(X0 + 2000, Y0 + 6000)]
    whole = run(dem, road, pts, CRS, tile=10_000, margin=64, limit_m=80.0)
    tiled = run(dem, road, pts, CRS, tile=8, margin=3, limit_m=80.0)
    assert_same(tiled, whole)
    assert whole[0]["km"] > 6.5  # round by the pass: from the road's east end, 7 km west
    assert max(p[3] - p[2] for p in parts) == 80  # searched again up to the whole width
    # a naive window (the first part taken as the answer) finds no link for it
    naive = run_naive(dem, road, pts, limit_m=80.0)
    assert naive[0] == {"reason": "no link"}


def run_naive(dem, road, pts, *, limit_m):
    orig = linksearch._proved
    linksearch._proved = lambda *a: True
    try:
        return run(dem, road, pts, CRS, tile=8, margin=3, limit_m=limit_m)
    finally:
        linksearch._proved = orig


def test_cheaper_route_beyond_the_margin(parts):
    """A steep ramp through the cliff (hairpins) inside a naive window, and the flat pass just
    beyond it: the pass is cheaper; a naive window takes the ramp, the tiles take the pass, as
    the whole window does."""
    z = cliff_dem()
    z[40, 64] = 300.0 + 0.45 * 100.0  # a ramp of 22.5 % terrain grade through the wall at column 64
    z[39, 64] = z[41, 64] = 300.0 + 0.45 * 50.0
    dem = DemGrid(values=z, transform=from_origin(X0, Y0 + 8000.0, 100.0, 100.0), crs=CRS)
    road = [LineString([(X0 + 5050, Y0 + 3850), (X0 + 7950, Y0 + 3850)])]  # row 41, south of the wall
    pts = [Point(X0 + 6650, Y0 + 4150), Point(X0 + 3050, Y0 + 4150)]  # row 38: columns 66 and 30
    whole = run(dem, road, pts, CRS, tile=10_000, margin=64, limit_m=80.0)
    tiled = run(dem, road, pts, CRS, tile=8, margin=3, limit_m=80.0)
    assert_same(tiled, whole)
    assert whole[0]["hairpin_km"] == 0.0  # by the pass
    naive = run_naive(dem, road, pts, limit_m=80.0)
    assert naive[0]["hairpin_km"] > 0.1 and naive[0]["km"] != pytest.approx(whole[0]["km"])


def test_enclosed_pit_is_proved_unreachable_without_the_whole_window(parts):
    """A point in a pit ringed by cliffs: no link, proved by its tile (the pit's cells connect to
    no source and to no side of the part), without searching the whole window."""
    z = np.full((80, 80), 300.0)
    z[10:15, 10:15] = 1300.0
    z[11:14, 11:14] = 300.0  # the pit: 3 x 3 cells inside a ring of cliffs
    dem = DemGrid(values=z, transform=from_origin(X0, Y0 + 8000.0, 100.0, 100.0), crs=CRS)
    road = [LineString([(X0 + 5050, Y0 + 1050), (X0 + 7950, Y0 + 1050)])]
    pit = Point(X0 + 1250, Y0 + 8000 - 1250)
    whole = run(dem, road, [pit], CRS, tile=10_000, margin=64, limit_m=150.0)
    assert whole == [{"reason": "no link"}]
    tiled = run(dem, road, [pit], CRS, tile=8, margin=3, limit_m=150.0)
    assert tiled == whole
    assert len(parts) == 1 and parts[0] == (9, 16, 9, 16)  # the pit's cell (12, 12) and 3 cells


def test_geographic_dem_tiles_give_the_whole_window_links(parts):
    """A 3-arc-second DEM in EPSG:4326 (cell widths vary by row): the parts take the window's
    cell sizes, so costs and links are the whole window's to the last bit."""
    n = 90
    res = 1.0 / 1200.0
    lon0, lat0 = 108.2, 31.4
    dem = DemGrid(values=rough(n, 7), transform=from_origin(lon0, lat0 + n * res, res, res), crs="EPSG:4326")
    to = transformer("EPSG:4326", CRS)
    x, y = to.transform([lon0 + 5 * res, lon0 + 85 * res, lon0 + 20 * res],
                        [lat0 + 45 * res, lat0 + 50 * res, lat0 + 10 * res])
    lines = [LineString([(x[0], y[0]), (x[1], y[1])]), LineString([(x[2], y[2]), (x[1], y[1])])]
    rng = np.random.default_rng(7)
    ll = rng.uniform(5, 85, size=(30, 2)) * res
    px, py = to.transform(lon0 + ll[:, 0], lat0 + ll[:, 1])
    points = [Point(a, b) for a, b in zip(px, py, strict=True)]
    whole = run(dem, lines, points, CRS, tile=10_000, margin=64)
    tiled = run(dem, lines, points, CRS, tile=16, margin=2)
    assert_same(tiled, whole)
    assert sum("geometry" in x for x in whole) >= 15
