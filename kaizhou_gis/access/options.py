"""Options of one point not 通畅: the upgrade path to its seat's paved network and the new link over
the DEM (see :mod:`kaizhou_gis.access.works` for the method), and the helpers that let a new link
start on an earlier one."""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import shapely
from rasterio.windows import transform as window_transform
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString

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
                      # the cell path, for joining a later link onto this one (join_link)
                      "cells": (rc[0] + r0) * dem.values.shape[1] + (rc[1] + c0),
                      "centres": np.column_stack([wx, wy]), "end": end, "cell_slope": sl,
                      "step_road_m": step_road, "step_corridor_m": step_corr,
                      "step_grade_pct": step_grade, "step_terrain_grade_pct": step_tgrade,
                      "simplify_m": 0.5 * csize, "source_line": int(rep[s_idx])}


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
