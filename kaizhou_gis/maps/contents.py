"""Which layers each map shows (:func:`map_layers`): the district maps and the township map, built
from :class:`kaizhou_gis.maps.data.MapData` as :class:`kaizhou_gis.maps.specs.LayerSpec`."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import OptionError
from kaizhou_gis.maps import styles
from kaizhou_gis.maps.data import MapData
from kaizhou_gis.maps.specs import (
    Field,
    LayerSpec,
    Prepared,
    _bool,
    _col,
    _fmt_deg,
    _fmt_ids,
    _fmt_km,
    _fmt_m,
    _fmt_wan_yuan,
    _num,
    line_layer,
    point_layer,
    polygon_layer,
    spread_colocated,
)
from kaizhou_gis.maps.styles import (
    ACCESS_CATS,
    ASSIGN_CAT,
    BOUNDARY_CAT,
    CATEGORY_COLORS,
    DISTRICT_MAPS,
    ELEV_COLORS,
    GAP_CATS,
    GREY,
    OTHER_SETTLEMENT_CAT,
    POVERTY_CATS,
    ROAD_CATS,
    SEAT_CAT,
    SITE_CATS,
    TOWNSHIP_CAT,
    WORK_CATS,
)

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
    #: a district page's layer with more features is drawn compact (:data:`styles.DISTRICT_DETAIL_MAX`)
    detail_max: int = styles.DISTRICT_DETAIL_MAX


def _settings(plan) -> MapSettings:
    cfg = plan.section("maps")
    return MapSettings(decimals=int(cfg["coordinate_decimals"]), cluster_min=int(cfg["cluster_min_points"]),
                       threshold_m=float(plan["relocation.threshold_m"]),
                       elev_breaks=list(cfg["elevation_breaks_m"]), detail_max=styles.DISTRICT_DETAIL_MAX)


#: The note of a district page with compact layers (here, not in :mod:`styles`, whose strings
#: make the print sheets' font subset).
COMPACT_NOTE = ("大区图: 超过 {n:,} 个要素的图层以简化形式显示 (道路仅显示最长的 {n:,} 条; 弹窗仅列名称与编号, "
                "附乡镇图链接); 全部要素及其详情见各乡镇图 maps/townships/<代码>.html 与结果表 (CSV/GPKG)。 "
                "Large district: layers with more than {n:,} features are drawn in a compact form "
                "(roads: the {n:,} longest; popups: name and id with a link to the township map); "
                "every feature with its details is on the township maps maps/townships/<code>.html "
                "and in the result tables (CSV/GPKG).")


#: The popup field of a compact layer that links to the feature's township map.
TOWNSHIP_LINK = Field("township_code", "乡镇图 township map")


def _compact(st: MapSettings, code: str | None, n: int) -> bool:
    """Whether a layer of ``n`` features is drawn compact: on a district page (``code`` None)
    above :attr:`MapSettings.detail_max`."""
    return code is None and n > st.detail_max


def _compact_fields(fields: list[Field], frame: gpd.GeoDataFrame | None) -> list[Field]:
    """The popup fields of a compact layer: the identifying ones (the first three: name, id or
    code, village or township) and the township-map link when the frame has a township code."""
    out = list(fields[:3])
    if frame is not None and "township_code" in frame.columns:
        out.append(TOWNSHIP_LINK)
    return out


def _mark_compact(spec: LayerSpec, st: MapSettings) -> LayerSpec:
    """Flag ``spec`` compact, with its link field and legend note."""
    spec.compact = True
    labels = spec.fields
    spec.link = labels.index(TOWNSHIP_LINK.label) if TOWNSHIP_LINK.label in labels else -1
    note = (f"区图超过 {st.detail_max:,} 个要素: 弹窗仅列名称与编号, 详情见乡镇图 over {st.detail_max:,} "
            f"features: popups list name and id; details on the township maps")
    spec.legend_note = f"{spec.legend_note}; {note}" if spec.legend_note else note
    return spec


class _MapRows:
    """The maps' layers of a run (:class:`MapData`) prepared once for the district maps and every
    township map: each frame as a :class:`Prepared` (coordinates and popup values of its rows),
    the per-row categories, each township's row positions (grouped once), the township outlines
    in the work CRS and spatial indexes of the roads and works. A map then takes its rows by
    position instead of filtering and copying the district's frames."""

    def __init__(self, d: MapData, st: MapSettings):
        dec = st.decimals
        self.frames = {name: getattr(d, name) for name in _FRAMES}
        self.roads_src, self.roads_work = d.roads, d.roads_work
        self.roads = {scale: Prepared(gdf, dec) for scale, gdf in d.roads.items()}
        self.boundary = Prepared(d.boundary, dec)
        self.townships = Prepared(d.townships, dec)
        self.township_codes = np.asarray(d.townships["township_code"].astype(str), dtype=object)
        self.villages = Prepared(d.villages, dec)
        self.seats = Prepared(d.seats, dec)
        self._positions: dict[str, dict[str, np.ndarray]] = {}
        self._outlines: dict[str, Any] = {}
        self._trees: dict[str, shapely.STRtree] = {}
        self.settlements = Prepared(d.settlements, dec) if d.settlements is not None else None
        if d.settlements is not None and "relocation_candidate" in d.settlements.columns:
            s = d.settlements
            edges, _ = _elevation_classes(st.threshold_m, st.elev_breaks)
            elev = _num(s["elevation_m"]) if "elevation_m" in s else pd.Series(np.nan, index=s.index)
            self.candidate = _bool(s["relocation_candidate"]).to_numpy()
            self.elevation_class = np.searchsorted(edges, elev.fillna(-1e9).to_numpy(), side="right")
        if d.settlements is not None and "acc_target_group" in d.settlements.columns:
            s = d.settlements
            tch, tda = _bool(_col(s, "acc_tongchang", False)), _bool(_col(s, "acc_tongda", False))
            self.gap = (_bool(s["acc_target_group"]) & ~tch).to_numpy()
            self.gap_cat = np.where(tda, 0, 1)
        self.sites: Prepared | None = None
        self.assignment: Prepared | None = None
        self.hosts: Prepared | None = None
        self.works: Prepared | None = None
        if d.sites is not None:
            self.sites = Prepared(d.sites, dec)
            self.site_codes = d.sites["township_code"].to_numpy()
            self.site_ids = np.asarray(d.sites["site_id"].astype(str), dtype=object)
            self.site_capacity = _num(_col(d.sites, "capacity_households", np.nan))
        if d.assignment is not None:
            self.assignment = Prepared(d.assignment, dec)
            self.assignment_codes = d.assignment["township_code"].to_numpy()
            self.assignment_site_codes = d.assignment["site_township"].to_numpy()
            self.assignment_sites = d.assignment["site_id"].to_numpy()
        if d.hosts is not None:
            self._prepare_hosts(d.hosts, dec)
        if d.works is not None:
            self.works = Prepared(d.works, dec)

    def _prepare_hosts(self, hosts: gpd.GeoDataFrame, dec: int) -> None:
        # colours from the district's categories, so they agree between district and township maps
        cats_sorted = sorted({str(c) for c in _col(hosts, "category", "")})
        en = {}
        if "category_en" in hosts.columns:
            en = {str(z): str(e) for z, e in zip(hosts["category"], hosts["category_en"])
                  if isinstance(e, str) and e.strip()}
        self.host_cats = [{"color": CATEGORY_COLORS[i % len(CATEGORY_COLORS)],
                           "label": f"{c} {en[c]}" if c in en and en[c] != c else c}
                          for i, c in enumerate(cats_sorted)] or [{"color": GREY, "label": "—"}]
        self.host_cat = (_col(hosts, "category", "").astype(str)
                         .map({c: i for i, c in enumerate(cats_sorted)}).fillna(0).astype(int).to_numpy())
        self.host_scale = _num(hosts["scale"]) if "scale" in hosts else None
        self.host_unit = _col(hosts, "unit", "").astype(str)
        hh = hosts.copy()
        if len(hh):
            hh["scale_text"] = [
                None if not np.isfinite(_num(pd.Series([s])).iloc[0]) else
                f"{float(s):,.4g} {u or ''}{' (均分 split)' if bool(sp) else ''}"
                for s, u, sp in zip(_col(hh, "scale"), _col(hh, "unit", ""), _col(hh, "scale_assumed_split", False))]
        self.hosts = Prepared(hh, dec)

    def longest_roads(self, n: int) -> np.ndarray:
        """Positions (in order) of the ``n`` longest district-scale roads (by length in the work
        CRS; ties by position)."""
        length = self.roads_work["district"].geometry.length.to_numpy()
        return np.sort(np.argsort(-length, kind="stable")[:n])

    def current(self, d: MapData) -> bool:
        """Whether ``d`` still holds the frames these rows were prepared from."""
        return (all(getattr(d, name) is gdf for name, gdf in self.frames.items())
                and d.roads is self.roads_src and d.roads_work is self.roads_work)

    def rows(self, name: str, code: str | None) -> np.ndarray:
        """Positions of the rows of frame ``name`` (a :class:`MapData` attribute) on a map: all of
        them on a district map (or when the frame has no township code), else those of township
        ``code``."""
        gdf = self.frames[name]
        if code is None or "township_code" not in gdf.columns:
            return np.arange(len(gdf))
        if name not in self._positions:
            groups: dict[str, list[int]] = {}
            for i, c in enumerate(gdf["township_code"].astype(str).tolist()):
                groups.setdefault(c, []).append(i)
            self._positions[name] = {c: np.asarray(v, dtype=np.intp) for c, v in groups.items()}
        return self._positions[name].get(code, np.zeros(0, dtype=np.intp))

    def outline(self, code: str):
        """The township's outline in the work CRS (its polygons' union)."""
        if code not in self._outlines:
            wt = self.frames["work_townships"]
            self._outlines[code] = wt.geometry.iloc[self.rows("work_townships", code)].union_all()
        return self._outlines[code]

    def intersecting(self, name: str, geoms: gpd.GeoSeries, area) -> np.ndarray:
        """Positions (in order) of the geometries of ``geoms`` that intersect ``area``: the
        candidates from a spatial index, kept by the exact predicate."""
        if name not in self._trees:
            self._trees[name] = shapely.STRtree(geoms.values)
        values = geoms.values
        cand = np.sort(self._trees[name].query(area))
        return cand[shapely.intersects(values[cand], area)]


#: MapData frames a :class:`_MapRows` is prepared from (rebuilt when one is replaced).
_FRAMES = ("boundary", "townships", "seats", "villages", "settlements", "sites", "assignment",
           "hosts", "works", "works_work", "work_townships")


def _map_rows(d: MapData, st: MapSettings) -> _MapRows:
    """The run's :class:`_MapRows` for these settings, prepared on first use and kept in ``d``."""
    key = ("map_rows", st.decimals, st.threshold_m, tuple(st.elev_breaks))
    rows = d.cache.get(key)
    if rows is None or not rows.current(d):
        rows = d.cache[key] = _MapRows(d, st)
    return rows


def layer_boundary(d: MapData, st: MapSettings, code: str | None) -> LayerSpec:
    r = _map_rows(d, st)
    if code is None:
        return polygon_layer("boundary", "区界 District boundary", r.boundary, np.zeros(len(r.boundary), int),
                             BOUNDARY_CAT, [Field("name", "名称 name")], decimals=st.decimals)
    cat = (r.township_codes == code).astype(int)  # 1: this township, drawn bold
    return polygon_layer("townships", "乡镇 Townships", r.townships, cat, TOWNSHIP_CAT,
                         [Field("name", "名称 name"), Field("township_code", "代码 code"),
                          Field("kind", "类型 kind")], decimals=st.decimals, title="name")


def layer_townships(d: MapData, st: MapSettings) -> LayerSpec:
    r = _map_rows(d, st)
    return polygon_layer("townships", "乡镇 Townships", r.townships, np.zeros(len(r.townships), int),
                         TOWNSHIP_CAT[:1], [Field("name", "名称 name"), Field("township_code", "代码 code"),
                                            Field("kind", "类型 kind")], decimals=st.decimals, title="name")


def layer_roads(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    r = _map_rows(d, st)
    scale = "district" if code is None else "township"
    rows = None
    n_all = len(d.roads[scale])
    if code is not None:  # the roads within 500 m of the township
        rows = r.intersecting("roads", d.roads_work["township"].geometry, r.outline(code).buffer(500.0))
    elif _compact(st, code, n_all):  # a large district: the longest roads (all on the township maps)
        rows = r.longest_roads(st.detail_max)
    cat = d.roads[scale]["road_cat"].to_numpy()
    spec = line_layer("roads", "道路 Roads (by surface)", r.roads[scale], cat if rows is None else cat[rows],
                      ROAD_CATS, None, decimals=st.decimals, show=show, rows=rows)
    if code is None and rows is not None:
        spec.compact = True
        spec.legend_note = (f"区图仅显示最长的 {len(rows):,} 条 (共 {n_all:,} 条), 全部道路见乡镇图 the district "
                            f"map shows the {len(rows):,} longest of {n_all:,} roads; all roads on the township maps")
    return spec


def _village_layer(d: MapData, st: MapSettings, code: str | None, key: str, name: str, column: str,
                   cats, show: bool) -> LayerSpec:
    """The villages of the map (the township's, or all) coloured by ``column`` of ``d.villages``."""
    r = _map_rows(d, st)
    rows = r.rows("villages", code)
    compact = _compact(st, code, len(rows))
    spec = point_layer(key, name, r.villages, d.villages[column].to_numpy()[rows], cats,
                       _compact_fields(VILLAGE_FIELDS, d.villages) if compact else VILLAGE_FIELDS,
                       decimals=st.decimals, title="name", show=show, cluster_min=st.cluster_min,
                       base_radius=6, rows=rows)
    return _mark_compact(spec, st) if compact else spec


def layer_villages_poverty(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    return _village_layer(d, st, code, "villages", "村 Villages (poverty status)", "poverty_cat",
                          POVERTY_CATS, show)


def layer_villages_access(d: MapData, st: MapSettings, code: str | None, *, show: bool = True) -> LayerSpec:
    return _village_layer(d, st, code, "villages_access", "村 通达/通畅 Village road access", "access_cat",
                          ACCESS_CATS, show)


def layer_seats(d: MapData, st: MapSettings, code: str | None) -> LayerSpec:
    r = _map_rows(d, st)
    rows = r.rows("seats", code)
    return point_layer("seats", "乡镇驻地 Township seats", r.seats, np.zeros(len(rows), int), SEAT_CAT,
                       [Field("name", "名称 name"), Field("elevation_m", "海拔 elevation", _fmt_m)],
                       decimals=st.decimals, title="name", base_radius=5, rows=rows)


def layers_relocation(d: MapData, st: MapSettings, code: str | None, *, show_other: bool = False) -> list[LayerSpec]:
    r = _map_rows(d, st)
    if r.settlements is None or "relocation_candidate" not in r.settlements.gdf.columns:
        return []
    rows = r.rows("settlements", code)
    cand = r.candidate[rows]
    _, cats = _elevation_classes(st.threshold_m, st.elev_breaks)
    c = rows[cand]
    frame = r.settlements.gdf

    def fields(n: int) -> list[Field]:
        return _compact_fields(SETTLEMENT_FIELDS, frame) if _compact(st, code, n) else SETTLEMENT_FIELDS

    out = [point_layer("candidates", "拟整体搬迁自然村 Relocation candidates (whole settlements, by elevation)",
                       r.settlements, r.elevation_class[c], cats, fields(len(c)), decimals=st.decimals,
                       title="name", cluster_min=st.cluster_min, base_radius=5, rows=c)]
    o = rows[~cand]
    out.append(point_layer("settlements_other", "其他自然村 Other settlements", r.settlements,
                           np.zeros(len(o), int), OTHER_SETTLEMENT_CAT, fields(len(o)),
                           decimals=st.decimals, title="name", show=show_other,
                           cluster_min=st.cluster_min, base_radius=3, rows=o))
    out = [_mark_compact(spec, st) if _compact(st, code, n) else spec for spec, n in zip(out, (len(c), len(o)))]
    if r.sites is not None:
        out.append(_layer_sites(d, r, r.sites, st, code))
    if r.assignment is not None:
        a = None
        if code is not None:
            a = np.flatnonzero((r.assignment_codes == code) | (r.assignment_site_codes == code))
        n = len(r.assignment) if a is None else len(a)
        a_fields = [Field("settlement_id", "自然村 settlement"), Field("site_id", "安置点 site"),
                    Field("households", "户数 households"), Field("distance_km", "距离 distance", _fmt_km)]
        spec = line_layer("assignment", "搬迁去向 Assignment (settlement → site)", r.assignment,
                          np.zeros(n, int), ASSIGN_CAT,
                          _compact_fields(a_fields, r.assignment.gdf) if _compact(st, code, n) else a_fields,
                          decimals=st.decimals, show=code is not None, rows=a)
        out.append(_mark_compact(spec, st) if _compact(st, code, n) else spec)
    return out


def _layer_sites(d: MapData, r: _MapRows, sites: Prepared, st: MapSettings, code: str | None) -> LayerSpec:
    """The resettlement sites: of the township and those its candidates are assigned to."""
    rows = np.arange(len(sites))
    if code is not None:
        keep = r.site_codes == code
        if d.assignment is not None:
            used = set(r.assignment_sites[r.assignment_codes == code])
            keep |= np.fromiter((sid in used for sid in r.site_ids), bool, len(r.site_ids))
        rows = np.flatnonzero(keep)
    cap = r.site_capacity.iloc[rows]
    cap_max = float(np.nanmax(cap)) if cap.notna().any() else 1.0
    r0, r1 = (6.0, 8.0) if code is not None else (3.0, 5.0)  # smaller on the district map
    distinct = cap.dropna().unique()
    if len(distinct) <= 1:  # every site holds the same: one size, and the legend says so
        radius = pd.Series(r0 + (2.0 if code is not None else 0.5), index=cap.index)
        label = "安置点 Resettlement sites"
        note = (f"每个安置点容量 {float(distinct[0]):,.0f} 户 every site holds "
                f"{float(distinct[0]):,.0f} households") if len(distinct) else ""
    else:
        radius = (r0 + r1 * np.sqrt(cap.fillna(0) / max(cap_max, 1.0))).round(1)
        label = "安置点 Resettlement sites (size = capacity)"
        note = "圆越大容量越大 larger circle = more capacity"
    return point_layer(
        "sites", label, sites, sites.gdf["site_cat"].to_numpy()[rows], SITE_CATS,
        [Field("site_name", "名称 name"), Field("site_id", "编号 id"),
         Field("capacity_households", "容量(户) capacity (households)"),
         Field("assigned_households", "已安置(户) assigned (households)"),
         Field("suitability", "适宜性 suitability"), Field("elevation_m", "海拔 elevation", _fmt_m),
         Field("slope_deg", "坡度 slope", _fmt_deg)],
        decimals=st.decimals, title="site_name", radius=radius, base_radius=8,
        legend_note=note, rows=rows)


def layers_industry(d: MapData, st: MapSettings, code: str | None) -> list[LayerSpec]:
    r = _map_rows(d, st)
    if r.hosts is None:
        return []
    rows = r.rows("hosts", code)
    radius = pd.Series(6.0, index=np.arange(len(rows)))
    if len(rows) and r.host_scale is not None:
        scale = r.host_scale.iloc[rows]
        unit = r.host_unit.iloc[rows]
        unit_max = scale.groupby(unit).transform("max")
        distinct = scale.groupby(unit).transform("nunique")
        frac = (scale / unit_max).where(unit_max > 0)
        # one size for a unit whose hosts all have the same scale (e.g. one plant per village)
        frac = frac.where(distinct > 1, 0.3)
        radius = (4 + 8 * np.sqrt(frac.fillna(0))).round(1)
    h_fields = [Field("product", "产品 product"), Field("project_id", "项目 project"),
                Field("category", "类别 category"), Field("scale_text", "规模 scale"),
                Field("village_name", "村 village"), Field("township_name", "乡镇 township"),
                Field("target_year", "年份 year")]
    compact = _compact(st, code, len(rows))
    spec = point_layer(
        "industry", "产业项目 Industry projects (size = scale)", r.hosts, r.host_cat[rows], r.host_cats,
        _compact_fields(h_fields, r.hosts.gdf) if compact else h_fields,
        decimals=st.decimals, title="product", radius=radius, cluster_min=st.cluster_min,
        base_radius=6, legend_note="圆越大规模越大(同单位); 同村多项目错开显示 larger circle = larger "
                                   "scale (same unit); projects in one village are shown side by side",
        rows=rows)
    spread_colocated(spec)
    return [_mark_compact(spec, st) if compact else spec]


def layers_access(d: MapData, st: MapSettings, code: str | None, *, show_villages: bool = True) -> list[LayerSpec]:
    out: list[LayerSpec] = []
    if "access" in d.missing:
        return out
    r = _map_rows(d, st)
    out.append(layer_villages_access(d, st, code, show=show_villages))
    if r.settlements is not None and "acc_target_group" in r.settlements.gdf.columns:
        rows = r.rows("settlements", code)
        gap = rows[r.gap[rows]]
        g_fields = SETTLEMENT_FIELDS[:3] + [Field("households", "户数 households"),
                                            Field("population", "人口 population"),
                                            Field("access_reason", "原因 reason")]
        compact = _compact(st, code, len(gap))
        spec = point_layer(
            "gaps", "缺口: 未通畅的集中居住自然村 Gaps (target settlements not hardened)", r.settlements,
            r.gap_cat[gap], GAP_CATS, _compact_fields(g_fields, r.settlements.gdf) if compact else g_fields,
            decimals=st.decimals, title="name", cluster_min=st.cluster_min, base_radius=5, rows=gap)
        out.append(_mark_compact(spec, st) if compact else spec)
    if r.works is not None:
        shown = None
        if code is not None:
            assert d.works_work is not None  # data.gather sets it whenever works is set
            shown = r.intersecting("works", d.works_work.geometry, r.outline(code))
        cat = r.works.gdf["work_cat"].to_numpy()
        w_fields = [Field("work_id", "编号 id"), Field("type", "类型 type"),
                    Field("km", "长度 length", _fmt_km), Field("cost_yuan", "投资 cost", _fmt_wan_yuan),
                    Field("beneficiaries", "受益 beneficiaries", _fmt_ids)]
        compact = _compact(st, code, len(cat) if shown is None else len(shown))
        spec = line_layer("works", "建议工程 Proposed road works", r.works, cat if shown is None else cat[shown],
                          WORK_CATS, _compact_fields(w_fields, r.works.gdf) if compact else w_fields,
                          decimals=st.decimals, title="work_id", rows=shown)
        out.append(_mark_compact(spec, st) if compact else spec)
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
