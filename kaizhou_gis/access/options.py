"""Options of one point not 通畅: the upgrade path to its seat's paved network and the new link over
the DEM (see :mod:`kaizhou_gis.access.works` for the method), and the helpers that let a new link
start on an earlier one."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString

from kaizhou_gis.access.linksearch import LinkSearch, search_groups
from kaizhou_gis.access.seatfield import bounded_search, first_limits, symmetric
from kaizhou_gis.crs import transformer
from kaizhou_gis.network import DemGrid, terrain_class

log = logging.getLogger(__name__)

_TOKEN_YUAN_PER_M = 1e-3


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------
def candidates(before, vt: pd.DataFrame, st: pd.DataFrame) -> pd.DataFrame:
    """Points not 通畅 that a target concerns, with their access facts."""
    rows = []
    va = before.villages.loc[vt.index]
    sa = before.settlements.loc[st.index]
    for kind, tab, acc, idcol in (("village", vt, va, "village_code"), ("settlement", st, sa, "settlement_id")):
        tg = tab["target_group"].astype(bool) if kind == "settlement" else pd.Series(True, index=tab.index)
        need = tg & ~tab["tongchang"].astype(bool)
        t = tab[need]
        a = acc[need]
        rows.append(pd.DataFrame({
            "pid": t[idcol].astype(str).to_numpy(), "kind": kind,
            "township_code": t["township_code"].astype(str).to_numpy(),
            "tongda": t["tongda"].astype(bool).to_numpy(),
            "mandatory": (np.ones(len(t), bool) if kind == "village" else ~t["tongda"].astype(bool).to_numpy()),
            "edge": a["edge_id"].to_numpy(), "along_m": a["along_m"].to_numpy(),
            "snap_distance_m": a["snap_distance_m"].to_numpy(),
            "geometry": t.geometry.to_numpy(),
        }))
    c = pd.concat(rows, ignore_index=True)
    return c


def upgrade_options(net, seats, cand: pd.DataFrame, cost_per_km: dict) -> tuple[np.ndarray, list, np.ndarray]:
    """Cheapest upgrade path of every 通达 candidate: (standalone cost, edge lists, edge costs).

    One Dijkstra search per seat with candidates (cost: the upgrade yuan of unpaved edges plus a
    token per metre), bounded to the area of its own candidates and widened where a candidate's
    edge was left beyond the bound (:func:`~kaizhou_gis.access.seatfield.bounded_search`), so
    memory and time grow with the district, not with seats x nodes.
    """
    e = net.edges
    n = net.n_nodes
    L = e["length_m"].to_numpy()
    unit = np.array([cost_per_km[t] for t in e["terrain"]], dtype="float64")
    cost = np.where(e["paved"].to_numpy(), 0.0, L / 1000.0 * unit)
    w = cost + _TOKEN_YUAN_PER_M * L
    si = seats.seats
    rows_needed = sorted({seats.row_of[c] for c in cand["township_code"] if c in seats.row_of})
    ok_rows = [r for r in rows_needed if si["paved_on_network"].iloc[r]]
    paths: list = [None] * len(cand)
    std = np.full(len(cand), np.inf)
    if not ok_rows:
        return std, paths, cost
    S = len(si)
    pe = si["paved_edge"].to_numpy()
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    vn = n + np.asarray(ok_rows)
    ex_i = np.concatenate([vn, vn])
    ex_j = np.concatenate([u[pe[ok_rows]], v[pe[ok_rows]]])
    ex_w = np.full(len(ex_i), 1e-9)
    g = symmetric(net.matrix(np.maximum(w, 1e-9), extra=(ex_i, ex_j, ex_w), n_extra_nodes=S))
    row_pos = {r: k for k, r in enumerate(ok_rows)}
    # (min node, max node) -> cheapest edge between them (the one the matrix kept)
    key = np.minimum(u, v).astype(np.int64) * (n + S) + np.maximum(u, v)
    order = np.lexsort((w, key))
    k_sorted = key[order]
    first = np.r_[True, k_sorted[1:] != k_sorted[:-1]]
    edge_of = dict(zip(k_sorted[first].tolist(), order[first].tolist()))
    # the candidates a search must reach: both ends of their edge
    ci, ck = [], []
    for i, c in enumerate(cand.itertuples(index=False)):
        r = seats.row_of.get(c.township_code, -1)
        if c.tongda and r in row_pos and c.edge >= 0:
            ci.append(i)
            ck.append(row_pos[r])
    if not ci:
        return std, paths, cost
    ci_a, ck_a = np.asarray(ci), np.asarray(ck)
    ce = cand["edge"].to_numpy()[ci_a].astype(np.int64)
    row, node = np.r_[ck_a, ck_a], np.r_[u[ce], v[ce]]
    comp = net.nodes["component"].to_numpy()
    seat_node = u[pe[ok_rows]]
    same = comp[node] == comp[seat_node][row]
    # first bound: twice the straight line to the farthest end + 1 km, at the dearest yuan/m
    xy = shapely.get_coordinates(net.nodes.geometry.to_numpy())
    per_m = float(np.max(w / np.maximum(L, 1e-9))) if len(w) else 1.0
    limits = first_limits(len(ok_rows), row, xy[node], xy[seat_node[row]], per_m)
    by_seat = pd.Series(np.arange(len(ci)), index=ck_a).groupby(level=0).agg(list).to_dict()
    for _, done, at, dist, pred in bounded_search(g, vn, limits, row, node, same,
                                                  total=float(g.sum()), predecessors=True):
        for k in done:
            for j in by_seat.get(int(k), []):
                i = ci[j]
                paths[i], std[i] = _trace_upgrade(int(ce[j]), dist[at[k]], pred[at[k]], n, S, u, v,
                                                  cost, edge_of)
    return std, paths, cost


def _trace_upgrade(ce: int, dist: np.ndarray, pred: np.ndarray, n: int, S: int, u: np.ndarray,
                   v: np.ndarray, cost: np.ndarray, edge_of: dict) -> tuple[list | None, float]:
    """The unpaved edges (and their cost) on the cheapest path from the seat to edge ``ce``,
    from a search's distances and predecessors; (None, inf) when neither end is reached."""
    a, b = int(u[ce]), int(v[ce])
    da, db = dist[a], dist[b]
    if not (np.isfinite(da) or np.isfinite(db)):
        return None, np.inf
    x = a if da <= db else b
    edges = [ce] if cost[ce] > 0 else []
    guard = 0
    while x < n and guard <= n:
        px = int(pred[x])
        if px < 0 or px >= n:
            break
        eid = edge_of[min(x, px) * (n + S) + max(x, px)]
        if cost[eid] > 0:
            edges.append(eid)
        x = px
        guard += 1
    path = sorted(set(edges))
    return path, float(cost[path].sum())


def link_options(net, seats, cand: pd.DataFrame, dem: DemGrid | None, *, max_grade_pct: float,
                  max_link_km: float, slope_weight: float, sample_m: float, end_max_m: float,
                  switchback_terrain_max_pct: float, snap_tolerance_m: float,
                  fallback_any_surface: np.ndarray | None = None,
                  reach_distance_m: float, cost_per_km: dict, terrain_slope_deg: dict) -> tuple[list, Any]:
    """Least-cost new link of every candidate: a dict (geometry, km, cost, ...) or {"reason": ...};
    and a function ``relink(i, lines, within_km)`` that searches candidate i's link to earlier
    links instead (None without a DEM).

    The link runs from the nearest (cheapest) point of the seat's paved network to the point; when
    the point's own DEM cell cannot be reached under the maximum grade, to the reachable cell
    nearest to it within ``end_max_m`` (and nearer than any road the point already snaps to, so
    the point then snaps to the new link); the rest is a village path (``path_m``).
    """
    out: list = [None] * len(cand)
    if dem is None:
        return [{"reason": "no DEM to route new links on"} for _ in range(len(cand))], None
    e = net.edges
    si = seats.seats
    pcomp_node = net.nodes["paved_component"].to_numpy()
    e_pcomp = np.where(e["paved"].to_numpy(), pcomp_node[e["u"].to_numpy()], -1)
    L = e["length_m"].to_numpy()
    geoms = e.geometry.to_numpy()
    # one search per paved network holding seats (usually one for the whole district)
    seat_row = _seat_rows(seats, cand)
    r0 = np.maximum(seat_row, 0)
    seat_comp = np.where((seat_row >= 0) & si["paved_on_network"].to_numpy(dtype=bool)[r0],
                         si["paved_component"].to_numpy(dtype=np.int64)[r0], -1) if len(si) else \
        np.full(len(cand), -1, dtype=np.int64)
    for i in np.flatnonzero(seat_comp < 0):
        out[i] = {"reason": "the township seat has no paved road to link to"}
    snap = cand["snap_distance_m"].to_numpy(dtype="float64")
    # a point (almost) on a road it is connected by: a link ending there would be joined to that
    # road by the snapping rules and the point would still snap to it; upgrade that road instead
    on_road = cand["tongda"].to_numpy() & np.isfinite(snap) & (snap <= snap_tolerance_m + 0.5)
    for i in np.flatnonzero(on_road):
        out[i] = {"reason": f"lies on an existing road ({snap[i]:.1f} m): upgrade it rather than link"}
    seat_comp = np.where(on_road, -2, seat_comp)
    limit = np.where(np.isfinite(snap) & (snap <= reach_distance_m), snap - 1.0, reach_distance_m)
    limit = np.minimum(limit, end_max_m)
    search = LinkSearch(cand=cand, dem=dem, to_dem=transformer(e.crs, dem.crs), from_dem=transformer(dem.crs, e.crs),
                        no_link=f"no new link under {max_grade_pct:g} % grade within {max_link_km:g} km",
                        max_grade_pct=max_grade_pct, max_link_km=max_link_km, slope_weight=slope_weight,
                        sample_m=sample_m, end_max_m=end_max_m, limit=limit,
                        switchback_terrain_max_pct=switchback_terrain_max_pct, cost_per_km=cost_per_km,
                        terrain_slope_deg=terrain_slope_deg)
    groups = [(np.flatnonzero(seat_comp == comp), np.flatnonzero(e_pcomp == comp), True)
              for comp in np.unique(seat_comp[seat_comp >= 0])]
    search_groups(search, groups, out, geoms, L)
    for i in np.flatnonzero(seat_comp >= 0):  # which network a link leads to (links join only
        if out[i] is not None and "geometry" in out[i]:  # links leading to the same one)
            out[i]["network"] = ("paved", int(seat_comp[i]))
    if fallback_any_surface is not None:
        _fallback_links(search, net, seats, fallback_any_surface, out, geoms, L)

    def relink(i: int, lines: np.ndarray, within_km: float) -> dict | None:
        """Least-cost link of candidate ``i`` to the nearest of ``lines`` (links chosen before it),
        searched only within ``within_km`` (the length of its link so far)."""
        lk = out[i]
        if lk is None or "geometry" not in lk or len(lines) == 0:
            return None
        res: list = [None] * len(cand)
        search_groups(replace(search, max_link_km=min(max_link_km, within_km)),
                      [(np.array([i]), np.arange(len(lines)), bool(lk.get("to_paved", True)))], res,
                      lines, shapely.length(lines))
        got = res[i]
        if got is None or "geometry" not in got:
            return None
        return {**got, "network": lk.get("network")}

    return out, relink


def _fallback_links(search: LinkSearch, net, seats, fallback_any_surface: np.ndarray, out: list,
                    geoms: np.ndarray, L: np.ndarray) -> None:
    """Settlements that only need 通达 (the 100 % target) and found no link to the paved network:
    a link to the nearest road of any surface connected to their seat (fills ``out``)."""
    e, si = net.edges, seats.seats
    comp_node = net.nodes["component"].to_numpy()
    e_comp = comp_node[e["u"].to_numpy()]
    seat_row = _seat_rows(seats, search.cand)
    r0 = np.maximum(seat_row, 0)
    no_link = np.array([lk is None or "geometry" not in lk for lk in out], dtype=bool)
    fb = np.asarray(fallback_any_surface, dtype=bool) & no_link & (seat_row >= 0)
    if len(si):
        fb &= si["on_network"].to_numpy(dtype=bool)[r0]
        fb_comp = np.where(fb, si["component"].to_numpy(dtype=np.int64)[r0], -1)
    else:
        fb_comp = np.full(len(fb), -1, dtype=np.int64)
    # few and scattered: one small search window per settlement
    groups = [(np.array([i]), np.flatnonzero(e_comp == fb_comp[i]), False)
              for i in np.flatnonzero(fb_comp >= 0)]
    first = {i: out[i] for g in groups for i in g[0]}
    search_groups(search, groups, out, geoms, L)
    for i in np.flatnonzero(fb_comp >= 0):
        if out[i] is not None and "geometry" in out[i]:
            out[i]["network"] = ("any", int(fb_comp[i]))
    for i, before in first.items():
        if "geometry" not in (out[i] or {}) and before:
            out[i] = {"reason": f"{before['reason']}; none to a road of any surface either"}


def _seat_rows(seats, cand: pd.DataFrame) -> np.ndarray:
    """Row of each candidate's township seat in ``seats.seats`` (-1: no seat)."""
    return np.array([seats.row_of.get(c, -1) for c in cand["township_code"]], dtype=np.int64)


def join_link(lk: dict, taken: dict[int, int], *, cost_per_km: dict,
               terrain_slope_deg: dict) -> tuple[dict, int | None]:
    """A new link shortened to start on a link built before it, where their cell paths meet.

    ``taken`` maps DEM cells (global flat index) to the candidate whose link passes through them.
    The link keeps the part of its cell path after the LAST cell it shares with an earlier link
    (a sub-path of a path that met the grade limit meets it too) and starts at that cell's
    centre, which is then a vertex of both links (see :func:`add_vertex`), so the network joins
    them. Returns the (possibly unchanged) link and the candidate it now starts on (or None).
    """
    cells = lk.get("cells")
    if cells is None or len(cells) < 2 or not taken:
        return lk, None
    shared = np.flatnonzero([int(c) in taken for c in cells])
    if len(shared) == 0 or shared[-1] == 0:
        return lk, None
    m = int(shared[-1])
    centres, end = lk["centres"][m:], lk["end"]
    wxy = np.vstack([centres[:-1], end[None, :]]) if len(centres) >= 2 else np.vstack([centres[0], end])
    line = LineString(wxy)
    if len(wxy) > 2:
        line = line.simplify(lk["simplify_m"], preserve_topology=False)
    if line.length <= 0:
        return lk, None
    road, corr = lk["step_road_m"][m:], lk["step_corridor_m"][m:]
    hair = max(0.0, float(road.sum()) - float(corr.sum()))
    sl = lk["cell_slope"][m:]
    mean_slope = float(np.nanmean(sl)) if np.isfinite(sl).any() else np.nan
    terr = terrain_class(np.array([mean_slope]), terrain_slope_deg)[0]
    km = (line.length + hair) / 1000.0
    g, tg = lk["step_grade_pct"][m:], lk["step_terrain_grade_pct"][m:]
    out = {**lk, "geometry": line, "km": km, "terrain": terr, "cost": km * cost_per_km[terr],
           "max_grade_pct": float(g.max()) if len(g) else 0.0,
           "max_terrain_grade_pct": float(tg.max()) if len(tg) else 0.0,
           "hairpin_km": hair / 1000.0, "cells": cells[m:], "centres": centres, "cell_slope": sl,
           "step_road_m": road, "step_corridor_m": corr, "step_grade_pct": g,
           "step_terrain_grade_pct": tg}
    return out, taken[int(cells[m])]


def add_point(lk: dict, xy: np.ndarray) -> None:
    """Insert ``xy``, a point lying on the link's line, as a vertex (where a later link starts)."""
    line = lk["geometry"]
    coords = shapely.get_coordinates(line)
    if np.min(np.hypot(coords[:, 0] - xy[0], coords[:, 1] - xy[1])) < 1e-6:
        return
    seg = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    along = np.concatenate([[0.0], np.cumsum(seg)])
    d = float(line.project(shapely.Point(xy)))
    pos = int(np.clip(np.searchsorted(along, d, side="right"), 1, len(coords) - 1))
    lk["geometry"] = LineString(np.insert(coords, pos, xy, axis=0))


def add_vertex(lk: dict, q: int, *, cost_per_km: dict) -> tuple[float, float]:
    """Insert the centre of the link's ``q``-th cell as a vertex of its line, in path order (the
    line's vertices are its first point, some of its cell centres and its end); update km and
    cost. Returns the change of km and of cost."""
    line, centres = lk["geometry"], lk["centres"]
    coords = shapely.get_coordinates(line)
    xy = centres[q]
    if np.min(np.hypot(coords[:, 0] - xy[0], coords[:, 1] - xy[1])) < 1e-6:
        return 0.0, 0.0
    order = np.full(len(coords), -1.0)
    order[-1] = len(centres)
    for t in range(1, len(coords) - 1):
        hit = np.flatnonzero(np.hypot(centres[:, 0] - coords[t, 0], centres[:, 1] - coords[t, 1]) < 1e-6)
        order[t] = hit[0] if len(hit) else order[t - 1]
    pos = int(np.clip(np.searchsorted(order, q, side="right"), 1, len(coords) - 1))
    new_line = LineString(np.insert(coords, pos, xy, axis=0))
    dkm = (new_line.length - line.length) / 1000.0
    dcost = dkm * cost_per_km[lk["terrain"]]
    lk.update(geometry=new_line, km=lk["km"] + dkm, cost=lk["cost"] + dcost)
    return dkm, dcost
