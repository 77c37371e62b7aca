"""Terrain from the DEM: elevation at points, slope, zonal statistics.

Works for geographic DEMs (cell sizes converted to metres row by row on the ellipsoid) and for
projected ones. Reads are windowed: only the part of the DEM that is needed is read.
"""
from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Geod
from rasterio.io import DatasetReader
from rasterio.transform import Affine, rowcol
from rasterio.windows import Window

log = logging.getLogger(__name__)

#: Largest window (cells) read in one piece by :func:`sample_elevation`.
MAX_WINDOW_CELLS = 32_000_000


def _dem_nodata_mask(values: np.ndarray, nodata) -> np.ndarray:
    bad = ~np.isfinite(values)
    if nodata is not None and np.isfinite(nodata):
        bad |= values == nodata
    return bad


def sample_elevation(points: gpd.GeoSeries, dem: DatasetReader, *, band: int = 1) -> pd.Series:
    """Elevation (m) at each point; NaN where the DEM has nodata or the point lies outside it.

    The value is that of the DEM cell holding the point (no interpolation), so it equals a direct
    read of that cell. Points are reprojected to the DEM's CRS first.
    """
    out = pd.Series(np.nan, index=points.index, dtype="float64", name="elevation_m")
    if len(points) == 0:
        return out
    pts = points
    if points.crs is not None and dem.crs is not None and CRS(points.crs) != CRS(dem.crs):
        pts = points.to_crs(dem.crs)
    valid = ~(pts.is_empty | pts.isna())
    xs = np.full(len(pts), np.nan)
    ys = np.full(len(pts), np.nan)
    xs[valid.to_numpy()] = pts[valid].x.to_numpy()
    ys[valid.to_numpy()] = pts[valid].y.to_numpy()
    ok = np.isfinite(xs) & np.isfinite(ys)
    rows = np.full(len(pts), -1, dtype=np.int64)
    cols = np.full(len(pts), -1, dtype=np.int64)
    if ok.any():
        r, c = rowcol(dem.transform, xs[ok], ys[ok], op=np.floor)
        rows[ok], cols[ok] = np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)
    inside = ok & (rows >= 0) & (rows < dem.height) & (cols >= 0) & (cols < dem.width)
    if not inside.any():
        return out
    r0, r1 = rows[inside].min(), rows[inside].max() + 1
    c0, c1 = cols[inside].min(), cols[inside].max() + 1
    values = np.full(len(pts), np.nan)
    if (r1 - r0) * (c1 - c0) <= MAX_WINDOW_CELLS:
        block = dem.read(band, window=Window(c0, r0, c1 - c0, r1 - r0), masked=False)
        values[inside] = block[rows[inside] - r0, cols[inside] - c0]
    else:  # scattered points over a huge DEM: one small read per point
        for i in np.flatnonzero(inside):
            values[i] = dem.read(band, window=Window(cols[i], rows[i], 1, 1))[0, 0]
    values[inside & _dem_nodata_mask(values, dem.nodata)] = np.nan
    out[:] = values
    return out


def cell_size_m(transform: Affine, crs, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell width and height in metres for each row of a north-up raster.

    For a geographic CRS the sizes are geodesic distances on the CRS's ellipsoid at each row's
    centre latitude; for a projected CRS they are the constant pixel sizes in the CRS's unit
    converted to metres.
    """
    crs = CRS(crs)
    if crs.is_geographic:
        geod = Geod(ellps="WGS84") if crs.ellipsoid is None else Geod(
            a=crs.ellipsoid.semi_major_metre, rf=crs.ellipsoid.inverse_flattening or 298.257223563)
        lat = transform.f + (np.arange(height) + 0.5) * transform.e
        lon0 = transform.c
        _, _, dx = geod.inv(np.full(height, lon0), lat, np.full(height, lon0 + abs(transform.a)), lat)
        _, _, dy = geod.inv(np.full(height, lon0), lat - abs(transform.e) / 2,
                            np.full(height, lon0), lat + abs(transform.e) / 2)
        return np.asarray(dx), np.asarray(dy)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return (np.full(height, abs(transform.a) * unit), np.full(height, abs(transform.e) * unit))


def slope_deg(elevation: np.ndarray, transform: Affine, crs) -> np.ndarray:
    """Slope in degrees of a north-up elevation grid (Horn's 3x3 method, metres on both axes).

    NaN cells propagate to their neighbours; edge cells use the nearest interior values.
    """
    z = np.asarray(elevation, dtype="float64")
    dx, dy = cell_size_m(transform, crs, z.shape[0])
    p = np.pad(z, 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[:, None])
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy[:, None])
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
