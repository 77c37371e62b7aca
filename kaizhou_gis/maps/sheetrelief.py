"""The shaded relief of a print sheet: the DEM shaded on the sheet's own grid and printed as
one grey image (:func:`sheet_relief`, on the map frame's grid :func:`frame_relief`)."""
from __future__ import annotations

import math

import numpy as np
from pyproj import CRS

from kaizhou_gis.crs import transformer
from kaizhou_gis.maps.sheetlayout import MM_PER_IN, Layout, plan_layout


def grid_transform(extent: tuple[float, float, float, float], width_px: int, height_px: int):
    """North-up affine transform of a ``width_px`` × ``height_px`` grid over ``extent``."""
    from affine import Affine

    xmin, ymin, xmax, ymax = extent
    return Affine((xmax - xmin) / width_px, 0.0, xmin, 0.0, -(ymax - ymin) / height_px, ymax)


#: The hillshade of a sheet is computed on a grid of cells this many times finer than the DEM's
#: (then resampled to the printed pixels); finer adds nothing the DEM holds.
SHADE_OVERSAMPLE = 2.0


def sheet_hillshade(dem, work_crs: str, extent: tuple[float, float, float, float], width_px: int,
                    height_px: int, *, azimuth_deg: float, altitude_deg: float) -> np.ndarray | None:
    """Shaded relief (0-1 float32, NaN outside the DEM) on a ``width_px`` × ``height_px`` grid over
    ``extent`` in the work CRS.

    The relief is shaded on a grid of the same extent whose cells are about half a DEM cell
    (:data:`SHADE_OVERSAMPLE`; the DEM resampled cubic to it, so it has no facets), never finer
    than the target grid, and that shade is resampled (bicubic) to the target grid: at 300 dpi
    and 1:50 000 a printed pixel is 4 m and a DEM cell some 50 m, so shading every printed
    pixel cost ~30× the work for the same picture."""
    coarse = _coarse_shade(dem, work_crs, extent, width_px, height_px, azimuth_deg=azimuth_deg,
                           altitude_deg=altitude_deg)
    if coarse is None:
        return None
    shade, ok = coarse
    if shade.shape == (height_px, width_px):
        shade[~ok] = np.nan
        return shade
    from kaizhou_gis.maps.hillshade import resample_shade

    return resample_shade(np.where(ok, shade, np.float32(1.0)), ok, width_px, height_px)


def _coarse_shade(dem, work_crs: str, extent: tuple[float, float, float, float], width_px: int,
                  height_px: int, *, azimuth_deg: float, altitude_deg: float):
    """The shade (0-1 float32) on the shading grid of :func:`sheet_hillshade` and where it has
    DEM values (bool), or None where the DEM does not reach ``extent``."""
    from rasterio.warp import Resampling, reproject

    from kaizhou_gis.maps.hillshade import hillshade

    src = dem.read(1, masked=False)
    src_crs = dem.crs if dem.crs is not None else CRS.from_epsg(4326)
    factor = _shade_factor(dem.transform, src.shape, src_crs, work_crs, extent, width_px)
    cw, ch = max(2, math.ceil(width_px / factor)), max(2, math.ceil(height_px / factor))
    transform = grid_transform(extent, cw, ch)
    z = np.full((ch, cw), np.nan, dtype="float32")
    # a 16-bit or float32 DEM goes in as it is: GDAL warps it in float32, the values it would
    # give for a float32 copy of the whole band (which cost more than the warp at 10x: 54 MB a
    # sheet)
    if src.dtype not in (np.int16, np.uint16, np.float32) or not _nodata_fits(dem.nodata, src.dtype):
        src = src.astype("float32")
    reproject(source=src, destination=z,
              src_transform=dem.transform, src_crs=src_crs, src_nodata=dem.nodata,
              dst_transform=transform, dst_crs=work_crs, dst_nodata=np.nan,
              resampling=Resampling.cubic)
    ok = np.isfinite(z)
    if not ok.any():
        return None
    # the cells without DEM take the mean (only their neighbours' slopes read it)
    filled = z if ok.all() else np.where(ok, z, np.float32(np.nanmean(z)))
    shade = hillshade(filled, transform, CRS(work_crs), azimuth_deg=azimuth_deg,
                      altitude_deg=altitude_deg, dtype="float32")
    return shade, ok


def _nodata_fits(nodata, dtype) -> bool:
    """Whether GDAL takes ``nodata`` as the no-data value of a band of ``dtype`` (rasterio refuses
    e.g. -9999 for uint16, NaN for int16: such a DEM is warped from a float32 copy)."""
    from rasterio.dtypes import in_dtype_range

    if nodata is None:
        return True
    if np.dtype(dtype).kind in "iu" and not float(nodata).is_integer():
        return False
    return bool(in_dtype_range(nodata, np.dtype(dtype).name))


def sheet_relief(dem, work_crs: str, extent: tuple[float, float, float, float], width_px: int,
                 height_px: int, *, azimuth_deg: float, altitude_deg: float,
                 inside=None) -> np.ndarray | None:
    """The printed grey relief (uint8, :func:`shade_to_grey`) on a ``width_px`` × ``height_px``
    grid over ``extent``, faded where ``inside`` (that grid: bool, or uint8 0 outside and 255
    inside) is False or 0; None where the DEM does not reach ``extent``.

    The grey of :func:`shade_to_grey` is a linear function of the shade, so it is taken on the
    shading grid of :func:`sheet_hillshade` and that grey is resampled (bicubic, 8-bit) to the
    printed pixels: the same picture (within a grey level of 255) without carrying some ten
    million float pixels through each step."""
    from PIL import Image

    coarse = _coarse_shade(dem, work_crs, extent, width_px, height_px, azimuth_deg=azimuth_deg,
                           altitude_deg=altitude_deg)
    if coarse is None:
        return None
    shade, ok = coarse
    if not ok.all():
        shade[~ok] = np.float32(1.0)  # 255 where no DEM
    grey = shade_to_grey(shade, None)
    im = Image.fromarray(grey, mode="L")
    if grey.shape != (height_px, width_px):
        im = im.resize((width_px, height_px), Image.Resampling.BICUBIC)
        if not ok.all():  # no DEM: white, where the nearest shading cell had none
            no_dem = Image.fromarray(np.where(ok, np.uint8(0), np.uint8(255)), mode="L").resize(
                (width_px, height_px), Image.Resampling.NEAREST)
            im.paste(255, mask=no_dem)
    if inside is not None:
        # outside: _FADE of the grey, by Pillow's lookup table; inside: the grey, pasted through
        # the mask (a 0/255 mask pastes exactly). The picture stays Pillow's until the end: each
        # conversion to numpy and back was a copy of its ten million pixels
        mask = inside if inside.dtype == np.uint8 else np.multiply(inside, 255, dtype=np.uint8)
        faded = im.point(_FADE_LUT)
        faded.paste(im, mask=Image.fromarray(np.ascontiguousarray(mask), mode="L"))
        im = faded
    return np.asarray(im)


def _shade_factor(dem_transform, dem_shape: tuple[int, int], dem_crs, work_crs: str,
                  extent: tuple[float, float, float, float], width_px: int) -> float:
    """How many target pixels one cell of the shading grid spans (>= 1): a DEM cell (in the work
    CRS, measured at the DEM's centre) over :data:`SHADE_OVERSAMPLE`, in target pixels."""
    rows, cols = dem_shape
    r, c = rows // 2, cols // 2
    xs = [dem_transform.c + dem_transform.a * cc + dem_transform.b * rr for cc, rr in ((c, r), (c + 1, r), (c, r + 1))]
    ys = [dem_transform.f + dem_transform.d * cc + dem_transform.e * rr for cc, rr in ((c, r), (c + 1, r), (c, r + 1))]
    wx, wy = transformer(dem_crs, work_crs).transform(xs, ys)
    cell = min(math.hypot(wx[1] - wx[0], wy[1] - wy[0]), math.hypot(wx[2] - wx[0], wy[2] - wy[0]))
    px = (extent[2] - extent[0]) / width_px
    factor = cell / SHADE_OVERSAMPLE / px
    # under 1.5 target pixels a shading cell would save little and blur a little
    return factor if math.isfinite(factor) and factor >= 1.5 else 1.0


#: The grey outside the highlighted area of a grey inside it (:func:`shade_to_grey`).
_FADE = (np.arange(256, dtype=np.float32) * np.float32(0.35) + np.float32(255.0 * 0.65)).astype(np.uint8)
_FADE_LUT = _FADE.tolist()


def shade_to_grey(shade: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """Grey uint8 relief for print: light (paper stays readable), faded outside ``inside``."""
    # 255 - 0.62 * 255 * (1 - shade), in float32 (a sheet has some ten million pixels)
    v = shade.astype(np.float32)  # a copy, worked in place
    nan = np.isnan(v)
    if nan.any():
        np.copyto(v, np.float32(1.0), where=nan)
    v *= np.float32(0.62 * 255.0)
    v += np.float32(255.0 - 0.62 * 255.0)
    np.clip(v, 0, 255, out=v)
    if inside is not None:  # outside: 255 - (255 - v) * 0.35
        v = np.where(inside, v, v * np.float32(0.35) + np.float32(255.0 * 0.65))
    return v.astype(np.uint8)



def frame_relief(dem, lay: Layout, work_crs: str, highlight, *, hillshade_dpi: int,
                 azimuth_deg: float, altitude_deg: float) -> np.ndarray | None:
    """The relief (grey uint8, north up) on the map frame's own grid at ``hillshade_dpi``, faded
    outside ``highlight``; None where the DEM does not reach the frame. The sheet writes it into
    the PDF as one DeviceGray image filling the frame."""
    _, _, fw, fh = lay.frame_mm
    wpx = int(round(fw / MM_PER_IN * hillshade_dpi))
    hpx = int(round(fh / MM_PER_IN * hillshade_dpi))
    inside = None
    if highlight is not None and not highlight.is_empty:
        from rasterio.features import rasterize
        # 255 inside, 0 outside (what geometry_mask gives, without its pass to bool)
        inside = rasterize([(highlight, 255)], out_shape=(hpx, wpx), fill=0, dtype="uint8",
                           transform=grid_transform(lay.extent, wpx, hpx))
    return sheet_relief(dem, work_crs, lay.extent, wpx, hpx, azimuth_deg=azimuth_deg,
                        altitude_deg=altitude_deg, inside=inside)


#: zlib level of the relief image in the PDF (a Flate stream with the PNG "Up" predictor on every
#: row and zlib's run-length strategy, :func:`kaizhou_gis.maps.sheetpng.deflate`).
PDF_RELIEF_ZLIB_LEVEL = 1


def relief_flate(dem, bounds_xy: tuple[float, float, float, float], work_crs: str, highlight, *,
                 hillshade_dpi: int, azimuth_deg: float, altitude_deg: float):
    """The relief of the sheet framing ``bounds_xy`` (:func:`frame_relief` on its layout)
    compressed as the sheet's PDF holds it (:class:`kaizhou_gis.maps.pdfwriter.FlateGrey`), or
    None where the DEM does not reach the frame: what :func:`kaizhou_gis.maps.sheet.render_sheet`
    embeds, made ahead (:mod:`kaizhou_gis.maps.reliefs`)."""
    from kaizhou_gis.maps.pdfwriter import flate_grey

    grey = frame_relief(dem, plan_layout(bounds_xy), work_crs, highlight,
                        hillshade_dpi=hillshade_dpi, azimuth_deg=azimuth_deg,
                        altitude_deg=altitude_deg)
    return None if grey is None else flate_grey(grey, PDF_RELIEF_ZLIB_LEVEL)
