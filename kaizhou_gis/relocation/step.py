"""The relocation step: ``run(ctx, needs)`` and its township view."""
from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.relocation.assignment import assign_households, network_distance_km
from kaizhou_gis.relocation.criteria import check_settings, flag_settlements
from kaizhou_gis.relocation.inputs import access_columns, settlement_table, with_poor_population
from kaizhou_gis.relocation.labels import _add_names, _labelled
from kaizhou_gis.relocation.schedule import schedule_status, schedule_table, schedule_years
from kaizhou_gis.relocation.sites import _coverage_user, evaluate_sites, grid_sites, select_sites
from kaizhou_gis.relocation.summary import step_summary
from kaizhou_gis.relocation.tables import settlement_outputs, site_layers, township_table, village_table
from kaizhou_gis.results import RelocationData, StepContext, StepNeeds, StepResult
from kaizhou_gis.terrain import point_terrain, zonal_stats

log = logging.getLogger(__name__)


def _access_edges(needs: StepNeeds) -> gpd.GeoDataFrame | None:
    """The road network edges of the ``access`` step (None when unavailable)."""
    try:
        e = needs.result("access").data.edges
    except Exception:  # the step already reported why access is unavailable
        return None
    need = {"u", "v", "length_m"}
    return e if isinstance(e, gpd.GeoDataFrame) and need <= set(e.columns) and len(e) else None


def _site_points(ctx: StepContext, dem, demand: gpd.GeoDataFrame
                 ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, str, pd.DataFrame]:
    """(selected sites, every evaluated site, origin, per-township coverage) for the step.

    ``demand`` holds the settlements whose households the generated sites are sized for.
    """
    plan, layers = ctx.plan, ctx.layers
    sp = plan.section("relocation.sites")
    names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
    user = getattr(layers, "sites", None)
    if user is not None and len(user):
        need = [c for c in ("site_id", "capacity_households") if c not in user.columns]
        if need:
            raise LayerError(f"sites: missing column(s) {', '.join(need)}; a sites layer needs "
                             f"site_id and capacity_households (and township_code, name).")
        u = user.copy()
        u["site_id"] = u["site_id"].astype(str)
        dup = u.loc[u["site_id"].duplicated(), "site_id"].tolist()
        if dup:
            raise LayerError(f"sites: column site_id has duplicates: {format_ids(dup)}; make them unique.")
        u["capacity_households"] = pd.to_numeric(u["capacity_households"], errors="coerce")
        bad = u.loc[u["capacity_households"].isna() | (u["capacity_households"] < 0), "site_id"].tolist()
        if bad:
            raise LayerError(f"sites: column capacity_households is missing or negative for "
                             f"{format_ids(bad)}; give each site a capacity in households (>= 0).")
        u["capacity_households"] = u["capacity_households"].astype("int64")
        ev = evaluate_sites(u, layers=layers, plan=plan, dem=dem)
        ev = ev.sort_values(["township_code", "suitability"], ascending=[True, False], kind="mergesort")
        ev["rank"] = ev.groupby("township_code").cumcount() + 1
        if "name" not in ev.columns:
            ev["name"] = ev["site_id"]
        ev["source"] = "user"
        ev["serves_township_code"] = ev["township_code"]
        ev["for_township"] = ev["township_code"].map(names).fillna("")
        ev["site_role"] = "user"
        return ev, ev, "user sites layer", _coverage_user(ev, demand, names)
    grid = gpd.GeoDataFrame(geometry=grid_sites(layers.boundary, spacing_m=float(sp["candidate_spacing_m"])))
    tw = layers.townships[["township_code", layers.townships.geometry.name]].copy()
    tw["township_code"] = tw["township_code"].astype(str)
    j = gpd.sjoin(grid, tw, how="left", predicate="within")
    j = j[~j.index.duplicated()]
    grid["township_code"] = j["township_code"].reindex(grid.index).fillna("").astype(str)
    inside_any = shapely.contains_xy(shapely.union_all(layers.boundary.geometry.to_numpy()),
                                     grid.geometry.x.to_numpy(), grid.geometry.y.to_numpy())
    grid = grid[inside_any | (grid["township_code"] != "")]
    grid = grid.reset_index(drop=True)
    ev = evaluate_sites(grid, layers=layers, plan=plan, dem=dem)
    sel, coverage = select_sites(ev, demand, capacity_households=int(sp["capacity_households"]),
                                 min_spacing_m=float(sp["min_site_spacing_m"]),
                                 max_distance_km=float(sp["max_distance_km"]),
                                 own_before_neighbours=bool(sp["own_points_before_neighbours"]),
                                 township_names=names)
    ev = ev.copy()
    ev["selected"] = ev.index.isin(sel.index)
    return sel, ev, f"generated grid ({sp['candidate_spacing_m']:g} m spacing)", coverage


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[RelocationData]:
    """The relocation step: candidates, schedule, sites, assignment, roll-ups, plan comparison.

    Writes (paths under ``--out``) ``relocation/settlements.gpkg`` (every settlement),
    ``candidates.csv``/``.xlsx``, ``villages.csv``, ``townships.csv``, ``sites.gpkg`` (layers
    ``sites`` and ``evaluated``), ``assignment.csv``, ``unassigned.csv`` and ``summary.json``.
    For the district; a township's result is :func:`township_view` of the district's.
    """
    plan, layers = ctx.plan, ctx.layers
    check_settings(plan)
    r = plan.section("relocation")
    sp = plan.section("relocation.sites")
    s = settlement_table(layers.settlements, layers.villages, layers.townships)
    s = with_poor_population(s, plan)
    with layers.open_dem() as dem:
        t = point_terrain(s.geometry, dem, slope_radius_m=float(r["slope_window_m"]),
                          relief_radius_m=float(r["relief_window_m"]))
        s["elevation_m"] = t["elevation_m"]
        s["slope_deg"] = t["slope_deg"].round(2)
        s["local_max_m"] = t["local_max_m"]
        s["valley_depth_m"] = t["valley_depth_m"]
        access, access_note = access_columns(needs, s)
        s = flag_settlements(s, plan, access=access)
        cand = s["relocation_candidate"]
        s["schedule_year"] = pd.Series(pd.NA, index=s.index, dtype="Int64")
        s.loc[cand, "schedule_year"] = schedule_years(s[cand], r["yearly_people"])
        size_to = sp["size_to"]
        sizing = s[cand] if size_to == "candidates" else s[cand & s["schedule_year"].notna()]
        sites, evaluated, site_origin, coverage = _site_points(ctx, dem, sizing)
        tws = layers.townships
        tw_terrain = zonal_stats(tws.geometry, dem, threshold_m=float(r["threshold_m"]))
        tw_terrain.index = tws["township_code"].astype(str).to_numpy()
    assignment, unassigned = assign_households(
        s[cand], sites, max_distance_km=float(sp["max_distance_km"]),
        other_township_penalty_km=float(sp["other_township_penalty_km"]))
    short_tw = set(coverage.loc[coverage["shortfall_households"] > 0, "township_code"])
    if len(unassigned) and short_tw:
        hit = unassigned["township_code"].isin(short_tw)
        unassigned.loc[hit, "reason_detail"] = unassigned.loc[hit, "reason_detail"] + (
            f"; every feasible point within {float(sp['max_distance_km']):g} km of the township's "
            f"remaining households is already a site (a larger site, a longer max_distance_km or "
            f"ground above the threshold would be needed)")
    edges = _access_edges(needs) if access is not None else None
    if len(assignment):
        sd = s.drop_duplicates("settlement_id")
        s_geo = pd.Series(sd.geometry.to_numpy(), index=sd["settlement_id"].astype(str))
        site_geo = pd.Series(sites.geometry.to_numpy(), index=sites["site_id"].astype(str))
        assignment["network_km"] = np.round(network_distance_km(
            gpd.GeoSeries(assignment["settlement_id"].map(s_geo).to_numpy(), crs=s.crs),
            gpd.GeoSeries(assignment["site_id"].map(site_geo).to_numpy(), crs=s.crs), edges), 2)
    else:
        assignment["network_km"] = pd.Series(dtype="float64")
    _add_names(assignment, s, sites, layers.townships)
    _add_names(unassigned, s, sites, layers.townships)
    _labelled(assignment)
    _labelled(unassigned)
    per_s = assignment.groupby("settlement_id")
    s["assigned_households"] = s["settlement_id"].astype(str).map(per_s["households"].sum()).fillna(0).astype("int64")
    s["site_ids"] = s["settlement_id"].astype(str).map(
        per_s["site_id"].agg(lambda v: ";".join(v))).fillna("")
    sites = sites.copy()
    sites["assigned_households"] = sites["site_id"].map(
        assignment.groupby("site_id")["households"].sum()).fillna(0).astype("int64")
    parts = {"s": s, "sites": sites, "evaluated": evaluated, "assignment": assignment,
             "unassigned": unassigned, "coverage": coverage, "tws": tws, "tw_terrain": tw_terrain,
             "sizing": sizing, "site_origin": site_origin, "access": access,
             "access_note": access_note, "size_to": size_to}
    return _build(ctx, parts, None)


def township_view(district: StepResult[RelocationData], ctx: StepContext) -> StepResult[RelocationData]:
    """The relocation step for ``ctx.township``: the district's result filtered to the township.

    Candidates, priorities, schedule years, sites and the assignment are the district's (the
    yearly quotas, site capacity and the assignment are decided district-wide); only the rows of
    the township are kept: its settlements, its own sites, sites chosen for it and sites its
    households were assigned to, its assignment and unplaced rows, its coverage row.
    """
    p = district.data.parts
    code = str(ctx.township)
    s = p["s"][p["s"]["township_code"].astype(str) == code].copy()
    assignment = p["assignment"][p["assignment"]["township_code"].astype(str) == code]
    sites = p["sites"]
    used = set(assignment["site_id"].astype(str))
    sites = sites[(sites["township_code"].astype(str) == code)
                  | (sites["serves_township_code"].astype(str) == code)
                  | sites["site_id"].astype(str).isin(used)]
    tws = p["tws"][p["tws"]["township_code"].astype(str) == code]
    parts = dict(p, s=s, sites=sites, assignment=assignment,
                 evaluated=p["evaluated"][p["evaluated"]["township_code"].astype(str) == code],
                 unassigned=p["unassigned"][p["unassigned"]["township_code"].astype(str) == code],
                 coverage=p["coverage"][p["coverage"]["township_code"].astype(str) == code],
                 tws=tws, tw_terrain=p["tw_terrain"][p["tw_terrain"].index.astype(str) == code],
                 sizing=p["sizing"][p["sizing"]["township_code"].astype(str) == code])
    return _build(ctx, parts, code)


def _build(ctx: StepContext, parts: dict[str, Any], township: str | None) -> StepResult[RelocationData]:
    """Tables, summary and files of the relocation step from the district's decisions
    (``parts``, filtered to ``township`` when given)."""
    plan, layers = ctx.plan, ctx.layers
    r = plan.section("relocation")
    s, sites, evaluated = parts["s"], parts["sites"], parts["evaluated"]
    assignment, unassigned, coverage = parts["assignment"], parts["unassigned"], parts["coverage"]

    s["schedule_status"] = schedule_status(s["schedule_year"], s["relocation_candidate"].astype(bool),
                                           list(r["yearly_people"]))
    full, candidates = settlement_outputs(s)
    villages = village_table(full, layers.villages if not township else
                             layers.villages[layers.villages["township_code"].astype(str) == township],
                             layers.townships)
    townships = township_table(full, parts["tws"], sites, parts["tw_terrain"], coverage, assignment,
                               unassigned)
    sched_rows, schedule, remainder = schedule_table(full, r["yearly_people"])
    sites_out, evaluated_out = site_layers(sites, evaluated)
    summary = step_summary(full, candidates, assignment, unassigned, coverage, sites_out, evaluated_out,
                           parts["sizing"], plan=plan, township=township, site_origin=parts["site_origin"],
                           size_to=parts["size_to"], access_known=parts["access"] is not None,
                           access_note=parts["access_note"], sched_rows=sched_rows, remainder=remainder)
    site_table = _labelled(pd.DataFrame(sites_out.drop(columns=sites_out.geometry.name)))
    files = {
        "relocation/settlements.gpkg": full,
        "relocation/candidates.csv": candidates,
        "relocation/candidates.xlsx": {"candidates": candidates, "villages": villages,
                                       "townships": townships, "schedule": schedule,
                                       "sites": site_table, "site_coverage": coverage,
                                       "assignment": assignment, "unassigned": unassigned},
        "relocation/villages.csv": villages,
        "relocation/townships.csv": townships,
        "relocation/sites.gpkg": {"sites": sites_out, "evaluated": evaluated_out},
        "relocation/assignment.csv": assignment,
        "relocation/unassigned.csv": unassigned,
        "relocation/summary.json": {k: v for k, v in summary.items()},
    }
    data = RelocationData(settlements=full, sites=sites_out, assignment=assignment,
                          unassigned=unassigned, villages=villages, townships=townships,
                          schedule=schedule, parts=parts)
    # field files for relocation teams' phones (KMZ, GPX), per township
    from kaizhou_gis.field import field_files
    files.update(field_files(ctx, data, coords=ctx.options.get("field_coords") or "wgs84"))
    log.info("relocation: %s", summary["headline"][0])
    return StepResult(name="relocation", files=files, data=data, summary=summary,
                      township_view=township is not None)
