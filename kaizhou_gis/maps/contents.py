"""Which layers each map shows (:func:`map_layers`): the district maps and the township map, built
from :class:`kaizhou_gis.maps.data.MapData` as :class:`kaizhou_gis.maps.specs.LayerSpec`."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.errors import OptionError
from kaizhou_gis.maps.data import MapData
from kaizhou_gis.maps.specs import (
    Field,
    LayerSpec,
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
    if d.hosts is None:
        return []
    h = _subset(d.hosts, code)
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
    out: list[LayerSpec] = []
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
            assert d.works_work is not None  # data.gather sets it whenever works is set
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
