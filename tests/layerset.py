"""A tiny, valid layer set around Hanfeng (108.4E, 31.2N) for tests.

Two townships (汉丰街道 west of 108.40E, 大进镇 east of it), one seat each, three villages, six
settlements, five roads, and a DEM GeoTIFF in EPSG:4326 (3 arc-seconds) whose elevation rises
linearly eastwards: ``elevation = 300 + 4000 * (lon - 108.30)`` metres, so 300 m at the west edge
of the district and 1100 m at its east edge (108.50E).

Use :func:`layer_frames` to get the GeoDataFrames (EPSG:4326), change them, and
:func:`write_layerset` to write a folder that :func:`kaizhou_gis.layers.load_layers` reads.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import LineString, Point, box

#: District box (lon/lat) and DEM box (a little larger).
DISTRICT = (108.30, 31.10, 108.50, 31.30)
DEM_BOX = (108.28, 31.08, 108.52, 31.32)
DEM_RES_DEG = 1.0 / 1200.0  # 3 arc-seconds

HANFENG, DAJIN = "500154001", "500154118"


def dem_elevation(lon):
    """Elevation (m) of the test DEM at longitude ``lon``."""
    return 300.0 + 4000.0 * (np.asarray(lon, dtype=float) - 108.30)


def layer_frames() -> dict[str, gpd.GeoDataFrame]:
    """The layers as GeoDataFrames in EPSG:4326 (fresh copies on every call)."""
    crs = "EPSG:4326"
    x0, y0, x1, y1 = DISTRICT
    boundary = gpd.GeoDataFrame({"code": ["500154"], "name": ["开州区"]},
                                geometry=[box(x0, y0, x1, y1)], crs=crs)
    townships = gpd.GeoDataFrame(
        {"township_code": [HANFENG, DAJIN], "name": ["汉丰街道", "大进镇"], "kind": ["街道", "镇"],
         "source": ["test", "test"]},
        geometry=[box(x0, y0, 108.40, y1), box(108.40, y0, x1, y1)], crs=crs)
    seats = gpd.GeoDataFrame(
        {"township_code": [HANFENG, DAJIN], "name": ["汉丰街道", "大进镇"],
         "elevation_m": [float(dem_elevation(108.35)), np.nan], "source": ["test", "test"]},
        geometry=[Point(108.35, 31.20), Point(108.45, 31.25)], crs=crs)
    villages = gpd.GeoDataFrame(
        {"village_code": ["500154001001", "500154118201", "500154118202"],
         "name": ["汉丰社区", "红旗村", "白泉村"],
         "township_code": [HANFENG, DAJIN, DAJIN],
         "kind": ["社区", "村", "村"],
         "households": [400, 120, 80], "population": [1200, 380, 250],
         "poverty_village": [False, True, True], "deep_poverty": [False, False, True],
         "poverty_source": ["", "plan", "synthetic"], "source": ["test", "test", "synthetic"]},
        geometry=[Point(108.34, 31.19), Point(108.44, 31.22), Point(108.47, 31.27)], crs=crs)
    settlements = gpd.GeoDataFrame(
        {"settlement_id": [f"S{i}" for i in range(1, 7)],
         "name": ["一组", "二组", "石板沟", "岩口", "高坪", "白泉坪"],
         "village_code": ["500154001001", "500154001001", "500154118201", "500154118201",
                          "500154118202", "500154118202"],
         "households": [200, 200, 70, 50, 35, 45], "population": [600, 600, 220, 160, 110, 140],
         "source": ["test"] * 6},
        geometry=[Point(108.335, 31.185), Point(108.345, 31.195), Point(108.43, 31.21),
                  Point(108.45, 31.23), Point(108.46, 31.28), Point(108.48, 31.26)], crs=crs)
    roads = gpd.GeoDataFrame(
        {"road_id": ["R1", "R2", "R3", "R4", "R5"],
         "road_class": ["trunk", "county", "township", "village", "track"],
         "surface": ["paved", "paved", "paved", "unpaved", "unpaved"],
         "source": ["test"] * 5},
        geometry=[LineString([(108.35, 31.20), (108.45, 31.25)]),
                  LineString([(108.34, 31.19), (108.35, 31.20)]),
                  LineString([(108.45, 31.25), (108.44, 31.22)]),
                  LineString([(108.45, 31.25), (108.47, 31.27)]),
                  LineString([(108.44, 31.22), (108.43, 31.21)])], crs=crs)
    return {"boundary": boundary, "townships": townships, "township_seats": seats,
            "villages": villages, "settlements": settlements, "roads": roads}


def real_frames() -> dict[str, gpd.GeoDataFrame]:
    """:func:`layer_frames` with no synthetic source anywhere (a 'fully real' layer set)."""
    frames = layer_frames()
    frames["villages"]["source"] = "village survey 2023"
    frames["villages"]["poverty_source"] = "plan"
    return frames


def dem_array() -> tuple[np.ndarray, object]:
    """The DEM grid (int16) and its affine transform."""
    x0, y0, x1, y1 = DEM_BOX
    w = int(round((x1 - x0) / DEM_RES_DEG))
    h = int(round((y1 - y0) / DEM_RES_DEG))
    lon = x0 + (np.arange(w) + 0.5) * DEM_RES_DEG
    arr = np.repeat(np.round(dem_elevation(lon))[None, :], h, axis=0).astype("int16")
    return arr, Affine(DEM_RES_DEG, 0.0, x0, 0.0, -DEM_RES_DEG, y1)


def write_dem(path: str | Path, array: np.ndarray | None = None, *, crs: str | None = "EPSG:4326",
              nodata: int = -32768, transform=None) -> Path:
    """Write the test DEM (or ``array``, on the same grid unless ``transform`` is given) as a GeoTIFF."""
    arr, default_transform = dem_array()
    transform = default_transform if transform is None else transform
    if array is not None:
        arr = array
    path = Path(path)
    profile = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                   dtype="int16", transform=transform, nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(arr, 1)
    return path


def write_layerset(folder: str | Path, frames: dict[str, gpd.GeoDataFrame] | None = None, *,
                   dem: bool = True, gpkg_name: str = "kaizhou.gpkg") -> Path:
    """Write ``frames`` (default :func:`layer_frames`) as one GeoPackage plus dem.tif in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = layer_frames() if frames is None else frames
    gpkg = folder / gpkg_name
    for name, gdf in frames.items():
        gdf.to_file(gpkg, layer=name, driver="GPKG")
    if dem:
        write_dem(folder / "dem.tif")
    return folder
