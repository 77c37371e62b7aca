"""What loading gives: :class:`Layers` (vector layers in the work CRS, the DEM opened on demand)
and :class:`LayerReport` (what :func:`~kaizhou_gis.layers.check_layers` found).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import geopandas as gpd
import rasterio
import rasterio.windows

from kaizhou_gis.layers.dem import open_raster


@dataclass
class Layers:
    """The input layers of one district, vector layers in the work CRS."""

    boundary: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    township_seats: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    settlements: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    dem_path: str
    sites: gpd.GeoDataFrame | None = None
    source: str = ""
    attribution: str = ""
    notes: list[str] = field(default_factory=list)
    #: CRS given with ``--crs`` for a DEM that declares none (then :meth:`open_dem` assigns it).
    dem_crs: str | None = None
    #: DEM tiles mosaicked on the fly (then ``dem_path`` is their folder or first tile).
    dem_tiles: tuple[str, ...] = ()
    #: Void value (e.g. -32768) of a DEM that tags no nodata; :meth:`open_dem` reports it as nodata.
    dem_nodata: float | None = None
    #: The district's window of the DEM, ``(col_off, row_off, width, height)`` in DEM cells
    #: (:func:`dem_window`), or None when it is the whole DEM; :meth:`open_dem` opens only it.
    dem_window: tuple[int, int, int, int] | None = None
    #: Layer metadata ({layer: {key: value}}): GeoPackage/GDAL layer metadata, GeoTIFF tags of the
    #: DEM. :mod:`kaizhou_gis.provenance` reads ``source``/``synthetic`` items from it.
    metadata: dict[str, dict] = field(default_factory=dict)
    #: Columns the tool estimated because the layer lacked them ({layer, column, how_zh, how_en}).
    estimated: list[dict] = field(default_factory=list)

    @contextlib.contextmanager
    def open_dem(self) -> Iterator[rasterio.io.DatasetReader]:
        """Open the district's window of the DEM for reading (nothing is loaded until asked).

        The dataset is the window :attr:`dem_window` of the DEM (the layers' extent plus
        :func:`dem_window_margin_m`), so no step can read outside it: a district whose DEM is a
        VRT over a province-sized mosaic, or one large GeoTIFF, reads only its own part.
        """
        with open_raster(self.dem_path, self.dem_tiles, window=self.dem_window) as ds:
            void = self.dem_nodata if ds.nodata is None else None
            if (self.dem_crs is not None and ds.crs is None) or void is not None:
                from rasterio.vrt import WarpedVRT
                dem_crs = ds.crs if ds.crs is not None else self.dem_crs
                extra = {"src_nodata": void, "nodata": void} if void is not None else {}
                with WarpedVRT(ds, src_crs=dem_crs, crs=dem_crs, transform=ds.transform,
                               width=ds.width, height=ds.height, **extra) as vrt:
                    yield vrt
            else:
                yield ds

    def vector(self, name: str) -> gpd.GeoDataFrame | None:
        return getattr(self, name)

    @property
    def crs(self):
        return self.villages.crs


@dataclass
class LayerReport:
    """What :func:`check_layers` found.

    Attributes
    ----------
    ok : bool
        True when no layer has a problem (notes do not count).
    layers : Layers or None
        The loaded layers when ``ok``.
    rows : list of dict
        One per layer: layer, file, rows, crs, bounds (lon/lat), problems (count).
    problems : list of str
        Every problem, each naming layer, column, up to 5 ids and the fix.
    notes : list of str
        Repairs and assumptions made while reading (not failures).
    """

    ok: bool
    layers: Layers | None
    rows: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def format(self) -> str:
        """A readable per-layer table, then the notes."""
        head = ("layer", "rows", "crs", "bounds (lon/lat)", "problems", "file")
        lines = [[str(r.get("layer", "")), str(r.get("rows", "")), str(r.get("crs", "")),
                  _fmt_bounds(r.get("bounds")), str(r.get("problems", 0)), str(r.get("file", ""))]
                 for r in self.rows]
        widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h)
                  for i, h in enumerate(head)]
        out = [f"Layers: {self.source}" if self.source else "Layers:"]
        out.append("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        for x in lines:
            out.append("  " + "  ".join(v.ljust(w) for v, w in zip(x, widths)).rstrip())
        if self.notes:
            out.append(f"Notes ({len(self.notes)}):")
            out.extend(f"  - {n}" for n in self.notes)
        return "\n".join(out)

    def problem_text(self) -> str:
        """Every problem, one per line, under a header with the count."""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the layers ({self.source}):"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


def _fmt_bounds(b) -> str:
    if b is None:
        return "-"
    return "{:.4f}, {:.4f} .. {:.4f}, {:.4f}".format(*b)
