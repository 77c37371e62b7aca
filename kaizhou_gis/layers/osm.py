"""OpenStreetMap roads read with pyosmium (:func:`read_osm_roads`), and an extract larger than
the district clipped to the boundary plus ``layers.osm_clip_margin_m``.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from kaizhou_gis.crs import transformer
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers.contract import OSM_SUFFIXES
from kaizhou_gis.layers.geometry import _lineal


def _is_osm(path: Path) -> bool:
    return path.name.lower().endswith(OSM_SUFFIXES)


def _osm_highways(path: Path, bbox):
    """(way id, tags, runs of node lon/lat split where nodes are missing, number of missing
    nodes) of every highway way with a node in ``bbox``, and the counts of the other ways; read
    fully before returning, so that a broken file fails here."""
    import osmium

    out = []
    counts = {"not_road": 0, "away": 0}
    fp = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)))
    for w in fp:
        hw = w.tags.get("highway")
        if hw is None:
            counts["not_road"] += 1
            continue
        parts: list[list[tuple[float, float]]] = [[]]
        missing = 0
        for nd in w.nodes:  # type: ignore[union-attr]  # the filter passes ways only
            loc = nd.location
            if loc.valid():
                parts[-1].append((loc.lon, loc.lat))
            else:
                missing += 1
                if parts[-1]:
                    parts.append([])
        if bbox is not None and any(parts) and not any(bbox[0] <= x <= bbox[2] and bbox[1] <= y <= bbox[3]
                                        for part in parts for x, y in part):
            counts["away"] += 1
            continue
        tags = {k: w.tags.get(k, "") for k in ("highway", "name", "surface", "tracktype")}
        out.append((w.id, tags, parts, missing))
    return out, counts


def read_osm_roads(path: str | Path, *, notes: list[str] | None = None,
                   bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """The ways tagged ``highway=*`` of an OpenStreetMap file (``.osm.pbf``, ``.osm``, ...) as
    raw road rows in EPSG:4326, read with pyosmium.

    Columns: ``road_id`` (``osm<way id>``), ``name``, ``road_class`` (the raw highway value,
    mapped to a contract class later like any road file), ``surface`` and ``tracktype`` (raw
    tags, "" when absent), ``source``. An extract cut out of a larger map holds ways whose nodes
    lie partly outside it: such a way is cut where its nodes are missing (a MultiLineString when
    it leaves and comes back; never a straight chord over the missing nodes), and a way with
    fewer than two nodes in the file is dropped. Both are counted in ``notes`` with the reason,
    as are ways without a highway tag. ``bbox`` (lon/lat) skips ways with no node inside it
    (a country extract read for one district).
    """
    path = Path(path)
    ids, names, classes, surfaces, tracktypes, geoms = [], [], [], [], [], []
    dropped = cut = 0
    dropped_ids: list[str] = []
    cut_ids: list[str] = []
    try:
        ways, counts = _osm_highways(path, bbox)
    except (RuntimeError, OSError, ValueError) as e:  # libosmium reports a bad file as RuntimeError
        raise LayerError(f"roads: {path.name} is not a readable OpenStreetMap file ({e}); give an "
                         f"OSM extract (.osm.pbf or .osm XML), e.g. re-download it.") from None
    not_road, away = counts["not_road"], counts["away"]
    for wid, tags, parts, missing in ways:
        hw = tags["highway"]
        parts = [p for p in parts if len(p) >= 2]
        if not parts:
            dropped += 1
            dropped_ids.append(f"osm{wid}")
            continue
        if missing:
            cut += 1
            cut_ids.append(f"osm{wid}")
        ids.append(f"osm{wid}")
        names.append(tags.get("name", ""))
        classes.append(hw)
        surfaces.append(tags.get("surface", ""))
        tracktypes.append(tags.get("tracktype", ""))
        geoms.append(shapely.LineString(parts[0]) if len(parts) == 1
                     else shapely.MultiLineString(parts))
    if not ids:
        where = " inside the district's box" if bbox is not None else ""
        raise LayerError(f"roads: {path.name} holds no OSM way tagged highway=* with two nodes in "
                         f"the file{where}; pass a road extract of the district (e.g. a Geofabrik "
                         f".osm.pbf) or another road file.")
    if notes is not None:
        if away:
            notes.append(f"roads: {away} OSM highway way(s) wholly outside the district's box "
                         f"(boundary + layers.osm_clip_margin_m) were skipped.")
        if not_road:
            notes.append(f"roads: {not_road} OSM way(s) without a highway tag (rivers, power lines, "
                         f"buildings, ...) are not roads and were left out.")
        if dropped:
            notes.append(f"roads: {dropped} OSM highway way(s) dropped: fewer than two of their "
                         f"nodes are in {path.name} (the extract was cut around them; "
                         f"{format_ids(dropped_ids)}).")
        if cut:
            notes.append(f"roads: {cut} OSM highway way(s) truncated: some of their nodes are not in "
                         f"{path.name} (cut at the extract's edge), so only the parts inside are "
                         f"used ({format_ids(cut_ids)}).")
    return gpd.GeoDataFrame({
        "road_id": ids, "name": names, "road_class": classes, "surface": surfaces,
        "tracktype": tracktypes, "source": "OpenStreetMap",
    }, geometry=geoms, crs="EPSG:4326")


def osm_roads_layer(osm: str | Path, boundary: str | Path, *, plan,
                    crs: str | None = None) -> tuple[gpd.GeoDataFrame, list[str]]:
    """The roads layer of a district from a (large) OSM extract: the highway ways near the
    district (boundary + ``layers.osm_clip_margin_m``), cut at that line, without the classes
    that carry no vehicle; raw OSM values (``road_class`` = highway, ``surface``, ``tracktype``)
    kept for the loader to classify. Returns the layer (EPSG:4326) and the notes."""
    notes: list[str] = []
    try:
        b = pyogrio.read_dataframe(boundary)
    except Exception as e:  # pyogrio errors
        raise LayerError(f"boundary: cannot read {boundary} ({type(e).__name__}: {e}); give the "
                         f"district boundary as GeoJSON, GeoPackage or Shapefile.") from None
    if b.crs is None:
        if crs is None:
            raise LayerError(f"boundary: {boundary} declares no CRS; pass --crs (e.g. EPSG:4490).")
        b = b.set_crs(crs)
    b = b.to_crs(plan.work_crs)
    area = _clip_area(b, plan)
    if area is None:
        raise LayerError(f"boundary: {boundary} holds no polygon; give the district boundary.")
    x0, y0, x1, y1 = transformer(plan.work_crs, "EPSG:4326").transform_bounds(*area[0].bounds)
    bbox = (x0, y0, x1, y1)
    roads = read_osm_roads(osm, notes=notes, bbox=bbox).to_crs(plan.work_crs)
    roads = _clip_roads(roads, area, notes)
    excluded = {str(v).strip().lower() for v in plan.get("layers.non_vehicle_classes", [])}
    excl = roads["road_class"].str.lower().isin(excluded).to_numpy()
    if excl.any():
        counts = roads.loc[excl, "road_class"].str.lower().value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        notes.append(f"roads: {int(excl.sum())} way(s) of classes that carry no vehicle were left "
                     f"out ({', '.join(f'{k} {v}' for k, v in counts.items())}; "
                     f"layers.non_vehicle_classes).")
    return roads[~excl].to_crs("EPSG:4326").reset_index(drop=True), notes


def _clip_area(boundary: gpd.GeoDataFrame, plan) -> tuple | None:
    """(district boundary + layers.osm_clip_margin_m, margin) in the boundary's CRS, or None."""
    if boundary.crs is None or boundary.empty:
        return None
    g = boundary.geometry.values
    g = g[~(shapely.is_missing(g) | shapely.is_empty(g))]
    if not len(g):
        return None
    margin = float(plan.get("layers.osm_clip_margin_m", 3000.0))
    return shapely.buffer(shapely.union_all(g), margin), margin


def _clip_roads(roads: gpd.GeoDataFrame, area: tuple, notes: list[str]) -> gpd.GeoDataFrame:
    """An OSM extract larger than the district, cut to ``area`` = (polygon in the roads' CRS,
    margin in m, plan key): ways wholly outside are left out, ways crossing its edge are cut
    there (counted in ``notes``)."""
    poly, margin = area
    geoms = roads.geometry.values
    shapely.prepare(poly)
    inside = shapely.covers(poly, geoms)
    touches = shapely.intersects(poly, geoms)
    outside = ~touches
    crossing = touches & ~inside
    if not outside.any() and not crossing.any():
        return roads
    out = roads.copy()
    if crossing.any():
        cut = shapely.intersection(geoms[crossing], poly)
        out.loc[crossing, out.geometry.name] = np.array([_lineal(g) for g in cut], dtype=object)
    keep = ~outside & ~(shapely.is_empty(out.geometry.values) | shapely.is_missing(out.geometry.values))
    what = []
    if (~keep).any():
        what.append(f"{int((~keep).sum())} way(s) outside the boundary + {margin:g} m were left out")
    if crossing.any():
        what.append(f"{int(crossing.sum())} cut at the boundary + {margin:g} m")
    notes.append(f"roads: the OSM extract reaches beyond the district; {' and '.join(what)} "
                 f"(layers.osm_clip_margin_m).")
    return out[keep]
