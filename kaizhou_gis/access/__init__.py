"""Road access: 通达 / 通畅 of every administrative village and settlement, the scorecard against the
plan's targets, and the road works that close the gaps.

Modules
-------
:mod:`~kaizhou_gis.access.points`
    Snapping points to road edges, the township seats' shortest paths, 通达/通畅 of points
    (:func:`analyse`); the method is described there.
:mod:`~kaizhou_gis.access.scoring`
    Shares against the plan's targets, overall and per township.
:mod:`~kaizhou_gis.access.options`
    A point's options: upgrade path and new link over the DEM.
:mod:`~kaizhou_gis.access.linksearch`
    The least-cost link searches over the DEM (hairpin cell graph, one search per group).
:mod:`~kaizhou_gis.access.works`
    Choosing the works (:func:`plan_works`, the covering heuristic described there).
:mod:`~kaizhou_gis.access.apply`
    Applying the works to the roads (:func:`apply_works`).
:mod:`~kaizhou_gis.access.step`
    The pipeline step ``access`` (``run`` and ``township_view``); the only module that reads the
    step context and the plan.
"""
from kaizhou_gis.access.apply import apply_works
from kaizhou_gis.access.points import (
                                       TIE_M,
                                       AccessResult,
                                       SeatPaths,
                                       analyse,
                                       canonical_pick,
                                       edge_tie_keys,
                                       point_access,
                                       seat_paths,
                                       snap_to_edges,
                                       target_group,
)
from kaizhou_gis.access.scoring import admin_village_mask, scorecard, township_table
from kaizhou_gis.access.step import read_dem, run, township_view
from kaizhou_gis.access.works import WorksPlan, plan_works

__all__ = ["TIE_M", "AccessResult", "SeatPaths", "WorksPlan", "admin_village_mask", "analyse", "apply_works",
           "canonical_pick", "edge_tie_keys", "plan_works", "point_access", "read_dem", "run", "scorecard",
           "seat_paths", "snap_to_edges", "target_group", "township_table", "township_view"]
