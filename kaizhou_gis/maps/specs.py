"""Layer specs: compact JSON descriptions of a map layer (:class:`LayerSpec`) drawn by
``assets/kaizhou-maps.js`` in the browser and by :mod:`kaizhou_gis.maps.sheet` on paper."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.maps.styles import LAYER_Z

# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _text(v: Any) -> Any:
    """A layer value as a JSON-friendly popup value (None for missing)."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "是 yes" if v else "否 no"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return None
        return round(float(v), 1) if abs(float(v) - round(float(v))) > 1e-9 else int(round(float(v)))
    if isinstance(v, (int, np.integer)):
        return int(v)
    if v is pd.NA or v is pd.NaT:
        return None
    s = str(v)
    return s if s.strip() != "" else None


def _col(df: pd.DataFrame | None, name: str, default: Any = None) -> pd.Series:
    if df is not None and name in df.columns:
        return df[name]
    idx = df.index if df is not None else pd.RangeIndex(0)
    return pd.Series(default, index=idx, dtype=object)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _bool(s: pd.Series) -> pd.Series:
    return s.map(lambda v: bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v))
                 and v is not pd.NA else False).astype(bool)


def _round_coords(coords: np.ndarray, decimals: int) -> list:
    """(x, y) array → list of [lat, lon] rounded."""
    return np.round(coords[:, ::-1], decimals).tolist()


def _line_coords(geom, decimals: int) -> list:
    parts = shapely.get_parts(geom)
    out = [_round_coords(shapely.get_coordinates(p), decimals) for p in parts if not p.is_empty]
    return out[0] if len(out) == 1 else out


def _polygon_coords(geom, decimals: int) -> list:
    polys = []
    for p in shapely.get_parts(geom):
        if p.is_empty or p.geom_type != "Polygon":
            continue
        rings = [_round_coords(np.asarray(p.exterior.coords), decimals)]
        rings += [_round_coords(np.asarray(r.coords), decimals) for r in p.interiors]
        polys.append(rings)
    return polys[0] if len(polys) == 1 else polys


@dataclass
class Field:
    """One popup row: column, bilingual label, optional formatter."""

    column: str
    label: str
    fmt: Callable[[Any], Any] | None = None


def _fmt_m(v: Any) -> Any:
    v = _text(v)
    return None if v is None else f"{v:,.0f} m" if isinstance(v, (int, float)) else v


def _fmt_deg(v: Any) -> Any:
    v = _text(v)
    return None if v is None else f"{v:.1f}°" if isinstance(v, (int, float)) else v


def _fmt_km(v: Any) -> Any:
    v = _text(v)
    return None if v is None else f"{v:,.1f} km" if isinstance(v, (int, float)) else v


def _fmt_wan_yuan(v: Any) -> Any:
    v = _text(v)
    return None if v is None else f"{v / 1e4:,.0f} 万元" if isinstance(v, (int, float)) else v


def _fmt_ids(v: Any) -> Any:
    v = _text(v)
    if v is None:
        return None
    ids = [x for x in str(v).split(";") if x]
    return f"{len(ids)}: " + ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")


@dataclass
class LayerSpec:
    """A map layer as a compact JSON spec for ``KZ.layer`` plus its legend and control settings."""

    key: str
    label: str
    kind: str
    cats: list[dict]
    data: list
    fields: list[str] = field(default_factory=list)
    title_field: int = -1
    show: bool = True
    cluster: bool = False
    radius: float = 5.0
    legend_note: str = ""
    #: drawn in the compact form of a large district page (:data:`styles.DISTRICT_DETAIL_MAX`)
    compact: bool = False
    #: index of the field holding the township code its popup links to (-1: no link)
    link: int = -1

    def to_json(self) -> dict:
        out = {"key": self.key, "label": self.label, "kind": self.kind, "cats": self.cats,
               "data": self.data, "f": self.fields, "tf": self.title_field,
               "cluster": self.cluster, "radius": self.radius, "z": LAYER_Z.get(self.key, 5.0)}
        if self.link >= 0:
            out["link"] = self.link
        return out


class Prepared:
    """A layer's rows made ready once for every map that shows some of them.

    The district maps and each township map draw parts of the same frames; the point position,
    line or polygon coordinates and formatted popup values of a row do not depend on the map, so
    they are computed once per frame (on first use, over all rows at once) and a map takes its
    rows by position. A layer function gets either a GeoDataFrame (all its rows) or a
    :class:`Prepared` with ``rows``, the positions it shows.
    """

    def __init__(self, gdf: gpd.GeoDataFrame, decimals: int):
        self.gdf, self.decimals = gdf, int(decimals)
        self._points: tuple[np.ndarray, list] | None = None
        self._lines: list | None = None
        self._polygons: list | None = None
        self._columns: dict[tuple[str, Any], list] = {}

    def __len__(self) -> int:
        return len(self.gdf)

    def points(self) -> tuple[np.ndarray, list]:
        """(which rows have a geometry, ``[lat, lon]`` of each row's centroid, rounded)."""
        if self._points is None:
            geoms = self.gdf.geometry.values
            ok = ~(shapely.is_empty(geoms) | shapely.is_missing(geoms))
            xy = np.full((len(geoms), 2), np.nan)
            xy[ok] = shapely.get_coordinates(shapely.centroid(geoms[ok]))
            self._points = (ok, np.round(xy[:, ::-1], self.decimals).tolist())
        return self._points

    def lines(self) -> list:
        """Each row's line coordinates (:func:`_line_coords`), None for a missing or empty one."""
        if self._lines is None:
            self._lines = [None if g is None or g.is_empty else _line_coords(g, self.decimals)
                           for g in self.gdf.geometry.values]
        return self._lines

    def polygons(self) -> list:
        """Each row's polygon rings (:func:`_polygon_coords`), None for a missing or empty one."""
        if self._polygons is None:
            self._polygons = [None if g is None or g.is_empty else _polygon_coords(g, self.decimals)
                              for g in self.gdf.geometry.values]
        return self._polygons

    def column(self, f: Field) -> list:
        """The popup values of one field for every row (None for every row without the column)."""
        key = (f.column, f.fmt)
        if key not in self._columns:
            if f.column not in self.gdf.columns:
                self._columns[key] = [None] * len(self.gdf)
            else:
                fmt = f.fmt or _text
                self._columns[key] = [fmt(v) for v in self.gdf[f.column].tolist()]
        return self._columns[key]


def _rows_of(gdf: gpd.GeoDataFrame | Prepared, decimals: int,
             rows: np.ndarray | None) -> tuple[Prepared, np.ndarray]:
    """The prepared rows of a layer and the positions shown (all rows when ``rows`` is None)."""
    prep = gdf if isinstance(gdf, Prepared) else Prepared(gdf, decimals)
    if prep.decimals != int(decimals):
        raise ValueError(f"layer prepared with {prep.decimals} coordinate decimals, drawn with {decimals}")
    return prep, (np.arange(len(prep)) if rows is None else np.asarray(rows, dtype=np.intp))


def _values(v: pd.Series | np.ndarray | list) -> list:
    """Per-row values (category, radius) in row order as a list."""
    return v.tolist() if hasattr(v, "tolist") else list(v)


def point_layer(key: str, label: str, gdf: gpd.GeoDataFrame | Prepared, cat, cats: list[dict],
                fields: list[Field], *, decimals: int, title: str | None = None,
                radius=None, show: bool = True, cluster_min: int = 10**9,
                base_radius: float = 5.0, legend_note: str = "", rows: np.ndarray | None = None) -> LayerSpec:
    """A point layer: one circle per row of ``gdf`` (EPSG:4326), coloured by category index.

    ``rows``: the positions of ``gdf`` shown (default all); ``cat`` and ``radius`` hold one value
    per row shown, in that order.
    """
    prep, rows = _rows_of(gdf, decimals, rows)
    data = []
    if len(rows):
        ok_all, latlon = prep.points()
        columns = [prep.column(f) for f in fields]
        cat_idx = [int(c) for c in _values(cat)]
        radii = [None] * len(rows) if radius is None else [_text(r) for r in _values(radius)]
        order: list[int] | np.ndarray = np.flatnonzero(ok_all[rows])
        if radius is not None:  # big circles first, so small ones stay on top and clickable
            order = sorted(order, key=lambda i: -(radii[i] or 0.0))
        for i in order:
            p = rows[i]
            data.append([latlon[p], cat_idx[i], radii[i], [col[p] for col in columns]])
    labels = [f.label for f in fields]
    tf = [f.column for f in fields].index(title) if title else -1
    return LayerSpec(key, label, "point", cats, data, labels, tf, show=show,
                     cluster=len(data) >= cluster_min, radius=base_radius, legend_note=legend_note)


def spread_colocated(spec: LayerSpec) -> None:
    """Markers at one spot (e.g. 电商 and 光伏 in the same village) are drawn side by side.

    Each such row gets a fifth element ``[k, n, ring_px]``: the browser places marker k of n on a
    ring of ``ring_px`` screen pixels around the spot (so they touch but do not cover each other
    at every zoom), and the print sheets do the same in paper units.
    """
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(spec.data):
        groups.setdefault((round(row[0][0], 6), round(row[0][1], 6)), []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        n = len(idx)
        r = max(float(spec.data[i][2] or spec.radius) for i in idx)
        ring = round((r + 1.0) / math.sin(math.pi / n), 1)
        for k, i in enumerate(sorted(idx, key=lambda j: spec.data[j][1])):
            row = spec.data[i]
            spec.data[i] = [row[0], row[1], row[2], row[3], [k, n, ring]]


def line_layer(key: str, label: str, gdf: gpd.GeoDataFrame | Prepared, cat, cats: list[dict],
               fields: list[Field] | None, *, decimals: int, title: str | None = None,
               show: bool = True, rows: np.ndarray | None = None) -> LayerSpec:
    """A line layer. Without ``fields`` all lines of one category merge into one multi-line.
    ``rows`` and ``cat`` as in :func:`point_layer`."""
    prep, rows = _rows_of(gdf, decimals, rows)
    data: list = []
    if len(rows):
        coords = prep.lines()
        cat_idx = [int(c) for c in _values(cat)]
        if not fields:
            for k in sorted(set(cat_idx)):
                parts = []
                for i, p in enumerate(rows):
                    c = coords[p]
                    if cat_idx[i] != k or not c:
                        continue
                    if isinstance(c[0][0], list):
                        parts.extend(c)
                    else:
                        parts.append(c)
                if parts:
                    data.append([parts, k, None, None])
        else:
            columns = [prep.column(f) for f in fields]
            for i, p in enumerate(rows):
                if coords[p] is None:
                    continue
                data.append([coords[p], cat_idx[i], None, [col[p] for col in columns]])
    labels = [f.label for f in fields] if fields else []
    tf = [f.column for f in fields].index(title) if (fields and title) else -1
    return LayerSpec(key, label, "line", cats, data, labels, tf, show=show)


def polygon_layer(key: str, label: str, gdf: gpd.GeoDataFrame | Prepared, cat, cats: list[dict],
                  fields: list[Field], *, decimals: int, title: str | None = None,
                  show: bool = True, rows: np.ndarray | None = None) -> LayerSpec:
    """A polygon layer; ``rows`` and ``cat`` as in :func:`point_layer`."""
    prep, rows = _rows_of(gdf, decimals, rows)
    data = []
    coords = prep.polygons()
    columns = [prep.column(f) for f in fields] if fields else None
    cat_idx = [int(c) for c in _values(cat)]
    for i, p in enumerate(rows):
        if coords[p] is None:
            continue
        props = [col[p] for col in columns] if columns else None
        data.append([coords[p], cat_idx[i], None, props])
    labels = [f.label for f in fields]
    tf = [f.column for f in fields].index(title) if title else -1
    return LayerSpec(key, label, "polygon", cats, data, labels, tf, show=show)
