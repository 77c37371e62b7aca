"""Checks between layers: duplicate codes, references to unknown parents, features outside the
district boundary or the DEM, points on DEM nodata.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.windows
import shapely

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import format_ids
from kaizhou_gis.layers.contract import _ids
from kaizhou_gis.layers.dem import _dem_band

#: Point layers checked against the boundary and the DEM, with their id column.
_POINT_LAYERS = (("township_seats", "township_code"), ("villages", "village_code"),
                 ("settlements", "settlement_id"), ("sites", "site_id"))


def _cross_checks(layers: dict[str, gpd.GeoDataFrame], dem: dict, plan, problems: list[str],
                  notes: list[str]) -> None:
    """Duplicates, references between layers, features outside the boundary or the DEM."""
    _duplicate_codes(layers, problems)
    _unknown_references(layers, problems)
    _missing_seats(layers, problems)
    _outside_boundary(layers, plan, problems)
    if dem.get("bounds") is not None and dem.get("crs") is not None:
        _outside_dem(layers, dem, problems, notes)


def _duplicate_codes(layers: dict[str, gpd.GeoDataFrame], problems: list[str]) -> None:
    dup_cols = {"townships": "township_code", "township_seats": "township_code",
                "villages": "village_code", "settlements": "settlement_id",
                "roads": "road_id", "sites": "site_id"}
    for name, col in dup_cols.items():
        gdf = layers.get(name)
        if gdf is None or col not in gdf.columns:
            continue
        vals = gdf[col]
        dup = vals.notna() & vals.duplicated(keep=False)
        if dup.any():
            ids = sorted(set(vals[dup].astype(str)))
            problems.append(f"{name}.{col}: duplicate codes ({len(ids)}: {format_ids(ids)}); "
                            f"every {col} must be unique.")


def _unknown_references(layers: dict[str, gpd.GeoDataFrame], problems: list[str]) -> None:
    refs = [("villages", "township_code", "townships", "township_code", "village_code"),
            ("township_seats", "township_code", "townships", "township_code", "township_code"),
            ("settlements", "village_code", "villages", "village_code", "settlement_id"),
            ("sites", "township_code", "townships", "township_code", "site_id")]
    for child, ccol, parent, pcol, id_col in refs:
        c, p = layers.get(child), layers.get(parent)
        if c is None or p is None or ccol not in c.columns or pcol not in p.columns:
            continue
        known = set(p[pcol].dropna().astype(str))
        bad = (c[ccol].notna() & ~c[ccol].astype(str).isin(known)).to_numpy()
        if bad.any():
            unknown = sorted(set(c.loc[bad, ccol].astype(str)))
            problems.append(f"{child}.{ccol}: {bad.sum()} row(s) ({format_ids(_ids(c, bad, id_col))}) "
                            f"point to unknown {parent} ({format_ids(unknown)}); add them to the "
                            f"{parent} layer or correct the codes.")


def _missing_seats(layers: dict[str, gpd.GeoDataFrame], problems: list[str]) -> None:
    seats, tw = layers.get("township_seats"), layers.get("townships")
    if seats is not None and tw is not None and "township_code" in tw.columns \
            and "township_code" in seats.columns:
        missing = sorted(set(tw["township_code"].dropna().astype(str))
                         - set(seats["township_code"].dropna().astype(str)))
        if missing:
            problems.append(f"township_seats.township_code: no seat for {len(missing)} township(s) "
                            f"({format_ids(missing)}); add one seat point per township.")


def _outside_boundary(layers: dict[str, gpd.GeoDataFrame], plan, problems: list[str]) -> None:
    """Points and townships beyond the boundary plus ``layers.boundary_tolerance_m``."""
    boundary, tw = layers.get("boundary"), layers.get("townships")
    if boundary is None or boundary.empty or boundary.crs is None:
        return
    tol = float(plan.get("layers.boundary_tolerance_m", 100.0))
    geoms = boundary.geometry.values
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(geoms):
        return
    area = shapely.buffer(shapely.union_all(geoms), tol)
    shapely.prepare(area)
    for name, id_col in _POINT_LAYERS:
        g = layers.get(name)
        if g is None or g.crs is None:
            continue
        pts = g.geometry.values
        usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
        pts_rep = shapely.point_on_surface(pts[usable])
        out = np.zeros(len(g), dtype=bool)
        out[usable] = ~shapely.covers(area, pts_rep)
        if out.any():
            problems.append(f"{name}.geometry: {out.sum()} feature(s) outside the district "
                            f"boundary (more than {tol:g} m; "
                            f"{format_ids(_ids(g, out, id_col))}); check their "
                            f"coordinates and CRS (GCJ-02 data needs --coords gcj02).")
    if tw is not None and tw.crs is not None and not tw.empty:
        polys = tw.geometry.values
        usable = ~(shapely.is_missing(polys) | shapely.is_empty(polys))
        out = np.zeros(len(tw), dtype=bool)
        out[usable] = ~shapely.covers(area, shapely.point_on_surface(polys[usable]))
        if out.any():
            problems.append(f"townships.geometry: {out.sum()} township(s) outside the "
                            f"district boundary ({format_ids(_ids(tw, out, 'township_code'))}); "
                            f"check their coordinates and CRS.")


def _outside_dem(layers: dict[str, gpd.GeoDataFrame], dem: dict, problems: list[str],
                 notes: list[str]) -> None:
    """Points outside the DEM's bounds (problems) and on its nodata (notes)."""
    x0, y0, x1, y1 = dem["bounds"]
    band, dem_transform = _dem_band(dem["path"], dem.get("tiles", ()), dem.get("void_value"),
                                    dem.get("window"))
    for name, id_col in _POINT_LAYERS:
        g = layers.get(name)
        if g is None or g.crs is None or g.empty:
            continue
        pts = g.geometry.values
        usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
        xy = shapely.get_coordinates(shapely.point_on_surface(pts[usable]))
        t = transformer(g.crs, dem["crs"])
        x, y = t.transform(xy[:, 0], xy[:, 1])
        out = np.zeros(len(g), dtype=bool)
        out[usable] = ~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
        if out.any():
            problems.append(f"{name}.geometry: {out.sum()} feature(s) outside the DEM "
                            f"({format_ids(_ids(g, out, id_col))}); give a DEM that covers "
                            f"the whole district (put all its SRTM .hgt / GeoTIFF tiles in "
                            f"the layers folder or a dem/ folder next to the layers; they "
                            f"are mosaicked on the fly).")
        inside = np.zeros(len(g), dtype=bool)
        inside[usable] = ~out[usable]
        if band is not None and inside.any():
            rows, cols = rasterio.transform.rowcol(dem_transform, x, y)
            rows = np.clip(np.asarray(rows), 0, band.shape[0] - 1)
            cols = np.clip(np.asarray(cols), 0, band.shape[1] - 1)
            void = np.zeros(len(g), dtype=bool)
            void[usable] = np.ma.getmaskarray(band)[rows, cols] & inside[usable]
            if void.any():
                notes.append(f"{name}: {void.sum()} feature(s) on DEM nodata (voids: "
                             f"{format_ids(_ids(g, void, id_col))}); their elevation is "
                             f"unknown (NaN) unless the DEM is filled.")
