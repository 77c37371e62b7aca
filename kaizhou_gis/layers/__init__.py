"""Read the input layers, check them against the layer contract, reproject to the work CRS.

Only this package opens input paths. :func:`load_layers` returns a :class:`Layers` whose vector
layers are in the plan's work CRS (EPSG:4545 by default); the DEM stays in its own CRS and is
opened on demand with :meth:`Layers.open_dem`.

Inputs may be

* a GeoPackage holding the contract's layer names (``boundary``, ``townships``, ...), with the DEM
  next to it (``dem.tif``, any GDAL raster named ``dem.*``, SRTM ``*.hgt`` tiles, or a ``dem/``
  folder of tiles; several tiles are mosaicked on the fly by :func:`mosaic_vrt`);
* a folder holding such a GeoPackage and/or one file per layer named after the layer
  (``villages.shp``, ``roads.osm.pbf``, ``settlements.geojson``, ``townships.parquet``,
  ``dem.tif``); the only ``*.osm.pbf`` / ``*.osm`` / ``*.pbf`` file in the folder is the roads;
* a TOML file mapping layer names to files: ``villages = "村.shp"`` or
  ``villages = { path = "data.gpkg", layer = "cun", encoding = "GBK", crs = "EPSG:4490",
  coords = "gcj02" }`` (paths relative to the TOML file; ``dem`` may name a folder of tiles).

OpenStreetMap roads are read with pyosmium (:func:`read_osm_roads`): ways cut by the extract are
truncated (never bridged) or dropped and counted, non-vehicle classes left out and counted, an
extract larger than the district clipped to the boundary plus ``layers.osm_clip_margin_m``.
Surfaces become paved/unpaved through the plan's tables (:func:`classify_surfaces`).

:func:`check_layers` collects every problem of every layer and returns a :class:`LayerReport`;
:func:`load_layers` raises one :class:`~kaizhou_gis.errors.LayerError` listing them all.

Where each part lives:

* :mod:`~kaizhou_gis.layers.contract`: layer names, suffixes, the columns of every layer, road classes;
* :mod:`~kaizhou_gis.layers.model`: :class:`Layers` and :class:`LayerReport`;
* :mod:`~kaizhou_gis.layers.sources`: finding the files (folder, GeoPackage, TOML mapping, default layers);
* :mod:`~kaizhou_gis.layers.read`: reading vector files (text encodings, column aliases);
* :mod:`~kaizhou_gis.layers.osm`: OpenStreetMap roads;
* :mod:`~kaizhou_gis.layers.dem`: opening the DEM, tile mosaics, the district's window;
* :mod:`~kaizhou_gis.layers.columns`, :mod:`~kaizhou_gis.layers.geometry`,
  :mod:`~kaizhou_gis.layers.roads`: one layer's columns, geometries, road classes and surfaces;
* :mod:`~kaizhou_gis.layers.load`: :func:`check_layers` and :func:`load_layers`;
* :mod:`~kaizhou_gis.layers.crosschecks` and :mod:`~kaizhou_gis.layers.checks`: checks between
  layers and plausibility checks (also of the plan's values);
* :mod:`~kaizhou_gis.layers.leftout`: what a step left out, counted once for console and report.
"""
from __future__ import annotations

from kaizhou_gis.layers.columns import POOR_BASIS_ESTIMATED, POOR_BASIS_LAYER, estimate_poor_population
from kaizhou_gis.layers.contract import (
    DEFAULT_LAYER_FILES,
    DEFAULT_LAYERS_DIR,
    MAX_DEM_CELLS_IN_MEMORY,
    NONEMPTY_LAYERS,
    OPTIONAL_LAYERS,
    OSM_SUFFIXES,
    RASTER_SUFFIXES,
    ROAD_CLASSES,
    SCHEMA,
    VECTOR_LAYERS,
    VECTOR_SUFFIXES,
)
from kaizhou_gis.layers.dem import (
    DEM_WINDOW_PAD_CELLS,
    dem_window,
    dem_window_margin_m,
    mosaic_vrt,
    open_raster,
    window_vrt,
)
from kaizhou_gis.layers.load import canonical_order, check_layers, load_layers
from kaizhou_gis.layers.model import LayerReport, Layers
from kaizhou_gis.layers.osm import osm_roads_layer, read_osm_roads
from kaizhou_gis.layers.roads import classify_surfaces

# _resolve (layer name -> source) is what kaizhou_gis.batch uses to list a district's inputs
from kaizhou_gis.layers.sources import _resolve, default_layers_dir

__all__ = [
    "DEFAULT_LAYERS_DIR", "DEFAULT_LAYER_FILES", "DEM_WINDOW_PAD_CELLS", "MAX_DEM_CELLS_IN_MEMORY",
    "NONEMPTY_LAYERS", "OPTIONAL_LAYERS", "OSM_SUFFIXES", "POOR_BASIS_ESTIMATED", "POOR_BASIS_LAYER",
    "RASTER_SUFFIXES", "ROAD_CLASSES", "SCHEMA", "VECTOR_LAYERS", "VECTOR_SUFFIXES", "LayerReport",
    "Layers", "_resolve", "canonical_order", "check_layers", "classify_surfaces", "default_layers_dir",
    "dem_window", "dem_window_margin_m", "estimate_poor_population", "load_layers", "mosaic_vrt",
    "open_raster", "osm_roads_layer", "read_osm_roads", "window_vrt",
]
