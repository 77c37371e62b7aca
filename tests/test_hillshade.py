"""The HTML maps' hillshade backgrounds (kaizhou_gis.maps.hillshade.read_hillshade): shaded on a
grid of about half a DEM cell and resampled to the image, they agree with shading every
pixel of the image; an integer DEM is interpolated in float (no whole-metre terraces)."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from kaizhou_gis.maps import hillshade as hs

SUN = dict(azimuth_deg=315.0, altitude_deg=45.0)


def _grey(shade: np.ndarray) -> np.ndarray:
    return 70.0 + 185.0 * shade  # the grey levels of the page's image (hs.shade_to_png draws the nearest of its greys)


@pytest.fixture(scope="module")
def shipped():
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.plan import load_plan

    layers = load_layers(None, plan=load_plan())
    with layers.open_dem() as dem:
        yield layers, dem


def test_township_background_agrees_with_shading_every_pixel(shipped, monkeypatch):
    """Three townships of the shipped DEM at the township image width (900 px over some 60-200
    DEM cells): the grey of the image agrees with shading every pixel to a couple of grey levels."""
    layers, dem = shipped
    tw = layers.townships.to_crs(4326)
    for i in (0, 3, 12):
        w, s, e, n = tw.geometry.iloc[i].bounds
        box = (w - 0.005, s - 0.005, e + 0.005, n + 0.005)
        new = hs.read_hillshade(dem, box, width_px=900, **SUN)
        with monkeypatch.context() as m:
            m.setattr(hs, "SHADE_OVERSAMPLE", 1e9)  # every pixel of the image shaded
            every = hs.read_hillshade(dem, box, width_px=900, **SUN)
        assert new.shade.shape == every.shade.shape
        assert new.shade.shape[1] == 900 and new.bounds == every.bounds
        a, b = _grey(new.shade), _grey(every.shade)
        ok = np.isfinite(a) & np.isfinite(b)
        assert ok.mean() > 0.99 and b[ok].std() > 5  # relief, inside the DEM
        assert np.abs(a - b)[ok].mean() < 3.0
        assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.98


def test_district_background_is_averaged_down_as_before(shipped):
    """An image no finer than the DEM (the district's, 1200 px over ~1200 cells) is the DEM
    averaged to the image's pixels and shaded there: no second resampling."""
    layers, dem = shipped
    w, s, e, n = layers.boundary.to_crs(4326).total_bounds
    h = hs.read_hillshade(dem, (w, s, e, n), width_px=600, **SUN)
    assert h.shade.shape[1] == 600
    win = rasterio.windows.from_bounds(w, s, e, n, transform=dem.transform).round_offsets().round_lengths()
    z = dem.read(1, window=win, out_shape=h.shade.shape, masked=True,
                 resampling=rasterio.enums.Resampling.average).astype("float64").filled(np.nan)
    t = rasterio.transform.from_bounds(*dem.window_bounds(win), h.shade.shape[1], h.shade.shape[0])
    ref = hs.hillshade(np.where(np.isfinite(z), z, np.nanmean(z)), t, dem.crs, **SUN)
    ok = np.isfinite(z)
    assert np.array_equal(np.isfinite(h.shade), ok)
    assert np.allclose(h.shade[ok], ref[ok])


def test_integer_dem_is_interpolated_in_float(tmp_path):
    """A gentle slope stored in whole metres (int16) shades evenly: read through GDAL's resampling
    the fine grid would hold whole-metre terraces (bands of flat and steep cells)."""
    res = 1 / 1200
    z = np.tile(np.arange(40, dtype=float) * 3.0, (30, 1)).astype("int16")  # 3 m per 70 m cell
    path = tmp_path / "slope.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=1, dtype="int16",
                       crs="EPSG:4326", transform=from_origin(108.0, 31.0, res, res)) as ds:
        ds.write(z, 1)
    with rasterio.open(path) as ds:
        h = hs.read_hillshade(ds, (108.0 + 5 * res, 31.0 - 25 * res, 108.0 + 35 * res, 31.0 - 5 * res),
                              width_px=600, azimuth_deg=270.0, altitude_deg=45.0)
    inner = h.shade[20:-20, 20:-20]
    assert inner.shape[1] > 500
    # an even slope: one shade everywhere (terraces would swing it by tenths)
    assert np.nanmax(inner) - np.nanmin(inner) < 0.01
    assert np.nanmean(inner) > np.sin(np.radians(45))  # faces the western sun


def test_nodata_stays_transparent_at_the_image_size(tmp_path):
    """Cells without data stay NaN (transparent) in the resampled image, where they are."""
    res = 1 / 1200
    z = np.full((40, 40), 500, dtype="int16")
    z[:, 30:] = -32768  # the eastern quarter has no data
    path = tmp_path / "nd.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=1, dtype="int16",
                       crs="EPSG:4326", transform=from_origin(108.0, 31.0, res, res), nodata=-32768) as ds:
        ds.write(z, 1)
    with rasterio.open(path) as ds:
        h = hs.read_hillshade(ds, (108.0, 31.0 - 40 * res, 108.0 + 40 * res, 31.0), width_px=800, **SUN)
    nan_cols = np.isnan(h.shade).all(axis=0)
    assert h.shade.shape == (800, 800)
    assert not nan_cols[:580].any() and nan_cols[620:].all()  # data ends at 3/4 of the width
    assert np.allclose(h.shade[~np.isnan(h.shade)], np.sin(np.radians(45)), atol=1e-4)  # flat


@pytest.mark.parametrize("with_inside", [False, True])
def test_background_png_holds_the_nearest_grey_of_each_pixel(with_inside):
    """The overlay PNG (hs.shade_to_png), decoded by Pillow: in Web-Mercator rows, each pixel the
    grey of the palette nearest its shade (within half a step of the exact grey), transparent
    where no DEM, at 45 % opacity outside the highlighted area and opaque inside."""
    import io

    from PIL import Image

    rng = np.random.default_rng(7)
    shade = rng.random((301, 47)).astype("float32")
    shade[0, 0], shade[1, 1] = 0.0, 1.0
    shade[5:9, 3:6] = np.nan
    inside = np.zeros(shade.shape, dtype=bool)
    inside[20:, 10:] = True
    bounds = (108.0, 25.0, 110.0, 35.0)  # ten degrees of latitude: Mercator rows are not lon/lat rows
    png = hs.shade_to_png(shade, bounds, inside=inside if with_inside else None)
    im = Image.open(io.BytesIO(png))
    assert im.mode == "P" and im.size == (47, 301)
    rgba = np.asarray(im.convert("RGBA")).astype(float)
    rows = hs.to_web_mercator_rows(np.arange(301), bounds)
    assert not np.array_equal(rows, np.arange(301))
    exact = 70.0 + 185.0 * shade[rows]
    ok = ~np.isnan(exact)
    step = 185.0 / (hs.BACKGROUND_GREYS - 1)
    assert np.abs(rgba[..., 0] - exact)[ok].max() <= step / 2 + 0.5
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all()
    assert len(np.unique(rgba[..., 0][ok])) == hs.BACKGROUND_GREYS  # the whole range, 70 to 255
    assert rgba[..., 0][ok].min() == 70 and rgba[..., 0][ok].max() == 255
    alpha = rgba[..., 3]
    assert (alpha[~ok] == 0).all()
    want = np.where(inside[rows], 255, 114) if with_inside else np.full(alpha.shape, 255)
    assert (alpha[ok] == want[ok]).all()


def _whole_grid_shade(z, transform, crs, *, azimuth_deg, altitude_deg, z_factor=1.0):
    """The shade of the whole grid at once (the formula of hs.hillshade before it went by bands)."""
    import math

    from kaizhou_gis.terrain import cell_size_m

    z = np.asarray(z, dtype="float64") * z_factor
    dx, dy = cell_size_m(transform, crs, z.shape[0])
    p = np.pad(z, 1, mode="edge")
    dzdx = (p[1:-1, 2:] - p[1:-1, :-2]) / (2.0 * dx[:, None])
    dzdy = (p[:-2, 1:-1] - p[2:, 1:-1]) / (2.0 * dy[:, None])
    zen, az = math.radians(90.0 - altitude_deg), math.radians(azimuth_deg)
    shade = dzdx * (-math.sin(zen) * math.sin(az)) - dzdy * (math.sin(zen) * math.cos(az)) + math.cos(zen)
    return np.clip(shade / np.sqrt(dzdx * dzdx + dzdy * dzdy + 1.0), 0.0, 1.0)


@pytest.mark.parametrize("band_cells", [1, 7, 64, 1 << 15])
@pytest.mark.parametrize("shape, crs", [((37, 23), "EPSG:4326"), ((1, 9), "EPSG:4326"),
                                        ((9, 1), "EPSG:4547"), ((50, 41), "EPSG:4547")])
def test_hillshade_by_bands_is_the_whole_grids_shade(monkeypatch, band_cells, shape, crs):
    """Shaded band by band (bands of one row to the whole grid), every cell has the value of the
    whole grid shaded at once, bit for bit, across band edges, at the grid's edges, next to NaN,
    with a z factor; as float32 it is that value rounded."""
    from kaizhou_gis.terrain import sampling

    monkeypatch.setattr(sampling, "BAND_CELLS", band_cells)
    rng = np.random.default_rng(7)
    z = (np.cumsum(rng.normal(size=shape), axis=0) * 40 + 600).astype("float32")
    if shape[0] > 5 and shape[1] > 5:
        z[3:5, 2:4] = np.nan
    t = (from_origin(108.0, 31.5, 0.0008, 0.0008) if crs == "EPSG:4326"
         else from_origin(500000.0, 3480000.0, 25.0, 25.0))
    ref = _whole_grid_shade(z, t, crs, z_factor=1.5, **SUN)
    got = hs.hillshade(z, t, crs, z_factor=1.5, **SUN)
    assert got.dtype == np.float64 and np.array_equal(got, ref, equal_nan=True)
    assert np.isnan(got).any() == (shape[0] > 5 and shape[1] > 5)
    got32 = hs.hillshade(z, t, crs, z_factor=1.5, dtype="float32", **SUN)
    assert got32.dtype == np.float32 and np.array_equal(got32, ref.astype("float32"), equal_nan=True)
