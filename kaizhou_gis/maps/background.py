"""The offline background of the HTML maps: a hillshade of the DEM as an image overlay."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np

from kaizhou_gis.maps import hillshade as hs

log = logging.getLogger(__name__)

@dataclass
class Background:
    """A hillshade image overlay (PNG bytes) and the bounds it covers, in the map CRS."""

    png: bytes
    bounds: tuple[float, float, float, float]
    shade: np.ndarray  # lon/lat rows (for the PNG maps)
    bounds_lonlat: tuple[float, float, float, float]


def make_background(dem, bounds_lonlat: tuple[float, float, float, float], *, width_px: int,
                    inside: gpd.GeoSeries | None, basemap: str, azimuth_deg: float,
                    altitude_deg: float) -> Background | None:
    """Hillshade of the DEM for a lon/lat box, as an overlay PNG (Web-Mercator rows).

    ``dem`` is the open DEM (a rasterio dataset; None: no background); the sun is at
    ``azimuth_deg``/``altitude_deg`` (``maps.hillshade_*`` of the plan); outside ``inside`` (any
    CRS) the relief is faded. None when the DEM cannot be read there.
    """
    if dem is None:
        return None
    try:
        h = hs.read_hillshade(dem, bounds_lonlat, width_px=width_px, azimuth_deg=float(azimuth_deg),
                              altitude_deg=float(altitude_deg))
    except Exception as e:
        log.warning("maps: no hillshade (%s)", e)
        return None
    if h is None:
        return None
    mask = None
    if inside is not None and len(inside):
        from rasterio.features import geometry_mask
        from rasterio.transform import from_bounds
        t = from_bounds(*h.bounds, h.shade.shape[1], h.shade.shape[0])
        geoms = [g for g in inside.to_crs(4326).geometry if g is not None and not g.is_empty]
        if geoms:
            mask = geometry_mask(geoms, out_shape=h.shade.shape, transform=t, invert=True)
    png = hs.shade_to_png(h.shade, h.bounds, inside=mask)
    b = h.bounds
    if basemap == "gaode":
        from kaizhou_gis.terrain.coords import wgs84_to_gcj02
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        gx, gy = wgs84_to_gcj02(cx, cy)
        dx, dy = float(gx) - cx, float(gy) - cy
        b = (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
    return Background(png=png, bounds=b, shade=h.shade, bounds_lonlat=h.bounds)


def hillshade_sun(cfg) -> dict[str, float]:
    """The sun of the hillshade from the plan's ``maps`` section, as keyword arguments of
    :func:`make_background`."""
    return {"azimuth_deg": float(cfg["hillshade_azimuth_deg"]),
            "altitude_deg": float(cfg["hillshade_altitude_deg"])}
