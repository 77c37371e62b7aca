"""Grade-limited least-cost paths on tiny synthetic DEMs where the right answer is obvious."""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin
from rasterio.windows import transform as window_transform

from kaizhou_gis.errors import OptionError
from kaizhou_gis.network.costpath import CostPath, build_cell_graph, grade_limited_paths, window_for

CRS_M = "EPSG:4545"  # metric: 100 m cells
TR = from_origin(500_000.0, 3_500_000.0, 100.0, 100.0)


def centre(r: int, c: int) -> tuple[float, float]:
    return (500_000.0 + (c + 0.5) * 100.0, 3_500_000.0 - (r + 0.5) * 100.0)


def ridge_dem() -> np.ndarray:
    """Flat 200 m plain, 21 x 21 cells, with a 600 m wall along column 10 except rows 18-20."""
    z = np.full((21, 21), 200.0)
    z[:18, 10] = 800.0
    return z


def test_path_detours_around_ridge_instead_of_crossing():
    z = ridge_dem()
    (p,) = grade_limited_paths(z, TR, CRS_M, [centre(2, 2)], [centre(2, 18)], max_grade_pct=12.0)
    assert isinstance(p, CostPath)
    # The straight line is 1.6 km; the detour goes down to the gap at row >= 18 and back.
    rows = [r for r, _ in p.cells]
    assert max(rows) >= 18
    assert all(z[r, c] == 200.0 for r, c in p.cells)
    assert p.length_m > 2 * 1500.0
    assert p.max_grade_pct == pytest.approx(0.0)
    assert p.coords[0] == centre(2, 2) and p.coords[-1] == centre(2, 18)
    assert p.source_index == 0


def test_no_step_exceeds_max_grade_on_slope():
    # A uniform 20 % ramp rising eastwards: going straight east is too steep at 12 %, so the
    # path must zig-zag diagonally / follow contours, each step at most 12 %.
    rr, cc = np.mgrid[0:30, 0:30]
    z = 100.0 + 20.0 * cc  # 20 m per 100 m = 20 %
    src, tgt = centre(0, 0), centre(29, 3)
    (p,) = grade_limited_paths(z, TR, CRS_M, [src], [tgt], max_grade_pct=15.0)
    assert p is not None
    assert p.max_grade_pct <= 15.0 + 1e-9
    for (r0, c0), (r1, c1) in zip(p.cells[:-1], p.cells[1:]):
        h = 100.0 * np.hypot(r1 - r0, c1 - c0)
        assert abs(z[r1, c1] - z[r0, c0]) / h <= 0.15 + 1e-9
    # Diagonal steps rise 20 m over 141 m (14.1 %), eastward steps 20 % are forbidden.
    steps = {(r1 - r0, c1 - c0) for (r0, c0), (r1, c1) in zip(p.cells[:-1], p.cells[1:])}
    assert (0, 1) not in steps


def test_walled_in_target_gives_none_and_others_still_found():
    z = np.full((15, 15), 300.0)
    z[5:10, 5:10] = 900.0
    z[6:9, 6:9] = 300.0  # a pit inside a 600 m wall
    paths = grade_limited_paths(z, TR, CRS_M, [centre(0, 0)], [centre(7, 7), centre(14, 14)],
                                max_grade_pct=12.0)
    assert paths[0] is None
    assert paths[1] is not None
    # The diagonal crosses the walled block, so the path goes round it: longer than the diagonal.
    assert all(z[r, c] == 300.0 for r, c in paths[1].cells)
    assert paths[1].length_m > 14 * 100.0 * np.sqrt(2.0) + 100.0


def test_nearest_of_several_sources_is_used():
    z = np.full((10, 30), 250.0)
    sources = [centre(5, 1), centre(5, 28)]
    a, b = grade_limited_paths(z, TR, CRS_M, sources, [centre(5, 4), centre(5, 25)],
                               max_grade_pct=10.0)
    assert a.source_index == 0 and b.source_index == 1
    assert a.length_m == pytest.approx(300.0)
    assert b.length_m == pytest.approx(300.0)
    assert a.cost == pytest.approx(300.0)


def test_slope_weight_makes_gentle_detour_cheaper():
    # A 9 % hump in the middle column range: with a strong slope penalty the path avoids it.
    z = np.full((11, 21), 100.0)
    z[0:9, 9:12] = 109.0  # 9 m rise over 100 m
    src, tgt = centre(3, 0), centre(3, 20)
    (flat_w,) = grade_limited_paths(z, TR, CRS_M, [src], [tgt], max_grade_pct=12.0, slope_weight=0.0)
    (steep_w,) = grade_limited_paths(z, TR, CRS_M, [src], [tgt], max_grade_pct=12.0, slope_weight=200.0)
    assert flat_w.length_m == pytest.approx(2000.0)
    assert max(r for r, _ in steep_w.cells) >= 9  # went round the hump at rows 9-10
    assert steep_w.max_grade_pct == pytest.approx(0.0)


def test_nodata_and_mask_are_impassable():
    z = np.full((9, 9), 200.0)
    z[:, 4] = -32768
    (p,) = grade_limited_paths(z, TR, CRS_M, [centre(4, 0)], [centre(4, 8)], max_grade_pct=12.0,
                               nodata=-32768)
    assert p is None
    z2 = np.full((9, 9), 200.0)
    mask = np.ones_like(z2, dtype=bool)
    mask[:8, 4] = False
    (q,) = grade_limited_paths(z2, TR, CRS_M, [centre(0, 0)], [centre(0, 8)], max_grade_pct=12.0,
                               mask=mask)
    assert q is not None and (8, 4) in q.cells


def test_geographic_grid_uses_metres():
    # 3 arc-second grid at 31 N: a 10-cell eastward step is ~ 10 * 79.4 m, not 10 * 0.00083.
    tr = from_origin(108.0, 31.2, 1 / 1200, 1 / 1200)
    z = np.full((5, 12), 300.0)
    (p,) = grade_limited_paths(z, tr, "EPSG:4326", [(108.0 + 0.5 / 1200, 31.2 - 2.5 / 1200)],
                               [(108.0 + 10.5 / 1200, 31.2 - 2.5 / 1200)], max_grade_pct=12.0)
    assert 780.0 < p.length_m < 805.0


def test_window_for_margin_and_clipping():
    win = window_for([centre(10, 10)], 300.0, transform=TR, crs=CRS_M, shape=(21, 21))
    assert (win.row_off, win.col_off, win.height, win.width) == (7, 7, 7, 7)
    edge = window_for([centre(0, 0)], 1000.0, transform=TR, crs=CRS_M, shape=(21, 21))
    assert (edge.row_off, edge.col_off) == (0, 0)
    sub_tr = window_transform(win, TR)
    assert sub_tr.c == pytest.approx(500_700.0) and sub_tr.f == pytest.approx(3_499_300.0)
    with pytest.raises(OptionError):
        window_for([centre(1, 1)], -5.0, transform=TR, crs=CRS_M, shape=(21, 21))


def test_bad_options_raise():
    with pytest.raises(OptionError):
        build_cell_graph(np.zeros((3, 3)), TR, CRS_M, max_grade_pct=0.0)


@pytest.mark.parametrize("crs, tr", [(CRS_M, TR), ("EPSG:4326", from_origin(108.0, 31.5, 0.001, 0.001))])
def test_grid_cost_matrix_is_the_cell_graph_built_lean(crs, tr):
    """The lean CSR (costs only, built in row blocks) is entry for entry the matrix of
    build_cell_graph: same sparsity, same column order, the same float64 costs; step_attributes
    gives the length and grade build_cell_graph stores for each edge, in both directions."""
    from kaizhou_gis.network.costpath import grid_cost_matrix, step_attributes

    rng = np.random.default_rng(7)
    z = 200.0 + np.cumsum(rng.normal(0.0, 9.0, (23, 19)), axis=0)
    z[5, 7] = np.nan  # no data: no edge touches it
    z[12, 0] = 2000.0  # a spike: too steep on every side
    g = build_cell_graph(z, tr, crs, max_grade_pct=15.0, slope_weight=3.0)
    m = grid_cost_matrix(z, tr, crs, max_grade_pct=15.0, step_cost=lambda h, gr: h * (1.0 + 3.0 * gr),
                         rows_per_block=4)  # several blocks, one not full
    assert m.has_sorted_indices and m.indices.dtype == np.int32
    assert np.array_equal(m.indptr, g.matrix.indptr) and np.array_equal(m.indices, g.matrix.indices)
    assert np.array_equal(m.data, g.matrix.data)  # bit for bit
    assert 0 < m.nnz < 8 * z.size and m[5 * 19 + 7].nnz == 0 and m[:, 12 * 19].nnz == 0
    a = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    h, gr = step_attributes(z, tr, crs, a, m.indices)
    assert np.array_equal(h, np.asarray(g.length[a, m.indices]).ravel())
    assert np.array_equal(gr, np.asarray(g.grade[a, m.indices]).ravel())
    with pytest.raises(OptionError, match="not neighbours"):
        step_attributes(z, tr, crs, [0], [2])


def test_grid_cost_matrix_of_a_part_with_the_grid_cell_sizes_is_the_grid_matrix_there():
    """A part of a geographic grid built with the whole grid's cell sizes of its rows has the
    edges, and the edge costs to the last bit, of the whole grid's matrix between its cells;
    the part's own sizes (latitudes from its own transform) may differ in the last bits."""
    from rasterio.transform import Affine

    from kaizhou_gis.network.costpath import grid_cost_matrix
    from kaizhou_gis.terrain import cell_size_m

    rng = np.random.default_rng(5)
    z = np.round(rng.normal(size=(40, 50)).cumsum(axis=0).cumsum(axis=1) * 3.0 + 500.0)
    tr = from_origin(108.123, 31.456, 1 / 1200, 1 / 1200)
    cost = lambda h, g: h * (1.0 + 10.0 * g)  # noqa: E731
    whole = grid_cost_matrix(z, tr, "EPSG:4326", max_grade_pct=50.0, step_cost=cost)
    dx, dy = cell_size_m(tr, "EPSG:4326", z.shape[0])
    r0, r1, c0, c1 = 7, 31, 9, 44
    part = grid_cost_matrix(z[r0:r1, c0:c1], tr @ Affine.translation(c0, r0), "EPSG:4326",
                            max_grade_pct=50.0, step_cost=cost, cell_sizes=(dx[r0:r1], dy[r0:r1]))
    rr, cc = np.mgrid[r0:r1, c0:c1]
    cells = (rr * z.shape[1] + cc).ravel()
    sub = whole[cells][:, cells]
    assert part.nnz == sub.nnz > 0
    assert np.array_equal(part.indptr, sub.indptr) and np.array_equal(part.indices, sub.indices)
    assert np.array_equal(part.data, sub.data)  # bit for bit
    with pytest.raises(OptionError, match="cell_sizes"):
        grid_cost_matrix(z[r0:r1, c0:c1], tr, "EPSG:4326", max_grade_pct=50.0, step_cost=cost,
                         cell_sizes=(dx, dy))
