"""Applying works: new links become paved roads, upgraded stretches are cut out of their road
lines and made paved, so the analysis can be re-run on the changed roads."""
from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS
from shapely.ops import substring

from kaizhou_gis.errors import LayerError, format_ids

log = logging.getLogger(__name__)


def apply_works(roads: gpd.GeoDataFrame, works: gpd.GeoDataFrame, *, plan=None,
                match_tolerance_m: float | None = None) -> gpd.GeoDataFrame:
    """The roads with the works built: new links added as paved roads, upgraded stretches paved.

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines (``road_id``, ``road_class``, ``surface``), in the works' CRS.
    works : GeoDataFrame
        As made by :func:`plan_works`: ``work_id``, ``type`` ("new"/"upgrade"), ``road_id`` of
        upgrades, geometry.
    plan : Plan, optional
        For the surface value of hardened roads (first of ``access.paved_surfaces``), the class of
        new links and the snap tolerance; "paved", "village" and 5 m otherwise.
    match_tolerance_m : float, optional
        An upgrade applies to the road row of its ``road_id`` whose line passes within this
        distance of the upgrade's midpoint (default: the snap tolerance plus 1 cm, since edge end
        points may have been moved onto a neighbouring road by snapping).

    Returns
    -------
    GeoDataFrame
        A new roads layer; an upgraded road is cut at the upgraded stretches into pieces with
        ids ``<road_id>#1``, ``#2``, ... (a stretch ending within ``match_tolerance_m`` of the
        road's end takes the road to its end: the network may have moved that end onto a
        junction). Input rows are never modified.
    """
    paved = plan["access.paved_surfaces"][0] if plan is not None else "paved"
    new_class = plan["links.new_link_road_class"] if plan is not None else "village"
    if match_tolerance_m is None:
        match_tolerance_m = (float(plan["access.snap_tolerance_m"]) if plan is not None else 5.0) + 0.01
    out = roads.copy()
    if "source" not in out.columns:
        out["source"] = ""
    if "road_id" not in out.columns:  # the network names such roads by their index label
        out["road_id"] = [str(i) for i in roads.index]
    if len(works) == 0:
        return out
    if roads.crs is not None and works.crs is not None and CRS(roads.crs) != CRS(works.crs):
        works = works.to_crs(roads.crs)
    _check_columns(works)
    up = works[works["type"] == "upgrade"]
    rows_of: dict[str, list] = {}
    for ix, rid in zip(out.index, out["road_id"].astype(str), strict=True):
        rows_of.setdefault(rid, []).append(ix)
    missing = sorted(set(up["road_id"].astype(str)) - set(rows_of))
    if missing:
        raise LayerError(f"works: upgrades name road_id {format_ids(missing)}, which are not in the "
                         f"roads layer; apply works to the roads they were made for.")
    geom_name = out.geometry.name
    pieces, drop = _upgraded_pieces(out, up, rows_of, paved=paved, match_tolerance_m=match_tolerance_m)
    out = out.drop(index=drop)
    new = works[works["type"] == "new"]
    add = gpd.GeoDataFrame({"road_id": new["work_id"].astype(str).to_numpy(), "road_class": new_class,
                            "surface": paved, "source": [f"proposed new link {w}" for w in new["work_id"]]},
                           geometry=new.geometry.to_numpy(), crs=out.crs)
    frames = [out]
    if pieces:
        frames.append(gpd.GeoDataFrame(pd.DataFrame(pieces), geometry=geom_name, crs=out.crs))
    if len(add):
        frames.append(add.rename_geometry(geom_name) if geom_name != "geometry" else add)
    res = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(res, geometry=geom_name, crs=roads.crs)


def _check_columns(works: gpd.GeoDataFrame) -> None:
    """The works have the columns apply_works needs and only the types new/upgrade."""
    for col in ("work_id", "type", "road_id"):
        if col not in works.columns:
            raise LayerError(f"works: column '{col}' is missing; apply_works needs work_id, type "
                             f"(new/upgrade) and road_id (of upgrades), as in access/works.gpkg.")
    bad = works.loc[~works["type"].isin(["new", "upgrade"]), "work_id"]
    if len(bad):
        raise LayerError(f"works: type must be 'new' or 'upgrade'; rows {format_ids(bad)} have another.")


def _upgraded_pieces(out: gpd.GeoDataFrame, up: gpd.GeoDataFrame, rows_of: dict[str, list], *, paved: str,
                     match_tolerance_m: float) -> tuple[list[dict], list]:
    """The road rows cut at the upgraded stretches (pieces, the upgraded ones paved) and the index
    labels of the rows they replace."""
    geom_name = out.geometry.name
    up_geoms = up.geometry.to_numpy()
    up_mid = shapely.line_interpolate_point(up_geoms, 0.5, normalized=True)
    up_ids = up["work_id"].astype(str).to_numpy()
    by_road: dict[str, list[int]] = {}
    for k, rid in enumerate(up["road_id"].astype(str)):
        by_road.setdefault(rid, []).append(k)
    pieces: list[dict] = []
    drop: list = []
    geom_of = dict(zip(out.index, out.geometry.to_numpy()))
    for rid, ks in by_road.items():
        for ix in rows_of[rid]:
            geom = geom_of[ix]
            base = out.loc[ix].to_dict()
            row_pieces: list[dict] = []
            hit = False
            for part in shapely.get_parts(geom):
                spans = [(_span(part, up_geoms[k], end_tol=match_tolerance_m), up_ids[k]) for k in ks
                         if shapely.distance(up_mid[k], part) < match_tolerance_m]
                hit |= bool(spans)
                _cut_part(part, spans, base, rid, row_pieces, geom_name=geom_name, paved=paved)
            if hit:  # rows of this road_id that no upgrade touches keep their original form
                drop.append(ix)
                pieces.extend(row_pieces)
    return pieces, drop


def _cut_part(part, spans: list, base: dict, rid: str, row_pieces: list[dict], *, geom_name: str,
              paved: str) -> None:
    """Append the pieces of one line ``part`` of road ``rid`` (row ``base``) cut at its upgraded
    ``spans`` to ``row_pieces``."""
    cuts = sorted({0.0, float(part.length)} | {x for (a, b), _ in spans for x in (a, b)})
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b - a <= 1e-6:
            continue
        mid = (a + b) / 2
        wids = [w for (lo, hi), w in spans if lo - 1e-6 <= mid <= hi + 1e-6]
        row = {**base, "road_id": f"{rid}#{len(row_pieces) + 1}",
               geom_name: substring(part, a, b) if spans else part}
        if wids:
            row["surface"] = paved
            row["source"] = f"upgraded by {';'.join(wids)}"
        row_pieces.append(row)


def _span(line, g, *, end_tol: float = 0.0) -> tuple[float, float]:
    """Start and end position along ``line`` of a stretch ``g`` lying on it.

    A stretch reaching within ``end_tol`` of an end of the line reaches that end: the network
    moved the line's end point (a gap closed at a junction, at most the snap tolerance), so the
    upgraded edge starts at the junction while the line starts up to ``end_tol`` short of it;
    left out, that stub would stay unpaved between the junction and the upgraded road."""
    d = shapely.line_locate_point(line, shapely.points(shapely.get_coordinates(g)))
    a, b = float(d.min()), float(d.max())
    if a <= end_tol:
        a = 0.0
    if b >= float(line.length) - end_tol:
        b = float(line.length)
    return (a, b)
