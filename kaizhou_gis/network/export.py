"""The road graph for networkx / osmnx users (:meth:`RoadNetwork.to_networkx`, ``access.gpkg``
layer ``nodes``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

if TYPE_CHECKING:
    from kaizhou_gis.network.graph import RoadNetwork

#: Columns of the ``nodes`` layer of ``access.gpkg``, and the node attributes of the networkx graph
#: (but ``node_id``, the node key, and ``geometry``, given by ``x``/``y`` as in osmnx).
NODE_COLUMNS = ("node_id", "x", "y", "degree", "component", "paved_component", "dangle")


def nodes_frame(net: RoadNetwork) -> gpd.GeoDataFrame:
    """One row per graph node: ``node_id`` (the ``u``/``v`` of the edges), ``x``, ``y`` (work CRS
    metres), ``degree`` (edge ends at the node, a loop counting twice, as networkx and osmnx's
    ``street_count`` count), ``component``, ``paved_component`` (connected components of all
    roads / of the hardened roads only) and ``dangle`` (degree 1), with a point geometry."""
    n = net.nodes
    xy = shapely.get_coordinates(n.geometry.to_numpy())
    return gpd.GeoDataFrame({
        "node_id": n["node_id"].to_numpy(),
        "x": xy[:, 0], "y": xy[:, 1],
        "degree": n["degree"].to_numpy(),
        "component": n["component"].to_numpy(),
        "paved_component": n["paved_component"].to_numpy(),
        "dangle": n["dangle"].to_numpy(),
    }, geometry=n.geometry.to_numpy(), crs=n.crs)


def edge_osmid(road_id: pd.Series) -> np.ndarray:
    """osmnx's integer ``osmid`` of each edge's road: the OSM way id for roads read from
    OpenStreetMap (``road_id`` ``osm<way id>``), else a negative number, -(1 + the rank of the
    ``road_id`` among the network's other road ids), as OSM editors number objects not (yet) in
    OSM; equal for every edge of one road, never equal for two roads."""
    rid = road_id.astype(str)
    way = rid.str.extract(r"^osm(\d+)$", expand=False)
    out = np.zeros(len(rid), dtype=np.int64)
    is_osm = way.notna().to_numpy()
    out[is_osm] = way[is_osm].astype(np.int64).to_numpy()
    others = rid[~is_osm]
    out[~is_osm] = -1 - np.searchsorted(np.unique(others.to_numpy()), others.to_numpy())
    return out


def network_to_networkx(net: RoadNetwork, *, directed: bool = True):
    """The road graph as a networkx graph following osmnx's conventions.

    * ``directed=True`` (default): an ``nx.MultiDiGraph`` holding every edge in both directions
      (the roads carry no one-way information, so every road is two-way, as osmnx builds a
      two-way street): ``oneway`` False on every edge, ``reversed`` True on the copy running
      from ``v`` to ``u``, whose ``geometry`` is reversed so that it starts at its first node.
      This is the graph osmnx's functions take (``ox.convert.graph_to_gdfs``,
      ``ox.routing.shortest_path``, ``ox.convert.validate_graph`` passes).
      ``directed=False``: an ``nx.MultiGraph`` with each edge once, as stored (``u`` → ``v``).
    * Graph attributes: ``crs`` (the work CRS, a pyproj CRS), ``created_with``, ``simplified``
      (True: nodes are line ends and junctions only; the other vertices are in the geometry).
    * Nodes: keyed by ``node_id`` (int; the ``u``/``v`` of the edges and the ``node_id`` of
      ``access.gpkg`` layers ``nodes`` and ``dangles``), with ``x``, ``y`` (work CRS metres), the
      other columns of :func:`nodes_frame` (``degree``, ``component``, ``paved_component``,
      ``dangle``) and osmnx's ``street_count`` (= ``degree``: every road is two-way).
    * Edges: keyed ``(u, v, key)`` with ``key`` numbering the edges that join the same two nodes
      (from 0, in ``edge_id`` order; both directions of an edge share it, but the second copy of a
      loop, which takes the next free key). Attributes: osmnx's ``osmid`` (:func:`edge_osmid`),
      ``length`` (metres, = ``length_m``), ``geometry`` (LineString, work CRS), ``oneway``,
      ``reversed``, ``speed_kph`` and ``travel_time`` (seconds, = 60 × ``travel_min``), and every
      column of the ``edges`` layer of ``access.gpkg`` (``edge_id``, ``road_id``, ``road_class``,
      ``surface``, ``paved`` = hardened 硬化, ``length_m``, ``speed_kmh``, ``travel_min``,
      ``grade_pct``, ``max_grade_pct``, ``terrain_slope_deg``, ``terrain``, ``component``). As in
      osmnx, a missing value (NaN, e.g. grades without a DEM) is left out of the edge's data.

    ``nx.multi_source_dijkstra_path_length(G, sources, weight="length")`` gives the same
    distances as the access step's csgraph Dijkstra (``tests/test_network_nx.py`` checks it).
    """
    import networkx as nx  # imported on use: the analyses themselves do not need it

    from kaizhou_gis import __version__

    e = net.edges
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    key = pd.DataFrame({"a": lo, "b": hi}).groupby(["a", "b"]).cumcount().to_numpy()
    loop = u == v
    loops_at = pd.Series(loop.astype(np.int64)).groupby(u).transform("sum").to_numpy()
    attrs = e.drop(columns=["u", "v", "road_index", e.geometry.name], errors="ignore")
    attrs = attrs.assign(osmid=edge_osmid(e["road_id"]), length=e["length_m"].to_numpy(),
                         oneway=False, speed_kph=e["speed_kmh"].to_numpy(),
                         travel_time=e["travel_min"].to_numpy() * 60.0)
    geoms = e.geometry.to_numpy()
    g = nx.MultiDiGraph() if directed else nx.MultiGraph()
    g.graph.update(crs=CRS(e.crs) if e.crs is not None else None,
                   created_with=f"kaizhou-gis {__version__}", simplified=True)
    nodes = nodes_frame(net)
    for rec in nodes.drop(columns=nodes.geometry.name).to_dict(orient="records"):
        g.add_node(int(rec.pop("node_id")), **rec, street_count=rec["degree"])

    def data(rec: dict) -> dict:  # osmnx leaves a missing value out of the edge's data
        return {k: x for k, x in rec.items() if not (isinstance(x, float) and np.isnan(x))}

    records = attrs.to_dict(orient="records")
    for i, rec in enumerate(records):
        a, b, k = int(u[i]), int(v[i]), int(key[i])
        g.add_edge(a, b, key=k, **data(rec), reversed=False, geometry=geoms[i])
        if directed:
            back_key = k + int(loops_at[i]) if loop[i] else k
            g.add_edge(b, a, key=back_key, **data(rec), reversed=True,
                       geometry=shapely.reverse(geoms[i]))
    return g
