"""Terrain from the DEM, and coordinate conversions.

* :mod:`~kaizhou_gis.terrain.sampling`: cell sizes in metres, Horn slope, windowed block reads,
  the point-to-cell rule (:func:`floor_cells`), elevation at points, local slope and relief;
* :mod:`~kaizhou_gis.terrain.zonal`: coverage-weighted elevation statistics of polygons;
* :mod:`~kaizhou_gis.terrain.coords`: GCJ-02 ↔ WGS84 (Chinese map coordinates).

Works for geographic DEMs (cell sizes converted to metres row by row on the ellipsoid) and for
projected ones. The read limits ``MAX_BLOCK_CELLS`` and ``MAX_WINDOW_CELLS`` are read from
:mod:`~kaizhou_gis.terrain.sampling` at call time: set them there.
"""
from kaizhou_gis.terrain.sampling import (
                                          cell_size_m,
                                          floor_cells,
                                          point_terrain,
                                          read_block,
                                          sample_elevation,
                                          slope_deg,
)
from kaizhou_gis.terrain.zonal import zonal_stats

__all__ = ["cell_size_m", "floor_cells", "point_terrain", "read_block", "sample_elevation", "slope_deg",
           "zonal_stats"]
