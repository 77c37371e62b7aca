"""Offline folium maps for reviewers (district) and township planners (one per township).

:func:`run` builds ``maps/overview.html``, ``maps/relocation.html``, ``maps/industry.html``,
``maps/access.html``, the A3 district sheet ``maps/overview.pdf`` and, for every township,
``maps/townships/<township_code>.html`` plus its A3 print sheet ``<township_code>.pdf`` and the
same sheet as ``<township_code>.png`` (:mod:`kaizhou_gis.printmap`). It only builds objects;
:mod:`kaizhou_gis.outputs` writes them.

How the pages are made:

* every JS/CSS file is inlined (:mod:`kaizhou_gis.mapassets`), the default background is a
  hillshade computed from the DEM (:mod:`kaizhou_gis.hillshade`) and embedded as an image, and
  online tile layers (OpenStreetMap, Tianditu with a key, Gaode) are offered switched off;
* the layers are compact JSON specs drawn by ``assets/kaizhou-maps.js``; all text from the layers
  goes into the page with ``textContent`` (popups, tooltips, search) or through
  :func:`html.escape` (legend, title, notes, layer names, attribution), so names cannot inject
  markup or script; file names come from township codes only;
* geometries are simplified to the map's scale and coordinates rounded
  (``maps.simplify_*_m``, ``maps.coordinate_decimals``) to keep the pages within the size budget;
* a step that is unavailable or failed (access, relocation, industry) leaves its layers out and
  the page's notes panel says which layers are missing and why.
"""
from __future__ import annotations

import html
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from kaizhou_gis import hillshade as hs
from kaizhou_gis import outputs, printmap
from kaizhou_gis.admin import settlement_townships, village_townships
from kaizhou_gis.errors import KaizhouGISError, LayerError, OptionError, format_ids
from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.mapassets import OfflineMap, RawHtml, inline_assets, script_json
from kaizhou_gis.results import MapsData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)

BASEMAPS = ("offline", "osm", "tianditu", "gaode")
DISTRICT_MAPS = ("overview", "relocation", "industry", "access")
MAP_TITLES = {
    "overview": ("总览", "Overview"),
    "relocation": ("高山生态扶贫搬迁", "Relocation"),
    "industry": ("产业扶贫项目", "Industry projects"),
    "access": ("道路通达通畅", "Road access"),
    "township": ("乡镇图", "Township map"),
}
STEP_NAMES_ZH = {"access": "道路通达通畅 access", "relocation": "搬迁 relocation",
                 "industry": "产业项目 industry"}

# Online tile layers (off by default; they need the internet).
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTR = "&copy; OpenStreetMap contributors (online tiles)"
TIANDITU_URL = "https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=%s"
TIANDITU_LABEL_URL = "https://t{s}.tianditu.gov.cn/DataServer?T=cva_w&x={x}&y={y}&l={z}&tk=%s"
TIANDITU_ATTR = "天地图 Tianditu (online tiles)"
GAODE_URL = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
GAODE_ATTR = "高德地图 AutoNavi (online tiles, GCJ-02)"

# Map styling (cartographic choices, not analysis thresholds).
GREY = "#9e9e9e"
POVERTY_CATS = [
    {"color": "#b2182b", "label": "深度贫困村 deep-poverty village"},
    {"color": "#ef8a62", "label": "贫困村 poverty village"},
    {"color": "#4393c3", "label": "其他村 other village"},
    {"color": "#7b3294", "label": "社区 community"},
]
# One palette per concept, the same on HTML maps and print sheets (both draw these specs), chosen
# from documented colour-blind-safe sets (ColorBrewer, Okabe & Ito 2008, Paul Tol "muted") so that
# no colour means two things on one map: roads are black/grey, works indigo/wine, access
# green/orange/red, elevation classes a yellow-brown ramp, industry categories Tol's muted set
# (no orange or yellow, which belong to access and elevation), sites blues, seats white stars.
ROAD_CATS = [
    {"color": "#333333", "label": "已硬化 paved", "weight": 2},
    {"color": "#8c8c8c", "label": "未硬化 unpaved", "weight": 1.5, "dash": "4 3"},
]
ACCESS_CATS = [
    {"color": "#1a9641", "label": "通畅 hardened road"},
    {"color": "#fdae61", "label": "通达未通畅 road, not hardened"},
    {"color": "#d7191c", "label": "未通达 not reached"},
    {"color": GREY, "label": "无数据 no data"},
]
GAP_CATS = [
    {"color": "#fdae61", "label": "通达未通畅 road, not hardened"},
    {"color": "#d7191c", "label": "未通达 not reached"},
]
WORK_CATS = [
    {"color": "#882255", "label": "新建 new road", "weight": 3.5, "dash": "6 4"},
    {"color": "#332288", "label": "硬化 upgrade", "weight": 3.5},
]
SITE_CATS = [
    {"color": "#2166ac", "stroke": "#08306b", "label": "安置点(有安置) site in use", "weight": 2},
    {"color": "#92c5de", "stroke": "#08306b", "label": "安置点(未用) site unused", "weight": 2},
]
ELEV_COLORS = ["#fee391", "#fec44f", "#fe9929", "#d95f0e", "#993404", "#662506", "#401604"]
#: Industry categories: Paul Tol's "muted" qualitative scheme (colour-blind safe) without its sand
#: colour (close to the elevation ramp); more categories than colours repeat them.
CATEGORY_COLORS = ["#117733", "#88CCEE", "#CC6677", "#332288", "#999933", "#AA4499", "#44AA99",
                   "#882255"]
BOUNDARY_CAT = [{"color": "#000000", "label": "区界 district boundary", "weight": 3,
                 "fillOpacity": 0.0}]
TOWNSHIP_CAT = [{"color": "#555555", "label": "乡镇界 township boundary", "weight": 1.2,
                 "fillOpacity": 0.02},
                {"color": "#000000", "label": "本乡镇 this township", "weight": 3,
                 "fillOpacity": 0.0}]
SEAT_CAT = [{"color": "#ffffff", "stroke": "#000000", "label": "乡镇驻地 township seat", "weight": 2}]
OTHER_SETTLEMENT_CAT = [{"color": GREY, "label": "其他自然村 other settlement"}]
ASSIGN_CAT = [{"color": "#2166ac", "label": "搬迁去向 assignment", "weight": 1.2, "opacity": 0.6}]


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

    def to_json(self) -> dict:
        return {"key": self.key, "label": self.label, "kind": self.kind, "cats": self.cats,
                "data": self.data, "f": self.fields, "tf": self.title_field,
                "cluster": self.cluster, "radius": self.radius, "z": LAYER_Z.get(self.key, 5.0)}


#: Draw order (higher on top), the same on HTML maps and print sheets: areas, roads, works,
#: the many small settlement points, villages, sites under the candidates they serve, industry,
#: and township seats on top of everything.
LAYER_Z = {"townships": 0.0, "boundary": 1.0, "roads": 2.0, "works": 3.0, "assignment": 3.5,
           "settlements_other": 4.0, "villages": 5.0, "villages_access": 5.0, "sites": 5.5,
           "gaps": 6.0, "candidates": 6.5, "industry": 7.0, "seats": 9.0}


def point_layer(key: str, label: str, gdf: gpd.GeoDataFrame, cat: pd.Series, cats: list[dict],
                fields: list[Field], *, decimals: int, title: str | None = None,
                radius: pd.Series | None = None, show: bool = True, cluster_min: int = 10**9,
                base_radius: float = 5.0, legend_note: str = "") -> LayerSpec:
    """A point layer: one circle per row of ``gdf`` (EPSG:4326), coloured by category index."""
    data = []
    if len(gdf):
        geoms = gdf.geometry.values
        ok = ~(shapely.is_empty(geoms) | shapely.is_missing(geoms))
        xy = np.full((len(gdf), 2), np.nan)
        xy[ok] = shapely.get_coordinates(shapely.centroid(geoms[ok]))
        latlon = np.round(xy[:, ::-1], decimals).tolist()
        columns = _prop_columns(gdf, fields)
        cat_idx = [int(c) for c in cat.tolist()]
        radii = [None] * len(gdf) if radius is None else [_text(r) for r in radius.tolist()]
        order = np.flatnonzero(ok)
        if radius is not None:  # big circles first, so small ones stay on top and clickable
            order = sorted(order, key=lambda i: -(radii[i] or 0.0))
        for i in order:
            data.append([latlon[i], cat_idx[i], radii[i], [col[i] for col in columns]])
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


def _prop_columns(gdf: pd.DataFrame, fields: list[Field]) -> list[list]:
    """Popup values of every row, one formatted list per field (fast: no per-cell indexing)."""
    out = []
    for f in fields:
        if f.column not in gdf.columns:
            out.append([None] * len(gdf))
            continue
        fmt = f.fmt or _text
        out.append([fmt(v) for v in gdf[f.column].tolist()])
    return out


def line_layer(key: str, label: str, gdf: gpd.GeoDataFrame, cat: pd.Series, cats: list[dict],
               fields: list[Field] | None, *, decimals: int, title: str | None = None,
               show: bool = True) -> LayerSpec:
    """A line layer. Without ``fields`` all lines of one category merge into one multi-line."""
    data: list = []
    if len(gdf):
        if not fields:
            for k in sorted(set(int(c) for c in cat)):
                parts = []
                for g in gdf.geometry.values[(cat == k).to_numpy()]:
                    if g is None or g.is_empty:
                        continue
                    c = _line_coords(g, decimals)
                    if c and isinstance(c[0][0], list):
                        parts.extend(c)
                    elif c:
                        parts.append(c)
                if parts:
                    data.append([parts, k, None, None])
        else:
            columns = _prop_columns(gdf, fields)
            cat_idx = [int(c) for c in cat.tolist()]
            for i, g in enumerate(gdf.geometry.values):
                if g is None or g.is_empty:
                    continue
                data.append([_line_coords(g, decimals), cat_idx[i], None, [col[i] for col in columns]])
    labels = [f.label for f in fields] if fields else []
    tf = [f.column for f in fields].index(title) if (fields and title) else -1
    return LayerSpec(key, label, "line", cats, data, labels, tf, show=show)


def polygon_layer(key: str, label: str, gdf: gpd.GeoDataFrame, cat: pd.Series, cats: list[dict],
                  fields: list[Field], *, decimals: int, title: str | None = None,
                  show: bool = True) -> LayerSpec:
    data = []
    columns = _prop_columns(gdf, fields) if fields else None
    cat_idx = [int(c) for c in cat.tolist()]
    for i, g in enumerate(gdf.geometry.values):
        if g is None or g.is_empty:
            continue
        props = [col[i] for col in columns] if columns else None
        data.append([_polygon_coords(g, decimals), cat_idx[i], None, props])
    labels = [f.label for f in fields]
    tf = [f.column for f in fields].index(title) if title else -1
    return LayerSpec(key, label, "polygon", cats, data, labels, tf, show=show)


# --------------------------------------------------------------------------------------------
# folium elements
# --------------------------------------------------------------------------------------------

class SpecLayer(folium.map.Layer):
    """A folium layer drawn in the browser by ``KZ.layer`` from a :class:`LayerSpec`."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = KZ.layer({{ this._parent.get_name() }}, {{ this.spec_json }});
        {% endmacro %}
    """)

    def __init__(self, spec: LayerSpec):
        super().__init__(name=html.escape(spec.label), overlay=True, control=True, show=spec.show)
        self._name = "SpecLayer"
        self.spec = spec
        self.spec_json = script_json(spec.to_json())


class PageExtras(MacroElement):
    """Title, legend, notes, search box, north arrow, scale bar and attribution of a map."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function (map) {
            map.attributionControl.setPrefix('<a href="#leaflet">Leaflet</a>');
            map.attributionControl.addAttribution({{ this.attribution_json }});
            L.control.scale({metric: true, imperial: false, position: "bottomleft"}).addTo(map);
            KZ.addPanel(map, "kz-title", "topleft");
            KZ.addSearch(map, {{ this.search_json }}, {{ this.placeholder_json }});
            KZ.addNorthArrow(map);
            KZ.addPanel(map, "kz-legend", "bottomright");
            KZ.watchLayers(map);
            KZ.addPanel(map, "kz-notes", "bottomleft");
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, *, attribution_html: str, search_index: list, placeholder: str):
        super().__init__()
        self._name = "PageExtras"
        self.attribution_json = script_json(attribution_html)
        self.search_json = script_json(search_index)
        self.placeholder_json = script_json(placeholder)


def _legend_html(specs: list[LayerSpec], extra: list[tuple[str, str]] | None = None) -> str:
    """Categorical legend, every label escaped. Only categories that occur are listed; each
    layer's block carries ``data-layer`` so the page lists only the layers switched on."""
    out = ['<details id="kz-legend" class="kz-legend" style="display:none" open>',
           "<summary>图例 Legend</summary>"]
    for s in specs:
        used = sorted({row[1] for row in s.data})
        if not used:
            continue
        # one block per layer; the page shows the blocks of the layers switched on (KZ.updateLegend)
        out.append(f'<div class="kz-leg" data-layer="{html.escape(s.key)}">')
        out.append(f"<h3>{html.escape(s.label)}</h3>")
        for k in used:
            c = s.cats[k]
            if s.kind == "line":
                style = f"border-top-color:{c['color']};border-top-style:{'dashed' if c.get('dash') else 'solid'}"
                cls = "kz-sw kz-line"
            elif s.kind == "polygon":
                style = f"border:2px solid {c['color']};background:transparent"
                cls = "kz-sw kz-area"
            else:
                style = f"background:{c['color']};border-color:{c.get('stroke', 'rgba(0,0,0,0.5)')}"
                cls = "kz-sw"
            out.append(f'<div class="kz-item"><span class="{cls}" style="{html.escape(style)}">'
                       f'</span><span>{html.escape(c["label"])}</span></div>')
        if s.legend_note:
            out.append(f'<div class="kz-item kz-note">{html.escape(s.legend_note)}</div>')
        out.append("</div>")
    for head, text in extra or []:
        out.append(f"<h3>{html.escape(head)}</h3><div>{html.escape(text)}</div>")
    out.append("</details>")
    return "\n".join(out)


def _title_html(title_zh: str, title_en: str, subtitle: str, status: dict | None = None) -> str:
    """The title box; with synthesized input it carries the data-status banner (zh + en)."""
    from kaizhou_gis.provenance import banner_html

    return (f'<div id="kz-title" class="kz-title" style="display:none"><h1>{html.escape(title_zh)}'
            f' <span style="font-weight:normal">{html.escape(title_en)}</span></h1>'
            f'<div class="kz-sub">{html.escape(subtitle)}</div>{banner_html(status)}</div>')


def _notes_html(missing: dict[str, str], notes: list[str], attribution: str) -> str:
    parts = [f'<details id="kz-notes" class="kz-notes" style="display:none"{" open" if missing else ""}>',
             "<summary>说明与数据来源 Notes &amp; sources</summary>"]
    for step, why in missing.items():
        parts.append(f'<div class="kz-missing">缺少图层 missing layer: {html.escape(STEP_NAMES_ZH.get(step, step))}'
                     f' — {html.escape(why)}</div>')
    for n in notes:
        parts.append(f"<div>{html.escape(n)}</div>")
    if attribution:
        parts.append(f"<pre>{html.escape(attribution)}</pre>")
    parts.append("</details>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# data gathered once per run
# --------------------------------------------------------------------------------------------

@dataclass
class MapData:
    """Everything the maps show, in the map CRS (EPSG:4326, or GCJ-02 for the Gaode variant).

    ``simplified`` holds line/polygon layers simplified for district and township scales.
    """

    boundary: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    seats: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    settlements: gpd.GeoDataFrame | None
    roads: dict[str, gpd.GeoDataFrame]
    works: gpd.GeoDataFrame | None
    sites: gpd.GeoDataFrame | None
    assignment: gpd.GeoDataFrame | None
    hosts: gpd.GeoDataFrame | None
    missing: dict[str, str]
    notes: list[str]
    synthesized: list[str]
    attribution: str
    township_names: dict[str, str]
    work_townships: gpd.GeoDataFrame  # townships in the work CRS (for clipping)
    roads_work: dict[str, gpd.GeoDataFrame]
    works_work: gpd.GeoDataFrame | None
    basemap: str = "offline"  # "gaode": coordinates shifted to GCJ-02
    #: :func:`kaizhou_gis.provenance.data_status` of the run (title boxes, PNG title blocks).
    status: dict = field(default_factory=dict)


def _step_data(ctx: StepContext, needs: StepNeeds, name: str, missing: dict[str, str]) -> Any:
    try:
        res = needs.result(name)
    except KaizhouGISError as e:
        missing[name] = str(e).splitlines()[0][:300]
        log.warning("maps: %s layers left out: %s", name, missing[name])
        return None
    except Exception as e:  # another step's bug must not cost the maps
        missing[name] = f"{type(e).__name__}: {e}"[:300]
        log.warning("maps: %s step crashed; its layers are left out", name, exc_info=True)
        ctx.failed.setdefault(name, missing[name])
        return None
    return res.data if isinstance(res, StepResult) else None


def gather(ctx: StepContext, needs: StepNeeds, basemap: str | None = None) -> MapData:
    """Collect the layers and the results of the steps the maps need (``needs``, from
    ``ctx.needs_of("maps")``), enriched and in the map CRS.

    ``basemap`` (default: the run's ``--basemap``) "gaode" shifts everything to GCJ-02.
    """
    plan, L = ctx.plan, ctx.layers
    cfg = plan.section("maps")
    basemap = basemap or ctx.options.get("basemap") or "offline"
    missing: dict[str, str] = {}
    # what the loader filled in or changed (e.g. no poverty_village column: every village is
    # drawn as "other village") belongs on the page next to the layers it explains
    notes: list[str] = [f"图层 layers: {n}" for n in (getattr(L, "notes", None) or [])]
    access = _step_data(ctx, needs, "access", missing)
    reloc = _step_data(ctx, needs, "relocation", missing)
    industry = _step_data(ctx, needs, "industry", missing)

    tw_names = dict(zip(L.townships["township_code"].astype(str), L.townships["name"].astype(str)))

    # villages: layer columns + elevation from the DEM + access status
    villages = L.villages.copy()
    villages["township_code"] = villages["township_code"].astype(str)
    villages["township_name"] = villages["township_code"].map(tw_names)
    try:
        from kaizhou_gis.terrain import sample_elevation
        with L.open_dem() as ds:
            villages["elevation_m"] = sample_elevation(villages.geometry, ds)
    except Exception as e:  # DEM unreadable: popups show no elevation
        log.warning("maps: no village elevations (%s)", e)
        villages["elevation_m"] = np.nan
    kind = _col(villages, "kind", "村").astype(str)
    deep, poor = _bool(_col(villages, "deep_poverty", False)), _bool(_col(villages, "poverty_village", False))
    villages["poverty_cat"] = np.select([deep, poor, kind.str.contains("社区")], [0, 1, 3], 2)
    villages["poverty_zh"] = villages["poverty_cat"].map(
        {0: "深度贫困村", 1: "贫困村", 2: "非贫困村", 3: "社区"})
    villages["access_cat"] = 3
    villages["access_reason"] = None
    if access is not None and isinstance(access.villages, pd.DataFrame):
        av = access.villages.reindex(villages.index)
        tda, tch = _col(av, "tongda"), _col(av, "tongchang")
        known = tda.notna() & tch.notna()
        villages.loc[known, "access_cat"] = np.select(
            [_bool(tch[known]), _bool(tda[known])], [0, 1], 2)
        villages["access_reason"] = _col(av, "reason")
        for c in ("network_km_to_seat", "travel_min_to_seat"):
            villages[c] = _num(_col(av, c))
    villages["access_zh"] = villages["access_cat"].map(
        {0: "通畅", 1: "通达未通畅", 2: "未通达", 3: "无数据"})

    # settlements: relocation flags + access status
    settlements = None
    if L.settlements is not None and len(L.settlements):
        settlements = L.settlements.copy()
        settlements["township_code"] = settlement_townships(settlements, villages, warn=False)
        v2n = dict(zip(villages["village_code"].astype(str), villages["name"].astype(str)))
        settlements["village_name"] = settlements["village_code"].astype(str).map(v2n)
        if reloc is not None and isinstance(reloc.settlements, pd.DataFrame):
            rs = reloc.settlements.reindex(settlements.index)
            for c in ("elevation_m", "slope_deg", "relocation_candidate", "priority", "reasons_zh",
                      "status", "schedule_year"):
                if c in rs.columns:
                    settlements[c] = rs[c]
        if access is not None and isinstance(access.settlements, pd.DataFrame):
            acs = access.settlements.reindex(settlements.index)
            for c in ("tongda", "tongchang", "target_group"):
                if c in acs.columns:
                    settlements["acc_" + c] = acs[c]
            settlements["access_reason"] = _col(acs, "reason")

    # relocation sites and assignment lines
    sites = assignment = None
    if reloc is not None and isinstance(reloc.sites, gpd.GeoDataFrame) and len(reloc.sites):
        sites = gpd.GeoDataFrame(reloc.sites.copy(), geometry=reloc.sites.geometry.name,
                                 crs=reloc.sites.crs)
        sites["township_code"] = _col(sites, "township_code", "").astype(str)
        assigned = _num(_col(sites, "assigned_households", 0)).fillna(0)
        sites["site_cat"] = np.where(assigned > 0, 0, 1)
        if "site_id" not in sites:
            sites["site_id"] = [f"S{i}" for i in range(len(sites))]
        sites["site_name"] = _col(sites, "name", None).fillna(sites["site_id"])
        asg = reloc.assignment
        if isinstance(asg, pd.DataFrame) and len(asg) and settlements is not None:
            s_geo = dict(zip(settlements["settlement_id"].astype(str), settlements.geometry))
            s_tw = dict(zip(settlements["settlement_id"].astype(str), settlements["township_code"]))
            site_geo = dict(zip(sites["site_id"].astype(str), sites.geometry))
            site_tw = dict(zip(sites["site_id"].astype(str), sites["township_code"]))
            rows = []
            for r in asg.itertuples(index=False):
                a, b = s_geo.get(str(r.settlement_id)), site_geo.get(str(r.site_id))
                if a is None or b is None:
                    continue
                rows.append({"settlement_id": str(r.settlement_id), "site_id": str(r.site_id),
                             "households": getattr(r, "households", None),
                             "distance_km": getattr(r, "distance_km", None),
                             "township_code": s_tw.get(str(r.settlement_id)),
                             "site_township": site_tw.get(str(r.site_id)),
                             "geometry": shapely.LineString([a.centroid, b.centroid])})
            if rows:
                assignment = gpd.GeoDataFrame(rows, geometry="geometry", crs=settlements.crs)
        unassigned = reloc.unassigned
        if isinstance(unassigned, pd.DataFrame) and len(unassigned):
            notes.append(f"{len(unassigned)} 个搬迁自然村未分配安置点 settlements without a site "
                         f"(见 relocation 表 see the relocation tables).")

    # industry hosts
    hosts = None
    if industry is not None and isinstance(industry.hosts, gpd.GeoDataFrame):
        hosts = industry.hosts.copy()
        if len(hosts):
            hosts["township_code"] = host_township_codes(hosts, village_townships(villages))
        unresolved = industry.unresolved
        if isinstance(unresolved, pd.DataFrame) and len(unresolved):
            notes.append(f"{len(unresolved)} 个产业项目地点未能定位到村 industry project places "
                         f"not found on the map (见 industry/unresolved).")

    works = None
    if access is not None and isinstance(access.works, gpd.GeoDataFrame) and len(access.works):
        works = access.works.copy()
        works["work_cat"] = np.where(_col(works, "type", "new").astype(str) == "upgrade", 1, 0)

    # roads: simplified per scale in the work CRS, then kept in both CRSs
    roads = L.roads.copy()
    paved_words = {str(s).lower() for s in plan.get("access.paved_surfaces", ["paved"])}
    roads["road_cat"] = np.where(_col(roads, "surface", "").astype(str).str.lower().isin(paved_words), 0, 1)
    roads_work = {}
    for scale in ("district", "township"):
        tol = float(cfg[f"simplify_{scale}_m"])
        r = roads[["road_cat", roads.geometry.name]].copy()
        r[r.geometry.name] = r.geometry.simplify(tol, preserve_topology=False)
        roads_work[scale] = r[~r.geometry.is_empty]
    work_townships = L.townships.copy()
    work_townships["township_code"] = work_townships["township_code"].astype(str)

    to_map = _map_crs_converter(basemap, plan["crs.map"])
    tw_tol = float(cfg["simplify_township_m"])
    townships = work_townships.copy()
    townships[townships.geometry.name] = townships.geometry.simplify(tw_tol)
    boundary = L.boundary.copy()
    boundary[boundary.geometry.name] = boundary.geometry.simplify(tw_tol)
    seats = L.township_seats.copy()
    seats["township_code"] = seats["township_code"].astype(str)

    works_work = works
    if works is not None:
        works_work = works.copy()
        works_work[works_work.geometry.name] = works_work.geometry.simplify(tw_tol)

    status = ctx.data_status
    synthesized = list(status["synthetic_layers"])
    if basemap == "gaode":
        notes.append("坐标已转换为 GCJ-02 以配合高德底图 coordinates shifted to GCJ-02 to match Gaode tiles.")
    return MapData(
        boundary=to_map(boundary), townships=to_map(townships), seats=to_map(seats),
        villages=to_map(villages), settlements=to_map(settlements) if settlements is not None else None,
        roads={k: to_map(v) for k, v in roads_work.items()},
        works=to_map(works_work) if works_work is not None else None,
        sites=to_map(sites) if sites is not None else None,
        assignment=to_map(assignment) if assignment is not None else None,
        hosts=to_map(hosts) if hosts is not None and len(hosts) else hosts,
        missing=missing, notes=notes, synthesized=synthesized,
        attribution=getattr(L, "attribution", "") or "", township_names=tw_names,
        work_townships=work_townships, roads_work=roads_work, works_work=works_work, basemap=basemap,
        status=status)


def gather_wgs84(ctx: StepContext, needs: StepNeeds) -> MapData:
    """:func:`gather` in WGS84 whatever the basemap (print sheets, field files)."""
    return gather(ctx, needs, basemap="offline")


def _map_crs_converter(basemap: str, map_crs: str) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    def convert(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        if gdf is None:
            return None
        out = gdf.to_crs(map_crs) if gdf.crs is not None else gdf
        if basemap == "gaode":
            from kaizhou_gis.terrain.coords import convert_wgs84_to_gcj02
            out = convert_wgs84_to_gcj02(out)
        return out
    return convert


# --------------------------------------------------------------------------------------------
# layers of the maps
# --------------------------------------------------------------------------------------------

VILLAGE_FIELDS = [
    Field("name", "名称 name"), Field("village_code", "代码 code"),
    Field("township_name", "乡镇 township"), Field("kind", "类型 kind"),
    Field("elevation_m", "海拔 elevation", _fmt_m), Field("households", "户数 households"),
    Field("population", "人口 population"), Field("poverty_zh", "贫困状态 poverty status"),
    Field("access_zh", "道路 road access"), Field("network_km_to_seat", "到乡镇驻地 to seat", _fmt_km),
    Field("access_reason", "原因 reason"),
]
SETTLEMENT_FIELDS = [
    Field("name", "名称 name"), Field("settlement_id", "编号 id"),
    Field("village_name", "行政村 village"), Field("elevation_m", "海拔 elevation", _fmt_m),
    Field("slope_deg", "坡度 slope", _fmt_deg), Field("households", "户数 households"),
    Field("population", "总人口 residents"),
    Field("poor_population", "建档立卡贫困人口 registered poor"),
    Field("status", "状态 status"),
    Field("priority", "优先度 priority"), Field("schedule_year", "计划年份 year"),
    Field("reasons_zh", "原因 reasons"),
]


def _elevation_classes(threshold_m: float, breaks_m: Iterable[float]) -> tuple[list[float], list[dict]]:
    edges = [float(threshold_m)] + sorted(float(b) for b in breaks_m if float(b) > threshold_m)
    cats = [{"color": ELEV_COLORS[0], "label": f"< {edges[0]:,.0f} m"}]
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        label = f"{lo:,.0f}–{hi:,.0f} m" if hi is not None else f"≥ {lo:,.0f} m"
        cats.append({"color": ELEV_COLORS[min(i + 1, len(ELEV_COLORS) - 1)], "label": label})
    return edges, cats


@dataclass
class MapSettings:
    decimals: int
    cluster_min: int
    threshold_m: float
    elev_breaks: list[float]


def _settings(plan) -> MapSettings:
    cfg = plan.section("maps")
    return MapSettings(decimals=int(cfg["coordinate_decimals"]), cluster_min=int(cfg["cluster_min_points"]),
                       threshold_m=float(plan["relocation.threshold_m"]),
                       elev_breaks=list(cfg["elevation_breaks_m"]))


def _subset(gdf: gpd.GeoDataFrame | None, code: str | None, column: str = "township_code"):
    if gdf is None or code is None or column not in gdf.columns:
        return gdf
    return gdf[gdf[column].astype(str) == code]


def layer_boundary(d: MapData, st: MapSettings, code: str | None) -> LayerSpec:
    if code is None:
        gdf = d.boundary
        return polygon_layer("boundary", "区界 District boundary", gdf, pd.Series(0, index=gdf.index),
                             BOUNDARY_CAT, [Field("name", "名称 name")], decimals=st.decimals)
    gdf = d.townships
    cat = (gdf["township_code"] != code).astype(int).map({1: 0, 0: 1})
    return polygon_layer("townships", "乡镇 Townships", gdf, cat, TOWNSHIP_CAT,
                         [Field("name", "名称 name"), Field("township_code", "代码 code"),
                          Field("kind", "类型 kind")], decimals=st.decimals, title="name")


def layer_townships(d: MapData, st: MapSettings) -> LayerSpec:
    gdf = d.townships
    return polygon_layer("townships", "乡镇 Townships", gdf, pd.Series(0, index=gdf.index),
                         TOWNSHIP_CAT[:1], [Field("name", "名称 name"), Field("township_code", "代码 code"),
                                            Field("kind", "类型 kind")], decimals=st.decimals, title="name")


def layer_roads(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    if code is None:
        gdf = d.roads["district"]
    else:
        poly = d.work_townships.loc[d.work_townships["township_code"] == code].geometry.union_all()
        rw = d.roads_work["township"]
        hit = rw[rw.intersects(poly.buffer(500.0))]
        gdf = d.roads["township"].loc[hit.index]
    return line_layer("roads", "道路 Roads (by surface)", gdf, gdf["road_cat"], ROAD_CATS, None,
                      decimals=st.decimals, show=show)


def layer_villages_poverty(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    v = _subset(d.villages, code)
    return point_layer("villages", "村 Villages (poverty status)", v, v["poverty_cat"], POVERTY_CATS,
                       VILLAGE_FIELDS, decimals=st.decimals, title="name", show=show,
                       cluster_min=st.cluster_min, base_radius=6)


def layer_villages_access(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    v = _subset(d.villages, code)
    return point_layer("villages_access", "村 通达/通畅 Village road access", v, v["access_cat"],
                       ACCESS_CATS, VILLAGE_FIELDS, decimals=st.decimals, title="name", show=show,
                       cluster_min=st.cluster_min, base_radius=6)


def layer_seats(d: MapData, st: MapSettings, code: str | None) -> LayerSpec:
    s = _subset(d.seats, code)
    return point_layer("seats", "乡镇驻地 Township seats", s, pd.Series(0, index=s.index), SEAT_CAT,
                       [Field("name", "名称 name"), Field("elevation_m", "海拔 elevation", _fmt_m)],
                       decimals=st.decimals, title="name", base_radius=5)


def layers_relocation(d: MapData, st: MapSettings, code: str | None, *, show_other: bool = False) -> list[LayerSpec]:
    s = _subset(d.settlements, code)
    if s is None or "relocation_candidate" not in s.columns:
        return []
    cand = _bool(s["relocation_candidate"])
    edges, cats = _elevation_classes(st.threshold_m, st.elev_breaks)
    elev = _num(s["elevation_m"]) if "elevation_m" in s else pd.Series(np.nan, index=s.index)
    cls = pd.Series(np.searchsorted(edges, elev.fillna(-1e9).to_numpy(), side="right"), index=s.index)
    c = s[cand]
    out = [point_layer("candidates", "拟整体搬迁自然村 Relocation candidates (whole settlements, by elevation)", c,
                       cls[cand], cats, SETTLEMENT_FIELDS, decimals=st.decimals, title="name",
                       cluster_min=st.cluster_min, base_radius=5)]
    o = s[~cand]
    out.append(point_layer("settlements_other", "其他自然村 Other settlements", o,
                           pd.Series(0, index=o.index), OTHER_SETTLEMENT_CAT, SETTLEMENT_FIELDS,
                           decimals=st.decimals, title="name", show=show_other,
                           cluster_min=st.cluster_min, base_radius=3))
    if d.sites is not None:
        sites = d.sites
        if code is not None:
            keep = sites["township_code"] == code
            if d.assignment is not None:
                used = set(d.assignment.loc[d.assignment["township_code"] == code, "site_id"])
                keep |= sites["site_id"].astype(str).isin(used)
            sites = sites[keep]
        cap = _num(_col(sites, "capacity_households", np.nan))
        cap_max = float(np.nanmax(cap)) if cap.notna().any() else 1.0
        r0, r1 = (6.0, 8.0) if code is not None else (3.0, 5.0)  # smaller on the district map
        distinct = cap.dropna().unique()
        if len(distinct) <= 1:  # every site holds the same: one size, and the legend says so
            radius = pd.Series(r0 + (2.0 if code is not None else 0.5), index=sites.index)
            label = "安置点 Resettlement sites"
            note = (f"每个安置点容量 {float(distinct[0]):,.0f} 户 every site holds "
                    f"{float(distinct[0]):,.0f} households") if len(distinct) else ""
        else:
            radius = (r0 + r1 * np.sqrt(cap.fillna(0) / max(cap_max, 1.0))).round(1)
            label = "安置点 Resettlement sites (size = capacity)"
            note = "圆越大容量越大 larger circle = more capacity"
        out.append(point_layer(
            "sites", label, sites, sites["site_cat"], SITE_CATS,
            [Field("site_name", "名称 name"), Field("site_id", "编号 id"),
             Field("capacity_households", "容量(户) capacity (households)"),
             Field("assigned_households", "已安置(户) assigned (households)"),
             Field("suitability", "适宜性 suitability"), Field("elevation_m", "海拔 elevation", _fmt_m),
             Field("slope_deg", "坡度 slope", _fmt_deg)],
            decimals=st.decimals, title="site_name", radius=radius, base_radius=8,
            legend_note=note))
    if d.assignment is not None:
        a = d.assignment
        if code is not None:
            a = a[(a["township_code"] == code) | (a["site_township"] == code)]
        out.append(line_layer("assignment", "搬迁去向 Assignment (settlement → site)", a,
                              pd.Series(0, index=a.index), ASSIGN_CAT,
                              [Field("settlement_id", "自然村 settlement"), Field("site_id", "安置点 site"),
                               Field("households", "户数 households"),
                               Field("distance_km", "距离 distance", _fmt_km)],
                              decimals=st.decimals, show=code is not None))
    return out


def layers_industry(d: MapData, st: MapSettings, code: str | None) -> list[LayerSpec]:
    h = _subset(d.hosts, code)
    if h is None:
        return []
    # colours from the district's categories, so they agree between district and township maps
    cats_sorted = sorted({str(c) for c in _col(d.hosts, "category", "")})
    en = {}
    if "category_en" in d.hosts.columns:
        en = {str(z): str(e) for z, e in zip(d.hosts["category"], d.hosts["category_en"])
              if isinstance(e, str) and e.strip()}
    cats = [{"color": CATEGORY_COLORS[i % len(CATEGORY_COLORS)],
             "label": f"{c} {en[c]}" if c in en and en[c] != c else c}
            for i, c in enumerate(cats_sorted)] or [{"color": GREY, "label": "—"}]
    cat = _col(h, "category", "").astype(str).map({c: i for i, c in enumerate(cats_sorted)}).fillna(0).astype(int)
    radius = pd.Series(6.0, index=h.index)
    if len(h) and "scale" in h:
        scale = _num(h["scale"])
        unit = _col(h, "unit", "").astype(str)
        unit_max = scale.groupby(unit).transform("max")
        distinct = scale.groupby(unit).transform("nunique")
        frac = (scale / unit_max).where(unit_max > 0)
        # one size for a unit whose hosts all have the same scale (e.g. one plant per village)
        frac = frac.where(distinct > 1, 0.3)
        radius = (4 + 8 * np.sqrt(frac.fillna(0))).round(1)
    hh = h.copy()
    if len(hh):
        hh["scale_text"] = [
            None if not np.isfinite(_num(pd.Series([s])).iloc[0]) else
            f"{float(s):,.4g} {u or ''}{' (均分 split)' if bool(sp) else ''}"
            for s, u, sp in zip(_col(hh, "scale"), _col(hh, "unit", ""), _col(hh, "scale_assumed_split", False))]
    spec = point_layer(
        "industry", "产业项目 Industry projects (size = scale)", hh, cat, cats,
        [Field("product", "产品 product"), Field("project_id", "项目 project"),
         Field("category", "类别 category"), Field("scale_text", "规模 scale"),
         Field("village_name", "村 village"), Field("township_name", "乡镇 township"),
         Field("target_year", "年份 year")],
        decimals=st.decimals, title="product", radius=radius, cluster_min=st.cluster_min,
        base_radius=6, legend_note="圆越大规模越大(同单位); 同村多项目错开显示 larger circle = larger "
                                   "scale (same unit); projects in one village are shown side by side")
    spread_colocated(spec)
    return [spec]


def layers_access(d: MapData, st: MapSettings, code: str | None, *, show_villages: bool = True) -> list[LayerSpec]:
    out = []
    if "access" in d.missing:
        return out
    out.append(layer_villages_access(d, st, code, show=show_villages))
    s = _subset(d.settlements, code)
    if s is not None and "acc_target_group" in s.columns:
        tg = _bool(s["acc_target_group"])
        tch = _bool(_col(s, "acc_tongchang", False))
        tda = _bool(_col(s, "acc_tongda", False))
        gap = s[tg & ~tch]
        cat = pd.Series(np.where(tda[tg & ~tch], 0, 1), index=gap.index)
        out.append(point_layer(
            "gaps", "缺口: 未通畅的集中居住自然村 Gaps (target settlements not hardened)", gap, cat,
            GAP_CATS, SETTLEMENT_FIELDS[:3] + [Field("households", "户数 households"),
                                               Field("population", "人口 population"),
                                               Field("access_reason", "原因 reason")],
            decimals=st.decimals, title="name", cluster_min=st.cluster_min, base_radius=5))
    if d.works is not None:
        w = d.works
        if code is not None:
            poly = d.work_townships.loc[d.work_townships["township_code"] == code].geometry.union_all()
            w = w.loc[d.works_work.intersects(poly).to_numpy()]
        out.append(line_layer("works", "建议工程 Proposed road works", w, w["work_cat"], WORK_CATS,
                              [Field("work_id", "编号 id"), Field("type", "类型 type"),
                               Field("km", "长度 length", _fmt_km), Field("cost_yuan", "投资 cost", _fmt_wan_yuan),
                               Field("beneficiaries", "受益 beneficiaries", _fmt_ids)],
                              decimals=st.decimals, title="work_id"))
    return out


def map_layers(kind: str, d: MapData, st: MapSettings, code: str | None = None) -> list[LayerSpec]:
    """The layers of one map: ``kind`` is one of :data:`DISTRICT_MAPS` or ``"township"``."""
    if kind == "township":
        specs = [layer_boundary(d, st, code), layer_roads(d, st, code), layer_seats(d, st, code),
                 layer_villages_poverty(d, st, code)]
        specs += layers_access(d, st, code, show_villages=False)
        specs += layers_relocation(d, st, code)
        specs += layers_industry(d, st, code)
        return [s for s in specs if s is not None]
    specs = [layer_boundary(d, st, None), layer_townships(d, st)]
    if kind == "overview":
        specs += [layer_roads(d, st, None), layer_seats(d, st, None), layer_villages_poverty(d, st, None)]
    elif kind == "relocation":
        specs += [layer_roads(d, st, None, show=False), layer_seats(d, st, None)]
        specs += layers_relocation(d, st, None)
        specs.append(layer_villages_poverty(d, st, None, show=False))  # searchable by name
    elif kind == "industry":
        specs += [layer_roads(d, st, None, show=False),
                  layer_villages_poverty(d, st, None, show=False)]
        specs += layers_industry(d, st, None)
    elif kind == "access":
        specs += [layer_roads(d, st, None), layer_seats(d, st, None)]
        specs += layers_access(d, st, None)
        # the village layer is the searchable one; keep it but off (the access layer shows status)
        specs.append(layer_villages_poverty(d, st, None, show=False))
    else:
        raise OptionError(f"unknown map '{kind}'; maps: {', '.join(DISTRICT_MAPS)}, township")
    return specs


def _missing_for(kind: str, d: MapData) -> dict[str, str]:
    wanted = {"overview": ("access",), "relocation": ("relocation",), "industry": ("industry",),
              "access": ("access",), "township": ("access", "relocation", "industry")}[kind]
    return {k: v for k, v in d.missing.items() if k in wanted}


# --------------------------------------------------------------------------------------------
# building a folium map
# --------------------------------------------------------------------------------------------

@dataclass
class Background:
    """A hillshade image overlay (PNG bytes) and the bounds it covers, in the map CRS."""

    png: bytes
    bounds: tuple[float, float, float, float]
    shade: np.ndarray  # lon/lat rows (for the PNG maps)
    bounds_lonlat: tuple[float, float, float, float]


def make_background(ctx: StepContext, bounds_lonlat: tuple[float, float, float, float], *, width_px: int,
                    inside: gpd.GeoSeries | None, basemap: str) -> Background | None:
    """Hillshade of the DEM for a lon/lat box, as an overlay PNG (Web-Mercator rows)."""
    cfg = ctx.plan.section("maps")
    try:
        with ctx.layers.open_dem() as ds:
            h = hs.read_hillshade(ds, bounds_lonlat, width_px=width_px,
                                  azimuth_deg=float(cfg["hillshade_azimuth_deg"]),
                                  altitude_deg=float(cfg["hillshade_altitude_deg"]))
    except Exception as e:
        log.warning("maps: no hillshade (%s)", e)
        return None
    if h is None:
        return None
    mask = None
    if inside is not None and len(inside):
        from rasterio.features import geometry_mask
        from rasterio.transform import from_bounds
        t = from_bounds(*h.bounds, h.shade.shape[1], h.shade.shape[0])
        geoms = [g for g in inside.to_crs(4326).geometry if g is not None and not g.is_empty]
        if geoms:
            mask = geometry_mask(geoms, out_shape=h.shade.shape, transform=t, invert=True)
    rgba = hs.shade_to_rgba(h.shade, inside=mask)
    png = hs.encode_png(hs.to_web_mercator_rows(rgba, h.bounds))
    b = h.bounds
    if basemap == "gaode":
        from kaizhou_gis.terrain.coords import wgs84_to_gcj02
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        gx, gy = wgs84_to_gcj02(cx, cy)
        dx, dy = float(gx) - cx, float(gy) - cy
        b = (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
    return Background(png=png, bounds=b, shade=h.shade, bounds_lonlat=h.bounds)


def attribution_parts(text: str) -> tuple[list[str], str]:
    """The attribution of ``layers/README.md`` as (full lines, short form).

    The README quotes the text every map must carry as ``>`` lines and may give a one-line
    "Short form (map footers): `...`"; without them every non-empty line is used.
    """
    lines = [ln.strip() for ln in (text or "").splitlines()]
    quoted = [ln.lstrip(">").strip() for ln in lines if ln.startswith(">")]
    full = [ln for ln in (quoted or lines) if ln]
    m = re.search(r"short form[^`]*`([^`]+)`", text or "", flags=re.IGNORECASE)
    short = m.group(1).strip() if m else " · ".join(full)
    return full, short


def _says_synthesized(d: MapData) -> bool:
    return "synthes" in d.attribution.lower()


def _attribution_html(d: MapData, basemap: str) -> str:
    """Attribution control text (escaped): the README's short form, which says what is synthesized."""
    parts = []
    _, short = attribution_parts(d.attribution)
    if short:
        parts.append(short)
    if d.synthesized and not _says_synthesized(d):
        parts.append("合成数据 SYNTHESIZED layers: " + ", ".join(d.synthesized))
    parts.append("晕渲底图 hillshade from the DEM (offline)")
    if basemap != "offline":
        parts.append("在线底图仅联网可用 online tiles need the internet")
    return html.escape(" | ".join(parts))


#: Searchable layers: (layer key, field label of the code/id, field label of the detail shown).
SEARCH_LAYERS = [("villages", "代码 code", "乡镇 township"), ("villages_access", "代码 code", "乡镇 township"),
                 ("candidates", "编号 id", "行政村 village"), ("gaps", "编号 id", "行政村 village"),
                 ("settlements_other", "编号 id", "行政村 village"), ("seats", None, None)]


def search_index(specs: list[LayerSpec]) -> list[list]:
    """Entries ``[name, detail, layer key, feature index, code]`` of every village and settlement
    (and township seat) on the map, each place once (the first layer that has it)."""
    by_key = {s.key: s for s in specs}
    out, seen = [], set()
    for key, code_label, detail_label in SEARCH_LAYERS:
        s = by_key.get(key)
        if s is None or s.title_field < 0:
            continue
        ci = s.fields.index(code_label) if code_label in s.fields else -1
        di = s.fields.index(detail_label) if detail_label in s.fields else -1
        for i, row in enumerate(s.data):
            props = row[3] or []
            name = props[s.title_field]
            code = props[ci] if ci >= 0 else None
            ident = (key in ("villages", "villages_access"), str(code) if code is not None else (key, i))
            if name is None or ident in seen:
                continue
            seen.add(ident)
            detail = props[di] if di >= 0 and props[di] else ""
            out.append([name, detail, key, i, "" if code is None else str(code)])
    return out


def build_map(kind: str, d: MapData, specs: list[LayerSpec], *, title_zh: str, title_en: str,
              subtitle: str, bounds: tuple[float, float, float, float], background: Background | None,
              basemap: str, tianditu_key: str | None, notes: list[str] | None = None) -> folium.Map:
    """One offline folium map from layer specs (nothing is written)."""
    west, south, east, north = bounds
    m = OfflineMap(location=[(south + north) / 2, (west + east) / 2], tiles=None, zoom_start=10,
                   control_scale=False, prefer_canvas=True, **{"maxZoom": 18, "minZoom": 6})
    any_cluster = any(s.cluster for s in specs)
    inline_assets(m, cluster=any_cluster)
    root = m.get_root()
    root.header.add_child(RawHtml(f"<title>{html.escape(title_zh)} {html.escape(title_en)}</title>"),
                          name="kz_title")

    # base layers: hillshade (default) and optional online tiles, only one shown
    if background is not None:
        import base64
        url = "data:image/png;base64," + base64.b64encode(background.png).decode("ascii")
        b = background.bounds
        folium.raster_layers.ImageOverlay(
            url, bounds=[[b[1], b[0]], [b[3], b[2]]], name="地形晕渲 Hillshade (offline)",
            overlay=False, control=True, show=basemap == "offline", opacity=0.9,
            interactive=False).add_to(m)
    else:
        folium.map.FeatureGroup(name="无底图 No basemap (DEM not available)", overlay=False,
                                show=basemap == "offline").add_to(m)
    if basemap == "gaode":
        folium.TileLayer(GAODE_URL, attr=GAODE_ATTR, name="高德 Gaode (online, GCJ-02)",
                         subdomains="1234", overlay=False, show=True, max_zoom=18).add_to(m)
    else:
        folium.TileLayer(OSM_URL, attr=OSM_ATTR, name="OpenStreetMap (online)", overlay=False,
                         show=basemap == "osm", max_zoom=19).add_to(m)
        if tianditu_key:
            folium.TileLayer(TIANDITU_URL % tianditu_key, attr=TIANDITU_ATTR, name="天地图 Tianditu (online)",
                             subdomains="01234567", overlay=False, show=basemap == "tianditu",
                             max_zoom=18).add_to(m)
            folium.TileLayer(TIANDITU_LABEL_URL % tianditu_key, attr=TIANDITU_ATTR,
                             name="天地图注记 Tianditu labels (online)", subdomains="01234567",
                             overlay=True, show=basemap == "tianditu", max_zoom=18).add_to(m)

    for s in sorted(specs, key=lambda s: LAYER_Z.get(s.key, 5.0)):  # seats last, on top
        SpecLayer(s).add_to(m)
    folium.LayerControl(collapsed=True, position="topright").add_to(m)

    search = search_index(specs)
    page_notes = list(d.notes) + list(notes or [])
    root.html.add_child(RawHtml(_title_html(title_zh, title_en, subtitle, d.status)),
                        name="kz_title_html")
    root.html.add_child(RawHtml(_legend_html(specs)), name="kz_legend_html")
    root.html.add_child(RawHtml(_notes_html(_missing_for(kind, d), page_notes, d.attribution)),
                        name="kz_notes_html")
    m.add_child(PageExtras(attribution_html=_attribution_html(d, basemap), search_index=search,
                           placeholder="搜索村/自然村 名称或代码 search by name or code"))
    # fitted without animation: a zoom animation still running when the reader's first click
    # (a search hit) arrives would end on its own target and undo the view that click set
    fit = folium.map.FitBounds([[south, west], [north, east]])
    fit.options["animate"] = False
    m.add_child(fit)
    stable_element_ids(m, f"{kind}|{title_zh}|{subtitle}")
    return m


def stable_element_ids(m: folium.Map, seed: str) -> None:
    """Give every element of the page an id derived from ``seed`` and its position instead of
    folium's random one, so the same map built twice (``run`` and ``maps --township``, or two
    runs) is the same HTML byte for byte."""
    import hashlib

    seen: set[int] = set()
    counter = 0

    def walk(el) -> None:
        nonlocal counter
        if id(el) in seen:
            return
        seen.add(id(el))
        if hasattr(el, "_id"):
            el._id = hashlib.sha256(f"{seed}|{counter}".encode()).hexdigest()[:32]
            counter += 1
        for child in list(getattr(el, "_children", {}).values()):
            walk(child)

    root = m.get_root()
    walk(root)
    for part in (getattr(root, "header", None), getattr(root, "html", None), getattr(root, "script", None)):
        if part is not None:
            walk(part)


# --------------------------------------------------------------------------------------------
# print sheets (PDF/PNG): kaizhou_gis/printmap.py
# --------------------------------------------------------------------------------------------

#: Prefixes that make the printed legend's flat list unambiguous (the HTML legend has headings).
PNG_LEGEND_PREFIX = {"candidates": "拟搬迁 candidate", "gaps": "缺口 gap", "industry": "产业",
                     "villages_access": "村 village"}


# --------------------------------------------------------------------------------------------
# the step
# --------------------------------------------------------------------------------------------

def _bounds_of(gdf: gpd.GeoDataFrame, pad_frac: float = 0.03) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a layer, padded by a fraction of its size."""
    w, s, e, n = gdf.total_bounds
    if not np.all(np.isfinite([w, s, e, n])):
        raise LayerError("maps: a layer to frame a map has no geometry; every township needs a "
                         "polygon in the townships layer and the boundary layer a polygon.")
    px, py = (e - w) * pad_frac, (n - s) * pad_frac
    return (float(w - px), float(s - py), float(e + px), float(n + py))


def _options(ctx: StepContext) -> tuple[str, str | None]:
    basemap = ctx.options.get("basemap") or "offline"
    if basemap not in BASEMAPS:
        raise OptionError(f"--basemap {basemap}: unknown basemap; use one of {', '.join(BASEMAPS)}.")
    key = ctx.options.get("tianditu_key") or None
    if key is not None and not re.fullmatch(r"[0-9A-Za-z]{8,64}", str(key)):
        raise OptionError("--tianditu-key: a Tianditu key is 8-64 letters and digits (e.g. the "
                          "32-character key from console.tianditu.gov.cn); check the value.")
    if basemap == "tianditu" and not key:
        raise OptionError("--basemap tianditu needs a Tianditu key: pass --tianditu-key K "
                          "(free at console.tianditu.gov.cn), or use --basemap offline.")
    return basemap, key


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[MapsData]:
    """Build the district maps and the township maps (HTML + PNG) of the run.

    ``files`` holds each page as rendered HTML text (rendered once, to check the size budget) and
    each PNG as bytes; ``data.maps`` keeps the folium objects, ``data.sizes_mb`` the sizes.
    With ``ctx.township`` set only that township's map and PNG are built.
    """
    basemap, tianditu_key = _options(ctx)
    plan = ctx.plan
    cfg = plan.section("maps")
    st = _settings(plan)
    # a township's map is drawn from the district's results (its candidates, sites, works and
    # access are the district run's), so it is the same page as the district run's township map
    d = gather(ctx.district, needs)
    d_print = d if basemap != "gaode" else gather_wgs84(ctx.district, needs)  # sheets are drawn from WGS84 data
    files: dict[str, Any] = {}
    district = plan.name
    codes = sorted(d.townships["township_code"].astype(str))
    # print sheets are drawn in worker processes while this one builds the HTML pages; each file
    # keeps its place in `files` (its future is swapped for the bytes below)
    pool = printmap.SheetPool(ctx)
    sheets: list[tuple[str, str, Any]] = []
    if ctx.township is not None:
        if str(ctx.township) not in codes:
            raise OptionError(f"--township {ctx.township}: not in the townships layer; use one of "
                              f"{', '.join(codes[:5])} ...")
        codes = [str(ctx.township)]
    else:
        bounds_ll = _bounds_of(d.boundary)
        bg = make_background(ctx, _bounds_of(ctx.layers.boundary.to_crs(4326)),
                             width_px=int(cfg["hillshade_district_px"]),
                             inside=ctx.layers.boundary.geometry, basemap=basemap)
        for kind in DISTRICT_MAPS:
            zh, en = MAP_TITLES[kind]
            specs = map_layers(kind, d, st)
            files[f"maps/{kind}.html"] = build_map(
                kind, d, specs, title_zh=f"{district} {zh}", title_en=en,
                subtitle=plan.get("meta.plan_title", ""), bounds=bounds_ll, background=bg,
                basemap=basemap, tianditu_key=tianditu_key)
        files["maps/overview.pdf"] = printmap.district_sheet(
            ctx, d_print, map_layers("overview", d_print, st), formats=("pdf",), pool=pool)
        sheets.append(("maps/overview.pdf", "pdf", files["maps/overview.pdf"]))
    tw_work = d.work_townships.set_index("township_code")
    bad = [c for c in codes if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", c)]
    if bad:
        raise LayerError(f"townships: township_code {format_ids(bad)} cannot name a map file; codes must "
                         f"be digits (9-digit 统计用区划代码), fix the townships layer.")
    for code in codes:
        name = d.township_names.get(code, code)
        sub = d.townships[d.townships["township_code"] == code]
        if sub.geometry.isna().all() or sub.geometry.is_empty.all():
            raise LayerError(f"townships: township_code {code} ({name}) has no polygon; add its "
                             f"outline to the townships layer.")
        bounds = _bounds_of(sub, 0.06)
        bg = make_background(ctx, _bounds_of(tw_work.loc[[code]].to_crs(4326), 0.06),
                             width_px=int(cfg["hillshade_township_px"]),
                             inside=tw_work.loc[[code]].geometry, basemap=basemap)
        specs = map_layers("township", d, st, code)
        title = f"{district} {name}"
        subtitle = f"{name} ({code}) · {plan.get('meta.plan_title', '')}"
        files[f"maps/townships/{code}.html"] = build_map(
            "township", d, specs, title_zh=title, title_en="Township map", subtitle=subtitle,
            bounds=bounds, background=bg, basemap=basemap, tianditu_key=tianditu_key)
        sheet = printmap.township_sheet(ctx, d_print, specs if d_print is d else
                                        map_layers("township", d_print, st, code), code, pool=pool)
        for fmt in ("pdf", "png"):
            files[f"maps/townships/{code}.{fmt}"] = sheet
            sheets.append((f"maps/townships/{code}.{fmt}", fmt, sheet))
    # render each page once, here, to check its size; outputs.py writes the text as it is
    sizes, folium_maps = {}, {}
    for rel in list(files):
        if rel.endswith(".html"):
            folium_maps[rel] = files[rel]
            files[rel] = outputs.stable_element_ids(files[rel].get_root().render())
            sizes[rel] = len(files[rel].encode("utf-8")) / 2**20
    for rel, fmt, sheet in sheets:
        files[rel] = (sheet.result() if hasattr(sheet, "result") else sheet)[fmt]
    pool.close()
    over = []
    for rel, mb in sizes.items():
        limit = float(cfg["township_max_mb"] if "/townships/" in rel else cfg["district_max_mb"])
        if mb > limit:
            over.append(f"{rel} {mb:.2f} MB > {limit:g} MB")
            log.warning("maps: %s is %.2f MB, over the %.1f MB budget", rel, mb, limit)
    n_html = sum(1 for r in files if r.endswith(".html"))
    n_tw = sum(1 for r in files if r.startswith("maps/townships/") and r.endswith(".html"))
    headline = [f"{n_html - n_tw} district maps, {n_tw} township maps (+ A3 PDF and PNG sheets; "
                f"district PDF)" + (f", basemap {basemap}" if basemap != "offline" else ", offline")]
    if sizes:
        headline.append(f"largest page {max(sizes.values()):.2f} MB"
                        + (f"; OVER BUDGET: {', '.join(over[:3])}" if over else " (within budget)"))
    if d.missing:
        headline.append("missing layers: " + ", ".join(sorted(d.missing)))
    summary = {"headline": headline, "maps": n_html, "township_maps": n_tw, "sizes_mb": sizes,
               "over_budget": over, "missing_layers": dict(d.missing), "basemap": basemap,
               "synthesized_layers": d.synthesized}
    return StepResult("maps", files=files, data=MapsData(sizes_mb=sizes, maps=folium_maps), summary=summary)
