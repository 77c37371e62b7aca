"""Geometry checks of one layer: missing, invalid (repaired with make_valid) and wrong-type
geometries.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from kaizhou_gis.errors import format_ids
from kaizhou_gis.layers.contract import _GEOM_TYPES, _LINE, _POINT, _POLYGON, SCHEMA, _ids


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
