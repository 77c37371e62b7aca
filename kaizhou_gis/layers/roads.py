"""Road classes and surfaces mapped to the contract's values (:func:`classify_surfaces`), road ids
made unique, multi-part roads split.
"""
from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import format_ids
from kaizhou_gis.layers.contract import ROAD_CLASSES

#: one logger for the layer package (its messages read "kaizhou_gis.layers: ..." as before the split)
log = logging.getLogger("kaizhou_gis.layers")


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
