"""Network distances (or travel times) from the township seats to road nodes, computed only for
the (seat, node) pairs that are read.

Why not one array of every seat to every node: that array has S x n cells, and both S (the
townships) and n (the road nodes) grow with the district, so its memory and the time to fill it
grow with the square of the district: 38 x 4,000 cells for Kaizhou, 400 x 100,000 at ten times
its size, 4,000 x 1,000,000 (32 GB per array) at a hundred times. A settlement is measured
against the seat of its own township, a few km away, so a seat's search need only reach as far as
its own township's points (and the county seat's as far as the whole district).

How the answer stays exact: :func:`scipy.sparse.csgraph.dijkstra` with ``limit`` returns the
exact value of every node within the limit and inf beyond it. The limit of a seat starts at twice
the straight-line distance to the farthest node asked for, plus 1 km (times the typical minutes per
metre for travel times), and is doubled while any node asked for is in the seat's connected
component (so it has a finite value) but came back inf. Every value returned is therefore the
value of the unbounded search, whichever limit found it.

How the searches stay small: road networks are mostly trees hanging off a small core (dead-end
roads and their branches: at ten times Kaizhou's size 83 % of the road nodes). A node of such a
pendant tree is reached only through its parent, so a Dijkstra search gives it exactly
``dist[parent] + weight`` (the same float sum) and the parent as predecessor. :class:`CoreGraph`
peels the pendant trees off once (the seats' nodes are kept), the searches run over the core,
and the trees' values are filled in from the core outwards, level by level (see
:meth:`CoreGraph.dijkstra`).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

#: Cells of one batch of searches (seats x nodes, float64): 64 MB. Seats are searched together
#: in batches of about this size (one batch for a district of Kaizhou's size).
BATCH_CELLS = 1 << 23
#: The first limit of a seat's search: this many times the straight-line distance to the
#: farthest node asked for, plus :data:`MARGIN_M` (roads wind: a detour factor of 2 covers
#: nearly all; the rest is found by doubling the limit).
DETOUR = 2.0
MARGIN_M = 1000.0


class SeatField:
    """Values (metres or minutes) of the shortest paths from each seat to road nodes.

    Parameters
    ----------
    graph : sparse matrix
        Upper-triangle graph of the roads plus one virtual node per seat (numbered from
        ``n_nodes``), as :meth:`kaizhou_gis.network.RoadNetwork.matrix` makes it.
    sources : int array (S,)
        The virtual node of each seat, -1 for a seat off the network (its values are inf).
    node_xy, seat_xy : float arrays (n, 2), (S, 2)
        Coordinates (work CRS metres) of the road nodes and of the seats: the first limits.
    node_comp, seat_comp : int arrays (n,), (S,)
        Connected component of each node and of each seat's edge: a node in its seat's
        component has a finite value.
    per_m : float
        Units of the weight per metre of straight line for the first limit (1 for metres; for
        travel times the typical minutes per metre).

    ``field.at(rows, nodes)`` gives the value of each pair; ``field[rows]`` (an int, a slice,
    an index or boolean array) the full rows, as an (k, n) array, for checks and small districts.
    """

    def __init__(self, graph: sp.spmatrix, sources: np.ndarray, n_nodes: int, *,
                 node_xy: np.ndarray, seat_xy: np.ndarray, node_comp: np.ndarray,
                 seat_comp: np.ndarray, per_m: float = 1.0):
        g = sp.csr_matrix(graph)
        self._graph = symmetric(g)
        self.sources = np.asarray(sources, dtype=np.int64)
        self._core = CoreGraph(self._graph, self.sources[self.sources >= 0])
        self.n_nodes = int(n_nodes)
        self._node_xy = np.asarray(node_xy, dtype="float64")
        self._seat_xy = np.asarray(seat_xy, dtype="float64")
        self._node_comp = np.asarray(node_comp)
        self._seat_comp = np.asarray(seat_comp)
        self._per_m = float(per_m)
        #: no path is longer than all edges together: a limit past this is no limit
        self._total = float(g.sum())
        #: searches run so far and how often a limit was doubled (for benchmarks and tests)
        self.searches = 0
        self.widened = 0

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.sources), self.n_nodes

    def __getitem__(self, key) -> np.ndarray:
        rows = np.arange(len(self.sources))[key]
        return self.full(np.atleast_1d(rows)) if np.ndim(rows) else self.full(np.array([rows]))[0]

    def full(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(len(rows), n_nodes) values of every node from the seats ``rows`` (all by default):
        unbounded searches, for checks and small districts."""
        rows = np.arange(len(self.sources)) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.full((len(rows), self.n_nodes), np.inf)
        on = self.sources[rows] >= 0
        if on.any():
            self.searches += int(on.sum())
            out[on] = dijkstra(self._graph, directed=True, indices=self.sources[rows[on]])[:, :self.n_nodes]
        return out

    def at(self, rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Value of each pair (seat row, node); inf for a row < 0, a seat off the network or a
        node its seat cannot reach."""
        rows = np.asarray(rows, dtype=np.int64)
        nodes = np.asarray(nodes, dtype=np.int64)
        out = np.full(rows.shape, np.inf)
        ok = rows >= 0
        ok[ok] = self.sources[rows[ok]] >= 0
        if not ok.any():
            return out
        pos = np.flatnonzero(ok)
        r, nd = rows[pos], nodes[pos]
        seat_rows, inv = np.unique(r, return_inverse=True)
        first = first_limits(len(seat_rows), inv, self._node_xy[nd], self._seat_xy[r], self._per_m)
        same = self._node_comp[nd] == self._seat_comp[r]
        for rnd, done, at, d, _ in bounded_search(self._core, self.sources[seat_rows], first, inv,
                                                  nd, same, total=self._total):
            self.searches += int((at >= 0).sum())
            self.widened += rnd > 0
            sel = np.flatnonzero(np.isin(inv, done))
            out[pos[sel]] = d[at[inv[sel]], nd[sel]]
        return out


def first_limits(n_sources: int, row: np.ndarray, node_xy: np.ndarray, source_xy: np.ndarray,
                 per_m: float) -> np.ndarray:
    """The first limit of each source's search: :data:`DETOUR` times the straight line to the
    farthest node asked of it, plus :data:`MARGIN_M`, in weight units (``per_m`` per metre).
    ``row``: the source of each pair; ``node_xy``, ``source_xy``: the pair's two ends."""
    far = np.zeros(n_sources)
    np.maximum.at(far, row, np.hypot(*(np.asarray(node_xy) - np.asarray(source_xy)).T))
    return (DETOUR * far + MARGIN_M) * per_m


def symmetric(graph: sp.spmatrix) -> sp.csr_matrix:
    """Both directions of an upper-triangle graph, for searches with ``directed=True`` (a
    search with ``directed=False`` transposes the graph on every call)."""
    g = sp.csr_matrix(graph)
    return (g + g.T).tocsr()


class CoreGraph:
    """A symmetric graph with its pendant trees peeled off, for Dijkstra searches that give
    :func:`scipy.sparse.csgraph.dijkstra`'s distances and predecessors over the whole graph.

    A node that is not ``kept`` and has at most one neighbour left is peeled (level by level,
    leaves first), remembering that neighbour (its parent) and the edge weight. What is left
    (the core: the cycles, the paths between them and the kept nodes) is searched; a peeled
    node is reached only through its parent, so its distance is the parent's plus the edge
    weight (the sum Dijkstra forms, so the same float) when that is within the limit (Dijkstra
    reaches a node when its distance is at most the limit), else inf, and its predecessor the
    parent. Nodes of a tree holding no kept node get inf (no source reaches them).
    """

    def __init__(self, graph: sp.csr_matrix, kept: np.ndarray):
        g = sp.csr_matrix(graph)
        n = g.shape[0]
        self.graph, self.n = g, n
        row = np.repeat(np.arange(n), np.diff(g.indptr))
        off = g.indices != row  # a loop road leads nowhere
        deg = np.bincount(row[off], minlength=n)
        pinned = np.zeros(n, dtype=bool)
        pinned[np.asarray(kept, dtype=np.int64)] = True
        alive = np.ones(n, dtype=bool)
        self.levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (nodes, parents, weights)
        leaves = np.flatnonzero((deg <= 1) & ~pinned)
        while len(leaves):
            alive[leaves] = False
            sub = g[leaves]
            r = np.repeat(np.arange(len(leaves)), np.diff(sub.indptr))
            live = alive[sub.indices] & (sub.indices != leaves[r])
            parent = np.full(len(leaves), -1, dtype=np.int64)
            weight = np.zeros(len(leaves))
            parent[r[live]] = sub.indices[live]
            weight[r[live]] = sub.data[live]
            self.levels.append((leaves, parent, weight))
            p = parent[parent >= 0]
            np.subtract.at(deg, p, 1)
            p = np.unique(p)
            leaves = p[(deg[p] <= 1) & ~pinned[p] & alive[p]]
        self.core = np.flatnonzero(alive)
        self.index = np.full(n, -1, dtype=np.int64)
        self.index[self.core] = np.arange(len(self.core))
        self.core_graph = g[self.core][:, self.core].tocsr() if len(self.levels) else g
        self.shape = g.shape

    def sum(self) -> float:
        return float(self.graph.sum())

    def dijkstra(self, indices: np.ndarray, limit: float = np.inf, return_predecessors: bool = False):
        """``scipy.sparse.csgraph.dijkstra(graph, directed=True, indices=indices, limit=limit,
        return_predecessors=...)`` (``indices``: kept nodes), over the core."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.levels:
            return dijkstra(self.graph, directed=True, indices=indices, limit=limit,
                            return_predecessors=return_predecessors)
        res = dijkstra(self.core_graph, directed=True, indices=self.index[indices], limit=limit,
                       return_predecessors=return_predecessors)
        dc, pc = res if return_predecessors else (res, np.empty(0, dtype=np.int32))
        dist = np.full((len(indices), self.n), np.inf)
        dist[:, self.core] = dc
        del dc
        pred = None
        if return_predecessors:
            pred = np.full((len(indices), self.n), -9999, dtype=pc.dtype)
            pred[:, self.core] = np.where(pc >= 0, self.core[np.maximum(pc, 0)], -9999)
            del pc
        for nodes, parent, weight in reversed(self.levels):  # from the core outwards
            has = parent >= 0
            if not has.any():
                continue
            x, p = nodes[has], parent[has]
            d = dist[:, p] + weight[has]
            reached = np.isfinite(d) & (d <= limit)
            dist[:, x] = np.where(reached, d, np.inf)
            if pred is not None:
                pred[:, x] = np.where(reached, p, -9999)
        return (dist, pred) if return_predecessors else dist


def bounded_search(graph: sp.csr_matrix | CoreGraph, sources: np.ndarray, limits: np.ndarray, row: np.ndarray,
                   node: np.ndarray, same: np.ndarray, *, total: float, predecessors: bool = False):
    """Dijkstra searches from ``sources``, each bounded by its limit, until every pair (``row``
    into ``sources``, ``node``) whose node is reachable (``same``: in the source's component)
    has its exact value: the sources with such a node left beyond the limit are searched again
    with twice their limit (no limit once it passes ``total``, the sum of all weights). Sources
    are searched in batches of about :data:`BATCH_CELLS` cells, those of like limits together.

    Yields one tuple per search: ``(round, done, at, dist, pred)``: the round of the batch
    (0 for its first search), the sources (positions in ``sources``) whose pairs are all exact
    after it, each searched source's row in ``dist`` (``at[k]``, -1 if not searched), the
    distances and the predecessors (None unless ``predecessors``). Within the limit a search is
    the unbounded search, so the values (and the shortest-path tree) of a done source are the
    unbounded ones. ``graph``: a :class:`CoreGraph` (or a matrix: its core graph is made here,
    keeping ``sources``).
    """
    if not isinstance(graph, CoreGraph):
        graph = CoreGraph(graph, np.asarray(sources)[np.asarray(sources) >= 0])
    limits = np.asarray(limits, dtype="float64").copy()
    order = np.argsort(limits, kind="stable")
    per_batch = max(1, BATCH_CELLS // graph.shape[0])
    for b in range(0, len(order), per_batch):
        todo = order[b:b + per_batch]
        rnd = 0
        while len(todo):
            limit = float(limits[todo].max())
            res = graph.dijkstra(sources[todo], limit=limit, return_predecessors=predecessors)
            dist, pred = res if predecessors else (res, None)
            at = np.full(len(sources), -1)
            at[todo] = np.arange(len(todo))
            sel = np.flatnonzero(at[row] >= 0)
            if np.isinf(limit):
                again = np.empty(0, dtype=np.int64)
            else:
                vals = dist[at[row[sel]], node[sel]]
                again = np.unique(row[sel][np.isinf(vals) & same[sel]])
            yield rnd, np.setdiff1d(todo, again), at, dist, pred
            todo, rnd = again, rnd + 1
            if len(todo):
                limits[todo] = 2.0 * np.maximum(limits[todo], 0.5)
                limits[todo[limits[todo] >= total]] = np.inf
