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


def _solve(d: pd.DataFrame, ii: np.ndarray, jj: np.ndarray, cost: np.ndarray, h: np.ndarray,
           cap: np.ndarray, *, unplaced_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """The transportation LP: (households per pair, unplaced households per settlement).

    Leaving a household unplaced costs ``unplaced_cost`` (more than any chain of placements)
    times 1 + priority/100, plus 2 for a scheduled settlement (``schedule_year``), so scheduled,
    then higher-priority households are placed first."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    n, m = len(d), len(cap)
    prio = (d["priority"].fillna(0).to_numpy(dtype=float).clip(0, 100) if "priority" in d.columns
            else np.zeros(n))
    tier = (d["schedule_year"].notna().to_numpy(dtype=float) if "schedule_year" in d.columns
            else np.zeros(n))
    c = np.concatenate([cost, unplaced_cost * (1.0 + prio / 100.0 + 2.0 * tier)])
    k = len(ii)
    a_eq = coo_matrix((np.ones(k + n), (np.concatenate([ii, np.arange(n)]),
                                        np.arange(k + n))), shape=(n, k + n)).tocsr()
    a_ub = coo_matrix((np.ones(k), (jj, np.arange(k))), shape=(m, k + n)).tocsr()
    sol = linprog(c, A_ub=a_ub, b_ub=cap.astype(float), A_eq=a_eq, b_eq=h.astype(float),
                  bounds=(0, None), method="highs-ds")
    if sol.status != 0:
        raise StepError(f"relocation: the assignment problem could not be solved "
                        f"({sol.message}); check site capacities and settlement households.")
    x = sol.x
    if np.abs(x - np.round(x)).max() > 1e-6:
        raise StepError("relocation: the assignment solver returned a fractional solution; "
                        "report this as a bug.")
    x = np.round(x)
    return x[:k], x[k:]


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
    # node beyond the limit is longer); the few others are searched again without a limit
    straight = np.hypot(np.asarray(origins.x)[ok] - np.asarray(targets.x)[ok],
                        np.asarray(origins.y)[ok] - np.asarray(targets.y)[ok])
    want = 3.0 * np.nan_to_num(straight, nan=np.inf) + L[te] + L[oe] + 1000.0
    best, reach = _best_ways(graph, t_node, t_way, o_node, o_way, want)
    again = ~(best <= reach)
    if again.any():
        best[again] = _best_ways(graph, t_node[again], t_way[again], o_node[again], o_way[again],
                                 np.full(int(again.sum()), np.inf))[0]
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
