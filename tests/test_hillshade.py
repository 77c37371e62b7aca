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
    return 70.0 + 185.0 * shade  # the grey levels of the page's image (shade_to_rgba)


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
