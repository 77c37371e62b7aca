"""Roll-ups per village and township, and the comparison with the plan's figures."""
from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import pandas as pd

from kaizhou_gis.figures import pct
from kaizhou_gis.plan import Plan
from kaizhou_gis.relocation.labels import _labelled


def rollup_villages(s: pd.DataFrame, villages: pd.DataFrame) -> pd.DataFrame:
    """Settlements, candidates, households and people per administrative village."""
    v = villages.drop(columns=villages.geometry.name) if isinstance(villages, gpd.GeoDataFrame) else villages
    v = pd.DataFrame(v).drop_duplicates("village_code")
    base = pd.DataFrame({"village_code": v["village_code"].astype(str),
                         "village_name": v["name"].astype(str),
                         "township_code": v["township_code"].astype(str),
                         "poverty_village": v.get("poverty_village", False)})
    g = _group(s, "village_code")
    out = base.merge(g, on="village_code", how="outer")
    # settlements whose village is not in the villages layer keep a row of their own
    out["village_name"] = out["village_name"].fillna("")
    out["township_code"] = out["township_code"].fillna("")
    out["poverty_village"] = out["poverty_village"].fillna(False).astype(bool)
    out = _fill_counts(out)
    return _labelled(out.sort_values(["township_code", "village_code"], kind="mergesort")
                     .reset_index(drop=True))


def rollup_townships(s: pd.DataFrame, townships: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Settlements, candidates, households, people and sites per township."""
    base = pd.DataFrame({"township_code": townships["township_code"].astype(str),
                         "township_name": townships["name"].astype(str)}).drop_duplicates("township_code")
    out = base.merge(_group(s, "township_code"), on="township_code", how="outer")
    out["township_name"] = out["township_name"].fillna("")
    if len(sites):
        sg = sites.groupby(sites["township_code"].astype(str)).agg(
            sites=("site_id", "size"), site_capacity_households=("capacity_households", "sum"))
        out = out.merge(sg, left_on="township_code", right_index=True, how="left")
    else:
        out["sites"] = 0
        out["site_capacity_households"] = 0
    out = _fill_counts(out)
    return _labelled(out.sort_values("township_code", kind="mergesort").reset_index(drop=True))


def _group(s: pd.DataFrame, key: str) -> pd.DataFrame:
    c = s["relocation_candidate"].astype(bool)
    t = pd.DataFrame({
        key: s[key].astype(str),
        "settlements": 1,
        "settlements_with_elevation": s["elevation_m"].notna().astype(int),
        "above_threshold_settlements": s["above_threshold"].astype(int),
        "candidates": c.astype(int),
        "candidate_households": s["households"].where(c, 0),
        "candidate_population": s["population"].where(c, 0),
        "candidate_poor_population": s["poor_population"].where(c, 0),
        "candidate_accompanying_population": s["accompanying_population"].where(c, 0),
        "scheduled_population": s["population"].where(s["schedule_year"].notna(), 0),
        "scheduled_poor_population": s["poor_population"].where(s["schedule_year"].notna(), 0),
        "scheduled_accompanying_population": s["accompanying_population"].where(
            s["schedule_year"].notna(), 0),
        "max_elevation_m": s["elevation_m"],
    })
    agg = {k: "sum" for k in t.columns if k not in (key, "max_elevation_m")}
    agg["max_elevation_m"] = "max"
    return t.groupby(key, sort=True).agg(agg).reset_index()


def _fill_counts(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("settlements", "settlements_with_elevation", "above_threshold_settlements",
                "candidates", "candidate_households", "candidate_population",
                "candidate_poor_population", "candidate_accompanying_population",
                "scheduled_population", "scheduled_poor_population",
                "scheduled_accompanying_population", "sites", "site_capacity_households"):
        if col in df.columns:
            df[col] = df[col].fillna(0).astype("int64")
    return df


def plan_comparison(s: pd.DataFrame, plan: Plan, *, township: str | None) -> dict[str, Any]:
    """The step's figures beside the plan's (ch.5), with what the comparison means."""
    r = plan.section("relocation")
    n = len(s)
    n_elev = int(s["elevation_m"].notna().sum())
    above = s["above_threshold"].astype(bool)
    cand = s["relocation_candidate"].astype(bool)
    from kaizhou_gis.provenance import is_synthetic_text

    synthetic = int(s.get("source", pd.Series("", index=s.index)).map(is_synthetic_text).sum())
    share = 100.0 * above.sum() / n_elev if n_elev else float("nan")
    people_above = int(s.loc[above, "population"].sum())
    people_cand = int(s.loc[cand, "population"].sum())
    poor_cand = int(s.loc[cand, "poor_population"].sum())
    poor_all = int(s["poor_population"].sum())
    estimated = int((s.get("poor_population_basis", pd.Series("", index=s.index)) == "estimated").sum())
    incidence = float(plan["baseline.poverty_incidence_pct"])
    notes = [
        f"The plan counts {r['outmigration_natural_villages']:,} natural villages in the out-migration "
        f"area ({r['outmigration_townships']} townships, {r['outmigration_villages']} administrative "
        f"villages), {r['natural_villages_above_threshold']} of them ({r['share_above_threshold_pct']} %) "
        f"above {r['threshold_m']:g} m. Here every settlement of the layer is tested, so the shares "
        f"have different denominators; the count above the threshold is the comparable figure.",
        f"The plan's {r['people_target']:,} people (ch.5, yearly quotas "
        + ", ".join(f"{y} {q:,}" for y, q in sorted(r["yearly_people"].items())) +
        ") are registered poor people (建档立卡贫困人口) to be moved, so the schedule counts each "
        f"settlement's registered poor (poor_population) against the quotas. Whole settlements "
        f"move together: their other residents move with them (同步搬迁) and are reported "
        f"separately (accompanying_population), not counted in the quotas. The candidate "
        f"settlements hold {poor_cand:,} registered poor and {people_cand - poor_cand:,} other "
        f"residents ({people_cand:,} people in all); the layer holds {poor_all:,} registered poor "
        f"in all settlements (the plan's district total is {int(plan['baseline.poor_population']):,}).",
    ]
    if estimated:
        notes.append(f"poor_population of {estimated:,} of the {n:,} settlements is ESTIMATED as "
                     f"population x the plan's poverty incidence ({incidence:g} %), because the "
                     f"settlements layer does not give it; give a poor_population column "
                     f"(建档立卡贫困人口) for real figures.")
    if synthetic:
        notes.append(f"{synthetic:,} of the {n:,} settlements are synthesized (their source says so); "
                     f"their positions, households and people are illustrative, not surveyed.")
    if plan.source("relocation.threshold_m").startswith("command-line override"):
        notes.append(f"The threshold was set on the command line to {r['threshold_m']:g} m; the plan's "
                     f"{r['natural_villages_above_threshold']} natural villages and "
                     f"{r['share_above_threshold_pct']} % refer to the plan's own threshold.")
    if township:
        notes.append(f"Limited to township {township}: the plan's figures are for the whole "
                     f"district, so the comparison only shows this township's part.")
    return {
        "settlements_tested": n,
        "settlements_with_elevation": n_elev,
        "above_threshold": {"layer": int(above.sum()), "plan": r["natural_villages_above_threshold"]},
        "share_above_threshold_pct": {
            "layer": None if math.isnan(share) else round(share, 1),
            "plan": r["share_above_threshold_pct"],
            "layer_count_over_plan_base": pct(above.sum(), r["outmigration_natural_villages"], 1)},
        "candidates": {"layer": int(cand.sum()), "by_elevation": int((cand & above).sum()),
                       "by_terrain_and_remoteness_only": int((cand & ~above).sum())},
        "people": {"plan_target": r["people_target"],
                   "plan_target_counts": "registered poor people (建档立卡贫困人口), ch.5",
                   "candidate_poor_population": poor_cand,
                   "candidate_accompanying_population": people_cand - poor_cand,
                   "candidate_population": people_cand,
                   "poor_population_total": poor_all,
                   "poor_population_basis": ("estimated: population x poverty incidence "
                                             f"{incidence:g} % (baseline.poverty_incidence_pct) for "
                                             f"{estimated:,} of {n:,} settlements"
                                             if estimated else "layer (settlements.poor_population)"),
                   "above_threshold_population": people_above,
                   "candidate_poor_over_plan_pct": pct(poor_cand, r["people_target"], 1)},
        "notes": notes,
    }
