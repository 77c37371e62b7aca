"""Reading and checking every layer: :func:`check_layers` collects every problem and returns a
:class:`~kaizhou_gis.layers.model.LayerReport`; :func:`load_layers` raises one LayerError.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.windows
import shapely
from pyproj import CRS

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers import checks
from kaizhou_gis.layers.columns import _check_columns, estimate_poor_population
from kaizhou_gis.layers.contract import (
    _TOWNSHIP_KINDS,
    _VILLAGE_KINDS,
    NONEMPTY_LAYERS,
    OPTIONAL_LAYERS,
    SCHEMA,
    VECTOR_LAYERS,
    _ids,
)
from kaizhou_gis.layers.crosschecks import _cross_checks
from kaizhou_gis.layers.dem import _check_dem, _crs_label, dem_window_margin_m
from kaizhou_gis.layers.geometry import _check_geometry
from kaizhou_gis.layers.model import LayerReport, Layers
from kaizhou_gis.layers.osm import _clip_area, _clip_roads, _is_osm
from kaizhou_gis.layers.read import _apply_aliases, _layer_metadata, _read_vector
from kaizhou_gis.layers.roads import _explode_roads, _normalize_roads, _unique_road_ids
from kaizhou_gis.layers.sources import _attribution, _known_encoding, _resolve, _Source, default_layers_dir

#: one logger for the layer package (its messages read "kaizhou_gis.layers: ..." as before the split)
log = logging.getLogger("kaizhou_gis.layers")


def check_layers(path: str | Path | None = None, *, plan, crs: str | None = None,
                 encoding: str | None = None, coords: str = "wgs84") -> LayerReport:
    """Read and check every layer; collect every problem instead of stopping at the first.

    Parameters
    ----------
    path : str or Path, optional
        GeoPackage, folder or TOML mapping (see the package docstring); None for the default
        layers (:func:`default_layers_dir`).
    plan : Plan
        Gives the work CRS, the column aliases and the checking tolerances.
    crs : str, optional
        CRS of layers (and a DEM) that declare none, e.g. ``"EPSG:4490"``.
    encoding : str, optional
        Text encoding of Shapefiles without a ``.cpg`` (e.g. ``"GBK"``).
    coords : {"wgs84", "gcj02"}
        ``"gcj02"``: vector coordinates are GCJ-02 (Gaode/AMap) and are converted to WGS84 first.

    Returns
    -------
    LayerReport
    """
    _check_options(crs, encoding, coords)
    problems: list[str] = []
    notes: list[str] = []
    path, sources, dem_src, folder, db_url = _find_sources(path, problems)
    description = db_url or str(path)
    if path.exists() and db_url is None:
        _missing_layers(path, sources, problems)
    loaded, metadata, report_rows = _read_layers(sources, plan=plan, crs=crs, encoding=encoding,
                                                 coords=coords, problems=problems, notes=notes)
    dem_row: dict[str, Any] = {"layer": "dem", "file": dem_src.describe() if dem_src else "",
                               "rows": "", "crs": "", "bounds": None}
    dem_info: dict[str, Any] = {"path": None}
    if path.exists() and (db_url is None or dem_src is not None):  # (database: dbio said it)
        dem_info = _read_dem(dem_src, path, loaded, plan=plan, crs=crs, problems=problems,
                             notes=notes, row=dem_row)
    estimated: list[dict] = []
    if "settlements" in loaded:
        loaded["settlements"] = estimate_poor_population(loaded["settlements"], plan, problems, notes,
                                                         estimated)
    _cross_checks(loaded, dem_info, plan, problems, notes)
    checks.dem_point_problems(loaded, dem_info, plan, problems, notes)
    checks.count_problems(loaded, plan, problems, notes)
    checks.encoding_problems(loaded, plan, problems, encoding=encoding,
                             layer_encodings={n: s.encoding for n, s in sources.items()})
    # count problems per layer by their "layer." / "layer:" prefix
    for row in report_rows + [dem_row]:
        row["problems"] = sum(1 for p in problems if re.match(rf"^{row['layer']}[.:\s]", p))
    if path.exists():
        report_rows.append(dem_row)
    ok = not problems
    layers = None
    if ok:
        loaded = {n: canonical_order(n, g) for n, g in loaded.items()}
        layers = Layers(
            boundary=loaded["boundary"], townships=loaded["townships"],
            township_seats=loaded["township_seats"], villages=loaded["villages"],
            settlements=loaded["settlements"], roads=loaded["roads"],
            dem_path=str(dem_info["path"]), sites=loaded.get("sites"),
            source=description, attribution=_attribution(folder), notes=list(notes),
            dem_crs=dem_info.get("assigned_crs"), metadata=metadata, estimated=estimated,
            dem_tiles=tuple(str(t) for t in dem_info.get("tiles", ())),
            dem_nodata=dem_info.get("void_value"), dem_window=dem_info.get("window"))
    for n in notes:
        log.info("%s", n)
    return LayerReport(ok=ok, layers=layers, rows=report_rows, problems=problems, notes=notes,
                       source=description)


def _check_options(crs: str | None, encoding: str | None, coords: str) -> None:
    """The options ``--crs``, ``--encoding`` and ``--coords`` (an OptionError when wrong)."""
    from kaizhou_gis.errors import OptionError

    if coords not in ("wgs84", "gcj02"):
        raise OptionError(f"--coords {coords}: use wgs84 or gcj02.")
    if crs is not None:
        try:
            CRS.from_user_input(crs)
        except Exception as e:  # pyproj CRSError
            raise OptionError(f"--crs {crs}: not a CRS ({e}); use an EPSG code like EPSG:4490.") from None
    if encoding is not None and not _known_encoding(encoding):
        raise OptionError(f"--encoding {encoding}: not a known text encoding; use e.g. GBK, "
                          f"GB18030 or UTF-8.")


def _find_sources(path: str | Path | None, problems: list[str]
                  ) -> tuple[Path, dict[str, _Source], _Source | None, Path, str | None]:
    """(path, layer sources, DEM source, folder holding README.md, database URL or None) of
    ``--layers``: a postgresql:// URL, a file, folder or TOML mapping, or the default layers."""
    from kaizhou_gis import dbio

    if dbio.is_db_url(path):  # postgresql://USER@HOST:PORT/DB?schema=S
        tables, dem_path, target = dbio.resolve_url(path, VECTOR_LAYERS, OPTIONAL_LAYERS, problems)
        sources = {n: _Source(Path(d.describe()), db=d) for n, d in tables.items()}
        dem_src = _Source(dem_path) if dem_path is not None else None
        return Path.cwd(), sources, dem_src, Path.cwd(), target.describe()
    path = Path(path) if path is not None else default_layers_dir()
    sources, dem_src, folder = _resolve(path, problems)
    return path, sources, dem_src, folder, None


def _missing_layers(path: Path, sources: dict[str, _Source], problems: list[str]) -> None:
    """A problem for every contract layer not found at ``path``."""
    for name in VECTOR_LAYERS:
        if name not in sources:
            if name == "roads" and any(problem.startswith("roads: several OSM files")
                                       for problem in problems):
                continue
            osm_hint = (" (for roads also an OpenStreetMap extract: roads.osm.pbf, or the only "
                        "*.osm.pbf / *.osm / *.pbf file in the folder)" if name == "roads" else "")
            problems.append(f"{name}: layer not found in {path}; add a '{name}' layer to the "
                            f"GeoPackage, a {name}.<shp|gpkg|geojson|...> file to the folder"
                            f"{osm_hint}, or a '{name} = \"file\"' line to the TOML mapping.")


def _read_layers(sources: dict[str, _Source], *, plan, crs, encoding, coords, problems: list[str],
                 notes: list[str]) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, dict], list[dict]]:
    """Every vector layer found, read and checked alone: (layers, their metadata, report rows)."""
    from kaizhou_gis import dbio

    aliases = plan.section("aliases")
    loaded: dict[str, gpd.GeoDataFrame] = {}
    metadata: dict[str, dict] = {}
    report_rows: list[dict] = []
    for name in VECTOR_LAYERS + OPTIONAL_LAYERS:
        src = sources.get(name)
        if src is None:
            continue
        row: dict[str, Any] = {"layer": name, "file": src.describe(), "rows": 0, "crs": "",
                               "bounds": None}
        clip_to = None
        if name == "roads" and _is_osm(src.path) and loaded.get("boundary") is not None:
            clip_to = _clip_area(loaded["boundary"], plan)
        first_problem = len(problems)
        try:
            gdf = _load_one(name, src, plan=plan, crs=crs, encoding=encoding, coords=coords,
                            aliases=aliases, problems=problems, notes=notes, row=row,
                            clip_to=clip_to)
        except Exception as e:  # a file this package did not foresee: report it, never a traceback
            log.debug("reading %s failed", name, exc_info=True)
            problems.append(f"{name}: cannot use {src.describe()} ({type(e).__name__}: {e}); "
                            f"check the file against the layer contract (README.md, "
                            f"'Layer contract').")
            gdf = None
        if src.db is not None:  # name schema.table.column in what was found
            dbio.name_columns(problems, first_problem, name, src.db)
        if gdf is not None:
            loaded[name] = gdf
            meta = _layer_metadata(src)
            if meta:
                metadata[name] = meta
        report_rows.append(row)
    return loaded, metadata, report_rows


def _read_dem(dem_src: _Source | None, path: Path, loaded: dict[str, gpd.GeoDataFrame], *, plan,
              crs, problems: list[str], notes: list[str], row: dict) -> dict[str, Any]:
    """:func:`~kaizhou_gis.layers.dem._check_dem` in the layers' window; a DEM that fails to read
    becomes a problem and ``{"path": None}``."""
    try:
        return _check_dem(dem_src, path, crs=crs, problems=problems, notes=notes, row=row,
                          frames=list(loaded.values()), margin_m=dem_window_margin_m(plan))
    except rasterio.errors.RasterioIOError as e:  # opened, but its data cannot be read
        log.debug("checking the DEM failed", exc_info=True)
        problems.append(checks.dem_read_problem(dem_src.describe() if dem_src else str(path), e))
    except Exception as e:  # rasterio errors on odd rasters
        log.debug("checking the DEM failed", exc_info=True)
        problems.append(f"dem: cannot use {dem_src.describe() if dem_src else path} "
                        f"({type(e).__name__}: {e}); give a single-band elevation raster.")
    return {"path": None}


def canonical_order(name: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The layer's rows sorted by its id column (ties: by geometry WKB, then the other columns),
    index 0..n-1: every step then sees the same rows in the same order whatever order the file
    gave them in (a File Geodatabase may return rows in another order than a GeoPackage)."""
    if gdf is None or len(gdf) < 2:
        return gdf
    id_col = SCHEMA[name][1] if name in SCHEMA else None
    geom = gdf.geometry
    other = [c for c in gdf.columns if c not in (id_col, geom.name)]
    keys = pd.DataFrame({
        "id": gdf[id_col].astype(str).to_numpy() if id_col in gdf.columns else "",
        "wkb": [None if g is None else shapely.to_wkb(g, hex=True, output_dimension=2)
                for g in geom.array],
        "rest": ["\x1f".join(map(str, r)) for r in gdf[other].itertuples(index=False, name=None)]
        if other else ""})
    order = keys.fillna("").sort_values(["id", "wkb", "rest"], kind="mergesort").index.to_numpy()
    if (order == np.arange(len(gdf))).all():
        return gdf.reset_index(drop=True)
    return gdf.iloc[order].reset_index(drop=True)


def load_layers(path: str | Path | None = None, *, plan, crs: str | None = None,
                encoding: str | None = None, coords: str = "wgs84") -> Layers:
    """Read, check and reproject the input layers; raise one LayerError listing every problem.

    Parameters are those of :func:`check_layers`.

    Returns
    -------
    Layers
        Vector layers in ``plan.work_crs`` with the contract's columns and types.

    Raises
    ------
    LayerError
        When any layer is missing, unreadable or breaks the layer contract.
    """
    report = check_layers(path, plan=plan, crs=crs, encoding=encoding, coords=coords)
    if not report.ok:
        raise LayerError(report.problem_text())
    assert report.layers is not None  # an ok report holds its layers
    return report.layers


def _lonlat_bounds(gdf: gpd.GeoDataFrame) -> tuple[float, float, float, float] | None:
    if gdf.empty:
        return None
    b = gdf.total_bounds
    if not np.all(np.isfinite(b)):
        return None
    t = transformer(gdf.crs, "EPSG:4326")
    x0, y0, x1, y1 = t.transform_bounds(*b)
    return float(x0), float(y0), float(x1), float(y1)


def _load_one(name: str, src: _Source, *, plan, crs, encoding, coords, aliases, problems,
              notes, row, clip_to=None) -> gpd.GeoDataFrame | None:
    """One layer read, its CRS and coordinates checked, its geometries and columns checked
    against the contract, reprojected to the work CRS; None when it cannot be used (problems
    added). ``row`` (the layer's report row) gets rows, CRS and lon/lat bounds."""
    raw = _read_raw(name, src, plan=plan, encoding=encoding, problems=problems, notes=notes,
                    clip_to=clip_to)
    if raw is None:
        return None
    row["rows"] = len(raw)
    if len(raw) == 0 and name in NONEMPTY_LAYERS:
        problems.append(f"{name}: the layer has no features ({src.describe()}); the analysis "
                        f"needs the district's {name.replace('_', ' ')} - give the layer with "
                        f"its features (check the file, the layer name and any filter used "
                        f"to export it).")
    raw = _given_crs(name, src, raw, crs, problems, notes, row)
    raw = _checked_coordinates(name, src, raw, crs, aliases, problems, notes, row)
    if raw is None:
        return None
    if raw.crs is not None:
        row["crs"] = _crs_label(raw.crs)
    gdf = _apply_aliases(raw, name, aliases, notes)
    given_cols = set(gdf.columns)
    gdf = _check_geometry(name, gdf, problems, notes)
    if name == "roads" and "road_id" not in gdf.columns:
        gdf["road_id"] = [f"r{i + 1}" for i in range(len(gdf))]
        notes.append(f"roads.road_id: no column; ids r1..r{len(gdf)} assigned in file order.")
    gdf = _check_columns(name, gdf, plan, problems, notes)
    if name == "roads" and "road_class" in gdf.columns:
        gdf = _normalize_roads(gdf, plan, problems, notes)
    if name == "roads" and "road_id" in gdf.columns:
        gdf = _unique_road_ids(gdf, notes)
    _check_kinds(name, gdf, given_cols, problems, notes)
    if gdf.crs is None:
        return gdf
    return _to_work_crs(name, src, gdf, plan=plan, coords=coords, problems=problems, notes=notes,
                        row=row, clip_to=clip_to)


def _read_raw(name: str, src: _Source, *, plan, encoding, problems: list[str], notes: list[str],
              clip_to) -> gpd.GeoDataFrame | None:
    """The layer as read from its file (OSM: only the ways near the district), or None."""
    if _is_osm(src.path) and name != "roads":
        problems.append(f"{name}: OSM files are read as roads only; give {name} as "
                        f"GeoPackage, Shapefile or GeoJSON.")
        return None
    bbox: tuple[float, float, float, float] | None = None
    if clip_to is not None:  # read only the OSM ways near the district
        x0, y0, x1, y1 = transformer(plan.work_crs, "EPSG:4326").transform_bounds(*clip_to[0].bounds)
        bbox = (x0, y0, x1, y1)
    try:
        raw = _read_vector(name, src, encoding, notes, bbox=bbox)
    except LayerError as e:
        problems.append(str(e))
        return None
    except Exception as e:  # GDAL/pyogrio errors come in many types
        problems.append(f"{name}: cannot read {src.describe()} ({type(e).__name__}: {e}); "
                        f"check that GDAL can open it (ogrinfo) and that the layer name is right.")
        return None
    if not isinstance(raw, gpd.GeoDataFrame) or raw.geometry.name not in raw.columns:
        problems.append(f"{name}: {src.describe()} has no geometry column; give the layer "
                        f"geometries (for a table with lon/lat columns, save it as GeoJSON first).")
        return None
    return raw


def _given_crs(name: str, src: _Source, raw: gpd.GeoDataFrame, crs, problems: list[str],
               notes: list[str], row: dict) -> gpd.GeoDataFrame:
    """The layer's CRS: its own, the TOML mapping's (wins), or ``--crs`` when it declares none."""
    layer_crs = src.crs or None
    if raw.crs is None:
        given = layer_crs or crs
        if given is None:
            problems.append(f"{name}: no CRS ({src.describe()} declares none); pass --crs (e.g. "
                            f"--crs EPSG:4490 for CGCS2000 lon/lat) or add a .prj / set the CRS "
                            f"in the file.")
            row["crs"] = "none"
        else:
            raw = raw.set_crs(given)
            notes.append(f"{name}: no CRS in the file; using {given}.")
    elif layer_crs is not None:
        raw = raw.set_crs(layer_crs, allow_override=True)
    return raw


def _checked_coordinates(name: str, src: _Source, raw: gpd.GeoDataFrame, crs, aliases,
                         problems: list[str], notes: list[str], row: dict) -> gpd.GeoDataFrame | None:
    """None (a problem added) for NaN/infinite coordinates, swapped or out-of-range lon/lat; a
    GeoJSON read as WGS84 whose coordinates are not lon/lat gets ``--crs``."""
    nonfinite = checks.nonfinite_rows(raw)
    if nonfinite.any():
        ids: list[str] | None = _ids(_apply_aliases(raw, name, aliases, []), nonfinite, SCHEMA[name][1])
        problems.append(f"{name}.geometry: coordinates that are not numbers (NaN or infinite) in "
                        f"{nonfinite.sum()} row(s) ({format_ids(ids)}); give those features real "
                        f"coordinates (an empty lon/lat cell becomes NaN) or remove them.")
        return None
    if not (raw.crs is not None and raw.crs.is_geographic and len(raw)):
        return raw
    gb = shapely.bounds(raw.geometry.values)  # NaN rows for missing/empty geometries
    with np.errstate(invalid="ignore"):
        off = (gb[:, 0] < -180) | (gb[:, 2] > 180) | (gb[:, 1] < -90) | (gb[:, 3] > 90)
    has = ~np.isnan(gb).any(axis=1)
    if off.any() and checks.swapped_lonlat(gb[off & has]):
        ids = _ids(_apply_aliases(raw, name, aliases, []), off, SCHEMA[name][1]) \
            if not off[has].all() else None
        problems.append(checks.swapped_message(name, gb[off & has], ids))
        row["crs"] = _crs_label(raw.crs)
        return None
    if off.any() and off[has].all():
        b = (np.nanmin(gb[:, 0]), np.nanmin(gb[:, 1]), np.nanmax(gb[:, 2]), np.nanmax(gb[:, 3]))
        extent = f"x {b[0]:.6g} .. {b[2]:.6g}, y {b[1]:.6g} .. {b[3]:.6g}"
        if crs is not None and (src.crs or None) is None \
                and src.path.suffix.lower() in (".geojson", ".json"):
            # GeoJSON without a "crs" member is read as WGS84 whatever its coordinates are
            raw = raw.set_crs(crs, allow_override=True)
            notes.append(f"{name}: {src.describe()} declares no CRS and its coordinates are "
                         f"not lon/lat ({extent}); using --crs {crs}.")
        else:
            problems.append(
                f"{name}: coordinates are not longitude/latitude ({extent}) although the "
                f"layer's CRS is {_crs_label(raw.crs)} (GeoJSON without a \"crs\" member is "
                f"always read as WGS84); give the layer's real CRS: --crs EPSG:4545 (say) "
                f"for a GeoJSON file, `crs = \"EPSG:...\"` for this layer in a TOML mapping, "
                f"or fix the .prj.")
            row["crs"] = _crs_label(raw.crs)
            return None
    elif off.any():
        id_col = SCHEMA[name][1]
        ids = _ids(_apply_aliases(raw, name, aliases, []), off, id_col)
        problems.append(f"{name}.geometry: longitude/latitude out of range in {off.sum()} "
                        f"row(s) ({format_ids(ids)}); correct their coordinates.")
        row["crs"] = _crs_label(raw.crs)
        return None
    return raw


def _check_kinds(name: str, gdf: gpd.GeoDataFrame, given_cols: set, problems: list[str],
                 notes: list[str]) -> None:
    """townships.kind in 街道/镇/乡 (derived from names: a note), villages.kind in 村/社区."""
    if name == "townships" and "kind" in gdf.columns:
        bad = ~gdf["kind"].isin(_TOWNSHIP_KINDS).to_numpy()
        if bad.any() and "kind" not in given_cols:
            notes.append(f"townships.kind: {bad.sum()} name(s) end in none of 街道/镇/乡 "
                         f"({format_ids(_ids(gdf, bad, 'township_code'))}); kind left empty.")
        elif bad.any():
            problems.append(f"townships.kind: not 街道/镇/乡 in {bad.sum()} row(s) "
                            f"({format_ids(_ids(gdf, bad, 'township_code'))}); use 街道, 镇 or 乡.")
    if name == "villages" and "kind" in gdf.columns:
        bad = ~gdf["kind"].isin(_VILLAGE_KINDS).to_numpy()
        if bad.any():
            problems.append(f"villages.kind: not 村/社区 in {bad.sum()} row(s) "
                            f"({format_ids(_ids(gdf, bad, 'village_code'))}); use 村 or 社区.")


def _to_work_crs(name: str, src: _Source, gdf: gpd.GeoDataFrame, *, plan, coords,
                 problems: list[str], notes: list[str], row: dict, clip_to) -> gpd.GeoDataFrame | None:
    """GCJ-02 converted to WGS84, lon/lat bounds noted, reprojected to the work CRS, OSM roads
    clipped, multi-part roads split, the contract's columns first."""
    use_gcj = (src.coords or coords) == "gcj02"
    usable = ~(shapely.is_missing(gdf.geometry.values) | shapely.is_empty(gdf.geometry.values))
    if use_gcj:
        from kaizhou_gis.terrain.coords import convert_gcj02_to_wgs84
        gdf = gdf.copy()
        if usable.any():
            sub = gdf.loc[usable]
            gdf.loc[usable, gdf.geometry.name] = convert_gcj02_to_wgs84(sub.geometry).values
        notes.append(f"{name}: coordinates converted from GCJ-02 to WGS84.")
    if usable.any():
        row["bounds"] = _lonlat_bounds(gdf.loc[usable])
    try:
        gdf = gdf.to_crs(plan.work_crs)
    except Exception as e:  # pyproj errors
        problems.append(f"{name}: cannot reproject from {_crs_label(gdf.crs)} to {plan.work_crs} "
                        f"({e}); check the layer's CRS.")
        return None
    if name == "roads" and clip_to is not None and _is_osm(src.path):
        gdf = _clip_roads(gdf, clip_to, notes)
    if name == "roads":
        gdf = _explode_roads(gdf, notes)
    ordered = [c.name for c in SCHEMA[name][2] if c.name in gdf.columns]
    rest = [c for c in gdf.columns if c not in ordered and c != gdf.geometry.name]
    gdf = gdf[ordered + rest + [gdf.geometry.name]]
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    return gdf.reset_index(drop=True)
