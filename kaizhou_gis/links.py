"""Gap closing: the cheapest road works that bring villages and settlements to the plan's targets.

Options for a point (village or settlement) that is not 通畅
------------------------------------------------------------
(a) **Upgrade**: harden the unpaved edges on its cheapest path to its township seat's paved
    network. Edge weights are the upgrade cost (``links.cost_upgrade_yuan_per_km`` by the edge's
    terrain class; paved edges cost nothing but a token 0.001 yuan/m that prefers short paths).
    One Dijkstra call from all seats gives every point's cheapest path; the paths of one township
    form a shortest-path tree, so points along the same track share its upgrade. The point's own
    edge is upgraded whole if it is unpaved. Only possible when the point is already 通达.
(b) **New link**: a new hardened road from the point to the nearest (cheapest) point of its
    seat's paved network, by a least-cost path over the DEM under ``links.max_grade_pct``: the
    :mod:`kaizhou_gis.network.costpath` cell graph (with hairpins, below) and ONE multi-source Dijkstra
    (:func:`kaizhou_gis.network.costpath.search`) from points every ``access.grade_sample_m`` along the
    paved network, for all points whose seats share a paved network, over the DEM window of
    their bounding box plus ``links.max_new_link_km``. When the point's own cell cannot be
    reached, the link may stop at the nearest reachable cell within ``links.link_end_max_m``
    (the rest is a village path, ``path_m``). No feasible path, or one longer than
    ``max_new_link_km``, means no link ("no new link under 12 % grade within 15 km").
    Cost = length × ``links.cost_new_yuan_per_km`` for the link's terrain class.
    A settlement that only needs 通达 (target group, not yet 通达) and has no feasible link to the
    paved network may instead be linked to the nearest road of any surface connected to its seat
    (one small search per settlement; ``connects_to`` says which).

Choosing the works (a Steiner-tree-like covering problem, solved by a documented heuristic)
--------------------------------------------------------------------------------------------
1. *Targets of 100 %* force a work for every administrative village not 通畅 and every
   settlement of the target group not 通达. These are taken cheapest first; each is given the
   cheaper of its new link and the **marginal** cost of its upgrade path (edges already chosen
   for an earlier point cost nothing, so shared works are counted once). A point whose whole
   upgrade path has been chosen for others is covered for free.
2. *Target of 80 %* (settlements 通畅): the remaining target-group settlements that are 通达 but
   not 通畅 are added greedily by lowest marginal cost (recomputed after every choice, so
   sharing is accounted for) until the share reaches the target. Since every settlement counts
   the same towards the share, taking the cheapest marginal first is the natural greedy rule for
   covering a count at least cost.
3. *Clean-up*: a point given a new link early whose upgrade path has since become cheaper
   (because later choices upgraded most of it) is switched to the upgrade, and the decisions
   are replayed in order so that steps, shares and cumulative cost stay consistent.
New links share too. When a new link is built, its DEM cells join the network it leads to: a
later link whose cell path passes through them starts at the last such cell (a vertex of both
lines) instead of running beside the earlier link to the road; its km and cost are those of the
rest of its path (a part of a path that met the grade limit meets it too). A later point that
has no upgrade option (not 通达) is also searched a link to the nearest earlier link of the same
network (a small search within its own link's length, sources every ``grade_sample_m`` along
the earlier links) and takes it when cheaper. Points that can be served by upgrading their road
do not hop onto other new links, so a chain of new links is never built beside an unpaved road
whose upgrade they could share.
The cost curve lists every choice with the cumulative km and cost and the shares reached.
Points with no feasible option are reported as unresolved with the reason.

Hairpins: a 3-arc-second DEM cell is ~90 m, too coarse to draw the hairpin bends by which
mountain roads climb slopes steeper than their grade. A cell step over terrain steeper than
``links.max_grade_pct`` (up to ``links.switchback_terrain_max_pct``) therefore counts as a road
at the maximum grade, lengthened by terrain grade / maximum grade (``hairpin_km`` of the work);
the road grade never exceeds the maximum. The drawn line follows the corridor, ``km`` and the
cost include the lengthening.

:func:`apply_works` turns the works into road changes (new links become paved roads, upgraded
edges are cut out of their road lines and made paved) so the analysis can be re-run on them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS
from rasterio.windows import transform as window_transform
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString
from shapely.ops import substring

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.figures import pct
from kaizhou_gis.network import DemGrid, terrain_class

log = logging.getLogger(__name__)

_TOKEN_YUAN_PER_M = 1e-3

WORK_LABELS_ZH = {"work_id": "工程编号", "type": "类型", "km": "里程(公里)", "cost_yuan": "投资(元)",
                  "beneficiaries": "受益村/自然村", "terrain": "地形", "road_id": "道路编号",
                  "phase": "阶段", "step": "顺序", "max_grade_pct": "最大纵坡(%)",
                  "township_code": "乡镇代码", "max_terrain_grade_pct": "最大地形坡度(%)",
                  "hairpin_km": "回头弯加长(公里)", "path_m": "村社便道(米)", "edge_id": "路段编号(网络)",
                  "connects_to": "接入"}
CURVE_LABELS_ZH = {"step": "顺序", "phase": "阶段", "work_ids": "工程编号", "cumulative_km": "累计里程(公里)",
                   "cumulative_cost_yuan": "累计投资(元)", "village_tongchang_pct": "行政村通畅率(%)",
                   "settlement_tongda_pct": "集中居住地通达率(%)",
                   "settlement_tongchang_pct": "集中居住地通畅率(%)"}


@dataclass
class WorksPlan:
    """Proposed works and how they were chosen."""

    works: gpd.GeoDataFrame
    cost_curve: pd.DataFrame
    unresolved: pd.DataFrame
    totals: dict
    work_ids: pd.Series  # point id → "U0001;N0002"
    choices: pd.DataFrame


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------
def _candidates(before, vt: pd.DataFrame, st: pd.DataFrame) -> pd.DataFrame:
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


def _upgrade_options(net, seats, cand: pd.DataFrame, cost_per_km: dict) -> tuple[np.ndarray, list, np.ndarray]:
    """Cheapest upgrade path of every 通达 candidate: (standalone cost, edge lists, edge costs)."""
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
    g = net.matrix(np.maximum(w, 1e-9), extra=(ex_i, ex_j, ex_w), n_extra_nodes=S)
    dist, pred = dijkstra(g, directed=False, indices=vn, return_predecessors=True)
    row_pos = {r: k for k, r in enumerate(ok_rows)}
    # (min node, max node) -> cheapest edge between them (the one the matrix kept)
    key = np.minimum(u, v).astype(np.int64) * (n + S) + np.maximum(u, v)
    order = np.lexsort((w, key))
    k_sorted = key[order]
    first = np.r_[True, k_sorted[1:] != k_sorted[:-1]]
    edge_of = dict(zip(k_sorted[first].tolist(), order[first].tolist()))
    for i, c in enumerate(cand.itertuples(index=False)):
        r = seats.row_of.get(c.township_code, -1)
        if not c.tongda or r not in row_pos or c.edge < 0:
            continue
        k = row_pos[r]
        ce = int(c.edge)
        a, b = int(u[ce]), int(v[ce])
        da, db = dist[k, a], dist[k, b]
        if not (np.isfinite(da) or np.isfinite(db)):
            continue
        x = a if da <= db else b
        edges = [ce] if cost[ce] > 0 else []
        guard = 0
        while x < n and guard <= n:
            px = int(pred[k, x])
            if px < 0 or px >= n:
                break
            eid = edge_of[min(x, px) * (n + S) + max(x, px)]
            if cost[eid] > 0:
                edges.append(eid)
            x = px
            guard += 1
        paths[i] = sorted(set(edges))
        std[i] = float(cost[paths[i]].sum())
    return std, paths, cost


def _link_options(net, seats, cand: pd.DataFrame, dem: DemGrid | None, *, max_grade_pct: float,
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
    crs = e.crs
    to_dem = transformer(crs, dem.crs)
    from_dem = transformer(dem.crs, crs)
    si = seats.seats
    pcomp_node = net.nodes["paved_component"].to_numpy()
    e_pcomp = np.where(e["paved"].to_numpy(), pcomp_node[e["u"].to_numpy()], -1)
    L = e["length_m"].to_numpy()
    geoms = e.geometry.to_numpy()
    no_link = f"no new link under {max_grade_pct:g} % grade within {max_link_km:g} km"
    # one search per paved network holding seats (usually one for the whole district)
    seat_comp = np.array([si["paved_component"].iloc[seats.row_of[c]]
                          if c in seats.row_of and si["paved_on_network"].iloc[seats.row_of[c]] else -1
                          for c in cand["township_code"]])
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
    groups = [(np.flatnonzero(seat_comp == comp), np.flatnonzero(e_pcomp == comp), True)
              for comp in np.unique(seat_comp[seat_comp >= 0])]
    _search_groups(groups, out, cand, dem, geoms, L, to_dem, from_dem, no_link=no_link,
                   max_grade_pct=max_grade_pct, max_link_km=max_link_km, slope_weight=slope_weight,
                   sample_m=sample_m, end_max_m=end_max_m, limit=limit,
                   switchback_terrain_max_pct=switchback_terrain_max_pct, cost_per_km=cost_per_km,
                   terrain_slope_deg=terrain_slope_deg)
    for i in np.flatnonzero(seat_comp >= 0):  # which network a link leads to (links join only
        if out[i] is not None and "geometry" in out[i]:  # links leading to the same one)
            out[i]["network"] = ("paved", int(seat_comp[i]))
    # settlements that only need 通达 (the 100 % target) and found no link to the paved network:
    # a link to the nearest road of any surface connected to their seat
    if fallback_any_surface is not None:
        comp_node = net.nodes["component"].to_numpy()
        e_comp = comp_node[e["u"].to_numpy()]
        fb = np.array([fallback_any_surface[i] and (out[i] is None or "geometry" not in out[i])
                       and c in seats.row_of and si["on_network"].iloc[seats.row_of[c]]
                       for i, c in enumerate(cand["township_code"])], dtype=bool)
        fb_comp = np.array([si["component"].iloc[seats.row_of[c]] if f else -1
                            for f, c in zip(fb, cand["township_code"])])
        # few and scattered: one small search window per settlement
        groups = [(np.array([i]), np.flatnonzero(e_comp == fb_comp[i]), False)
                  for i in np.flatnonzero(fb_comp >= 0)]
        first = {i: out[i] for g in groups for i in g[0]}
        _search_groups(groups, out, cand, dem, geoms, L, to_dem, from_dem, no_link=no_link,
                       max_grade_pct=max_grade_pct, max_link_km=max_link_km, slope_weight=slope_weight,
                       sample_m=sample_m, end_max_m=end_max_m, limit=limit,
                       switchback_terrain_max_pct=switchback_terrain_max_pct, cost_per_km=cost_per_km,
                       terrain_slope_deg=terrain_slope_deg)
        for i in np.flatnonzero(fb_comp >= 0):
            if out[i] is not None and "geometry" in out[i]:
                out[i]["network"] = ("any", int(fb_comp[i]))
        for i, before in first.items():
            if "geometry" not in (out[i] or {}) and before:
                out[i] = {"reason": f"{before['reason']}; none to a road of any surface either"}

    def relink(i: int, lines: np.ndarray, within_km: float) -> dict | None:
        """Least-cost link of candidate ``i`` to the nearest of ``lines`` (links chosen before it),
        searched only within ``within_km`` (the length of its link so far)."""
        lk = out[i]
        if lk is None or "geometry" not in lk or len(lines) == 0:
            return None
        res: list = [None] * len(cand)
        _search_groups([(np.array([i]), np.arange(len(lines)), bool(lk.get("to_paved", True)))], res, cand,
                       dem, lines, shapely.length(lines), to_dem, from_dem, no_link=no_link,
                       max_grade_pct=max_grade_pct, max_link_km=min(max_link_km, within_km),
                       slope_weight=slope_weight, sample_m=sample_m, end_max_m=end_max_m, limit=limit,
                       switchback_terrain_max_pct=switchback_terrain_max_pct, cost_per_km=cost_per_km,
                       terrain_slope_deg=terrain_slope_deg)
        got = res[i]
        if got is None or "geometry" not in got:
            return None
        return {**got, "network": lk.get("network")}

    return out, relink


def _search_groups(groups, out, cand, dem, geoms, L, to_dem, from_dem, *, no_link, max_grade_pct,
                   max_link_km, slope_weight, sample_m, end_max_m, limit, switchback_terrain_max_pct,
                   cost_per_km, terrain_slope_deg) -> None:
    """Run one DEM search per group (candidate rows, source edges, to_paved) and fill ``out``."""
    from kaizhou_gis.network.costpath import cell_centres, points_to_cells, search, trace, window_for

    for idx, sel, to_paved in groups:
        txy = shapely.get_coordinates(cand.geometry.to_numpy()[idx])
        tx, ty = to_dem.transform(txy[:, 0], txy[:, 1])
        win = window_for(list(zip(tx, ty)), max_link_km * 1000.0, transform=dem.transform, crs=dem.crs,
                         shape=dem.values.shape)
        # sources: points every sample_m along the paved edges of the seat's paved network
        bx = shapely.box(*shapely.bounds(shapely.multipoints(txy)))
        near = sel[shapely.dwithin(geoms[sel], bx, max_link_km * 1000.0)]
        if len(near) == 0:
            for i in idx:
                out[i] = {"reason": f"no {'paved ' if to_paved else ''}road of the seat's network "
                                    f"within {max_link_km:g} km"}
            continue
        nseg = np.maximum(1, np.ceil(L[near] / sample_m).astype(np.int64))
        npts = nseg + 1
        rep = np.repeat(near, npts)
        k = np.arange(npts.sum()) - np.repeat(np.cumsum(npts) - npts, npts)
        pts = shapely.line_interpolate_point(geoms[rep], k / np.repeat(nseg, npts), normalized=True)
        sxy = shapely.get_coordinates(pts)
        sx, sy = to_dem.transform(sxy[:, 0], sxy[:, 1])
        r0, c0 = int(win.row_off), int(win.col_off)
        h, w = int(win.height), int(win.width)
        sub = dem.values[r0:r0 + h, c0:c0 + w]
        tr = window_transform(win, dem.transform)
        graph, road_len, road_grade = _switchback_graph(sub, tr, dem.crs, max_grade_pct=max_grade_pct,
                                                        terrain_max_pct=switchback_terrain_max_pct,
                                                        slope_weight=slope_weight)
        src_cells = points_to_cells(np.column_stack([sx, sy]), tr, (h, w))
        dist, pred, nearest = search(graph, src_cells)
        src_of_cell: dict[int, int] = {}
        for si_, c in enumerate(src_cells.tolist()):
            if c >= 0 and c not in src_of_cell:
                src_of_cell[c] = si_
        # candidate end cells: the point's own cell and the cells around it within the limit
        cell0 = points_to_cells(np.column_stack([tx, ty]), tr, (h, w))
        csize = float(np.nanmin([abs(v) for v in _cell_metres(tr, dem.crs, h)]))
        R = int(math.ceil(end_max_m / max(csize, 1e-6)))
        dr, dc = np.mgrid[-R:R + 1, -R:R + 1]
        dr, dc = dr.ravel(), dc.ravel()
        rr = (cell0 // w)[:, None] + dr[None, :]
        cc = (cell0 % w)[:, None] + dc[None, :]
        inside = (cell0[:, None] >= 0) & (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        flat = np.where(inside, rr * w + cc, 0)
        cen = np.asarray(cell_centres(flat.ravel(), tr, (h, w)), dtype="float64")
        ex, ey = from_dem.transform(cen[:, 0], cen[:, 1])
        dd = np.hypot(ex.reshape(flat.shape) - txy[:, 0:1], ey.reshape(flat.shape) - txy[:, 1:2])
        own = (dr == 0) & (dc == 0)
        ok = inside & ((dd <= limit[idx][:, None]) | own[None, :])
        cost = np.where(ok, dist[flat], np.inf)
        # the point's own cell when reachable; otherwise the reachable cell nearest to the point
        own_k = int(np.flatnonzero(own)[0])
        reach_ok = np.isfinite(cost)
        ring_key = np.where(reach_ok, dd, np.inf)
        best = np.where(reach_ok[:, own_k], own_k, np.argmin(ring_key, axis=1))
        slope_sub = dem.slope[r0:r0 + h, c0:c0 + w]
        for j, i in enumerate(idx):
            b_ = best[j]
            if not np.isfinite(cost[j, b_]):
                out[i] = {"reason": no_link}
                continue
            cell = int(flat[j, b_])
            cells = trace(pred, cell)
            a_, b2 = np.asarray(cells[:-1]), np.asarray(cells[1:])
            if len(cells) > 1:
                step_road = np.asarray(road_len[a_, b2], dtype="float64").ravel()
                step_grade = np.asarray(road_grade[a_, b2], dtype="float64").ravel() * 100.0
                step_tgrade = np.asarray(graph.grade[a_, b2], dtype="float64").ravel() * 100.0
                step_corr = np.asarray(graph.length[a_, b2], dtype="float64").ravel()
            else:
                step_road = step_grade = step_tgrade = step_corr = np.zeros(0)
            length = float(step_road.sum())
            mgrade = float(step_grade.max()) if len(step_grade) else 0.0
            tgrade = float(step_tgrade.max()) if len(step_tgrade) else 0.0
            corridor = float(step_corr.sum())
            if length > max_link_km * 1000.0:
                out[i] = {"reason": f"the shortest new link under {max_grade_pct:g} % grade is "
                                    f"{length / 1000:.1f} km, longer than {max_link_km:g} km"}
                continue
            s_idx = src_of_cell.get(int(nearest[cell]), src_of_cell.get(cells[0], -1))
            cxy = np.asarray(cell_centres(cells, tr, (h, w)), dtype="float64").reshape(-1, 2)
            wx, wy = from_dem.transform(cxy[:, 0], cxy[:, 1])
            wxy = np.column_stack([wx, wy])
            end = txy[j] if own[b_] else np.array([ex.reshape(flat.shape)[j, b_], ey.reshape(flat.shape)[j, b_]])
            wxy = np.vstack([sxy[s_idx], wxy[1:-1], end]) if len(wxy) >= 2 else np.vstack([sxy[s_idx], end])
            line = LineString(wxy)
            if len(wxy) > 2:  # Douglas-Peucker at half a cell: cell-centre zig-zags go
                line = line.simplify(0.5 * csize, preserve_topology=False)
            if line.length <= 0:
                out[i] = {"reason": "the point lies on the paved network already"}
                continue
            rc = np.divmod(np.asarray(cells), w)
            sl = slope_sub[rc[0], rc[1]]
            mean_slope = float(np.nanmean(sl)) if np.isfinite(sl).any() else np.nan
            terr = terrain_class(np.array([mean_slope]), terrain_slope_deg)[0]
            # road length = drawn corridor + hairpin lengthening where the terrain is steeper
            km = (line.length + max(0.0, length - corridor)) / 1000.0
            out[i] = {"geometry": line, "km": km, "terrain": terr, "cost": km * cost_per_km[terr],
                      "max_grade_pct": mgrade, "max_terrain_grade_pct": tgrade,
                      "hairpin_km": max(0.0, length - corridor) / 1000.0,
                      "path_m": float(np.hypot(*(end - txy[j]))), "to_paved": to_paved, "reason": "",
                      # the cell path, for joining a later link onto this one (_join_link)
                      "cells": (rc[0] + r0) * dem.values.shape[1] + (rc[1] + c0),
                      "centres": np.column_stack([wx, wy]), "end": end, "cell_slope": sl,
                      "step_road_m": step_road, "step_corridor_m": step_corr,
                      "step_grade_pct": step_grade, "step_terrain_grade_pct": step_tgrade,
                      "simplify_m": 0.5 * csize, "source_line": int(rep[s_idx])}


def _join_link(lk: dict, taken: dict[int, int], *, cost_per_km: dict,
               terrain_slope_deg: dict) -> tuple[dict, int | None]:
    """A new link shortened to start on a link built before it, where their cell paths meet.

    ``taken`` maps DEM cells (global flat index) to the candidate whose link passes through them.
    The link keeps the part of its cell path after the LAST cell it shares with an earlier link
    (a sub-path of a path that met the grade limit meets it too) and starts at that cell's
    centre, which is then a vertex of both links (see :func:`_add_vertex`), so the network joins
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


def _add_point(lk: dict, xy: np.ndarray) -> None:
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


def _add_vertex(lk: dict, q: int, *, cost_per_km: dict) -> tuple[float, float]:
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


def _switchback_graph(dem: np.ndarray, transform, crs, *, max_grade_pct: float, terrain_max_pct: float,
                      slope_weight: float):
    """Cell graph whose steps may cross terrain up to ``terrain_max_pct`` by hairpin bends.

    A step of horizontal length h over terrain grade g > max grade is climbed by a road of length
    h * g / max grade at the maximum grade (switchbacks); gentler steps keep length h and grade g.
    Step cost = road length * (1 + slope_weight * road grade). With ``terrain_max_pct`` equal to
    ``max_grade_pct`` this is the plain grade-limited graph.

    Returns the graph (its ``grade`` is the terrain grade) and sparse matrices of the road length
    and road grade of every step.
    """
    from kaizhou_gis.network.costpath import build_cell_graph

    gmax = max_grade_pct / 100.0
    graph = build_cell_graph(dem, transform, crs, max_grade_pct=max(terrain_max_pct, max_grade_pct),
                             slope_weight=0.0)
    same = (np.array_equal(graph.length.indptr, graph.grade.indptr)
            and np.array_equal(graph.length.indices, graph.grade.indices)
            and np.array_equal(graph.length.indptr, graph.matrix.indptr)
            and np.array_equal(graph.length.indices, graph.matrix.indices))
    if not same:  # pragma: no cover - costpath builds all three from the same coordinates
        raise RuntimeError("costpath cell graph matrices do not share one sparsity structure")
    g = graph.grade.data
    road_len = graph.length.copy()
    road_len.data = graph.length.data * np.maximum(1.0, g / gmax)
    road_grade = graph.grade.copy()
    road_grade.data = np.minimum(g, gmax)
    graph.matrix.data = road_len.data * (1.0 + slope_weight * road_grade.data)
    return graph, road_len, road_grade


def _cell_metres(transform, crs, height: int) -> tuple[float, float]:
    """Median cell width and height of a grid in metres."""
    from kaizhou_gis.terrain import cell_size_m

    dx, dy = cell_size_m(transform, crs, height)
    return float(np.median(dx)), float(np.median(dy))


# --------------------------------------------------------------------------------------------
# Choice
# --------------------------------------------------------------------------------------------
def plan_works(before, vt: pd.DataFrame, st: pd.DataFrame, *, plan, dem: DemGrid | None) -> WorksPlan:
    """Choose the works that meet the 100 % targets and the 80 % target at least cost.

    Parameters
    ----------
    before : access.AccessResult
        The analysis on the current roads.
    vt, st : GeoDataFrame
        Villages and settlements in scope (``tongda``, ``tongchang``, ``township_code``,
        settlements ``target_group``), index aligned with ``before``. Only administrative
        villages (``kind`` 村) count for the village target; 社区 are left out.
    plan : Plan
    dem : DemGrid or None
    """
    from kaizhou_gis.access import admin_village_mask

    p, q = plan.section("access"), plan.section("links")
    net, seats = before.net, before.seats
    vt = vt[admin_village_mask(vt).to_numpy()]  # the village target concerns 行政村, not 社区
    cand = _candidates(before, vt, st)
    n_v = len(vt)
    tgt = st[st["target_group"].astype(bool)]
    n_t = len(tgt)
    v_ok0 = int(vt["tongchang"].sum())
    t_da0 = int(tgt["tongda"].sum())
    t_ch0 = int(tgt["tongchang"].sum())

    std, paths, ecost = _upgrade_options(net, seats, cand, q["cost_upgrade_yuan_per_km"])
    links, relink = _link_options(net, seats, cand, dem, max_grade_pct=float(q["max_grade_pct"]),
                          max_link_km=float(q["max_new_link_km"]), slope_weight=float(q["slope_weight"]),
                          sample_m=float(p["grade_sample_m"]), end_max_m=float(q["link_end_max_m"]),
                          switchback_terrain_max_pct=float(q["switchback_terrain_max_pct"]),
                          snap_tolerance_m=float(p["snap_tolerance_m"]),
                          fallback_any_surface=(cand["kind"].eq("settlement") & cand["mandatory"]).to_numpy(),
                          reach_distance_m=float(p["reach_distance_m"]), cost_per_km=q["cost_new_yuan_per_km"],
                          terrain_slope_deg=q["terrain_slope_deg"])
    lcost = np.array([lk["cost"] if lk and "cost" in lk else np.inf for lk in links])
    K, E = len(cand), len(net.edges)
    has_up = np.array([pth is not None for pth in paths], dtype=bool)
    ri = np.concatenate([np.full(len(pth), i) for i, pth in enumerate(paths) if pth] or [np.zeros(0, int)])
    ci = np.concatenate([np.asarray(pth, dtype=np.int64) for pth in paths if pth] or [np.zeros(0, int)])
    P = sp.csr_matrix((np.ones(len(ri)), (ri, ci)), shape=(K, E))
    Pc = P.tocsc()
    rem0 = np.where(has_up, P @ ecost, np.inf)
    is_v = (cand["kind"] == "village").to_numpy()
    is_t = ~is_v
    was_da = cand["tongda"].to_numpy()
    L_e = net.edges["length_m"].to_numpy()
    st_: dict = {}

    def shares() -> dict:
        cv = st_["covered"]
        da = cv | st_["covered_da"]
        return {"village_tongchang_pct": pct(v_ok0 + int((cv & is_v).sum()), n_v),
                "settlement_tongda_pct": pct(t_da0 + int((da & is_t & ~was_da).sum()), n_t),
                "settlement_tongchang_pct": pct(t_ch0 + int((cv & is_t).sum()), n_t)}

    def reset() -> None:
        st_.update(rem=rem0.copy(), chosen=np.zeros(E, dtype=bool), edge_step=np.full(E, -1),
                   edge_phase=np.empty(E, dtype=object), covered=np.zeros(K, dtype=bool),
                   option=np.full(K, "", dtype=object), cand_step=np.full(K, -1), km=0.0, cost=0.0,
                   covered_da=np.zeros(K, dtype=bool),
                   new_links=[], curve=[], decisions=[], used={}, taken={}, via={})
        st_["curve"].append({"step": 0, "phase": "before", "cand": None, "cumulative_km": 0.0,
                             "cumulative_cost_yuan": 0.0, **shares()})

    def add_edges(k: int, step: int, phase: str) -> None:
        chosen, rem = st_["chosen"], st_["rem"]
        new_e = np.array([x for x in paths[k] if not chosen[x]], dtype=np.int64)
        if len(new_e):
            chosen[new_e] = True
            st_["edge_step"][new_e] = step
            st_["edge_phase"][new_e] = phase
            st_["km"] += float(L_e[new_e].sum()) / 1000.0
            st_["cost"] += float(ecost[new_e].sum())
            rem[:] = np.where(has_up, rem - Pc[:, new_e] @ ecost[new_e], np.inf)

    relink_cache: dict = {}

    def _relink_if_cheaper(k: int, lk: dict, on):
        """The cheaper of link ``lk`` and a link to the nearest link already chosen (same network)."""
        owners = [j for j, u_ in st_["used"].items() if u_.get("network") == lk.get("network")]
        if not owners:
            return lk, on
        lines = np.array([st_["used"][j]["geometry"] for j in owners], dtype=object)
        pt = cand.geometry.iloc[k]
        # a link is never shorter than the straight line: skip when every earlier link is farther
        if float(shapely.distance(pt, lines).min()) >= lk["km"] * 1000.0:
            return lk, on
        key = (k, tuple(owners), tuple(shapely.to_wkb(lines).tolist()))
        if key not in relink_cache:
            relink_cache[key] = relink(k, lines, lk["km"])
        got = relink_cache[key]
        if got is None or got["cost"] >= lk["cost"] - 1e-6:
            return lk, on
        return {**got, "starts_on_line": True}, owners[got["source_line"]]

    def take(k: int, phase: str, step: int, force: str | None = None) -> None:
        """Give point k a work (upgrade path or new link), then mark everyone it covers."""
        rem, covered, option = st_["rem"], st_["covered"], st_["option"]
        lk, on = None, None
        if np.isfinite(lcost[k]):
            # a link may start on an earlier link that leads to the same network
            lk, on = _join_link(links[k], st_["taken"].get(links[k].get("network"), {}),
                                cost_per_km=q["cost_new_yuan_per_km"],
                                terrain_slope_deg=q["terrain_slope_deg"])
        # a point that can be served by upgrading its road may not hop onto other new links: a
        # chain of new links beside an unpaved road would undercut that road's shared upgrade
        if lk is not None and force != "upgrade" and relink is not None and not has_up[k]:
            lk, on = _relink_if_cheaper(k, lk, on)
        up = (force == "upgrade") if force else bool(has_up[k] and rem[k] <= (lk["cost"] if lk else np.inf))
        if up:
            add_edges(k, step, phase)
            option[k] = "upgrade"
        else:
            option[k] = "new"
            st_["new_links"].append((k, step, phase))
            if on is not None and lk.get("starts_on_line"):  # its start becomes a vertex of the other
                st_["via"][k] = on
                _add_point(st_["used"][on], shapely.get_coordinates(lk["geometry"])[0])
            elif on is not None:  # the shared cell becomes a vertex of the earlier link too
                st_["via"][k] = on
                cell = int(lk["cells"][0])
                dkm, dcost = _add_vertex(st_["used"][on], int(np.flatnonzero(
                    st_["used"][on]["cells"] == cell)[0]), cost_per_km=q["cost_new_yuan_per_km"])
                st_["km"] += dkm
                st_["cost"] += dcost
            lk = st_["used"][k] = dict(lk)  # own copy: a later link may add a vertex to it
            net_cells = st_["taken"].setdefault(lk.get("network"), {})
            for c in np.asarray(lk.get("cells", []), dtype=np.int64).tolist():
                net_cells.setdefault(c, k)
            st_["km"] += lk["km"]
            st_["cost"] += lk["cost"]
        if up or links[k].get("to_paved", True):
            covered[k] = True
        else:  # a link to an unpaved road: 通达 only
            st_["covered_da"][k] = True
        st_["cand_step"][k] = step
        free = ~covered & has_up & (rem <= 1e-6)
        option[free] = "free"
        st_["cand_step"][free] = step
        covered[free] = True
        st_["decisions"].append((k, phase))
        st_["curve"].append({"step": step, "phase": phase, "cand": int(k), "cumulative_km": st_["km"],
                             "cumulative_cost_yuan": st_["cost"], **shares()})

    # pass 1: 100 % targets, forced points cheapest first
    reset()
    unresolved = []
    best0 = np.minimum(rem0, lcost)
    step = 0
    mand = np.flatnonzero(cand["mandatory"].to_numpy())
    for k in mand[np.argsort(best0[mand], kind="stable")]:
        if st_["covered"][k] or st_["covered_da"][k]:
            continue
        if not np.isfinite(min(st_["rem"][k], lcost[k])):
            unresolved.append(int(k))
            continue
        step += 1
        take(int(k), "100% targets", step)
    # pass 2: 80 % target, greedy by marginal cost
    need_t = math.ceil(float(p["settlement_tongchang_target_pct"]) / 100.0 * n_t - 1e-9)
    opt = np.flatnonzero(is_t & was_da)
    while t_ch0 + int((st_["covered"] & is_t).sum()) < need_t:
        left = opt[~st_["covered"][opt]]
        if len(left) == 0:
            break
        c = np.minimum(st_["rem"][left], lcost[left])
        j = int(np.argmin(c))
        if not np.isfinite(c[j]):
            unresolved.extend(left.tolist())
            break
        step += 1
        take(int(left[j]), "80% target", step)
    # pass 3: a point given a new link early may have become cheaper to serve through upgrades
    # chosen later for others: switch it (cheapest remaining upgrade first), then replay the
    # decisions in their order so the works' steps and the cost curve match the final choice.
    force = {k: ("new" if st_["option"][k] == "new" else "upgrade") for k, _ in st_["decisions"]}
    rem_f = st_["rem"].copy()
    chosen_f = st_["chosen"].copy()
    switched = 0
    for k, _, _ in sorted(st_["new_links"], key=lambda t: rem_f[t[0]]):
        if has_up[k] and rem_f[k] <= st_["used"][k]["cost"]:
            force[k] = "upgrade"
            switched += 1
            new_e = np.array([x for x in paths[k] if not chosen_f[x]], dtype=np.int64)
            if len(new_e):
                chosen_f[new_e] = True
                rem_f = np.where(has_up, rem_f - Pc[:, new_e] @ ecost[new_e], np.inf)
    if switched:
        decisions = list(st_["decisions"])
        reset()
        step = 0
        for k, ph in decisions:
            if st_["covered"][k]:
                continue
            step += 1
            take(k, ph, step, force=force[k])
        log.info("links: %d new link(s) replaced by shared upgrades", switched)
    chosen, edge_step, edge_phase = st_["chosen"], st_["edge_step"], st_["edge_phase"]
    option, new_links, curve = st_["option"], st_["new_links"], st_["curve"]
    cand_step = st_["cand_step"]

    # ---- works table ----
    edges = net.edges
    rows = []
    # upgrades: contiguous edges of one road chosen at one step form one work (a stretch)
    up_idx = np.flatnonzero(chosen)
    road_idx = edges["road_index"].to_numpy()
    eu, ev = edges["u"].to_numpy(), edges["v"].to_numpy()
    by_group: dict = {}
    for ei in up_idx[np.argsort(edge_step[up_idx], kind="stable")]:
        by_group.setdefault((int(edge_step[ei]), road_idx[ei]), []).append(int(ei))
    chains: list[list[int]] = []
    for eis in by_group.values():
        parent = {}

        def find(x):
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x
        for ei in eis:
            parent[find(int(eu[ei]))] = find(int(ev[ei]))
        groups_: dict[int, list[int]] = {}
        for ei in eis:
            groups_.setdefault(find(int(eu[ei])), []).append(ei)
        chains.extend(groups_.values())
    wid_of_edge = {}
    for n_, chain in enumerate(chains, 1):
        for ei in chain:
            wid_of_edge[ei] = f"U{n_:04d}"
    benef: dict[str, list[str]] = {}
    work_ids: dict[str, list[str]] = {}
    for k in range(K):
        if option[k] in ("upgrade", "free"):
            pid = cand["pid"].iloc[k]
            for wid in dict.fromkeys(wid_of_edge[int(ei)] for ei in paths[k]):
                benef.setdefault(wid, []).append(pid)
                work_ids.setdefault(pid, []).append(wid)
    town_of = dict(zip(cand["pid"], cand["township_code"]))
    length_m = edges["length_m"].to_numpy()
    terr = edges["terrain"].to_numpy()
    egrade = edges["max_grade_pct"].to_numpy(dtype="float64")
    egeom = edges.geometry.to_numpy()
    for chain in chains:
        wid = wid_of_edge[chain[0]]
        towns = sorted({town_of[b] for b in benef.get(wid, [])})
        by_terrain = pd.Series(length_m[chain]).groupby(terr[chain]).sum()
        geom = shapely.line_merge(shapely.multilinestrings(list(egeom[chain])))
        if geom.geom_type != "LineString":  # not a simple stretch: keep the edges' union
            geom = shapely.multilinestrings(list(egeom[chain]))
        g = egrade[chain]
        rows.append({"work_id": wid, "type": "upgrade", "km": float(length_m[chain].sum()) / 1000.0,
                     "cost_yuan": float(ecost[chain].sum()), "beneficiaries": ";".join(benef.get(wid, [])),
                     "terrain": str(by_terrain.idxmax()), "road_id": edges["road_id"].iloc[chain[0]],
                     "edge_id": ";".join(map(str, chain)),
                     "max_grade_pct": float(np.nanmax(g)) if np.isfinite(g).any() else np.nan,
                     "max_terrain_grade_pct": np.nan, "hairpin_km": 0.0, "path_m": 0.0,
                     "connects_to": "paved network",
                     "township_code": ";".join(towns), "phase": edge_phase[chain[0]],
                     "step": int(edge_step[chain[0]]), "geometry": geom})
    # a link that starts on an earlier link needs that one (and what it starts on) built too
    wid_of_link = {k: f"N{n_:04d}" for n_, (k, _, _) in enumerate(new_links, 1)}
    link_benef: dict[int, list[str]] = {k: [] for k in wid_of_link}
    for k in wid_of_link:
        j = k
        while j is not None:
            link_benef[j].append(cand["pid"].iloc[k])
            work_ids.setdefault(cand["pid"].iloc[k], []).append(wid_of_link[j])
            j = st_["via"].get(j)
    for k, stp, ph in new_links:
        wid = wid_of_link[k]
        lk = st_["used"][k]
        rows.append({"work_id": wid, "type": "new", "km": lk["km"], "cost_yuan": float(lk["cost"]),
                     "beneficiaries": ";".join(link_benef[k]), "terrain": lk["terrain"], "road_id": "", "edge_id": "",
                     "max_grade_pct": lk["max_grade_pct"], "max_terrain_grade_pct": lk["max_terrain_grade_pct"],
                     "hairpin_km": lk["hairpin_km"], "path_m": lk["path_m"],
                     "connects_to": "paved network" if lk.get("to_paved", True) else "road network (通达 only)",
                     "township_code": ";".join(sorted({town_of[b] for b in link_benef[k]})),
                     "phase": ph, "step": stp, "geometry": lk["geometry"]})
    cols = ["work_id", "type", "km", "cost_yuan", "beneficiaries", "terrain", "road_id", "edge_id",
            "max_grade_pct", "max_terrain_grade_pct", "hairpin_km", "path_m", "connects_to",
            "township_code", "phase",
            "step", "geometry"]
    works = gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols), geometry="geometry", crs=edges.crs)
    works = works.sort_values(["step", "work_id"], kind="stable").reset_index(drop=True)
    works["km"] = works["km"].round(3)
    works["cost_yuan"] = works["cost_yuan"].round(0)
    works.attrs["labels_zh"] = WORK_LABELS_ZH

    # ---- cost curve with work ids per step ----
    step_works: dict[int, list[str]] = {}
    for w, s_ in zip(works["work_id"], works["step"]):
        step_works.setdefault(int(s_), []).append(w)
    for r in curve:
        r["work_ids"] = ";".join(step_works.get(r["step"], []))
        k = r.pop("cand", None)
        r["beneficiary"] = "" if k is None else cand["pid"].iloc[k]
    cc = pd.DataFrame(curve, columns=["step", "phase", "beneficiary", "work_ids", "cumulative_km",
                                      "cumulative_cost_yuan", "village_tongchang_pct",
                                      "settlement_tongda_pct", "settlement_tongchang_pct"])
    cc["cumulative_km"] = cc["cumulative_km"].round(3)
    cc["cumulative_cost_yuan"] = cc["cumulative_cost_yuan"].round(0)
    cc.attrs["labels_zh"] = CURVE_LABELS_ZH | {"beneficiary": "受益村/自然村"}

    # ---- unresolved ----
    ur = []
    for k in sorted(set(unresolved)):
        lk = links[k] or {}
        why_up = ("not 通达 (no upgrade possible)" if not cand["tongda"].iloc[k]
                  else "no upgrade path to the seat's paved network")
        ur.append({"id": cand["pid"].iloc[k], "kind": cand["kind"].iloc[k],
                   "township_code": cand["township_code"].iloc[k],
                   "need": "100% target" if cand["mandatory"].iloc[k] else "80% target",
                   "reason": f"{why_up}; {lk.get('reason', 'no new link')}; a case for relocation "
                             f"(ch.5: places where infrastructure is hard to provide)"})
    unresolved_df = pd.DataFrame(ur, columns=["id", "kind", "township_code", "need", "reason"])
    if len(unresolved_df):
        log.info("%d point(s) have no feasible work: %s", len(unresolved_df),
                    format_ids(unresolved_df["id"]))

    new_km = float(works.loc[works["type"] == "new", "km"].sum())
    up_km = float(works.loc[works["type"] == "upgrade", "km"].sum())
    plan_km = float(p["roads_km_2020"])
    totals = {
        "new_links": int((works["type"] == "new").sum()), "new_km": round(new_km, 3),
        "upgrades": int((works["type"] == "upgrade").sum()), "upgrade_km": round(up_km, 3),
        "total_km": round(new_km + up_km, 3), "cost_yuan": float(works["cost_yuan"].sum()),
        "cost_100pct_targets_yuan": float(works.loc[works["phase"] == "100% targets", "cost_yuan"].sum()),
        "cost_80pct_target_yuan": float(works.loc[works["phase"] == "80% target", "cost_yuan"].sum()),
        "plan_roads_km": plan_km,
        "share_of_plan_km_pct": pct(new_km + up_km, plan_km, 1),
        "plan_poverty_village_roads_km": float(p["poverty_village_roads_km"]),
        "unresolved": int(len(unresolved_df)),
        "points_considered": int(K),
        "method": "100% targets: every forced point cheapest first, cheaper of new link and marginal "
                  "upgrade cost; 80% target: greedy lowest marginal cost; shared upgrades counted once; "
                  "a new link starts on an earlier one where their paths meet or, for points not "
                  "通达, where that is cheaper",
    }
    to_paved = np.array([bool(lk.get("to_paved", True)) if lk else True for lk in links], dtype=bool)
    is_new = np.asarray(option == "new", dtype=bool)
    expect_ch = np.isin(option, ["upgrade", "free"]) | (is_new & to_paved)
    choices = cand.drop(columns="geometry").assign(option=option, step=cand_step,
                                                   upgrade_cost=std, link_cost=lcost,
                                                   expect_tongchang=expect_ch,
                                                   expect_tongda=expect_ch | is_new)
    return WorksPlan(works=works, cost_curve=cc, unresolved=unresolved_df, totals=totals,
                     work_ids=pd.Series({k: ";".join(v) for k, v in work_ids.items()}, dtype=object),
                     choices=choices)


# --------------------------------------------------------------------------------------------
# Applying works
# --------------------------------------------------------------------------------------------
def apply_works(roads: gpd.GeoDataFrame, works: gpd.GeoDataFrame, *, plan=None,
                match_tolerance_m: float | None = None) -> gpd.GeoDataFrame:
    """The roads with the works built: new links added as paved roads, upgraded stretches paved.

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines (``road_id``, ``road_class``, ``surface``), in the works' CRS.
    works : GeoDataFrame
        As made by :func:`plan_works`: ``work_id``, ``type`` ("new"/"upgrade"), ``road_id`` of
        upgrades, geometry.
    plan : Plan, optional
        For the surface value of hardened roads (first of ``access.paved_surfaces``), the class of
        new links and the snap tolerance; "paved", "village" and 5 m otherwise.
    match_tolerance_m : float, optional
        An upgrade applies to the road row of its ``road_id`` whose line passes within this
        distance of the upgrade's midpoint (default: the snap tolerance plus 1 cm, since edge end
        points may have been moved onto a neighbouring road by snapping).

    Returns
    -------
    GeoDataFrame
        A new roads layer; an upgraded road is cut at the upgraded stretches into pieces with
        ids ``<road_id>#1``, ``#2``, ... (a stretch ending within ``match_tolerance_m`` of the
        road's end takes the road to its end: the network may have moved that end onto a
        junction). Input rows are never modified.
    """
    paved = plan["access.paved_surfaces"][0] if plan is not None else "paved"
    new_class = plan["links.new_link_road_class"] if plan is not None else "village"
    if match_tolerance_m is None:
        match_tolerance_m = (float(plan["access.snap_tolerance_m"]) if plan is not None else 5.0) + 0.01
    out = roads.copy()
    if "source" not in out.columns:
        out["source"] = ""
    if "road_id" not in out.columns:  # the network names such roads by their index label
        out["road_id"] = [str(i) for i in roads.index]
    if len(works) == 0:
        return out
    if roads.crs is not None and works.crs is not None and CRS(roads.crs) != CRS(works.crs):
        works = works.to_crs(roads.crs)
    for col in ("work_id", "type", "road_id"):
        if col not in works.columns:
            raise LayerError(f"works: column '{col}' is missing; apply_works needs work_id, type "
                             f"(new/upgrade) and road_id (of upgrades), as in access/works.gpkg.")
    bad = works.loc[~works["type"].isin(["new", "upgrade"]), "work_id"]
    if len(bad):
        raise LayerError(f"works: type must be 'new' or 'upgrade'; rows {format_ids(bad)} have another.")
    up = works[works["type"] == "upgrade"]
    rows_of: dict[str, list] = {}
    for ix, rid in zip(out.index, out["road_id"].astype(str)):
        rows_of.setdefault(rid, []).append(ix)
    missing = sorted(set(up["road_id"].astype(str)) - set(rows_of))
    if missing:
        raise LayerError(f"works: upgrades name road_id {format_ids(missing)}, which are not in the "
                         f"roads layer; apply works to the roads they were made for.")
    geom_name = out.geometry.name
    up_geoms = up.geometry.to_numpy()
    up_mid = shapely.line_interpolate_point(up_geoms, 0.5, normalized=True)
    up_ids = up["work_id"].astype(str).to_numpy()
    by_road: dict[str, list[int]] = {}
    for k, rid in enumerate(up["road_id"].astype(str)):
        by_road.setdefault(rid, []).append(k)
    pieces, drop = [], []
    for rid, ks in by_road.items():
        for ix in rows_of[rid]:
            geom = out.geometry.loc[ix]
            base = out.loc[ix].to_dict()
            row_pieces, hit = [], False
            for part in shapely.get_parts(geom):
                spans = [(_span(part, up_geoms[k], end_tol=match_tolerance_m), up_ids[k]) for k in ks
                         if shapely.distance(up_mid[k], part) < match_tolerance_m]
                hit |= bool(spans)
                cuts = sorted({0.0, float(part.length)} | {x for (a, b), _ in spans for x in (a, b)})
                for a, b in zip(cuts[:-1], cuts[1:]):
                    if b - a <= 1e-6:
                        continue
                    mid = (a + b) / 2
                    wids = [w for (lo, hi), w in spans if lo - 1e-6 <= mid <= hi + 1e-6]
                    row = {**base, "road_id": f"{rid}#{len(row_pieces) + 1}",
                           geom_name: substring(part, a, b) if spans else part}
                    if wids:
                        row["surface"] = paved
                        row["source"] = f"upgraded by {';'.join(wids)}"
                    row_pieces.append(row)
            if hit:  # rows of this road_id that no upgrade touches keep their original form
                drop.append(ix)
                pieces.extend(row_pieces)
    out = out.drop(index=drop)
    new = works[works["type"] == "new"]
    add = gpd.GeoDataFrame({"road_id": new["work_id"].astype(str).to_numpy(), "road_class": new_class,
                            "surface": paved, "source": [f"proposed new link {w}" for w in new["work_id"]]},
                           geometry=new.geometry.to_numpy(), crs=out.crs)
    frames = [out]
    if pieces:
        frames.append(gpd.GeoDataFrame(pd.DataFrame(pieces), geometry=geom_name, crs=out.crs))
    if len(add):
        frames.append(add.rename_geometry(geom_name) if geom_name != "geometry" else add)
    res = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(res, geometry=geom_name, crs=roads.crs)


def _span(line, g, *, end_tol: float = 0.0) -> tuple[float, float]:
    """Start and end position along ``line`` of a stretch ``g`` lying on it.

    A stretch reaching within ``end_tol`` of an end of the line reaches that end: the network
    moved the line's end point (a gap closed at a junction, at most the snap tolerance), so the
    upgraded edge starts at the junction while the line starts up to ``end_tol`` short of it;
    left out, that stub would stay unpaved between the junction and the upgraded road."""
    d = shapely.line_locate_point(line, shapely.points(shapely.get_coordinates(g)))
    a, b = float(d.min()), float(d.max())
    if a <= end_tol:
        a = 0.0
    if b >= float(line.length) - end_tol:
        b = float(line.length)
    return (a, b)
