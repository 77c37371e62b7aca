"""The road network: road lines → a noded graph with lengths, surfaces, grades and travel times
(:mod:`~kaizhou_gis.network.graph`), and grade-limited least-cost paths over the DEM cells
(:mod:`~kaizhou_gis.network.costpath`)."""
from kaizhou_gis.network.graph import (
    NODE_COLUMNS,
    DemGrid,
    RoadNetwork,
    build_network,
    dangles_frame,
    edge_osmid,
    joins_frame,
    network_settings,
    network_to_networkx,
    nodes_frame,
    terrain_class,
)

__all__ = ["NODE_COLUMNS", "DemGrid", "RoadNetwork", "build_network", "dangles_frame", "edge_osmid",
           "joins_frame", "network_settings", "network_to_networkx", "nodes_frame", "terrain_class"]
