"""The DEM window held in memory for the road network (edge grades, the access step and the
new-link search read it once), and the terrain class of a slope."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.transform import Affine, rowcol
from rasterio.windows import Window, from_bounds

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError
from kaizhou_gis.terrain.sampling import floor_cells, slope_deg


@dataclass
class DemGrid:
    """A north-up DEM window in memory: elevations (NaN = no data), transform and CRS.

    Built once per run (:meth:`from_dataset`) and shared by the network (edge grades), the access
    step and the new-link search, so the DEM is read once.
    """

    values: np.ndarray
    transform: Affine
    crs: Any
    _slope: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_dataset(cls, ds: rasterio.io.DatasetReader, bounds: tuple[float, float, float, float],
                     bounds_crs, *, margin_m: float = 0.0, band: int = 1) -> DemGrid:
        """Read the part of ``ds`` covering ``bounds`` (in ``bounds_crs``) plus ``margin_m``."""
        minx, miny, maxx, maxy = bounds
        minx, miny, maxx, maxy = minx - margin_m, miny - margin_m, maxx + margin_m, maxy + margin_m
        tr = transformer(bounds_crs, ds.crs)
        xs = np.array([minx, maxx, maxx, minx, (minx + maxx) / 2, (minx + maxx) / 2, minx, maxx])
        ys = np.array([miny, miny, maxy, maxy, miny, maxy, (miny + maxy) / 2, (miny + maxy) / 2])
        dx, dy = tr.transform(xs, ys)
        win = from_bounds(min(dx), min(dy), max(dx), max(dy), transform=ds.transform)
        win = win.round_offsets(op="floor").round_lengths(op="ceil")
        col0, row0 = max(0, int(win.col_off) - 1), max(0, int(win.row_off) - 1)
        col1 = min(ds.width, int(win.col_off + win.width) + 1)
        row1 = min(ds.height, int(win.row_off + win.height) + 1)
        if col1 <= col0 or row1 <= row0:
            raise LayerError(f"dem: the DEM {ds.name} does not cover the layers (bounds "
                             f"{bounds} in {bounds_crs}); use a DEM that covers the district.")
        win = Window(col0, row0, col1 - col0, row1 - row0)
        z = ds.read(band, window=win).astype("float64")
        if ds.nodata is not None and np.isfinite(ds.nodata):
            z[z == ds.nodata] = np.nan
        z[~np.isfinite(z)] = np.nan
        return cls(values=z, transform=ds.window_transform(win), crs=CRS(ds.crs))

    @property
    def slope(self) -> np.ndarray:
        """Slope in degrees of every cell (computed on first use)."""
        if self._slope is None:
            self._slope = slope_deg(self.values, self.transform, self.crs)
        return self._slope

    def cells(self, x: np.ndarray, y: np.ndarray, xy_crs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and inside-flag of points given in ``xy_crs``."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        tr = transformer(xy_crs, self.crs) if xy_crs is not None else None
        if tr is not None:
            x, y = tr.transform(x, y)
        rows = np.full(len(x), -1, dtype=np.int64)
        cols = np.full(len(x), -1, dtype=np.int64)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            rows[ok], cols[ok] = rowcol_cells(self.transform, x[ok], y[ok])
        h, w = self.values.shape
        inside = ok & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        return rows, cols, inside

    def sample(self, x: np.ndarray, y: np.ndarray, xy_crs, *, what: str = "elevation") -> np.ndarray:
        """Elevation (m) or slope (deg) of the cell holding each point; NaN outside / no data."""
        rows, cols, inside = self.cells(x, y, xy_crs)
        grid = self.values if what == "elevation" else self.slope
        out = np.full(len(rows), np.nan)
        out[inside] = grid[rows[inside], cols[inside]]
        return out


def rowcol_cells(transform: Affine, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (int64) of the cells holding points ``x``, ``y``: ``rasterio``'s
    :func:`~rasterio.transform.rowcol` with :func:`~kaizhou_gis.terrain.floor_cells` (a point on a
    cell edge: ``CELL_TOL``), the same cells, with ``floor_cells`` applied to the whole array at
    once (``rowcol`` calls a non-ufunc ``op`` once per point in Python; ``np.positive``, a ufunc,
    keeps its fractional rows and columns as they are)."""
    r, c = rowcol(transform, np.atleast_1d(np.asarray(x, dtype="float64")),
                  np.atleast_1d(np.asarray(y, dtype="float64")), op=np.positive)
    return floor_cells(r).astype(np.int64), floor_cells(c).astype(np.int64)


def terrain_class(slope_deg_values: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """'flat' / 'hilly' / 'mountain' from mean slope and the plan's ``terrain_slope_deg``.

    Unknown slope (NaN, no DEM) counts as 'mountain', so unit costs err on the high side.
    """
    s = np.asarray(slope_deg_values, dtype="float64")
    out = np.where(s >= thresholds["mountain"], "mountain",
                   np.where(s >= thresholds["hilly"], "hilly", "flat")).astype(object)
    out[~np.isfinite(s)] = "mountain"
    return out
