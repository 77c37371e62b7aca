"""The data the maps show, gathered once per run from the layers and the results of the steps
the maps need, enriched and in the map CRS (:func:`gather`)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.admin import settlement_townships, village_townships
from kaizhou_gis.errors import KaizhouGISError
from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.maps.specs import _bool, _col, _num
from kaizhou_gis.results import (
    AccessData,
    IndustryData,
    RelocationData,
    StepContext,
    StepNeeds,
    StepResult,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# data gathered once per run
# --------------------------------------------------------------------------------------------

@dataclass
class MapData:
    """Everything the maps show, in the map CRS (EPSG:4326, or GCJ-02 for the Gaode variant).

    ``simplified`` holds line/polygon layers simplified for district and township scales.
    """

    boundary: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    seats: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    settlements: gpd.GeoDataFrame | None
    roads: dict[str, gpd.GeoDataFrame]
    works: gpd.GeoDataFrame | None
    sites: gpd.GeoDataFrame | None
    assignment: gpd.GeoDataFrame | None
    hosts: gpd.GeoDataFrame | None
    missing: dict[str, str]
    notes: list[str]
    synthesized: list[str]
    attribution: str
    township_names: dict[str, str]
    work_townships: gpd.GeoDataFrame  # townships in the work CRS (for clipping)
    roads_work: dict[str, gpd.GeoDataFrame]
    works_work: gpd.GeoDataFrame | None
    basemap: str = "offline"  # "gaode": coordinates shifted to GCJ-02
    #: :func:`kaizhou_gis.provenance.data_status` of the run (title boxes, PNG title blocks).
    status: dict = field(default_factory=dict)
    #: what the maps prepare once per run from these frames (:mod:`kaizhou_gis.maps.contents`)
    cache: dict = field(default_factory=dict, repr=False, compare=False)


def _step_data(ctx: StepContext, needs: StepNeeds, name: str, missing: dict[str, str]) -> Any:
    try:
        res = needs.result(name)
    except KaizhouGISError as e:
        missing[name] = str(e).splitlines()[0][:300]
        log.warning("maps: %s layers left out: %s", name, missing[name])
        return None
    except Exception as e:  # another step's bug must not cost the maps
        missing[name] = f"{type(e).__name__}: {e}"[:300]
        log.warning("maps: %s step crashed; its layers are left out", name, exc_info=True)
        ctx.failed.setdefault(name, missing[name])
        return None
    return res.data if isinstance(res, StepResult) else None


def gather(ctx: StepContext, needs: StepNeeds, basemap: str | None = None) -> MapData:
    """The maps' data of a run: the results of the steps the maps need (``needs``, from
    ``ctx.needs_of("maps")``; a step that failed is left out and named in ``missing``) and the
    run's layers, plan and data status given to :func:`map_data`.

    ``basemap`` (default: the run's ``--basemap``) "gaode" shifts everything to GCJ-02.
    """
    missing: dict[str, str] = {}
    access = _step_data(ctx, needs, "access", missing)
    reloc = _step_data(ctx, needs, "relocation", missing)
    industry = _step_data(ctx, needs, "industry", missing)
    return map_data(ctx.layers, ctx.plan, access=access, relocation=reloc, industry=industry,
                    missing=missing, data_status=ctx.data_status,
                    basemap=basemap or ctx.options.get("basemap") or "offline")


def map_data(L, plan, *, access: AccessData | None, relocation: RelocationData | None,
             industry: IndustryData | None, missing: dict[str, str], data_status: dict,
             basemap: str = "offline") -> MapData:
    """Everything the maps show, from the layers ``L``, the plan and the results of the access,
    relocation and industry steps (None: left out, with the reason in ``missing``), enriched and
    in the map CRS (``plan["crs.map"]``; GCJ-02 for ``basemap="gaode"``)."""
    cfg = plan.section("maps")
    missing = dict(missing)
    # what the loader filled in or changed (e.g. no poverty_village column: every village is
    # drawn as "other village") belongs on the page next to the layers it explains
    notes: list[str] = [f"图层 layers: {n}" for n in (getattr(L, "notes", None) or [])]

    tw_names = dict(zip(L.townships["township_code"].astype(str), L.townships["name"].astype(str)))
    villages = _villages(L, tw_names, access)
    settlements = _settlements(L.settlements, villages, relocation, access)
    sites, assignment = _sites_and_assignment(relocation, settlements, notes)
    hosts = _hosts(industry, villages, notes)
    works = _works(access)
    paved_words = {str(s).lower() for s in plan.get("access.paved_surfaces", ["paved"])}
    roads_work = _roads_by_scale(L.roads, paved_words, cfg)
    work_townships = L.townships.copy()
    work_townships["township_code"] = work_townships["township_code"].astype(str)

    to_map = _map_crs_converter(basemap, plan["crs.map"])
    tw_tol = float(cfg["simplify_township_m"])
    townships = work_townships.copy()
    townships[townships.geometry.name] = townships.geometry.simplify(tw_tol)
    boundary = L.boundary.copy()
    boundary[boundary.geometry.name] = boundary.geometry.simplify(tw_tol)
    seats = L.township_seats.copy()
    seats["township_code"] = seats["township_code"].astype(str)

    works_work = works
    if works is not None:
        works_work = works.copy()
        works_work[works_work.geometry.name] = works_work.geometry.simplify(tw_tol)

    synthesized = list(data_status["synthetic_layers"])
    if basemap == "gaode":
        notes.append("坐标已转换为 GCJ-02 以配合高德底图 coordinates shifted to GCJ-02 to match Gaode tiles.")
    return MapData(
        boundary=to_map(boundary), townships=to_map(townships), seats=to_map(seats),
        villages=to_map(villages), settlements=to_map(settlements) if settlements is not None else None,
        roads={k: to_map(v) for k, v in roads_work.items()},
        works=to_map(works_work) if works_work is not None else None,
        sites=to_map(sites) if sites is not None else None,
        assignment=to_map(assignment) if assignment is not None else None,
        hosts=to_map(hosts) if hosts is not None and len(hosts) else hosts,
        missing=missing, notes=notes, synthesized=synthesized,
        attribution=getattr(L, "attribution", "") or "", township_names=tw_names,
        work_townships=work_townships, roads_work=roads_work, works_work=works_work, basemap=basemap,
        status=data_status)


def _villages(L, tw_names: dict[str, str], access) -> gpd.GeoDataFrame:
    """The villages layer's columns + elevation from the DEM + poverty and access status."""
    villages = L.villages.copy()
    villages["township_code"] = villages["township_code"].astype(str)
    villages["township_name"] = villages["township_code"].map(tw_names)
    try:
        from kaizhou_gis.terrain import sample_elevation
        with L.open_dem() as ds:
            villages["elevation_m"] = sample_elevation(villages.geometry, ds)
    except Exception as e:  # DEM unreadable: popups show no elevation
        log.warning("maps: no village elevations (%s)", e)
        villages["elevation_m"] = np.nan
    kind = _col(villages, "kind", "村").astype(str)
    deep, poor = _bool(_col(villages, "deep_poverty", False)), _bool(_col(villages, "poverty_village", False))
    villages["poverty_cat"] = np.select([deep, poor, kind.str.contains("社区")], [0, 1, 3], 2)
    villages["poverty_zh"] = villages["poverty_cat"].map(
        {0: "深度贫困村", 1: "贫困村", 2: "非贫困村", 3: "社区"})
    villages["access_cat"] = 3
    villages["access_reason"] = None
    if access is not None and isinstance(access.villages, pd.DataFrame):
        av = access.villages.reindex(villages.index)
        tda, tch = _col(av, "tongda"), _col(av, "tongchang")
        known = tda.notna() & tch.notna()
        villages.loc[known, "access_cat"] = np.select(
            [_bool(tch[known]), _bool(tda[known])], [0, 1], 2)
        villages["access_reason"] = _col(av, "reason")
        for c in ("network_km_to_seat", "travel_min_to_seat"):
            villages[c] = _num(_col(av, c))
    villages["access_zh"] = villages["access_cat"].map(
        {0: "通畅", 1: "通达未通畅", 2: "未通达", 3: "无数据"})
    return villages


def _settlements(layer: gpd.GeoDataFrame | None, villages: gpd.GeoDataFrame, reloc,
                 access) -> gpd.GeoDataFrame | None:
    """The settlements layer with its township, village name, relocation flags and access status."""
    if layer is None or not len(layer):
        return None
    settlements = layer.copy()
    settlements["township_code"] = settlement_townships(settlements, villages, warn=False)
    v2n = dict(zip(villages["village_code"].astype(str), villages["name"].astype(str)))
    settlements["village_name"] = settlements["village_code"].astype(str).map(v2n)
    if reloc is not None and isinstance(reloc.settlements, pd.DataFrame):
        rs = reloc.settlements.reindex(settlements.index)
        for c in ("elevation_m", "slope_deg", "relocation_candidate", "priority", "reasons_zh",
                  "status", "schedule_year"):
            if c in rs.columns:
                settlements[c] = rs[c]
    if access is not None and isinstance(access.settlements, pd.DataFrame):
        acs = access.settlements.reindex(settlements.index)
        for c in ("tongda", "tongchang", "target_group"):
            if c in acs.columns:
                settlements["acc_" + c] = acs[c]
        settlements["access_reason"] = _col(acs, "reason")
    return settlements


def _sites_and_assignment(reloc, settlements: gpd.GeoDataFrame | None,
                          notes: list[str]) -> tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]:
    """Relocation sites and the settlement → site assignment lines (a note when some are
    unassigned)."""
    sites = assignment = None
    if reloc is None or not isinstance(reloc.sites, gpd.GeoDataFrame) or not len(reloc.sites):
        return sites, assignment
    sites = gpd.GeoDataFrame(reloc.sites.copy(), geometry=reloc.sites.geometry.name,
                             crs=reloc.sites.crs)
    sites["township_code"] = _col(sites, "township_code", "").astype(str)
    assigned = _num(_col(sites, "assigned_households", 0)).fillna(0)
    sites["site_cat"] = np.where(assigned > 0, 0, 1)
    if "site_id" not in sites:
        sites["site_id"] = [f"S{i}" for i in range(len(sites))]
    sites["site_name"] = _col(sites, "name", None).fillna(sites["site_id"])
    asg = reloc.assignment
    if isinstance(asg, pd.DataFrame) and len(asg) and settlements is not None:
        assignment = _assignment_lines(asg, settlements, sites)
    unassigned = reloc.unassigned
    if isinstance(unassigned, pd.DataFrame) and len(unassigned):
        notes.append(f"{len(unassigned)} 个搬迁自然村未分配安置点 settlements without a site "
                     f"(见 relocation 表 see the relocation tables).")
    return sites, assignment


def _assignment_lines(asg: pd.DataFrame, settlements: gpd.GeoDataFrame,
                      sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame | None:
    """One line per assignment row, from the settlement's centroid to its site's."""
    s_geo = dict(zip(settlements["settlement_id"].astype(str), settlements.geometry))
    s_tw = dict(zip(settlements["settlement_id"].astype(str), settlements["township_code"]))
    site_geo = dict(zip(sites["site_id"].astype(str), sites.geometry))
    site_tw = dict(zip(sites["site_id"].astype(str), sites["township_code"]))
    rows = []
    for r in asg.itertuples(index=False):
        a, b = s_geo.get(str(r.settlement_id)), site_geo.get(str(r.site_id))
        if a is None or b is None:
            continue
        rows.append({"settlement_id": str(r.settlement_id), "site_id": str(r.site_id),
                     "households": getattr(r, "households", None),
                     "distance_km": getattr(r, "distance_km", None),
                     "township_code": s_tw.get(str(r.settlement_id)),
                     "site_township": site_tw.get(str(r.site_id)),
                     "geometry": shapely.LineString([a.centroid, b.centroid])})
    if not rows:
        return None
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=settlements.crs)


def _hosts(industry, villages: gpd.GeoDataFrame, notes: list[str]) -> gpd.GeoDataFrame | None:
    """Industry host points with their township (a note when some projects were not placed)."""
    if industry is None or not isinstance(industry.hosts, gpd.GeoDataFrame):
        return None
    hosts = industry.hosts.copy()
    if len(hosts):
        hosts["township_code"] = host_township_codes(hosts, village_townships(villages))
    unresolved = industry.unresolved
    if isinstance(unresolved, pd.DataFrame) and len(unresolved):
        notes.append(f"{len(unresolved)} 个产业项目地点未能定位到村 industry project places "
                     f"not found on the map (见 industry/unresolved).")
    return hosts


def _works(access) -> gpd.GeoDataFrame | None:
    """The road works that close the access gaps, with their category (new road or upgrade)."""
    if access is None or not isinstance(access.works, gpd.GeoDataFrame) or not len(access.works):
        return None
    works = access.works.copy()
    works["work_cat"] = np.where(_col(works, "type", "new").astype(str) == "upgrade", 1, 0)
    return works


def _roads_by_scale(layer: gpd.GeoDataFrame, paved_words: set[str], cfg) -> dict[str, gpd.GeoDataFrame]:
    """The roads with their category (paved or not), simplified per map scale in the work CRS."""
    roads = layer.copy()
    roads["road_cat"] = np.where(_col(roads, "surface", "").astype(str).str.lower().isin(paved_words), 0, 1)
    roads_work = {}
    for scale in ("district", "township"):
        tol = float(cfg[f"simplify_{scale}_m"])
        r = roads[["road_cat", roads.geometry.name]].copy()
        r[r.geometry.name] = r.geometry.simplify(tol, preserve_topology=False)
        roads_work[scale] = r[~r.geometry.is_empty]
    return roads_work


def gather_wgs84(ctx: StepContext, needs: StepNeeds) -> MapData:
    """:func:`gather` in WGS84 whatever the basemap (print sheets, field files)."""
    return gather(ctx, needs, basemap="offline")


def _map_crs_converter(basemap: str, map_crs: str) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    def convert(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        if gdf is None:
            return None
        out = gdf.to_crs(map_crs) if gdf.crs is not None else gdf
        if basemap == "gaode":
            from kaizhou_gis.terrain.coords import convert_wgs84_to_gcj02
            out = convert_wgs84_to_gcj02(out)
        return out
    return convert
