"""GCJ-02 ("Mars coordinates", used by Gaode/AMap and most Chinese web maps) to and from WGS84.

GCJ-02 is WGS84 plus a smooth, deliberately obfuscated offset of a few hundred metres inside
mainland China. The forward transform (WGS84 → GCJ-02) is the widely published closed formula
on the Krasovsky ellipsoid; it has no closed inverse, so :func:`gcj02_to_wgs84` solves
``wgs84_to_gcj02(x) = g`` by fixed-point iteration, which converges to well under a millimetre in
a few steps because the offset changes slowly with position. Outside the (rectangular) China
area the transform is the identity, as in the published formula.

All functions are vectorized over numpy arrays and accept scalars too.
"""
from __future__ import annotations

import logging
from typing import TypeVar, overload

import geopandas as gpd
import numpy as np
import shapely

log = logging.getLogger(__name__)

#: Semi-major axis (m) and first eccentricity squared of the Krasovsky 1940 ellipsoid used by GCJ-02.
_A = 6378245.0
_EE = 0.00669342162296594323

#: The rectangle inside which GCJ-02 applies its offset (lon_min, lat_min, lon_max, lat_max).
CHINA_BOUNDS = (72.004, 0.8293, 137.8347, 55.8271)

_G = TypeVar("_G", gpd.GeoSeries, gpd.GeoDataFrame)


def in_china(lon, lat) -> np.ndarray:
    """True where (lon, lat) lies in the rectangle where GCJ-02 differs from WGS84."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    x0, y0, x1, y1 = CHINA_BOUNDS
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 minus WGS84 in degrees (dlon, dlat) at WGS84 position (lon, lat), inside China."""
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    s6x = np.sin(6.0 * x * np.pi)
    s2x = np.sin(2.0 * x * np.pi)
    common = (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0

    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0

    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0

    rad = np.radians(lat)
    s = np.sin(rad)
    magic = 1.0 - _EE * s * s
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _as_output(arr: np.ndarray, like) -> np.ndarray | float:
    return float(arr) if np.ndim(like) == 0 else arr


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Convert WGS84 longitude/latitude (degrees) to GCJ-02.

    Parameters
    ----------
    lon, lat : array_like
        WGS84 coordinates in degrees, any matching shapes (scalars allowed).

    Returns
    -------
    (lon, lat) : tuple of ndarray (or floats for scalar input)
        GCJ-02 coordinates; unchanged outside China.
    """
    lo = np.asarray(lon, dtype=float)
    la = np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lo, la)
    inside = in_china(lo, la)
    out_lon = np.where(inside, lo + dlon, lo)
    out_lat = np.where(inside, la + dlat, la)
    return _as_output(out_lon, lon), _as_output(out_lat, lat)


@overload
def gcj02_to_wgs84(lon: float, lat: float, *, tol_deg: float = ..., max_iter: int = ...) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray, *, tol_deg: float = ...,
                   max_iter: int = ...) -> tuple[np.ndarray, np.ndarray]: ...
def gcj02_to_wgs84(lon, lat, *, tol_deg: float = 1e-9,
                   max_iter: int = 20) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Convert GCJ-02 longitude/latitude (degrees) to WGS84 by iterating the forward transform.

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 coordinates in degrees.
    tol_deg : float
        Stop when every point's correction is below this (1e-9° ≈ 0.1 mm).
    max_iter : int
        Upper bound on iterations (the default converges in about 5).

    Returns
    -------
    (lon, lat) : tuple of ndarray (or floats for scalar input)
        WGS84 coordinates; unchanged outside China.
    """
    g_lon = np.asarray(lon, dtype=float)
    g_lat = np.asarray(lat, dtype=float)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon = np.asarray(f_lon) - g_lon
        e_lat = np.asarray(f_lat) - g_lat
        w_lon = w_lon - e_lon
        w_lat = w_lat - e_lat
        err = np.nanmax(np.abs(np.concatenate([np.ravel(e_lon), np.ravel(e_lat)])), initial=0.0)
        if err < tol_deg:
            break
    else:
        log.warning("GCJ-02 inverse did not converge to %g° in %d iterations (last step %g°)",
                    tol_deg, max_iter, err)
    # points that start outside China stay as given (identity transform there)
    outside = ~in_china(g_lon, g_lat)
    w_lon = np.where(outside, g_lon, w_lon)
    w_lat = np.where(outside, g_lat, w_lat)
    return _as_output(w_lon, lon), _as_output(w_lat, lat)


def _transform_geoseries(geoms: gpd.GeoSeries, func) -> gpd.GeoSeries:
    if geoms.crs is None:
        raise ValueError("cannot convert GCJ-02 coordinates of a layer without a CRS; set the "
                         "CRS first (GCJ-02 data is geographic, e.g. EPSG:4326).")
    crs = geoms.crs
    geo = geoms if crs.is_geographic else geoms.to_crs("EPSG:4326")

    def xy(coords: np.ndarray) -> np.ndarray:
        lo, la = func(coords[:, 0], coords[:, 1])
        return np.column_stack([np.asarray(lo, dtype=float), np.asarray(la, dtype=float)])

    arr = shapely.transform(geo.values, xy)
    out = gpd.GeoSeries(arr, index=geoms.index, crs=geo.crs)
    return out if crs.is_geographic else out.to_crs(crs)


def convert_gcj02_to_wgs84(data: _G) -> _G:
    """Every vertex of a GeoSeries / GeoDataFrame converted from GCJ-02 to WGS84.

    The input must carry its CRS; geographic data are converted in place of their lon/lat,
    projected data are taken to EPSG:4326 and back. Returns a new object, the input is unchanged.
    """
    if isinstance(data, gpd.GeoDataFrame):
        out = data.copy()
        out[data.geometry.name] = _transform_geoseries(data.geometry, gcj02_to_wgs84)
        return out
    return _transform_geoseries(data, gcj02_to_wgs84)


def convert_wgs84_to_gcj02(data: _G) -> _G:
    """Every vertex of a GeoSeries / GeoDataFrame converted from WGS84 to GCJ-02 (for Gaode tiles)."""
    if isinstance(data, gpd.GeoDataFrame):
        out = data.copy()
        out[data.geometry.name] = _transform_geoseries(data.geometry, wgs84_to_gcj02)
        return out
    return _transform_geoseries(data, wgs84_to_gcj02)
