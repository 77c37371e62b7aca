"""Road access of every administrative village and settlement: 通达 / 通畅, distances, scorecard.

Method
------
1. The roads become a graph (:func:`kaizhou_gis.network.build_network`).
2. Every village, settlement and township seat is snapped to its nearest road **edge**: the point
   is projected onto the line (an STRtree ``query_nearest`` over all edges at once), giving the
   edge, the snap distance and the position along the edge. A point farther than
   ``access.reach_distance_m`` from every road is not reached.
   **Ties.** Edges within ``TIE_M`` (1 cm) of the nearest one are equally near: a point on a
   junction is at the same distance from every edge meeting there, and which of them is nearer
   by a few hundredths of a millimetre is float noise (a File Geodatabase, for one, stores
   coordinates on a 0.1 mm grid). Among equally near edges the choice is canonical: a paved
   one, then the lowest ``road_id``, then the lowest ``edge_id`` (the edge's position along its
   road), whatever the order of the rows and whatever the noise. 1 cm is far above the noise of
   a coordinate grid (<= 0.1 mm) and far below any distance the analysis reports.
3. A seat is attached to the main network: of the edges within reach, to the nearest one of
   the component with the most km (any surface for 通达, paved for 通畅), so a stray fragment
   digitized next to a seat does not stand for its township's network.
   Each seat becomes a virtual node joined to both ends of its edge with the partial lengths, so
   distances start exactly at the seat. One multi-source Dijkstra call
   (:func:`scipy.sparse.csgraph.dijkstra` with all seats as ``indices``) gives network distances
   from every seat to every node; a point's distance to a seat is the smaller of (distance to the
   edge's start node + position along) and (distance to its end node + rest of the edge).
4. 通达 (tongda): the point's edge is in the same connected component (any surface) as the edge
   of its **own** township's seat. 通畅 (tongchang): the point's edge is paved and in the same
   paved-only component as its seat's paved edge. A point on an unpaved spur is
   therefore 通达 but not 通畅 even where the spur touches a paved road.
5. The scorecard compares the shares with the plan's targets (ch.1): administrative villages
   100 % 通畅; settlements with ≥ 30 households or ≥ 100 people 100 % 通达 and 80 % 通畅;
   overall and per township, with the parameters used.

:func:`run` also proposes the works that close the gaps (:mod:`kaizhou_gis.links`), applies
them to the roads and re-runs the analysis for the "after" scorecard.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import dijkstra

from kaizhou_gis.layers import leftout
from kaizhou_gis.admin import NO_TOWNSHIP, settlement_townships
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.figures import pct
from kaizhou_gis.network import (DemGrid, RoadNetwork, build_network, dangles_frame, joins_frame,
                                network_settings, nodes_frame)
from kaizhou_gis.results import AccessData, StepResult

if TYPE_CHECKING:
    from kaizhou_gis.results import StepContext, StepNeeds

log = logging.getLogger(__name__)

_EPS = 1e-9
#: Edges whose distance to a point differs by less than this (m) are equally near: a tie, decided
#: by :func:`canonical_pick` (paved, then road_id, then edge_id), never by float noise.
TIE_M = 0.01
_TIE_M = TIE_M

LABELS_ZH = {
    "village_code": "行政村代码", "settlement_id": "自然村编号", "name": "名称",
    "township_code": "乡镇代码", "township_name": "乡镇", "village_name": "行政村",
    "kind": "类型", "households": "户数", "population": "人口", "poverty_village": "贫困村",
    "admin_village": "行政村(计入通畅率指标)",
    "target_group": "30户或100人以上", "tongda": "通达", "tongchang": "通畅",
    "snap_distance_m": "距最近道路(米)", "network_km_to_seat": "至乡镇驻地路网距离(公里)",
    "network_km_to_county": "至区政府驻地路网距离(公里)", "travel_min_to_seat": "至乡镇驻地行车时间(分钟)",
    "road_id": "最近道路编号", "road_surface": "最近道路路面", "reason": "未通达/未通畅原因",
    "reason_zh": "原因", "tongda_after": "实施拟建工程后通达(规划)", "tongchang_after": "实施拟建工程后通畅(规划)",
    "work_ids": "相关工程编号",
}


# --------------------------------------------------------------------------------------------
# Snapping
# --------------------------------------------------------------------------------------------
def edge_tie_keys(edges: pd.DataFrame, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort keys of edges ``e`` (row positions) for a tie: (not paved, road_id rank, edge_id)."""
    paved = (edges["paved"].to_numpy(dtype=bool)[e] if "paved" in edges.columns
             else np.zeros(len(e), dtype=bool))
    if "road_id" in edges.columns:
        _, road_rank = np.unique(edges["road_id"].astype(str).to_numpy()[e], return_inverse=True)
    else:
        road_rank = np.zeros(len(e), dtype=np.int64)
    eid = edges["edge_id"].to_numpy()[e] if "edge_id" in edges.columns else np.asarray(e)
    return ~paved, np.asarray(road_rank).ravel(), eid


def canonical_pick(pi: np.ndarray, e: np.ndarray, dist: np.ndarray, edges: pd.DataFrame, *,
                   tie_m: float = TIE_M) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One edge per point out of candidate pairs (point ``pi``, edge row ``e``, distance).

    The candidates within ``tie_m`` of a point's nearest candidate are equally near; of them a
    paved edge wins, then the lowest ``road_id``, then the lowest ``edge_id``. Farther
    candidates are dropped. The result does not depend on the order of the pairs or of the
    edges' rows, nor on coordinate noise well below ``tie_m``.

    Returns ``(pi, e, dist)`` with one row per point, sorted by point.
    """
    pi, e, dist = np.asarray(pi), np.asarray(e), np.asarray(dist, dtype="float64")
    if len(pi) == 0:
        return pi, e, dist
    dmin = np.full(int(pi.max()) + 1, np.inf)
    np.minimum.at(dmin, pi, dist)
    near = dist <= dmin[pi] + tie_m
    pi, e, dist = pi[near], e[near], dist[near]
    not_paved, road_rank, eid = edge_tie_keys(edges, e)
    order = np.lexsort((eid, road_rank, not_paved, pi))
    pi, e, dist = pi[order], e[order], dist[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    return pi[first], e[first], dist[first]


def snap_to_edges(points: gpd.GeoSeries, edges: gpd.GeoDataFrame, *,
                  mask: np.ndarray | None = None) -> pd.DataFrame:
    """Nearest edge of every point, by projection onto the lines (not nearest vertex).

    Among edges equally near (within ``TIE_M`` = 1 cm: a point on a junction, or a road
    digitized twice) the canonical one is taken (:func:`canonical_pick`: paved, then the lowest
    ``road_id``, then the lowest ``edge_id``).

    Parameters
    ----------
    points : GeoSeries
        Points in the edges' CRS.
    edges : GeoDataFrame
        The network's edges.
    mask : bool array, optional
        Only these edges are candidates (e.g. paved ones).

    Returns
    -------
    DataFrame aligned with ``points``
        ``edge`` (row position in ``edges``, -1 when the point is empty or there is no
        candidate), ``snap_distance_m``, ``along_m`` (position of the projection along the edge).
    """
    out = pd.DataFrame({"edge": np.full(len(points), -1, dtype=np.int64),
                        "snap_distance_m": np.nan, "along_m": np.nan}, index=points.index)
    cand = np.arange(len(edges)) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    geoms = points.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(cand) == 0 or not ok.any():
        return out
    lines = edges.geometry.to_numpy()[cand]
    tree = shapely.STRtree(lines)
    pts = geoms[ok]
    (pi, ti), dist = tree.query_nearest(pts, return_distance=True, all_matches=True)
    # every edge within TIE_M of the nearest one is equally near (a point on a junction, or
    # roads digitized twice on top of each other): the canonical pick decides among them
    dmin = np.full(len(pts), np.inf)
    np.minimum.at(dmin, pi, dist)
    pi, ti = tree.query(pts, predicate="dwithin", distance=dmin + TIE_M)
    e = cand[ti]
    dist = shapely.distance(pts[pi], lines[ti])
    pi, e, dist = canonical_pick(pi, e, dist, edges)
    along = shapely.line_locate_point(edges.geometry.to_numpy()[e], pts[pi])
    rows = np.flatnonzero(ok)[pi]
    out.iloc[rows, 0] = e
    out.iloc[rows, 1] = dist
    out.iloc[rows, 2] = along
    return out


# --------------------------------------------------------------------------------------------
# Seats and shortest paths
# --------------------------------------------------------------------------------------------
@dataclass
class SeatPaths:
    """Township seats on the network and the network distances from each seat to every node.

    ``seats`` has one row per seat (index 0..S-1): ``township_code``, ``name``, ``edge``,
    ``snap_distance_m``, ``along_m``, ``on_network`` (snapped within reach), ``component``,
    ``paved_edge``, ``paved_along_m``, ``paved_on_network``, ``paved_component``.
    ``dist_m`` and ``time_min`` are (S, n_nodes) arrays (inf where unreachable).
    """

    seats: pd.DataFrame
    dist_m: np.ndarray
    time_min: np.ndarray
    row_of: dict[str, int]


def _main_network_snap(points: gpd.GeoSeries, net: RoadNetwork, nearest: pd.DataFrame, *,
                       reach_distance_m: float, paved: bool) -> pd.DataFrame:
    """Attach seats to the main network: of the edges within reach, one of the component with
    the most km (the nearest such edge), so that a short stray fragment digitized next to a
    seat does not stand for the township's network. Seats with no edge within reach keep the
    nearest edge (``nearest``, from :func:`snap_to_edges`) for the report."""
    e = net.edges
    mask = e["paved"].to_numpy() if paved else np.ones(len(e), dtype=bool)
    cand = np.flatnonzero(mask)
    out = nearest.copy()
    geoms = points.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(cand) == 0 or not ok.any():
        return out
    comp_col = "paved_component" if paved else "component"
    ecomp = net.nodes[comp_col].to_numpy()[e["u"].to_numpy()]
    L = e["length_m"].to_numpy()
    comp_km = np.bincount(ecomp[cand], weights=L[cand], minlength=int(ecomp.max()) + 1)
    lines = e.geometry.to_numpy()[cand]
    pi, ti = shapely.STRtree(lines).query(geoms[ok], predicate="dwithin", distance=reach_distance_m)
    if len(pi) == 0:
        return out
    ei = cand[ti]
    d = shapely.distance(geoms[ok][pi], lines[ti])
    # the biggest component first (equal km: the lower component number); within it the
    # edges within TIE_M of the nearest are equally near and the canonical pick decides
    km = comp_km[ecomp[ei]]
    top = np.full(int(pi.max()) + 1, -np.inf)
    np.maximum.at(top, pi, km)
    keep = km == top[pi]
    pi, ei, d = pi[keep], ei[keep], d[keep]
    cmin = np.full(len(top), np.iinfo(np.int64).max)
    np.minimum.at(cmin, pi, ecomp[ei])
    keep = ecomp[ei] == cmin[pi]
    pi, ei, d = canonical_pick(pi[keep], ei[keep], d[keep], e)
    rows = np.flatnonzero(ok)[pi]
    out.iloc[rows, 0] = ei
    out.iloc[rows, 1] = d
    out.iloc[rows, 2] = shapely.line_locate_point(e.geometry.to_numpy()[ei], geoms[ok][pi])
    return out


def seat_paths(net: RoadNetwork, seats: gpd.GeoDataFrame, *, reach_distance_m: float) -> SeatPaths:
    """Snap the township seats and run one multi-source Dijkstra from all of them."""
    if "township_code" not in seats.columns:
        raise LayerError("township_seats: column 'township_code' is missing; add the 9-digit code "
                         "of each seat's township.")
    s = seats.reset_index(drop=True)
    codes = s["township_code"].astype(str)
    dup = codes[codes.duplicated()].unique()
    if len(dup):
        raise LayerError(f"township_seats: township_code must be unique (one seat per township); "
                         f"duplicated: {format_ids(dup)}. Keep one seat per township.")
    paved_mask = net.edges["paved"].to_numpy()
    snap = _main_network_snap(s.geometry, net, snap_to_edges(s.geometry, net.edges),
                              reach_distance_m=reach_distance_m, paved=False)
    psnap = _main_network_snap(s.geometry, net, snap_to_edges(s.geometry, net.edges, mask=paved_mask),
                               reach_distance_m=reach_distance_m, paved=True)
    e = net.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    comp = net.nodes["component"].to_numpy()
    pcomp = net.nodes["paved_component"].to_numpy()
    info = pd.DataFrame({"township_code": codes,
                         "name": s["name"].astype(str) if "name" in s.columns else codes,
                         "edge": snap["edge"].to_numpy(), "snap_distance_m": snap["snap_distance_m"].to_numpy(),
                         "along_m": snap["along_m"].to_numpy(),
                         "paved_edge": psnap["edge"].to_numpy(),
                         "paved_snap_distance_m": psnap["snap_distance_m"].to_numpy(),
                         "paved_along_m": psnap["along_m"].to_numpy()})
    info["on_network"] = (info["edge"] >= 0) & (info["snap_distance_m"] <= reach_distance_m)
    info["paved_on_network"] = (info["paved_edge"] >= 0) & (info["paved_snap_distance_m"] <= reach_distance_m)
    info["component"] = np.where(info["on_network"], comp[u[np.maximum(info["edge"], 0)]], -1)
    info["paved_component"] = np.where(info["paved_on_network"],
                                       pcomp[u[np.maximum(info["paved_edge"], 0)]], -1)
    n = net.n_nodes
    S = len(info)
    ok = info["on_network"].to_numpy()
    se = info["edge"].to_numpy()[ok]
    sa = info["along_m"].to_numpy()[ok]
    vn = n + np.flatnonzero(ok)
    L = e["length_m"].to_numpy()
    T = e["travel_min"].to_numpy()
    ex_i = np.concatenate([vn, vn])
    ex_j = np.concatenate([u[se], v[se]])
    frac_a = np.concatenate([sa / L[se], 1.0 - sa / L[se]])
    ex_len = np.maximum(frac_a * np.concatenate([L[se], L[se]]), _EPS)
    ex_time = np.maximum(frac_a * np.concatenate([T[se], T[se]]), _EPS)
    dist = np.full((S, n), np.inf)
    tmin = np.full((S, n), np.inf)
    if ok.any():
        g_len = net.matrix(np.maximum(L, _EPS), extra=(ex_i, ex_j, ex_len), n_extra_nodes=S)
        g_time = net.matrix(np.maximum(T, _EPS), extra=(ex_i, ex_j, ex_time), n_extra_nodes=S)
        d = dijkstra(g_len, directed=False, indices=vn)
        t = dijkstra(g_time, directed=False, indices=vn)
        dist[ok] = d[:, :n]
        tmin[ok] = t[:, :n]
    bad = info.loc[~info["on_network"], "township_code"].tolist()
    if bad:
        log.warning("township seats with no road within %g m: %s", reach_distance_m, format_ids(bad))
    return SeatPaths(seats=info, dist_m=dist, time_min=tmin,
                     row_of={c: i for i, c in enumerate(info["township_code"])})


def _along_network(net: RoadNetwork, node_values: np.ndarray, rows: np.ndarray, edge: np.ndarray,
                   along: np.ndarray, weight: np.ndarray, seat_edge: np.ndarray,
                   seat_along: np.ndarray) -> np.ndarray:
    """Network value from a seat row to points on edges (partial edges at both ends)."""
    out = np.full(len(rows), np.inf)
    ok = (rows >= 0) & (edge >= 0)
    if not ok.any():
        return out
    r, e, a = rows[ok], edge[ok], along[ok]
    u = net.edges["u"].to_numpy()[e]
    v = net.edges["v"].to_numpy()[e]
    L = net.edges["length_m"].to_numpy()[e]
    w = weight[e]
    frac = np.clip(a / L, 0.0, 1.0)
    best = np.minimum(node_values[r, u] + frac * w, node_values[r, v] + (1.0 - frac) * w)
    same = seat_edge[r] == e
    if same.any():
        direct = np.abs(frac - np.clip(seat_along[r] / L, 0.0, 1.0)) * w
        best = np.where(same, np.minimum(best, direct), best)
    out[ok] = best
    return out


# --------------------------------------------------------------------------------------------
# Access of points
# --------------------------------------------------------------------------------------------
def point_access(points: gpd.GeoSeries, township_codes: pd.Series, net: RoadNetwork,
                 seats: SeatPaths, *, reach_distance_m: float, county_seat_code: str | None = None
                 ) -> pd.DataFrame:
    """通达/通畅, snap distance, network distances and travel time of points.

    Parameters
    ----------
    points : GeoSeries
        Villages or settlements in the network's CRS.
    township_codes : Series
        Township code of each point (aligned with ``points``); the point is measured against the
        seat of this township.
    net, seats
        The network and :func:`seat_paths` on it.
    reach_distance_m : float
        A point farther than this from every road is not reached.
    county_seat_code : str, optional
        Township code of the county seat for ``network_km_to_county``.

    Returns
    -------
    DataFrame aligned with ``points``: ``tongda``, ``tongchang``, ``snap_distance_m``,
    ``edge_id``, ``road_id``, ``road_surface``, ``network_km_to_seat``, ``network_km_to_county``,
    ``travel_min_to_seat``, ``reason``, ``reason_zh``.
    """
    snap = snap_to_edges(points, net.edges)
    e = snap["edge"].to_numpy()
    d = snap["snap_distance_m"].to_numpy()
    a = snap["along_m"].to_numpy()
    codes = township_codes.astype(str).reindex(points.index).to_numpy()
    rows = np.array([seats.row_of.get(c, -1) for c in codes], dtype=np.int64)
    si = seats.seats
    has_edge = e >= 0
    within = has_edge & (d <= reach_distance_m)
    eu = net.edges["u"].to_numpy()[np.maximum(e, 0)]
    comp = net.nodes["component"].to_numpy()[eu]
    pcomp = net.nodes["paved_component"].to_numpy()[eu]
    paved = net.edges["paved"].to_numpy()[np.maximum(e, 0)] & has_edge
    seat_known = rows >= 0
    r0 = np.where(seat_known, rows, len(si))  # one sentinel row past the seats (no seat)

    def of_seat(col: str, fill):
        return np.append(si[col].to_numpy(), fill)[r0]
    seat_on = seat_known & of_seat("on_network", False).astype(bool)
    seat_paved_on = seat_known & of_seat("paved_on_network", False).astype(bool)
    tongda = within & seat_on & (comp == of_seat("component", -1))
    tongchang = tongda & paved & seat_paved_on & (pcomp == of_seat("paved_component", -1))

    L = net.edges["length_m"].to_numpy()
    T = net.edges["travel_min"].to_numpy()
    seat_edge = si["edge"].to_numpy()
    seat_along = si["along_m"].to_numpy()
    use = np.where(within, rows, -1)
    km = _along_network(net, seats.dist_m, use, np.where(within, e, -1), a, L, seat_edge, seat_along) / 1000.0
    tm = _along_network(net, seats.time_min, use, np.where(within, e, -1), a, T, seat_edge, seat_along)
    crow = seats.row_of.get(str(county_seat_code), -1) if county_seat_code else -1
    if crow >= 0:
        ck = _along_network(net, seats.dist_m, np.where(within, crow, -1), np.where(within, e, -1), a, L,
                            seat_edge, seat_along) / 1000.0
    else:
        ck = np.full(len(e), np.inf)
    km = np.where(tongda & np.isfinite(km), km, np.nan)
    tm = np.where(tongda & np.isfinite(tm), tm, np.nan)
    ck = np.where(within & np.isfinite(ck), ck, np.nan)

    reason = np.full(len(e), "", dtype=object)
    reason_zh = np.full(len(e), "", dtype=object)
    geoms = points.to_numpy()
    nogeom = shapely.is_missing(geoms) | shapely.is_empty(geoms)

    def put(mask, en, zh):
        m = mask & (reason == "")
        reason[m] = en if isinstance(en, str) else en[m]
        reason_zh[m] = zh if isinstance(zh, str) else zh[m]

    put(nogeom, "no location (empty geometry)", "无坐标")
    put(codes == NO_TOWNSHIP, "no township: its village is not in the villages layer",
        "无所属乡镇：所属行政村不在行政村图层中")
    put(~seat_known, "its township has no seat in township_seats", "所属乡镇无驻地点")
    far = ~within & ~nogeom
    dtxt = np.array([f"{x:.0f}" if np.isfinite(x) else "?" for x in d], dtype=object)
    put(far, np.array([f"no road within {reach_distance_m:g} m (nearest {t} m)" for t in dtxt], dtype=object),
        np.array([f"{reach_distance_m:g}米内无道路（最近{t}米）" for t in dtxt], dtype=object))
    put(~seat_on, "its township seat is not on the road network", "乡镇驻地不在路网上")
    put(~tongda, "only on a road fragment not connected to the township seat",
        "所在道路与乡镇驻地路网不连通")
    put(tongda & ~paved, "通达 only: the nearest road is unpaved", "仅通达：最近道路未硬化")
    put(tongda & ~seat_paved_on, "通达 only: the township seat has no paved road",
        "仅通达：乡镇驻地无硬化道路")
    put(tongda & ~tongchang, "通达 only: the paved road is not linked to the township seat by paved roads",
        "仅通达：硬化道路未与乡镇驻地硬化路网相连")

    e_safe = np.maximum(e, 0)
    return pd.DataFrame({
        "tongda": tongda, "tongchang": tongchang,
        "snap_distance_m": np.round(d, 1),
        "edge_id": np.where(has_edge, e, -1),
        "road_id": np.where(has_edge, net.edges["road_id"].to_numpy()[e_safe], None),
        "road_surface": np.where(has_edge, net.edges["surface"].to_numpy()[e_safe], None),
        "along_m": a,
        "network_km_to_seat": np.round(km, 3), "network_km_to_county": np.round(ck, 3),
        "travel_min_to_seat": np.round(tm, 1),
        "reason": reason, "reason_zh": reason_zh,
    }, index=points.index)


def target_group(settlements: pd.DataFrame, *, households_min: float, population_min: float) -> pd.Series:
    """Settlements of the plan's target group: ≥ households_min households or ≥ population_min people."""
    def col(name: str) -> pd.Series:  # a missing column or NaN counts as 0
        if name not in settlements.columns:
            return pd.Series(0.0, index=settlements.index)
        return pd.to_numeric(settlements[name], errors="coerce").fillna(0)
    hh, pop = col("households"), col("population")
    return ((hh >= households_min) | (pop >= population_min)).rename("target_group")


@dataclass
class AccessResult:
    """Access of the villages and settlements on one network."""

    net: RoadNetwork
    seats: SeatPaths
    villages: pd.DataFrame
    settlements: pd.DataFrame


def analyse(layers, plan, *, dem: DemGrid | None, roads: gpd.GeoDataFrame | None = None) -> AccessResult:
    """Network + access of every village and settlement (the whole district).

    ``roads`` replaces the layers' roads (e.g. with works applied).
    """
    p = plan.section("access")
    net = build_network(layers.roads if roads is None else roads, dem=dem, **network_settings(plan))
    seats = seat_paths(net, layers.township_seats, reach_distance_m=float(p["reach_distance_m"]))
    kw = dict(reach_distance_m=float(p["reach_distance_m"]), county_seat_code=str(p["county_seat_code"]))
    v = layers.villages
    s = layers.settlements
    va = point_access(v.geometry, v["township_code"].astype(str), net, seats, **kw)
    sa = point_access(s.geometry, settlement_townships(s, v, warn=False), net, seats, **kw)
    return AccessResult(net=net, seats=seats, villages=va, settlements=sa)


# --------------------------------------------------------------------------------------------
# Scorecard
# --------------------------------------------------------------------------------------------
def admin_village_mask(villages: pd.DataFrame) -> pd.Series:
    """True for administrative villages (行政村, ``kind`` 村), False for urban communities (社区).

    The plan's village indicator (专栏 indicator 5, 贫困地区行政村通畅率) and the 100 % target for
    villages (撤并村通畅率100%, ch.11) concern 行政村; 社区 are urban neighbourhoods. A villages
    layer without ``kind`` (or without any 村) counts every row as a village.
    """
    if "admin_village" in villages.columns:
        return villages["admin_village"].astype(bool)
    if "kind" not in villages.columns:
        return pd.Series(True, index=villages.index)
    kind = villages["kind"].astype(str).str.strip()
    if not (kind == "村").any():
        return pd.Series(True, index=villages.index)
    return kind == "村"


def scorecard(villages: pd.DataFrame, settlements: pd.DataFrame, plan, *,
              township_names: dict[str, str] | None = None) -> dict:
    """Shares against the plan's targets, overall and per township.

    Parameters
    ----------
    villages : DataFrame
        ``township_code``, ``tongchang`` (and ``tongda``), ``kind``; only administrative villages
        (村, :func:`admin_village_mask`) count, 社区 are reported as ``communities_excluded``.
    settlements : DataFrame
        ``township_code``, ``target_group``, ``tongda``, ``tongchang``.
    plan : Plan
    township_names : dict, optional
        Code → name for the per-township list.
    """
    p = plan.section("access")
    names = township_names or {}

    def figures(nv: int, v_da: int, v_ch: int, nt: int, t_da: int, t_ch: int) -> dict:
        f = {
            "villages": nv, "villages_tongda": v_da, "villages_tongchang": v_ch,
            "village_tongchang_pct": pct(v_ch, nv),
            "target_settlements": nt, "target_settlements_tongda": t_da,
            "target_settlements_tongchang": t_ch,
            "settlement_tongda_pct": pct(t_da, nt), "settlement_tongchang_pct": pct(t_ch, nt),
        }
        f["met"] = {
            "village_tongchang": _met(f["village_tongchang_pct"], p["village_tongchang_target_pct"]),
            "settlement_tongda": _met(f["settlement_tongda_pct"], p["settlement_tongda_target_pct"]),
            "settlement_tongchang": _met(f["settlement_tongchang_pct"], p["settlement_tongchang_target_pct"]),
        }
        return f

    admin = admin_village_mask(villages).to_numpy()
    v = pd.DataFrame({"code": villages["township_code"].astype(str).to_numpy(), "n": 1,
                      "da": villages["tongda"].astype(bool).to_numpy(),
                      "ch": villages["tongchang"].astype(bool).to_numpy()})[admin]
    tg = settlements["target_group"].astype(bool).to_numpy()
    t = pd.DataFrame({"code": settlements["township_code"].astype(str).to_numpy()[tg], "n": 1,
                      "da": settlements["tongda"].astype(bool).to_numpy()[tg],
                      "ch": settlements["tongchang"].astype(bool).to_numpy()[tg]})
    out = figures(len(v), int(v["da"].sum()), int(v["ch"].sum()), len(t), int(t["da"].sum()),
                  int(t["ch"].sum()))
    out["communities_excluded"] = int((~admin).sum())
    codes = sorted(set(villages["township_code"].astype(str)) | set(settlements["township_code"].astype(str)))
    vs = v.groupby("code")[["n", "da", "ch"]].sum().reindex(codes, fill_value=0)
    ts = t.groupby("code")[["n", "da", "ch"]].sum().reindex(codes, fill_value=0)
    out["per_township"] = [
        {"township_code": c, "township_name": names.get(c, ""),
         **figures(int(vs.at[c, "n"]), int(vs.at[c, "da"]), int(vs.at[c, "ch"]),
                   int(ts.at[c, "n"]), int(ts.at[c, "da"]), int(ts.at[c, "ch"]))}
        for c in codes]
    return out


def _met(pct: float | None, target: float) -> bool | None:
    """Target met? None when the group is empty (no target villages/settlements: neither met nor
    missed; reported as "no target settlements" / 无目标聚居点)."""
    return None if pct is None else bool(pct + 1e-9 >= target)


def parameters(plan) -> dict:
    """The plan settings the access analysis used, with their sources."""
    return {k: v for k, v in plan.settings("access.").items()} | \
        {k: v for k, v in plan.settings("links.").items()}


# --------------------------------------------------------------------------------------------
# Pipeline step
# --------------------------------------------------------------------------------------------
def read_dem(layers, plan) -> DemGrid:
    """The DEM window covering every layer plus the longest new link searched."""
    frames = [layers.roads, layers.villages, layers.settlements, layers.township_seats]
    b = np.array([f.total_bounds for f in frames if len(f)])
    bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    with layers.open_dem() as ds:
        return DemGrid.from_dataset(ds, bounds, layers.roads.crs,
                                    margin_m=float(plan["links.max_new_link_km"]) * 1000.0)


def township_table(before: dict, after: dict, works: pd.DataFrame) -> pd.DataFrame:
    """Per-township scorecard before and after the works, with the works' km and cost."""
    keys = ["villages", "village_tongchang_pct", "target_settlements", "settlement_tongda_pct",
            "settlement_tongchang_pct"]
    cols = ["township_code", "township_name"] + keys
    b = pd.DataFrame(before["per_township"], columns=cols).set_index("township_code")
    a = pd.DataFrame(after["per_township"], columns=cols).set_index("township_code")
    t = b[["township_name"] + keys].copy()
    for k in ("village_tongchang_pct", "settlement_tongda_pct", "settlement_tongchang_pct"):
        t[k + "_after"] = a[k]
    w = works.assign(township_code=works["township_code"].astype(str).str.split(";")).explode("township_code")
    n = works.assign(n=works["township_code"].astype(str).str.count(";") + 1)["n"]
    w["share"] = 1.0 / n.reindex(w.index).to_numpy()  # a work serving several townships is split evenly
    g = w.assign(km=w["km"] * w["share"], cost_yuan=w["cost_yuan"] * w["share"]) \
        .groupby("township_code")[["km", "cost_yuan"]].sum()
    t["works_km"] = g["km"].reindex(t.index).fillna(0.0).round(3)
    t["works_cost_yuan"] = g["cost_yuan"].reindex(t.index).fillna(0.0).round(0)
    t = t.reset_index()
    t.attrs["labels_zh"] = {
        "township_code": "乡镇代码", "township_name": "乡镇", "villages": "行政村数",
        "village_tongchang_pct": "行政村通畅率(%)", "target_settlements": "30户/100人以上居住地数",
        "settlement_tongda_pct": "居住地通达率(%)", "settlement_tongchang_pct": "居住地通畅率(%)",
        "village_tongchang_pct_after": "实施拟建工程后行政村通畅率(规划,%)",
        "settlement_tongda_pct_after": "实施拟建工程后居住地通达率(规划,%)",
        "settlement_tongchang_pct_after": "实施拟建工程后居住地通畅率(规划,%)",
        "works_km": "工程里程(公里)", "works_cost_yuan": "工程投资(元)"}
    return t


def _table(base: gpd.GeoDataFrame, cols: list[str], acc: pd.DataFrame, extra: dict) -> gpd.GeoDataFrame:
    t = base[[c for c in cols if c in base.columns]].copy()
    for k, val in extra.items():
        t[k] = val
    for c in ("tongda", "tongchang", "snap_distance_m", "network_km_to_seat", "network_km_to_county",
              "travel_min_to_seat", "road_id", "road_surface", "reason", "reason_zh"):
        t[c] = acc[c]
    return gpd.GeoDataFrame(t, geometry=base.geometry, crs=base.crs)


def run(ctx: "StepContext", needs: "StepNeeds") -> "StepResult[AccessData]":
    """Pipeline step ``access``: tables, GeoPackages, scorecard before/after, works, cost curve.

    For the district; a township's result is :func:`township_view` of the district's.
    """
    from kaizhou_gis import links

    layers, plan = ctx.layers, ctx.plan
    p = plan.section("access")
    for name, col in (("villages", "village_code"), ("settlements", "settlement_id"),
                      ("settlements", "village_code"), ("villages", "township_code")):
        if col not in getattr(layers, name).columns:
            raise LayerError(f"{name}: column '{col}' is missing; see the layer contract.")
    dem = read_dem(layers, plan)
    before = analyse(layers, plan, dem=dem)
    v, s = layers.villages, layers.settlements
    s_town = settlement_townships(s, v)
    tg = target_group(s, households_min=p["settlement_households_min"],
                      population_min=p["settlement_population_min"])
    names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
    vt = _table(v, ["village_code", "name", "township_code", "kind", "households", "population",
                    "poverty_village", "deep_poverty"], before.villages,
                {"township_name": v["township_code"].astype(str).map(names).fillna(""),
                 "admin_village": admin_village_mask(v).to_numpy()})
    st = _table(s, ["settlement_id", "name", "village_code", "households", "population"], before.settlements,
                {"township_code": s_town, "township_name": s_town.map(names).fillna(""), "target_group": tg})

    plan_out = links.plan_works(before, vt, st, plan=plan, dem=dem)
    works = plan_out.works
    roads_after = links.apply_works(layers.roads, works, plan=plan)
    after = analyse(layers, plan, dem=dem, roads=roads_after)
    vt["tongda_after"] = after.villages.loc[vt.index, "tongda"]
    vt["tongchang_after"] = after.villages.loc[vt.index, "tongchang"]
    st["tongda_after"] = after.settlements.loc[st.index, "tongda"]
    st["tongchang_after"] = after.settlements.loc[st.index, "tongchang"]
    vt["work_ids"] = plan_out.work_ids.reindex(vt["village_code"].astype(str)).fillna("").to_numpy()
    st["work_ids"] = plan_out.work_ids.reindex(st["settlement_id"].astype(str)).fillna("").to_numpy()
    vt.attrs["labels_zh"] = LABELS_ZH
    st.attrs["labels_zh"] = LABELS_ZH
    parts = {"before": before, "vt": vt, "st": st, "plan_out": plan_out, "names": names,
             "works": plan_out.works, "cost_curve": plan_out.cost_curve,
             "unresolved": plan_out.unresolved, "choices": plan_out.choices,
             "totals": plan_out.totals}
    return _build(ctx, parts, None)


def _works_of(works: pd.DataFrame, code: str) -> pd.Series:
    """True for the works that serve township ``code`` (``township_code`` lists them, ``;``)."""
    return works["township_code"].astype(str).str.split(";").map(lambda c: code in c).astype(bool)


def township_view(district: "StepResult[AccessData]", ctx: "StepContext") -> "StepResult[AccessData]":
    """The access step for ``ctx.township``: the district's result filtered to the township.

    通达/通畅 before and after, the works and their costs are the district run's (the works are
    chosen for the whole district); kept are the township's villages and settlements, the works
    serving them (a work shared with neighbours is listed whole; ``townships.csv`` and the
    township's ``works_share_*`` figures split it evenly, as the district table does), the
    cost-curve steps of its points and its unresolved points.
    """
    p = district.data.parts
    code = str(ctx.township)
    vt = p["vt"][p["vt"]["township_code"].astype(str) == code]
    st = p["st"][p["st"]["township_code"].astype(str) == code]
    if vt.empty and st.empty:  # empty tables and scorecard, like the other steps
        log.warning("access: township %s has no village or settlement in the layers.", code)
    works = p["works"][_works_of(p["works"], code).to_numpy()]
    pids = set(vt["village_code"].astype(str)) | set(st["settlement_id"].astype(str))
    curve = p["cost_curve"][p["cost_curve"]["beneficiary"].astype(str).isin(pids).to_numpy()]
    unresolved = p["unresolved"][p["unresolved"]["township_code"].astype(str) == code]
    choices = p["choices"][p["choices"]["pid"].astype(str).isin(pids).to_numpy()]
    parts = dict(p, vt=vt, st=st, works=works, cost_curve=curve, unresolved=unresolved,
                 choices=choices, totals=_township_totals(p["totals"], works, code, unresolved, choices))
    return _build(ctx, parts, code)


def _township_totals(district: dict, works: pd.DataFrame, code: str, unresolved: pd.DataFrame,
                     choices: pd.DataFrame) -> dict:
    """Works totals of one township from the district's works serving it."""
    new = works["type"] == "new"
    n = works["township_code"].astype(str).str.count(";") + 1
    new_km, up_km = float(works.loc[new, "km"].sum()), float(works.loc[~new, "km"].sum())
    t = dict(district)
    t.update({
        "new_links": int(new.sum()), "new_km": round(new_km, 3),
        "upgrades": int((~new).sum()), "upgrade_km": round(up_km, 3),
        "total_km": round(new_km + up_km, 3), "cost_yuan": float(works["cost_yuan"].sum()),
        "cost_100pct_targets_yuan": float(works.loc[works["phase"] == "100% targets", "cost_yuan"].sum()),
        "cost_80pct_target_yuan": float(works.loc[works["phase"] == "80% target", "cost_yuan"].sum()),
        "share_of_plan_km_pct": None,
        "unresolved": int(len(unresolved)),
        "points_considered": int(len(choices)),
        "township_share_km": round(float((works["km"] / n).sum()), 3),
        "township_share_cost_yuan": round(float((works["cost_yuan"] / n).sum()), 0),
        "district_total_km": district["total_km"], "district_cost_yuan": district["cost_yuan"],
        "scope": (f"township {code}: the district's works that serve it (chosen for the whole "
                  f"district); km and cost_yuan count each such work whole, township_share_* split "
                  f"a work serving several townships evenly (as townships.csv)"),
    })
    return t


def _build(ctx: "StepContext", parts: dict, township: str | None) -> "StepResult[AccessData]":
    """Tables, scorecard and files of the access step from the district's analysis and works
    (``parts``, filtered to ``township`` when given)."""

    layers, plan = ctx.layers, ctx.plan
    p = plan.section("access")
    before, vt, st, names = parts["before"], parts["vt"], parts["st"], parts["names"]
    works, totals = parts["works"], parts["totals"]

    sc_before = scorecard(vt, st, plan, township_names=names)
    after_v = vt.assign(tongda=vt["tongda_after"], tongchang=vt["tongchang_after"])
    after_s = st.assign(tongda=st["tongda_after"], tongchang=st["tongchang_after"])
    sc_after = scorecard(after_v, after_s, plan, township_names=names)
    # check: every point the works were chosen for is reached in the re-run on the changed roads
    ch = parts["choices"]
    after_ch = pd.concat([vt.set_index(vt["village_code"].astype(str))["tongchang_after"],
                          st.set_index(st["settlement_id"].astype(str))["tongchang_after"]])
    after_da = pd.concat([vt.set_index(vt["village_code"].astype(str))["tongda_after"],
                          st.set_index(st["settlement_id"].astype(str))["tongda_after"]])
    missed = sorted(set(ch.loc[ch["expect_tongchang"].to_numpy()
                               & ~after_ch.reindex(ch["pid"]).fillna(False).to_numpy(), "pid"])
                    | set(ch.loc[ch["expect_tongda"].to_numpy()
                                 & ~after_da.reindex(ch["pid"]).fillna(False).to_numpy(), "pid"]))
    if missed:
        log.warning("access: %d point(s) given works are still not reached after applying them: %s",
                    len(missed), format_ids(missed))
    check = {"points_given_works": int((ch["option"] != "").sum()),
             "not_reached_after_applying_works": missed}
    sc = {"district": plan.name, "township": township,
          "scope": ("township view of the district analysis: 通达/通畅 and the works are the "
                    "district run's, filtered to this township" if township else "district"),
          "parameters": parameters(plan),
          "network": before.net.report, "before": sc_before, "after": sc_after, "works": totals,
          "check": check, "unresolved": parts["unresolved"].to_dict(orient="records")}

    towns = township_table(sc_before, sc_after, works)
    edges = before.net.edges.drop(columns=["road_index"])
    dangles = dangles_frame(before.net)
    joins = joins_frame(before.net)
    nodes = nodes_frame(before.net)
    if township and "township_code" in layers.townships.columns:
        # the township's own part of the network (edges and dangles touching its polygon)
        poly = layers.townships.loc[layers.townships["township_code"].astype(str) == str(township)]
        poly = poly.geometry[~(poly.geometry.is_empty | poly.geometry.isna())]
        if len(poly):
            area = poly.union_all()
            edges = edges[edges.intersects(area).to_numpy()]
            dangles = dangles[dangles.intersects(area).to_numpy()]
            joins = joins[joins.intersects(area).to_numpy()]
            # the nodes the kept edges join (every u/v of the edges layer is a node_id here)
            ends = np.union1d(edges["u"].to_numpy(), edges["v"].to_numpy())
            nodes = nodes[nodes["node_id"].isin(ends).to_numpy()]
    curve = parts["cost_curve"]
    if "village_code" in st.columns and "village_name" not in st.columns:  # a name next to each id
        v_names = dict(zip(layers.villages["village_code"].astype(str), layers.villages["name"].astype(str)))
        st = st.copy()
        st.insert(st.columns.get_loc("village_code") + 1, "village_name",
                  st["village_code"].astype(str).map(v_names))
        if isinstance(st.attrs.get("labels_zh"), dict):
            st.attrs["labels_zh"]["village_name"] = "行政村"
    files = {
        "access/villages.csv": vt, "access/settlements.csv": st,
        "access/access.gpkg": {"villages": vt, "settlements": st, "edges": edges,
                               "dangles": dangles, "joins": joins, "nodes": nodes},
        "access/scorecard.json": sc,
        "access/works.gpkg": works,
        "access/cost_curve.csv": curve,
        "access/townships.csv": towns,
    }
    b, a = sc_before, sc_after
    fmt = lambda x: "n/a" if x is None else f"{x:.1f}%"  # noqa: E731
    headline = [
        f"villages 通畅 {fmt(b['village_tongchang_pct'])} → {fmt(a['village_tongchang_pct'])} "
        f"with the proposed works (planned) / 实施拟建工程后（规划） (target {p['village_tongchang_target_pct']:g}%; "
        f"{b['villages']:,} 行政村, {b.get('communities_excluded', 0):,} 社区 not counted)",
        f"settlements ≥{p['settlement_households_min']}户/{p['settlement_population_min']}人: 通达 "
        f"{fmt(b['settlement_tongda_pct'])} → {fmt(a['settlement_tongda_pct'])}, 通畅 "
        f"{fmt(b['settlement_tongchang_pct'])} → {fmt(a['settlement_tongchang_pct'])} (planned)",
        f"works: {totals['new_links']} new links {totals['new_km']:.1f} km + {totals['upgrades']} upgrades "
        f"{totals['upgrade_km']:.1f} km, {totals['cost_yuan'] / 1e8:.2f} 亿元"
        + (f" ({totals['share_of_plan_km_pct']:.0f}% of the plan's {totals['plan_roads_km']:g} km)"
           if totals["share_of_plan_km_pct"] is not None else ""),
    ]
    if township:
        headline[-1] = ("works serving this township (district selection): " + headline[-1][7:]
                        + f"; its share (shared works split evenly, as townships.csv): "
                          f"{totals['township_share_km']:.1f} km, "
                          f"{totals['township_share_cost_yuan'] / 1e8:.2f} 亿元")
    if len(parts["unresolved"]):
        headline.append(f"{len(parts['unresolved'])} village(s)/settlement(s) without a feasible work "
                        f"(see scorecard.json 'unresolved')")
    left_out = leftout.access(vt, st)
    headline += [f"left out: {x}" for x in leftout.access_lines(left_out, p["reach_distance_m"])]
    summary = {"headline": headline, "left_out": left_out,
               "before": {k: b[k] for k in b if k != "per_township"},
               "after": {k: a[k] for k in a if k != "per_township"}, "works": totals,
               "network": before.net.report}
    data = AccessData(villages=vt, settlements=st, edges=before.net.edges, works=works,
                      scorecard={"before": sc_before, "after": sc_after}, cost_curve=curve,
                      network=before.net, unresolved=parts["unresolved"], townships=towns,
                      parts=parts)
    return StepResult(name="access", files=files, data=data, summary=summary,
                      township_view=township is not None)
