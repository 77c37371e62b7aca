"""Styles of the maps: basemaps, titles, categories and colours, draw order (HTML maps and print
sheets use the same)."""
from __future__ import annotations

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

#: A layer of a district page with more features than this is drawn in its compact form (README
#: "Large districts"): roads, the longest this many; point and line layers, popups with the
#: identifying fields only and a link to the feature's township map, which has the full detail.
#: The shipped Kaizhou layers (4,083 roads, 1,823 settlements) and a 10x district stay below it.
DISTRICT_DETAIL_MAX = 50_000

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


#: Draw order (higher on top), the same on HTML maps and print sheets: areas, roads, works,
#: the many small settlement points, villages, sites under the candidates they serve, industry,
#: and township seats on top of everything.
LAYER_Z = {"townships": 0.0, "boundary": 1.0, "roads": 2.0, "works": 3.0, "assignment": 3.5,
           "settlements_other": 4.0, "villages": 5.0, "villages_access": 5.0, "sites": 5.5,
           "gaps": 6.0, "candidates": 6.5, "industry": 7.0, "seats": 9.0}

#: Prefixes that make the printed legend's flat list unambiguous (the HTML legend has headings).
PNG_LEGEND_PREFIX = {"candidates": "拟搬迁 candidate", "gaps": "缺口 gap", "industry": "产业",
                     "villages_access": "村 village"}
