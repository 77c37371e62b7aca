"""Terrain from the DEM: cell sizes in metres, slope, windowed block reads, the point-to-cell rule,
and terrain at points (elevation of the cell holding each point, local slope and relief around it).

Works for geographic DEMs (cell sizes converted to metres row by row on the ellipsoid) and for
projected ones. Reads are windowed: only the part of the DEM that is needed is read.
"""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Geod
from rasterio.io import DatasetReader
from rasterio.transform import Affine, rowcol
from rasterio.windows import Window

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
    rows, cols, inside = _point_rowcol(points, dem)
    if not inside.any():
        return out
    r0, r1 = rows[inside].min(), rows[inside].max() + 1
    c0, c1 = cols[inside].min(), cols[inside].max() + 1
    values = np.full(len(points), np.nan)
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

    NaN cells propagate to their neighbours; edge cells use the nearest interior values. Worked
    band by band (:func:`padded_bands`): the same values as on the whole grid at once.
    """
    z = np.asarray(elevation)
    dx, dy = cell_size_m(transform, crs, z.shape[0])
    out = np.empty(z.shape, dtype="float64")
    for r0, r1, p in padded_bands(z):
        a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
        d, f = p[1:-1, :-2], p[1:-1, 2:]
        g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
        dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[r0:r1, None])
        dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy[r0:r1, None])
        out[r0:r1] = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    return out


#: Cells of a band of :func:`padded_bands`: a band's float64 temporaries (256 KB each) stay in a
#: core's cache. Bands of 25-50 thousand cells were fastest on the benchmark machine; the whole
#: ten-million-cell grid of a print sheet at once was some seven times slower.
BAND_CELLS = 1 << 15


def padded_bands(z: np.ndarray, *, scale: float = 1.0):
    """The grid ``z`` in bands of whole rows (about :data:`BAND_CELLS` cells), for
    3x3 neighbourhood arithmetic that keeps its temporaries in the CPU's cache: yields
    ``(r0, r1, p)`` for rows ``r0:r1``, where ``p`` is those rows of
    ``np.pad(z.astype("float64") * scale, 1, mode="edge")`` with the padded row above and below
    (rows ``r0:r1 + 2`` of it): a cell's neighbours are the whole grid's, the grid's edge rows
    and columns repeated at its border, so a band computes what the whole grid would."""
    rows, cols = z.shape
    n = max(1, BAND_CELLS // (cols + 2))
    for r0 in range(0, rows, n):
        r1 = min(rows, r0 + n)
        src = np.asarray(z[max(r0 - 1, 0):min(r1 + 1, rows)], dtype="float64")
        if scale != 1.0:
            src = src * scale
        p = np.empty((r1 - r0 + 2, cols + 2), dtype="float64")
        top = 1 if r0 > 0 else 0  # src starts with the row above the band
        p[1 - top:1 - top + len(src), 1:-1] = src
        if r0 == 0:
            p[0, 1:-1] = src[0]
        if r1 == rows:
            p[-1, 1:-1] = src[-1]
        p[:, 0] = p[:, 1]
        p[:, -1] = p[:, -2]
        yield r0, r1, p


# --------------------------------------------------------------------------------------------
# Windowed reads and local statistics around points
# --------------------------------------------------------------------------------------------

#: Largest block (cells) that the local and zonal statistics read and process at once. Points or
#: polygons needing more are handled in several blocks, so a DEM larger than memory works.
MAX_BLOCK_CELLS = 4_000_000


def read_block(dem: DatasetReader, row0: int, col0: int, height: int, width: int, *,
               band: int = 1) -> tuple[np.ndarray, Affine]:
    """Read a block of the DEM as float64 with NaN for nodata and for cells outside the raster.

    The block may extend beyond the raster on any side (it is padded with NaN), so callers can ask
    for a margin around points near the edge. Only the part inside the raster is read.

    Parameters
    ----------
    dem
        Open DEM dataset.
    row0, col0
        Row and column of the block's upper-left cell (may be negative).
    height, width
        Block size in cells.
    band
        Band to read.

    Returns
    -------
    (array, transform)
        The block and its affine transform.
    """
    out = np.full((max(height, 0), max(width, 0)), np.nan, dtype="float64")
    r_lo, r_hi = max(row0, 0), min(row0 + height, dem.height)
    c_lo, c_hi = max(col0, 0), min(col0 + width, dem.width)
    if r_hi > r_lo and c_hi > c_lo:
        data = dem.read(band, window=Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo), masked=False)
        data = data.astype("float64")
        data[_dem_nodata_mask(data, dem.nodata)] = np.nan
        out[r_lo - row0:r_hi - row0, c_lo - col0:c_hi - col0] = data
    transform = dem.transform @ Affine.translation(col0, row0)
    return out, transform


#: A point within this share of a cell's width of a cell edge counts as on the edge and takes the
#: cell to its right / below (the cell ``floor`` gives for a point exactly on the edge). Vertices
#: and sample points often lie exactly on cell edges (roads digitized on a DEM's cell centres,
#: sampled halfway between them); there float noise of the coordinates (a File Geodatabase's
#: 0.1 mm grid is ~1e-6 of a 90 m cell; a point interpolated along a line in the work CRS lands
#: up to ~1e-5 of a cell off the edge in the DEM's CRS) would otherwise decide between the two
#: cells. 1e-4 of a cell is 9 mm on a 3" (90 m) DEM, 3 mm on a 30 m one.
CELL_TOL = 1e-4


def floor_cells(v):
    """``floor`` of fractional row/column numbers, ``CELL_TOL`` short of each cell edge (the
    ``op`` of :func:`rasterio.transform.rowcol` everywhere a point is put into a DEM cell).

    rasterio calls an ``op`` that is not a numpy ufunc once per coordinate, so a single float
    takes the short path (the same double, floored by :func:`math.floor`); for arrays,
    :func:`cells_of` does the whole conversion in one step."""
    if isinstance(v, float) and math.isfinite(v):  # numpy.float64 included
        return np.float64(math.floor(v + CELL_TOL))
    return np.floor(np.asarray(v, dtype="float64") + CELL_TOL)


def cells_of(transform: Affine, xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (float arrays) of the cells holding the points (``xs``, ``ys``):
    ``rasterio.transform.rowcol(transform, xs, ys, op=floor_cells)`` in one vectorized step.

    The fractional positions come from rasterio's own affine arithmetic (``op=np.positive``: a
    ufunc rasterio applies in place, the identity on floats), so the cells are the same."""
    r, c = rowcol(transform, np.asarray(xs, dtype="float64"), np.asarray(ys, dtype="float64"),
                  op=np.positive)
    return floor_cells(np.asarray(r, dtype="float64")), floor_cells(np.asarray(c, dtype="float64"))


def _point_rowcol(points: gpd.GeoSeries, dem: DatasetReader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column (int) of each point in the DEM grid and a mask of points inside the raster."""
    pts = points
    if points.crs is not None and dem.crs is not None and CRS(points.crs) != CRS(dem.crs):
        pts = points.to_crs(dem.crs)
    arr = np.asarray(pts.to_numpy(), dtype=object)
    valid = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    xs = np.full(len(pts), np.nan)
    ys = np.full(len(pts), np.nan)
    if valid.any():
        if (shapely.get_type_id(arr[valid]) == 0).all():  # points: one coordinate each
            xy = shapely.get_coordinates(arr[valid])
            xs[valid], ys[valid] = xy[:, 0], xy[:, 1]
        else:  # raises the GeoPandas error for a geometry that is not a point
            xs[valid] = pts[valid].x.to_numpy()
            ys[valid] = pts[valid].y.to_numpy()
    ok = np.isfinite(xs) & np.isfinite(ys)
    rows = np.full(len(pts), -1, dtype=np.int64)
    cols = np.full(len(pts), -1, dtype=np.int64)
    if ok.any():
        r, c = cells_of(dem.transform, xs[ok], ys[ok])
        rows[ok], cols[ok] = np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)
    inside = ok & (rows >= 0) & (rows < dem.height) & (cols >= 0) & (cols < dem.width)
    return rows, cols, inside


def _split_groups(idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, margin_r: int,
                  margin_c: int, max_cells: int) -> list[np.ndarray]:
    """Split point indices into groups whose bounding window (plus margins) fits ``max_cells``."""
    if len(idx) == 0:
        return []
    r, c = rows[idx], cols[idx]
    h = int(r.max() - r.min()) + 1 + 2 * margin_r
    w = int(c.max() - c.min()) + 1 + 2 * margin_c
    if h * w <= max_cells or len(idx) == 1:
        return [idx]
    key = r if (r.max() - r.min()) >= (c.max() - c.min()) else c
    order = idx[np.argsort(key, kind="stable")]
    half = len(order) // 2
    return (_split_groups(order[:half], rows, cols, margin_r, margin_c, max_cells)
            + _split_groups(order[half:], rows, cols, margin_r, margin_c, max_cells))


def _disc_values(arr: np.ndarray, rr: int, cc: int, radius_m: float, dx: float, dy: float) -> np.ndarray:
    """The finite values of ``arr`` in the cells whose centres lie within ``radius_m`` metres of
    cell (``rr``, ``cc``), for cells ``dx`` x ``dy`` metres (the cell itself always counts)."""
    kr, kc = int(radius_m // dy), int(radius_m // dx)
    sub = arr[rr - kr:rr + kr + 1, cc - kc:cc + kc + 1]
    oy = (np.arange(-kr, kr + 1) * dy)[:, None]
    ox = (np.arange(-kc, kc + 1) * dx)[None, :]
    disc = (ox ** 2 + oy ** 2) <= radius_m ** 2 + 1e-9
    vals = sub[disc]
    return vals[np.isfinite(vals)]


def point_terrain(points: gpd.GeoSeries, dem: DatasetReader, *, slope_radius_m: float,
                  relief_radius_m: float, band: int = 1) -> pd.DataFrame:
    """Local terrain around each point: mean slope and the highest and lowest ground nearby.

    Parameters
    ----------
    points
        Points in any CRS (reprojected to the DEM's CRS).
    dem
        Open DEM dataset (geographic or projected CRS).
    slope_radius_m
        Radius (metres) of the disc over which the slope is averaged.
    relief_radius_m
        Radius (metres) of the disc searched for the highest and lowest cells.
    band
        Band to read.

    Returns
    -------
    pandas.DataFrame
        Aligned to ``points.index`` with ``elevation_m`` (the cell holding the point, as
        :func:`sample_elevation`), ``slope_deg`` (mean Horn slope of the cells whose centres lie
        within ``slope_radius_m``; the point's own cell always counts), ``local_max_m`` and
        ``local_min_m`` (within ``relief_radius_m``) and ``valley_depth_m`` (``local_max_m -
        elevation_m``: how far the surrounding ground rises above the point). NaN for points
        outside the DEM or on nodata.

    Notes
    -----
    Distances are measured in metres on the ground: on a geographic DEM the cell width and
    height at each point's latitude come from :func:`cell_size_m`. The DEM is read in blocks of
    at most :data:`MAX_BLOCK_CELLS` cells around groups of points.
    """
    if slope_radius_m < 0 or relief_radius_m < 0:
        raise ValueError("point_terrain: radii must not be negative")
    n = len(points)
    res = {k: np.full(n, np.nan) for k in
           ("elevation_m", "slope_deg", "local_max_m", "local_min_m")}
    rows, cols, inside = _point_rowcol(points, dem)
    if inside.any():
        dx_all, dy_all = cell_size_m(dem.transform, dem.crs, dem.height)
        radius = max(slope_radius_m, relief_radius_m)
        dx_min = float(dx_all[rows[inside]].min())
        dy_min = float(dy_all[rows[inside]].min())
        mr = int(np.ceil(radius / dy_min)) + 2  # +1 for the slope kernel, +1 spare
        mc = int(np.ceil(radius / dx_min)) + 2
        for grp in _split_groups(np.flatnonzero(inside), rows, cols, mr, mc, MAX_BLOCK_CELLS):
            r0 = int(rows[grp].min()) - mr
            c0 = int(cols[grp].min()) - mc
            h = int(rows[grp].max()) - r0 + 1 + mr
            w = int(cols[grp].max()) - c0 + 1 + mc
            z, tr = read_block(dem, r0, c0, h, w, band=band)
            s = slope_deg(z, tr, dem.crs)
            for i in grp:
                rr, cc = int(rows[i]) - r0, int(cols[i]) - c0
                dx, dy = float(dx_all[rows[i]]), float(dy_all[rows[i]])
                res["elevation_m"][i] = z[rr, cc]
                vals = _disc_values(s, rr, cc, slope_radius_m, dx, dy)
                if vals.size:
                    res["slope_deg"][i] = vals.mean()
                vals = _disc_values(z, rr, cc, relief_radius_m, dx, dy)
                if vals.size:
                    res["local_max_m"][i] = vals.max()
                    res["local_min_m"][i] = vals.min()
    out = pd.DataFrame(res, index=points.index)
    out.loc[out["elevation_m"].isna(), ["slope_deg", "local_max_m", "local_min_m"]] = np.nan
    out["valley_depth_m"] = out["local_max_m"] - out["elevation_m"]
    return out
