"""The relocation step's output tables: every settlement, the candidates, the village and
township roll-ups with the sites' coverage and the assignment, and the site layers."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd

from kaizhou_gis.relocation.labels import _labelled
from kaizhou_gis.relocation.rollups import rollup_townships, rollup_villages

#: Columns of ``relocation/settlements.gpkg`` (those present), in this order.
SETTLEMENT_COLUMNS = [
    "settlement_id", "name", "village_code", "village_name", "township_code", "township_name",
    "households", "population", "poor_population", "accompanying_population",
    "poor_population_basis", "elevation_m", "slope_deg", "valley_depth_m",
    "above_threshold", "steep_terrain", "deep_valley", "remote", "tongda", "tongchang",
    "network_km_to_seat", "in_poverty_village", "deep_poverty_village",
    "relocation_candidate", "candidate_basis", "priority", "reasons_zh", "reasons_en",
    "status", "schedule_year", "schedule_status", "assigned_households", "site_ids", "source"]

#: Columns of the ``sites`` layer of ``relocation/sites.gpkg`` (those present), in this order.
SITE_COLUMNS = ["site_id", "name", "township_code", "serves_township_code", "for_township",
                "site_role", "spacing_relaxed", "rank", "elevation_m", "slope_deg",
                "road_distance_m", "seat_distance_m", "village_distance_m", "suitability", "vetoes",
                "capacity_households", "assigned_households", "source"]

#: Columns of the ``evaluated`` layer of ``relocation/sites.gpkg`` (those present).
EVALUATED_COLUMNS = ["township_code", "elevation_m", "slope_deg", "road_distance_m", "seat_distance_m",
                     "village_distance_m", "suitability", "vetoes", "selected"]


def settlement_outputs(s: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """(every settlement, the candidates by township and falling priority), labelled."""
    cols = [c for c in SETTLEMENT_COLUMNS if c in s.columns]
    full = gpd.GeoDataFrame(s[cols + [s.geometry.name]], geometry=s.geometry.name, crs=s.crs)
    _labelled(full)
    candidates = pd.DataFrame(full[full["relocation_candidate"]].drop(columns=full.geometry.name))
    candidates = candidates.sort_values(["township_code", "priority", "settlement_id"],
                                        ascending=[True, False, True], kind="mergesort")
    _labelled(candidates)
    return full, candidates


def village_table(full: pd.DataFrame, villages: pd.DataFrame, townships: pd.DataFrame) -> pd.DataFrame:
    """The per-village roll-up of ``full`` over ``villages``, with the township's name."""
    out = rollup_villages(full, villages)
    if "township_name" not in out.columns:  # a name next to each id
        tw_names = dict(zip(townships["township_code"].astype(str), townships["name"].astype(str)))
        out.insert(out.columns.get_loc("township_code") + 1, "township_name",
                   out["township_code"].astype(str).map(tw_names))
        _labelled(out)
    return out


def township_table(full: pd.DataFrame, townships: pd.DataFrame, sites: pd.DataFrame,
                   tw_terrain: pd.DataFrame, coverage: pd.DataFrame, assignment: pd.DataFrame,
                   unassigned: pd.DataFrame) -> pd.DataFrame:
    """The per-township roll-up with the terrain (``tw_terrain``, indexed by township code), the
    sites' coverage and the households placed and unplaced."""
    out = rollup_townships(full, townships, sites)
    tw_terrain = tw_terrain[~tw_terrain.index.duplicated()]
    out["mean_elevation_m"] = out["township_code"].map(tw_terrain["mean_m"]).round(1)
    out["area_above_threshold_pct"] = out["township_code"].map(tw_terrain["share_above_pct"]).round(1)
    _add_coverage(out, coverage)
    _add_placements(out, assignment, unassigned)
    return _labelled(out)


def _add_coverage(townships: pd.DataFrame, coverage: pd.DataFrame) -> None:
    """The coverage columns of :func:`~kaizhou_gis.relocation.sites.select_sites` (in place)."""
    cov = coverage.drop(columns=["township_name"]).set_index("township_code")
    for c in cov.columns:
        townships[c] = townships["township_code"].map(cov[c])
    for c in ("demand_households", "own_sites", "cover_sites", "capacity_for_township",
              "shortfall_households"):
        townships[c] = townships[c].fillna(0).astype("int64")
    for c in ("sites_needed", "feasible_points"):  # counts; empty where a township has no demand
        if c in townships.columns:
            townships[c] = pd.array(pd.to_numeric(townships[c], errors="coerce").round(), dtype="Int64")
    townships["cover_site_ids"] = townships["cover_site_ids"].fillna("")
    townships["site_note"] = townships["site_note"].fillna("")


def _add_placements(townships: pd.DataFrame, assignment: pd.DataFrame, unassigned: pd.DataFrame) -> None:
    """Households placed (in all, in the own township), unplaced and the mean distance (in place)."""
    by_tw = assignment.groupby("township_code")
    townships["placed_households"] = townships["township_code"].map(
        by_tw["households"].sum()).fillna(0).astype("int64")
    townships["placed_own_township"] = townships["township_code"].map(
        assignment[assignment["same_township"]].groupby("township_code")["households"].sum()
    ).fillna(0).astype("int64")
    townships["unplaced_households"] = townships["township_code"].map(
        unassigned.groupby("township_code")["households"].sum()).fillna(0).astype("int64")
    wd = (assignment["households"] * assignment["distance_km"]).groupby(assignment["township_code"]).sum()
    townships["mean_distance_km"] = (townships["township_code"].map(wd)
                                     / townships["placed_households"].where(lambda v: v > 0)).round(2)


def site_layers(sites: gpd.GeoDataFrame, evaluated: gpd.GeoDataFrame
                ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The ``sites`` (labelled) and ``evaluated`` layers of ``relocation/sites.gpkg``."""
    sites_out = gpd.GeoDataFrame(sites[[c for c in SITE_COLUMNS if c in sites.columns] + [sites.geometry.name]],
                                 geometry=sites.geometry.name, crs=sites.crs)
    _labelled(sites_out)
    evaluated_out = gpd.GeoDataFrame(evaluated[[c for c in EVALUATED_COLUMNS if c in evaluated.columns]
                                               + [evaluated.geometry.name]],
                                     geometry=evaluated.geometry.name, crs=evaluated.crs)
    return sites_out, evaluated_out
