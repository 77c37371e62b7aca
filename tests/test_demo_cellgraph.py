"""The demo build's lean routing structures give the answers of the straightforward ones.

``demo.cellgraph.cell_graph`` must be ``network.costpath.build_cell_graph``'s cost matrix
restricted to the allowed cells (same edges, same float costs, same row order), and Dijkstra on
it must give the same paths (the shipped layers depend on it bit for bit); ``RoadCover`` must
say what one cKDTree query over all road cells says after any sequence of routes added and
removed.
"""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin

from kaizhou_gis.demo import cellgraph
from kaizhou_gis.demo.dem import Grid
from kaizhou_gis.demo.roads import _reached
from kaizhou_gis.network import costpath


def _grid(h: int, w: int) -> Grid:
    return Grid(from_origin(108.0, 31.5, 1 / 1200, 1 / 1200), (h, w))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_cell_graph_is_costpaths_graph_on_the_allowed_cells(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(6, 45, 2))
    # whole metres (as in the int16 DEM): flat steps, so equal costs and ties exist
    z = np.round(rng.normal(0, 7, (h, w)).cumsum(axis=0))
    mask = rng.random((h, w)) > 0.2
    grid = _grid(h, w)
    monkeypatch.setattr(cellgraph, "BLOCK_CELLS", int(rng.integers(1, 4 * w)))  # many blocks
    new = cellgraph.cell_graph(z, grid, max_grade_pct=30, slope_weight=6, mask=mask)
    old = costpath.build_cell_graph(z, grid.transform, "EPSG:4326", max_grade_pct=30,
                                    slope_weight=6, mask=mask)
    assert (new.cell_of == np.flatnonzero(mask)).all()
    sub = old.matrix[new.cell_of][:, new.cell_of].tocsr()
    sub.sort_indices()
    assert old.matrix.nnz == sub.nnz == new.matrix.nnz > 0
    assert (new.matrix.indptr == sub.indptr).all() and (new.matrix.indices == sub.indices).all()
    assert (new.matrix.data == sub.data).all()  # the same floats, not just close
    src = rng.choice(new.cell_of, 3, replace=False)
    _, pred_old, _ = costpath.search(old, src)
    pred_new = cellgraph.search(new, src)
    for cell in range(h * w):
        assert cellgraph.trace(new, pred_new, cell) == costpath.trace(pred_old, cell)


def test_search_without_usable_sources_reaches_nothing():
    z = np.zeros((5, 6))
    mask = np.ones((5, 6), bool)
    mask[0, 0] = False
    g = cellgraph.cell_graph(z, _grid(5, 6), max_grade_pct=30, slope_weight=6, mask=mask)
    pred = cellgraph.search(g, [0, -1])  # a masked cell and no cell
    assert (pred == -9999).all()
    assert cellgraph.trace(g, pred, 7) == [7] and cellgraph.trace(g, pred, 0) == [0]


def test_road_cover_matches_a_full_query_after_every_change():
    rng = np.random.default_rng(7)
    h, w = 60, 70
    grid = _grid(h, w)
    pts_cells = rng.choice(h * w, 80, replace=False)
    r, c = np.divmod(pts_cells, w)
    pts_xy = grid.to_xy_m(grid.lon[c], grid.lat[r])
    routes = [rng.choice(h * w, int(rng.integers(1, 6))) for _ in range(40)]
    reach = 500.0
    cover = cellgraph.RoadCover(grid, pts_cells, pts_xy, reach)
    on: list[int] = []
    partial = 0
    for step in range(200):
        i = int(rng.integers(len(routes)))
        if i in on and rng.random() < 0.7:
            on.remove(i)
            cover.remove(routes[i])
        else:
            on.append(i)  # a route may be laid twice (two settlements sharing it)
            cover.add(routes[i])
        cells = np.unique(np.concatenate([routes[j] for j in on])) if on else np.zeros(0, np.int64)
        assert (cover.covered == _reached(grid, cells, pts_xy, reach)).all(), step
        partial += 0 < cover.covered.sum() < len(pts_cells)
    assert partial > 50  # the check ran on mixed states, not only "all" or "none"
