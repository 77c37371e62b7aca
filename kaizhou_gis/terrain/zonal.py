"""Zonal statistics of the DEM: elevation of polygons, each cell weighted by the exact share of it
the polygon covers and by its ground area. The DEM is read in tiles of at most
:data:`kaizhou_gis.terrain.sampling.MAX_BLOCK_CELLS` cells.

The covered share of each cell is computed exactly (to floating-point rounding), as exactextract
does, by accumulating the signed area between each polygon edge and the cell edges (the
"signed-area accumulation" of anti-aliased font rasterizers): the edges are cut at every grid
line they cross, each piece adds its trapezoid to its own cell and its height to the cells
right of it, and a running sum along each row gives the share. The cost is one pass over the
pieces (vertices plus grid-line crossings) and one over the cells of the polygon's window.
"""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window

from kaizhou_gis.terrain import sampling
from kaizhou_gis.terrain.sampling import _dem_nodata_mask, cell_size_m, read_block

#: A share of a cell below this counts as no share at all: the rounding left in a cell that the
#: polygon only touches along an edge or at a corner (about 1e-15), far below any real sliver.
MIN_SHARE = 1e-9


@dataclass
class _Pieces:
    """Polygon edges cut at every grid line, grouped by polygon (``start[i]:start[i + 1]`` are
    polygon i's): for each piece its cell (``row``, ``col``), its signed height ``dy`` (rows) and
    the position ``fx`` of its midpoint across the cell (0 at the cell's left edge, 1 at its right
    edge), signed so that a polygon's inside counts positive and its holes negative."""

    row: np.ndarray
    col: np.ndarray
    dy: np.ndarray
    fx: np.ndarray
    start: np.ndarray

    def of(self, i: int) -> _Pieces:
        """The pieces of polygon ``i``."""
        sl = slice(int(self.start[i]), int(self.start[i + 1]))
        return _Pieces(self.row[sl], self.col[sl], self.dy[sl], self.fx[sl], self.start[:0])


def _pieces(geoms: np.ndarray, inv: Affine) -> _Pieces:
    """Cut the rings of the (multi)polygons ``geoms`` at the grid lines of the raster whose inverse
    transform is ``inv`` (map coordinates -> fractional column, row). Parts that are not
    polygons (points, lines of a collection) cover nothing."""
    parts, geom_of = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, geom_of = parts[keep], geom_of[keep]
    if len(parts) == 0:
        e = np.zeros(0, dtype=np.int64)
        return _Pieces(e, e, e.astype(float), e.astype(float), np.zeros(len(geoms) + 1, dtype=np.int64))
    rings, part_of = shapely.get_rings(parts, return_index=True)
    exterior = np.r_[True, part_of[1:] != part_of[:-1]]  # each polygon's rings: exterior first
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    col = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c
    row = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f
    # the edges: consecutive vertices of one ring (rings are closed: last vertex = first)
    same = ring_of[1:] == ring_of[:-1]
    x0, y0, x1, y1 = col[:-1][same], row[:-1][same], col[1:][same], row[1:][same]
    seg_ring = ring_of[:-1][same]
    # orientation: every ring counts with the sign that makes an exterior add and a hole subtract
    ring_area = np.bincount(seg_ring, weights=x0 * y1 - x1 * y0, minlength=len(rings))
    sign = np.where(exterior, 1.0, -1.0) * np.where(ring_area >= 0, -1.0, 1.0)
    # the parameters t in (0, 1) where an edge crosses a grid line, plus its two ends
    kx0 = np.floor(np.minimum(x0, x1)).astype(np.int64) + 1
    nx = np.maximum(np.ceil(np.maximum(x0, x1)).astype(np.int64) - kx0, 0)
    ky0 = np.floor(np.minimum(y0, y1)).astype(np.int64) + 1
    ny = np.maximum(np.ceil(np.maximum(y0, y1)).astype(np.int64) - ky0, 0)
    n_seg = len(x0)
    seg = np.arange(n_seg)

    def crossings(n, k0, a0, a1):
        s = np.repeat(seg, n)
        k = k0[s] + (np.arange(len(s)) - np.repeat(np.cumsum(n) - n, n))
        return s, (k - a0[s]) / (a1[s] - a0[s])

    sx, tx = crossings(nx, kx0, x0, x1)
    sy, ty = crossings(ny, ky0, y0, y1)
    s_all = np.concatenate([seg, seg, sx, sy])
    t_all = np.concatenate([np.zeros(n_seg), np.ones(n_seg), tx, ty])
    order = np.lexsort((t_all, s_all))
    s_all, t_all = s_all[order], t_all[order]
    px = x0[s_all] + t_all * (x1[s_all] - x0[s_all])
    py = y0[s_all] + t_all * (y1[s_all] - y0[s_all])
    end = t_all == 1.0  # the far end exactly (t = 0 gives x0, y0 exactly already)
    px[end], py[end] = x1[s_all[end]], y1[s_all[end]]
    piece = s_all[1:] == s_all[:-1]  # consecutive parameters of one edge bound a piece
    xa, ya, xb, yb = px[:-1][piece], py[:-1][piece], px[1:][piece], py[1:][piece]
    seg_of = s_all[:-1][piece]
    xm, ym = 0.5 * (xa + xb), 0.5 * (ya + yb)
    c = np.floor(xm).astype(np.int64)
    r = np.floor(ym).astype(np.int64)
    geom_of_piece = geom_of[part_of[seg_ring[seg_of]]]
    start = np.searchsorted(geom_of_piece, np.arange(len(geoms) + 1))
    return _Pieces(r, c, sign[seg_ring[seg_of]] * (yb - ya), xm - c, start)


def _shares(pieces: _Pieces, row0: int, col0: int, height: int, width: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells of the window ``row0:row0+height, col0:col0+width`` the polygon covers:
    their rows and columns in the window and their covered shares (0..1]."""
    r = pieces.row - row0
    inr = (r >= 0) & (r < height)
    r, c, dy, fx = r[inr], pieces.col[inr] - col0, pieces.dy[inr], pieces.fx[inr]
    # a piece adds dy * (1 - fx) to its cell and dy to every cell right of it; pieces left of
    # the window add their dy to the window's first column, pieces right of it add nothing
    # (the spare last column of each row takes what falls beyond the window)
    w1 = width + 1
    idx = np.concatenate([r * w1 + np.clip(c, 0, width), r * w1 + np.clip(c + 1, 0, width)])
    acc = np.bincount(idx, weights=np.concatenate([dy * (1.0 - fx), dy * fx]), minlength=height * w1)
    cov = np.cumsum(acc.reshape(height, w1), axis=1, dtype=np.float64)
    hit = cov >= MIN_SHARE
    hit[:, width] = False
    k = np.flatnonzero(hit)
    rr = k // w1
    return rr, k - rr * w1, np.minimum(cov.ravel()[k], 1.0)


def coverage(geom, transform: Affine, row0: int, col0: int, height: int, width: int) -> np.ndarray:
    """The exact share (0..1) of each cell of the window ``row0:row0+height, col0:col0+width``
    of a raster with ``transform`` that the (multi)polygon ``geom`` (in the raster's CRS)
    covers; shares below :data:`MIN_SHARE` are 0."""
    rr, cc, f = _shares(_pieces(np.array([geom], dtype=object), ~transform), row0, col0, height, width)
    out = np.zeros((height, width))
    out[rr, cc] = f
    return out


class _Sums:
    """Running sums per polygon over the DEM tiles it touches."""

    def __init__(self, n: int) -> None:
        self.w = np.zeros(n)      # covered ground area on valid cells
        self.wz = np.zeros(n)     # the same, times elevation
        self.wa = np.zeros(n)     # covered ground area on valid cells above the threshold
        self.wbad = np.zeros(n)   # covered ground area on nodata cells and outside the DEM
        self.mn = np.full(n, np.inf)
        self.mx = np.full(n, -np.inf)
        self.cov = np.zeros(n)    # covered fractions of valid cells

    def add(self, i: int, z: np.ndarray, frac: np.ndarray, area: np.ndarray,
            threshold_m: float | None) -> None:
        """Add covered cells of polygon ``i``: elevations ``z`` (NaN: nodata or outside the DEM),
        covered fractions ``frac`` and ground areas ``area``, one value per cell."""
        wc = frac * area
        good = np.isfinite(z)
        if good.all():
            zg, wg = z, wc
        else:
            zg, wg = z[good], wc[good]
            self.wbad[i] += float(wc[~good].sum())
            frac = frac[good]
        if len(zg):
            self.cov[i] += float(frac.sum())
            self.w[i] += float(wg.sum())
            self.wz[i] += float((wg * zg).sum())
            self.mn[i] = min(self.mn[i], float(zg.min()))
            self.mx[i] = max(self.mx[i], float(zg.max()))
            if threshold_m is not None:
                self.wa[i] += float(wg[zg > threshold_m].sum())


class _Bands:
    """The DEM read in bands of rows ``col0:col1`` wide, each at most
    :data:`~kaizhou_gis.terrain.sampling.MAX_BLOCK_CELLS` cells, as stored (no copy as float);
    a band is reused while the cells asked for lie in it (ask in order of the windows' first
    row)."""

    def __init__(self, dem: DatasetReader, col0: int, col1: int, band: int) -> None:
        self.dem, self.band = dem, band
        self.col0, self.col1 = max(col0, 0), min(col1, dem.width)
        self.rows = max(1, sampling.MAX_BLOCK_CELLS // max(col1 - col0, 1))
        self.r0, self.raw = 0, np.empty((0, 0))

    def fits(self, r0: int, r1: int) -> bool:
        """Whether rows ``r0:r1`` fit in one band."""
        return r1 - r0 <= self.rows

    def values(self, r0: int, r1: int, c0: int, c1: int, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Elevations (float, NaN for nodata and outside the DEM) of the cells (``rr``, ``cc``)
        of the window ``r0:r1, c0:c1`` (``rr``, ``cc`` counted from its corner)."""
        lo, hi = max(r0, 0), min(r1, self.dem.height)
        if hi > lo and not (self.r0 <= lo and hi <= self.r0 + len(self.raw)):
            h = min(self.rows, self.dem.height - lo)
            self.raw = self.dem.read(self.band, masked=False, window=Window(
                self.col0, lo, self.col1 - self.col0, h))
            self.r0 = lo
        width = self.col1 - self.col0
        if lo == r0 and hi == r1 and self.col0 <= c0 and c1 <= self.col1:  # all inside the DEM
            raw = self.raw.ravel()[(rr + (r0 - self.r0)) * width + (cc + (c0 - self.col0))]
            v = raw.astype("float64")
            bad = _dem_nodata_mask(v, self.dem.nodata)
            if bad.any():
                v[bad] = np.nan
            return v
        rows, cols = rr + r0, cc + c0
        out = np.full(len(rows), np.nan)
        inside = (rows >= 0) & (rows < self.dem.height) & (cols >= self.col0) & (cols < self.col1)
        v = self.raw[rows[inside] - self.r0, cols[inside] - self.col0].astype("float64")
        v[_dem_nodata_mask(v, self.dem.nodata)] = np.nan
        out[inside] = v
        return out


def _windows(geoms: np.ndarray, inv: Affine) -> np.ndarray:
    """Rows ``r0, r1`` and columns ``c0, c1`` (int, one row per geometry) of the DEM cells around
    each geometry (one cell spare)."""
    b = shapely.bounds(geoms)
    xs = b[:, [0, 2, 0, 2]]
    ys = b[:, [1, 1, 3, 3]]
    cols = inv.a * xs + inv.b * ys + inv.c
    rows = inv.d * xs + inv.e * ys + inv.f
    return np.stack([np.floor(rows.min(axis=1)) - 1, np.ceil(rows.max(axis=1)) + 1,
                     np.floor(cols.min(axis=1)) - 1, np.ceil(cols.max(axis=1)) + 1],
                    axis=1).astype(np.int64)


def zonal_stats(polygons: gpd.GeoSeries, dem: DatasetReader, *, threshold_m: float | None = None,
                band: int = 1) -> pd.DataFrame:
    """Elevation statistics of each polygon, weighted by the share of each cell it covers.

    Each DEM cell counts with the exact fraction of its area inside the polygon times its ground
    area (which shrinks towards the poles on a geographic DEM). A polygon smaller than one cell
    therefore still gets the value of the cell(s) it lies in, instead of nothing.

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
    The covered fraction of a cell is exact (the area of the polygon inside the cell over the
    cell's area, in the DEM's grid, to floating-point rounding), as exactextract computes it.
    ``min_m`` and ``max_m`` are over every valid cell with a positive share, however small (a
    sliver along the outline counts); shares below :data:`MIN_SHARE` (1e-9 of a cell) are the
    rounding left where the polygon only touches a cell's edge or corner and count as none.
    ``mean_m`` and ``share_above_pct`` weight each cell by share x ground area; on a projected
    DEM (equal cells) that is exactextract's coverage-weighted ``mean``, on a geographic DEM the
    rows' areas differ by the cosine of the latitude (under 0.01 m on the Kaizhou townships,
    ``benchmarks/peers.py``). Polygons are expected valid (rings not crossing themselves, holes
    inside their exterior; ``shapely.make_valid`` repairs others).
    """
    geoms = polygons
    if polygons.crs is not None and dem.crs is not None and CRS(polygons.crs) != CRS(dem.crs):
        geoms = polygons.to_crs(dem.crs)
    arr = np.asarray(geoms.to_numpy(), dtype=object)
    n = len(arr)
    todo = np.flatnonzero(~(shapely.is_missing(arr) | shapely.is_empty(arr)))
    sums = _Sums(n)
    if len(todo):
        inv = ~dem.transform
        pieces = _pieces(arr, inv)
        win = np.zeros((n, 4), dtype=np.int64)
        win[todo] = _windows(arr[todo], inv)
        dx_all, dy_all = cell_size_m(dem.transform, dem.crs, dem.height)
        cell_area = dx_all * dy_all
        tile_cols = int(max(1, min(win[todo, 3].max() - win[todo, 2].min(), sampling.MAX_BLOCK_CELLS)))
        bands = _Bands(dem, int(win[todo, 2].min()), int(win[todo, 3].max()), band)
        for i in todo[np.argsort(win[todo, 0], kind="stable")]:
            r0, r1, c0, c1 = (int(v) for v in win[i])
            p = pieces.of(i)
            if bands.fits(r0, r1):  # the window in one piece, its values from the current band
                tiles = [(r0, c0, r1 - r0, c1 - c0)]
            else:  # a window taller than a band: tiles of at most MAX_BLOCK_CELLS, read one by one
                tc = min(c1 - c0, tile_cols)
                tr = max(1, sampling.MAX_BLOCK_CELLS // tc)
                tiles = [(a, b, min(tr, r1 - a), min(tc, c1 - b))
                         for a in range(r0, r1, tr) for b in range(c0, c1, tc)]
            for tr0, tc0, th, tw in tiles:
                rr, cc, frac = _shares(p, tr0, tc0, th, tw)
                if not len(rr):
                    continue
                if len(tiles) == 1:
                    z = bands.values(tr0, tr0 + th, tc0, tc0 + tw, rr, cc)
                else:
                    z = read_block(dem, tr0, tc0, th, tw, band=band)[0][rr, cc]
                area = cell_area[np.clip(rr + tr0, 0, dem.height - 1)]
                sums.add(int(i), z, frac, area, threshold_m)
    wall = sums.w + sums.wbad
    seen = wall > 0
    valid = sums.w > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        res = {"min_m": np.where(valid, sums.mn, np.nan),
               "mean_m": np.where(valid, sums.wz / sums.w, np.nan),
               "max_m": np.where(valid, sums.mx, np.nan),
               "covered_cells": np.where(seen, sums.cov, np.nan),
               "nodata_pct": np.where(seen, 100.0 * sums.wbad / wall, np.nan)}
        if threshold_m is not None:
            res["share_above_pct"] = np.where(valid, 100.0 * sums.wa / sums.w, np.nan)
    return pd.DataFrame(res, index=polygons.index)
