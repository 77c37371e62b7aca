"""The relocation step's summary (``relocation/summary.json``) and its headline lines."""
from __future__ import annotations

from typing import Any

import pandas as pd

from kaizhou_gis.figures import pct
from kaizhou_gis.layers import leftout
from kaizhou_gis.plan import Plan
from kaizhou_gis.relocation.labels import _STATUS
from kaizhou_gis.relocation.rollups import plan_comparison


def step_summary(full: pd.DataFrame, candidates: pd.DataFrame, assignment: pd.DataFrame,
                 unassigned: pd.DataFrame, coverage: pd.DataFrame, sites_out: pd.DataFrame,
                 evaluated_out: pd.DataFrame, sizing: pd.DataFrame, *, plan: Plan,
                 township: str | None, site_origin: str, size_to: str, access_known: bool,
                 access_note: str, sched_rows: list[dict[str, int]], remainder: dict[str, int]
                 ) -> dict[str, Any]:
    """The summary of the step's tables (``township`` when they are a township's view), with
    ``left_out`` and ``headline``."""
    r = plan.section("relocation")
    summary: dict[str, Any] = {
        "township": township,
        "scope": ("township view of the district analysis: candidates, priorities, schedule years "
                  "(district quotas), sites and assignment are the district run's, filtered to "
                  "this township" if township else "district"),
        "settlements": len(full),
        "status_counts": {k: int((full["status"] == k).sum()) for k in _STATUS},
        "above_threshold": int(full["above_threshold"].sum()),
        "steep_terrain": int(full["steep_terrain"].sum()),
        "deep_valley": int(full["deep_valley"].sum()),
        "remote": int(full["remote"].fillna(False).sum()) if access_known else None,
        "candidates": int(full["relocation_candidate"].sum()),
        "candidate_households": int(candidates["households"].sum()),
        "candidate_population": int(candidates["population"].sum()),
        "candidate_poor_population": int(candidates["poor_population"].sum()),
        "candidate_accompanying_population": int(candidates["accompanying_population"].sum()),
        "candidates_in_poverty_villages": int(candidates["in_poverty_village"].sum()),
        "remoteness": access_note,
        "candidate_rule": ("above threshold_m" + (" OR (steep_terrain AND deep_valley AND remote)"
                                                  if r["include_terrain_remote"] else "")
                           + (" AND in a poverty village" if r["require_poverty_village"] else "")),
        "plan_comparison": plan_comparison(full, plan, township=township),
        "schedule": {"years": sched_rows, "remainder": remainder,
                     "rule": "by priority, whole settlements, each year's registered poor people "
                             "(poor_population, 建档立卡贫困人口) <= its quota; the settlements' other "
                             "residents move with them (同步搬迁, accompanying_people) outside the quota"},
        "sites": sites_summary(sites_out, evaluated_out, coverage, sizing,
                               sites_plan=plan.section("relocation.sites"), site_origin=site_origin,
                               size_to=size_to, township=township),
        "assignment": assignment_summary(full, candidates, assignment, unassigned, coverage),
        "parameters": plan.settings("relocation"),
    }
    headline = headline_lines(summary, r, township=township)
    summary["left_out"] = leftout.relocation(full, unassigned)
    headline += [f"left out: {x}" for x in leftout.relocation_lines(summary["left_out"])]
    summary["headline"] = headline
    return summary


def sites_summary(sites_out: pd.DataFrame, evaluated_out: pd.DataFrame, coverage: pd.DataFrame,
                  sizing: pd.DataFrame, *, sites_plan: dict[str, Any], site_origin: str, size_to: str,
                  township: str | None) -> dict[str, Any]:
    """The ``sites`` part of the summary: origin, counts, sizing rule and townships short of sites."""
    user = site_origin.startswith("user")
    sp = sites_plan
    no_own = coverage[coverage["own_sites"] == 0] if user \
        else coverage[coverage["feasible_points"].fillna(-1) == 0]
    short_own = coverage[(coverage["feasible_points"].fillna(0) > 0)
                         & (coverage["own_sites"] < coverage["sites_needed"].fillna(0))]
    return {"origin": site_origin, "selected": len(sites_out),
            "evaluated": len(evaluated_out),
            "vetoed": int((evaluated_out["vetoes"] != "").sum()),
            "capacity_households": int(sites_out["capacity_households"].sum()),
            "townships_with_sites": int(sites_out["township_code"].nunique()),
            "user_sites_breaking_a_veto": int((sites_out["vetoes"] != "").sum()) if user else 0,
            "sized_to": (f"relocation.sites.size_to = {size_to!r}: each township gets "
                         f"ceil(households / {int(sp['capacity_households'])}) sites, best "
                         f"suitability first, at least {float(sp['min_site_spacing_m']):,.0f} m apart; "
                         f"what its own feasible points cannot hold is covered by the nearest "
                         f"feasible points of neighbouring townships (site_role = cover)"
                         if not user else "user sites, not generated"),
            "sized_households": int(sizing["households"].sum()),
            "own_sites": int((sites_out["site_role"] == "own").sum()),
            "cover_sites": int((sites_out["site_role"] == "cover").sum()),
            "townships_without_own_feasible_site": [
                {"township_code": c, "township_name": n, "demand_households": int(h),
                 "covered_by": ids.split(";") if ids else [], "shortfall_households": int(sh)}
                for c, n, h, ids, sh in zip(no_own["township_code"], no_own["township_name"],
                                            no_own["demand_households"], no_own["cover_site_ids"],
                                            no_own["shortfall_households"])],
            "townships_short_of_own_sites": [
                {"township_code": c, "township_name": n, "own_sites": int(o),
                 "sites_needed": int(k), "covered_by": ids.split(";") if ids else []}
                for c, n, o, k, ids in zip(short_own["township_code"], short_own["township_name"],
                                           short_own["own_sites"], short_own["sites_needed"],
                                           short_own["cover_site_ids"])],
            "shortfall_households": int(coverage["shortfall_households"].sum()),
            "note": ("township view: the district's sites serving this township or its "
                     "households (chosen for the whole district)" if township else "")}


def assignment_summary(full: pd.DataFrame, candidates: pd.DataFrame, assignment: pd.DataFrame,
                       unassigned: pd.DataFrame, coverage: pd.DataFrame) -> dict[str, Any]:
    """The ``assignment`` part of the summary: households placed, where, how far, and why not."""
    scheduled = full["schedule_year"].notna()
    assigned_hh = int(assignment["households"].sum())
    own_hh = int(assignment.loc[assignment["same_township"], "households"].sum())
    with_own = set(coverage.loc[coverage["own_sites"] > 0, "township_code"])
    a_own = assignment[assignment["township_code"].isin(with_own)]
    own_hh_where = int(a_own.loc[a_own["same_township"], "households"].sum())
    unplaced_by_reason = ({str(k): int(v) for k, v in
                           unassigned.groupby("reason")["households"].sum().sort_values(ascending=False).items()}
                          if len(unassigned) else {})
    net = assignment["network_km"]
    return {"candidate_households": int(candidates["households"].sum()),
            "assigned_households": assigned_hh,
            "unassigned_households": int(unassigned["households"].sum()),
            "unassigned_settlements": len(unassigned),
            "scheduled_households": int(full.loc[scheduled, "households"].sum()),
            "scheduled_households_placed": int(full.loc[scheduled, "assigned_households"].sum()),
            "same_township_households": own_hh,
            "same_township_pct": pct(own_hh, assigned_hh, 1),
            "placed_households_of_townships_with_own_sites": int(a_own["households"].sum()),
            "same_township_pct_of_townships_with_own_sites": pct(own_hh_where, a_own["households"].sum(), 1),
            "site_for_own_township_households":
                int(assignment.loc[assignment["site_for_own_township"], "households"].sum()),
            "mean_distance_km": round(float((assignment["households"] * assignment["distance_km"]).sum()
                                            / assigned_hh), 2) if assigned_hh else None,
            "max_distance_km": round(float(assignment["distance_km"].max()), 2) if assigned_hh else None,
            "unplaced_households_by_reason": unplaced_by_reason,
            "unplaced_settlements": [
                {"settlement_id": r_["settlement_id"], "township_code": r_["township_code"],
                 "households": int(r_["households"]), "reason": r_["reason"],
                 "detail": r_["reason_detail"]}
                for r_ in unassigned.head(50).to_dict("records")],
            "distance": "the assignment minimises straight-line km (distance_km); network_km is "
                        "the road distance of each assigned pair afterwards (straight legs to the "
                        "nearest road at both ends + shortest path over the access step's roads)",
            "mean_network_km": (round(float((assignment["households"] * net).sum()
                                            / assignment.loc[net.notna(), "households"].sum()), 2)
                                if net.notna().any() else None),
            "max_network_km": round(float(net.max()), 2) if net.notna().any() else None,
            "households_without_network_km": int(assignment.loc[net.isna(), "households"].sum()),
            "solver": "scipy.optimize.linprog (HiGHS dual simplex), transportation problem",
            "split_settlements": "households of one settlement may go to several sites"}


def headline_lines(summary: dict[str, Any], r: dict[str, Any], *, township: str | None) -> list[str]:
    """The summary's headline (before the left-out lines), from its own figures."""
    pc, sites, a = summary["plan_comparison"], summary["sites"], summary["assignment"]
    sched_rows, remainder = summary["schedule"]["years"], summary["schedule"]["remainder"]
    assigned_hh = a["assigned_households"]
    district = "district " if township else ""
    return [
        f"{summary['settlements']:,} settlements: {pc['above_threshold']['layer']:,} above {r['threshold_m']:g} m "
        f"({district}plan: {r['natural_villages_above_threshold']:,}); "
        f"{summary['candidates']:,} candidate settlements: {summary['candidate_poor_population']:,} "
        f"registered poor 建档立卡贫困人口 ({district}plan: "
        f"{r['people_target']:,}) + {summary['candidate_accompanying_population']:,} other residents "
        f"同步搬迁 = {summary['candidate_population']:,} people",
        ("schedule (this township's share of the district schedule; registered poor/district quota): "
         if township else "schedule (registered poor/quota): ") + ", ".join(
            f"{x['year']} {x['poor_people']:,}/{x['quota_poor_people']:,} (+{x['accompanying_people']:,} 同步搬迁)"
            for x in sched_rows)
        + f"; left over {remainder['settlements']:,} settlements, {remainder['poor_people']:,} "
          f"registered poor + {remainder['accompanying_people']:,} others",
        f"sites: {sites['selected']:,} ({sites['origin']}), {sites['capacity_households']:,} households "
        f"capacity; placed {assigned_hh:,} of {a['candidate_households']:,} households "
        f"({a['scheduled_households_placed']:,} of the "
        f"{a['scheduled_households']:,} scheduled; {a['same_township_pct'] or 0:g} % in their own "
        f"township, {pct(a['site_for_own_township_households'], assigned_hh, 1) or 0:g} % at sites in or "
        f"chosen for it; mean {a['mean_distance_km'] or 0:g} km, max "
        f"{a['max_distance_km'] or 0:g} km straight line), {a['unassigned_households']:,} unplaced",
        f"remoteness: {summary['remoteness']}",
    ]
