"""Hillshade images from the DEM, for map backgrounds that need no tiles.

:func:`hillshade` turns an elevation grid into shaded relief (0-1) with metric cell sizes, so a
geographic DEM is shaded correctly; :func:`read_hillshade` reads a window of the DEM for a lon/lat
box and shades it at about the DEM's resolution for an image of a given width;
:func:`to_web_mercator_rows` resamples the rows of a geographic image so that it lines up on a
Web-Mercator (Leaflet) map; :func:`shade_to_png` makes the bytes for an image overlay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.transform import from_bounds
from rasterio.windows import from_bounds as window_from_bounds

from kaizhou_gis.crs import transformer
from kaizhou_gis.terrain import cell_size_m
from kaizhou_gis.terrain.sampling import padded_bands


@dataclass
class Hillshade:
    """A shaded-relief image in EPSG:4326.

    ``shade`` is float 0-1 (NaN where the DEM has no data), north-up; ``bounds`` is
    (west, south, east, north) in degrees of the image's outer edges.
    """

    shade: np.ndarray
    bounds: tuple[float, float, float, float]


def hillshade(elevation: np.ndarray, transform, crs, *, azimuth_deg: float,
              altitude_deg: float, z_factor: float = 1.0, dtype="float64") -> np.ndarray:
    """Shaded relief in 0-1 of a north-up elevation grid; NaN where the elevation is NaN.

    Cell sizes come from :func:`kaizhou_gis.terrain.cell_size_m` (metres on the ellipsoid for a
    geographic grid). The illumination follows the usual cartographic model: a sun at
    ``azimuth_deg`` (clockwise from north) and ``altitude_deg`` above the horizon; a flat cell gets
    ``sin(altitude)``. Computed in float64 and returned as ``dtype`` (float32 halves the result's
    memory; the values are float64's, rounded).

    The grid is shaded in bands of rows (:func:`kaizhou_gis.terrain.sampling.padded_bands`, of
    about :data:`kaizhou_gis.terrain.sampling.BAND_CELLS` cells): every cell gets the same float64 operations as on
    the whole grid at once, so the same values, but the temporaries of a band stay in the CPU's
    cache (a district sheet's ten million cells: 1.3 -> 0.1 s).
    """
    z = np.asarray(elevation)
    dx, dy = cell_size_m(transform, crs, z.shape[0])
    zen = math.radians(90.0 - altitude_deg)
    az = math.radians(azimuth_deg)
    kx, ky, k0 = -math.sin(zen) * math.sin(az), math.sin(zen) * math.cos(az), math.cos(zen)
    out = np.empty(z.shape, dtype=dtype)
    for r0, r1, p in padded_bands(z, scale=z_factor):
        _shade_band(p, dx[r0:r1, None], dy[r0:r1, None], kx, ky, k0, out[r0:r1])
    return out


def _shade_band(p: np.ndarray, dx: np.ndarray, dy: np.ndarray, kx: float, ky: float, k0: float,
                out: np.ndarray) -> None:
    """The shade of the inner cells of the padded elevation band ``p`` into ``out``."""
    # central differences; east and north positive (rows run southwards)
    dzdx = (p[1:-1, 2:] - p[1:-1, :-2]) / (2.0 * dx)
    dzdy = (p[:-2, 1:-1] - p[2:, 1:-1]) / (2.0 * dy)
    # cos(zen) cos(slope) + sin(zen) sin(slope) cos(az - aspect), with slope = atan(|grad|) and
    # the aspect (downhill, clockwise from north) atan2(-dzdx, -dzdy), written without the
    # angles: (cos(zen) - sin(zen) (sin(az) dzdx + cos(az) dzdy)) / sqrt(1 + dzdx² + dzdy²),
    # the same values (to 1e-15) without five transcendental functions per cell
    shade = dzdx * kx
    shade -= dzdy * ky
    shade += k0
    norm = dzdx
    norm *= dzdx
    dzdy *= dzdy
    norm += dzdy
    norm += 1.0
    shade /= np.sqrt(norm, out=norm)
    np.clip(shade, 0.0, 1.0, out=out)  # clipped in float64, stored as out's dtype


#: An HTML background is shaded on a grid whose cells are this many times finer than the DEM's
#: (never finer than the image's pixels) and that shade is resampled to the image: a township
#: image is 900 px wide over some 60-250 DEM cells, so shading every pixel was 10-200x the work
#: for the same picture (the print sheets shade the same way, ``maps.sheet``).
SHADE_OVERSAMPLE = 2.0


def read_hillshade(dem: DatasetReader, bounds_lonlat: tuple[float, float, float, float], *,
                   width_px: int, azimuth_deg: float, altitude_deg: float) -> Hillshade | None:
    """Hillshade of the DEM over a lon/lat box, ``width_px`` wide.

    The DEM window is read resampled to the shading grid (averaged when shrinking; cubic, in
    float, when enlarging, so the relief has no facets), shaded there with metric cell sizes and
    returned in EPSG:4326. The shading grid is the image's own pixels when they are no finer than
    half a DEM cell (e.g. a district image); else it has cells of half a DEM cell
    (:data:`SHADE_OVERSAMPLE`) and its shade is resampled (bicubic) to the image's pixels
    (:func:`resample_shade`). Returns None when the box does not overlap the DEM.
    """
    west, south, east, north = bounds_lonlat
    dem_crs = CRS(dem.crs) if dem.crs is not None else CRS.from_epsg(4326)
    if not dem_crs.equals(CRS.from_epsg(4326)):
        tr = transformer(4326, dem_crs)
        xs, ys = tr.transform([west, east, west, east], [south, south, north, north])
        box = (min(xs), min(ys), max(xs), max(ys))
    else:
        box = (west, south, east, north)
    db = dem.bounds
    box = (max(box[0], db.left), max(box[1], db.bottom), min(box[2], db.right), min(box[3], db.top))
    if box[0] >= box[2] or box[1] >= box[3]:
        return None
    win = window_from_bounds(*box, transform=dem.transform).round_offsets().round_lengths()
    if win.width < 2 or win.height < 2:
        return None
    out_w = int(max(2, width_px))
    out_h = int(max(2, round(win.height * out_w / win.width)))
    # shaded on a grid of about SHADE_OVERSAMPLE cells per DEM cell, unless the image is coarser
    sw = min(out_w, max(2, math.ceil(win.width * SHADE_OVERSAMPLE)))
    sh = out_h if sw == out_w else max(2, math.ceil(out_h * sw / out_w))
    wb = dem.window_bounds(win)
    if sw <= win.width:  # averaged down (e.g. a district image)
        data = dem.read(1, window=win, out_shape=(sh, sw), masked=True, resampling=Resampling.average)
        z = data.astype("float64").filled(np.nan)
        if dem.nodata is not None:
            z[z == dem.nodata] = np.nan
    else:  # interpolated up (cubic, in float) so the relief has no facets
        z = _read_cubic(dem, win, (sh, sw))
    ok = np.isfinite(z)
    filled = np.where(ok, z, np.nanmean(z) if ok.any() else 0.0)
    shade = hillshade(filled, from_bounds(*wb, sw, sh), dem_crs, azimuth_deg=azimuth_deg,
                      altitude_deg=altitude_deg)
    if (sw, sh) == (out_w, out_h):
        shade[~ok] = np.nan
    else:
        shade = resample_shade(shade, ok, out_w, out_h)
    if not dem_crs.equals(CRS.from_epsg(4326)):
        shade, wb = _to_geographic(shade, from_bounds(*wb, out_w, out_h), dem_crs)
    return Hillshade(shade=shade, bounds=(wb[0], wb[1], wb[2], wb[3]))


def _read_cubic(dem: DatasetReader, win, shape: tuple[int, int]) -> np.ndarray:
    """The DEM over ``win`` resampled cubic (Pillow's bicubic, Keys a = -0.5 as GDAL's) in
    float32 to a grid ``shape`` over the same extent; NaN where the nearest DEM cell has no data.
    The window and two cells around it (the kernel's reach) are read at their own resolution and
    resampled in float: GDAL resamples a read in the band's type, which rounds an integer DEM to
    whole metres (terraces on a fine grid)."""
    from PIL import Image
    from rasterio.windows import Window

    pad = 2
    big = Window(win.col_off - pad, win.row_off - pad, win.width + 2 * pad, win.height + 2 * pad)
    big = big.intersection(Window(0, 0, dem.width, dem.height))
    src = dem.read(1, window=big, masked=True).astype("float32").filled(np.nan)
    if dem.nodata is not None:
        src[src == np.float32(dem.nodata)] = np.nan
    ok = np.isfinite(src)
    filled = np.where(ok, src, np.float32(np.nanmean(src)) if ok.any() else np.float32(0.0))
    # the window in the read array's pixel coordinates (edges, as Pillow's box)
    box = (win.col_off - big.col_off, win.row_off - big.row_off,
           win.col_off - big.col_off + win.width, win.row_off - big.row_off + win.height)
    h, w = shape
    z = np.asarray(Image.fromarray(filled, mode="F").resize((w, h), Image.Resampling.BICUBIC, box=box),
                   dtype="float32")
    if not ok.all():
        valid = Image.fromarray(ok.astype(np.uint8) * 255, mode="L").resize(
            (w, h), Image.Resampling.NEAREST, box=box)
        z = np.where(np.asarray(valid) > 0, z, np.float32(np.nan))
    return z


def resample_shade(shade: np.ndarray, ok: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """``shade`` (0-1, no NaN) resampled bicubic (Pillow, float32) to ``width_px`` × ``height_px``
    over the same extent, clipped to 0-1; NaN where the nearest cell of ``ok`` is False."""
    from PIL import Image

    fine = Image.fromarray(np.asarray(shade, dtype="float32"), mode="F").resize(
        (width_px, height_px), Image.Resampling.BICUBIC)
    out = np.clip(np.asarray(fine, dtype="float32"), 0.0, 1.0)
    if not ok.all():
        valid = Image.fromarray(ok.astype(np.uint8) * 255, mode="L").resize(
            (width_px, height_px), Image.Resampling.NEAREST)
        out = np.where(np.asarray(valid) > 0, out, np.float32(np.nan))
    return out


def _to_geographic(shade: np.ndarray, transform, crs) -> tuple[np.ndarray, tuple]:
    """Nearest-neighbour warp of a projected image to a lon/lat grid of the same size."""
    from rasterio.warp import Resampling as R
    from rasterio.warp import calculate_default_transform, reproject

    h, w = shade.shape
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * w, top + transform.e * h
    dst_t, dw, dh = calculate_default_transform(crs, "EPSG:4326", w, h, left, bottom, right, top)
    dst = np.full((dh, dw), np.nan, dtype="float64")
    reproject(shade, dst, src_transform=transform, src_crs=crs, dst_transform=dst_t,
              dst_crs="EPSG:4326", resampling=R.nearest, src_nodata=np.nan, dst_nodata=np.nan)
    west, north = dst_t.c, dst_t.f
    return dst, (west, north + dst_t.e * dh, west + dst_t.a * dw, north)


def _merc_y(lat_deg: np.ndarray) -> np.ndarray:
    lat = np.radians(np.clip(lat_deg, -85.0, 85.0))
    return np.log(np.tan(np.pi / 4 + lat / 2))


def to_web_mercator_rows(img: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Resample the rows of a lon/lat image so its rows are evenly spaced in Web-Mercator y.

    Leaflet stretches an image overlay linearly between its corners in Web-Mercator; a lon/lat
    image must therefore be resampled in the north-south direction (columns are already linear).
    """
    h = img.shape[0]
    _, south, _, north = bounds
    y_n, y_s = _merc_y(np.array(north)), _merc_y(np.array(south))
    centres = y_n + (np.arange(h) + 0.5) / h * (y_s - y_n)
    lat = np.degrees(2 * np.arctan(np.exp(centres)) - np.pi / 2)
    src_row = np.clip(((north - lat) / (north - south) * h).astype(int), 0, h - 1)
    return img[src_row]


#: Grey levels of an HTML map's hillshade image (:func:`shade_to_png`), evenly spaced over its
#: range (70-255). Measured on the 40 shipped township images: 20 levels give files of the size
#: Pillow's 64-colour octree palette gave them (122.4 vs 121.5 KB on average) with less error
#: against the exact grey (RMS 2.8 vs 4.6 grey levels, at most 5.3 vs 11): the octree spent its
#: colours on the alpha values and the tails. More levels mean larger pages (31 levels: ~149 KB)
#: for steps the eye does not see under the map's layers. Made in a quarter of the time
#: (6 vs 25 ms a township image: no RGBA image, no octree, the PNG deflated as the sheets').
BACKGROUND_GREYS = 20

#: The darkest and the lightest grey of the hillshade image: the darks are lifted so that the
#: map's layers stay readable on them.
_GREY_DARK, _GREY_LIGHT = 70.0, 255.0


def background_palette(*, faded: bool, outside_alpha: float = 0.45) -> list[tuple[int, int, int, int]]:
    """The colours of :func:`shade_to_png`'s image: transparent (no DEM), then the
    :data:`BACKGROUND_GREYS` greys opaque, then (``faded``) the same greys at ``outside_alpha``."""
    greys = [int(round(_GREY_DARK + (_GREY_LIGHT - _GREY_DARK) * k / (BACKGROUND_GREYS - 1)))
             for k in range(BACKGROUND_GREYS)]
    pal = [(0, 0, 0, 0)] + [(g, g, g, 255) for g in greys]
    if faded:
        a = int(255 * outside_alpha)
        pal += [(g, g, g, a) for g in greys]
    return pal


def shade_to_png(shade: np.ndarray, bounds: tuple[float, float, float, float], *,
                 inside: np.ndarray | None = None, outside_alpha: float = 0.45) -> bytes:
    """An HTML map's hillshade overlay: ``shade`` (0-1, NaN where no DEM; lon/lat rows over
    ``bounds``) as an indexed-colour PNG in Web-Mercator rows (:func:`to_web_mercator_rows`) of
    :data:`BACKGROUND_GREYS` greys from 70 (the darks lifted so the map's layers stay readable)
    to 255, transparent where NaN and at ``outside_alpha`` outside ``inside`` (bool, the shade's
    grid) (:func:`background_palette`). Each pixel takes the grey nearest its shade, worked out
    from the shade itself (no RGBA image, no palette search)."""
    from kaizhou_gis.maps.sheetpng import encode_indexed_png

    k = np.asarray(shade, dtype=np.float32) * np.float32(BACKGROUND_GREYS - 1)
    np.clip(k, 0, BACKGROUND_GREYS - 1, out=k)  # NaN stays NaN
    np.rint(k, out=k)
    no_dem = np.isnan(k)
    k[no_dem] = -1.0
    index = (k + np.float32(1.0)).astype(np.uint8)  # 0: transparent, 1..: the greys
    faded = False
    if inside is not None and not inside.all():
        faded = True
        index[~inside & ~no_dem] += np.uint8(BACKGROUND_GREYS)
    return encode_indexed_png(to_web_mercator_rows(index, bounds),
                              background_palette(faded=faded, outside_alpha=outside_alpha))
