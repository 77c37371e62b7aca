"""Synthetic road network routed over the synthetic DEM with a maximum grade.

Three rounds of least-cost routing over the grade-limited cell graph of
:mod:`kaizhou_gis.network.costpath` (built lean by :mod:`kaizhou_gis.demo.cellgraph`), one
multi-source Dijkstra each:

1. county seat -> every township seat (paved; cells used by two or more seat routes are ``trunk``,
   the rest ``county``);
2. trunk network -> every village (``township`` where three or more village routes share a cell
   step, else ``village``); a share of the village routes stays unpaved;
3. road network -> settlements: paved routes start from paved cells, unpaved ones (``track``)
   from any road; some settlements get no road.

Which villages stay unpaved and which settlements stay unpaved or without a road is chosen
greedily, most remote / poorest first, until the measured shares (a point counts as reached when
a road cell lies within the reach distance) match the plan's 2015 baseline (~80 % of villages
reached by a paved road) and the issue's ranges for settlements of 30+ households.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from scipy.spatial import cKDTree
from shapely.geometry import LineString

from kaizhou_gis.demo import cellgraph
from kaizhou_gis.demo.dem import Grid
from kaizhou_gis.layers import ROAD_CLASSES

log = logging.getLogger(__name__)

CLASSES = tuple(c for c in ROAD_CLASSES if c != "other")  # the contract's classes; the demo draws no 'other' roads


@dataclass
class RoadParams:
    """Knobs of the synthetic road network (documented in layers/README.md)."""

    max_grade_pct: float = 30.0       # between 3" cell centres (switchbacks are finer than a cell)
    steep_grade_pct: float = 60.0     # fallback for villages walled in at max_grade_pct
    slope_weight: float = 6.0
    reach_m: float = 500.0            # plan access.reach_distance_m
    village_paved_share: float = 0.80
    target_tongda_share: float = 0.90
    target_tongchang_share: float = 0.57
    small_tongda_share: float = 0.72
    small_tongchang_share: float = 0.30
    township_min_users: int = 3


class _Edges:
    """Undirected cell edges with the best class rank and paved flag seen."""

    def __init__(self) -> None:
        self.rank: dict[tuple[int, int], int] = {}
        self.paved: dict[tuple[int, int], bool] = {}

    def add_path(self, cells: list[int], rank: int, paved: bool) -> None:
        for a, b in zip(cells[:-1], cells[1:]):
            key = (a, b) if a < b else (b, a)
            if key in self.rank:
                self.rank[key] = min(self.rank[key], rank)
                self.paved[key] = self.paved[key] or paved
            else:
                self.rank[key] = rank
                self.paved[key] = paved

    def cells(self, paved_only: bool = False) -> np.ndarray:
        out = set()
        for k, p in self.paved.items():
            if p or not paved_only:
                out.update(k)
        return np.fromiter(out, dtype=np.int64, count=len(out))


def _path_edges(cells: list[int]) -> list[tuple[int, int]]:
    return [(a, b) if a < b else (b, a) for a, b in zip(cells[:-1], cells[1:])]


def _xy_of_cells(grid: Grid, cells: np.ndarray) -> np.ndarray:
    r, c = np.divmod(np.asarray(cells, dtype=np.int64), grid.shape[1])
    return grid.to_xy_m(grid.lon[c], grid.lat[r])


def _reached(grid: Grid, cells: np.ndarray, pts_xy: np.ndarray, reach: float) -> np.ndarray:
    if len(cells) == 0 or len(pts_xy) == 0:
        return np.zeros(len(pts_xy), bool)
    d, _ = cKDTree(_xy_of_cells(grid, cells)).query(pts_xy, distance_upper_bound=reach)
    return np.isfinite(d)


@dataclass
class RoadResult:
    roads: gpd.GeoDataFrame
    village_tongda: np.ndarray
    village_tongchang: np.ndarray
    settlement_tongda: np.ndarray
    settlement_tongchang: np.ndarray
    seats_connected: bool


def build_roads(grid: Grid, z: np.ndarray, seat_cells: np.ndarray, seat_ll: np.ndarray,
                county_idx: int, village_cells: np.ndarray, village_ll: np.ndarray,
                village_unpave_order: np.ndarray, settle_cells: np.ndarray, settle_ll: np.ndarray,
                settle_target: np.ndarray, settle_remote_order: np.ndarray,
                p: RoadParams, *, mask: np.ndarray | None = None
                ) -> RoadResult:
    """Route the network and return road lines (EPSG:4326) and by-construction access flags.

    ``mask`` (True = allowed) keeps the routes inside the district.

    ``*_cells`` are flat indices into the grid; ``*_ll`` exact lon/lat of the points;
    ``village_unpave_order`` ranks villages to leave unpaved first; ``settle_remote_order`` ranks
    settlements to leave without a road / unpaved first.
    """
    # One piece on purpose: the routing stages 1-3 (seats, villages, settlements) share one
    # growing edge set and cost surface, and each stage routes from the network the previous one
    # built; the order decides the shipped roads' bytes. The stages are numbered below.
    if mask is None:
        mask = np.ones(z.shape, dtype=bool)

    def cost_graph(max_grade_pct: float) -> cellgraph.CellGraph:
        return cellgraph.cell_graph(z, grid, max_grade_pct=max_grade_pct,
                                    slope_weight=p.slope_weight, mask=mask)

    graph = cost_graph(p.max_grade_pct)
    edges = _Edges()
    # 1. county seat -> seats
    pred = cellgraph.search(graph, [seat_cells[county_idx]])
    use = defaultdict(int)
    seat_paths = []
    for i, c in enumerate(seat_cells):
        cells = cellgraph.trace(graph, pred, int(c))
        if i != county_idx and len(cells) == 1:
            raise RuntimeError(f"township seat {i} is not reachable at {p.max_grade_pct} % grade")
        seat_paths.append(cells)
        for e in _path_edges(cells):
            use[e] += 1
    for cells in seat_paths:
        for e in _path_edges(cells):
            rank = 0 if use[e] >= 2 else 1
            edges.add_path(list(e), rank, True)
    # 2. trunk -> villages
    src = edges.cells()
    pred = cellgraph.search(graph, src)
    vpaths = []
    use = defaultdict(int)
    for c in village_cells:
        cells = cellgraph.trace(graph, pred, int(c))
        vpaths.append(cells)
        for e in _path_edges(cells):
            use[e] += 1
    src_set = set(src.tolist())
    unreachable = [i for i, cl in enumerate(vpaths) if len(cl) == 1 and cl[0] not in src_set]
    steep = np.zeros(len(village_cells), bool)
    if unreachable:
        # walled in at the normal grade: a steep unpaved road (up to steep_grade_pct) from the
        # network built so far (trunk + the other villages' routes)
        log.info("%d villages unreachable at %s %% grade; steep unpaved roads up to %s %%",
                 len(unreachable), p.max_grade_pct, p.steep_grade_pct)
        del pred, graph  # one graph in memory at a time: the normal one is rebuilt below
        steep_graph = cost_graph(p.steep_grade_pct)
        net = set(src_set)
        for cl in vpaths:
            if len(cl) > 1:
                net.update(cl)
        pred_s = cellgraph.search(steep_graph, np.fromiter(net, dtype=np.int64, count=len(net)))
        for i in unreachable:
            cells = cellgraph.trace(steep_graph, pred_s, int(village_cells[i]))
            if len(cells) > 1:
                vpaths[i] = cells
                steep[i] = True
                for e in _path_edges(cells):
                    use[e] += 1
        del steep_graph, pred_s
        graph = cost_graph(p.max_grade_pct)
    # Every reached point gets its own stub at distance 0, so the surface of its own route decides
    # its 通畅 status (the analysis snaps a point to its nearest road); the shares are therefore
    # set by designation: the most remote / poorest villages keep unpaved routes.
    has_road_v = np.array([len(cl) > 1 or cl[0] in src_set for cl in vpaths])
    n_unpaved = max(int(round((1.0 - p.village_paved_share) * len(village_cells)))
                    - int((~has_road_v).sum()), 0)
    paved_v = has_road_v & ~steep
    cnt = int(steep.sum())
    for i in village_unpave_order:
        if cnt >= n_unpaved:
            break
        if paved_v[i]:
            paved_v[i] = False
            cnt += 1
    for i, cells in enumerate(vpaths):
        if not has_road_v[i]:
            continue
        for e in _path_edges(cells):
            rank = 2 if use[e] >= p.township_min_users else 3
            edges.add_path(list(e), rank, bool(paved_v[i]))
    # 3. settlements: paved routes start on paved roads, unpaved ones on any road
    any_src = edges.cells()
    paved_src = edges.cells(paved_only=True)
    any_set, paved_set = set(any_src.tolist()), set(paved_src.tolist())
    pred_any = cellgraph.search(graph, any_src)
    sp_any = [cellgraph.trace(graph, pred_any, int(c)) for c in settle_cells]
    del pred_any
    pred_paved = cellgraph.search(graph, paved_src)
    sp_paved = [cellgraph.trace(graph, pred_paved, int(c)) for c in settle_cells]
    del pred_paved, graph
    ok_any = np.array([len(cl) > 1 or cl[0] in any_set for cl in sp_any])
    ok_paved = np.array([len(cl) > 1 or cl[0] in paved_set for cl in sp_paved])
    sxy = _xy_of_cells(grid, settle_cells)
    n = len(settle_cells)
    state = np.where(ok_any, 1, 0).astype(np.int8)   # 0 none, 1 unpaved, 2 paved
    pave_order = settle_remote_order[::-1]
    for group, share in ((settle_target, p.target_tongchang_share),
                         (~settle_target, p.small_tongchang_share)):
        want = int(round(share * group.sum()))
        got = 0
        for i in pave_order:
            if got >= want:
                break
            if group[i] and ok_paved[i]:
                state[i] = 2
                got += 1

    # road cells (the network so far and each settlement's own route) and which settlements have
    # one within reach; kept up to date route by route (rechecking only the settlements near the
    # cells that change), the same answer as a query over all road cells after every change
    cover = cellgraph.RoadCover(grid, settle_cells, sxy, p.reach_m)
    cover.add(any_src, update=False)
    for i in np.flatnonzero(state == 1):
        cover.add(sp_any[i], update=False)
    for i in np.flatnonzero(state == 2):
        cover.add(sp_paved[i], update=False)
    cover.recheck()
    for group, share in ((settle_target, p.target_tongda_share),
                         (~settle_target, p.small_tongda_share)):
        want_off = int(round((1.0 - share) * group.sum()))
        cand = [i for i in settle_remote_order if group[i] and state[i] == 1]
        k = 0
        reached = cover.covered.copy()
        while k < len(cand):
            off = int((group & ~reached).sum())
            if off >= want_off:
                break
            chunk = cand[k:k + max(1, min(12, (want_off - off) // 2))]
            k += len(chunk)
            for i in chunk:
                state[i] = 0
                cover.remove(sp_any[i])
            reached = cover.covered.copy()
            for i in chunk:   # still near another road: keep its own track (predictable status)
                if reached[i]:
                    state[i] = 1
                    cover.add(sp_any[i])
    for i in range(n):
        if state[i] == 1:
            edges.add_path(sp_any[i], 4, False)
        elif state[i] == 2:
            edges.add_path(sp_paved[i], 3, True)
    all_any = edges.cells()
    near_any = _reached(grid, all_any, sxy, p.reach_m)
    ta = (state > 0) | near_any
    tc = state == 2
    v_any = has_road_v
    v_paved = paved_v
    # point stubs: every seat, village and settlement with a route, with its route's surface
    stubs = []
    road_cell_set = set(all_any.tolist())
    for c, (lon, lat) in zip(seat_cells, seat_ll):
        stubs.append((int(c), float(lon), float(lat), 0, True))
    for i, (c, (lon, lat)) in enumerate(zip(village_cells, village_ll)):
        if has_road_v[i]:
            stubs.append((int(c), float(lon), float(lat), 3, bool(paved_v[i])))
    for i, (c, (lon, lat)) in enumerate(zip(settle_cells, settle_ll)):
        if state[i] > 0:
            stubs.append((int(c), float(lon), float(lat), 3 if state[i] == 2 else 4, state[i] == 2))
    roads = _lines(grid, edges, stubs)
    connected = all(int(c) in road_cell_set for c in seat_cells)
    log.info("roads: %d features, %.0f km; villages paved-reached %.1f %%; settlements>=30hh "
             "tongda %.1f %% tongchang %.1f %%", len(roads), roads["length_km"].sum(),
             100 * v_paved.mean(), 100 * ta[settle_target].mean(), 100 * tc[settle_target].mean())
    return RoadResult(roads, v_any, v_paved, ta, tc, connected)


def _lines(grid: Grid, edges: _Edges, stubs: list[tuple[int, float, float, int, bool]]
           ) -> gpd.GeoDataFrame:
    """Merge cell edges into polylines broken at junctions and attribute changes."""
    # One piece on purpose: one graph walk (cell edges -> node degrees -> polylines broken at
    # junctions and attribute changes -> stubs); node_xy/walk are its local steps over shared dicts.
    W = grid.shape[1]
    attr: dict[tuple[int, int], tuple[int, bool]] = {
        k: (edges.rank[k], edges.paved[k]) for k in edges.rank}
    coords: dict[int, tuple[float, float]] = {}

    def node_xy(n: int) -> tuple[float, float]:
        if n not in coords:
            r, c = divmod(n, W)
            coords[n] = (float(grid.lon[c]), float(grid.lat[r]))
        return coords[n]

    adj: dict[int, list[int]] = defaultdict(list)
    for a, b in attr:
        adj[a].append(b)
        adj[b].append(a)
    # stubs: a pseudo node per point (negative ids) joined to its cell centre
    for j, (cell, lon, lat, rank, paved) in enumerate(stubs):
        if cell not in adj:
            continue
        nid = -(j + 1)
        coords[nid] = (lon, lat)
        skey = (nid, cell)
        attr[skey] = (rank, bool(paved))
        adj[nid].append(cell)
        adj[cell].append(nid)

    def ekey(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    def is_break(n: int) -> bool:
        nb = adj[n]
        if len(nb) != 2:
            return True
        return attr[ekey(n, nb[0])] != attr[ekey(n, nb[1])]

    seen: set[tuple[int, int]] = set()
    rows = []

    def walk(chain: list, *, stop_at_break: bool) -> list:
        """Extend ``chain`` along unseen edges (marking them seen) to a break node or a dead end."""
        while not (stop_at_break and is_break(chain[-1])):
            cur = chain[-1]
            nxt = [x for x in adj[cur] if ekey(cur, x) not in seen]
            if not nxt:
                break
            seen.add(ekey(cur, nxt[0]))
            chain.append(nxt[0])
        return chain

    starts = sorted(n for n in adj if is_break(n))
    for s in starts:
        for nb in sorted(adj[s]):
            if ekey(s, nb) in seen:
                continue
            seen.add(ekey(s, nb))
            rows.append((walk([s, nb], stop_at_break=True), attr[ekey(s, nb)]))
    for k in sorted(attr):  # loops without a break node
        if k not in seen:
            seen.add(k)
            rows.append((walk(list(k), stop_at_break=False), attr[k]))
    tol = 0.45 * abs(grid.transform.a)
    geoms, cls, surf = [], [], []
    for chain, (rank, paved) in rows:
        pts = [node_xy(n) for n in chain]
        if len(set(pts)) < 2:
            continue  # a point exactly on its cell centre needs no stub
        line = LineString(pts)
        if len(chain) > 2:
            simple = line.simplify(tol, preserve_topology=False)
            if simple.is_valid and not simple.is_empty and simple.length > 0:
                line = simple
        geoms.append(line)
        cls.append(CLASSES[rank])
        surf.append("paved" if paved else "unpaved")
    gdf = gpd.GeoDataFrame({"road_class": cls, "surface": surf}, geometry=geoms, crs="EPSG:4326")
    order = np.lexsort((gdf.geometry.bounds["miny"].to_numpy(), gdf.geometry.bounds["minx"].to_numpy(),
                        gdf["road_class"].map(CLASSES.index).to_numpy()))
    gdf = gdf.iloc[order].reset_index(drop=True)
    gdf.insert(0, "road_id", [f"R{i + 1:06d}" for i in range(len(gdf))])
    gdf["length_km"] = gdf.to_crs("EPSG:4545").length / 1000.0
    return gdf
