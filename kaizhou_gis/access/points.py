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
   distances start exactly at the seat. Dijkstra searches from the seats
   (:func:`scipy.sparse.csgraph.dijkstra`, batched, each bounded to the area its own points
   need: :mod:`kaizhou_gis.access.seatfield`) give the network distances from a seat to the
   nodes of its township's points; a point's distance to a seat is the smaller of (distance to
   the edge's start node + position along) and (distance to its end node + rest of the edge).
4. 通达 (tongda): the point's edge is in the same connected component (any surface) as the edge
   of its **own** township's seat. 通畅 (tongchang): the point's edge is paved and in the same
   paved-only component as its seat's paved edge. A point on an unpaved spur is
   therefore 通达 but not 通畅 even where the spur touches a paved road.
5. The scorecard compares the shares with the plan's targets (ch.1): administrative villages
   100 % 通畅; settlements with ≥ 30 households or ≥ 100 people 100 % 通达 and 80 % 通畅;
   overall and per township, with the parameters used.

:func:`kaizhou_gis.access.step.run` also proposes the works that close the gaps
(:mod:`kaizhou_gis.access.works`), applies
them to the roads and re-runs the analysis for the "after" scorecard.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.access.seatfield import SeatField
from kaizhou_gis.admin import NO_TOWNSHIP, settlement_townships
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.network import (
    DemGrid,
    RoadNetwork,
    build_network,
    network_settings,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

_EPS = 1e-9
#: Edges whose distance to a point differs by less than this (m) are equally near: a tie, decided
#: by :func:`canonical_pick` (paved, then road_id, then edge_id), never by float noise.
TIE_M = 0.01
_TIE_M = TIE_M


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
    order = np.argsort(pi, kind="stable")
    pi, e, dist = pi[order], e[order], dist[order]
    alone = np.r_[True, pi[1:] != pi[:-1]] & np.r_[pi[:-1] != pi[1:], True]
    if alone.all():  # no tie: one candidate per point (the usual case; no keys to look up)
        return pi, e, dist
    tied = ~alone  # the keys only for the points with several candidates
    not_paved, road_rank, eid = edge_tie_keys(edges, e[tied])
    sub = np.flatnonzero(tied)[np.lexsort((eid, road_rank, not_paved, pi[tied]))]
    keep = np.concatenate([np.flatnonzero(alone), sub[np.r_[True, pi[sub][1:] != pi[sub][:-1]]]])
    keep.sort()
    return pi[keep], e[keep], dist[keep]


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
    n = len(points)
    edge_out = np.full(n, -1, dtype=np.int64)
    dist_out = np.full(n, np.nan)
    along_out = np.full(n, np.nan)
    cand = np.arange(len(edges)) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    geoms = points.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if len(cand) and ok.any():
        lines = edges.geometry.to_numpy()[cand]
        pts = geoms[ok]
        pi, ti, dist = _near_pairs(shapely.STRtree(lines), pts, lines)
        pi, e, dist = canonical_pick(pi, cand[ti], dist, edges)
        rows = np.flatnonzero(ok)[pi]
        edge_out[rows] = e
        dist_out[rows] = dist
        along_out[rows] = shapely.line_locate_point(edges.geometry.to_numpy()[e], pts[pi])
    return pd.DataFrame({"edge": edge_out, "snap_distance_m": dist_out, "along_m": along_out},
                        index=points.index)


def _near_pairs(tree: shapely.STRtree, pts: np.ndarray, lines: np.ndarray, *,
                rounds: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, line, distance) of every line within ``TIE_M`` of each point's nearest line.

    Most points lie near a road: a ``dwithin`` query at a small radius (1/16 of the lines' mean
    spacing, growing fourfold per round) finds every line within it at once, and a point whose
    nearest line lies at least ``TIE_M`` inside the radius has all its candidates. The few left
    after ``rounds`` rounds take ``query_nearest`` and then ``dwithin`` the nearest distance plus
    ``TIE_M``. The pairs are those of ``query_nearest`` + ``dwithin`` for every point, found
    with cheaper tree queries.
    """
    x0, y0, x1, y1 = shapely.total_bounds(lines)
    radius = math.sqrt(max((x1 - x0) * (y1 - y0), 0.0) / len(lines)) / 16.0
    radius = max(radius, 4.0 * TIE_M) if math.isfinite(radius) else 0.0
    todo = np.arange(len(pts))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(rounds if radius > 0 else 0):
        if len(todo) == 0:
            break
        pi, ti = tree.query(pts[todo], predicate="dwithin", distance=radius)
        d = shapely.distance(pts[todo][pi], lines[ti])
        dmin = np.full(len(todo), np.inf)
        np.minimum.at(dmin, pi, d)
        done = dmin + TIE_M + 1e-6 * radius <= radius  # every line within dmin + TIE_M found
        keep = done[pi] & (d <= dmin[pi] + TIE_M)
        found.append((todo[pi[keep]], ti[keep], d[keep]))
        todo = todo[~done]
        radius *= 4.0
    if len(todo):
        (qi, _), dq = tree.query_nearest(pts[todo], return_distance=True, all_matches=False)
        dmin = np.full(len(todo), np.inf)
        np.minimum.at(dmin, qi, dq)
        pi, ti = tree.query(pts[todo], predicate="dwithin", distance=dmin + TIE_M)
        found.append((todo[pi], ti, shapely.distance(pts[todo][pi], lines[ti])))
    pi, ti, d = (np.concatenate(x) for x in zip(*found, strict=True))
    return pi, ti, d


# --------------------------------------------------------------------------------------------
# Seats and shortest paths
# --------------------------------------------------------------------------------------------
@dataclass
class SeatPaths:
    """Township seats on the network and the network distances from each seat to every node.

    ``seats`` has one row per seat (index 0..S-1): ``township_code``, ``name``, ``edge``,
    ``snap_distance_m``, ``along_m``, ``on_network`` (snapped within reach), ``component``,
    ``paved_edge``, ``paved_along_m``, ``paved_on_network``, ``paved_component``.
    ``dist_m`` and ``time_min`` are :class:`~kaizhou_gis.access.seatfield.SeatField` objects: network
    metres and travel minutes from a seat to a node, computed for the pairs read
    (``field.at(rows, nodes)``; ``field[rows]`` gives whole rows, inf where unreachable); None
    when the distances were not asked for (``seat_paths(..., distances=False)``).
    """

    seats: pd.DataFrame
    dist_m: SeatField | None
    time_min: SeatField | None
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


def seat_paths(net: RoadNetwork, seats: gpd.GeoDataFrame, *, reach_distance_m: float,
               distances: bool = True) -> SeatPaths:
    """Snap the township seats and run one multi-source Dijkstra from all of them (without
    ``distances``: snap only; 通达/通畅 need the components, not the distances)."""
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
    if not distances:
        dist = tmin = None
    else:
        g_len = net.matrix(np.maximum(L, _EPS), extra=(ex_i, ex_j, ex_len), n_extra_nodes=S)
        g_time = net.matrix(np.maximum(T, _EPS), extra=(ex_i, ex_j, ex_time), n_extra_nodes=S)
        sources = np.where(ok, n + np.arange(S), -1)
        node_xy = shapely.get_coordinates(net.nodes.geometry.to_numpy())
        g = s.geometry.to_numpy()
        seat_xy = np.column_stack([shapely.get_x(g), shapely.get_y(g)])
        seat_comp = info["component"].to_numpy()
        common = dict(node_xy=node_xy, seat_xy=seat_xy, node_comp=comp, seat_comp=seat_comp)
        dist = SeatField(g_len, sources, n, **common)
        pos = (L > 0) & np.isfinite(T)
        per_m = float(np.median(T[pos] / L[pos])) if pos.any() else 1.0
        tmin = SeatField(g_time, sources, n, per_m=per_m, **common)
    bad = info.loc[~info["on_network"], "township_code"].tolist()
    if bad:
        log.warning("township seats with no road within %g m: %s", reach_distance_m, format_ids(bad))
    return SeatPaths(seats=info, dist_m=dist, time_min=tmin,
                     row_of={c: i for i, c in enumerate(info["township_code"])})


def _along_network(net: RoadNetwork, node_values: SeatField | np.ndarray, rows: np.ndarray,
                   edge: np.ndarray, along: np.ndarray, weight: np.ndarray, seat_edge: np.ndarray,
                   seat_along: np.ndarray) -> np.ndarray:
    """Network value from a seat row to points on edges (partial edges at both ends);
    ``node_values``: a :class:`SeatField` or an (S, n_nodes) array of seat-to-node values."""
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
    if isinstance(node_values, SeatField):  # both ends in one batch of searches
        ends = node_values.at(np.concatenate([r, r]), np.concatenate([u, v]))
        du, dv = ends[:len(r)], ends[len(r):]
    else:
        du, dv = node_values[r, u], node_values[r, v]
    best = np.minimum(du + frac * w, dv + (1.0 - frac) * w)
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
    has_edge = e >= 0
    within = has_edge & (d <= reach_distance_m)
    c = _connection(net, seats, e, rows, has_edge, within)
    if seats.dist_m is None:  # reach only (seat_paths without distances)
        km = tm = ck = np.full(len(e), np.nan)
    else:
        km, tm, ck = _network_distances(net, seats, e, a, rows, within, c["tongda"], county_seat_code)
    reason, reason_zh = _reasons(points, codes, d, within, c, reach_distance_m)

    e_safe = np.maximum(e, 0)
    return pd.DataFrame({
        "tongda": c["tongda"], "tongchang": c["tongchang"],
        "snap_distance_m": np.round(d, 1),
        "edge_id": np.where(has_edge, e, -1),
        "road_id": np.where(has_edge, net.edges["road_id"].to_numpy()[e_safe], None),
        "road_surface": np.where(has_edge, net.edges["surface"].to_numpy()[e_safe], None),
        "along_m": a,
        "network_km_to_seat": np.round(km, 3), "network_km_to_county": np.round(ck, 3),
        "travel_min_to_seat": np.round(tm, 1),
        "reason": reason, "reason_zh": reason_zh,
    }, index=points.index)


def _connection(net: RoadNetwork, seats: SeatPaths, e: np.ndarray, rows: np.ndarray, has_edge: np.ndarray,
                within: np.ndarray) -> dict[str, np.ndarray]:
    """通达/通畅 of points on edges ``e`` measured against the seats in ``rows`` (-1: no seat),
    with the facts the reasons need (``paved``, ``seat_known``, ``seat_on``, ``seat_paved_on``)."""
    si = seats.seats
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
    return {"tongda": tongda, "tongchang": tongchang, "paved": paved, "seat_known": seat_known,
            "seat_on": seat_on, "seat_paved_on": seat_paved_on}


def _network_distances(net: RoadNetwork, seats: SeatPaths, e: np.ndarray, a: np.ndarray, rows: np.ndarray,
                       within: np.ndarray, tongda: np.ndarray, county_seat_code: str | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network km and travel minutes to the own seat (通达 points) and km to the county seat."""
    if seats.dist_m is None or seats.time_min is None:
        raise ValueError("_network_distances needs seat_paths(..., distances=True)")
    si = seats.seats
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
    return km, tm, ck


def _reasons(points: gpd.GeoSeries, codes: np.ndarray, d: np.ndarray, within: np.ndarray,
             c: dict[str, np.ndarray], reach_distance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Why a point is not 通达/通畅 (English, Chinese): the first reason that applies."""
    tongda, tongchang, paved = c["tongda"], c["tongchang"], c["paved"]
    reason = np.full(len(d), "", dtype=object)
    reason_zh = np.full(len(d), "", dtype=object)
    geoms = points.to_numpy()
    nogeom = shapely.is_missing(geoms) | shapely.is_empty(geoms)

    def put(mask, en, zh):
        m = mask & (reason == "")
        reason[m] = en if isinstance(en, str) else en[m]
        reason_zh[m] = zh if isinstance(zh, str) else zh[m]

    put(nogeom, "no location (empty geometry)", "无坐标")
    put(codes == NO_TOWNSHIP, "no township: its village is not in the villages layer",
        "无所属乡镇：所属行政村不在行政村图层中")
    put(~c["seat_known"], "its township has no seat in township_seats", "所属乡镇无驻地点")
    far = ~within & ~nogeom
    dtxt = np.array([f"{x:.0f}" if np.isfinite(x) else "?" for x in d], dtype=object)
    put(far, np.array([f"no road within {reach_distance_m:g} m (nearest {t} m)" for t in dtxt], dtype=object),
        np.array([f"{reach_distance_m:g}米内无道路（最近{t}米）" for t in dtxt], dtype=object))
    put(~c["seat_on"], "its township seat is not on the road network", "乡镇驻地不在路网上")
    put(~tongda, "only on a road fragment not connected to the township seat",
        "所在道路与乡镇驻地路网不连通")
    put(tongda & ~paved, "通达 only: the nearest road is unpaved", "仅通达：最近道路未硬化")
    put(tongda & ~c["seat_paved_on"], "通达 only: the township seat has no paved road",
        "仅通达：乡镇驻地无硬化道路")
    put(tongda & ~tongchang, "通达 only: the paved road is not linked to the township seat by paved roads",
        "仅通达：硬化道路未与乡镇驻地硬化路网相连")
    return reason, reason_zh


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


def analyse(layers, plan, *, dem: DemGrid | None, roads: gpd.GeoDataFrame | None = None,
            reach_only: bool = False) -> AccessResult:
    """Network + access of every village and settlement (the whole district).

    ``roads`` replaces the layers' roads (e.g. with works applied). ``reach_only``: 通达/通畅,
    snap distances, edges and reasons only, as the re-run on the roads with the works applied
    needs them: those come from the network's topology, surfaces and components, so its edges
    get no grades or terrain (no DEM sampling), its dangles no distance check, and the network
    distances and travel times (one Dijkstra per seat over the whole network, twice) are NaN.
    """
    p = plan.section("access")
    settings = network_settings(plan)
    if reach_only:
        dem, settings = None, {**settings, "dangle_check_m": 0.0}
    net = build_network(layers.roads if roads is None else roads, dem=dem, **settings)
    seats = seat_paths(net, layers.township_seats, reach_distance_m=float(p["reach_distance_m"]),
                       distances=not reach_only)
    reach, county = float(p["reach_distance_m"]), str(p["county_seat_code"])
    v = layers.villages
    s = layers.settlements
    va = point_access(v.geometry, v["township_code"].astype(str), net, seats, reach_distance_m=reach,
                      county_seat_code=county)
    sa = point_access(s.geometry, settlement_townships(s, v, warn=False), net, seats, reach_distance_m=reach,
                      county_seat_code=county)
    return AccessResult(net=net, seats=seats, villages=va, settlements=sa)
