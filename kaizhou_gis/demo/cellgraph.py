"""Lean routing structures for the synthetic road build (memory and time ~ the district's cells).

:func:`cell_graph` builds the same grade-limited 8-connected cost graph as
:func:`kaizhou_gis.network.costpath.build_cell_graph` (same edges, same float costs, same order
of the neighbours in each row), but

* only the cost matrix (the road build never reads the edges' lengths or grades),
* only over the cells the roads may use (``mask``): nodes are those cells in row-major order, so a
  synthetic district's DEM margin and corners cost nothing, and Dijkstra's per-node arrays are
  as large as the district rather than its bounding grid,
* assembled straight into CSR with int32 indices, block of rows by block of rows (no COO
  triplets of the whole grid in int64).

The relabelling keeps the node order (cells in row-major order) and each row's neighbour order,
so scipy's Dijkstra makes the same heap operations in the same order: the predecessors, mapped
back to cells, are the ones the full-grid graph gives (the shipped layers rebuild bit for bit).

:class:`RoadCover` answers "is a road cell within the reach distance of this settlement?" for
every settlement while routes are added and removed one by one, rechecking only the settlements
near the cells that changed (the same cKDTree distance test as a query over all road cells).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from kaizhou_gis.demo.dem import Grid
from kaizhou_gis.network.costpath import step_length
from kaizhou_gis.terrain import cell_size_m

#: Neighbours of a cell in ascending flat-index order (the order of a sorted CSR row).
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
#: Cells per block while assembling the graph (bounds the temporary arrays).
BLOCK_CELLS = 250_000


@dataclass
class CellGraph:
    """Grade-limited cost graph over the allowed cells of a grid.

    ``matrix`` is the CSR cost matrix between nodes; ``node_of`` maps a flat cell index to its
    node (-1: not allowed), ``cell_of`` a node to its flat cell index.
    """

    matrix: csr_matrix
    node_of: np.ndarray
    cell_of: np.ndarray
    shape: tuple[int, int]


def _forward(z: np.ndarray, ok: np.ndarray, dx: np.ndarray, dy: np.ndarray, dr: int, dc: int,
             ra: int, rb: int, max_grade: float, slope_weight: float) -> np.ndarray:
    """Cost of the edge from each cell of rows [ra, rb) to its (dr, dc) neighbour (NaN: none).

    The arithmetic is :func:`costpath.build_cell_graph`'s, element by element.
    """
    nrow, ncol = z.shape
    out = np.full((rb - ra, ncol), np.nan)
    rb_ = min(rb, nrow - dr)
    if rb_ <= ra:
        return out
    c0, c1 = max(0, -dc), ncol - max(0, dc)
    h = step_length(dx, dy, np.arange(ra, rb_), dr, dc)
    h2 = np.broadcast_to(h[:, None], (rb_ - ra, c1 - c0))
    a = (slice(ra, rb_), slice(c0, c1))
    b = (slice(ra + dr, rb_ + dr), slice(c0 + dc, c1 + dc))
    g = np.abs(z[b] - z[a]) / h2
    keep = ok[a] & ok[b] & (g <= max_grade)
    cost = h2 * (1.0 + slope_weight * g)
    out[: rb_ - ra, c0:c1] = np.where(keep, cost, np.nan)
    return out


def cell_graph(z: np.ndarray, grid: Grid, *, max_grade_pct: float, slope_weight: float,
               mask: np.ndarray) -> CellGraph:
    """The grade-limited cost graph of ``z`` over the cells where ``mask`` is True."""
    z = np.asarray(z, dtype="float64")
    nrow, ncol = z.shape
    ok = np.isfinite(z) & np.asarray(mask, dtype=bool)
    dx, dy = cell_size_m(grid.transform, "EPSG:4326", nrow)
    max_grade = max_grade_pct / 100.0
    cell_of = np.flatnonzero(ok)
    node_of = np.full(nrow * ncol, -1, dtype=np.int32)
    node_of[cell_of] = np.arange(len(cell_of), dtype=np.int32)
    n = len(cell_of)
    # np.empty pages are only resident once written: the unused tail costs no memory
    data = np.empty(8 * n, dtype=np.float64)
    indices = np.empty(8 * n, dtype=np.int32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    offsets = np.array([dr * ncol + dc for dr, dc in _NEIGHBOURS], dtype=np.int64)
    fill, node0 = 0, 0
    step = max(1, BLOCK_CELLS // max(ncol, 1))
    for r0 in range(0, nrow, step):
        r1 = min(r0 + step, nrow)
        nb = r1 - r0
        ra = max(r0 - 1, 0)
        fwd = {}
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            f = _forward(z, ok, dx, dy, dr, dc, ra, r1, max_grade, slope_weight)
            if r0 == 0:  # no row above the grid
                f = np.vstack([np.full((1, ncol), np.nan), f])
            fwd[dr, dc] = f  # row i of f is grid row r0 - 1 + i
        cost = np.full((nb, ncol, 8), np.nan)
        up, mid = slice(0, nb), slice(1, nb + 1)
        cost[:, 1:, 0] = fwd[1, 1][up, :-1]        # (r-1, c-1)
        cost[:, :, 1] = fwd[1, 0][up, :]           # (r-1, c)
        cost[:, :-1, 2] = fwd[1, -1][up, 1:]       # (r-1, c+1)
        cost[:, 1:, 3] = fwd[0, 1][mid, :-1]       # (r, c-1)
        cost[:, :, 4] = fwd[0, 1][mid, :]          # (r, c+1)
        cost[:, :, 5] = fwd[1, -1][mid, :]         # (r+1, c-1)
        cost[:, :, 6] = fwd[1, 0][mid, :]          # (r+1, c)
        cost[:, :, 7] = fwd[1, 1][mid, :]          # (r+1, c+1)
        del fwd
        valid = ~np.isnan(cost)
        q = np.flatnonzero(valid)          # (cell in block) * 8 + neighbour slot, row-major
        m = len(q)
        data[fill:fill + m] = cost.ravel()[q]
        del cost
        indices[fill:fill + m] = node_of[r0 * ncol + (q >> 3) + offsets[q & 7]]
        del q
        counts = valid.sum(axis=2).ravel()[ok[r0:r1].ravel()]
        indptr[node0 + 1:node0 + 1 + len(counts)] = fill + np.cumsum(counts)
        fill += m
        node0 += len(counts)
    if fill < 2**31:
        indptr = indptr.astype(np.int32)
    matrix = csr_matrix((data[:fill], indices[:fill], indptr), shape=(n, n), copy=False)
    return CellGraph(matrix, node_of, cell_of, (nrow, ncol))


def search(graph: CellGraph, source_cells) -> np.ndarray:
    """Predecessor of each node on its cheapest path from the nearest source (-9999: none).

    One multi-source Dijkstra from the given flat cell indices (cells outside the graph are
    left out).
    """
    src = np.unique(np.asarray(source_cells, dtype=np.int64))
    src = src[(src >= 0) & (src < len(graph.node_of))]
    nodes = graph.node_of[src]
    nodes = nodes[nodes >= 0]
    if len(nodes) == 0:
        return np.full(graph.matrix.shape[0], -9999, dtype=np.int32)
    _, pred, _ = dijkstra(graph.matrix, directed=True, indices=nodes, return_predecessors=True,
                          min_only=True)
    return pred


def trace(graph: CellGraph, pred: np.ndarray, target_cell: int) -> list[int]:
    """Flat cell indices from the search's source to ``target_cell`` (source first); just the
    target when no path reaches it."""
    node = int(graph.node_of[int(target_cell)])
    if node < 0:
        return [int(target_cell)]
    nodes = [node]
    cur = node
    while pred[cur] >= 0:
        cur = int(pred[cur])
        nodes.append(cur)
    nodes.reverse()
    return graph.cell_of[nodes].tolist()


class RoadCover:
    """Which points have a road cell within ``reach`` metres, as road cells come and go.

    A road cell may be laid by several routes: it is present while at least one of them is.
    ``covered`` is kept exact: after each change only the points near the cells that appeared or
    disappeared are rechecked, with the same test as one query over all road cells (a cKDTree of
    cell centres, ``distance_upper_bound = reach``).
    """

    def __init__(self, grid: Grid, points_cells: np.ndarray, points_xy: np.ndarray, reach: float):
        self.grid = grid
        self.reach = float(reach)
        h, w = grid.shape
        self.count = np.zeros(h * w, dtype=np.int32)
        self.pts_xy = np.asarray(points_xy, dtype=float)
        self.pts_r, self.pts_c = np.divmod(np.asarray(points_cells, dtype=np.int64), w)
        dx, dy = grid.cell_m
        self.rad_r = int(np.ceil(self.reach / dy)) + 1
        self.rad_c = int(np.ceil(self.reach / dx)) + 1
        self.margin = self.reach + 2.0 * max(dx, dy)
        self.tree = cKDTree(self.pts_xy) if len(self.pts_xy) else None
        self.covered = np.zeros(len(self.pts_xy), dtype=bool)

    def xy(self, cells: np.ndarray) -> np.ndarray:
        r, c = np.divmod(np.asarray(cells, dtype=np.int64), self.grid.shape[1])
        return self.grid.to_xy_m(self.grid.lon[c], self.grid.lat[r])

    def add(self, cells, *, update: bool = True) -> None:
        cells = np.unique(np.asarray(cells, dtype=np.int64))
        new = cells[self.count[cells] == 0]
        self.count[cells] += 1
        if update and len(new):
            near = self._near(new)
            self.recheck(near[~self.covered[near]])

    def remove(self, cells) -> None:
        cells = np.unique(np.asarray(cells, dtype=np.int64))
        self.count[cells] -= 1
        gone = cells[self.count[cells] == 0]
        if len(gone):
            near = self._near(gone)
            self.recheck(near[self.covered[near]])

    def _near(self, cells: np.ndarray) -> np.ndarray:
        """Points within reach (plus a margin) of any of ``cells``."""
        if self.tree is None:
            return np.zeros(0, dtype=np.int64)
        hits = self.tree.query_ball_point(self.xy(cells), r=self.margin)
        if len(hits) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))

    def recheck(self, idx=None) -> None:
        """Recompute ``covered`` for the points ``idx`` (all points when None)."""
        idx = np.arange(len(self.pts_xy)) if idx is None else np.asarray(idx, dtype=np.int64)
        if len(idx) == 0:
            return
        h, w = self.grid.shape
        dr = np.arange(-self.rad_r, self.rad_r + 1)
        dc = np.arange(-self.rad_c, self.rad_c + 1)
        cells = []
        for j0 in range(0, len(idx), 2048):  # windows of a few thousand points at a time
            j = idx[j0:j0 + 2048]
            rr = (self.pts_r[j][:, None, None] + dr[None, :, None]).repeat(len(dc), axis=2)
            cc = (self.pts_c[j][:, None, None] + dc[None, None, :]).repeat(len(dr), axis=1)
            inb = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            flat = rr[inb] * w + cc[inb]
            cells.append(np.unique(flat[self.count[flat] > 0]))
        present = np.unique(np.concatenate(cells))
        if len(present) == 0:
            self.covered[idx] = False
            return
        d, _ = cKDTree(self.xy(present)).query(self.pts_xy[idx], distance_upper_bound=self.reach)
        self.covered[idx] = np.isfinite(d)
