"""The road network: road lines → a noded graph with lengths, surfaces, grades and travel times.

* :mod:`~kaizhou_gis.network.graph`: :class:`RoadNetwork` and :func:`build_network` (nodes,
  edges, grades, components, dangles; the joining rules are in its docstring);
* :mod:`~kaizhou_gis.network.gaps`: digitizing gaps closed by moving line ends, the ``joins`` table;
* :mod:`~kaizhou_gis.network.grid`: :class:`DemGrid`, the DEM window held in memory, and
  :func:`terrain_class`;
* :mod:`~kaizhou_gis.network.export`: the graph for networkx / osmnx users and the ``nodes`` layer;
* :mod:`~kaizhou_gis.network.costpath`: grade-limited least-cost paths over the DEM cells.
"""
from kaizhou_gis.network.export import NODE_COLUMNS, edge_osmid, network_to_networkx, nodes_frame
from kaizhou_gis.network.graph import RoadNetwork, build_network, dangles_frame, joins_frame, network_settings
from kaizhou_gis.network.grid import DemGrid, terrain_class

__all__ = ["NODE_COLUMNS", "DemGrid", "RoadNetwork", "build_network", "dangles_frame", "edge_osmid",
           "joins_frame", "network_settings", "network_to_networkx", "nodes_frame", "terrain_class"]
