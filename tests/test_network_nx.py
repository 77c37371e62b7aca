"""The road graph for networkx users (``RoadNetwork.to_networkx``, ``access.gpkg`` layer ``nodes``).

networkx's multi-source Dijkstra on the exported graph must give the distances of the csgraph
Dijkstra the access step runs (``RoadNetwork.matrix`` + ``scipy.sparse.csgraph.dijkstra``, and
:func:`kaizhou_gis.access.seat_paths` with the township seats as virtual nodes), for every node,
on a hand-made network (parallel edges stored both ways, a loop, an overpass, a closed gap, a
multi-part road, a fragment) and on the shipped layers' network.
"""
from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import CRS as ProjCRS
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString, MultiLineString, Point

from kaizhou_gis import outputs
from kaizhou_gis.access import seat_paths
from kaizhou_gis.network import build_network, edge_osmid, network_settings, nodes_frame

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_400_000.0
SPEEDS = {"trunk": 60.0, "county": 40.0, "township": 30.0, "village": 20.0, "track": 10.0, "other": 20.0}
SHIPPED = Path(__file__).resolve().parent.parent / "layers" / "kaizhou.gpkg"
TOL = 1e-6  # metres (and seconds)


def _xy(*pts):
    return [(X0 + x, Y0 + y) for x, y in pts]


def synthetic_roads() -> gpd.GeoDataFrame:
    lines = {
        "R0": LineString(_xy((0, 0), (1000, 0), (2000, 0))),                 # paved trunk
        "R1": LineString(_xy((1000, 0), (1000, 800))),                       # unpaved spur
        "R2": LineString(_xy((0, 0), (500, 300), (1000, 0))),                # parallel to R0's 1st edge
        "R3": LineString(_xy((2000, 0), (1500, -100), (1000, 0))),           # parallel, drawn backwards
        "R4": LineString(_xy((2000, 0), (2300, 200), (2300, -200), (2000, 0))),  # a loop
        "R5": LineString(_xy((1500, -400), (1500, 400))),                    # overpass: no junction
        "R6": LineString(_xy((1003, 802), (1000, 1500))),                    # 3 m gap to R1's end
        "R7": MultiLineString([_xy((2000, 0), (2600, 0)), _xy((2600, 0), (2600, 500))]),
        "osm4242": LineString(_xy((2600, 500), (3100, 500))),                 # an OSM way
    }
    return gpd.GeoDataFrame({
        "road_id": list(lines),
        "road_class": ["trunk", "track", "village", "village", "village", "county", "track",
                       "township", "village"],
        "surface": ["paved", "gravel", "paved", "paved", "paved", "paved", "gravel", "paved", "paved"],
    }, geometry=list(lines.values()), crs=CRS)


@pytest.fixture(scope="module")
def synthetic():
    return build_network(synthetic_roads(), snap_tolerance_m=5.0, paved_surfaces=["paved"],
                         speed_kmh=SPEEDS)


@pytest.fixture(scope="module")
def shipped():
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.plan import load_plan

    assert SHIPPED.exists(), "the shipped layers (layers/kaizhou.gpkg) are part of the repository"
    plan = load_plan()
    layers = load_layers(None, plan=plan)
    net = build_network(layers.roads, **network_settings(plan))
    return plan, layers, net, net.to_networkx()


def node_at(net, x, y) -> int:
    d = shapely.distance(net.nodes.geometry.to_numpy(), Point(X0 + x, Y0 + y))
    assert d.min() < 1e-6, (x, y)
    return int(np.argmin(d))


def joint(net) -> int:
    """The node where R1's end and R6's start were joined across their 3 m gap."""
    d = shapely.distance(net.nodes.geometry.to_numpy(), Point(X0 + 1000, Y0 + 800))
    assert d.min() <= 5.0
    return int(np.argmin(d))


def assert_same_distances(nx_dist: dict, cs_dist: np.ndarray, n: int) -> int:
    """networkx's {node: distance} equals csgraph's row (inf = unreachable) on nodes 0..n-1;
    returns how many nodes were reached."""
    reached = {k: v for k, v in nx_dist.items() if isinstance(k, int)}
    assert set(reached) == set(np.flatnonzero(np.isfinite(cs_dist[:n])).tolist())
    got = np.array([reached[i] for i in sorted(reached)])
    want = cs_dist[:n][np.isfinite(cs_dist[:n])]
    assert np.abs(got - want).max(initial=0.0) <= TOL
    return len(reached)


def csgraph_min(net, weight, sources, mask=None):
    return dijkstra(net.matrix(np.maximum(weight, 1e-9), mask=mask), directed=False,
                    indices=sources, min_only=True)


def check_multi_source(net, G, sources):
    """Lengths, travel times and hardened-only lengths from ``sources``: networkx == csgraph."""
    e = net.edges
    L, T = e["length_m"].to_numpy(), e["travel_min"].to_numpy() * 60.0
    paved = e["paved"].to_numpy()
    reached = assert_same_distances(nx.multi_source_dijkstra_path_length(G, sources, weight="length"),
                                    csgraph_min(net, L, sources), net.n_nodes)
    assert_same_distances(nx.multi_source_dijkstra_path_length(G, sources, weight="travel_time"),
                          csgraph_min(net, T, sources), net.n_nodes)
    Gp = G.copy()  # hardened roads only (通畅)
    Gp.remove_edges_from([(a, b, k) for a, b, k, p in G.edges(keys=True, data="paved") if not p])
    assert_same_distances(nx.multi_source_dijkstra_path_length(Gp, sources, weight="length"),
                          csgraph_min(net, L, sources, mask=paved), net.n_nodes)
    return reached


def with_seats(G, net, sp):
    """``G`` plus each seat of :class:`SeatPaths` ``sp`` as a node on its edge (at ``along_m``),
    joined to both ends with the partial length and travel time, as seat_paths does."""
    G = G.copy()
    e = net.edges
    seats = []
    for row in sp.seats.itertuples():
        if not row.on_network:
            continue
        s = ("seat", row.township_code)
        k = int(row.edge)
        u, v = int(e["u"].iat[k]), int(e["v"].iat[k])
        frac = row.along_m / e["length_m"].iat[k]
        t = e["travel_min"].iat[k] * 60.0
        for node, f in ((u, frac), (v, 1.0 - frac)):
            G.add_edge(s, node, length=f * e["length_m"].iat[k], travel_time=f * t)
            if G.is_directed():
                G.add_edge(node, s, length=f * e["length_m"].iat[k], travel_time=f * t)
        seats.append(s)
    return G, seats


def check_seat_paths(net, G, seats_gdf, reach_m):
    """The access step's seat distances (min over the seats: the nearest seat) == networkx."""
    sp = seat_paths(net, seats_gdf, reach_distance_m=reach_m)
    G, sources = with_seats(G, net, sp)
    assert sources
    reached = assert_same_distances(nx.multi_source_dijkstra_path_length(G, sources, weight="length"),
                                    sp.dist_m.full().min(axis=0), net.n_nodes)
    assert_same_distances(nx.multi_source_dijkstra_path_length(G, sources, weight="travel_time"),
                          sp.time_min.full().min(axis=0) * 60.0, net.n_nodes)
    # and one seat alone: its own row
    first = sp.row_of[sources[0][1]]
    assert_same_distances(nx.single_source_dijkstra_path_length(G, sources[0], weight="length"),
                          sp.dist_m[first], net.n_nodes)
    return reached


# --------------------------------------------------------------------------------------------
# the synthetic network
# --------------------------------------------------------------------------------------------
def test_osmnx_conventions_on_the_synthetic_network(synthetic):
    net = synthetic
    G = net.to_networkx()
    assert isinstance(G, nx.MultiDiGraph)
    assert G.graph["crs"] == ProjCRS(CRS) and G.graph["simplified"] is True
    assert G.graph["created_with"].startswith("kaizhou-gis ")
    # nodes: (0,0) (1000,0) (2000,0) the joint (1000,1500) (1500,±400) (2600,0) (2600,500) (3100,500)
    assert G.number_of_nodes() == net.n_nodes == 10
    assert G.number_of_edges() == 2 * len(net.edges) == 2 * 11  # R0 and R7 have two edges each
    for n, d in G.nodes(data=True):
        assert type(n) is int and isinstance(d["x"], float) and isinstance(d["y"], float)
        assert Point(d["x"], d["y"]).equals(net.nodes.geometry.iat[n])
    # the loop R4 at (2000, 0): 2 ends of the loop + R0, R3, R7 = 5, as osmnx counts streets
    j = node_at(net, 2000, 0)
    assert G.nodes[j]["degree"] == G.nodes[j]["street_count"] == 5
    assert G.nodes[node_at(net, 1000, 1500)]["street_count"] == 1  # R6's far end
    assert G.nodes[joint(net)]["street_count"] == 2  # the 3 m gap between R1 and R6 is closed
    for a, b, d in G.edges(data=True):
        geom = d["geometry"]
        assert geom.geom_type == "LineString"
        assert d["length"] == pytest.approx(geom.length, abs=1e-9) and d["length"] == d["length_m"]
        # every edge's geometry starts at its first node and ends at its second, as in osmnx
        assert Point(geom.coords[0]).distance(Point(G.nodes[a]["x"], G.nodes[a]["y"])) < 1e-6
        assert Point(geom.coords[-1]).distance(Point(G.nodes[b]["x"], G.nodes[b]["y"])) < 1e-6
        assert d["oneway"] is False and isinstance(d["reversed"], bool)
        assert d["travel_time"] == pytest.approx(d["length"] / (d["speed_kph"] / 3.6))
        assert {"edge_id", "road_id", "road_class", "surface", "paved", "osmid"} <= set(d)
        assert type(d["osmid"]) is int
        assert "grade_pct" not in d  # no DEM: NaN is left out, as osmnx leaves out missing values
    # the two copies of each edge: same key (the loop's second copy takes the next key)
    by_edge = {}
    for a, b, k, d in G.edges(keys=True, data=True):
        by_edge.setdefault(d["edge_id"], []).append((a, b, k, d["reversed"]))
    assert sorted(by_edge) == list(range(len(net.edges)))
    loop_id = int(net.edges.index[net.edges["road_id"] == "R4"][0])
    for eid, copies in by_edge.items():
        (a1, b1, k1, r1), (a2, b2, k2, r2) = sorted(copies, key=lambda c: c[3])
        assert (r1, r2) == (False, True) and (a1, b1) == (b2, a2)
        assert (int(net.edges["u"].iat[eid]), int(net.edges["v"].iat[eid])) == (a1, b1)
        assert k2 == (k1 + 1 if eid == loop_id else k1)
    # parallel edges between (0,0) and (1000,0), and between (1000,0) and (2000,0) (R3 drawn
    # backwards): keys 0 and 1 in both directions
    a, b, c = node_at(net, 0, 0), node_at(net, 1000, 0), node_at(net, 2000, 0)
    assert sorted(G[a][b]) == sorted(G[b][a]) == [0, 1]
    assert sorted(G[b][c]) == sorted(G[c][b]) == [0, 1]
    assert sorted(d["road_id"] for d in G[c][b].values()) == ["R0", "R3"]
    # osmid: the OSM way id for OSM roads, else negative, one per road
    osmid = {d["road_id"]: d["osmid"] for _, _, d in G.edges(data=True)}
    assert osmid["osm4242"] == 4242
    assert sorted(v for k, v in osmid.items() if k != "osm4242") == list(range(-8, 0))
    assert len(set(osmid.values())) == len(osmid) == 9


def test_undirected_export_has_each_edge_once(synthetic):
    net = synthetic
    G = net.to_networkx(directed=False)
    assert isinstance(G, nx.MultiGraph) and not G.is_directed()
    assert G.number_of_nodes() == net.n_nodes and G.number_of_edges() == len(net.edges)
    assert sorted(d for _, _, d in G.edges(data="edge_id")) == list(range(len(net.edges)))
    assert dict(G.degree()) == dict(enumerate(net.nodes["degree"].tolist()))
    assert G.graph["crs"] == ProjCRS(CRS)


def test_multi_source_dijkstra_equals_csgraph_on_the_synthetic_network(synthetic):
    net = synthetic
    o, far = node_at(net, 0, 0), node_at(net, 1500, 400)  # the overpass road is its own component
    for G in (net.to_networkx(), net.to_networkx(directed=False)):
        reached = check_multi_source(net, G, [o, far])
        assert reached == net.n_nodes  # every component holds a source
        d = nx.multi_source_dijkstra_path_length(G, [o, far], weight="length")
        # hand-checked: the trunk is straight; the loop does not shorten anything; the overpass
        # is 400 m from its far end; R6's end is 1000 + 800 + |(1003,802)-(1000,1500)| (joined at R1's end)
        assert d[node_at(net, 2000, 0)] == pytest.approx(2000.0, abs=TOL)
        assert d[node_at(net, 1500, -400)] == pytest.approx(800.0, abs=TOL)
        assert d[node_at(net, 3100, 500)] == pytest.approx(2000 + 600 + 500 + 500, abs=TOL)
        jx, jy = shapely.get_coordinates(net.nodes.geometry.iat[joint(net)])[0] - (X0, Y0)
        assert d[node_at(net, 1000, 1500)] == pytest.approx(
            1000.0 + np.hypot(jx - 1000, jy) + np.hypot(1000 - jx, 1500 - jy), abs=TOL)
        # a source on one component only: the others are unreachable for both
        assert check_multi_source(net, G, [far]) == 2


def test_seat_paths_equal_networkx_with_the_seats_as_nodes(synthetic):
    seats = gpd.GeoDataFrame({"township_code": ["500154001", "500154002"], "name": ["甲", "乙"]},
                             geometry=[Point(X0 + 300, Y0 + 40), Point(X0 + 2600, Y0 + 260)], crs=CRS)
    reached = check_seat_paths(synthetic, synthetic.to_networkx(), seats, 500.0)
    assert reached == synthetic.n_nodes - 2  # all but the overpass road's two ends


def test_nodes_layer_and_edges_layer_round_trip_through_the_geopackage(synthetic, tmp_path):
    net = synthetic
    G = net.to_networkx()
    nodes = nodes_frame(net)
    assert list(nodes.columns[:-1]) == ["node_id", "x", "y", "degree", "component",
                                        "paved_component", "dangle"]
    path = outputs.write_gpkg({"edges": net.edges.drop(columns=["road_index"]), "nodes": nodes},
                              tmp_path / "access.gpkg")
    n = gpd.read_file(path, layer="nodes", engine="pyogrio")
    e = gpd.read_file(path, layer="edges", engine="pyogrio")
    assert len(n) == G.number_of_nodes() and len(e) == G.number_of_edges() // 2
    assert ProjCRS(n.crs) == ProjCRS(e.crs) == G.graph["crs"]
    assert set(e["u"]) | set(e["v"]) <= set(n["node_id"])
    assert n["node_id"].tolist() == sorted(G.nodes)
    for row in n.itertuples():  # the layer's values are the graph's node attributes
        d = G.nodes[row.node_id]
        assert (row.x, row.y, row.degree, row.component, row.paved_component, bool(row.dangle)) == \
               (d["x"], d["y"], d["degree"], d["component"], d["paved_component"], d["dangle"])
        assert row.geometry.equals(Point(row.x, row.y))
    deg = np.bincount(e["u"], minlength=len(n)) + np.bincount(e["v"], minlength=len(n))
    assert deg.tolist() == n["degree"].tolist()
    # a graph rebuilt from the two layers alone gives the same distances
    H = nx.MultiGraph()
    H.add_nodes_from(n["node_id"].tolist())
    H.add_weighted_edges_from(zip(e["u"].tolist(), e["v"].tolist(), e["length_m"].tolist(), strict=True),
                              weight="length")
    src = [node_at(net, 0, 0)]
    assert_same_distances(nx.multi_source_dijkstra_path_length(H, src, weight="length"),
                          csgraph_min(net, net.edges["length_m"].to_numpy(), src), net.n_nodes)


def test_edge_osmid_of_mixed_ids():
    import pandas as pd
    ids = pd.Series(["R2", "osm17", "L001", "R2", "osm5", "osmX", "R10"])
    assert edge_osmid(ids).tolist() == [-3, 17, -1, -3, 5, -4, -2]


def test_osmnx_takes_the_graph(synthetic):
    ox = pytest.importorskip("osmnx")  # a test extra; the export itself does not need osmnx
    net = synthetic
    G = net.to_networkx()
    ox.convert.validate_graph(G, strict=True)
    gn, ge = ox.convert.graph_to_gdfs(G)
    assert len(gn) == net.n_nodes and len(ge) == 2 * len(net.edges)
    assert ProjCRS(gn.crs) == ProjCRS(ge.crs) == ProjCRS(CRS)
    assert ox.stats.count_streets_per_node(G) == dict(enumerate(nodes_frame(net)["degree"].tolist()))
    # osmnx's undirected view merges the two copies of every edge (same geometry, reversed)
    assert ox.convert.to_undirected(G).number_of_edges() == len(net.edges)
    o, t = node_at(net, 0, 0), node_at(net, 3100, 500)
    route = ox.routing.shortest_path(G, o, t, weight="length")
    got = sum(min(d["length"] for d in G[a][b].values()) for a, b in pairwise(route))
    assert got == pytest.approx(csgraph_min(net, net.edges["length_m"].to_numpy(), [o])[t], abs=TOL)


# --------------------------------------------------------------------------------------------
# the shipped layers' network
# --------------------------------------------------------------------------------------------
def test_shipped_network_graph_round_trip(shipped):
    plan, layers, net, G = shipped
    assert G.number_of_nodes() == net.n_nodes == net.report["nodes"]
    assert G.number_of_edges() == 2 * net.report["edges"]
    assert G.graph["crs"] == ProjCRS(layers.roads.crs) == ProjCRS(plan["crs.work"])
    assert sum(d for _, _, d in G.edges(data="length")) / 2000.0 == pytest.approx(net.report["km_total"], abs=1e-3)
    paved_km = sum(d["length"] for _, _, d in G.edges(data=True) if d["paved"]) / 2000.0
    assert paved_km == pytest.approx(net.report["km_paved"], abs=1e-3)
    assert nx.number_connected_components(net.to_networkx(directed=False)) == net.report["components"]


def test_shipped_multi_source_dijkstra_equals_csgraph(shipped):
    _, _, net, G = shipped
    rng = np.random.default_rng(14)
    sources = sorted(rng.choice(net.n_nodes, size=12, replace=False).tolist())
    reached = check_multi_source(net, G, sources)
    assert reached > net.n_nodes * 0.9  # the main component holds most nodes


def test_shipped_seat_paths_equal_networkx(shipped):
    plan, layers, net, G = shipped
    reached = check_seat_paths(net, G, layers.township_seats, float(plan["access.reach_distance_m"]))
    assert reached > net.n_nodes * 0.9
