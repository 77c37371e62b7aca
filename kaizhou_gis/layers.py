"""Read the input layers, check them against the layer contract, reproject to the work CRS.

Only this module opens input paths. :func:`load_layers` returns a :class:`Layers` whose vector
layers are in the plan's work CRS (EPSG:4545 by default); the DEM stays in its own CRS and is
opened on demand with :meth:`Layers.open_dem`.

Inputs may be

* a GeoPackage holding the contract's layer names (``boundary``, ``townships``, ...), with the DEM
  next to it (``dem.tif``, any GDAL raster named ``dem.*``, SRTM ``*.hgt`` tiles, or a ``dem/``
  folder of tiles; several tiles are mosaicked on the fly by :func:`mosaic_vrt`);
* a folder holding such a GeoPackage and/or one file per layer named after the layer
  (``villages.shp``, ``roads.osm.pbf``, ``settlements.geojson``, ``townships.parquet``,
  ``dem.tif``); the only ``*.osm.pbf`` / ``*.osm`` / ``*.pbf`` file in the folder is the roads;
* a TOML file mapping layer names to files: ``villages = "村.shp"`` or
  ``villages = { path = "data.gpkg", layer = "cun", encoding = "GBK", crs = "EPSG:4490",
  coords = "gcj02" }`` (paths relative to the TOML file; ``dem`` may name a folder of tiles).

OpenStreetMap roads are read with pyosmium (:func:`read_osm_roads`): ways cut by the extract are
truncated (never bridged) or dropped and counted, non-vehicle classes left out and counted, an
extract larger than the district clipped to the boundary plus ``layers.osm_clip_margin_m``.
Surfaces become paved/unpaved through the plan's tables (:func:`classify_surfaces`).

:func:`check_layers` collects every problem of every layer and returns a :class:`LayerReport`;
:func:`load_layers` raises one :class:`~kaizhou_gis.errors.LayerError` listing them all.
"""
from __future__ import annotations

import contextlib
import logging
import re
import warnings
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import rasterio.windows
import shapely
from pyproj import CRS

from kaizhou_gis import checks
from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids

log = logging.getLogger(__name__)

#: Layer names of the contract, in the order they are checked and reported.
VECTOR_LAYERS = ("boundary", "townships", "township_seats", "villages", "settlements", "roads")
OPTIONAL_LAYERS = ("sites",)
#: Layers that must hold at least one feature (settlements and sites may be empty).
NONEMPTY_LAYERS = ("boundary", "townships", "township_seats", "villages", "roads")
#: The shipped layers next to the package: ``<repository>/layers`` in a source checkout or an
#: editable install (see :func:`default_layers_dir` for a non-editable install).
DEFAULT_LAYERS_DIR = Path(__file__).resolve().parent.parent / "layers"
#: The files of the shipped default layers.
DEFAULT_LAYER_FILES = ("kaizhou.gpkg", "dem.tif")

#: File suffixes tried for per-layer vector files in a folder, in order of preference.
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".parquet", ".geoparquet", ".fgb",
                   ".osm.pbf", ".osm", ".pbf", ".osm.bz2", ".osm.gz", ".gml", ".kml", ".tab", ".sqlite")
#: OpenStreetMap files (read with pyosmium): a downloaded extract is usually ``*.osm.pbf``.
OSM_SUFFIXES = (".osm.pbf", ".osm", ".pbf", ".osm.bz2", ".osm.gz")
#: File suffixes tried for the DEM in a folder.
RASTER_SUFFIXES = (".tif", ".tiff", ".hgt", ".img", ".vrt", ".asc", ".dem", ".bil", ".nc")

#: DEMs up to this many cells are read whole to find points on nodata (64 M int16 = 128 MB).
MAX_DEM_CELLS_IN_MEMORY = 64_000_000

_POLYGON, _POINT, _LINE = "polygon", "point", "line"
_GEOM_TYPES = {
    _POLYGON: ({"Polygon", "MultiPolygon"}, "Polygon or MultiPolygon"),
    _POINT: ({"Point"}, "Point"),
    _LINE: ({"LineString", "MultiLineString"}, "LineString"),
}
_TRUE = {"是", "true", "t", "yes", "y", "1", "1.0", "有", "√"}
_FALSE = {"否", "false", "f", "no", "n", "0", "0.0", "无", "", "nan", "none", "null"}


@dataclass(frozen=True)
class _Col:
    """One column of the layer contract."""

    name: str
    kind: str  # "str", "code", "int", "float", "bool"
    required: bool = True
    digits: int | None = None


#: The layer contract: geometry kind, id column, columns.
SCHEMA: dict[str, tuple[str, str | None, tuple[_Col, ...]]] = {
    "boundary": (_POLYGON, "code", (
        _Col("code", "str", False), _Col("name", "str", False))),
    "townships": (_POLYGON, "township_code", (
        _Col("township_code", "code", True, 9), _Col("name", "str"),
        _Col("kind", "str", False), _Col("source", "str", False))),
    "township_seats": (_POINT, "township_code", (
        _Col("township_code", "code", True, 9), _Col("name", "str", False),
        _Col("elevation_m", "float", False), _Col("source", "str", False))),
    "villages": (_POINT, "village_code", (
        _Col("village_code", "code", True, 12), _Col("name", "str"),
        _Col("township_code", "code", True, 9), _Col("kind", "str", False),
        _Col("households", "int"), _Col("population", "int"),
        _Col("poverty_village", "bool", False), _Col("deep_poverty", "bool", False),
        _Col("poverty_source", "str", False), _Col("source", "str", False))),
    "settlements": (_POINT, "settlement_id", (
        _Col("settlement_id", "code"), _Col("name", "str", False),
        _Col("village_code", "code", True, 12),
        _Col("households", "int"), _Col("population", "int"),
        _Col("poor_population", "float", False), _Col("source", "str", False))),
    "roads": (_LINE, "road_id", (
        _Col("road_id", "code", False), _Col("road_class", "str"),
        _Col("surface", "str", False), _Col("source", "str", False))),
    "sites": (_POINT, "site_id", (
        _Col("site_id", "code"), _Col("name", "str", False),
        _Col("township_code", "code", True, 9),
        _Col("capacity_households", "int", False))),
}
_TOWNSHIP_KINDS = ("街道", "镇", "乡")
_VILLAGE_KINDS = ("村", "社区")
#: The road classes of the layer contract (``roads.road_class``), from the highest; every other
#: value is mapped by the plan's ``layers.road_class_values`` or becomes ``other``.
ROAD_CLASSES = ("trunk", "county", "township", "village", "track", "other")


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


# --------------------------------------------------------------------------------------------
# finding the files


@dataclass
class _Source:
    """Where one layer comes from."""

    path: Path
    layer: str | None = None
    crs: str | None = None
    encoding: str | None = None
    coords: str | None = None
    #: DEM tiles mosaicked on the fly (a folder of SRTM .hgt / GeoTIFF tiles)
    tiles: tuple[Path, ...] = ()
    #: a table or query in PostGIS (:class:`kaizhou_gis.dbio.DbLayer`) instead of a file
    db: Any = None

    def describe(self) -> str:
        if self.db is not None:
            return self.db.describe()
        if self.tiles:
            return f"{self.path.name}/ ({len(self.tiles)} tiles)" if self.path.is_dir() \
                else f"{len(self.tiles)} tiles ({self.tiles[0].name}, ...)"
        return f"{self.path.name}" + (f":{self.layer}" if self.layer else "")


def _gpkg_layers(path: Path) -> list[str]:
    try:
        return [str(x[0]) for x in pyogrio.list_layers(path)]
    except Exception as e:  # pyogrio raises DataSourceError and friends
        log.debug("cannot list layers of %s: %s", path, e)
        return []


def _raster_tiles(folder: Path) -> list[Path]:
    """Raster files in a folder (DEM tiles), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and (p.suffix.lower() in RASTER_SUFFIXES or _is_srtm(p)))


def _is_srtm(p: Path) -> bool:
    """An SRTM tile: ``N31E108.hgt`` or as downloaded, ``N31E108.SRTMGL1.hgt.zip`` (GDAL reads
    the zip directly)."""
    return p.name.lower().endswith((".hgt", ".hgt.zip"))


def _find_dem(folder: Path) -> _Source | None:
    """The DEM next to the layers: ``dem.<tif|hgt|vrt|...>``; else a ``dem/`` folder of tiles;
    else the SRTM ``*.hgt`` tiles in the folder (several are mosaicked on the fly)."""
    for suffix in RASTER_SUFFIXES:
        p = folder / f"dem{suffix}"
        if p.is_file():
            return _Source(p)
    for sub in (folder / "dem", folder / "DEM"):
        if sub.is_dir():
            tiles = _raster_tiles(sub)
            if len(tiles) == 1:
                return _Source(tiles[0])
            if tiles:
                return _Source(sub, tiles=tuple(tiles))
    hgts = sorted(p for p in folder.iterdir() if p.is_file() and _is_srtm(p))
    if len(hgts) == 1:
        return _Source(hgts[0])
    if hgts:
        return _Source(hgts[0], tiles=tuple(hgts))
    for suffix in RASTER_SUFFIXES:
        p = folder / f"DEM{suffix}"
        if p.is_file():
            return _Source(p)
    return None


def mosaic_vrt(tiles, window=None) -> str:
    """A GDAL VRT (XML text, kept in memory; rasterio opens it as a dataset) that mosaics DEM
    tiles of one CRS and cell size, e.g. SRTM ``.hgt`` or Copernicus GLO-30 GeoTIFF tiles.

    Nothing is read until a window is asked for, so only the district's part is ever read.
    Where tiles overlap (SRTM tiles share their edge row), a tile's nodata cells do not hide the
    other's values. With ``window`` (a :class:`rasterio.windows.Window` of the mosaic, whole
    cells) the VRT is that window only; tiles outside it are left out.
    """
    from html import escape

    info = []
    for t in tiles:
        with rasterio.open(t) as ds:
            info.append((Path(t), ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[0], ds.nodata))
    if not info:
        raise LayerError("dem: the DEM folder holds no raster tiles; put the SRTM .hgt or GeoTIFF "
                         "tiles of the district in it.")
    crs0, tr0 = info[0][1], info[0][2]
    other_crs = [i[0].name for i in info if i[1] != crs0]
    if other_crs:
        raise LayerError(f"dem: the tiles are not all in one CRS ({info[0][0].name}: "
                         f"{_crs_label(crs0) if crs0 else 'none'}; different: {format_ids(other_crs)}); "
                         f"reproject them to one CRS (gdalwarp) or merge them into dem.tif.")
    res_x, res_y = tr0.a, tr0.e
    other_res = [i[0].name for i in info
                 if abs(i[2].a - res_x) > 1e-9 * abs(res_x) or abs(i[2].e - res_y) > 1e-9 * abs(res_y)
                 or i[2].b != 0 or i[2].d != 0]
    if other_res or tr0.b != 0 or tr0.d != 0:
        raise LayerError(f"dem: the tiles do not share one north-up grid cell size "
                         f"({format_ids(other_res or [info[0][0].name])} differ); resample them to "
                         f"one grid (gdalwarp -tr) or merge them into dem.tif.")
    left = min(i[2].c for i in info)
    top = max(i[2].f for i in info)
    right = max(i[2].c + i[3] * res_x for i in info)
    bottom = min(i[2].f + i[4] * res_y for i in info)
    width = int(round((right - left) / res_x))
    height = int(round((bottom - top) / res_y))
    dtypes = {i[5] for i in info}
    vrt_type = {"int16": "Int16", "uint16": "UInt16", "int32": "Int32", "float32": "Float32",
                "float64": "Float64", "uint8": "Byte"}.get(info[0][5], "Float32") \
        if len(dtypes) == 1 else "Float32"
    nodata = next((i[6] for i in info if i[6] is not None), None)
    wx, wy = 0, 0
    if window is not None:
        wx, wy = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        left, top = left + wx * res_x, top + wy * res_y
    sources = []
    for path, _, tr, w, h, _, nd in info:
        xo, yo = (tr.c - left) / res_x, (tr.f - top) / res_y
        if abs(xo - round(xo)) > 1e-3 or abs(yo - round(yo)) > 1e-3:
            raise LayerError(f"dem: tile {path.name} is not aligned with the grid of "
                             f"{info[0][0].name} (offset {xo:.3f}, {yo:.3f} cells); resample the "
                             f"tiles to one grid (gdalwarp) or merge them into dem.tif.")
        if round(xo) >= width or round(yo) >= height or round(xo) + w <= 0 or round(yo) + h <= 0:
            continue  # outside the window: never opened
        nd_xml = f"<NODATA>{nd!r}</NODATA>" if nd is not None else ""
        sources.append(
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(path.resolve()))}'
            f'</SourceFilename><SourceBand>1</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{int(round(xo))}" yOff="{int(round(yo))}" xSize="{w}" ySize="{h}"/>'
            f'{nd_xml}</ComplexSource>')
    srs = f"<SRS>{escape(crs0.to_wkt())}</SRS>" if crs0 is not None else ""
    nd_band = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
            f"<GeoTransform>{left!r}, {res_x!r}, 0, {top!r}, 0, {res_y!r}</GeoTransform>"
            f'<VRTRasterBand dataType="{vrt_type}" band="1">{nd_band}{"".join(sources)}'
            f"</VRTRasterBand></VRTDataset>")


def _holds_layers(folder: Path) -> bool:
    """True for a folder with a GeoPackage or a per-layer file of the layer contract."""
    if not folder.is_dir():
        return False
    return any(p.is_file() and (p.suffix.lower() == ".gpkg"
                                or p.name.split(".")[0] in VECTOR_LAYERS + OPTIONAL_LAYERS)
               for p in folder.iterdir())


def default_layers_dir(*, package_dir: Path | None = None, cwd: Path | None = None) -> Path:
    """The folder of the default layers (no ``--layers``).

    ``layers/`` next to the package (a source checkout or an editable install) when it holds
    layers, else ``layers/`` in the current folder (after a non-editable ``pip install .`` the
    package lives in site-packages without the layers, so run from the repository root).
    ``package_dir`` (the ``kaizhou_gis`` folder) and ``cwd`` stand in for the real ones in tests.

    Raises
    ------
    LayerError
        Neither folder holds layers; the message names both places, the expected files and
        ``--layers``.
    """
    package_dir = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    places = list(dict.fromkeys([package_dir.parent / "layers", cwd.resolve() / "layers"]))
    for folder in places:
        if _holds_layers(folder):
            return folder
    raise LayerError(
        f"layers: no --layers given and no default layers found (looked for "
        f"{' and '.join(str(p) for p in places)}). The shipped Kaizhou layers are "
        f"layers/{DEFAULT_LAYER_FILES[0]} (the vector layers {', '.join(VECTOR_LAYERS)}) and "
        f"layers/{DEFAULT_LAYER_FILES[1]} (the DEM) in the repository: run the command from the "
        f"repository root, or pass --layers PATH (a GeoPackage, a folder of per-layer files "
        f"with a DEM, a TOML mapping or a postgresql:// URL), or rebuild them with "
        f"`kaizhou-gis demo-layers --out layers`.")


def open_raster(path, tiles=(), window=None) -> rasterio.io.DatasetReader:
    """Open a DEM: one raster file, or the mosaic of ``tiles``; with ``window`` (a
    :class:`rasterio.windows.Window` or ``(col_off, row_off, width, height)`` in whole cells) only
    that window of it, as a VRT whose every read stays inside the window."""
    if window is not None and not isinstance(window, rasterio.windows.Window):
        window = rasterio.windows.Window(*window)
    if tiles:
        return rasterio.open(mosaic_vrt(tiles, window=window))
    if window is None:
        return rasterio.open(path)
    return rasterio.open(window_vrt(path, window))


_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
               "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
               "float32": "Float32", "float64": "Float64"}


def window_vrt(path, window) -> str:
    """A GDAL VRT (XML text, opened by rasterio as a dataset) of ``window`` of the raster at
    ``path``: same grid, CRS, data type and nodata; band 1 only. GDAL reads the source only
    inside the window, whatever the source is (a GeoTIFF, SRTM tile or a VRT of a province)."""
    from html import escape

    window = rasterio.windows.Window(*[int(v) for v in (window.col_off, window.row_off,
                                                        window.width, window.height)])
    with rasterio.open(path) as ds:
        name = ds.name
        tr = ds.window_transform(window)
        crs, dtype, nodata = ds.crs, ds.dtypes[0], ds.nodata
        scale, offset = ds.scales[0], ds.offsets[0]
    p = Path(str(name))
    if p.is_file():
        name = str(p.resolve())
    w, h = int(window.width), int(window.height)
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs is not None else ""
    nd = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    so = (f"<Offset>{offset!r}</Offset><Scale>{scale!r}</Scale>"
          if (scale, offset) != (1.0, 0.0) else "")
    return (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">{srs}'
            f"<GeoTransform>{tr.c!r}, {tr.a!r}, {tr.b!r}, {tr.f!r}, {tr.d!r}, {tr.e!r}</GeoTransform>"
            f'<VRTRasterBand dataType="{_GDAL_TYPES.get(dtype, "Float64")}" band="1">{nd}{so}'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(name))}</SourceFilename>'
            f"<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="{int(window.col_off)}" yOff="{int(window.row_off)}" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/></SimpleSource>'
            f"</VRTRasterBand></VRTDataset>")


def dem_window_margin_m(plan) -> float:
    """Margin (metres) of the district's DEM window around the layers' extent: the longest new
    road link searched (``links.max_new_link_km``; a link may run outside the layers' extent) or
    the relocation terrain radius (``relocation.relief_window_m`` / ``slope_window_m``),
    whichever is larger."""
    def num(key):
        try:
            return float(plan.get(key, 0.0) or 0.0)
        except (TypeError, ValueError):
            return 0.0
    return max(num("links.max_new_link_km") * 1000.0, num("relocation.relief_window_m"),
               num("relocation.slope_window_m"))


#: Cells added on every side of the district's DEM window (the road-grade grid's own pad and the
#: cubic kernel of resampled reads).
DEM_WINDOW_PAD_CELLS = 3


def dem_window(ds, frames, margin_m: float, *, dem_crs=None) -> rasterio.windows.Window | None:
    """The district's window of the DEM ``ds``: the extent of the vector ``frames`` plus
    ``margin_m`` (metres) and :data:`DEM_WINDOW_PAD_CELLS`, in whole cells, clipped to the DEM.

    None when the window is the whole DEM (then the DEM is read as it is), when no frame has
    features and a CRS, or when the extent misses the DEM (the cross-checks name the points
    outside the DEM).
    """
    dem_crs = ds.crs if ds.crs is not None else dem_crs
    if dem_crs is None:
        return None
    xs_all, ys_all = [], []
    for g in frames:
        if g is None or g.crs is None or g.empty:
            continue
        b = np.asarray(g.total_bounds, dtype="float64")
        if not np.isfinite(b).all():
            continue
        minx, miny, maxx, maxy = b
        if CRS.from_user_input(g.crs).is_geographic:  # metres to degrees, generously
            my = margin_m / 110_574.0
            mx = margin_m / (111_320.0 * max(0.05, np.cos(np.radians(max(abs(miny), abs(maxy))))))
        else:
            mx = my = margin_m
        minx, miny, maxx, maxy = minx - mx, miny - my, maxx + mx, maxy + my
        # edges sampled, so a curved reprojection of the box is covered
        t = np.linspace(0.0, 1.0, 9)
        xs = np.concatenate([minx + (maxx - minx) * t, np.full(9, maxx), maxx - (maxx - minx) * t,
                             np.full(9, minx)])
        ys = np.concatenate([np.full(9, miny), miny + (maxy - miny) * t, np.full(9, maxy),
                             maxy - (maxy - miny) * t])
        x, y = transformer(g.crs, dem_crs).transform(xs, ys)
        ok = np.isfinite(x) & np.isfinite(y)
        xs_all.append(np.asarray(x)[ok])
        ys_all.append(np.asarray(y)[ok])
    if not xs_all or not sum(len(a) for a in xs_all):
        return None
    x, y = np.concatenate(xs_all), np.concatenate(ys_all)
    win = rasterio.windows.from_bounds(x.min(), y.min(), x.max(), y.max(), transform=ds.transform)
    pad = DEM_WINDOW_PAD_CELLS
    c0 = max(0, int(np.floor(win.col_off)) - pad)
    r0 = max(0, int(np.floor(win.row_off)) - pad)
    c1 = min(ds.width, int(np.ceil(win.col_off + win.width)) + pad)
    r1 = min(ds.height, int(np.ceil(win.row_off + win.height)) + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    if (c0, r0, c1, r1) == (0, 0, ds.width, ds.height):
        return None
    return rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)


def _resolve(path: Path, problems: list[str]) -> tuple[dict[str, _Source], _Source | None, Path]:
    """Layer name → source, the DEM source and the folder holding README.md."""
    sources: dict[str, _Source] = {}
    if not path.exists():
        hint = (" Build the shipped layers with `kaizhou-gis demo-layers` or pass --layers."
                if path.resolve() == DEFAULT_LAYERS_DIR else "")
        problems.append(f"layers: {path} does not exist; pass an existing GeoPackage, folder or "
                        f"TOML mapping to --layers.{hint}")
        return sources, None, path.parent
    if path.is_file() and path.suffix.lower() == ".toml":
        return _resolve_toml(path, problems)
    if path.is_file() or (path.is_dir() and path.suffix.lower() == ".gdb"):  # .gdb: a File Geodatabase
        folder = path.parent
        names = _gpkg_layers(path)
        for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
            if name in names:
                sources[name] = _Source(path, name)
        if not names:
            problems.append(f"layers: {path} is not a readable multi-layer vector file; pass a "
                            f"GeoPackage holding the layers {', '.join(VECTOR_LAYERS)}, a folder, "
                            f"or a TOML mapping.")
        return sources, _find_dem(folder), folder
    folder = path
    gpkgs = sorted(folder.glob("*.gpkg"))
    gpkgs.sort(key=lambda p: p.name != "kaizhou.gpkg")  # the shipped name first
    for g in gpkgs:
        if g.stem in VECTOR_LAYERS + OPTIONAL_LAYERS:
            continue  # a per-layer file, handled below
        names = _gpkg_layers(g)
        for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
            if name in names and name not in sources:
                sources[name] = _Source(g, name)
    for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
        for suffix in VECTOR_SUFFIXES:
            hits = [p for p in (folder / f"{name}{suffix}", folder / f"{name}{suffix.upper()}")
                    if p.exists()]
            if hits:
                sources[name] = _Source(hits[0])  # a per-layer file wins over a layer in a GeoPackage
                break
    if "roads" not in sources:
        osm = sorted({p for p in folder.iterdir() if p.is_file() and _is_osm(p)})
        if len(osm) == 1:
            sources["roads"] = _Source(osm[0])
            log.info("roads: using the OSM extract %s", osm[0].name)
        elif len(osm) > 1:
            problems.append(f"roads: several OSM files in {folder} ({format_ids([p.name for p in osm])}) "
                            f"and no roads.* file; name the one to use roads.osm.pbf (or give "
                            f"'roads = \"...\"' in a TOML mapping).")
    return sources, _find_dem(folder), folder


def _resolve_toml(path: Path, problems: list[str]) -> tuple[dict[str, _Source], _Source | None, Path]:
    folder = path.parent
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        problems.append(f"layers: {path} is not valid TOML: {e}; fix the syntax.")
        return {}, None, folder
    database = data.pop("database", None)
    if isinstance(data.get("layers"), dict):
        data = data["layers"]
        database = data.pop("database", database)
    sources: dict[str, _Source] = {}
    dem: _Source | None = None
    allowed = set(VECTOR_LAYERS) | set(OPTIONAL_LAYERS) | {"dem"}
    for name, spec in data.items():
        if name not in allowed:
            problems.append(f"layers: {path}: unknown layer '{name}'; use "
                            f"{', '.join(sorted(allowed))}.")
            continue
        if isinstance(spec, str):
            spec = {"path": spec}
        if isinstance(spec, dict) and ("table" in spec or "sql" in spec) and name != "dem":
            from kaizhou_gis import dbio
            db = dbio.toml_source(name, spec, database, path.name, problems)
            if db is not None:
                sources[name] = _Source(Path(db.describe()), crs=spec.get("crs"), db=db)
            continue
        if not isinstance(spec, dict) or "path" not in spec:
            problems.append(f"layers: {path}: '{name}' must be a file path or a table "
                            f"{{ path = \"...\", layer = \"...\" }}.")
            continue
        extra = set(spec) - {"path", "layer", "crs", "encoding", "coords"}
        if extra:
            problems.append(f"layers: {path}: '{name}' has unknown key(s) {sorted(extra)}; "
                            f"allowed: path, layer, crs, encoding, coords.")
        mistyped = [k for k in ("path", "crs", "encoding", "coords")
                    if k in spec and not isinstance(spec[k], str)]
        if "layer" in spec and (not isinstance(spec["layer"], (str, int))
                                or isinstance(spec["layer"], bool)):
            mistyped.append("layer")
        if mistyped:
            problems.append(f"layers: {path}: '{name}'.{', '.join(mistyped)} must be text "
                            f"(quoted, e.g. path = \"villages.shp\", crs = \"EPSG:4490\").")
            continue
        if spec.get("crs") is not None:
            try:
                CRS.from_user_input(spec["crs"])
            except Exception as e:  # pyproj CRSError
                problems.append(f"layers: {path}: '{name}'.crs = {spec['crs']!r} is not a CRS "
                                f"({e}); use an EPSG code like \"EPSG:4490\".")
                continue
        if spec.get("encoding") is not None and not _known_encoding(spec["encoding"]):
            problems.append(f"layers: {path}: '{name}'.encoding = {spec['encoding']!r} is not a "
                            f"known text encoding; use e.g. \"GBK\", \"GB18030\" or \"UTF-8\".")
            continue
        p = Path(spec["path"]).expanduser()
        if not p.is_absolute():
            p = folder / p
        coords = spec.get("coords")
        if coords is not None and coords not in ("wgs84", "gcj02"):
            problems.append(f"layers: {path}: '{name}'.coords = {coords!r}; use \"wgs84\" or \"gcj02\".")
            coords = None
        src = _Source(p, spec.get("layer"), spec.get("crs"), spec.get("encoding"), coords)
        if not p.exists():
            problems.append(f"{name}: file {p} (from {path.name}) does not exist; fix the path "
                            f"in {path.name}.")
            continue
        if name == "dem":
            dem = src
            if p.is_dir():
                tiles = _raster_tiles(p)
                if not tiles:
                    problems.append(f"dem: the folder {p} (from {path.name}) holds no raster "
                                    f"tiles; put the SRTM .hgt or GeoTIFF tiles in it.")
                    dem = None
                elif len(tiles) == 1:
                    dem = _Source(tiles[0], crs=src.crs)
                else:
                    dem.tiles = tuple(tiles)
        else:
            if src.layer is None and p.suffix.lower() in (".gpkg", ".gdb"):
                names = _gpkg_layers(p)
                src.layer = name if name in names else (names[0] if len(names) == 1 else None)
            sources[name] = src
    return sources, dem, folder


def _known_encoding(name: str) -> bool:
    """True when Python (and so, for the usual names, GDAL's iconv) knows the text encoding."""
    import codecs
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _attribution(folder: Path) -> str:
    """The attribution section of README.md next to the layers ("" when there is none)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return ""
    text = readme.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    out: list[str] = []
    level = None
    for line in lines:
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and level is not None and len(m.group(1)) <= level:
            break
        if m and level is None and re.search(r"attribution|署名|数据来源|licen[cs]e", m.group(2), re.I):
            level = len(m.group(1))
            continue
        if level is not None:
            out.append(line)
    return "\n".join(out).strip()


# --------------------------------------------------------------------------------------------
# reading


def _guess_dbf_encoding(shp: Path) -> str | None:
    """Encoding for a Shapefile whose .dbf has neither a .cpg nor a language-driver id.

    GDAL then assumes ISO-8859-1, which garbles Chinese. Returns ``"UTF-8"`` or ``"GB18030"``
    (a superset of GBK) when the text bytes say so, None when GDAL's own choice is right.
    """
    if any(shp.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((shp.with_suffix(s) for s in (".dbf", ".DBF") if shp.with_suffix(s).exists()), None)
    if dbf is None:
        return None
    with open(dbf, "rb") as f:
        head = f.read(32)
        if len(head) < 32 or head[29] != 0:  # GDAL honours a language-driver id
            return None
        header_len = int.from_bytes(head[8:10], "little")
        f.seek(header_len)
        body = f.read(4_000_000)
    if all(b < 0x80 for b in body):
        return None
    # Text cut at a field's width leaves a broken character at the end of some values, so
    # count broken characters instead of asking for a clean decode: GBK text read as UTF-8
    # breaks at nearly every character, UTF-8 text only where a value was cut.
    n_high = sum(1 for b in body if b >= 0x80)
    broken = {enc: body.decode(enc, errors="replace").count("\ufffd")
              for enc in ("utf-8", "gb18030")}
    if broken["utf-8"] <= max(1, n_high // 60):  # at most ~1 in 20 Chinese characters
        return "UTF-8"
    if broken["gb18030"] <= max(1, n_high // 40):
        return "GB18030"
    return None


def _layer_metadata(src: _Source) -> dict:
    """GDAL layer metadata of one vector source ({} when the format has none)."""
    if src.db is not None or _is_osm(src.path) or src.path.suffix.lower() in (".parquet", ".geoparquet"):
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "more than one layer": the metadata is optional
            info = pyogrio.read_info(src.path, **({"layer": src.layer} if src.layer else {}))
    except Exception:  # formats without layers or metadata
        return {}
    meta = info.get("layer_metadata") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _read_vector(name: str, src: _Source, encoding: str | None, notes: list[str],
                 bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    if src.db is not None:
        from kaizhou_gis import dbio
        return dbio.read_layer(name, src.db)
    suffix = src.path.suffix.lower()
    enc = src.encoding or encoding
    if suffix in (".parquet", ".geoparquet"):
        try:
            return gpd.read_parquet(src.path)
        except ImportError as e:
            raise LayerError(f"{name}: reading GeoParquet ({src.path.name}) needs pyarrow: {e}; "
                             f"`pip install pyarrow`, or convert the file to GeoPackage.") from None
    if _is_osm(src.path):
        return read_osm_roads(src.path, notes=notes, bbox=bbox)
    if suffix == ".shp" and enc is None:
        enc = _guess_dbf_encoding(src.path)
        if enc is not None:
            notes.append(f"{name}: {src.path.name} has no .cpg; its text was read as {enc} "
                         f"(pass --encoding if names look wrong).")
    kwargs: dict[str, Any] = {}
    if src.layer is not None:
        kwargs["layer"] = src.layer
    if enc is not None and suffix in (".shp", ".dbf", ".csv"):
        kwargs["encoding"] = enc
    try:
        return pyogrio.read_dataframe(src.path, **kwargs)
    except UnicodeDecodeError:
        if suffix not in (".shp", ".dbf"):
            raise
    # A .dbf field name cut to 10 bytes in the middle of a character (户籍人口 in UTF-8 is 12
    # bytes), or text not in the encoding the .cpg names, stops pyogrio: read the bytes as
    # Latin-1 and decode them here.
    kwargs["encoding"] = "ISO-8859-1"
    raw = pyogrio.read_dataframe(src.path, **kwargs)
    geom = raw.geometry.name
    text_cols = [c for c in raw.columns if c != geom and (pd.api.types.is_object_dtype(raw[c])
                                                          or pd.api.types.is_string_dtype(raw[c]))]
    values = [v.encode("latin-1") for c in text_cols for v in raw[c] if isinstance(v, str)]
    names = [str(c).encode("latin-1") for c in raw.columns if c != geom]
    chosen = next((c for c in dict.fromkeys([enc or "UTF-8", "GB18030"])
                   if all(_decodes_but_cut_end(v, c) for v in values)), None)
    if chosen is None:
        raise LayerError(f"{name}: the text in {src.path.name} is neither {enc or 'UTF-8'} nor "
                         f"GBK; pass its encoding with --encoding (or `encoding = \"...\"` in a "
                         f"TOML mapping), or fix the .cpg file.")

    def fix(v):
        return v.encode("latin-1").decode(chosen, errors="ignore") if isinstance(v, str) else v

    new_names: dict[str, str] = {}
    for c in raw.columns:
        if c == geom:
            continue
        base = n = fix(c).strip() or "field"
        k = 2
        while n in new_names.values():  # 户籍人口 and 户籍人数 both cut to 户籍人
            n, k = f"{base}_{k}", k + 1
        new_names[c] = n
    for c in text_cols:
        raw[c] = raw[c].map(fix)
    raw = raw.rename(columns=new_names)
    if chosen != (enc or "UTF-8"):
        notes.append(f"{name}: the text in {src.path.name} is not {enc or 'UTF-8'} (as its .cpg "
                     f"or --encoding says) but {chosen}; read as {chosen}.")
    cut = [n.decode(chosen, errors="ignore") for n in names if not _decodes_but_cut_end(n, chosen, True)]
    if cut:
        notes.append(f"{name}: {src.path.name} has field names cut inside a character "
                     f"({format_ids(cut)}); the cut characters were dropped.")
    return raw


def _decodes_but_cut_end(raw: bytes, encoding: str, strict: bool = False) -> bool:
    """True when ``raw`` is valid ``encoding`` text, at worst with its last character cut off
    (a .dbf field of N bytes cuts longer text anywhere); ``strict`` allows no cut."""
    try:
        raw.decode(encoding)
        return True
    except UnicodeDecodeError as e:
        return not strict and e.end == len(raw) and len(raw) - e.start < 4
    except LookupError:
        return False


def _is_osm(path: Path) -> bool:
    return path.name.lower().endswith(OSM_SUFFIXES)


def _osm_highways(path: Path, bbox):
    """(way id, tags, runs of node lon/lat split where nodes are missing, number of missing
    nodes) of every highway way with a node in ``bbox``, and the counts of the other ways; read
    fully before returning, so that a broken file fails here."""
    import osmium

    out = []
    counts = {"not_road": 0, "away": 0}
    fp = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)))
    for w in fp:
        hw = w.tags.get("highway")
        if hw is None:
            counts["not_road"] += 1
            continue
        parts: list[list[tuple[float, float]]] = [[]]
        missing = 0
        for nd in w.nodes:
            loc = nd.location
            if loc.valid():
                parts[-1].append((loc.lon, loc.lat))
            else:
                missing += 1
                if parts[-1]:
                    parts.append([])
        if bbox is not None and any(parts) and not any(bbox[0] <= x <= bbox[2] and bbox[1] <= y <= bbox[3]
                                        for part in parts for x, y in part):
            counts["away"] += 1
            continue
        tags = {k: w.tags.get(k, "") for k in ("highway", "name", "surface", "tracktype")}
        out.append((w.id, tags, parts, missing))
    return out, counts


def read_osm_roads(path: str | Path, *, notes: list[str] | None = None,
                   bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """The ways tagged ``highway=*`` of an OpenStreetMap file (``.osm.pbf``, ``.osm``, ...) as
    raw road rows in EPSG:4326, read with pyosmium.

    Columns: ``road_id`` (``osm<way id>``), ``name``, ``road_class`` (the raw highway value,
    mapped to a contract class later like any road file), ``surface`` and ``tracktype`` (raw
    tags, "" when absent), ``source``. An extract cut out of a larger map holds ways whose nodes
    lie partly outside it: such a way is cut where its nodes are missing (a MultiLineString when
    it leaves and comes back; never a straight chord over the missing nodes), and a way with
    fewer than two nodes in the file is dropped. Both are counted in ``notes`` with the reason,
    as are ways without a highway tag. ``bbox`` (lon/lat) skips ways with no node inside it
    (a country extract read for one district).
    """
    path = Path(path)
    ids, names, classes, surfaces, tracktypes, geoms = [], [], [], [], [], []
    dropped = cut = 0
    dropped_ids: list[str] = []
    cut_ids: list[str] = []
    try:
        ways, counts = _osm_highways(path, bbox)
    except (RuntimeError, OSError, ValueError) as e:  # libosmium reports a bad file as RuntimeError
        raise LayerError(f"roads: {path.name} is not a readable OpenStreetMap file ({e}); give an "
                         f"OSM extract (.osm.pbf or .osm XML), e.g. re-download it.") from None
    not_road, away = counts["not_road"], counts["away"]
    for wid, tags, parts, missing in ways:
        hw = tags["highway"]
        parts = [p for p in parts if len(p) >= 2]
        if not parts:
            dropped += 1
            dropped_ids.append(f"osm{wid}")
            continue
        if missing:
            cut += 1
            cut_ids.append(f"osm{wid}")
        ids.append(f"osm{wid}")
        names.append(tags.get("name", ""))
        classes.append(hw)
        surfaces.append(tags.get("surface", ""))
        tracktypes.append(tags.get("tracktype", ""))
        geoms.append(shapely.LineString(parts[0]) if len(parts) == 1
                     else shapely.MultiLineString(parts))
    if not ids:
        where = " inside the district's box" if bbox is not None else ""
        raise LayerError(f"roads: {path.name} holds no OSM way tagged highway=* with two nodes in "
                         f"the file{where}; pass a road extract of the district (e.g. a Geofabrik "
                         f".osm.pbf) or another road file.")
    if notes is not None:
        if away:
            notes.append(f"roads: {away} OSM highway way(s) wholly outside the district's box "
                         f"(boundary + layers.osm_clip_margin_m) were skipped.")
        if not_road:
            notes.append(f"roads: {not_road} OSM way(s) without a highway tag (rivers, power lines, "
                         f"buildings, ...) are not roads and were left out.")
        if dropped:
            notes.append(f"roads: {dropped} OSM highway way(s) dropped: fewer than two of their "
                         f"nodes are in {path.name} (the extract was cut around them; "
                         f"{format_ids(dropped_ids)}).")
        if cut:
            notes.append(f"roads: {cut} OSM highway way(s) truncated: some of their nodes are not in "
                         f"{path.name} (cut at the extract's edge), so only the parts inside are "
                         f"used ({format_ids(cut_ids)}).")
    return gpd.GeoDataFrame({
        "road_id": ids, "name": names, "road_class": classes, "surface": surfaces,
        "tracktype": tracktypes, "source": "OpenStreetMap",
    }, geometry=geoms, crs="EPSG:4326")


# --------------------------------------------------------------------------------------------
# column handling


#: Per layer, alias words preferred and avoided when several aliases of one column are present
#: (a settlements table often has both 自然村名 and its village's 村名).
_ALIAS_HINTS = {
    "settlements": (("自然村", "组"), ("乡镇", "街道")),
    "villages": (("村",), ("自然村", "乡镇", "街道", "组")),
    "townships": (("乡镇", "街道", "镇"), ("村", "组")),
    "township_seats": (("乡镇", "街道", "镇"), ("村", "组")),
}


def _dbf_cuts(alias: str) -> list[str]:
    """``alias`` as a Shapefile field name cut to 10 bytes (UTF-8 and GBK), when that changes it."""
    out = []
    for enc in ("utf-8", "gb18030"):
        try:
            raw = alias.encode(enc)
        except UnicodeEncodeError:
            continue
        if len(raw) > 10:
            cut = raw[:10].decode(enc, errors="ignore").strip()
            if len(cut) >= 2 and cut not in out:
                out.append(cut)
    return out


def _apply_aliases(gdf: gpd.GeoDataFrame, name: str, aliases: dict[str, list[str]],
                   notes: list[str]) -> gpd.GeoDataFrame:
    """Rename columns with known Chinese/English aliases to the contract's names."""
    wanted = [c.name for c in SCHEMA[name][2]]
    present = set(gdf.columns)
    lower = {str(c).strip().lower(): c for c in gdf.columns if c != gdf.geometry.name}
    rename: dict[str, str] = {}
    prefer, avoid = _ALIAS_HINTS.get(name, ((), ()))

    def rank(alias: str) -> int:
        if any(h in alias for h in avoid):
            return 2
        return 0 if any(h in alias for h in prefer) else 1

    for col in wanted:
        if col in present:
            continue
        listed = sorted((str(a).strip() for a in aliases.get(col, [])), key=rank)
        # Shapefile (.dbf) field names are cut to 10 bytes: village_code -> village_co,
        # 户籍人口 (12 bytes in UTF-8) -> 户籍人; exact names first, cut ones after
        cands = [col, col[:10]] + listed + [t for a in listed for t in _dbf_cuts(a)]
        for cand in cands:
            hit = lower.get(str(cand).strip().lower())
            if hit is not None and hit not in rename and hit not in wanted:
                rename[hit] = col
                break
    if rename:
        notes.append(f"{name}: columns renamed: " +
                     ", ".join(f"{a} → {b}" for a, b in rename.items()) + ".")
        gdf = gdf.rename(columns=rename)
    return gdf


def _ids(gdf: pd.DataFrame, mask, id_col: str | None) -> list[str]:
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if id_col and id_col in gdf.columns:
        vals = gdf[id_col].iloc[idx]
        return [str(v) if _present(v) else f"row {i + 1}" for i, v in zip(idx, vals)]
    return [f"row {i + 1}" for i in idx]


def _present(v) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and np.isnan(v):
        return False
    if v is pd.NA or v is pd.NaT:
        return False
    return str(v).strip() != ""


def _to_code(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Codes as text: ints and integral floats without ".0"; missing → None. Also the missing mask."""
    if pd.api.types.is_bool_dtype(s):
        t = s.astype("string")
    elif pd.api.types.is_integer_dtype(s):
        t = s.astype("Int64").astype("string")
    elif pd.api.types.is_float_dtype(s):
        integral = s.notna() & (s == np.round(s))
        t = s.astype("string")
        t[integral] = s[integral].astype("int64").astype("string")
    else:
        t = s.map(lambda v: v if v is None or isinstance(v, str) else
                  (str(int(v)) if isinstance(v, (float, np.floating)) and np.isfinite(v)
                   and float(v).is_integer() else str(v)), na_action="ignore").astype("string")
    t = t.str.strip().str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    missing = (t.isna() | (t == "")).to_numpy(dtype=bool)
    out = t.astype(object).where(~missing, None)
    return out, missing


def _to_number(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Numbers, the mask of missing values and the mask of non-numeric text."""
    present = s.map(_present).to_numpy()
    num = pd.to_numeric(s.map(lambda v: str(v).strip().replace(",", "") if isinstance(v, str) else v),
                        errors="coerce")
    bad = present & num.isna().to_numpy()
    return num.astype(float), ~present, bad


def _to_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    def conv(v):
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if not _present(v):
            return False
        t = str(v).strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        return None
    vals = s.map(conv)
    bad = vals.isna().to_numpy()
    return vals.fillna(False).astype(bool), bad


def _check_columns(name: str, gdf: gpd.GeoDataFrame, plan, problems: list[str],
                   notes: list[str]) -> gpd.GeoDataFrame:
    """Coerce the contract's columns to their types, collecting problems; fill optional ones."""
    _, id_col, cols = SCHEMA[name]
    out = gdf.copy()
    for col in cols:
        if col.name not in out.columns:
            if col.required:
                aka = plan.get(f"aliases.{col.name}", [])
                problems.append(
                    f"{name}.{col.name}: required column missing (columns present: "
                    f"{', '.join(map(str, [c for c in gdf.columns if c != gdf.geometry.name][:12]))}); "
                    f"add it or rename a column to '{col.name}'"
                    + (f" (recognized aliases: {', '.join(aka)})" if aka else "") + ".")
                continue
            out[col.name] = _default(name, col.name, out, plan, notes)
            continue
        s = out[col.name]
        if col.kind == "code":
            vals, missing = _to_code(s)
            if missing.any() and name == "roads" and col.name == "road_id":
                rows = np.flatnonzero(missing)
                vals = vals.copy()
                vals.iloc[rows] = [f"r{i + 1}" for i in rows]
                notes.append(f"roads.road_id: empty in {missing.sum()} row(s); ids r<row> "
                             f"assigned ({format_ids(vals.iloc[rows].tolist())}).")
                missing = np.zeros(len(vals), dtype=bool)
            if missing.any():
                problems.append(f"{name}.{col.name}: missing value in {missing.sum()} row(s) "
                                f"({format_ids(_ids(out, missing, None))}); give every row a code.")
            if col.digits == 9:
                # NBS tables print township codes with 12 digits: 500154001000 -> 500154001
                long = np.array([v is not None and v.isdigit() and len(v) == 12 and v.endswith("000")
                                 for v in vals], dtype=bool)
                if long.any():
                    vals = vals.copy()
                    vals[long] = [v[:9] for v in vals[long]]
                    notes.append(f"{name}.{col.name}: {long.sum()} 12-digit township code(s) "
                                 f"ending in 000 cut to their 9 digits.")
            if col.digits:
                wrong = np.array([v is not None and not (v.isdigit() and len(v) == col.digits)
                                  for v in vals])
                if wrong.any():
                    problems.append(
                        f"{name}.{col.name}: not a {col.digits}-digit code in {wrong.sum()} row(s) "
                        f"({format_ids(vals[wrong].tolist())}); use the {col.digits}-digit "
                        f"统计用区划代码 (store codes as text to keep leading zeros).")
            out[col.name] = vals
        elif col.kind in ("int", "float"):
            num, missing, bad = _to_number(s)
            infinite = np.isinf(num.to_numpy())
            if infinite.any():
                problems.append(f"{name}.{col.name}: infinite value (inf) in {infinite.sum()} "
                                f"row(s) ({format_ids(_ids(out, infinite, id_col))}); write the "
                                f"real number.")
                num = num.where(~infinite, np.nan)
            if bad.any():
                problems.append(f"{name}.{col.name}: not a number in {bad.sum()} row(s) "
                                f"({format_ids(_ids(out, bad, id_col))}: "
                                f"{format_ids(s[bad].astype(str).tolist(), 3)}); write plain numbers.")
            if col.kind == "int":
                if missing.any():
                    problems.append(f"{name}.{col.name}: missing value in {missing.sum()} row(s) "
                                    f"({format_ids(_ids(out, missing, id_col))}); fill in a "
                                    f"number (0 if none).")
                neg = (num < 0).to_numpy()
                if neg.any():
                    problems.append(f"{name}.{col.name}: negative in {neg.sum()} row(s) "
                                    f"({format_ids(_ids(out, neg, id_col))}); counts must be ≥ 0.")
                ok = num.notna().to_numpy()
                frac = ok & (np.abs(num - np.round(num)) > 1e-9).to_numpy()
                if frac.any():
                    notes.append(f"{name}.{col.name}: {frac.sum()} non-integer count(s) rounded "
                                 f"({format_ids(_ids(out, frac, id_col))}).")
                if not (bad.any() or missing.any() or neg.any() or infinite.any()
                        or (num.abs() > 1e15).any()):
                    out[col.name] = np.round(num).astype("int64")
                else:
                    out[col.name] = num
            else:
                out[col.name] = num
        elif col.kind == "bool":
            vals, bad = _to_bool(s)
            if bad.any():
                problems.append(f"{name}.{col.name}: not a yes/no value in {bad.sum()} row(s) "
                                f"({format_ids(_ids(out, bad, id_col))}: "
                                f"{format_ids(s[bad].astype(str).tolist(), 3)}); use 是/否, 1/0 or "
                                f"true/false.")
            out[col.name] = vals
        else:
            filled = s.astype("string").str.strip().fillna("")
            if col.required:
                missing = (filled == "").to_numpy()
                if missing.any():
                    problems.append(f"{name}.{col.name}: empty in {missing.sum()} row(s) "
                                    f"({format_ids(_ids(out, missing, id_col))}); fill it in.")
            out[col.name] = filled.astype(object)
    return out


def _default(name: str, col: str, gdf: gpd.GeoDataFrame, plan, notes: list[str]) -> Any:
    """Value of an optional column the input lacks (noted)."""
    n = len(gdf)
    if name == "boundary" and col == "code":
        value: Any = plan.get("meta.district_code", "")
    elif name == "boundary" and col == "name":
        value = plan.get("meta.district_name", "")
    elif col == "kind" and name in ("townships", "villages") and "name" in gdf.columns:
        names = gdf["name"].astype(str)
        if name == "townships":
            value = names.map(lambda t: next((k for k in _TOWNSHIP_KINDS if t.endswith(k)), "")).tolist()
        else:
            value = np.where(names.str.endswith("社区"), "社区", "村").tolist()
        notes.append(f"{name}.kind: no column; derived from the names.")
        return value
    elif col in ("poverty_village", "deep_poverty"):
        notes.append(f"{name}.{col}: no column; every village counts as not {col.replace('_', ' ')}.")
        return np.zeros(n, dtype=bool)
    elif col in ("elevation_m", "poor_population"):
        return np.full(n, np.nan)  # poor_population: estimated in _poor_population
    elif col == "capacity_households":
        value = plan.get("relocation.sites.capacity_households", 0)
        notes.append(f"{name}.capacity_households: no column; every site takes {value} households "
                     f"(relocation.sites.capacity_households).")
        return np.full(n, int(value), dtype="int64")
    elif col == "name":
        key = SCHEMA[name][1]
        return gdf[key].astype(str).tolist() if key in gdf.columns else [""] * n
    elif col == "road_id":
        notes.append(f"{name}.road_id: no column; ids r1..r{n} assigned in file order.")
        return [f"r{i + 1}" for i in range(n)]
    elif col == "surface":
        return [""] * n  # filled from the class in _normalize_roads
    else:
        value = ""
    return [value] * n


#: ``settlements.poor_population_basis`` values: from the layer, or estimated by the tool.
POOR_BASIS_LAYER = "layer"
POOR_BASIS_ESTIMATED = "estimated"


def estimate_poor_population(s: gpd.GeoDataFrame, plan, problems: list[str], notes: list[str],
                     estimated: list[dict]) -> gpd.GeoDataFrame:
    """Registered poor people (建档立卡贫困人口) per settlement, checked, or estimated where missing.

    The plan's relocation quotas (ch.5) count registered poor people, not all residents. A layer
    without ``poor_population`` (or a row without a value) gets ``population`` x the plan file's
    ``baseline.poverty_incidence_pct``, rounded; ``poor_population_basis`` says which rows are
    estimated, a note and ``estimated`` (for :mod:`kaizhou_gis.provenance`) say so.
    """
    if "population" not in s.columns:
        return s
    s = s.copy()
    if "poor_population" not in s.columns:
        s["poor_population"] = np.nan
    poor = pd.to_numeric(s["poor_population"], errors="coerce").astype(float)
    pop = pd.to_numeric(s["population"], errors="coerce").astype(float)
    neg = (poor < 0).to_numpy()
    if neg.any():
        problems.append(f"settlements.poor_population: negative in {neg.sum()} row(s) "
                        f"({format_ids(_ids(s, neg, 'settlement_id'))}); counts must be ≥ 0.")
    over = (poor > pop + 1e-9).to_numpy()
    if over.any():
        problems.append(f"settlements.poor_population: more registered poor people than residents "
                        f"(population) in {over.sum()} row(s) "
                        f"({format_ids(_ids(s, over, 'settlement_id'))}); poor_population counts "
                        f"the registered poor (建档立卡贫困人口) among the residents, so it must not "
                        f"exceed population.")
    frac = (poor.notna() & (np.abs(poor - np.round(poor)) > 1e-9)).to_numpy()
    if frac.any():
        notes.append(f"settlements.poor_population: {frac.sum()} non-integer count(s) rounded "
                     f"({format_ids(_ids(s, frac, 'settlement_id'))}).")
    missing = poor.isna().to_numpy()
    incidence = float(plan.get("baseline.poverty_incidence_pct", 0.0))
    s["poor_population_basis"] = np.where(missing, POOR_BASIS_ESTIMATED, POOR_BASIS_LAYER)
    if missing.any():
        est = np.round(pop.fillna(0.0).to_numpy() * incidence / 100.0)
        poor = poor.where(~missing, est)
        whole = missing.all()
        where = ("no poor_population column" if whole else
                 f"poor_population empty in {missing.sum()} of {len(s)} row(s) "
                 f"({format_ids(_ids(s, missing, 'settlement_id'))})")
        notes.append(f"settlements.poor_population: {where}; registered poor people estimated as "
                     f"population x the plan's poverty incidence ({incidence:g} %, "
                     f"baseline.poverty_incidence_pct) = {int(est[missing].sum()):,} people "
                     f"(poor_population_basis = estimated). Give the column (建档立卡贫困人口) "
                     f"for the real figures.")
        estimated.append({
            "layer": "settlements", "column": "poor_population", "rows": int(missing.sum()),
            "of": int(len(s)),
            "how_zh": f"{'全部' if whole else f'{int(missing.sum())}个'}自然村缺少建档立卡贫困人口，"
                      f"按规划贫困发生率{incidence:g}%估算（人口×{incidence:g}%）",
            "how_en": f"registered poor people missing for {int(missing.sum())} of {len(s)} "
                      f"settlements; estimated as population x the plan's poverty incidence "
                      f"({incidence:g} %)"})
    if not (neg.any() or over.any()):
        s["poor_population"] = np.round(poor.fillna(0.0)).astype("int64")
    else:
        s["poor_population"] = poor
    return s


def _normalize_roads(roads: gpd.GeoDataFrame, plan, problems: list[str],
                     notes: list[str]) -> gpd.GeoDataFrame:
    """Map road classes and surfaces to the contract's values.

    * Ways of a class in ``layers.non_vehicle_classes`` (OSM footway, steps, cycleway, ...)
      carry no vehicle: they are left out of the roads (counted per class in the notes).
    * ``road_class`` through ``layers.road_class_values``; unknown values become 'other' (noted).
    * ``surface`` → paved (hardened, 硬化) / unpaved: a value in ``access.paved_surfaces`` is
      paved, one in ``access.unpaved_surfaces`` unpaved (``a;b`` lists: paved only when every
      part is). No surface: an OSM ``tracktype`` decides (``access.tracktype_paved``), else the
      class default ``layers.default_surface`` (a stated assumption). A value in neither list is
      **unknown**: it gets the class default too, and the values and counts are named in a note
      so the plan's lists can be completed.
    """
    out = roads.copy()
    raw = out["road_class"].astype(str).str.strip()
    excluded_classes = {str(v).strip().lower() for v in plan.get("layers.non_vehicle_classes", [])}
    excl = raw.str.lower().isin(excluded_classes).to_numpy()
    if excl.any():
        counts = raw[excl].str.lower().value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        notes.append(f"roads: {int(excl.sum())} way(s) of classes that carry no vehicle were left out "
                     f"of the network ({', '.join(f'{k} {v}' for k, v in counts.items())}; "
                     f"layers.non_vehicle_classes).")
        out = out[~excl]
        raw = raw[~excl]
    table = plan.get("layers.road_class_values", {}) or {}
    lookup = {str(v).strip().lower(): cls for cls, vals in table.items() for v in vals}
    for cls in ROAD_CLASSES:
        lookup.setdefault(cls, cls)
    mapped = raw.str.lower().map(lookup)
    unknown = mapped.isna() & (raw != "")
    if unknown.any():
        vals = sorted(raw[unknown].unique())
        notes.append(f"roads.road_class: {int(unknown.sum())} road(s) with unrecognized classes "
                     f"({format_ids(vals)}) count as 'other' (map them in the plan's "
                     f"layers.road_class_values).")
    out["road_class"] = mapped.fillna("other")
    # Geofabrik's shapefiles fold the tracktype into the class: fclass = track_grade1 ... 5
    tracktype = (out["tracktype"].fillna("").astype(str) if "tracktype" in out.columns
                 else pd.Series("", index=out.index))
    from_class = raw.str.lower().str.extract(r"^track_(grade[1-5])$")[0].fillna("")
    tracktype = tracktype.where(tracktype.str.strip() != "", from_class)
    out["surface"], surface_notes = classify_surfaces(out["surface"], out["road_class"], tracktype, plan)
    notes.extend(surface_notes)
    return out


def classify_surfaces(surface: pd.Series, road_class: pd.Series, tracktype: pd.Series | None,
                      plan) -> tuple[np.ndarray, list[str]]:
    """'paved' / 'unpaved' for every road, and the notes (see :func:`_normalize_roads`)."""
    paved_words = {str(v).strip().lower() for v in plan.get("access.paved_surfaces", ["paved"])}
    unpaved_words = {str(v).strip().lower() for v in plan.get("access.unpaved_surfaces", ["unpaved"])}
    track_paved = {str(v).strip().lower() for v in plan.get("access.tracktype_paved", [])}
    defaults = plan.get("layers.default_surface", {}) or {}
    surf = surface.fillna("").astype(str).str.strip()
    low = surf.str.lower()
    given = (low != "") & ~low.isin(["nan", "none", "null"])

    def kind(v: str) -> str:
        parts = [p.strip() for p in v.split(";") if p.strip()]
        if parts and all(p in paved_words for p in parts):
            return "paved"
        if parts and all(p in paved_words or p in unpaved_words for p in parts):
            return "unpaved"
        return "unknown"
    k = np.array([kind(v) if g else "" for v, g in zip(low, given)], dtype=object)
    default = road_class.map(lambda c: defaults.get(c, "unpaved")).to_numpy(dtype=object)
    out = np.where(k == "paved", "paved", np.where(k == "unpaved", "unpaved", default)).astype(object)
    notes: list[str] = []
    tt = (tracktype.fillna("").astype(str).str.strip().str.lower().to_numpy()
          if tracktype is not None else np.full(len(surf), "", dtype=object))
    by_tt = ~given.to_numpy() & (tt != "")
    if by_tt.any():
        out[by_tt] = np.where(np.isin(tt[by_tt], list(track_paved)), "paved", "unpaved")
        notes.append(f"roads.surface: {int(by_tt.sum())} way(s) without a surface tag classed by "
                     f"their tracktype ({int((out[by_tt] == 'paved').sum())} paved: "
                     f"access.tracktype_paved).")
    untagged = ~given.to_numpy() & ~by_tt
    if untagged.any():
        cls = pd.Series(road_class.to_numpy()[untagged]).value_counts()
        notes.append(f"roads.surface: {int(untagged.sum())} road(s) without a surface got the "
                     f"default of their class (layers.default_surface, an assumption: "
                     + ", ".join(f"{c} {n} -> {defaults.get(c, 'unpaved')}" for c, n in cls.items())
                     + ").")
    unk = k == "unknown"
    if unk.any():
        vals = pd.Series(surf.to_numpy()[unk]).value_counts()
        vals = vals.sort_index().sort_values(ascending=False, kind="stable")
        msg = (f"roads.surface: {int(unk.sum())} road(s) with a surface value in neither "
               f"access.paved_surfaces nor access.unpaved_surfaces ("
               + ", ".join(f"{v!r} {n}" for v, n in vals.head(12).items())
               + (", ..." if len(vals) > 12 else "")
               + ") got the default of their class (layers.default_surface); add the values to "
                 "one of the two lists in the plan file.")
        notes.append(msg)
        log.warning("%s", msg)
    return out, notes


# --------------------------------------------------------------------------------------------
# geometry


def _check_geometry(name: str, gdf: gpd.GeoDataFrame, problems: list[str],
                    notes: list[str]) -> gpd.GeoDataFrame:
    """Null/empty/invalid/wrong-type geometries; repairs invalid ones with make_valid."""
    kind, id_col, _ = SCHEMA[name]
    allowed, label = _GEOM_TYPES[kind]
    geom = gdf.geometry.values.copy()
    missing = shapely.is_missing(geom) | shapely.is_empty(geom)
    if missing.any():
        problems.append(f"{name}.geometry: empty or missing in {missing.sum()} row(s) "
                        f"({format_ids(_ids(gdf, missing, id_col))}); give each row a location "
                        f"or remove it.")
    present = ~missing
    invalid = present & ~shapely.is_valid(geom)
    if invalid.any():
        fixed = shapely.make_valid(geom[invalid])
        if kind == _POLYGON:
            fixed = np.array([_polygonal(g) for g in fixed], dtype=object)
        elif kind == _LINE:
            fixed = np.array([_lineal(g) for g in fixed], dtype=object)
        geom[invalid] = fixed
        still = invalid & (shapely.is_missing(geom) | shapely.is_empty(geom) | ~shapely.is_valid(geom))
        repaired = invalid & ~still
        if repaired.any():
            notes.append(f"{name}.geometry: {repaired.sum()} invalid geometr"
                         f"{'y' if repaired.sum() == 1 else 'ies'} repaired with make_valid "
                         f"({format_ids(_ids(gdf, repaired, id_col))}).")
        if still.any():
            problems.append(f"{name}.geometry: invalid and not repairable in {still.sum()} row(s) "
                            f"({format_ids(_ids(gdf, still, id_col))}); redraw them.")
            present = present & ~still
    types = shapely.get_type_id(geom)
    names = np.array(["" if t < 0 else _TYPE_NAMES[t] for t in types])
    if kind == _POINT:
        multi1 = present & (names == "MultiPoint") & (shapely.get_num_geometries(geom) == 1)
        if multi1.any():
            geom[multi1] = shapely.get_geometry(geom[multi1], 0)
            names[multi1] = "Point"
    wrong = present & ~np.isin(names, list(allowed))
    if wrong.any():
        found = sorted(set(names[wrong]))
        problems.append(f"{name}.geometry: wrong geometry type {', '.join(found)} in {wrong.sum()} "
                        f"row(s) ({format_ids(_ids(gdf, wrong, id_col))}); the {name} layer "
                        f"must hold {label} features.")
    out = gdf.copy()
    out[gdf.geometry.name] = gpd.GeoSeries(geom, index=gdf.index, crs=gdf.crs)
    return out


_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _polygonal(g):
    if g is None:
        return g
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in getattr(g, "geoms", []) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _lineal(g):
    if g is None:
        return g
    if g.geom_type in ("LineString", "MultiLineString"):
        return g
    parts = [p for p in getattr(g, "geoms", []) if p.geom_type in ("LineString", "MultiLineString")]
    return shapely.line_merge(shapely.union_all(parts)) if parts else shapely.LineString()


def _unique_road_ids(roads: gpd.GeoDataFrame, notes: list[str]) -> gpd.GeoDataFrame:
    """Repeated road ids get ``#1``, ``#2``, ... (route codes such as 路线编号 X203 are shared
    by every segment of the route; a road id only labels the segment)."""
    ids = roads["road_id"]
    dup = (ids.notna() & ids.duplicated(keep=False)).to_numpy()
    if not dup.any():
        return roads
    out = roads.copy()
    k = out.loc[dup, "road_id"].groupby(out.loc[dup, "road_id"]).cumcount() + 1
    out.loc[dup, "road_id"] = out.loc[dup, "road_id"].astype(str) + "#" + k.astype(str)
    shared = sorted(set(ids[dup].astype(str)))
    notes.append(f"roads.road_id: {int(dup.sum())} road(s) share {len(shared)} id(s) "
                 f"({format_ids(shared)}); each segment got #1, #2, ... after its id.")
    return out


def _clip_roads(roads: gpd.GeoDataFrame, area: tuple, notes: list[str]) -> gpd.GeoDataFrame:
    """An OSM extract larger than the district, cut to ``area`` = (polygon in the roads' CRS,
    margin in m, plan key): ways wholly outside are left out, ways crossing its edge are cut
    there (counted in ``notes``)."""
    poly, margin = area
    geoms = roads.geometry.values
    shapely.prepare(poly)
    inside = shapely.covers(poly, geoms)
    touches = shapely.intersects(poly, geoms)
    outside = ~touches
    crossing = touches & ~inside
    if not outside.any() and not crossing.any():
        return roads
    out = roads.copy()
    if crossing.any():
        cut = shapely.intersection(geoms[crossing], poly)
        out.loc[crossing, out.geometry.name] = np.array([_lineal(g) for g in cut], dtype=object)
    keep = ~outside & ~(shapely.is_empty(out.geometry.values) | shapely.is_missing(out.geometry.values))
    what = []
    if (~keep).any():
        what.append(f"{int((~keep).sum())} way(s) outside the boundary + {margin:g} m were left out")
    if crossing.any():
        what.append(f"{int(crossing.sum())} cut at the boundary + {margin:g} m")
    notes.append(f"roads: the OSM extract reaches beyond the district; {' and '.join(what)} "
                 f"(layers.osm_clip_margin_m).")
    return out[keep]


def _explode_roads(roads: gpd.GeoDataFrame, notes: list[str]) -> gpd.GeoDataFrame:
    """MultiLineStrings split into LineStrings; parts get ids ``<road_id>-1``, ``-2``, ..."""
    multi = (roads.geom_type == "MultiLineString").to_numpy()
    if not multi.any():
        return roads.reset_index(drop=True)
    n_parts = shapely.get_num_geometries(roads.geometry.values)
    ex = roads.explode(index_parts=True)
    part = ex.index.get_level_values(1).to_numpy()
    is_multi = np.repeat(multi & (n_parts > 1), np.maximum(n_parts, 1))[:len(ex)]
    ex = ex.reset_index(drop=True)
    ex.loc[is_multi, "road_id"] = (ex.loc[is_multi, "road_id"].astype(str) + "-"
                                   + (part[is_multi] + 1).astype(str))
    notes.append(f"roads: {multi.sum()} MultiLineString road(s) split into their parts "
                 f"(ids get -1, -2, ...).")
    return ex


# --------------------------------------------------------------------------------------------
# the whole check


def check_layers(path: str | Path | None = None, *, plan, crs: str | None = None,
                 encoding: str | None = None, coords: str = "wgs84") -> LayerReport:
    """Read and check every layer; collect every problem instead of stopping at the first.

    Parameters
    ----------
    path : str or Path, optional
        GeoPackage, folder or TOML mapping (see the module docstring); None for the default
        layers (:func:`default_layers_dir`).
    plan : Plan
        Gives the work CRS, the column aliases and the checking tolerances.
    crs : str, optional
        CRS of layers (and a DEM) that declare none, e.g. ``"EPSG:4490"``.
    encoding : str, optional
        Text encoding of Shapefiles without a ``.cpg`` (e.g. ``"GBK"``).
    coords : {"wgs84", "gcj02"}
        ``"gcj02"``: vector coordinates are GCJ-02 (Gaode/AMap) and are converted to WGS84 first.

    Returns
    -------
    LayerReport
    """
    from kaizhou_gis.errors import OptionError

    if coords not in ("wgs84", "gcj02"):
        raise OptionError(f"--coords {coords}: use wgs84 or gcj02.")
    if crs is not None:
        try:
            CRS.from_user_input(crs)
        except Exception as e:  # pyproj CRSError
            raise OptionError(f"--crs {crs}: not a CRS ({e}); use an EPSG code like EPSG:4490.") from None
    if encoding is not None and not _known_encoding(encoding):
        raise OptionError(f"--encoding {encoding}: not a known text encoding; use e.g. GBK, "
                          f"GB18030 or UTF-8.")
    problems: list[str] = []
    notes: list[str] = []
    db_url = None
    from kaizhou_gis import dbio
    if dbio.is_db_url(path):  # postgresql://USER@HOST:PORT/DB?schema=S
        tables, dem_path, target = dbio.resolve_url(path, VECTOR_LAYERS, OPTIONAL_LAYERS, problems)
        sources = {n: _Source(Path(d.describe()), db=d) for n, d in tables.items()}
        dem_src = _Source(dem_path) if dem_path is not None else None
        db_url, path, folder = target.describe(), Path.cwd(), Path.cwd()
    else:
        path = Path(path) if path is not None else default_layers_dir()
        sources, dem_src, folder = _resolve(path, problems)
    description = db_url or str(path)
    report_rows: list[dict] = []
    aliases = plan.section("aliases")
    loaded: dict[str, gpd.GeoDataFrame] = {}
    metadata: dict[str, dict] = {}
    if path.exists() and db_url is None:
        for name in VECTOR_LAYERS:
            if name not in sources:
                if name == "roads" and any(problem.startswith("roads: several OSM files")
                                           for problem in problems):
                    continue
                osm_hint = (" (for roads also an OpenStreetMap extract: roads.osm.pbf, or the only "
                            "*.osm.pbf / *.osm / *.pbf file in the folder)" if name == "roads" else "")
                problems.append(f"{name}: layer not found in {path}; add a '{name}' layer to the "
                                f"GeoPackage, a {name}.<shp|gpkg|geojson|...> file to the folder"
                                f"{osm_hint}, or a '{name} = \"file\"' line to the TOML mapping.")
    for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
        src = sources.get(name)
        if src is None:
            continue
        row: dict[str, Any] = {"layer": name, "file": src.describe(), "rows": 0, "crs": "",
                               "bounds": None}
        clip_to = None
        if name == "roads" and _is_osm(src.path) and loaded.get("boundary") is not None:
            clip_to = _clip_area(loaded["boundary"], plan)
        first_problem = len(problems)
        try:
            gdf = _load_one(name, src, plan=plan, crs=crs, encoding=encoding, coords=coords,
                            aliases=aliases, problems=problems, notes=notes, row=row,
                            clip_to=clip_to)
        except Exception as e:  # a file this module did not foresee: report it, never a traceback
            log.debug("reading %s failed", name, exc_info=True)
            problems.append(f"{name}: cannot use {src.describe()} ({type(e).__name__}: {e}); "
                            f"check the file against the layer contract (README.md, "
                            f"'Layer contract').")
            gdf = None
        if src.db is not None:  # name schema.table.column in what was found
            dbio.name_columns(problems, first_problem, name, src.db)
        if gdf is not None:
            loaded[name] = gdf
            meta = _layer_metadata(src)
            if meta:
                metadata[name] = meta
        report_rows.append(row)
    dem_row: dict[str, Any] = {"layer": "dem", "file": dem_src.describe() if dem_src else "",
                               "rows": "", "crs": "", "bounds": None}
    dem_info: dict[str, Any] = {"path": None}
    if path.exists() and (db_url is None or dem_src is not None):  # (database: dbio said it)
        try:
            dem_info = _check_dem(dem_src, path, crs=crs, problems=problems, notes=notes,
                                  row=dem_row, frames=list(loaded.values()),
                                  margin_m=dem_window_margin_m(plan))
        except rasterio.errors.RasterioIOError as e:  # opened, but its data cannot be read
            log.debug("checking the DEM failed", exc_info=True)
            problems.append(checks.dem_read_problem(dem_src.describe() if dem_src else str(path), e))
            dem_info = {"path": None}
        except Exception as e:  # rasterio errors on odd rasters
            log.debug("checking the DEM failed", exc_info=True)
            problems.append(f"dem: cannot use {dem_src.describe() if dem_src else path} "
                            f"({type(e).__name__}: {e}); give a single-band elevation raster.")
            dem_info = {"path": None}
    estimated: list[dict] = []
    if "settlements" in loaded:
        loaded["settlements"] = estimate_poor_population(loaded["settlements"], plan, problems, notes,
                                                 estimated)
    _cross_checks(loaded, dem_info, plan, problems, notes)
    checks.dem_point_problems(loaded, dem_info, plan, problems, notes)
    checks.count_problems(loaded, plan, problems, notes)
    checks.encoding_problems(loaded, plan, problems, encoding=encoding,
                             layer_encodings={n: s.encoding for n, s in sources.items()})
    # count problems per layer by their "layer." / "layer:" prefix
    for row in report_rows + [dem_row]:
        row["problems"] = sum(1 for p in problems if re.match(rf"^{row['layer']}[.:\s]", p))
    if path.exists():
        report_rows.append(dem_row)
    ok = not problems
    layers = None
    if ok:
        loaded = {n: canonical_order(n, g) for n, g in loaded.items()}
        layers = Layers(
            boundary=loaded["boundary"], townships=loaded["townships"],
            township_seats=loaded["township_seats"], villages=loaded["villages"],
            settlements=loaded["settlements"], roads=loaded["roads"],
            dem_path=str(dem_info["path"]), sites=loaded.get("sites"),
            source=description, attribution=_attribution(folder), notes=list(notes),
            dem_crs=dem_info.get("assigned_crs"), metadata=metadata, estimated=estimated,
            dem_tiles=tuple(str(t) for t in dem_info.get("tiles", ())),
            dem_nodata=dem_info.get("void_value"), dem_window=dem_info.get("window"))
    for n in notes:
        log.info("%s", n)
    return LayerReport(ok=ok, layers=layers, rows=report_rows, problems=problems, notes=notes,
                       source=description)


def osm_roads_layer(osm: str | Path, boundary: str | Path, *, plan,
                    crs: str | None = None) -> tuple[gpd.GeoDataFrame, list[str]]:
    """The roads layer of a district from a (large) OSM extract: the highway ways near the
    district (boundary + ``layers.osm_clip_margin_m``), cut at that line, without the classes
    that carry no vehicle; raw OSM values (``road_class`` = highway, ``surface``, ``tracktype``)
    kept for the loader to classify. Returns the layer (EPSG:4326) and the notes."""
    notes: list[str] = []
    try:
        b = pyogrio.read_dataframe(boundary)
    except Exception as e:  # pyogrio errors
        raise LayerError(f"boundary: cannot read {boundary} ({type(e).__name__}: {e}); give the "
                         f"district boundary as GeoJSON, GeoPackage or Shapefile.") from None
    if b.crs is None:
        if crs is None:
            raise LayerError(f"boundary: {boundary} declares no CRS; pass --crs (e.g. EPSG:4490).")
        b = b.set_crs(crs)
    b = b.to_crs(plan.work_crs)
    area = _clip_area(b, plan)
    if area is None:
        raise LayerError(f"boundary: {boundary} holds no polygon; give the district boundary.")
    bbox = tuple(transformer(plan.work_crs, "EPSG:4326").transform_bounds(*area[0].bounds))
    roads = read_osm_roads(osm, notes=notes, bbox=bbox).to_crs(plan.work_crs)
    roads = _clip_roads(roads, area, notes)
    excluded = {str(v).strip().lower() for v in plan.get("layers.non_vehicle_classes", [])}
    excl = roads["road_class"].str.lower().isin(excluded).to_numpy()
    if excl.any():
        counts = roads.loc[excl, "road_class"].str.lower().value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        notes.append(f"roads: {int(excl.sum())} way(s) of classes that carry no vehicle were left "
                     f"out ({', '.join(f'{k} {v}' for k, v in counts.items())}; "
                     f"layers.non_vehicle_classes).")
    return roads[~excl].to_crs("EPSG:4326").reset_index(drop=True), notes


def _clip_area(boundary: gpd.GeoDataFrame, plan) -> tuple | None:
    """(district boundary + layers.osm_clip_margin_m, margin) in the boundary's CRS, or None."""
    if boundary.crs is None or boundary.empty:
        return None
    g = boundary.geometry.values
    g = g[~(shapely.is_missing(g) | shapely.is_empty(g))]
    if not len(g):
        return None
    margin = float(plan.get("layers.osm_clip_margin_m", 3000.0))
    return shapely.buffer(shapely.union_all(g), margin), margin


def canonical_order(name: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The layer's rows sorted by its id column (ties: by geometry WKB, then the other columns),
    index 0..n-1: every step then sees the same rows in the same order whatever order the file
    gave them in (a File Geodatabase may return rows in another order than a GeoPackage)."""
    if gdf is None or len(gdf) < 2:
        return gdf
    id_col = SCHEMA[name][1] if name in SCHEMA else None
    geom = gdf.geometry
    other = [c for c in gdf.columns if c not in (id_col, geom.name)]
    keys = pd.DataFrame({
        "id": gdf[id_col].astype(str).to_numpy() if id_col in gdf.columns else "",
        "wkb": [None if g is None else shapely.to_wkb(g, hex=True, output_dimension=2)
                for g in geom.array],
        "rest": ["\x1f".join(map(str, r)) for r in gdf[other].itertuples(index=False, name=None)]
        if other else ""})
    order = keys.fillna("").sort_values(["id", "wkb", "rest"], kind="mergesort").index.to_numpy()
    if (order == np.arange(len(gdf))).all():
        return gdf.reset_index(drop=True)
    return gdf.iloc[order].reset_index(drop=True)


def load_layers(path: str | Path | None = None, *, plan, crs: str | None = None,
                encoding: str | None = None, coords: str = "wgs84") -> Layers:
    """Read, check and reproject the input layers; raise one LayerError listing every problem.

    Parameters are those of :func:`check_layers`.

    Returns
    -------
    Layers
        Vector layers in ``plan.work_crs`` with the contract's columns and types.

    Raises
    ------
    LayerError
        When any layer is missing, unreadable or breaks the layer contract.
    """
    report = check_layers(path, plan=plan, crs=crs, encoding=encoding, coords=coords)
    if not report.ok:
        raise LayerError(report.problem_text())
    return report.layers


def _lonlat_bounds(gdf: gpd.GeoDataFrame) -> tuple[float, float, float, float] | None:
    if gdf.empty:
        return None
    b = gdf.total_bounds
    if not np.all(np.isfinite(b)):
        return None
    t = transformer(gdf.crs, "EPSG:4326")
    return tuple(float(x) for x in t.transform_bounds(*b))


def _load_one(name: str, src: _Source, *, plan, crs, encoding, coords, aliases, problems,
              notes, row, clip_to=None) -> gpd.GeoDataFrame | None:
    if _is_osm(src.path) and name != "roads":
        problems.append(f"{name}: OSM files are read as roads only; give {name} as "
                        f"GeoPackage, Shapefile or GeoJSON.")
        return None
    bbox = None
    if clip_to is not None:  # read only the OSM ways near the district
        bbox = tuple(transformer(plan.work_crs, "EPSG:4326").transform_bounds(*clip_to[0].bounds))
    try:
        raw = _read_vector(name, src, encoding, notes, bbox=bbox)
    except LayerError as e:
        problems.append(str(e))
        return None
    except Exception as e:  # GDAL/pyogrio errors come in many types
        problems.append(f"{name}: cannot read {src.describe()} ({type(e).__name__}: {e}); "
                        f"check that GDAL can open it (ogrinfo) and that the layer name is right.")
        return None
    if not isinstance(raw, gpd.GeoDataFrame) or raw.geometry.name not in raw.columns:
        problems.append(f"{name}: {src.describe()} has no geometry column; give the layer "
                        f"geometries (for a table with lon/lat columns, save it as GeoJSON first).")
        return None
    row["rows"] = len(raw)
    if len(raw) == 0 and name in NONEMPTY_LAYERS:
        problems.append(f"{name}: the layer has no features ({src.describe()}); the analysis "
                        f"needs the district's {name.replace('_', ' ')} - give the layer with "
                        f"its features (check the file, the layer name and any filter used "
                        f"to export it).")
    layer_crs = src.crs or None
    if raw.crs is None:
        given = layer_crs or crs
        if given is None:
            problems.append(f"{name}: no CRS ({src.describe()} declares none); pass --crs (e.g. "
                            f"--crs EPSG:4490 for CGCS2000 lon/lat) or add a .prj / set the CRS "
                            f"in the file.")
            row["crs"] = "none"
        else:
            raw = raw.set_crs(given)
            notes.append(f"{name}: no CRS in the file; using {given}.")
    elif layer_crs is not None:
        raw = raw.set_crs(layer_crs, allow_override=True)
    nonfinite = checks.nonfinite_rows(raw)
    if nonfinite.any():
        ids = _ids(_apply_aliases(raw, name, aliases, []), nonfinite, SCHEMA[name][1])
        problems.append(f"{name}.geometry: coordinates that are not numbers (NaN or infinite) in "
                        f"{nonfinite.sum()} row(s) ({format_ids(ids)}); give those features real "
                        f"coordinates (an empty lon/lat cell becomes NaN) or remove them.")
        return None
    if raw.crs is not None and raw.crs.is_geographic and len(raw):
        gb = shapely.bounds(raw.geometry.values)  # NaN rows for missing/empty geometries
        with np.errstate(invalid="ignore"):
            off = (gb[:, 0] < -180) | (gb[:, 2] > 180) | (gb[:, 1] < -90) | (gb[:, 3] > 90)
        has = ~np.isnan(gb).any(axis=1)
        if off.any() and checks.swapped_lonlat(gb[off & has]):
            ids = _ids(_apply_aliases(raw, name, aliases, []), off, SCHEMA[name][1]) \
                if not off[has].all() else None
            problems.append(checks.swapped_message(name, gb[off & has], ids))
            row["crs"] = _crs_label(raw.crs)
            return None
        if off.any() and off[has].all():
            b = (np.nanmin(gb[:, 0]), np.nanmin(gb[:, 1]), np.nanmax(gb[:, 2]), np.nanmax(gb[:, 3]))
            extent = f"x {b[0]:.6g} .. {b[2]:.6g}, y {b[1]:.6g} .. {b[3]:.6g}"
            if crs is not None and layer_crs is None \
                    and src.path.suffix.lower() in (".geojson", ".json"):
                # GeoJSON without a "crs" member is read as WGS84 whatever its coordinates are
                raw = raw.set_crs(crs, allow_override=True)
                notes.append(f"{name}: {src.describe()} declares no CRS and its coordinates are "
                             f"not lon/lat ({extent}); using --crs {crs}.")
            else:
                problems.append(
                    f"{name}: coordinates are not longitude/latitude ({extent}) although the "
                    f"layer's CRS is {_crs_label(raw.crs)} (GeoJSON without a \"crs\" member is "
                    f"always read as WGS84); give the layer's real CRS: --crs EPSG:4545 (say) "
                    f"for a GeoJSON file, `crs = \"EPSG:...\"` for this layer in a TOML mapping, "
                    f"or fix the .prj.")
                row["crs"] = _crs_label(raw.crs)
                return None
        elif off.any():
            id_col = SCHEMA[name][1]
            ids = _ids(_apply_aliases(raw, name, aliases, []), off, id_col)
            problems.append(f"{name}.geometry: longitude/latitude out of range in {off.sum()} "
                            f"row(s) ({format_ids(ids)}); correct their coordinates.")
            row["crs"] = _crs_label(raw.crs)
            return None
    if raw.crs is not None:
        row["crs"] = _crs_label(raw.crs)
    gdf = _apply_aliases(raw, name, aliases, notes)
    given_cols = set(gdf.columns)
    gdf = _check_geometry(name, gdf, problems, notes)
    if name == "roads" and "road_id" not in gdf.columns:
        gdf["road_id"] = [f"r{i + 1}" for i in range(len(gdf))]
        notes.append(f"roads.road_id: no column; ids r1..r{len(gdf)} assigned in file order.")
    gdf = _check_columns(name, gdf, plan, problems, notes)
    if name == "roads" and "road_class" in gdf.columns:
        gdf = _normalize_roads(gdf, plan, problems, notes)
    if name == "roads" and "road_id" in gdf.columns:
        gdf = _unique_road_ids(gdf, notes)
    if name == "townships" and "kind" in gdf.columns:
        bad = ~gdf["kind"].isin(_TOWNSHIP_KINDS).to_numpy()
        if bad.any() and "kind" not in given_cols:
            notes.append(f"townships.kind: {bad.sum()} name(s) end in none of 街道/镇/乡 "
                         f"({format_ids(_ids(gdf, bad, 'township_code'))}); kind left empty.")
        elif bad.any():
            problems.append(f"townships.kind: not 街道/镇/乡 in {bad.sum()} row(s) "
                            f"({format_ids(_ids(gdf, bad, 'township_code'))}); use 街道, 镇 or 乡.")
    if name == "villages" and "kind" in gdf.columns:
        bad = ~gdf["kind"].isin(_VILLAGE_KINDS).to_numpy()
        if bad.any():
            problems.append(f"villages.kind: not 村/社区 in {bad.sum()} row(s) "
                            f"({format_ids(_ids(gdf, bad, 'village_code'))}); use 村 or 社区.")
    if gdf.crs is None:
        return gdf
    use_gcj = (src.coords or coords) == "gcj02"
    usable = ~(shapely.is_missing(gdf.geometry.values) | shapely.is_empty(gdf.geometry.values))
    if use_gcj:
        from kaizhou_gis.terrain.coords import convert_gcj02_to_wgs84
        gdf = gdf.copy()
        if usable.any():
            sub = gdf.loc[usable]
            gdf.loc[usable, gdf.geometry.name] = convert_gcj02_to_wgs84(sub.geometry).values
        notes.append(f"{name}: coordinates converted from GCJ-02 to WGS84.")
    if usable.any():
        row["bounds"] = _lonlat_bounds(gdf.loc[usable])
    try:
        gdf = gdf.to_crs(plan.work_crs)
    except Exception as e:  # pyproj errors
        problems.append(f"{name}: cannot reproject from {_crs_label(gdf.crs)} to {plan.work_crs} "
                        f"({e}); check the layer's CRS.")
        return None
    if name == "roads" and clip_to is not None and _is_osm(src.path):
        gdf = _clip_roads(gdf, clip_to, notes)
    if name == "roads":
        gdf = _explode_roads(gdf, notes)
    ordered = [c.name for c in SCHEMA[name][2] if c.name in gdf.columns]
    rest = [c for c in gdf.columns if c not in ordered and c != gdf.geometry.name]
    gdf = gdf[ordered + rest + [gdf.geometry.name]]
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    return gdf.reset_index(drop=True)


def _crs_label(crs) -> str:
    try:
        epsg = crs.to_epsg()
    except Exception:  # pyproj may fail on odd WKT
        epsg = None
    return f"EPSG:{epsg}" if epsg else crs.name


def _check_dem(src: _Source | None, path: Path, *, crs, problems, notes, row, frames=(),
               margin_m: float = 0.0) -> dict:
    """Check the DEM; its cells are read only in the district's window (:func:`dem_window` of the
    loaded vector ``frames`` plus ``margin_m``), never the whole raster beyond it."""
    info: dict[str, Any] = {"path": None}
    if src is None:
        problems.append(f"dem: no DEM found with the layers ({path}); put a GeoTIFF named dem.tif "
                        f"(or an SRTM .hgt such as N31E108.hgt) next to them, or a 'dem = \"...\"' "
                        f"line in the TOML mapping.")
        return info
    try:
        ds = open_raster(src.path, src.tiles)
    except LayerError as e:
        problems.append(str(e))
        return info
    except Exception as e:  # rasterio.errors.RasterioIOError and friends
        problems.append(f"dem: cannot read {src.describe()} ({e}); give a raster GDAL reads "
                        f"(GeoTIFF, SRTM .hgt, a .vrt) or a folder of such tiles.")
        return info
    with ds:
        info["path"] = src.path
        if src.tiles:
            info["tiles"] = src.tiles
            notes.append(f"dem: {len(src.tiles)} tiles mosaicked on the fly "
                         f"({format_ids([t.name for t in src.tiles])}).")
        row["rows"] = f"{ds.width}x{ds.height}"
        dem_crs = ds.crs
        if dem_crs is None:
            given = src.crs or crs
            if given is None:
                problems.append(f"dem: {src.describe()} has no CRS; pass --crs (e.g. EPSG:4326 for "
                                f"SRTM lon/lat) or set it with gdal_edit.py -a_srs.")
                row["crs"] = "none"
            else:
                dem_crs = CRS.from_user_input(given)
                info["assigned_crs"] = str(given)
                notes.append(f"dem: no CRS in the file; using {given}.")
        if dem_crs is not None:
            row["crs"] = _crs_label(dem_crs)
            info["crs"] = dem_crs
            b = ds.bounds
            info["bounds"] = (b.left, b.bottom, b.right, b.top)
            t = transformer(dem_crs, "EPSG:4326")
            row["bounds"] = tuple(float(x) for x in t.transform_bounds(*info["bounds"]))
        window = dem_window(ds, frames, margin_m, dem_crs=dem_crs) if dem_crs is not None else None
        if window is not None:
            info["window"] = (int(window.col_off), int(window.row_off), int(window.width),
                              int(window.height))
            notes.append(f"dem: only the district's window is read: {int(window.width)}x"
                         f"{int(window.height)} of the DEM's {ds.width}x{ds.height} cells "
                         f"(the layers' extent plus {margin_m:,.0f} m: the longest new link "
                         f"searched or the relocation terrain radius).")
        with (open_raster(src.path, src.tiles, window=window) if window is not None
              else contextlib.nullcontext(ds)) as wds:
            # every cell readable (a truncated file fails here), untagged voids, impossible values
            inspected = checks.inspect_dem(wds, src.describe(), problems, notes,
                                           scope="" if window is None else " in the district's window")
            if not inspected:
                return {"path": None}
            info.update(inspected)
            # all-nodata check on a decimated read (cheap for any size)
            h = min(wds.height, 512)
            w = min(wds.width, 512)
            band = wds.read(1, out_shape=(h, w), masked=True)
            if info.get("void_value") is not None:
                band = np.ma.masked_equal(band, info["void_value"])
            if band.mask.all() if np.ndim(band.mask) else bool(band.mask):
                where = "" if window is None else " over the district (its layers' extent)"
                problems.append(f"dem: {src.describe()} holds only nodata ({ds.nodata}){where}; "
                                f"give a DEM with elevations there.")
        info["nodata"] = ds.nodata
    return info


def _dem_band(path, tiles=(), void=None, window=None) -> tuple[np.ma.MaskedArray | None, Any]:
    """The DEM band in the district's ``window`` (the whole DEM when None; masked at nodata and
    at ``void``) and its transform when small enough to hold, else None."""
    with open_raster(path, tiles, window=window) as ds:
        if ds.width * ds.height > MAX_DEM_CELLS_IN_MEMORY:
            return None, ds.transform
        band = ds.read(1, masked=True)
        return (band if void is None else np.ma.masked_equal(band, void)), ds.transform


def _cross_checks(layers: dict[str, gpd.GeoDataFrame], dem: dict, plan, problems: list[str],
                  notes: list[str]) -> None:
    """Duplicates, references between layers, features outside the boundary or the DEM."""
    dup_cols = {"townships": "township_code", "township_seats": "township_code",
                "villages": "village_code", "settlements": "settlement_id",
                "roads": "road_id", "sites": "site_id"}
    for name, col in dup_cols.items():
        gdf = layers.get(name)
        if gdf is None or col not in gdf.columns:
            continue
        vals = gdf[col]
        dup = vals.notna() & vals.duplicated(keep=False)
        if dup.any():
            ids = sorted(set(vals[dup].astype(str)))
            problems.append(f"{name}.{col}: duplicate codes ({len(ids)}: {format_ids(ids)}); "
                            f"every {col} must be unique.")
    refs = [("villages", "township_code", "townships", "township_code", "village_code"),
            ("township_seats", "township_code", "townships", "township_code", "township_code"),
            ("settlements", "village_code", "villages", "village_code", "settlement_id"),
            ("sites", "township_code", "townships", "township_code", "site_id")]
    for child, ccol, parent, pcol, id_col in refs:
        c, p = layers.get(child), layers.get(parent)
        if c is None or p is None or ccol not in c.columns or pcol not in p.columns:
            continue
        known = set(p[pcol].dropna().astype(str))
        bad = (c[ccol].notna() & ~c[ccol].astype(str).isin(known)).to_numpy()
        if bad.any():
            unknown = sorted(set(c.loc[bad, ccol].astype(str)))
            problems.append(f"{child}.{ccol}: {bad.sum()} row(s) ({format_ids(_ids(c, bad, id_col))}) "
                            f"point to unknown {parent} ({format_ids(unknown)}); add them to the "
                            f"{parent} layer or correct the codes.")
    seats, tw = layers.get("township_seats"), layers.get("townships")
    if seats is not None and tw is not None and "township_code" in tw.columns \
            and "township_code" in seats.columns:
        missing = sorted(set(tw["township_code"].dropna().astype(str))
                         - set(seats["township_code"].dropna().astype(str)))
        if missing:
            problems.append(f"township_seats.township_code: no seat for {len(missing)} township(s) "
                            f"({format_ids(missing)}); add one seat point per township.")
    points = [("township_seats", "township_code"), ("villages", "village_code"),
              ("settlements", "settlement_id"), ("sites", "site_id")]
    boundary = layers.get("boundary")
    if boundary is not None and not boundary.empty and boundary.crs is not None:
        tol = float(plan.get("layers.boundary_tolerance_m", 100.0))
        geoms = boundary.geometry.values
        geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if len(geoms):
            area = shapely.buffer(shapely.union_all(geoms), tol)
            shapely.prepare(area)
            for name, id_col in points:
                g = layers.get(name)
                if g is None or g.crs is None:
                    continue
                pts = g.geometry.values
                usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
                pts_rep = shapely.point_on_surface(pts[usable])
                out = np.zeros(len(g), dtype=bool)
                out[usable] = ~shapely.covers(area, pts_rep)
                if out.any():
                    problems.append(f"{name}.geometry: {out.sum()} feature(s) outside the district "
                                    f"boundary (more than {tol:g} m; "
                                    f"{format_ids(_ids(g, out, id_col))}); check their "
                                    f"coordinates and CRS (GCJ-02 data needs --coords gcj02).")
            if tw is not None and tw.crs is not None and not tw.empty:
                polys = tw.geometry.values
                usable = ~(shapely.is_missing(polys) | shapely.is_empty(polys))
                out = np.zeros(len(tw), dtype=bool)
                out[usable] = ~shapely.covers(area, shapely.point_on_surface(polys[usable]))
                if out.any():
                    problems.append(f"townships.geometry: {out.sum()} township(s) outside the "
                                    f"district boundary ({format_ids(_ids(tw, out, 'township_code'))}); "
                                    f"check their coordinates and CRS.")
    if dem.get("bounds") is not None and dem.get("crs") is not None:
        x0, y0, x1, y1 = dem["bounds"]
        band, dem_transform = _dem_band(dem["path"], dem.get("tiles", ()), dem.get("void_value"),
                                        dem.get("window"))
        for name, id_col in points:
            g = layers.get(name)
            if g is None or g.crs is None or g.empty:
                continue
            pts = g.geometry.values
            usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
            xy = shapely.get_coordinates(shapely.point_on_surface(pts[usable]))
            t = transformer(g.crs, dem["crs"])
            x, y = t.transform(xy[:, 0], xy[:, 1])
            out = np.zeros(len(g), dtype=bool)
            out[usable] = ~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
            if out.any():
                problems.append(f"{name}.geometry: {out.sum()} feature(s) outside the DEM "
                                f"({format_ids(_ids(g, out, id_col))}); give a DEM that covers "
                                f"the whole district (put all its SRTM .hgt / GeoTIFF tiles in "
                                f"the layers folder or a dem/ folder next to the layers; they "
                                f"are mosaicked on the fly).")
            inside = np.zeros(len(g), dtype=bool)
            inside[usable] = ~out[usable]
            if band is not None and inside.any():
                rows, cols = rasterio.transform.rowcol(dem_transform, x, y)
                rows = np.clip(np.asarray(rows), 0, band.shape[0] - 1)
                cols = np.clip(np.asarray(cols), 0, band.shape[1] - 1)
                void = np.zeros(len(g), dtype=bool)
                void[usable] = np.ma.getmaskarray(band)[rows, cols] & inside[usable]
                if void.any():
                    notes.append(f"{name}: {void.sum()} feature(s) on DEM nodata (voids: "
                                 f"{format_ids(_ids(g, void, id_col))}); their elevation is "
                                 f"unknown (NaN) unless the DEM is filled.")
