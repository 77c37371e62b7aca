"""Tests of kaizhou_gis.terrain on small DEMs whose answers are known."""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely.affinity
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Point, Polygon, box

from kaizhou_gis import terrain
from kaizhou_gis.terrain.zonal import MIN_SHARE, coverage

NODATA = -32768


def from_origin(west, north, xsize, ysize):
    """North-up transform (rasterio's own still uses the deprecated ``*``)."""
    return Affine.translation(west, north) @ Affine.scale(xsize, -ysize)


def write_dem(path, array, transform, crs, nodata=NODATA, dtype=None):
    array = np.asarray(array)
    dtype = dtype or array.dtype
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1],
                       count=1, dtype=dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(array.astype(dtype), 1)
    return path


@pytest.fixture
def tiny_dem(tmp_path):
    """3 x 3 cells of 0.01 degree, values 100..900, centre cell nodata."""
    z = np.array([[100, 200, 300], [400, NODATA, 600], [700, 800, 900]], dtype="int16")
    return write_dem(tmp_path / "tiny.tif", z, from_origin(108.0, 31.03, 0.01, 0.01), "EPSG:4326")


def test_sample_elevation_values_nodata_and_outside(tiny_dem):
    pts = gpd.GeoSeries([Point(108.005, 31.025), Point(108.025, 31.005), Point(108.015, 31.015),
                         Point(107.5, 31.0), Point(108.015, 31.029)], crs="EPSG:4326",
                        index=[10, 11, 12, 13, 14])
    with rasterio.open(tiny_dem) as ds:
        z = terrain.sample_elevation(pts, ds)
    assert list(z.index) == [10, 11, 12, 13, 14]
    assert z[10] == 100 and z[11] == 900 and z[14] == 200
    assert math.isnan(z[12])  # nodata cell
    assert math.isnan(z[13])  # outside the raster: NaN, not 0


def test_sample_elevation_reprojects_points(tiny_dem):
    pts = gpd.GeoSeries([Point(108.025, 31.015)], crs="EPSG:4326").to_crs("EPSG:4545")
    with rasterio.open(tiny_dem) as ds:
        assert terrain.sample_elevation(pts, ds).iloc[0] == 600


def test_read_block_pads_outside_with_nan(tiny_dem):
    with rasterio.open(tiny_dem) as ds:
        z, tr = terrain.read_block(ds, -1, 2, 3, 3)
    assert z.shape == (3, 3)
    assert np.isnan(z[0]).all()  # row -1 is outside
    assert z[1, 0] == 300 and np.isnan(z[1, 1]) and z[2, 0] == 600
    assert tr.c == pytest.approx(108.02) and tr.f == pytest.approx(31.04)


def test_cell_size_geographic_shrinks_with_latitude():
    tr = from_origin(108.0, 60.0, 1 / 1200, 1 / 1200)
    dx, dy = terrain.cell_size_m(tr, "EPSG:4326", 36000)  # 60N .. 30N
    assert dx[0] == pytest.approx(46.5, abs=0.5)  # 3" at 60N
    assert dx[-1] == pytest.approx(80.3, abs=0.5)  # 3" at 30N
    assert dy[-1] == pytest.approx(92.4, abs=0.3)


def _surface(x, y, x0, y0):
    """A tilted plane with a gentle hill, in metres of EPSG:4545."""
    return (1000.0 + 0.30 * (x - x0) + 0.10 * (y - y0)
            + 100.0 * np.sin(2 * np.pi * (x - x0) / 8000.0) * np.cos(2 * np.pi * (y - y0) / 9000.0))


def _slope_true(x, y, x0, y0):
    ax, ay = 2 * np.pi * (x - x0) / 8000.0, 2 * np.pi * (y - y0) / 9000.0
    gx = 0.30 + 100.0 * 2 * np.pi / 8000.0 * np.cos(ax) * np.cos(ay)
    gy = 0.10 - 100.0 * 2 * np.pi / 9000.0 * np.sin(ax) * np.sin(ay)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def test_slope_geographic_agrees_with_projected(tmp_path):
    to_proj = Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True)
    x0, y0 = to_proj.transform(108.0, 31.2)
    # geographic DEM: 3 arc-second cells around 108E 31.2N
    res = 1 / 1200
    tr_g = from_origin(107.95, 31.25, res, res)
    lon = 107.95 + (np.arange(120) + 0.5) * res
    lat = 31.25 - (np.arange(120) + 0.5) * res
    LON, LAT = np.meshgrid(lon, lat)
    X, Y = to_proj.transform(LON, LAT)
    zg = _surface(X, Y, x0, y0)
    # projected DEM: 90 m cells over the same ground
    tr_p = from_origin(x0 - 5000, y0 + 5000, 90, 90)
    xs = x0 - 5000 + (np.arange(112) + 0.5) * 90
    ys = y0 + 5000 - (np.arange(112) + 0.5) * 90
    XP, YP = np.meshgrid(xs, ys)
    zp = _surface(XP, YP, x0, y0)
    sg = terrain.slope_deg(zg, tr_g, "EPSG:4326")
    sp = terrain.slope_deg(zp, tr_p, "EPSG:4545")
    # both agree with the analytic slope at their own cell centres
    assert np.abs(sg[2:-2, 2:-2] - _slope_true(X, Y, x0, y0)[2:-2, 2:-2]).max() < 0.5
    assert np.abs(sp[2:-2, 2:-2] - _slope_true(XP, YP, x0, y0)[2:-2, 2:-2]).max() < 0.5
    # and with each other at the same places (local mean slope, via files and point_terrain)
    gpath = write_dem(tmp_path / "g.tif", zg, tr_g, "EPSG:4326", nodata=-9999.0, dtype="float32")
    ppath = write_dem(tmp_path / "p.tif", zp, tr_p, "EPSG:4545", nodata=-9999.0, dtype="float32")
    rng = np.random.default_rng(1)
    pts = gpd.GeoSeries(gpd.points_from_xy(x0 + rng.uniform(-3500, 3500, 40),
                                           y0 + rng.uniform(-3500, 3500, 40)), crs="EPSG:4545")
    with rasterio.open(gpath) as g, rasterio.open(ppath) as p:
        tg = terrain.point_terrain(pts, g, slope_radius_m=150, relief_radius_m=500)
        tp = terrain.point_terrain(pts, p, slope_radius_m=150, relief_radius_m=500)
    diff = (tg["slope_deg"] - tp["slope_deg"]).abs()
    assert diff.max() < 0.5
    assert tg["slope_deg"].min() > 10  # the plane alone is 17.5 degrees; not a flat artefact
    # a naive slope that takes degrees for metres (or ignores the latitude) would be far off
    naive = np.degrees(np.arctan(np.hypot(*np.gradient(zg, 92.4, 92.4))))
    assert np.abs(naive - sg).max() > 2


def test_point_terrain_plane_valley_and_blocks(tmp_path, monkeypatch):
    # projected 30 m grid: a V valley along x = 0 with walls of 40 % grade, floor at 500 m
    n = 101
    xs = (np.arange(n) - 50) * 30.0
    X = np.tile(xs, (n, 1))
    z = 500.0 + 0.4 * np.abs(X)
    tr = from_origin(500000 - 50 * 30 - 15, 3450000 + 50 * 30 + 15, 30, 30)
    path = write_dem(tmp_path / "v.tif", z, tr, "EPSG:4545", nodata=-9999.0, dtype="float32")
    pts = gpd.GeoSeries([Point(500000, 3450000), Point(500000 + 600, 3450000),
                         Point(400000, 3450000)], crs="EPSG:4545", index=["floor", "wall", "out"])
    with rasterio.open(path) as ds:
        t = terrain.point_terrain(pts, ds, slope_radius_m=100, relief_radius_m=600)
        monkeypatch.setattr(terrain.sampling, "MAX_BLOCK_CELLS", 900)
        t_small = terrain.point_terrain(pts, ds, slope_radius_m=100, relief_radius_m=600)
    assert t.loc["floor", "elevation_m"] == pytest.approx(500.0)
    assert t.loc["floor", "local_max_m"] == pytest.approx(500 + 0.4 * 600)
    assert t.loc["floor", "valley_depth_m"] == pytest.approx(240.0)
    assert t.loc["wall", "slope_deg"] == pytest.approx(math.degrees(math.atan(0.4)), abs=0.01)
    assert t.loc["wall", "local_min_m"] == pytest.approx(500.0)
    assert t.loc["out"].isna().all()
    # the floor's mean slope mixes the two walls with the Horn-smoothed floor cell
    assert 15 < t.loc["floor", "slope_deg"] < math.degrees(math.atan(0.4))
    pd_equal = (t.fillna(-1) == t_small.fillna(-1)).all().all()
    assert pd_equal  # reading in small blocks gives the same answer


def test_zonal_stats_coverage_weighted(tmp_path):
    # 4 x 4 cells of 100 m, value = 100 * (col + 1) + 1000 * row
    z = (100 * (np.arange(4)[None, :] + 1) + 1000 * np.arange(4)[:, None]).astype("float32")
    z[3, 3] = -9999.0
    tr = from_origin(0, 400, 100, 100)
    path = write_dem(tmp_path / "z.tif", z, tr, "EPSG:4545", nodata=-9999.0, dtype="float32")
    polys = gpd.GeoSeries([
        box(0, 300, 200, 400),      # cells (0,0)=100 and (0,1)=200 exactly
        box(10, 310, 20, 320),      # tiny, inside cell (0,0)
        box(50, 300, 200, 400),     # half of (0,0) and all of (0,1): mean (0.5*100+200)/1.5
        box(300, 0, 400, 200),      # (2,3)=2400 and nodata (3,3)
        box(1000, 1000, 1100, 1100),  # outside
    ], crs="EPSG:4545")
    with rasterio.open(path) as ds:
        s = terrain.zonal_stats(polys, ds, threshold_m=150)
    assert s.loc[0, "mean_m"] == pytest.approx(150.0)
    assert s.loc[0, "min_m"] == 100 and s.loc[0, "max_m"] == 200
    assert s.loc[0, "share_above_pct"] == pytest.approx(50.0)
    assert s.loc[1, "mean_m"] == pytest.approx(100.0)
    assert s.loc[1, "covered_cells"] == pytest.approx(0.01, rel=1e-9)  # exactly 1 % of the cell
    assert s.loc[2, "mean_m"] == pytest.approx((50 + 200) / 1.5)
    assert s.loc[2, "share_above_pct"] == pytest.approx(100 / 1.5)
    assert s.loc[3, "mean_m"] == pytest.approx(2400.0)
    assert s.loc[3, "nodata_pct"] == pytest.approx(50.0)
    assert s.loc[4, ["min_m", "mean_m", "max_m", "share_above_pct"]].isna().all()
    assert s.loc[4, "nodata_pct"] == 100.0 and s.loc[4, "covered_cells"] == 0.0


def test_small_windows_give_the_same_answers(tiny_dem, tmp_path, monkeypatch):
    """A DEM larger than the read budget is read in pieces with the same results."""
    pts = gpd.GeoSeries([Point(108.005, 31.025), Point(108.025, 31.005), Point(108.015, 31.015),
                         Point(107.5, 31.0)], crs="EPSG:4326")
    z = (np.arange(40 * 40).reshape(40, 40) % 97 + 100).astype("float32")
    big = write_dem(tmp_path / "big.tif", z, from_origin(0, 4000, 100, 100), "EPSG:4545",
                    nodata=-9999.0, dtype="float32")
    polys = gpd.GeoSeries([box(50, 50, 3950, 3950), box(1234, 2345, 2789, 3456)], crs="EPSG:4545")
    with rasterio.open(tiny_dem) as ds, rasterio.open(big) as bg:
        whole = terrain.sample_elevation(pts, ds)
        zs_whole = terrain.zonal_stats(polys, bg, threshold_m=150)
        monkeypatch.setattr(terrain.sampling, "MAX_WINDOW_CELLS", 1)
        monkeypatch.setattr(terrain.sampling, "MAX_BLOCK_CELLS", 7)  # 7-cell tiles
        pieces = terrain.sample_elevation(pts, ds)
        zs_pieces = terrain.zonal_stats(polys, bg, threshold_m=150)
    assert whole.equals(pieces)
    for col in ("min_m", "mean_m", "max_m", "share_above_pct", "covered_cells"):
        assert np.allclose(zs_whole[col], zs_pieces[col], rtol=1e-9, atol=1e-9), col
    # the big polygon covers 39 x 39 cells' worth of area: all cells, the border ones by half
    assert zs_whole.loc[0, "covered_cells"] == pytest.approx(39 * 39)
    assert zs_whole.loc[0, "min_m"] == 100 and zs_whole.loc[0, "max_m"] == 196


def _oracle_shares(geom, transform, height, width):
    """Each cell's share by shapely: area of (cell box & polygon) / cell area."""
    out = np.zeros((height, width))
    for r in range(height):
        for c in range(width):
            x0, y0 = transform @ (c, r + 1)
            x1, y1 = transform @ (c + 1, r)
            cell = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            out[r, c] = geom.intersection(cell).area / cell.area
    return out


@pytest.mark.parametrize("geom", [
    Polygon([(3.3, 2.1), (17.9, 5.5), (9.2, 19.4), (6.05, 11.0)]),                 # a skewed quad
    Polygon([(1, 1), (19, 1), (19, 19), (1, 19)],                                  # a square with
            [[(5.5, 5.5), (12.25, 6.0), (9.0, 14.7)]]),                             # a hole
    MultiPolygon([box(0.2, 0.2, 3.7, 2.9), Polygon([(10, 10), (14.5, 10.2), (12, 18.8)])]),
    Point(10.3, 9.7).buffer(7.77, quad_segs=64),                                  # 257 vertices
    box(5, 5, 10, 10),                                                            # on grid lines
])
def test_coverage_equals_the_exact_intersection_areas(geom):
    tr = from_origin(0, 20, 1, 1)
    want = _oracle_shares(geom, tr, 20, 20)
    got = coverage(geom, tr, 0, 0, 20, 20)
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    assert ((got > 0) == (want > MIN_SHARE)).all()  # no cell only touched along an edge counts
    # the ring's direction does not matter, nor where the window starts (cells outside: 0)
    rev = shapely.reverse(geom)
    assert np.allclose(coverage(rev, tr, 0, 0, 20, 20), want, rtol=0, atol=1e-12)
    part = coverage(geom, tr, 4, 7, 9, 6)
    assert np.allclose(part, want[4:13, 7:13], rtol=0, atol=1e-12)
    # a rotated grid of sheared, non-square cells (any affine transform): the same shares
    def aff(t):
        return [t.a, t.b, t.d, t.e, t.xoff, t.yoff]

    rot = Affine.translation(100, 50) @ Affine.rotation(30) @ Affine.shear(10, 0) @ Affine.scale(1.5, -0.8)
    g_rot = shapely.affinity.affine_transform(shapely.affinity.affine_transform(geom, aff(~tr)), aff(rot))
    assert np.allclose(coverage(g_rot, rot, 0, 0, 20, 20), want, rtol=0, atol=1e-9)


def test_min_and_max_count_every_cell_with_a_positive_share(tmp_path):
    """A sliver of 1/1000 of a cell still puts its cell's value into min and max (as exactextract
    does), while weighing 1/1000 of a cell in the mean."""
    z = np.array([[100.0, 900.0], [100.0, 100.0]], dtype="float32")
    path = write_dem(tmp_path / "s.tif", z, from_origin(0, 200, 100, 100), "EPSG:4545",
                     nodata=-9999.0, dtype="float32")
    # cell (0, 0) fully and a 0.1 m strip of cell (0, 1): share 0.001
    polys = gpd.GeoSeries([box(0, 100, 100.1, 200)], crs="EPSG:4545")
    with rasterio.open(path) as ds:
        s = terrain.zonal_stats(polys, ds, threshold_m=500)
    assert s.loc[0, "max_m"] == 900 and s.loc[0, "min_m"] == 100
    assert s.loc[0, "covered_cells"] == pytest.approx(1.001, rel=1e-12)
    assert s.loc[0, "mean_m"] == pytest.approx((100 + 0.001 * 900) / 1.001, rel=1e-12)
    assert s.loc[0, "share_above_pct"] == pytest.approx(100 * 0.001 / 1.001, rel=1e-9)


def test_cells_of_is_rowcol_with_the_edge_rule():
    """The vectorized point-to-cell step gives rasterio's rowcol(op=floor_cells) cells, points
    on and next to cell edges included (floor_cells' scalar short path too)."""
    from rasterio.transform import rowcol

    tr = from_origin(107.9, 31.7, 1 / 1200, 1 / 1200)
    rng = np.random.default_rng(3)
    cols = np.r_[rng.uniform(0, 500, 300), np.arange(50) * 1.0, np.arange(50) + 1e-5, np.arange(50) - 1e-5]
    rows = np.r_[rng.uniform(0, 500, 300), np.arange(50) * 1.0, np.arange(50) - 3e-5, np.arange(50) + 3e-4]
    xs, ys = tr @ (cols, rows)
    want_r, want_c = rowcol(tr, xs, ys, op=lambda v: np.floor(np.asarray(v, dtype="float64")
                                                             + terrain.sampling.CELL_TOL))
    got_r, got_c = terrain.sampling.cells_of(tr, xs, ys)
    assert np.array_equal(got_r, want_r) and np.array_equal(got_c, want_c)
    old_r, old_c = rowcol(tr, xs, ys, op=terrain.floor_cells)
    assert np.array_equal(old_r, want_r) and np.array_equal(old_c, want_c)
    assert np.isnan(terrain.floor_cells(float("nan")))


def _horn_whole_grid(z, transform, crs):
    """Horn's slope of the whole grid at once (slope_deg before it went by bands)."""
    from kaizhou_gis.terrain.sampling import cell_size_m

    z = np.asarray(z, dtype="float64")
    dx, dy = cell_size_m(transform, crs, z.shape[0])
    p = np.pad(z, 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[:, None])
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy[:, None])
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


@pytest.mark.parametrize("band_cells", [1, 5, 100, 1 << 15])
@pytest.mark.parametrize("shape, crs", [((31, 17), "EPSG:4326"), ((1, 6), "EPSG:4547"),
                                        ((6, 1), "EPSG:4326"), ((40, 45), "EPSG:4547")])
def test_slope_by_bands_is_the_whole_grids_slope(monkeypatch, band_cells, shape, crs):
    """slope_deg worked band by band (bands of one row to the whole grid) gives every cell the
    whole grid's value, bit for bit: across band edges, at the grid's edges, next to NaN, for an
    integer DEM."""
    from rasterio.transform import from_origin

    from kaizhou_gis.terrain import sampling

    monkeypatch.setattr(sampling, "BAND_CELLS", band_cells)
    rng = np.random.default_rng(3)
    z = np.cumsum(rng.normal(size=shape), axis=1) * 35 + 700
    t = (from_origin(108.0, 31.5, 0.0008, 0.0008) if crs == "EPSG:4326"
         else from_origin(500000.0, 3480000.0, 25.0, 25.0))
    for grid in (z.astype("int16"), np.where(np.arange(z.size).reshape(shape) % 7 == 3, np.nan, z)):
        got = sampling.slope_deg(grid, t, crs)
        assert got.dtype == np.float64 and got.shape == shape
        assert np.array_equal(got, _horn_whole_grid(grid, t, crs), equal_nan=True)
