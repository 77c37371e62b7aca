"""Read the input layers, check them against the layer contract, reproject to the work CRS.

Only this module opens input paths. :func:`load_layers` returns a :class:`Layers` whose vector
layers are in the plan's work CRS (EPSG:4545 by default); the DEM stays in its own CRS and is
opened on demand with :meth:`Layers.open_dem`.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import geopandas as gpd
import rasterio

from kaizhou_gis.errors import LayerError

log = logging.getLogger(__name__)

#: Layer names of the contract, in the order they are checked and reported.
VECTOR_LAYERS = ("boundary", "townships", "township_seats", "villages", "settlements", "roads")
OPTIONAL_LAYERS = ("sites",)
DEFAULT_LAYERS_DIR = Path(__file__).resolve().parent.parent / "layers"


@dataclass
class Layers:
    """The input layers of one district, vector layers in the work CRS."""

    boundary: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    township_seats: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    settlements: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    dem_path: str
    sites: gpd.GeoDataFrame | None = None
    source: str = ""
    attribution: str = ""
    notes: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def open_dem(self) -> Iterator[rasterio.io.DatasetReader]:
        """Open the DEM for reading (windowed reads; nothing is loaded until asked)."""
        with rasterio.open(self.dem_path) as ds:
            yield ds

    def vector(self, name: str) -> gpd.GeoDataFrame | None:
        return getattr(self, name)

    @property
    def crs(self):
        return self.villages.crs
