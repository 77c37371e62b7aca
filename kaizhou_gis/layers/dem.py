"""The DEM: opening one raster or a mosaic of tiles (:func:`mosaic_vrt`), the district's window
(:func:`dem_window`, :func:`window_vrt`) and the DEM check of :func:`~kaizhou_gis.layers.check_layers`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
from pyproj import CRS

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers import checks
from kaizhou_gis.layers.contract import MAX_DEM_CELLS_IN_MEMORY
from kaizhou_gis.layers.sources import _Source


def mosaic_vrt(tiles, window=None) -> str:
    """A GDAL VRT (XML text, kept in memory; rasterio opens it as a dataset) that mosaics DEM
    tiles of one CRS and cell size, e.g. SRTM ``.hgt`` or Copernicus GLO-30 GeoTIFF tiles.

    Nothing is read until a window is asked for, so only the district's part is ever read.
    Where tiles overlap (SRTM tiles share their edge row), a tile's nodata cells do not hide the
    other's values. With ``window`` (a :class:`rasterio.windows.Window` of the mosaic, whole
    cells) the VRT is that window only; tiles outside it are left out.
    """
    from html import escape

    info = []
    for t in tiles:
        with rasterio.open(t) as ds:
            info.append((Path(t), ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[0], ds.nodata))
    if not info:
        raise LayerError("dem: the DEM folder holds no raster tiles; put the SRTM .hgt or GeoTIFF "
                         "tiles of the district in it.")
    crs0, tr0 = info[0][1], info[0][2]
    other_crs = [i[0].name for i in info if i[1] != crs0]
    if other_crs:
        raise LayerError(f"dem: the tiles are not all in one CRS ({info[0][0].name}: "
                         f"{_crs_label(crs0) if crs0 else 'none'}; different: {format_ids(other_crs)}); "
                         f"reproject them to one CRS (gdalwarp) or merge them into dem.tif.")
    res_x, res_y = tr0.a, tr0.e
    other_res = [i[0].name for i in info
                 if abs(i[2].a - res_x) > 1e-9 * abs(res_x) or abs(i[2].e - res_y) > 1e-9 * abs(res_y)
                 or i[2].b != 0 or i[2].d != 0]
    if other_res or tr0.b != 0 or tr0.d != 0:
        raise LayerError(f"dem: the tiles do not share one north-up grid cell size "
                         f"({format_ids(other_res or [info[0][0].name])} differ); resample them to "
                         f"one grid (gdalwarp -tr) or merge them into dem.tif.")
    left = min(i[2].c for i in info)
    top = max(i[2].f for i in info)
    right = max(i[2].c + i[3] * res_x for i in info)
    bottom = min(i[2].f + i[4] * res_y for i in info)
    width = int(round((right - left) / res_x))
    height = int(round((bottom - top) / res_y))
    dtypes = {i[5] for i in info}
    vrt_type = {"int16": "Int16", "uint16": "UInt16", "int32": "Int32", "float32": "Float32",
                "float64": "Float64", "uint8": "Byte"}.get(info[0][5], "Float32") \
        if len(dtypes) == 1 else "Float32"
    nodata = next((i[6] for i in info if i[6] is not None), None)
    wx, wy = 0, 0
    if window is not None:
        wx, wy = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        left, top = left + wx * res_x, top + wy * res_y
    sources = []
    for path, _, tr, w, h, _, nd in info:
        xo, yo = (tr.c - left) / res_x, (tr.f - top) / res_y
        if abs(xo - round(xo)) > 1e-3 or abs(yo - round(yo)) > 1e-3:
            raise LayerError(f"dem: tile {path.name} is not aligned with the grid of "
                             f"{info[0][0].name} (offset {xo:.3f}, {yo:.3f} cells); resample the "
                             f"tiles to one grid (gdalwarp) or merge them into dem.tif.")
        if round(xo) >= width or round(yo) >= height or round(xo) + w <= 0 or round(yo) + h <= 0:
            continue  # outside the window: never opened
        nd_xml = f"<NODATA>{nd!r}</NODATA>" if nd is not None else ""
        sources.append(
            f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(path.resolve()))}'
            f'</SourceFilename><SourceBand>1</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{int(round(xo))}" yOff="{int(round(yo))}" xSize="{w}" ySize="{h}"/>'
            f'{nd_xml}</ComplexSource>')
    srs = f"<SRS>{escape(crs0.to_wkt())}</SRS>" if crs0 is not None else ""
    nd_band = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
            f"<GeoTransform>{left!r}, {res_x!r}, 0, {top!r}, 0, {res_y!r}</GeoTransform>"
            f'<VRTRasterBand dataType="{vrt_type}" band="1">{nd_band}{"".join(sources)}'
            f"</VRTRasterBand></VRTDataset>")


def open_raster(path, tiles=(), window=None) -> rasterio.io.DatasetReader:
    """Open a DEM: one raster file, or the mosaic of ``tiles``; with ``window`` (a
    :class:`rasterio.windows.Window` or ``(col_off, row_off, width, height)`` in whole cells) only
    that window of it, as a VRT whose every read stays inside the window."""
    if window is not None and not isinstance(window, rasterio.windows.Window):
        window = rasterio.windows.Window(*window)
    if tiles:
        return rasterio.open(mosaic_vrt(tiles, window=window))
    if window is None:
        return rasterio.open(path)
    return rasterio.open(window_vrt(path, window))


_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
               "uint32": "UInt32", "int32": "Int32", "uint64": "UInt64", "int64": "Int64",
               "float32": "Float32", "float64": "Float64"}


def window_vrt(path, window) -> str:
    """A GDAL VRT (XML text, opened by rasterio as a dataset) of ``window`` of the raster at
    ``path``: same grid, CRS, data type and nodata; band 1 only. GDAL reads the source only
    inside the window, whatever the source is (a GeoTIFF, SRTM tile or a VRT of a province)."""
    from html import escape

    window = rasterio.windows.Window(*[int(v) for v in (window.col_off, window.row_off,
                                                        window.width, window.height)])
    with rasterio.open(path) as ds:
        name = ds.name
        tr = ds.window_transform(window)
        crs, dtype, nodata = ds.crs, ds.dtypes[0], ds.nodata
        scale, offset = ds.scales[0], ds.offsets[0]
    p = Path(str(name))
    if p.is_file():
        name = str(p.resolve())
    w, h = int(window.width), int(window.height)
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs is not None else ""
    nd = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    so = (f"<Offset>{offset!r}</Offset><Scale>{scale!r}</Scale>"
          if (scale, offset) != (1.0, 0.0) else "")
    return (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">{srs}'
            f"<GeoTransform>{tr.c!r}, {tr.a!r}, {tr.b!r}, {tr.f!r}, {tr.d!r}, {tr.e!r}</GeoTransform>"
            f'<VRTRasterBand dataType="{_GDAL_TYPES.get(dtype, "Float64")}" band="1">{nd}{so}'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(name))}</SourceFilename>'
            f"<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="{int(window.col_off)}" yOff="{int(window.row_off)}" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/></SimpleSource>'
            f"</VRTRasterBand></VRTDataset>")


def dem_window_margin_m(plan) -> float:
    """Margin (metres) of the district's DEM window around the layers' extent: the longest new
    road link searched (``links.max_new_link_km``; a link may run outside the layers' extent) or
    the relocation terrain radius (``relocation.relief_window_m`` / ``slope_window_m``),
    whichever is larger."""
    def num(key):
        try:
            return float(plan.get(key, 0.0) or 0.0)
        except (TypeError, ValueError):
            return 0.0
    return max(num("links.max_new_link_km") * 1000.0, num("relocation.relief_window_m"),
               num("relocation.slope_window_m"))


#: Cells added on every side of the district's DEM window (the road-grade grid's own pad and the
#: cubic kernel of resampled reads).
DEM_WINDOW_PAD_CELLS = 3


def dem_window(ds, frames, margin_m: float, *, dem_crs=None) -> rasterio.windows.Window | None:
    """The district's window of the DEM ``ds``: the extent of the vector ``frames`` plus
    ``margin_m`` (metres) and :data:`DEM_WINDOW_PAD_CELLS`, in whole cells, clipped to the DEM.

    None when the window is the whole DEM (then the DEM is read as it is), when no frame has
    features and a CRS, or when the extent misses the DEM (the cross-checks name the points
    outside the DEM).
    """
    dem_crs = ds.crs if ds.crs is not None else dem_crs
    if dem_crs is None:
        return None
    xs_all, ys_all = [], []
    for g in frames:
        if g is None or g.crs is None or g.empty:
            continue
        b = np.asarray(g.total_bounds, dtype="float64")
        if not np.isfinite(b).all():
            continue
        minx, miny, maxx, maxy = b
        if CRS.from_user_input(g.crs).is_geographic:  # metres to degrees, generously
            my = margin_m / 110_574.0
            mx = margin_m / (111_320.0 * max(0.05, np.cos(np.radians(max(abs(miny), abs(maxy))))))
        else:
            mx = my = margin_m
        minx, miny, maxx, maxy = minx - mx, miny - my, maxx + mx, maxy + my
        # edges sampled, so a curved reprojection of the box is covered
        t = np.linspace(0.0, 1.0, 9)
        xs = np.concatenate([minx + (maxx - minx) * t, np.full(9, maxx), maxx - (maxx - minx) * t,
                             np.full(9, minx)])
        ys = np.concatenate([np.full(9, miny), miny + (maxy - miny) * t, np.full(9, maxy),
                             maxy - (maxy - miny) * t])
        x, y = transformer(g.crs, dem_crs).transform(xs, ys)
        ok = np.isfinite(x) & np.isfinite(y)
        xs_all.append(np.asarray(x)[ok])
        ys_all.append(np.asarray(y)[ok])
    if not xs_all or not sum(len(a) for a in xs_all):
        return None
    x, y = np.concatenate(xs_all), np.concatenate(ys_all)
    win = rasterio.windows.from_bounds(x.min(), y.min(), x.max(), y.max(), transform=ds.transform)
    pad = DEM_WINDOW_PAD_CELLS
    c0 = max(0, int(np.floor(win.col_off)) - pad)
    r0 = max(0, int(np.floor(win.row_off)) - pad)
    c1 = min(ds.width, int(np.ceil(win.col_off + win.width)) + pad)
    r1 = min(ds.height, int(np.ceil(win.row_off + win.height)) + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    if (c0, r0, c1, r1) == (0, 0, ds.width, ds.height):
        return None
    return rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)


def _crs_label(crs) -> str:
    try:
        epsg = crs.to_epsg()
    except Exception:  # pyproj may fail on odd WKT
        epsg = None
    return f"EPSG:{epsg}" if epsg else crs.name


def _check_dem(src: _Source | None, path: Path, *, crs, problems, notes, row, frames=(),
               margin_m: float = 0.0) -> dict:
    """Check the DEM; its cells are read only in the district's window (:func:`dem_window` of the
    loaded vector ``frames`` plus ``margin_m``), never the whole raster beyond it."""
    info: dict[str, Any] = {"path": None}
    if src is None:
        problems.append(f"dem: no DEM found with the layers ({path}); put a GeoTIFF named dem.tif "
                        f"(or an SRTM .hgt such as N31E108.hgt) next to them, or a 'dem = \"...\"' "
                        f"line in the TOML mapping.")
        return info
    try:
        ds = open_raster(src.path, src.tiles)
    except LayerError as e:
        problems.append(str(e))
        return info
    except Exception as e:  # rasterio.errors.RasterioIOError and friends
        problems.append(f"dem: cannot read {src.describe()} ({e}); give a raster GDAL reads "
                        f"(GeoTIFF, SRTM .hgt, a .vrt) or a folder of such tiles.")
        return info
    with ds:
        info["path"] = src.path
        if src.tiles:
            info["tiles"] = src.tiles
            notes.append(f"dem: {len(src.tiles)} tiles mosaicked on the fly "
                         f"({format_ids([t.name for t in src.tiles])}).")
        row["rows"] = f"{ds.width}x{ds.height}"
        dem_crs = ds.crs
        if dem_crs is None:
            given = src.crs or crs
            if given is None:
                problems.append(f"dem: {src.describe()} has no CRS; pass --crs (e.g. EPSG:4326 for "
                                f"SRTM lon/lat) or set it with gdal_edit.py -a_srs.")
                row["crs"] = "none"
            else:
                dem_crs = CRS.from_user_input(given)
                info["assigned_crs"] = str(given)
                notes.append(f"dem: no CRS in the file; using {given}.")
        if dem_crs is not None:
            row["crs"] = _crs_label(dem_crs)
            info["crs"] = dem_crs
            b = ds.bounds
            info["bounds"] = (b.left, b.bottom, b.right, b.top)
            t = transformer(dem_crs, "EPSG:4326")
            row["bounds"] = tuple(float(x) for x in t.transform_bounds(*info["bounds"]))
        window = dem_window(ds, frames, margin_m, dem_crs=dem_crs) if dem_crs is not None else None
        if window is not None:
            info["window"] = (int(window.col_off), int(window.row_off), int(window.width),
                              int(window.height))
            notes.append(f"dem: only the district's window is read: {int(window.width)}x"
                         f"{int(window.height)} of the DEM's {ds.width}x{ds.height} cells "
                         f"(the layers' extent plus {margin_m:,.0f} m: the longest new link "
                         f"searched or the relocation terrain radius).")
        with (open_raster(src.path, src.tiles, window=window) if window is not None
              else contextlib.nullcontext(ds)) as wds:
            # every cell readable (a truncated file fails here), untagged voids, impossible values
            inspected = checks.inspect_dem(wds, src.describe(), problems, notes,
                                           scope="" if window is None else " in the district's window")
            if not inspected:
                return {"path": None}
            info.update(inspected)
            # all-nodata check on a decimated read (cheap for any size)
            h = min(wds.height, 512)
            w = min(wds.width, 512)
            band = wds.read(1, out_shape=(h, w), masked=True)
            if info.get("void_value") is not None:
                band = np.ma.masked_equal(band, info["void_value"])
            if band.mask.all() if np.ndim(band.mask) else bool(band.mask):
                where = "" if window is None else " over the district (its layers' extent)"
                problems.append(f"dem: {src.describe()} holds only nodata ({ds.nodata}){where}; "
                                f"give a DEM with elevations there.")
        info["nodata"] = ds.nodata
    return info


def _dem_band(path, tiles=(), void=None, window=None) -> tuple[np.ma.MaskedArray | None, Any]:
    """The DEM band in the district's ``window`` (the whole DEM when None; masked at nodata and
    at ``void``) and its transform when small enough to hold, else None."""
    with open_raster(path, tiles, window=window) as ds:
        if ds.width * ds.height > MAX_DEM_CELLS_IN_MEMORY:
            return None, ds.transform
        band = ds.read(1, masked=True)
        return (band if void is None else np.ma.masked_equal(band, void)), ds.transform
