"""The layer contract: layer names, file suffixes, the columns and geometry kind of every
layer (:data:`SCHEMA`), the road classes, and the row ids named in messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Layer names of the contract, in the order they are checked and reported.
VECTOR_LAYERS = ("boundary", "townships", "township_seats", "villages", "settlements", "roads")

OPTIONAL_LAYERS = ("sites",)

#: Layers that must hold at least one feature (settlements and sites may be empty).
NONEMPTY_LAYERS = ("boundary", "townships", "township_seats", "villages", "roads")

#: The shipped layers next to the package: ``<repository>/layers`` in a source checkout or an
#: editable install (see :func:`default_layers_dir` for a non-editable install).
DEFAULT_LAYERS_DIR = Path(__file__).resolve().parent.parent.parent / "layers"

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
