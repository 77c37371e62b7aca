"""Offline folium maps for reviewers (district) and township planners (one per township).

The maps step (:func:`run`, :mod:`kaizhou_gis.maps.step`) builds ``maps/overview.html``,
``maps/relocation.html``, ``maps/industry.html``, ``maps/access.html``, the A3 district sheet
``maps/overview.pdf`` and, for every township, ``maps/townships/<township_code>.html`` plus its A3
print sheet ``<township_code>.pdf`` and the same sheet as ``<township_code>.png``. It only builds
objects; :mod:`kaizhou_gis.outputs` writes them.

Where each part lives:

* :mod:`~kaizhou_gis.maps.data`: the data the maps show, gathered once per run (:func:`map_data`
  from the layers, plan and step results; :func:`gather` from a run's context);
* :mod:`~kaizhou_gis.maps.styles`: basemaps, titles, categories and colours, draw order;
* :mod:`~kaizhou_gis.maps.specs`: layer specs (compact JSON drawn by ``assets/kaizhou-maps.js``);
* :mod:`~kaizhou_gis.maps.contents`: which layers each map shows (:func:`map_layers`);
* :mod:`~kaizhou_gis.maps.page`: the folium page (legend, title, notes, search, attribution);
* :mod:`~kaizhou_gis.maps.background`, :mod:`~kaizhou_gis.maps.hillshade`: the offline hillshade
  background; :mod:`~kaizhou_gis.maps.mapassets`: the inlined Leaflet files;
* :mod:`~kaizhou_gis.maps.printmap`, :mod:`~kaizhou_gis.maps.sheet`,
  :mod:`~kaizhou_gis.maps.sheetlayout`, :mod:`~kaizhou_gis.maps.sheetrelief` (the shaded relief),
  :mod:`~kaizhou_gis.maps.sheetpng` (the PNG: the PDF rasterized),
  :mod:`~kaizhou_gis.maps.sheetpool`: the A3 print sheets;
* :mod:`~kaizhou_gis.maps.step`: the step wrapper, the only part that reads the run's options.

How the pages are made:

* every JS/CSS file is inlined (:mod:`kaizhou_gis.maps.mapassets`), the default background is a
  hillshade computed from the DEM (:mod:`kaizhou_gis.maps.hillshade`) and embedded as an image, and
  online tile layers (OpenStreetMap, Tianditu with a key, Gaode) are offered switched off;
* the layers are compact JSON specs drawn by ``assets/kaizhou-maps.js``; all text from the layers
  goes into the page with ``textContent`` (popups, tooltips, search) or through
  :func:`html.escape` (legend, title, notes, layer names, attribution), so names cannot inject
  markup or script; file names come from township codes only;
* geometries are simplified to the map's scale and coordinates rounded
  (``maps.simplify_*_m``, ``maps.coordinate_decimals``) to keep the pages within the size budget;
* a step that is unavailable or failed (access, relocation, industry) leaves its layers out and
  the page's notes panel says which layers are missing and why.
"""
from kaizhou_gis.maps.background import hillshade_sun, make_background
from kaizhou_gis.maps.contents import _settings, map_layers
from kaizhou_gis.maps.data import MapData, gather, gather_wgs84, map_data
from kaizhou_gis.maps.page import attribution_parts, build_map
from kaizhou_gis.maps.step import _bounds_of, run
from kaizhou_gis.maps.styles import (
    ACCESS_CATS,
    CATEGORY_COLORS,
    ELEV_COLORS,
    MAP_TITLES,
    POVERTY_CATS,
    ROAD_CATS,
    SITE_CATS,
    WORK_CATS,
)

# the names other modules and the tests use as ``maps.<name>``
__all__ = ["ACCESS_CATS", "CATEGORY_COLORS", "ELEV_COLORS", "MAP_TITLES", "POVERTY_CATS", "ROAD_CATS",
           "SITE_CATS", "WORK_CATS", "MapData", "_bounds_of", "_settings", "attribution_parts",
           "build_map", "gather", "gather_wgs84", "hillshade_sun", "make_background", "map_data",
           "map_layers", "run"]
