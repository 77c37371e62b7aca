"""SeatField: seat-to-node values computed for the pairs asked for, with bounded searches, equal
the unbounded search whatever the detour (the limit is widened until every reachable node asked
for has its value)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from kaizhou_gis.access.seatfield import SeatField


def _field(n_extra_seats: int = 0):
    """A road that leaves node 0 at (0, 0), runs 10 km east, then back to node 40 at (100, 0):
    100 m from node 0 in a straight line, 20 km by road. Nodes 41-42: a separate piece. Seat 0
    at node 0 (virtual node 43), seat 1 at node 20 (virtual node 44), seat 2 off the network."""
    xs = np.r_[np.linspace(0, 10_000, 21), np.linspace(9_500, 100, 20)]
    ys = np.r_[np.zeros(21), np.full(20, 50.0)]
    node_xy = np.c_[np.r_[xs, 5_000.0, 5_100.0], np.r_[ys, 300.0, 300.0]]
    i = list(range(40)) + [41]
    j = list(range(1, 41)) + [42]
    w = np.hypot(*(node_xy[i] - node_xy[j]).T)
    n = len(node_xy)
    i += [n, n + 1]  # the seats' virtual nodes, a metre from their node
    j += [0, 20]
    w = np.r_[w, 1.0, 1.0]
    g = sp.csr_matrix((w, (i, j)), shape=(n + 3, n + 3))
    comp = np.r_[np.zeros(41, dtype=int), 1, 1]
    field = SeatField(g, np.array([n, n + 1, -1]), n, node_xy=node_xy,
                      seat_xy=np.array([[0.0, 0.0], [10_000.0, 0.0], [0.0, 0.0]]),
                      node_comp=comp, seat_comp=np.array([0, 0, -1]))
    exact = dijkstra(g, directed=False, indices=[n, n + 1])[:, :n]
    return field, exact, n


def test_pairs_equal_the_unbounded_search_after_widening():
    field, exact, n = _field()
    near = field.at(np.array([0, 0]), np.array([40, 1]))  # 100 m and 500 m in a straight line
    np.testing.assert_array_equal(near, exact[0, [40, 1]])
    assert near[0] > 19_000  # node 40 by road, not the 100 m straight line
    assert field.widened >= 1  # 2 x 100 m + 1 km did not reach it: the limit was doubled
    rows = np.array([0, 1, 1, 1, 2, -1, 0])
    nodes = np.array([20, 40, 0, 42, 3, 3, 41])
    got = field.at(rows, nodes)
    want = np.r_[exact[0, 20], exact[1, [40, 0, 42]], np.inf, np.inf, exact[0, 41]]
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got[3]) and np.isinf(got[6])  # another component: inf, and no endless widening


def test_whole_rows():
    field, exact, n = _field()
    np.testing.assert_array_equal(field.full(), np.r_[exact, np.full((1, n), np.inf)])
    np.testing.assert_array_equal(field[1], exact[1])
    np.testing.assert_array_equal(field[np.array([True, False, True])][0], exact[0])
    assert field.shape == (3, n)


def test_batches_of_one_seat_give_the_same(monkeypatch):
    from kaizhou_gis.access import seatfield

    monkeypatch.setattr(seatfield, "BATCH_CELLS", 1)  # one seat per search
    field, exact, n = _field()
    rows = np.repeat([0, 1], n)
    nodes = np.tile(np.arange(n), 2)
    np.testing.assert_array_equal(field.at(rows, nodes), exact.ravel())


def _tree_heavy_graph(seed: int, n: int = 600):
    """A random road-like graph: a few cycles (the core), many dead-end branches hanging off
    them and off each other, a loop road, and a separate tree holding no seat."""
    rng = np.random.default_rng(seed)
    i, j = [], []
    core = 40
    for k in range(core):  # a ring with a few chords
        i.append(k)
        j.append((k + 1) % core)
    for _ in range(8):
        a, b = rng.integers(0, core, 2)
        if a != b:
            i.append(a)
            j.append(b)
    for k in range(core, n - 30):  # branches: each node hangs off an earlier one
        i.append(k)
        j.append(int(rng.integers(0, k)))
    for k in range(n - 30, n):  # a separate tree
        i.append(k)
        j.append(int(rng.integers(n - 30, k)) if k > n - 30 else k)
    i.append(5)  # a loop road
    j.append(5)
    w = rng.uniform(10.0, 2_000.0, len(i))
    g = sp.coo_matrix((w, (np.minimum(i, j), np.maximum(i, j))), shape=(n, n)).tocsr()
    return g + g.T - sp.diags(g.diagonal())


def test_core_graph_searches_equal_the_whole_graph_searches():
    """Distances (to the bit) and predecessors of searches over the core with the pendant trees
    filled in equal scipy's Dijkstra over the whole graph: unbounded and bounded, from seats on
    the core and inside a branch."""
    from kaizhou_gis.access.seatfield import CoreGraph

    for seed in (1, 2, 3):
        g = sp.csr_matrix(_tree_heavy_graph(seed))
        seats = np.array([3, 17, 300, 555])  # 300, 555: inside branches
        cg = CoreGraph(g, seats)
        assert len(cg.core) < g.shape[0] / 3  # most nodes were peeled
        for limit in (np.inf, 500.0, 3_000.0, 12_000.0):
            want_d, want_p = dijkstra(g, directed=True, indices=seats, limit=limit, return_predecessors=True)
            got_d, got_p = cg.dijkstra(seats, limit=limit, return_predecessors=True)
            np.testing.assert_array_equal(got_d, want_d)
            np.testing.assert_array_equal(got_p, want_p)
            np.testing.assert_array_equal(cg.dijkstra(seats, limit=limit), want_d)
        assert np.isinf(got_d[:, -30:]).all()  # the seatless tree
