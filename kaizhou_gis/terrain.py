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
    ``op`` of :func:`rasterio.transform.rowcol` everywhere a point is put into a DEM cell)."""
    return np.floor(np.asarray(v, dtype="float64") + CELL_TOL)


def _point_rowcol(points: gpd.GeoSeries, dem: DatasetReader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column (int) of each point in the DEM grid and a mask of points inside the raster."""
    pts = points
    if points.crs is not None and dem.crs is not None and CRS(points.crs) != CRS(dem.crs):
        pts = points.to_crs(dem.crs)
    valid = ~(pts.is_empty | pts.isna()).to_numpy()
    xs = np.full(len(pts), np.nan)
    ys = np.full(len(pts), np.nan)
    if valid.any():
        xs[valid] = pts[valid].x.to_numpy()
        ys[valid] = pts[valid].y.to_numpy()
    ok = np.isfinite(xs) & np.isfinite(ys)
    rows = np.full(len(pts), -1, dtype=np.int64)
    cols = np.full(len(pts), -1, dtype=np.int64)
    if ok.any():
        r, c = rowcol(dem.transform, xs[ok], ys[ok], op=floor_cells)
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
                for radius_m, arr, kind in ((slope_radius_m, s, "slope"),
                                            (relief_radius_m, z, "relief")):
                    kr, kc = int(radius_m // dy), int(radius_m // dx)
                    sub = arr[rr - kr:rr + kr + 1, cc - kc:cc + kc + 1]
                    oy = (np.arange(-kr, kr + 1) * dy)[:, None]
                    ox = (np.arange(-kc, kc + 1) * dx)[None, :]
                    disc = (ox ** 2 + oy ** 2) <= radius_m ** 2 + 1e-9
                    vals = sub[disc]
                    vals = vals[np.isfinite(vals)]
                    if vals.size == 0:
                        continue
                    if kind == "slope":
                        res["slope_deg"][i] = vals.mean()
                    else:
                        res["local_max_m"][i] = vals.max()
                        res["local_min_m"][i] = vals.min()
    out = pd.DataFrame(res, index=points.index)
    out.loc[out["elevation_m"].isna(), ["slope_deg", "local_max_m", "local_min_m"]] = np.nan
    out["valley_depth_m"] = out["local_max_m"] - out["elevation_m"]
    return out


# --------------------------------------------------------------------------------------------
# Zonal statistics
# --------------------------------------------------------------------------------------------

def _supersample(cells: int) -> int:
    """Sub-cells per cell side used to measure how much of each cell a polygon covers."""
    return int(np.clip(np.sqrt(MAX_BLOCK_CELLS / max(cells, 1)), 1, 8))


def zonal_stats(polygons: gpd.GeoSeries, dem: DatasetReader, *, threshold_m: float | None = None,
                band: int = 1) -> pd.DataFrame:
    """Elevation statistics of each polygon, weighted by the share of each cell it covers.

    Each DEM cell counts with the fraction of its area inside the polygon (measured on a grid of
    8 x 8 sub-cells, see Notes) times its ground area (which shrinks towards the poles on a
    geographic DEM). A polygon smaller than one cell therefore still gets the value of the
    cell(s) it lies in, instead of nothing.

    Parameters
    ----------
    polygons
        Polygons in any CRS (reprojected to the DEM's CRS).
    dem
        Open DEM dataset.
    threshold_m
        When given, also report the area share above this elevation (strictly greater).
    band
        Band to read.

    Returns
    -------
    pandas.DataFrame
        Aligned to ``polygons.index``: ``min_m``, ``mean_m``, ``max_m``, ``covered_cells`` (sum
        of covered fractions), ``nodata_pct`` (area share of the polygon on nodata or outside the
        DEM) and, with ``threshold_m``, ``share_above_pct``. NaN where the polygon has no valid
        cell.

    Notes
    -----
    Coverage is measured on 8 x 8 sub-cells per cell (GDAL rasterization: a sub-cell is inside
    when its centre is), so shares are multiples of 1/64. ``min_m`` and ``max_m`` are over the
    valid cells with a share of at least one sub-cell (1/64): a cell that the polygon clips by
    less, e.g. a sliver along the outline, is left out of min and max (and weighs nothing in the
    mean). exactextract, which computes the exact covered fraction, counts every cell with a
    positive share in its min and max; the means agree within 0.1 m on the Kaizhou
    townships (``benchmarks/peers.py``).
    """
    from rasterio.features import rasterize

    geoms = polygons
    if polygons.crs is not None and dem.crs is not None and CRS(polygons.crs) != CRS(dem.crs):
        geoms = polygons.to_crs(dem.crs)
    cols_out = ["min_m", "mean_m", "max_m", "covered_cells", "nodata_pct"]
    if threshold_m is not None:
        cols_out.append("share_above_pct")
    out = pd.DataFrame(np.nan, index=polygons.index, columns=cols_out)
    inv = ~dem.transform
    dx_all, dy_all = cell_size_m(dem.transform, dem.crs, dem.height)
    for label, geom in zip(polygons.index, geoms):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        cs = [inv @ (x, y) for x in (minx, maxx) for y in (miny, maxy)]
        c0 = int(np.floor(min(p[0] for p in cs))) - 1
        c1 = int(np.ceil(max(p[0] for p in cs))) + 1
        r0 = int(np.floor(min(p[1] for p in cs))) - 1
        r1 = int(np.ceil(max(p[1] for p in cs))) + 1
        acc = dict(w=0.0, wz=0.0, wa=0.0, wall=0.0, mn=np.inf, mx=-np.inf, cov=0.0)
        tile_rows = max(1, MAX_BLOCK_CELLS // 64 // max(c1 - c0, 1))
        tile_cols = min(c1 - c0, MAX_BLOCK_CELLS // 64)
        for tr0 in range(r0, r1, tile_rows):
            for tc0 in range(c0, c1, tile_cols):
                th, tw = min(tile_rows, r1 - tr0), min(tile_cols, c1 - tc0)
                z, tr = read_block(dem, tr0, tc0, th, tw, band=band)
                k = _supersample(th * tw)
                fine = rasterize([(geom, 1)], out_shape=(th * k, tw * k),
                                 transform=tr @ Affine.scale(1.0 / k), fill=0, dtype="uint8")
                frac = fine.reshape(th, k, tw, k).sum(axis=(1, 3)) / float(k * k)
                if not frac.any():
                    continue
                rows_idx = np.clip(np.arange(tr0, tr0 + th), 0, dem.height - 1)
                area = (dx_all[rows_idx] * dy_all[rows_idx])[:, None]
                wgt = frac * area
                good = np.isfinite(z) & (frac > 0)
                acc["wall"] += float(wgt.sum())
                acc["cov"] += float(frac[good].sum())
                if good.any():
                    acc["w"] += float(wgt[good].sum())
                    acc["wz"] += float((wgt[good] * z[good]).sum())
                    acc["mn"] = min(acc["mn"], float(z[good].min()))
                    acc["mx"] = max(acc["mx"], float(z[good].max()))
                    if threshold_m is not None:
                        acc["wa"] += float(wgt[good & (z > threshold_m)].sum())
        if acc["wall"] <= 0:
            continue
        out.at[label, "nodata_pct"] = 100.0 * (1.0 - acc["w"] / acc["wall"])
        out.at[label, "covered_cells"] = acc["cov"]
        if acc["w"] > 0:
            out.at[label, "min_m"] = acc["mn"]
            out.at[label, "max_m"] = acc["mx"]
            out.at[label, "mean_m"] = acc["wz"] / acc["w"]
            if threshold_m is not None:
                out.at[label, "share_above_pct"] = 100.0 * acc["wa"] / acc["w"]
    return out
