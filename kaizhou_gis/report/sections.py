"""The relocation, access and industry sections of report.json, each against the plan."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kaizhou_gis.figures import pct
from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.layers import leftout
from kaizhou_gis.report.common import _bool, _num, _records, _unavailable
from kaizhou_gis.report.frames import (
    _admin,
    _after_tongchang,
    _beneficiary_ids,
    _calibrated,
    _Frames,
    _poor,
    _works_in_scope,
)
from kaizhou_gis.results import StepResult


@dataclass
class _Relocating:
    """The relocation step's settlements in the scope with the columns the section adds up."""

    s: pd.DataFrame
    pop: pd.Series
    hh: pd.Series
    poor: pd.Series
    poor_basis: str
    cand: pd.Series

    @classmethod
    def of(cls, plan, frames: _Frames, settlements: pd.DataFrame) -> _Relocating:
        s = frames.scoped_settlements(settlements)
        pop = pd.to_numeric(s.get("population"), errors="coerce").fillna(0)
        hh = pd.to_numeric(s.get("households"), errors="coerce").fillna(0)
        poor, poor_basis = _poor(s, plan)
        return cls(s, pop, hh, poor, poor_basis, _bool(s["relocation_candidate"]))


def relocation_section(plan, frames: _Frames, res: StepResult | None, why: str) -> dict:
    """Relocation candidates, share above the threshold and yearly schedule against the plan."""
    rel = plan.section("relocation")
    out: dict[str, Any] = {"plan": {
        "threshold_m": rel["threshold_m"], "people_target": rel["people_target"],
        "natural_villages_in_area": rel["outmigration_natural_villages"],
        "natural_villages_above_threshold": rel["natural_villages_above_threshold"],
        "share_above_threshold_pct": rel["share_above_threshold_pct"],
        "yearly_people": {str(k): v for k, v in rel["yearly_people"].items()}}}
    if res is None:
        out.update(_unavailable("relocation", why))
        return out
    t = _Relocating.of(plan, frames, res.data.settlements)
    s, cand = t.s, t.cand
    out.update(_relocation_counts(t, rel["people_target"], frames))
    notes = ((res.summary or {}).get("plan_comparison") or {}).get("notes")
    if isinstance(notes, list):
        out["notes"] = [str(n) for n in notes]
    if "status" in s:
        out["by_status"] = {str(k): int(v) for k, v in s["status"].astype(str).value_counts().items()}
    out["left_out"] = leftout.relocation(s, _scoped_unassigned(res.data.unassigned, s))
    flags = {}
    for c in ("above_threshold", "steep_terrain", "deep_valley", "remote", "in_poverty_village"):
        if c in s:
            flags[c] = int(_bool(s[c])[cand].sum())
    out["candidate_flags"] = flags
    out.update(_relocation_schedule(t, rel["yearly_people"]))
    sites = res.data.sites
    if sites is not None and len(sites):
        sites = frames._scope(pd.DataFrame(sites))
        out["sites"] = {
            "count": int(len(sites)),
            "capacity_households": int(pd.to_numeric(sites.get("capacity_households"),
                                                     errors="coerce").fillna(0).sum()),
            "assigned_households": int(pd.to_numeric(sites.get("assigned_households"),
                                                     errors="coerce").fillna(0).sum())}
    assign = res.data.assignment
    if assign is not None and len(assign):
        out["assignment"] = _relocation_assignment(assign, s)
    un = res.data.unassigned
    if un is not None:
        out["unassigned"] = _relocation_unassigned(un, s)
    return out


def _relocation_counts(t: _Relocating, people_target, frames: _Frames) -> dict[str, Any]:
    """Settlements, those above the threshold and the candidates' households and people."""
    s, pop, hh, poor, cand = t.s, t.pop, t.hh, t.poor, t.cand
    above = _bool(s["above_threshold"]) if "above_threshold" in s else pd.Series(False, s.index)
    elev = pd.to_numeric(s.get("elevation_m"), errors="coerce")
    return {
        "status": "ok",
        "settlements": int(len(s)),
        "settlements_with_elevation": int(elev.notna().sum()),
        "above_threshold": int(above.sum()),
        "share_above_threshold_pct": pct(float(above.sum()), len(s)),
        "candidates": int(cand.sum()),
        "candidate_households": int(hh[cand].sum()),
        "candidate_people": int(pop[cand].sum()),
        "candidate_poor_people": int(poor[cand].sum()),
        "candidate_accompanying_people": int(pop[cand].sum() - poor[cand].sum()),
        "candidate_poor_vs_target_pct": pct(float(poor[cand].sum()), people_target),
        "poor_population_basis": t.poor_basis,
        "poor_people_in_layer": int(poor.sum()),
        "calibrated": {k: v for k, v in _calibrated(frames.data_status).items()
                       if k in ("share_above_threshold", "registered_poor")},
    }


def _relocation_schedule(t: _Relocating, yearly_people: dict) -> dict[str, Any]:
    """The yearly schedule against the plan's quotas (every plan year and every scheduled year)
    and the candidates left unscheduled."""
    s, pop, hh, poor, cand = t.s, t.pop, t.hh, t.poor, t.cand
    out: dict[str, Any] = {}
    sched = []
    years = pd.to_numeric(s.get("schedule_year"), errors="coerce") if "schedule_year" in s else None
    plan_years = {str(k): v for k, v in yearly_people.items()}
    all_years = sorted(set(plan_years) | ({str(int(y)) for y in years.dropna().unique()}
                                          if years is not None else set()))
    for y in all_years:
        sel = (years == int(y)) if years is not None else pd.Series(False, s.index)
        sched.append({"year": int(y), "settlements": int(sel.sum()),
                      "households": int(hh[sel].sum()), "poor_people": int(poor[sel].sum()),
                      "accompanying_people": int(pop[sel].sum() - poor[sel].sum()),
                      "people": int(pop[sel].sum()), "plan_people": plan_years.get(y)})
    if years is not None:
        unsched = cand & years.isna()
        out["unscheduled_candidates"] = int(unsched.sum())
        out["unscheduled_poor_people"] = int(poor[unsched].sum())
        out["unscheduled_people"] = int(pop[unsched].sum())
    out["schedule"] = sched
    return out


def _relocation_assignment(assign, s: pd.DataFrame) -> dict[str, Any]:
    """Households assigned to a site from the scope's settlements and their distances."""
    ids = set(s["settlement_id"].astype(str)) if "settlement_id" in s else None
    a = pd.DataFrame(assign)
    if ids is not None and "settlement_id" in a:
        a = a[a["settlement_id"].astype(str).isin(ids)]
    d = pd.to_numeric(a.get("distance_km"), errors="coerce")
    return {"rows": int(len(a)),
            "households": int(pd.to_numeric(a.get("households"),
                                            errors="coerce").fillna(0).sum()),
            "mean_distance_km": _num(round(d.mean(), 2)) if len(a) else None,
            "max_distance_km": _num(round(d.max(), 2)) if len(a) else None}


def _relocation_unassigned(un, s: pd.DataFrame) -> dict[str, Any]:
    """The scope's settlements no site took, with the count per reason."""
    u = pd.DataFrame(un)
    if "settlement_id" in s and "settlement_id" in u:
        u = u[u["settlement_id"].astype(str).isin(set(s["settlement_id"].astype(str)))]
    return {
        "settlements": int(len(u)),
        "households": int(pd.to_numeric(u.get("households"), errors="coerce").fillna(0).sum())
        if len(u) else 0,
        "reasons": ({str(k): int(v) for k, v in u["reason"].astype(str).value_counts().items()}
                    if "reason" in u and len(u) else {})}


def _scoped_unassigned(un, s: pd.DataFrame) -> pd.DataFrame:
    u = pd.DataFrame(un) if un is not None else pd.DataFrame()
    if "settlement_id" in s and "settlement_id" in u:
        u = u[u["settlement_id"].astype(str).isin(set(s["settlement_id"].astype(str)))]
    return u


def access_section(plan, frames: _Frames, res: StepResult | None, why: str) -> dict:
    """Road scorecard before/after the proposed works, works by type, cost curve."""
    acc = plan.section("access")
    targets = {"village_tongchang_pct": acc["village_tongchang_target_pct"],
               "settlement_tongda_pct": acc["settlement_tongda_target_pct"],
               "settlement_tongchang_pct": acc["settlement_tongchang_target_pct"]}
    out: dict[str, Any] = {"targets": targets,
                           "plan_roads_km_2020": acc["roads_km_2020"],
                           "plan_period_end": int(plan["meta.plan_period"][-1]),
                           "plan_poverty_village_roads_km": acc["poverty_village_roads_km"]}
    if res is None:
        out.update(_unavailable("access", why))
        return out
    out["status"] = "ok"
    card = res.data.scorecard or {}
    rows = []
    for key, target in targets.items():
        b = _num((card.get("before") or {}).get(key))
        a = _num((card.get("after") or {}).get(key))
        rows.append({"indicator": key, "target_pct": target, "before_pct": b, "after_pct": a,
                     "meets_target_after": (a >= target - 1e-9) if a is not None else None})
    if frames.township is not None:  # the district scorecard does not describe one township
        v = _admin(frames.scoped_villages(res.data.villages))
        s = frames.scoped_settlements(res.data.settlements)
        ids = _beneficiary_ids(res.data.works)
        tg = _bool(s["target_group"]) if "target_group" in s else pd.Series(True, s.index)
        sid = s["settlement_id"].astype(str) if "settlement_id" in s else pd.Series("", s.index)
        vals = {
            "village_tongchang_pct": (pct(_bool(v["tongchang"]).sum(), len(v)),
                                      _after_tongchang(v, res, frames)),
            "settlement_tongda_pct": (pct(_bool(s["tongda"])[tg].sum(), tg.sum()),
                                      pct((_bool(s["tongda"]) | sid.isin(ids))[tg].sum(), tg.sum())),
            "settlement_tongchang_pct": (pct(_bool(s["tongchang"])[tg].sum(), tg.sum()),
                                         pct((_bool(s["tongchang"]) | sid.isin(ids))[tg].sum(),
                                              tg.sum()))}
        for r in rows:
            b, a = vals[r["indicator"]]
            r.update(before_pct=b, after_pct=a,
                     meets_target_after=(a >= r["target_pct"] - 1e-9) if a is not None else None)
    out["scorecard"] = rows
    out["left_out"] = leftout.access(frames.scoped_villages(res.data.villages),
                                     frames.scoped_settlements(res.data.settlements))
    out["reach_distance_m"] = acc["reach_distance_m"]
    works = res.data.works
    if works is not None and len(works):
        w = _works_in_scope(works, frames)
        km = pd.to_numeric(w["km"], errors="coerce").fillna(0)
        cost = pd.to_numeric(w["cost_yuan"], errors="coerce").fillna(0)
        by_type = []
        for t in sorted(w["type"].astype(str).unique()):
            sel = w["type"].astype(str) == t
            nw = int(w.loc[sel, "work_id"].nunique()) if "work_id" in w else int(sel.sum())
            by_type.append({"type": t, "works": nw, "km": round(math.fsum(km[sel]), 3),
                            "cost_yuan": round(math.fsum(cost[sel]), 0)})
        out["works"] = {"count": int(w["work_id"].nunique()) if "work_id" in w else int(len(w)),
                        # exact sums, as the per-township table's: the same works give the
                        # same figure whatever the order of their rows
                        "km": round(math.fsum(km), 3),
                        "cost_yuan": round(math.fsum(cost), 0), "by_type": by_type}
    else:
        out["works"] = {"count": 0, "km": 0.0, "cost_yuan": 0.0, "by_type": []}
    curve = res.data.cost_curve
    if curve is not None and len(curve) and frames.township is None:
        out["cost_curve"] = _records(pd.DataFrame(curve))
    else:
        out["cost_curve"] = []
    n_unreached = {}
    if res.data.villages is not None and "reason" in res.data.villages:
        v = frames.scoped_villages(res.data.villages)
        r = v["reason"].fillna("").astype(str)
        n_unreached = {k: int(c) for k, c in r[r != ""].value_counts().items()}
    out["village_reasons"] = n_unreached
    return out


def industry_section(plan, frames: _Frames, res: StepResult | None, why: str) -> dict:
    """Industry projects by category: plan scale, host villages placed, names not resolved."""
    if res is None:
        return _unavailable("industry", why)
    projects = pd.DataFrame(res.data.projects)  # an empty table when there is none
    hosts = res.data.hosts if res.data.hosts is not None else pd.DataFrame()
    hosts = pd.DataFrame(hosts.drop(columns="geometry", errors="ignore"))
    unresolved = pd.DataFrame(res.data.unresolved)
    if frames.township is not None and len(hosts) and "village_code" in hosts:
        hosts = hosts.copy()
        hosts["township_code"] = host_township_codes(hosts, frames.village_township)
        hosts = frames._scope(hosts)
        if "project_id" in projects:
            projects = projects[projects["project_id"].isin(set(hosts["project_id"]))]
    out: dict[str, Any] = {"status": "ok", "projects": int(len(projects)),
                           "host_villages": int(hosts["village_code"].nunique())
                           if "village_code" in hosts else 0,
                           "host_rows": int(len(hosts)),
                           "unresolved_names": int(len(unresolved)) if frames.township is None
                           else None}
    cats = []
    if len(projects) and "category" in projects:
        hosts_per = (hosts.groupby("project_id")["village_code"].nunique()
                     if len(hosts) and "project_id" in hosts else pd.Series(dtype=int))
        for cat, g in projects.groupby(projects["category"].astype(str), sort=True):
            scale = pd.to_numeric(g.get("scale"), errors="coerce")
            if "part_of" in g:  # a part of another project is already in that project's total
                scale = scale.where(g["part_of"].fillna("").astype(str).str.strip().eq(""))
            # one total per product AND unit: goats and pigs (头), stations and brands (个) or
            # different kinds of household (户) are never added together
            units = []
            keyed = g.assign(_s=scale,
                             _p=g.get("product", pd.Series("", g.index)).fillna("").astype(str),
                             _u=g.get("unit", pd.Series("", g.index)).fillna("").astype(str))
            for (prod, u), gg in keyed.groupby(["_p", "_u"], sort=False):
                total = _num(gg["_s"].sum(min_count=1))
                if u.strip() and total:
                    units.append({"product": prod, "unit": u, "total": total,
                                  "project_ids": [str(x) for x in gg.get("project_id", [])]})
            placed = int(hosts_per.reindex(g["project_id"]).fillna(0).sum()) \
                if "project_id" in g else 0
            named_col = next((c for c in ("n_hosts_named", "n_hosts") if c in g), None)
            named = (int(pd.to_numeric(g[named_col], errors="coerce").fillna(0).sum())
                     if named_col else None)
            cats.append({"category": cat, "projects": int(len(g)), "scale_by_product": units,
                         "hosts_named": named, "hosts_placed": placed})
    out["by_category"] = cats
    totals = res.data.totals
    cols = ["category", "product", "product_en", "unit", "plan_total", "n_hosts_named", "n_hosts",
            "n_unresolved", "placed_scale"]
    if totals is not None and len(totals) and frames.township is None:
        t = pd.DataFrame(totals)
        out["products"] = _records(t[[c for c in cols if c in t]])
    if len(unresolved) and frames.township is None and "reason" in unresolved:
        out["unresolved_reasons"] = {str(k): int(v) for k, v in
                                     unresolved["reason"].astype(str).value_counts().items()}
    return out
