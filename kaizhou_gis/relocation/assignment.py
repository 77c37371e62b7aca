"""Households to sites (a transportation linear program) and the road distance of each pair."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.access import snap_to_edges
from kaizhou_gis.errors import LayerError, StepError, format_ids
from kaizhou_gis.relocation.labels import _labelled
from kaizhou_gis.relocation.sites import _nearest_distance


def assign_households(demand: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, max_distance_km: float,
                      other_township_penalty_km: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign households of settlements to sites at minimum total distance within capacity.

    A transportation linear program solved with HiGHS (dual simplex): variables are the
    households moved from settlement *i* to site *j* for every pair within ``max_distance_km``
    (straight line), plus the households of *i* left unplaced. Cost per household is the distance
    in km, plus ``other_township_penalty_km`` when the site is neither in the settlement's
    township nor chosen to cover it (``serves_township_code``, optional); an unplaced
    household costs more than any chain of placements, so the number placed is maximal; households
    of scheduled settlements (``schedule_year`` given) are placed before unscheduled ones, and
    among the rest those of higher ``priority`` are placed first. The
    constraint matrix is totally unimodular and the supplies and capacities are integers, so the
    simplex vertex solution is integral.

    Parameters
    ----------
    demand
        Settlements with ``settlement_id``, ``township_code``, ``households`` (int >= 0) and
        optionally ``priority`` (0-100) and ``schedule_year``, in a metric CRS.
    sites
        Sites with ``site_id``, ``township_code``, ``capacity_households`` and optionally
        ``serves_township_code``, same CRS.
    max_distance_km
        Longest allowed move.
    other_township_penalty_km
        Extra cost of a site in another township.

    Returns
    -------
    (assignment, unassigned)
        ``assignment``: settlement_id, township_code, site_id, site_township_code, households,
        distance_km, same_township (the site lies in the settlement's township),
        site_for_own_township (it lies there or was chosen to cover that township); one row per
        pair with households > 0. ``unassigned``: settlement_id, township_code, households,
        reason ("no site within N km" or "sites within N km are full"), reason_zh,
        reason_detail (nearest site, or the sites and capacity in reach); one row per
        settlement with unplaced households.
    """
    d = demand[demand["households"] > 0]
    h = d["households"].astype(int).to_numpy()
    n, m = len(d), len(sites)
    cap = sites["capacity_households"].astype(int).to_numpy() if m else np.zeros(0, dtype=int)
    if (cap < 0).any():
        bad = sites.loc[cap < 0, "site_id"].tolist()
        raise LayerError(f"sites: column capacity_households is negative for {format_ids(bad)}; "
                         f"give a capacity of 0 or more households.")
    ii, jj, dist_km = _pairs_in_reach(d, sites, max_distance_km)
    d_tw = d["township_code"].astype(str).to_numpy()
    same = d_tw[ii] == sites["township_code"].astype(str).to_numpy()[jj]
    serves = (sites["serves_township_code"].fillna("").astype(str).to_numpy()
              if "serves_township_code" in sites.columns else np.full(m, "", dtype=object))
    for_own = same | (d_tw[ii] == serves[jj])
    cost = dist_km + np.where(for_own, 0.0, other_township_penalty_km)
    x_pairs = np.zeros(len(ii))
    unplaced = h.astype(float)
    if n and len(ii):
        x_pairs, unplaced = _solve(d, ii, jj, cost, h, cap,
                                   unplaced_cost=(m + 1) * (max_distance_km + other_township_penalty_km + 1.0))
    sid = d["settlement_id"].astype(str).to_numpy()
    site_ids = sites["site_id"].astype(str).to_numpy() if m else np.zeros(0, dtype=object)
    used = x_pairs > 0
    site_tw = sites["township_code"].astype(str).to_numpy() if m else np.zeros(0, dtype=object)
    assignment = pd.DataFrame({
        "settlement_id": sid[ii[used]], "township_code": d_tw[ii[used]],
        "site_id": site_ids[jj[used]], "site_township_code": site_tw[jj[used]],
        "households": x_pairs[used].astype("int64"), "distance_km": dist_km[used].round(2),
        "same_township": same[used], "site_for_own_township": for_own[used]}, columns=ASSIGNMENT_COLUMNS)
    # rows by settlement, then by the unrounded distance (the rounded one can tie, and which of
    # two sites 0.01 km apart comes first must not depend on a rounding boundary), then site
    assignment["_d"] = dist_km[used]
    assignment = (assignment.sort_values(["settlement_id", "_d", "site_id"], kind="mergesort")
                  .drop(columns="_d").reset_index(drop=True))
    unassigned = _unplaced_rows(d, sites, ii, jj, cap, unplaced, max_distance_km)
    return _labelled(assignment), _labelled(unassigned)


#: Columns of the assignment table.
ASSIGNMENT_COLUMNS = ["settlement_id", "township_code", "site_id", "site_township_code", "households",
                      "distance_km", "same_township", "site_for_own_township"]
#: Columns of the table of unplaced households.
UNASSIGNED_COLUMNS = ["settlement_id", "township_code", "households", "reason", "reason_zh", "reason_detail"]


def _pairs_in_reach(d: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, max_distance_km: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(settlement rows, site rows, km) of every pair within ``max_distance_km``, in a canonical
    order (settlement row, then site row), so that among equally good solutions the solver's
    choice depends on the data, not on the spatial index's order."""
    max_m = max_distance_km * 1000.0
    if len(d) and len(sites):
        ii, jj = sites.sindex.query(d.geometry, predicate="dwithin", distance=max_m)
    else:
        ii = jj = np.zeros(0, dtype=int)
    dist_km = (np.asarray(d.geometry.iloc[ii].distance(sites.geometry.iloc[jj], align=False),
                          dtype="float64") / 1000.0) if len(ii) else np.zeros(0)
    keep = dist_km <= max_distance_km
    ii, jj, dist_km = ii[keep], jj[keep], dist_km[keep]
    order = np.lexsort((jj, ii))
    return ii[order], jj[order], dist_km[order]


#: Pairs per settlement (its cheapest) and per site (its cheapest settlements) in the first
#: restricted problem of :func:`_solve`, and pairs added per settlement and round.
_FIRST_PER_SETTLEMENT = 8
_FIRST_PER_SITE = 30
_ADDED_PER_SETTLEMENT = 4
#: HiGHS's dual feasibility tolerance (its default), also the pricing tolerance of the pairs
#: left out.
_DUAL_TOLERANCE = 1e-7


def _solve(d: pd.DataFrame, ii: np.ndarray, jj: np.ndarray, cost: np.ndarray, h: np.ndarray,
           cap: np.ndarray, *, unplaced_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """The transportation LP: (households per pair, unplaced households per settlement).

    Leaving a household unplaced costs ``unplaced_cost`` (more than any chain of placements)
    times 1 + priority/100, plus 2 for a scheduled settlement (``schedule_year``), so scheduled,
    then higher-priority households are placed first.

    Solved by column generation with HiGHS (highspy, dual simplex): the problem over every pair
    in reach has ~70 pairs per settlement at a 30 km reach, of which the optimum uses one or
    two, and the simplex's work grows with the columns it prices. So it is solved first over
    each settlement's cheapest pairs and each site's cheapest settlements; then the pairs left
    out are priced with the solution's duals (reduced cost ``cost - dual(settlement) -
    dual(site)``), the most negative few per settlement are added and the problem is solved
    again from the previous basis (by the primal simplex: the basis stays primal feasible when
    columns are added), until no pair left out has a negative reduced cost beyond
    HiGHS's dual feasibility tolerance. That is the optimality condition of the whole problem,
    so the optimum is the whole problem's (same objective within the solver's tolerance; on
    the shipped layers and the 3x/10x synthetic districts the same assignment, pair for pair).
    """
    n, m = len(d), len(cap)
    prio = (d["priority"].fillna(0).to_numpy(dtype=float).clip(0, 100) if "priority" in d.columns
            else np.zeros(n))
    tier = (d["schedule_year"].notna().to_numpy(dtype=float) if "schedule_year" in d.columns
            else np.zeros(n))
    c_unplaced = unplaced_cost * (1.0 + prio / 100.0 + 2.0 * tier)
    k = len(ii)
    active = (_cheapest(ii, jj, cost, n, _FIRST_PER_SETTLEMENT)
              | _cheapest(jj, ii, cost, m, _FIRST_PER_SITE))
    hs = _highs()
    inf = hs.getInfinity()
    hs.addRows(n + m, np.concatenate([h.astype(float), np.full(m, -inf)]),
               np.concatenate([h.astype(float), cap.astype(float)]), 0,
               np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0))
    columns = []  # pair index of each HiGHS column, -1 for a settlement's unplaced households

    def add_pairs(sel: np.ndarray) -> None:
        idx = np.flatnonzero(sel)
        rows = np.empty(2 * len(idx), dtype=np.int32)
        rows[0::2], rows[1::2] = ii[idx], n + jj[idx]
        hs.addCols(len(idx), cost[idx], np.zeros(len(idx)), np.full(len(idx), inf), 2 * len(idx),
                   np.arange(0, 2 * len(idx), 2, dtype=np.int32), rows, np.ones(2 * len(idx)))
        columns.append(idx)

    add_pairs(active)
    hs.addCols(n, c_unplaced, np.zeros(n), np.full(n, inf), n, np.arange(n, dtype=np.int32),
               np.arange(n, dtype=np.int32), np.ones(n))
    columns.append(np.full(n, -1))
    tol = _DUAL_TOLERANCE
    while True:
        hs.run()
        status = hs.getModelStatus()
        if status != _highs_optimal():
            raise StepError(f"relocation: the assignment problem could not be solved "
                            f"({hs.modelStatusToString(status)}); check site capacities and "
                            f"settlement households.")
        y = np.asarray(hs.getSolution().row_dual)
        reduced = cost - y[ii] - y[n + jj]
        priced = ~active & (reduced < -tol)
        if not priced.any():
            break
        new = _cheapest(ii, jj, np.where(priced, reduced, np.inf), n, _ADDED_PER_SETTLEMENT) & priced
        active |= new
        add_pairs(new)
        # the added columns are nonbasic at 0: the basis stays primal feasible, so the primal
        # simplex goes on from it (the dual simplex had to restore dual feasibility first)
        hs.setOptionValue("simplex_strategy", 4)
    col = np.concatenate(columns)
    value = np.asarray(hs.getSolution().col_value)
    if np.abs(value - np.round(value)).max(initial=0.0) > 1e-6:
        raise StepError("relocation: the assignment solver returned a fractional solution; "
                        "report this as a bug.")
    value = np.round(value)
    x = np.zeros(k)
    x[col[col >= 0]] = value[col >= 0]
    return x, value[col < 0]


def _cheapest(owner: np.ndarray, other: np.ndarray, cost: np.ndarray, n_owners: int,
              count: int) -> np.ndarray:
    """Mask of each owner's ``count`` cheapest pairs (ties: the lower ``other`` row first;
    infinite costs never)."""
    order = np.lexsort((other, cost, owner))
    start = np.searchsorted(owner[order], np.arange(n_owners))
    rank = np.empty(len(owner), dtype=np.int64)
    rank[order] = np.arange(len(owner)) - start[owner[order]]
    return (rank < count) & np.isfinite(cost)


def _highs():
    """A silent HiGHS instance (highspy). HiGHS prints its banner to the process's standard
    output when an instance is made, before any option can be set: the output file descriptor
    is pointed at the null device for that moment."""
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        hs = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
    hs.setOptionValue("output_flag", False)
    hs.setOptionValue("solver", "simplex")
    hs.setOptionValue("simplex_strategy", 1)  # dual simplex, as linprog's "highs-ds" before
    hs.setOptionValue("dual_feasibility_tolerance", _DUAL_TOLERANCE)
    hs.setOptionValue("random_seed", 0)
    hs.setOptionValue("threads", 1)
    return hs


def _highs_optimal():
    import highspy

    return highspy.HighsModelStatus.kOptimal


def _unplaced_rows(d: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, ii: np.ndarray, jj: np.ndarray,
                   cap: np.ndarray, unplaced: np.ndarray, max_distance_km: float) -> pd.DataFrame:
    """One row per settlement with unplaced households, with the reason (no site in reach, or
    the sites in reach are full) and its detail."""
    n, m = len(d), len(sites)
    sid = d["settlement_id"].astype(str).to_numpy()
    d_tw = d["township_code"].astype(str).to_numpy()
    rows = []
    n_reach = np.bincount(ii, minlength=n) if n else np.zeros(0, dtype=int)
    cap_reach = np.bincount(ii, weights=cap[jj].astype(float), minlength=n) if n else np.zeros(0)
    lacking = np.flatnonzero(unplaced > 0)
    nearest_km = (_nearest_distance(d.geometry.iloc[lacking], sites.geometry) / 1000.0
                  if len(lacking) and m else np.full(len(lacking), np.nan))
    for t, near in zip(lacking, nearest_km):
        near_txt = f"nearest site {near:.1f} km" if np.isfinite(near) else "no site at all"
        if n_reach[t] == 0:
            reason = f"no site within {max_distance_km:g} km"
            reason_zh = f"{max_distance_km:g} 公里内无安置点"
            detail = near_txt
        else:
            reason = f"sites within {max_distance_km:g} km are full"
            reason_zh = f"{max_distance_km:g} 公里内安置点已满"
            detail = (f"{int(n_reach[t])} site(s) within {max_distance_km:g} km, "
                      f"{int(cap_reach[t]):,} households of capacity, taken by other settlements "
                      f"(scheduled, then higher-priority settlements are placed first)")
        rows.append((sid[t], d_tw[t], int(unplaced[t]), reason, reason_zh, detail))
    return pd.DataFrame(rows, columns=UNASSIGNED_COLUMNS)


def network_distance_km(origins: gpd.GeoSeries, targets: gpd.GeoSeries, edges: gpd.GeoDataFrame
                        ) -> np.ndarray:
    """Road-network distance (km) from each origin to the target of the same position.

    Each point is projected onto its nearest edge; the distance is the straight leg from the
    point to that edge, the way along the network (shortest path over ``length_m`` between the
    edges' end nodes ``u``/``v``, or directly along a shared edge) and the leg from the edge to
    the other point. NaN where the two points' edges are not connected, or without edges.

    Parameters
    ----------
    origins, targets
        Points of equal length, in the edges' (metric) CRS.
    edges
        Network edges with ``u``, ``v`` (node ids), ``length_m`` and line geometries drawn from
        ``u`` to ``v`` (the ``access`` step's ``edges``).

    Returns
    -------
    numpy.ndarray
        Kilometres, one per pair.
    """
    from scipy.sparse import coo_matrix

    n = len(origins)
    out = np.full(n, np.nan)
    if n == 0 or edges is None or len(edges) == 0:
        return out
    e = edges[~(edges.geometry.isna() | edges.geometry.is_empty)].reset_index(drop=True)
    u = e["u"].to_numpy(dtype=np.int64)
    v = e["v"].to_numpy(dtype=np.int64)
    L = e["length_m"].to_numpy(dtype=float)
    # undirected graph; parallel edges keep the shortest length
    pair = pd.DataFrame({"a": np.minimum(u, v), "b": np.maximum(u, v), "w": L})
    pair = pair[pair["a"] != pair["b"]].groupby(["a", "b"], as_index=False)["w"].min()
    n_nodes = int(max(u.max(), v.max())) + 1
    graph = coo_matrix((pair["w"].to_numpy(), (pair["a"].to_numpy(), pair["b"].to_numpy())),
                       shape=(n_nodes, n_nodes)).tocsr()

    def snap(points: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the access step's snapping rule: equally near edges (a point on a junction) are
        # decided canonically, not by float noise
        sn = snap_to_edges(gpd.GeoSeries(points.to_numpy()), e)
        edge = sn["edge"].to_numpy(dtype=np.int64)
        off = sn["snap_distance_m"].to_numpy(dtype=float)
        along = np.full(len(points), np.nan)
        ok = edge >= 0
        along[ok] = np.clip(shapely.line_locate_point(e.geometry.to_numpy()[edge[ok]],
                                                      points.to_numpy()[ok]), 0, None)
        along[ok] = np.minimum(along[ok] * L[edge[ok]] / np.maximum(e.geometry.length.to_numpy()[edge[ok]], 1e-9),
                               L[edge[ok]])
        return edge, along, off

    eo, ao, oo = snap(origins)
    et, at, ot = snap(targets)
    ok = np.flatnonzero((eo >= 0) & (et >= 0))
    if not len(ok):
        return out
    te, oe = et[ok], eo[ok]
    # the two ends of each pair's target and origin edges, and the way from the point to each
    t_node = np.stack([u[te], v[te]], axis=1)
    t_way = np.stack([at[ok], L[te] - at[ok]], axis=1)
    o_node = np.stack([u[oe], v[oe]], axis=1)
    o_way = np.stack([ao[ok], L[oe] - ao[ok]], axis=1)
    # node-to-node distances from the targets' end nodes (few sites, many settlements), each
    # source searched only as far as its pairs need first (3x their straight distance plus both
    # edges): a pair whose best way is within its sources' limits is exact (a way through a
    # node beyond the limit is longer); the others are searched again, each time twice as far
    # (a search to the whole network for every such source grew with sources x nodes), and
    # without a limit once the limit passes the length of the whole network. Pairs whose edges
    # lie in different parts of the network have no way at all and are not searched again.
    straight = np.hypot(np.asarray(origins.x)[ok] - np.asarray(targets.x)[ok],
                        np.asarray(origins.y)[ok] - np.asarray(targets.y)[ok])
    want = 3.0 * np.nan_to_num(straight, nan=np.inf) + L[te] + L[oe] + 1000.0
    best, reach = _best_ways(graph, t_node, t_way, o_node, o_way, want)
    again = ~(best <= reach)
    if again.any():
        from scipy.sparse.csgraph import connected_components

        part = connected_components(graph, directed=False)[1]
        again &= (part[t_node][:, :, None] == part[o_node][:, None, :]).any(axis=(1, 2))
        whole = float(pair["w"].sum())  # no shortest way is longer than every edge together
        limit = want.copy()
        while again.any():
            idx = np.flatnonzero(again)
            limit[idx] *= 2.0
            lim = np.where(limit[idx] >= whole, np.inf, limit[idx])
            b, r = _best_ways(graph, t_node[idx], t_way[idx], o_node[idx], o_way[idx], lim)
            done = (b <= r) | np.isinf(lim)
            best[idx[done]] = b[done]
            again[idx[done]] = False
    same_edge = te == oe
    best[same_edge] = np.minimum(best[same_edge], np.abs(at[ok][same_edge] - ao[ok][same_edge]))
    fin = np.isfinite(best)
    out[ok[fin]] = (best[fin] + oo[ok][fin] + ot[ok][fin]) / 1000.0
    return out


#: Sources per Dijkstra call of :func:`_best_ways` (bounds the distance rows held at once).
_SOURCES_PER_CALL = 64


def _best_ways(graph, t_node: np.ndarray, t_way: np.ndarray, o_node: np.ndarray, o_way: np.ndarray,
               want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pair, the shortest of the four ways target end -> network -> origin end
    (``t_way[:, a] + dist(t_node[:, a], o_node[:, b]) + o_way[:, b]``), and the distance up to
    which it is exact. Each source node is searched at least as far as the largest ``want`` of
    its pairs (sources in batches of similar reach; inf beyond a batch's limit)."""
    from scipy.sparse.csgraph import dijkstra

    src, pos = np.unique(t_node, return_inverse=True)
    pos = pos.reshape(t_node.shape)
    need = np.zeros(len(src))
    np.maximum.at(need, pos[:, 0], want)
    np.maximum.at(need, pos[:, 1], want)
    order = np.argsort(need, kind="stable")
    rank = np.empty(len(src), dtype=np.int64)
    rank[order] = np.arange(len(src))
    used = np.empty(len(src))
    net = np.full((len(t_node), 2, 2), np.inf)
    for c0 in range(0, len(src), _SOURCES_PER_CALL):
        batch = order[c0:c0 + _SOURCES_PER_CALL]
        limit = float(need[batch].max())
        used[batch] = limit
        dm = dijkstra(graph, directed=False, indices=src[batch], limit=limit)
        for a in (0, 1):
            sel = np.flatnonzero((rank[pos[:, a]] >= c0) & (rank[pos[:, a]] < c0 + _SOURCES_PER_CALL))
            for b in (0, 1):
                net[sel, a, b] = dm[rank[pos[sel, a]] - c0, o_node[sel, b]]
    best = np.full(len(t_node), np.inf)
    for a in (0, 1):
        for b in (0, 1):
            best = np.minimum(best, t_way[:, a] + net[:, a, b] + o_way[:, b])
    return best, np.minimum(used[pos[:, 0]], used[pos[:, 1]])
