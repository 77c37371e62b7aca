"""Build the shipped Kaizhou default layers (``layers/kaizhou.gpkg`` + ``layers/dem.tif``).

Real parts (district boundary, township and village names and codes, township seats and their
elevations, plan-named poverty villages) come from the files in ``layers/sources/``; everything
else (DEM, township polygons, village and settlement locations and sizes, the other poverty
villages, roads) is synthesized deterministically from one seed and labelled ``synthetic`` in the
rows' ``source`` column. ``layers/README.md`` gives the provenance table.

``build_demo_layers(out_dir, seed=None, scale=1)`` is what ``kaizhou-gis demo-layers`` calls; the
same seed gives byte-identical files. ``scale=K`` builds a purely synthetic district K times
larger (villages, settlements, roads and DEM area) for benchmarks.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from kaizhou_gis.errors import OptionError

log = logging.getLogger(__name__)

#: Seed of the shipped layers.
DEFAULT_SEED = 20151231
#: Value of GDAL's OGR_CURRENT_DATE while writing (GeoPackage timestamps; byte-identical rebuilds).
FIXED_DATE = "2024-01-01T00:00:00Z"
GPKG_NAME = "kaizhou.gpkg"
DEM_NAME = "dem.tif"


@contextlib.contextmanager
def fixed_gdal_date() -> Iterator[None]:
    """Make GDAL stamp GeoPackages with :data:`FIXED_DATE` instead of the current time."""
    old = os.environ.get("OGR_CURRENT_DATE")
    os.environ["OGR_CURRENT_DATE"] = FIXED_DATE
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OGR_CURRENT_DATE", None)
        else:
            os.environ["OGR_CURRENT_DATE"] = old


def build_demo_layers(out_dir: str | Path, *, seed: int | None = None, scale: int = 1) -> list[Path]:
    """Build ``kaizhou.gpkg`` and ``dem.tif`` into ``out_dir``; returns the written paths.

    Parameters
    ----------
    out_dir : path
        Target folder (created if missing).
    seed : int, optional
        Random seed; default :data:`DEFAULT_SEED` (the shipped layers).
    scale : int, default 1
        1 builds the Kaizhou layers; K > 1 a synthetic district K times larger, without the real
        parts (benchmarks).
    """
    from kaizhou_gis.demo.build import build_layers, write_layers

    if not isinstance(scale, int) or scale < 1:
        raise OptionError(f"demo-layers: --scale must be a whole number >= 1 (got {scale!r}).")
    seed = DEFAULT_SEED if seed is None else int(seed)
    if seed < 0:
        raise OptionError(f"demo-layers: --seed must be >= 0 (got {seed}).")
    built = build_layers(seed=seed, scale=scale)
    with fixed_gdal_date():
        return write_layers(built, Path(out_dir))
