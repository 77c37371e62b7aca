"""Least-cost paths over a DEM with a maximum grade (road alignments that follow the terrain).

The DEM is turned into an 8-connected graph of its cells. An edge between two neighbouring cells
exists only when the grade between their centres, ``|dz| / horizontal distance``, is at most the
maximum grade; its cost is its horizontal length times ``1 + slope_weight * grade``. One
multi-source Dijkstra search (:func:`scipy.sparse.csgraph.dijkstra` with ``min_only=True``)
then gives, for every target, the cheapest path from whichever source is cheapest to reach.

Horizontal distances are in metres for geographic DEMs too: cell sizes are computed row by row on
the ellipsoid with :func:`kaizhou_gis.terrain.cell_size_m`.

Use :func:`window_for` to cut a sub-grid around the points of one search, so that the graph stays
small and the search local.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS
from rasterio.transform import Affine, rowcol
from rasterio.windows import Window
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import OptionError
from kaizhou_gis.network.grid import rowcol_cells
from kaizhou_gis.terrain.sampling import cell_size_m

log = logging.getLogger(__name__)

#: The four neighbour offsets (d_row, d_col) that, taken in both directions, make 8-connectivity.
_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass
class CostPath:
    """One least-cost path from a source to a target.

    Attributes
    ----------
    coords : list of (x, y)
        Vertices in the DEM's CRS, from the source to the target, slightly simplified; the first
        and last vertices are the given source and target points.
    length_m : float
        Horizontal length along the cell path, metres.
    cost : float
        Accumulated cost (metres weighted by the slope penalty).
    max_grade_pct : float
        Steepest grade of any step of the cell path, percent.
    source_index : int
        Index (into ``sources_xy``) of the source the path starts from.
    cells : list of (row, col)
        The cells of the path, source first (in the grid the search ran on).
    """

    coords: list[tuple[float, float]]
    length_m: float
    cost: float
    max_grade_pct: float
    source_index: int
    cells: list[tuple[int, int]] = field(default_factory=list, repr=False)

    def linestring(self) -> LineString:
        """The path as a shapely LineString (a degenerate one when source and target coincide)."""
        pts = self.coords if len(self.coords) > 1 else self.coords * 2
        return LineString(pts)


@dataclass
class CellGraph:
    """The grade-limited cell graph of one DEM grid (reusable for several searches).

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        Symmetric cost matrix; ``matrix[i, j]`` is the cost of stepping from cell i to cell j.
    length : scipy.sparse.csr_matrix
        Horizontal lengths (m) of the same edges.
    grade : scipy.sparse.csr_matrix
        Grades (fraction) of the same edges.
    shape : tuple of int
        (rows, cols) of the grid.
    """

    matrix: csr_matrix
    length: csr_matrix
    grade: csr_matrix
    shape: tuple[int, int]


def build_cell_graph(dem: np.ndarray, transform: Affine, crs, *, max_grade_pct: float,
                     slope_weight: float = 10.0, nodata=None,
                     mask: np.ndarray | None = None) -> CellGraph:
    """Build the 8-connected, grade-limited cost graph of a north-up DEM grid.

    Parameters
    ----------
    dem : ndarray (rows, cols)
        Elevations in metres.
    transform, crs
        Affine transform and CRS of the grid.
    max_grade_pct : float
        Edges steeper than this (percent) are left out.
    slope_weight : float
        Cost of an edge = length * (1 + slope_weight * grade), grade as a fraction.
    nodata : number, optional
        Cells holding this value (and non-finite cells) are impassable.
    mask : bool ndarray, optional
        True where travel is allowed; False cells are impassable.
    """
    if max_grade_pct <= 0:
        raise OptionError(f"costpath: max_grade_pct must be > 0 (got {max_grade_pct}); "
                          f"set e.g. links.max_grade_pct = 12 in the plan file.")
    if slope_weight < 0:
        raise OptionError(f"costpath: slope_weight must be >= 0 (got {slope_weight}).")
    z = np.asarray(dem, dtype="float64")
    if z.ndim != 2:
        raise OptionError(f"costpath: the DEM must be a 2-D array (got shape {z.shape}).")
    nrow, ncol = z.shape
    ok = np.isfinite(z)
    if nodata is not None and np.isfinite(nodata):
        ok &= z != nodata
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != z.shape:
            raise OptionError(f"costpath: mask shape {m.shape} differs from the DEM's {z.shape}.")
        ok &= m
    dx, dy = cell_size_m(transform, crs, nrow)
    max_grade = max_grade_pct / 100.0
    idx = np.arange(nrow * ncol, dtype=np.int64).reshape(nrow, ncol)
    rows_i, cols_i, costs, lengths, grades = [], [], [], [], []
    for dr, dc in _OFFSETS:
        r0, r1 = 0, nrow - dr
        c0, c1 = max(0, -dc), ncol - max(0, dc)
        a = (slice(r0, r1), slice(c0, c1))
        b = (slice(r0 + dr, r1 + dr), slice(c0 + dc, c1 + dc))
        # Horizontal distance between the two centres (metres), per row of the first cell.
        h = step_length(dx, dy, np.arange(r0, r1), dr, dc)
        h2 = np.broadcast_to(h[:, None], (r1 - r0, c1 - c0))
        both = ok[a] & ok[b]
        with np.errstate(invalid="ignore"):
            g = np.abs(z[b] - z[a]) / h2
        keep = both & (g <= max_grade)
        ia, ib = idx[a][keep], idx[b][keep]
        hk, gk = h2[keep], g[keep]
        ck = hk * (1.0 + slope_weight * gk)
        rows_i += [ia, ib]
        cols_i += [ib, ia]
        costs += [ck, ck]
        lengths += [hk, hk]
        grades += [gk, gk]
    n = nrow * ncol
    ri = np.concatenate(rows_i) if rows_i else np.zeros(0, np.int64)
    ci = np.concatenate(cols_i) if cols_i else np.zeros(0, np.int64)

    def mat(vals):
        v = np.concatenate(vals) if vals else np.zeros(0)
        return coo_matrix((v, (ri, ci)), shape=(n, n)).tocsr()

    return CellGraph(matrix=mat(costs), length=mat(lengths), grade=mat(grades), shape=(nrow, ncol))


#: The eight neighbours (d_row, d_col) of a cell in the order of their flat index (row-major), the
#: column order of a row of the canonical CSR matrix.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def step_length(dx: np.ndarray, dy: np.ndarray, rows: np.ndarray, dr, dc) -> np.ndarray:
    """Horizontal length (m) between the centres of the cells in ``rows`` and their neighbours at
    the offset ``(dr, dc)`` (one of ``_OFFSETS``, the same for all rows or one per row; ``dr`` 0
    or 1: the first cell is the upper one, or the left one in a row), from the cell sizes per row
    ``dx``, ``dy`` (:func:`kaizhou_gis.terrain.cell_size_m`): the one formula of every cell graph
    (also the synthetic road builder's, :mod:`kaizhou_gis.demo.cellgraph`)."""
    dr, dc = np.asarray(dr), np.asarray(dc)
    nxt = rows + dr
    side = (dy[rows] + dy[nxt]) / 2.0
    diag = np.hypot((dx[rows] + dx[nxt]) / 2.0, side)
    return np.where(dr == 0, dx[rows], np.where(dc == 0, side, diag))


def grid_cost_matrix(dem: np.ndarray, transform: Affine, crs, *, max_grade_pct: float,
                     step_cost, rows_per_block: int = 256,
                     cell_sizes: tuple[np.ndarray, np.ndarray] | None = None) -> csr_matrix:
    """The cost matrix of the 8-connected, grade-limited cell graph, built lean.

    The same graph as :func:`build_cell_graph` (edges whose terrain grade ``|dz| / h`` is at most
    ``max_grade_pct``, between finite cells), with each edge's cost ``step_cost(h, g)`` (``h``
    horizontal metres, ``g`` grade as a fraction, both float64 arrays; computed once per cell
    pair and used in both directions), as the canonical CSR matrix (sorted column indices, int32
    indices) that ``coo_matrix(...).tocsr()`` of the same entries gives, so a search on it is the
    same search. Only the cost is stored, 12 bytes per edge (the coordinate form held five
    int64/float64 arrays and three matrices), written in blocks of ``rows_per_block`` rows:
    besides the matrix, a first pass over the grid keeps one byte per cell (how many edges it
    has: each offset's mask computed once, counted on both its cells), and a block's
    temporaries (the column indices built as int32). :func:`step_attributes` gives the length and grade of
    the few steps of a traced path.

    ``cell_sizes``: the cell width and height (m) of each row of ``dem``, when ``dem`` is a
    part of a larger grid whose sizes were computed once (the sizes of its rows there, so the
    part's edges cost what they cost in the larger grid, to the last bit); by default
    :func:`~kaizhou_gis.terrain.cell_size_m` of ``transform``.
    """
    z = np.asarray(dem, dtype="float64")
    nrow, ncol = z.shape
    n = nrow * ncol
    if n >= 2**31 - 1:
        raise OptionError(f"costpath: a window of {n} cells is too large for one search.")
    dx, dy = cell_size_m(transform, crs, nrow) if cell_sizes is None else \
        (np.asarray(cell_sizes[0], dtype="float64"), np.asarray(cell_sizes[1], dtype="float64"))
    if len(dx) != nrow or len(dy) != nrow:
        raise OptionError(f"costpath: cell_sizes give {len(dx)} and {len(dy)} rows for a grid of {nrow}.")
    grid = _CostGrid(z, dx, dy, max_grade_pct / 100.0, step_cost)
    step = max(1, int(rows_per_block))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(grid.edge_counts(step).ravel(), out=indptr[1:])
    nnz = int(indptr[-1])
    data = np.empty(nnz, dtype="float64")
    indices = np.empty(nnz, dtype=np.int32)
    off = np.array([dr * ncol + dc for dr, dc in _NEIGHBOURS], dtype=np.int32)  # n < 2**31 - 1
    for r0 in range(0, nrow, step):
        r1 = min(nrow, r0 + step)
        b = grid.around(r0, r1).reshape(-1, 8)
        m = np.isfinite(b)
        lo, hi = int(indptr[r0 * ncol]), int(indptr[r1 * ncol])
        if int(m.sum()) != hi - lo:
            raise OptionError("costpath: step_cost gave a non-finite cost to an edge of the graph.")
        data[lo:hi] = b[m]
        indices[lo:hi] = (np.arange(r0 * ncol, r1 * ncol, dtype=np.int32)[:, None] + off[None, :])[m]
    index_dtype = np.int32 if nnz < 2**31 else np.int64
    return csr_matrix((data, indices, indptr.astype(index_dtype)), shape=(n, n))


@dataclass
class _CostGrid:
    """The grid of :func:`grid_cost_matrix`: elevations ``z``, each row's cell width ``dx`` and
    height ``dy`` (m), the largest grade (a fraction) and the step cost function."""

    z: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    max_grade: float
    step_cost: Callable

    def base(self, dr: int, dc: int, ra: int, rb: int, cost: bool) -> np.ndarray:
        """Edges from the cells of rows ra..rb-1 by offset (dr, dc) (one of ``_OFFSETS``): the
        keep mask, or the cost (NaN: no edge)."""
        z = self.z
        nrow, ncol = z.shape
        out = np.full((rb - ra, ncol), np.nan) if cost else np.zeros((rb - ra, ncol), dtype=bool)
        rb_ = min(rb, nrow - dr)
        c0, c1 = max(0, -dc), ncol - max(0, dc)
        if rb_ <= ra or c1 <= c0:
            return out
        za, zb = z[ra:rb_, c0:c1], z[ra + dr:rb_ + dr, c0 + dc:c1 + dc]
        h2 = np.broadcast_to(step_length(self.dx, self.dy, np.arange(ra, rb_), dr, dc)[:, None], za.shape)
        with np.errstate(invalid="ignore"):
            g = np.abs(zb - za) / h2
        keep = np.isfinite(za) & np.isfinite(zb) & (g <= self.max_grade)
        if not cost:
            out[:rb_ - ra, c0:c1] = keep
            return out
        part = np.full(za.shape, np.nan)
        part[keep] = self.step_cost(h2[keep], g[keep])
        out[:rb_ - ra, c0:c1] = part
        return out

    def around(self, r0: int, r1: int) -> np.ndarray:
        """(rows r0..r1-1, cols, 8): the costs of the edges towards the eight neighbours (NaN: no
        edge), from the base offsets of these rows and of the row above (the backward
        directions)."""
        ncol = self.z.shape[1]
        lo = max(0, r0 - 1)
        out = np.full((r1 - r0, ncol, 8), np.nan)
        for dr, dc in _OFFSETS:
            b = self.base(dr, dc, lo, r1, True)  # rows lo..r1-1
            k = _NEIGHBOURS.index((dr, dc))  # forward: stored on this cell
            out[:, :, k] = b[r0 - lo:]
            k = _NEIGHBOURS.index((-dr, -dc))  # backward: stored on the neighbour
            ra, rb = max(r0, dr), r1  # this cell's row r takes the neighbour's row r - dr
            ca, cb = max(0, dc), min(ncol, ncol + dc)
            if rb > ra and cb > ca:
                out[ra - r0:rb - r0, ca:cb, k] = b[ra - dr - lo:rb - dr - lo, ca - dc:cb - dc]
        return out

    def edge_counts(self, step: int) -> np.ndarray:
        """Edges per cell (int8): each base offset's mask once, ``step`` rows at a time, counted
        on its first cell and on the neighbour it leads to (the backward direction)."""
        nrow, ncol = self.z.shape
        counts = np.zeros((nrow, ncol), dtype=np.int8)
        for r0 in range(0, nrow, step):
            r1 = min(nrow, r0 + step)
            for dr, dc in _OFFSETS:
                b = self.base(dr, dc, r0, r1, False)
                counts[r0:r1] += b
                rb = min(r1 + dr, nrow)
                if rb <= r0 + dr:
                    continue
                src = b[:rb - r0 - dr]
                if dc >= 0:
                    counts[r0 + dr:rb, dc:] += src[:, :ncol - dc]
                else:
                    counts[r0 + dr:rb, :dc] += src[:, -dc:]
        return counts


def step_attributes(dem: np.ndarray, transform: Affine, crs, cells_a, cells_b) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal length (m) and terrain grade (fraction) of steps between neighbouring cells
    ``cells_a[i]`` → ``cells_b[i]`` (flat indices of ``dem``), the values
    :func:`build_cell_graph` / :func:`grid_cost_matrix` give their edges."""
    z = np.asarray(dem, dtype="float64")
    nrow, ncol = z.shape
    a = np.asarray(cells_a, dtype=np.int64)
    b = np.asarray(cells_b, dtype=np.int64)
    if len(a) == 0:
        return np.zeros(0), np.zeros(0)
    first = np.minimum(a, b)  # the upper (or left) cell of the pair
    second = np.maximum(a, b)
    r, c = np.divmod(first, ncol)
    r2, c2 = np.divmod(second, ncol)
    dr, dc = r2 - r, c2 - c
    if not (np.isin(dr, (0, 1)).all() and (np.abs(dc) <= 1).all() and ((dr != 0) | (dc != 0)).all()):
        raise OptionError("costpath.step_attributes: the cells of a step are not neighbours.")
    dx, dy = cell_size_m(transform, crs, nrow)
    h = step_length(dx, dy, r, dr, dc)
    # 2-D indexing: ``z`` may be a window of a larger grid (not contiguous), whose ravel()
    # would copy the whole window for a few steps
    g = np.abs(z[r2, c2] - z[r, c]) / h
    return h, g


def points_to_cells(points_xy, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Flat cell index of each (x, y) point; -1 for points outside the grid or not finite."""
    pts = np.asarray(points_xy, dtype="float64").reshape(-1, 2)
    out = np.full(len(pts), -1, dtype=np.int64)
    if len(pts) == 0:
        return out
    fin = np.isfinite(pts).all(axis=1)
    if fin.any():
        r, c = rowcol_cells(transform, pts[fin, 0], pts[fin, 1])
        inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
        flat = np.where(inside, r * shape[1] + c, -1)
        out[fin] = flat
    return out


def search(graph: CellGraph, source_cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One multi-source Dijkstra over ``graph`` from the given flat cell indices.

    Returns ``(cost, predecessors, nearest_source_cell)`` arrays over all cells; unreachable
    cells have cost ``inf``, predecessor -9999 and source -9999.
    """
    return search_matrix(graph.matrix, source_cells)


def search_matrix(matrix: csr_matrix, source_cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`search` on a cost matrix (e.g. from :func:`grid_cost_matrix`)."""
    src = np.unique(np.asarray(source_cells, dtype=np.int64))
    src = src[src >= 0]
    n = matrix.shape[0]
    if len(src) == 0:
        return np.full(n, np.inf), np.full(n, -9999, np.int32), np.full(n, -9999, np.int32)
    dist, pred, sources = dijkstra(matrix, directed=True, indices=src,
                                   return_predecessors=True, min_only=True)
    return dist, pred, sources


def trace(pred: np.ndarray, target_cell: int) -> list[int]:
    """Flat cell indices from the search's source to ``target_cell`` (source first)."""
    cells = [int(target_cell)]
    cur = int(target_cell)
    while pred[cur] >= 0:
        cur = int(pred[cur])
        cells.append(cur)
    cells.reverse()
    return cells


def _path_stats(graph: CellGraph, cells: list[int]) -> tuple[float, float]:
    if len(cells) < 2:
        return 0.0, 0.0
    a = np.asarray(cells[:-1])
    b = np.asarray(cells[1:])
    lengths = np.asarray(graph.length[a, b]).ravel()
    grades = np.asarray(graph.grade[a, b]).ravel()
    return float(lengths.sum()), float(grades.max() * 100.0)


def cell_centres(cells, transform: Affine, shape: tuple[int, int]) -> list[tuple[float, float]]:
    """(x, y) centres of flat cell indices."""
    cells = np.asarray(cells, dtype=np.int64)
    r, c = np.divmod(cells, shape[1])
    xs = transform.c + (c + 0.5) * transform.a + (r + 0.5) * transform.b
    ys = transform.f + (c + 0.5) * transform.d + (r + 0.5) * transform.e
    return list(zip(xs.tolist(), ys.tolist()))


def grade_limited_paths(dem: np.ndarray, transform: Affine, crs,
                        sources_xy: list[tuple[float, float]],
                        targets_xy: list[tuple[float, float]], *,
                        max_grade_pct: float, slope_weight: float = 10.0, nodata=None,
                        mask: np.ndarray | None = None,
                        simplify_cells: float = 0.5) -> list[CostPath | None]:
    """Cheapest grade-limited path to every target from the nearest (cheapest) source.

    Parameters
    ----------
    dem : ndarray (rows, cols)
        Elevations in metres, north-up grid.
    transform : Affine
        The grid's affine transform.
    crs
        The grid's CRS (geographic allowed; distances are geodesic metres per row).
    sources_xy, targets_xy : list of (x, y)
        Points in the DEM's CRS. Sources outside the grid or on impassable cells are ignored.
    max_grade_pct : float
        Steepest allowed grade between neighbouring cell centres, percent.
    slope_weight : float, default 10
        Cost of a step = length * (1 + slope_weight * grade), grade as a fraction: with 10, a 10 %
        grade doubles the cost of a metre.
    nodata : number, optional
        DEM value marking missing cells (impassable).
    mask : bool ndarray, optional
        True where travel is allowed.
    simplify_cells : float, default 0.5
        Douglas-Peucker tolerance of the returned coordinates, in cells (0 keeps every cell).

    Returns
    -------
    list of CostPath or None
        One entry per target, None where no feasible path exists (walled in by steep cells,
        outside the grid, or no usable source).
    """
    graph = build_cell_graph(dem, transform, crs, max_grade_pct=max_grade_pct,
                             slope_weight=slope_weight, nodata=nodata, mask=mask)
    return paths_on_graph(graph, transform, sources_xy, targets_xy,
                          simplify_cells=simplify_cells)


def paths_on_graph(graph: CellGraph, transform: Affine, sources_xy, targets_xy, *,
                   simplify_cells: float = 0.5) -> list[CostPath | None]:
    """As :func:`grade_limited_paths`, on a graph built once with :func:`build_cell_graph`."""
    shape = graph.shape
    src_cells = points_to_cells(sources_xy, transform, shape)
    tgt_cells = points_to_cells(targets_xy, transform, shape)
    n_out = int((src_cells < 0).sum())
    if n_out:
        log.warning("costpath: %d of %d sources lie outside the grid and are ignored",
                    n_out, len(src_cells))
    dist, pred, nearest = search(graph, src_cells)
    src_of_cell: dict[int, int] = {}
    for i, c in enumerate(src_cells.tolist()):
        if c >= 0 and c not in src_of_cell:
            src_of_cell[c] = i
    tol = simplify_cells * float(np.hypot(transform.a, transform.e)) / np.sqrt(2.0)
    sources_xy = [tuple(map(float, p)) for p in sources_xy]
    out: list[CostPath | None] = []
    for t, cell in enumerate(tgt_cells.tolist()):
        if cell < 0 or not np.isfinite(dist[cell]):
            out.append(None)
            continue
        cells = trace(pred, cell)
        s_idx = src_of_cell.get(int(nearest[cell]), src_of_cell.get(cells[0], -1))
        length, max_grade = _path_stats(graph, cells)
        coords = cell_centres(cells, transform, shape)
        coords[0] = sources_xy[s_idx]
        tx, ty = targets_xy[t]
        coords[-1] = (float(tx), float(ty))
        if len(coords) > 2 and tol > 0:
            coords = list(LineString(coords).simplify(tol, preserve_topology=False).coords)
        rc = [divmod(c, shape[1]) for c in cells]
        out.append(CostPath(coords=[(float(x), float(y)) for x, y in coords], length_m=length,
                            cost=float(dist[cell]), max_grade_pct=max_grade,
                            source_index=int(s_idx), cells=rc))
    return out


def window_for(points_xy, margin_m: float, *, transform: Affine, crs,
               shape: tuple[int, int]) -> Window:
    """The grid window covering the points plus ``margin_m`` metres on every side.

    Parameters
    ----------
    points_xy : list of (x, y)
        Points in the grid's CRS.
    margin_m : float
        Margin in metres (converted to degrees at the points' latitude for geographic grids).
    transform, crs, shape
        The full grid's transform, CRS and (rows, cols).

    Returns
    -------
    rasterio.windows.Window
        Clipped to the grid; use ``rasterio.windows.transform(window, transform)`` for its
        transform and ``array[window.toslices()]`` for its cells.
    """
    pts = np.asarray(points_xy, dtype="float64").reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise OptionError("costpath.window_for: no finite points given.")
    if margin_m < 0:
        raise OptionError(f"costpath.window_for: margin_m must be >= 0 (got {margin_m}).")
    crs = CRS(crs)
    xmin, ymin = pts.min(axis=0)
    xmax, ymax = pts.max(axis=0)
    if crs.is_geographic:
        lat = float(np.clip(np.abs(pts[:, 1]).max(), 0, 89.0))
        mx = margin_m / (111_320.0 * np.cos(np.radians(lat)))
        my = margin_m / 110_574.0
    else:
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        mx = my = margin_m / unit
    r_a, c_a = rowcol(transform, [xmin - mx, xmax + mx], [ymax + my, ymin - my], op=np.floor)
    r0, r1 = sorted(int(v) for v in r_a)
    c0, c1 = sorted(int(v) for v in c_a)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1 + 1, shape[0]), min(c1 + 1, shape[1])
    if r1 <= r0 or c1 <= c0:
        raise OptionError("costpath.window_for: the points and margin lie outside the grid.")
    return Window(c0, r0, c1 - c0, r1 - r0)


def reproject_points(points_xy, src_crs, dst_crs) -> list[tuple[float, float]]:
    """Convenience: (x, y) points from one CRS to another (always x=lon/easting first)."""
    tr = transformer(src_crs, dst_crs)
    pts = np.asarray(points_xy, dtype="float64").reshape(-1, 2)
    x, y = tr.transform(pts[:, 0], pts[:, 1])
    return list(zip(np.asarray(x).tolist(), np.asarray(y).tolist()))
