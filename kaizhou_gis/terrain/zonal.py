"""Zonal statistics of the DEM: elevation of polygons, each cell weighted by the share of it the
polygon covers and by its ground area. The DEM is read in tiles of at most
:data:`kaizhou_gis.terrain.sampling.MAX_BLOCK_CELLS` cells.
"""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.transform import Affine

from kaizhou_gis.terrain import sampling
from kaizhou_gis.terrain.sampling import cell_size_m, read_block


def _supersample(cells: int) -> int:
    """Sub-cells per cell side used to measure how much of each cell a polygon covers."""
    return int(np.clip(np.sqrt(sampling.MAX_BLOCK_CELLS / max(cells, 1)), 1, 8))


@dataclass
class _ZonalSums:
    """Running sums of one polygon over the DEM tiles it touches."""

    w: float = 0.0       # covered ground area on valid cells
    wz: float = 0.0      # the same, times elevation
    wa: float = 0.0      # covered ground area on valid cells above the threshold
    wall: float = 0.0    # covered ground area on all cells (nodata and outside too)
    mn: float = np.inf
    mx: float = -np.inf
    cov: float = 0.0     # covered fractions of valid cells

    def add(self, z: np.ndarray, frac: np.ndarray, area: np.ndarray, threshold_m: float | None) -> None:
        """Add one tile: elevations ``z``, covered fractions ``frac``, cell areas ``area``."""
        wgt = frac * area
        good = np.isfinite(z) & (frac > 0)
        self.wall += float(wgt.sum())
        self.cov += float(frac[good].sum())
        if good.any():
            self.w += float(wgt[good].sum())
            self.wz += float((wgt[good] * z[good]).sum())
            self.mn = min(self.mn, float(z[good].min()))
            self.mx = max(self.mx, float(z[good].max()))
            if threshold_m is not None:
                self.wa += float(wgt[good & (z > threshold_m)].sum())


def _cell_window(geom, dem: DatasetReader) -> tuple[int, int, int, int]:
    """Rows ``r0:r1`` and columns ``c0:c1`` of the DEM cells around a geometry (one cell spare)."""
    inv = ~dem.transform
    minx, miny, maxx, maxy = geom.bounds
    cs = [inv @ (x, y) for x in (minx, maxx) for y in (miny, maxy)]
    c0 = int(np.floor(min(p[0] for p in cs))) - 1
    c1 = int(np.ceil(max(p[0] for p in cs))) + 1
    r0 = int(np.floor(min(p[1] for p in cs))) - 1
    r1 = int(np.ceil(max(p[1] for p in cs))) + 1
    return r0, r1, c0, c1


def _polygon_sums(geom, dem: DatasetReader, dx_all: np.ndarray, dy_all: np.ndarray, *,
                  threshold_m: float | None, band: int) -> _ZonalSums:
    """The sums of one polygon (in the DEM's CRS), tile by tile."""
    r0, r1, c0, c1 = _cell_window(geom, dem)
    acc = _ZonalSums()
    tile_rows = max(1, sampling.MAX_BLOCK_CELLS // 64 // max(c1 - c0, 1))
    tile_cols = min(c1 - c0, sampling.MAX_BLOCK_CELLS // 64)
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
            acc.add(z, frac, area, threshold_m)
    return acc


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
    geoms = polygons
    if polygons.crs is not None and dem.crs is not None and CRS(polygons.crs) != CRS(dem.crs):
        geoms = polygons.to_crs(dem.crs)
    cols_out = ["min_m", "mean_m", "max_m", "covered_cells", "nodata_pct"]
    if threshold_m is not None:
        cols_out.append("share_above_pct")
    out = pd.DataFrame(np.nan, index=polygons.index, columns=cols_out)
    dx_all, dy_all = cell_size_m(dem.transform, dem.crs, dem.height)
    for label, geom in zip(polygons.index, geoms):
        if geom is None or geom.is_empty:
            continue
        acc = _polygon_sums(geom, dem, dx_all, dy_all, threshold_m=threshold_m, band=band)
        if acc.wall <= 0:
            continue
        out.at[label, "nodata_pct"] = 100.0 * (1.0 - acc.w / acc.wall)
        out.at[label, "covered_cells"] = acc.cov
        if acc.w > 0:
            out.at[label, "min_m"] = acc.mn
            out.at[label, "max_m"] = acc.mx
            out.at[label, "mean_m"] = acc.wz / acc.w
            if threshold_m is not None:
                out.at[label, "share_above_pct"] = 100.0 * acc.wa / acc.w
    return out
