"""The plan scorecard: the plan's main indicators, relocation, roads and industry against the plan.

The report step (:func:`run`) reads the results of the ``access``, ``relocation`` and ``industry``
steps (each may be unavailable or have failed; the affected sections then say so) and the input
layers, and returns three products at the root of the output folder:

``report.json``
    every figure of the report, machine-readable (:func:`build_report` builds this dict);
``report.md``
    the same as Markdown tables, with the charts as PNG files in ``report_files/``;
``report.html``
    one self-contained page (charts embedded as base64 PNG, no external resource), with Chinese
    and English labels, that reads like an annex of the planning document.

Which of the plan's indicators the layers can answer is set in the plan file
(``report.indicator_measures``: indicator id -> measure); every other indicator is reported with
its targets and the reason it is "not derivable from these layers".
"""
from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from kaizhou_gis import leftout, provenance
from kaizhou_gis.admin import settlement_townships, village_townships
from kaizhou_gis.access import admin_village_mask
from kaizhou_gis.errors import KaizhouGISError, PlanError
from kaizhou_gis.figures import pct
from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.results import ReportData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)

NOT_DERIVABLE = "not derivable from these layers"
NOT_DERIVABLE_ZH = "无法由现有图层计算"

#: Measures the layers can compute for a plan indicator (values of ``report.indicator_measures``).
MEASURES = {
    "poverty_villages": "count of villages with poverty_village = true in the villages layer",
    "relocation_people": "registered poor people (建档立卡贫困人口, settlements.poor_population) in "
                         "the settlements the relocation step schedules in the plan's relocation years "
                         "(relocation.yearly_people; cumulative)",
    "village_tongchang_pct": "share of administrative villages (行政村, kind 村; 社区 not counted) "
                             "reached by a hardened road, now and with the proposed works "
                             "(planned; access step)",
}

#: Step each measure needs.
_MEASURE_STEP = {"poverty_villages": None, "relocation_people": "relocation",
                 "village_tongchang_pct": "access"}

#: Errors that mean another step's result lacks a column or key the report reads.
_RESULT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)

#: Steps whose results the report reads.
SOURCE_STEPS = ("access", "relocation", "industry")

#: Chinese labels of the per-township table's columns.
TOWNSHIP_LABELS_ZH = {
    "township_code": "乡镇代码", "name": "乡镇(街道)", "villages": "行政村数",
    "poverty_villages": "贫困村数", "settlements": "自然村数", "candidates": "拟整体搬迁自然村数",
    "candidate_households": "拟搬迁自然村总户数", "candidate_people": "拟搬迁自然村总人口",
    "candidate_poor_people": "搬迁对象(建档立卡贫困人口)",
    "candidate_accompanying_people": "同步搬迁人口",
    "tongchang_before_pct": "行政村通畅率(现状,%)",
    "tongchang_after_pct": "行政村通畅率(实施拟建工程后，规划,%)",
    "works_km": "建设里程(公里)", "works_cost_10k_yuan": "投资(万元)",
    "industry_projects": "产业项目数",
}


# --------------------------------------------------------------------------------------------
# small helpers


def _num(x: Any) -> float | None:
    """A finite float or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _bool(s: pd.Series) -> pd.Series:
    """A boolean Series from bool/0-1/text flags (NaN counts as False)."""
    if s.dtype == bool:
        return s
    return s.map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "y", "是")
                 if not (v is None or (isinstance(v, float) and math.isnan(v))) else False
                 ).astype(bool)


def _step(ctx: StepContext, needs: StepNeeds, name: str) -> tuple[StepResult | None, str]:
    """The result of the needed step ``name`` and "" , or None and why it is unavailable."""
    try:
        return needs.result(name), ""
    except KaizhouGISError as e:
        return None, str(e)
    except Exception as e:  # a bug in another step must not take the report down
        log.debug("step %s crashed while the report asked for it", name, exc_info=True)
        msg = f"{type(e).__name__}: {e}"
        ctx.failed.setdefault(name, msg)
        return None, msg


def _unavailable(step: str, why: str) -> dict:
    return {"status": "unavailable",
            "message": f"step '{step}' did not produce results: {why}",
            "message_zh": f"“{step}”步骤未能产生结果：{why}"}


def _with_layer_columns(df: pd.DataFrame, layer: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """``df`` with the columns ``cols`` taken from ``layer`` (same index) where ``df`` lacks them."""
    df = df.copy()
    for c in cols:
        if c not in df and c in layer:
            df[c] = layer[c].reindex(df.index)
    return df


def _records(df: pd.DataFrame) -> list[dict]:
    plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
    out = []
    for row in plain.to_dict(orient="records"):
        out.append({str(k): _plain_value(v) for k, v in row.items()})
    return out


def _plain_value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def _scope_label(ctx: StepContext) -> str:
    if ctx.township is None:
        return ""
    tw = ctx.layers.townships
    hit = tw[tw["township_code"].astype(str) == str(ctx.township)]
    return str(hit["name"].iloc[0]) if len(hit) else str(ctx.township)


# --------------------------------------------------------------------------------------------
# the report's sections (plain dicts; every figure ends up in report.json)


class _Frames:
    """The tables the report is built from, restricted to the township of the run (if any)."""

    def __init__(self, ctx: StepContext):
        self.ctx = ctx
        self.problems: list[str] = []
        lay = ctx.layers
        self.township = ctx.township
        villages = pd.DataFrame(lay.villages.drop(columns="geometry", errors="ignore"))
        self.village_township = village_townships(villages)
        settlements = pd.DataFrame(lay.settlements.drop(columns="geometry", errors="ignore"))
        settlements["township_code"] = settlement_townships(settlements, self.village_township, warn=False)
        self.villages = self._scope(villages)
        self.settlements = self._scope(settlements)
        self.townships = self._scope(pd.DataFrame(lay.townships.drop(columns="geometry",
                                                                     errors="ignore")))

    def _scope(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.township is None or "township_code" not in df:
            return df
        return df[df["township_code"].astype(str) == str(self.township)]

    def scoped_villages(self, df: pd.DataFrame) -> pd.DataFrame:
        """An access/relocation village table with township_code, limited to the run's township."""
        df = _with_layer_columns(pd.DataFrame(df), self.ctx.layers.villages,
                                 ["village_code", "township_code", "poverty_village"])
        return self._scope(df)

    def scoped_settlements(self, df: pd.DataFrame) -> pd.DataFrame:
        df = _with_layer_columns(pd.DataFrame(df), self.ctx.layers.settlements,
                                 ["settlement_id", "village_code", "households", "population"])
        if "township_code" not in df:  # the steps' tables carry it (same rule)
            df["township_code"] = settlement_townships(df, self.village_township, warn=False)
        return self._scope(df)


def _admin(v: pd.DataFrame) -> pd.DataFrame:
    """The administrative villages (行政村, kind 村) of a village table: indicator 5 counts these."""
    return v[admin_village_mask(v).to_numpy()]


def _poor(s: pd.DataFrame, plan) -> tuple[pd.Series, str]:
    """Registered poor people per settlement and the basis of the figure.

    From ``poor_population`` (the layer's or the loader's estimate, see ``poor_population_basis``);
    a table without it gets the same estimate as the loader (population x the plan's incidence).
    """
    incidence = float(plan["baseline.poverty_incidence_pct"])
    est_text = (f"estimated: population x the plan's poverty incidence {incidence:g} % "
                f"(baseline.poverty_incidence_pct) / 按规划贫困发生率{incidence:g}%估算")
    if "poor_population" in s and pd.to_numeric(s["poor_population"], errors="coerce").notna().all():
        poor = pd.to_numeric(s["poor_population"], errors="coerce").astype("int64")
        basis = s["poor_population_basis"].astype(str) if "poor_population_basis" in s else \
            pd.Series("layer", s.index)
        n_est = int((basis == "estimated").sum())
        if n_est == 0:
            return poor, "layer: settlements.poor_population (建档立卡贫困人口) / 图层给出"
        return poor, f"{est_text} for {n_est:,} of {len(s):,} settlements"
    from kaizhou_gis.layers import estimate_poor_population

    est = estimate_poor_population(pd.DataFrame(s).assign(poor_population=np.nan), plan, [], [], [])
    return est["poor_population"].astype("int64"), est_text


def _calibrated(ctx: StepContext) -> dict[str, bool]:
    """Figures the synthetic layers were built to match (layers/README.md): shown as calibrated.

    A figure is calibrated when the layer it comes from is synthesized: the poverty-village count
    (villages), village 通畅 now (roads), the share of settlements above the threshold (settlements,
    dem) and the registered poor of the candidates (settlements.poor_population).
    """
    syn = set(ctx.data_status.get("synthetic_layers", []))
    return {"poverty_villages": "villages" in syn,
            "village_tongchang_before": "roads" in syn,
            "share_above_threshold": bool({"settlements", "dem"} & syn),
            "registered_poor": "settlements" in syn}


def _cal(flag: bool) -> str:
    """The calibrated mark for a figure (empty when the figure is independent)."""
    return f" [{provenance.CALIBRATED_ZH} / {provenance.CALIBRATED_EN}]" if flag else ""


def _poverty_flag_filled(ctx: StepContext) -> bool:
    """True when the villages layer had no poverty_village column (the loader filled False and
    noted it): then the layers cannot say how many poverty villages there are."""
    return any(str(n).startswith("villages.poverty_village: no column")
               for n in (getattr(ctx.layers, "notes", None) or []))


def _indicator_measures(plan) -> dict[int, str]:
    raw = plan.get("report.indicator_measures", {}) or {}
    out, bad = {}, []
    for k, v in raw.items():
        if v not in MEASURES:
            bad.append(f"{k} = {v!r}")
            continue
        out[int(k)] = v
    if bad:
        raise PlanError(f"plan {plan.path}: report.indicator_measures: unknown measure(s) "
                        f"{', '.join(bad)}; use one of: {', '.join(MEASURES)}.")
    return out


def _measure(measure: str, ind: dict, frames: _Frames, steps: dict, why: dict) -> dict:
    """Compute one indicator measure; returns the computed part of the indicator's entry."""
    need = _MEASURE_STEP[measure]
    if need is not None and steps.get(need) is None:
        return {"status": "unavailable", "computed": None,
                "reason": f"step '{need}' did not produce results: {why.get(need, '')}",
                "basis": MEASURES[measure]}
    scope = "township of this run" if frames.township else "whole district"
    if measure == "poverty_villages":
        v = frames.villages
        if "poverty_village" not in v or _poverty_flag_filled(frames.ctx):
            return {"status": "not_derivable", "computed": None, "basis": MEASURES[measure],
                    "reason": f"{NOT_DERIVABLE}: the villages layer has no poverty_village column",
                    "reason_zh": f"{NOT_DERIVABLE_ZH}（村图层无贫困村标记 poverty_village）"}
        n = int(_bool(v["poverty_village"]).sum())
        bkey, _ = frames.ctx.plan.indicator_years
        base = _num(ind.get(bkey))
        comment = (f"the layers hold {n} poverty villages ({scope}); the plan's "
                   f"{bkey.rsplit('_', 1)[1]} baseline is {base:g}" if base is not None
                   else f"{n} poverty villages in the layers")
        comment += _cal(_calibrated(frames.ctx)["poverty_villages"])
        return {"status": "computed", "computed": n, "computed_after": None,
                "compare_with": bkey, "basis": MEASURES[measure], "comment": comment}
    if measure == "relocation_people":
        s = frames.scoped_settlements(steps["relocation"].data.settlements)
        cand = _bool(s["relocation_candidate"])
        pop = pd.to_numeric(s["population"], errors="coerce").fillna(0)
        poor, basis = _poor(s, frames.ctx.plan)
        years = pd.to_numeric(s.get("schedule_year"), errors="coerce") if "schedule_year" in s \
            else pd.Series(np.nan, s.index)
        sched = cand & years.notna()
        people = float(pop[cand].sum())
        poor_sched = int(poor[sched].sum())
        unit = str(ind.get("unit", ""))
        value = poor_sched / 10_000 if "万" in unit else poor_sched
        tkeys = frames.ctx.plan.indicator_years[1]
        target = next((t for t in (_num(ind.get(k)) for k in tkeys) if t is not None), None)
        comment = (f"{poor_sched:,} registered poor people (建档立卡贫困人口) in the "
                   f"{int(sched.sum())} settlements scheduled for the plan's years ({scope}; "
                   f"planned, 规划), moving with {int(pop[sched].sum()) - poor_sched:,} other "
                   f"residents (同步搬迁); the {int(cand.sum())} candidate settlements hold "
                   f"{int(poor[cand].sum()):,} registered poor of {int(people):,} residents; "
                   f"basis: {basis}")
        if target:
            comment += f"; {100 * value / target:.1f} % of the plan's {target:g} {unit}"
        comment += _cal(_calibrated(frames.ctx)["registered_poor"] and "estimated" not in basis)
        return {"status": "computed", "computed": round(value, 4), "computed_after": None,
                "compare_with": tkeys[0], "basis": MEASURES[measure], "comment": comment,
                "people": int(people), "registered_poor_scheduled": poor_sched,
                "registered_poor_candidates": int(poor[cand].sum()),
                "accompanying_people_scheduled": int(pop[sched].sum()) - poor_sched,
                "poor_population_basis": basis}
    if measure == "village_tongchang_pct":
        acc = steps["access"]
        before = after = None
        if frames.township is None:
            card = acc.data.scorecard or {}
            before = _num((card.get("before") or {}).get("village_tongchang_pct"))
            after = _num((card.get("after") or {}).get("village_tongchang_pct"))
        if before is None:
            v = _admin(frames.scoped_villages(acc.data.villages))
            before = pct(float(_bool(v["tongchang"]).sum()), len(v))
            after = _after_tongchang(v, acc, frames)
        comment = (f"{scope}, 行政村 only (社区 not counted): {before}% now"
                   f"{_cal(_calibrated(frames.ctx)['village_tongchang_before'])}; {after}% "
                   f"{provenance.PLANNED_EN} / {provenance.PLANNED_ZH}")
        return {"status": "computed", "computed": before, "computed_after": after,
                "compare_with": frames.ctx.plan.indicator_years[1][0], "basis": MEASURES[measure], "comment": comment}
    raise PlanError(f"unknown measure {measure!r}")  # pragma: no cover (checked by _indicator_measures)


def _beneficiary_ids(works: pd.DataFrame | None) -> set[str]:
    ids: set[str] = set()
    if works is None or len(works) == 0 or "beneficiaries" not in works:
        return ids
    for b in works["beneficiaries"].dropna().astype(str):
        ids.update(x.strip() for x in b.split(";") if x.strip())
    return ids


def _after_tongchang(villages: pd.DataFrame, acc: StepResult, frames: _Frames) -> float | None:
    """Village 通畅 share after the works: already 通畅 or named as a beneficiary of a work."""
    if "tongchang" not in villages or "village_code" not in villages:
        return None
    ids = _beneficiary_ids(acc.data.works)
    ok = _bool(villages["tongchang"]) | villages["village_code"].astype(str).isin(ids)
    return pct(float(ok.sum()), len(villages))


def indicator_table(plan, frames: _Frames, steps: dict, why: dict) -> list[dict]:
    """The plan's main indicators with targets and the computed value or the reason there is none."""
    measures = _indicator_measures(plan)
    bkey, tkeys = plan.indicator_years
    rows = []
    for ind in plan.indicators:
        entry = {k: _plain_value(ind.get(k)) for k in
                 ("id", "name_zh", "name_en", "kind", "unit", bkey, *tkeys, "note", "source")}
        m = measures.get(int(ind["id"]))
        if m is None:
            entry.update({"status": "not_derivable", "computed": None, "computed_after": None,
                          "measure": None,
                          "reason": f"{NOT_DERIVABLE}: needs survey statistics; the layers hold "
                                    f"places, households, population, poverty-village flags, "
                                    f"roads and elevation only",
                          "reason_zh": f"{NOT_DERIVABLE_ZH}（需统计调查数据）"})
        else:
            try:
                res = _measure(m, ind, frames, steps, why)
            except (KeyError, TypeError, ValueError) as e:
                res = {"status": "unavailable", "computed": None,
                       "reason": f"the {_MEASURE_STEP[m]} results lack what {m} needs: {e!r}"}
            entry.update({"measure": m, "computed_after": None, **res})
            if entry["status"] != "computed":
                entry.setdefault("reason_zh", "所需步骤结果不可用")
        rows.append(entry)
    return rows


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
    s = frames.scoped_settlements(res.data.settlements)
    pop = pd.to_numeric(s.get("population"), errors="coerce").fillna(0)
    hh = pd.to_numeric(s.get("households"), errors="coerce").fillna(0)
    poor, poor_basis = _poor(s, plan)
    cand = _bool(s["relocation_candidate"])
    above = _bool(s["above_threshold"]) if "above_threshold" in s else pd.Series(False, s.index)
    elev = pd.to_numeric(s.get("elevation_m"), errors="coerce")
    out.update({
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
        "candidate_poor_vs_target_pct": pct(float(poor[cand].sum()), rel["people_target"]),
        "poor_population_basis": poor_basis,
        "poor_people_in_layer": int(poor.sum()),
        "calibrated": {k: v for k, v in _calibrated(frames.ctx).items()
                       if k in ("share_above_threshold", "registered_poor")},
    })
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
    sched = []
    years = pd.to_numeric(s.get("schedule_year"), errors="coerce") if "schedule_year" in s else None
    plan_years = {str(k): v for k, v in rel["yearly_people"].items()}
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
        ids = set(s["settlement_id"].astype(str)) if "settlement_id" in s else None
        a = pd.DataFrame(assign)
        if ids is not None and "settlement_id" in a:
            a = a[a["settlement_id"].astype(str).isin(ids)]
        d = pd.to_numeric(a.get("distance_km"), errors="coerce")
        out["assignment"] = {"rows": int(len(a)),
                             "households": int(pd.to_numeric(a.get("households"),
                                                             errors="coerce").fillna(0).sum()),
                             "mean_distance_km": _num(round(d.mean(), 2)) if len(a) else None,
                             "max_distance_km": _num(round(d.max(), 2)) if len(a) else None}
    un = res.data.unassigned
    if un is not None:
        u = pd.DataFrame(un)
        if "settlement_id" in s and "settlement_id" in u:
            u = u[u["settlement_id"].astype(str).isin(set(s["settlement_id"].astype(str)))]
        out["unassigned"] = {
            "settlements": int(len(u)),
            "households": int(pd.to_numeric(u.get("households"), errors="coerce").fillna(0).sum())
            if len(u) else 0,
            "reasons": ({str(k): int(v) for k, v in u["reason"].astype(str).value_counts().items()}
                        if "reason" in u and len(u) else {})}
    return out


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
            by_type.append({"type": t, "works": nw, "km": round(float(km[sel].sum()), 2),
                            "cost_yuan": round(float(cost[sel].sum()), 0)})
        out["works"] = {"count": int(w["work_id"].nunique()) if "work_id" in w else int(len(w)),
                        "km": round(float(km.sum()), 2),
                        "cost_yuan": round(float(cost.sum()), 0), "by_type": by_type}
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


def _works_in_scope(works, frames: _Frames) -> pd.DataFrame:
    """Works per township, limited to the scope: one row per (work, township served) with ``km``
    and ``cost_yuan`` split evenly over the townships a work serves (the access step's
    ``township_code``, as its townships.csv does), so the report's figures are the access step's.
    Works without ``township_code`` go to the township holding their midpoint."""
    w = pd.DataFrame(works.copy())
    if "township_code" in w and w["township_code"].notna().all():
        codes = w["township_code"].astype(str).str.split(";")
        n = codes.map(len)
        w = w.assign(township_code=codes, km=pd.to_numeric(w["km"], errors="coerce") / n,
                     cost_yuan=pd.to_numeric(w["cost_yuan"], errors="coerce") / n,
                     _share=1.0 / n).explode("township_code")
    else:
        w["township_code"] = _works_township(works, frames.ctx.layers.townships)
        w["_share"] = 1.0
    return frames._scope(w)


def _works_township(works, townships) -> pd.Series:
    out = pd.Series("", index=works.index, dtype=object)
    if not hasattr(works, "geometry") or townships is None or len(townships) == 0:
        return out
    import geopandas as gpd

    geoms = works.geometry
    ok = geoms.notna() & ~geoms.is_empty
    if not ok.any():
        return out
    mids = geoms[ok].interpolate(0.5, normalized=True)
    pts = gpd.GeoDataFrame({"i": mids.index}, geometry=mids.values, crs=works.crs)
    tw = townships[["township_code", "geometry"]]
    if tw.crs is not None and pts.crs is not None and tw.crs != pts.crs:
        pts = pts.to_crs(tw.crs)
    hit = gpd.sjoin(pts, tw, how="left", predicate="within")
    hit = hit[~hit["i"].duplicated()]
    miss = hit["township_code"].isna()
    if miss.any():  # on a boundary or outside: the nearest township
        near = gpd.sjoin_nearest(pts[pts["i"].isin(hit.loc[miss, "i"])], tw, how="left")
        near = near[~near["i"].duplicated()]
        hit.loc[miss, "township_code"] = near.set_index("i")["township_code"].reindex(
            hit.loc[miss, "i"]).values
    out.loc[hit["i"].values] = hit["township_code"].astype(str).values
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


def township_table(frames: _Frames, steps: dict) -> pd.DataFrame:
    """One row per township: villages, settlements, candidates, 通畅 before/after, works, industry."""
    tw = frames.townships
    codes = tw["township_code"].astype(str)
    df = pd.DataFrame({"township_code": codes.values, "name": tw["name"].astype(str).values})
    v = frames.villages
    vt = v["township_code"].astype(str) if "township_code" in v else pd.Series(dtype=str)
    df["villages"] = df["township_code"].map(vt.value_counts()).fillna(0).astype(int)
    if "poverty_village" in v and not _poverty_flag_filled(frames.ctx):
        pv = vt[_bool(v["poverty_village"])].value_counts()
        df["poverty_villages"] = df["township_code"].map(pv).fillna(0).astype(int)
    st = frames.settlements["township_code"].astype(str)
    df["settlements"] = df["township_code"].map(st.value_counts()).fillna(0).astype(int)
    for name, add in (("relocation", _tw_relocation), ("access", _tw_access),
                      ("industry", _tw_industry)):
        res = steps.get(name)
        if res is None:
            continue
        try:
            df = add(df.copy(), frames, res)
        except _RESULT_ERRORS as e:  # a result without the expected columns: leave them out
            log.warning("report: per-township %s columns left out: %s: %s", name,
                        type(e).__name__, e)
            frames.problems.append(f"per-township table: {name} columns left out "
                                   f"({type(e).__name__}: {e})")
    df.attrs["labels_zh"] = {c: TOWNSHIP_LABELS_ZH[c] for c in df.columns if c in TOWNSHIP_LABELS_ZH}
    return df


def _tw_relocation(df: pd.DataFrame, frames: _Frames, rel: StepResult) -> pd.DataFrame:
    s = frames.scoped_settlements(rel.data.settlements)
    cand = _bool(s["relocation_candidate"])
    poor, _ = _poor(s, frames.ctx.plan)
    g = s[cand].assign(
        _hh=pd.to_numeric(s.loc[cand, "households"], errors="coerce").fillna(0),
        _pop=pd.to_numeric(s.loc[cand, "population"], errors="coerce").fillna(0),
        _poor=poor[cand]
    ).groupby(s.loc[cand, "township_code"].astype(str))
    df["candidates"] = df["township_code"].map(g.size()).fillna(0).astype(int)
    df["candidate_households"] = df["township_code"].map(g["_hh"].sum()).fillna(0).astype(int)
    df["candidate_people"] = df["township_code"].map(g["_pop"].sum()).fillna(0).astype(int)
    df["candidate_poor_people"] = df["township_code"].map(g["_poor"].sum()).fillna(0).astype(int)
    df["candidate_accompanying_people"] = df["candidate_people"] - df["candidate_poor_people"]
    return df


def _tw_access(df: pd.DataFrame, frames: _Frames, acc: StepResult) -> pd.DataFrame:
    av = _admin(frames.scoped_villages(acc.data.villages))
    tc = _bool(av["tongchang"])
    ids = _beneficiary_ids(acc.data.works)
    after = tc | av["village_code"].astype(str).isin(ids)
    grp = av["township_code"].astype(str)
    n = grp.value_counts()
    df["tongchang_before_pct"] = df["township_code"].map((100 * tc.groupby(grp).sum() / n).round(1))
    per_after = _per_township_after(acc)
    calc_after = (100 * after.groupby(grp).sum() / n).round(1)
    df["tongchang_after_pct"] = [per_after.get(c, calc_after.get(c, np.nan))
                                 for c in df["township_code"]]
    works = acc.data.works
    if works is not None and len(works):
        w = _works_in_scope(works, frames)
        wk = pd.to_numeric(w["km"], errors="coerce").fillna(0).groupby(w["township_code"]).sum()
        wc = pd.to_numeric(w["cost_yuan"], errors="coerce").fillna(0).groupby(
            w["township_code"]).sum()
        df["works_km"] = df["township_code"].map(wk).fillna(0).round(2)
        df["works_cost_10k_yuan"] = (df["township_code"].map(wc).fillna(0) / 1e4).round(1)
    else:
        df["works_km"] = 0.0
        df["works_cost_10k_yuan"] = 0.0
    return df


def _tw_industry(df: pd.DataFrame, frames: _Frames, ind: StepResult) -> pd.DataFrame:
    hosts = ind.data.hosts
    if hosts is not None and len(hosts) and "village_code" in hosts:
        h = pd.DataFrame(hosts.drop(columns="geometry", errors="ignore"))
        h["township_code"] = host_township_codes(h, frames.village_township)
        per = h.groupby("township_code")["project_id"].nunique()
        df["industry_projects"] = df["township_code"].map(per).fillna(0).astype(int)
    else:
        df["industry_projects"] = 0
    return df


def _per_township_after(acc: StepResult) -> dict[str, float]:
    """Village 通畅 % per township after the works, from the access scorecard when it has it."""
    card = acc.data.scorecard or {}
    rows = (card.get("after") or {}).get("per_township") or []
    out = {}
    for r in rows if isinstance(rows, list) else []:
        if isinstance(r, dict) and "township_code" in r and "village_tongchang_pct" in r:
            v = _num(r["village_tongchang_pct"])
            if v is not None:
                out[str(r["township_code"])] = round(v, 1)
    return out


def settings_table(plan) -> list[dict]:
    """Every plan setting with its value and source (assumptions marked)."""
    rows = []
    for key, leaf in plan.settings().items():
        rows.append({"key": key, "value": leaf["value"], "source": leaf["source"],
                     "assumption": str(leaf["source"]).startswith("assumption")})
    return rows


def inputs_section(ctx: StepContext, needs: StepNeeds) -> dict:
    """The inputs this report used (fingerprints, plan file, overrides, scope, how each step's
    result was obtained) and the outputs in the same folder that were made from other inputs."""
    from kaizhou_gis import manifest

    inp = ctx.inputs
    used = {}
    for n in SOURCE_STEPS:
        how = ("district result reused from the cache of this folder (same inputs fingerprint)"
               if n in ctx.reused else "computed for this report")
        if ctx.township is not None and n in needs.views:
            how += "; township view of the district result"
        used[n] = how
    params = {k: ctx.plan.get(k) for k in ("relocation.threshold_m",) if k in ctx.plan}
    params.update(inp["plan"]["overrides"])
    other, consistent = [], []
    if ctx.out_dir is not None:
        m = manifest.read_manifest(ctx.out_dir)
        for step, e in sorted(m.get("steps", {}).items()):
            if step == "report":
                continue
            sc = e.get("scope") or {}
            where = (f"township {sc.get('township_name') or sc.get('township_code')}"
                     if sc.get("township_code") else "district")
            if e.get("fingerprint") != inp["fingerprint"]:
                other.append({"step": step, "folder": f"{step}/", "scope": where,
                              "why": manifest.describe_difference(e.get("inputs") or {}, inp),
                              "command": e.get("command"), "time": e.get("time")})
            elif not manifest.is_step_current(ctx.out_dir, step, inp["fingerprint"],
                                              township_code=sc.get("township_code"), manifest=m):
                other.append({"step": step, "folder": f"{step}/", "scope": where,
                              "why": "files changed or missing since they were written",
                              "command": e.get("command"), "time": e.get("time")})
            else:
                # no command line here: it is volatile (paths, batch vs run) and manifest.json
                # has it; the same inputs must give the same report bytes however they were run
                consistent.append({"step": step, "scope": where})
    return {"fingerprint": inp["fingerprint"], "plan_file": inp["plan"]["path"],
            "plan_file_sha256": inp["plan"]["file_sha256"], "overrides": inp["plan"]["overrides"],
            "parameters": params, "layers_source": inp["layers_source"], "layers": inp["layers"],
            "options": inp["options"], "scope": ctx.scope, "steps_used": used,
            "same_inputs_in_folder": consistent, "other_inputs_in_folder": other}


def provenance_section(ctx: StepContext) -> dict:
    """Where the layers come from and which of their rows are synthesized."""
    lay = ctx.layers
    layers = []
    for name in ("boundary", "townships", "township_seats", "villages", "settlements", "roads",
                 "sites"):
        gdf = getattr(lay, name, None)
        if gdf is None:
            continue
        src = gdf["source"].fillna("").astype(str) if "source" in gdf else pd.Series("", gdf.index)
        synth = src.map(provenance.is_synthetic_text).astype(bool)
        layers.append({"layer": name, "rows": int(len(gdf)), "synthesized_rows": int(synth.sum()),
                       "sources": {k: int(v) for k, v in src[src != ""].value_counts().head(6)
                                   .items()}})
    return {"layers_source": str(getattr(lay, "source", "")),
            "attribution": str(getattr(lay, "attribution", "")),
            "notes": [str(n) for n in (getattr(lay, "notes", None) or [])],
            "dem": str(getattr(lay, "dem_path", "")), "layers": layers}


def build_report(ctx: StepContext, needs: StepNeeds) -> tuple[dict, pd.DataFrame, dict]:
    """Every figure of the report as a dict, the per-township table, and the chart inputs, from
    the results of the steps it needs (``needs``).

    Returns
    -------
    report : dict
        What ``report.json`` holds.
    townships : DataFrame
        The per-township table (also inside ``report["townships"]``).
    chart_data : dict
        Series the charts are drawn from (elevations, cost curve).
    """
    plan = ctx.plan
    frames = _Frames(ctx)
    steps, why = {}, {}
    for name in SOURCE_STEPS:
        steps[name], why[name] = _step(ctx, needs, name)
    report: dict[str, Any] = {
        "data_status": ctx.data_status,
        "title": plan["meta.plan_title"],
        "district": {"name": plan["meta.district_name"], "name_en": plan["meta.district_name_en"],
                     "code": plan["meta.district_code"]},
        "scope": {"township_code": ctx.township, "township_name": _scope_label(ctx) or None},
        "plan_file": plan.path,
        "steps": {n: ("ok" if steps[n] is not None else f"unavailable: {why[n]}")
                  for n in SOURCE_STEPS},
    }
    report["calibrated"] = _calibrated(ctx)
    report["indicators"] = indicator_table(plan, frames, steps, why)
    for name, builder in (("relocation", relocation_section), ("access", access_section),
                          ("industry", industry_section)):
        try:
            report[name] = builder(plan, frames, steps[name], why[name])
        except _RESULT_ERRORS as e:  # results that lack what the report reads
            msg = f"its results lack what the report reads ({type(e).__name__}: {e})"
            log.warning("report: %s section: %s", name, msg)
            frames.problems.append(f"{name} section: {msg}")
            report[name] = builder(plan, frames, None, msg)
    tw = township_table(frames, steps)
    report["townships"] = _records(tw)
    report["settings"] = settings_table(plan)
    report["provenance"] = provenance_section(ctx)
    report["inputs"] = inputs_section(ctx, needs)
    chart_data: dict[str, Any] = {"threshold_m": plan["relocation.threshold_m"],
                                  "bin_m": plan["report.elevation_bin_m"]}
    if report["relocation"].get("status") == "ok":
        s = frames.scoped_settlements(steps["relocation"].data.settlements)
        if "elevation_m" in s:
            chart_data["elevation_m"] = pd.to_numeric(s["elevation_m"], errors="coerce").dropna()
    if report["access"].get("cost_curve"):
        chart_data["cost_curve"] = pd.DataFrame(report["access"]["cost_curve"])
    report["problems"] = list(frames.problems)
    return report, tw, chart_data


# --------------------------------------------------------------------------------------------
# charts (matplotlib -> PNG bytes)

def _png(fig, status: dict | None = None) -> bytes:
    """PNG bytes of a chart; with synthesized input its footer says so (zh + en)."""
    lines = provenance.banner_lines(status)
    if lines:
        fig.text(0.0, -0.02, f"⚠ {provenance.MARK_ZH}（{provenance.SHORT_ZH}） / "
                             f"{provenance.MARK_EN} ({provenance.SHORT_EN})",
                 fontsize=8, color="#a01010", va="top", fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_charts(report: dict, townships: pd.DataFrame, chart_data: dict) -> dict[str, bytes]:
    """PNG charts: settlement elevation histogram, cost curve, township bars (what data allows)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from kaizhou_gis.fonts import cjk_rc, find_cjk_font

    zh = find_cjk_font() is not None
    rc = cjk_rc()

    def lab(z: str, e: str) -> str:
        return f"{z} / {e}" if zh else e

    charts: dict[str, bytes] = {}
    with plt.rc_context(rc):
        elev = chart_data.get("elevation_m")
        if elev is not None and len(elev):
            thr, bw = float(chart_data["threshold_m"]), float(chart_data["bin_m"])
            lo = math.floor(min(elev.min(), thr) / bw) * bw
            hi = math.ceil(max(elev.max(), thr) / bw) * bw + bw
            fig, ax = plt.subplots(figsize=(7.5, 3.8))
            bins = np.arange(lo, hi + bw / 2, bw)
            ax.hist(elev[elev < thr], bins=bins, color="#7fa6c9", label=lab("低于阈值", "below"))
            ax.hist(elev[elev >= thr], bins=bins, color="#d9534f", label=lab("高于阈值", "above"))
            ax.axvline(thr, color="k", ls="--", lw=1.2)
            ax.text(thr, ax.get_ylim()[1] * 0.95, f" {thr:g} m", va="top")
            ax.set_xlabel(lab("自然村海拔(米)", "settlement elevation (m)"))
            ax.set_ylabel(lab("自然村数", "settlements"))
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(frameon=False)
            charts["elevation"] = _png(fig, report.get("data_status"))
        curve = chart_data.get("cost_curve")
        if curve is not None and len(curve) and "cumulative_cost_yuan" in curve:
            fig, ax = plt.subplots(figsize=(7.5, 3.8))
            x = pd.to_numeric(curve["cumulative_cost_yuan"], errors="coerce") / 1e8
            for col, z, e in (("village_tongchang_pct", "行政村通畅率", "village 通畅 %"),
                              ("settlement_tongda_pct", "自然村通达率", "settlement 通达 %"),
                              ("settlement_tongchang_pct", "自然村通畅率", "settlement 通畅 %")):
                if col in curve:
                    line, = ax.plot(x, pd.to_numeric(curve[col], errors="coerce"),
                                    marker="." if len(curve) <= 60 else None,
                                    label=lab(z, e) if zh else e.replace("通畅", "tongchang")
                                    .replace("通达", "tongda"))
                    target = _num((report.get("access", {}).get("targets") or {}).get(col))
                    if target is not None:  # the plan's target as a dotted line
                        ax.axhline(target, ls=":", lw=1, color=line.get_color())
            ax.set_xlabel(lab("累计投资(亿元)", "cumulative cost (100 M yuan)"))
            ax.set_ylabel("%")
            ax.set_ylim(0, 101)
            ax.grid(alpha=0.3)
            ax.legend(frameon=False, loc="lower right")
            charts["cost_curve"] = _png(fig, report.get("data_status"))
        if len(townships) > 1 and ("candidate_people" in townships
                                   or "tongchang_before_pct" in townships):
            t = townships.iloc[::-1]
            names = t["name"] if zh else t["township_code"]
            panels = [c for c in ("candidate_people", "tongchang_before_pct") if c in t]
            poor_t = t["candidate_poor_people"] if "candidate_poor_people" in t else None
            fig, axes = plt.subplots(1, len(panels), sharey=True,
                                     figsize=(4.2 * len(panels) + 1.5, 0.22 * len(t) + 1.2))
            axes = np.atleast_1d(axes)
            y = np.arange(len(t))
            for ax, col in zip(axes, panels):
                if col == "candidate_people" and poor_t is not None:
                    ax.barh(y, poor_t, color="#d9534f", label=lab("搬迁对象(建档立卡贫困人口)",
                                                                   "registered poor"))
                    ax.barh(y, t[col] - poor_t, left=poor_t, color="#f0b5b3",
                            label=lab("同步搬迁", "other residents"))
                    ax.set_xlabel(lab("拟搬迁自然村人口", "people in candidate settlements"))
                    ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)
                elif col == "candidate_people":
                    ax.barh(y, t[col], color="#d9534f")
                    ax.set_xlabel(lab("拟搬迁自然村人口", "people in candidate settlements"))
                else:
                    ax.barh(y - 0.2, t[col].fillna(0), height=0.4, color="#999999",
                            label=lab("现状", "before"))
                    if "tongchang_after_pct" in t:
                        ax.barh(y + 0.2, pd.to_numeric(t["tongchang_after_pct"]).fillna(0),
                                height=0.4, color="#5cb85c", label=lab("实施拟建工程后（规划）", "with the proposed works (planned)"))
                    ax.set_xlabel(lab("行政村通畅率(%)", "villages tongchang (%)"))
                    ax.set_xlim(0, 100)
                    ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)
                ax.grid(axis="x", alpha=0.3)
            axes[0].set_yticks(y)
            axes[0].set_yticklabels(names, fontsize=7)
            charts["townships"] = _png(fig, report.get("data_status"))
    return charts


# --------------------------------------------------------------------------------------------
# rendering

_SCHEME = re.compile(r"\bhttps?://", re.I)


def _txt(v: Any) -> str:
    """Display text of a value (numbers formatted; URLs shown without the scheme)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) < 10:
            return f"{v:.4g}"
        return f"{v:.2f}".rstrip("0").rstrip(".")
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_txt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_txt(x) for x in v)
    return _SCHEME.sub("", str(v))


_YEAR_KEY = re.compile(r"year|period", re.I)


def _years_plain(key: str, value: Any) -> Any:
    """Years print as plain integers (2015, not 2,015): integer values of a setting about years
    become text; other values are left to :func:`_txt`."""
    if not _YEAR_KEY.search(str(key)):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return [_years_plain(key, v) for v in value]
    return value


def _h(v: Any) -> str:
    return html.escape(_txt(v))


def _md(v: Any) -> str:
    """Markdown cell/line text: ``|`` cannot split a table, ``<``/``>`` cannot open inline HTML."""
    return (_txt(v).replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def _table_html(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)  # headers are our own (escaped on build)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_h(c)}</td>' if isinstance(c, (int, float)) and not isinstance(c, bool)
        else f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _table_md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _indicator_rows(report: dict) -> tuple[list[str], list[list[Any]]]:
    keys = list(report["indicators"][0]) if report["indicators"] else []
    bkey = next((k for k in keys if k.startswith("baseline_") and k[9:].isdigit()), "")
    tkeys = [k for k in keys if k.startswith("target_") and k[7:].isdigit()]
    header = (["#", "指标 / indicator", "属性 / kind", "单位 / unit", bkey[9:]]
              + [f"{k[7:]} 目标 / target" for k in tkeys]
              + ["计算值 / computed", "说明 / basis or reason"])
    rows = []
    for i in report["indicators"]:
        if i["status"] == "computed":
            val = _txt(i["computed"])
            if i.get("computed_after") is not None:
                val += f" → {_txt(i['computed_after'])}"
            why = i.get("comment", "")
        elif i["status"] == "not_derivable" and str(i.get("reason", "")).startswith(NOT_DERIVABLE):
            val = "–"
            why = f"{NOT_DERIVABLE_ZH} / {NOT_DERIVABLE} *"
        else:
            val = "–"
            why = i.get("reason", "")
        if i.get("note"):
            why = f"{why} (plan / 规划: {i['note']})"
        targets = [i[k] for k in tkeys]
        rows.append([i["id"], f"{i['name_zh']} / {i['name_en']}",
                     {"binding": "约束性 binding", "expected": "预期性 expected"}.get(i["kind"],
                                                                                   i["kind"]),
                     i["unit"], i.get(bkey), *targets, val, why])
    return header, rows


def _sections(report: dict, tw: pd.DataFrame) -> list[tuple[str, str, list]]:
    """The report as (title, kind, content) blocks shared by the HTML and Markdown renderers.

    ``kind`` is "table" (content = [header, rows]), "text" (content = list of lines) or "chart"
    (content = [chart name, caption]).
    """
    out: list[tuple[str, str, list]] = []
    scope = report["scope"]["township_name"]
    intro = [f"{report['district']['name']} ({report['district']['name_en']}) — "
             f"{report['title']}" + (f" — {scope}" if scope else ""),
             f"Plan file / 规划参数文件: {report['plan_file']}"]
    for n, s in report["steps"].items():
        intro.append(f"step {n}: {s}")
    inp = report.get("inputs")
    if inp:
        par = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}"
                        for k, v in inp["parameters"].items())
        intro.append(f"Inputs / 输入: {par}"
                     + (" (command-line override / 命令行覆盖)" if inp["overrides"] else "")
                     + f"; inputs fingerprint / 输入指纹 {inp['fingerprint'][:12]} "
                       f"(section 八 / see section 8)")
        for o in inp["other_inputs_in_folder"]:
            intro.append(f"NOT USED / 未采用: {o['folder']} in this folder ({o['scope']}, "
                         f"`{o['command']}`) was made from other inputs: {o['why']}. This report "
                         f"recomputed {o['step']} from the inputs above. / 本目录中的 {o['folder']} "
                         f"由其他输入生成，本报告未采用，已按上述输入重新计算。")
    for prob in report.get("problems", []):
        intro.append(f"problem / 问题: {prob}")
    rel0 = report.get("relocation", {})
    intro.append("搬迁对象按建档立卡贫困人口计：规划第五章的年度任务（" + "、".join(
        f"{y}年{q:,}人" for y, q in sorted(rel0.get("plan", {}).get("yearly_people", {}).items()))
        + "）指建档立卡贫困人口；整村（自然村）搬迁时其他居民同步搬迁，单独列出，不计入任务。 / "
        "Relocation counts registered poor people (建档立卡贫困人口): the plan's yearly quotas (ch.5) "
        "are registered poor; whole settlements move, their other residents move with them "
        "(同步搬迁) and are reported separately, outside the quotas."
        + (f" Basis of the registered poor figures: {rel0['poor_population_basis']}."
           if rel0.get("poor_population_basis") else ""))
    intro.append(f"通畅率按行政村（村）计，不含社区；“{provenance.PLANNED_ZH}”的数值为规划结果，"
                 f"不是已实现的成绩。 / Village 通畅 counts 行政村 (村) only, not 社区; figures "
                 f"'{provenance.PLANNED_EN}' are planned results, not achievements.")
    out.append(("概况 / Overview", "text", intro))
    out.append(("一、主要指标 / Main indicators (ch.1 专栏)", "table", list(_indicator_rows(report))))
    if any(i["status"] == "not_derivable" for i in report["indicators"]):
        out.append(("", "text", ["* These indicators need survey or administrative statistics "
                                 "(registered poor, income, water supply, housing, schooling, "
                                 "health, village finances); the layers hold places, households, "
                                 "population, poverty-village flags, roads and elevation only. / "
                                 "这些指标需要统计调查数据，图层只包含位置、户数、人口、贫困村标识、"
                                 "道路和高程。"]))

    rel = report["relocation"]
    p = rel["plan"]
    if rel.get("status") == "ok":
        cal = rel.get("calibrated", {})
        poor_cal = cal.get("registered_poor") and "estimated" not in rel["poor_population_basis"]
        rows = [["搬迁对象（建档立卡贫困人口）/ registered poor people to relocate",
                 p["people_target"], rel["candidate_poor_people"],
                 f"in the candidate settlements; {_txt(rel['candidate_poor_vs_target_pct'])} % of "
                 f"plan; basis: {rel['poor_population_basis']}{_cal(poor_cal)}"],
                ["同步搬迁人口 / other residents moving with them (not in the plan's target)", None,
                 rel["candidate_accompanying_people"], "whole settlements move together"],
                ["拟搬迁自然村总人口 / all residents of the candidate settlements", None,
                 rel["candidate_people"], f"{rel['candidate_households']:,} households"],
                ["拟整体搬迁自然村 / candidate settlements", None, rel["candidates"], ""],
                [f"海拔{p['threshold_m']:g}米以上自然村 / settlements above {p['threshold_m']:g} m",
                 p["natural_villages_above_threshold"], rel["above_threshold"],
                 "plan: the out-migration area's natural villages (ch.5); here: every settlement "
                 "of the layer"],
                ["占比 / share above threshold (%)", p["share_above_threshold_pct"],
                 rel["share_above_threshold_pct"], f"of {rel['settlements']:,} settlements "
                                                   f"(plan: of {p['natural_villages_in_area']:,})"
                                                   f"{_cal(cal.get('share_above_threshold'))}"]]
        out.append(("二、高山生态扶贫搬迁 / Relocation vs the plan (ch.5)", "table",
                    [["项目 / item", "规划 / plan", "图层计算 / layers", "备注 / note"], rows]))
        out.append(("", "chart", ["elevation", "自然村海拔分布与搬迁阈值 / settlement elevations "
                                                "and the plan's threshold"]))
        sched = [[str(r["year"]), r["plan_people"], r["poor_people"], r["accompanying_people"],
                  r["people"], r["settlements"], r["households"]] for r in rel["schedule"]]
        out.append(("搬迁年度安排（规划）/ Yearly schedule (planned)", "table",
                    [["年份 / year", "规划搬迁建档立卡贫困人口 / plan quota (registered poor)",
                      "搬迁对象（建档立卡贫困人口）/ registered poor scheduled",
                      "同步搬迁人口 / other residents moving with them",
                      "总人口 / all residents", "自然村 / settlements", "户数 / households"],
                     sched]))
        extra = []
        if "unscheduled_candidates" in rel:
            extra.append(f"unscheduled candidates / 未排期: {rel['unscheduled_candidates']} "
                         f"settlements ({rel.get('unscheduled_poor_people', 0):,} registered poor, "
                         f"{rel['unscheduled_people']:,} people in all)")
        if "sites" in rel:
            s = rel["sites"]
            extra.append(f"resettlement sites / 安置点: {s['count']}, capacity "
                         f"{s['capacity_households']:,} households, assigned "
                         f"{s['assigned_households']:,}")
        if "assignment" in rel:
            a = rel["assignment"]
            extra.append(f"assigned / 已分配: {a['households']:,} households, mean distance "
                         f"{_txt(a['mean_distance_km'])} km (max {_txt(a['max_distance_km'])} km)")
        if "unassigned" in rel:
            u = rel["unassigned"]
            extra.append(f"unassigned / 未分配: {u['settlements']} settlements, "
                         f"{u['households']:,} households (relocation/ lists each with its reason)")
            for reason, n in list(u["reasons"].items())[:3]:
                extra.append(f"{n} × {reason if len(reason) <= 90 else reason[:87] + '...'}")
        if rel.get("candidate_flags"):
            extra.append("candidate reasons / 候选原因: " + _txt(rel["candidate_flags"]))
        extra += [f"left out / 未纳入分析: {x}" for x in leftout.relocation_lines(rel["left_out"])]
        extra += rel.get("notes", [])
        if extra:
            out.append(("", "text", extra))
    else:
        out.append(("二、高山生态扶贫搬迁 / Relocation vs the plan (ch.5)", "text",
                    [rel["message"], rel["message_zh"],
                     f"plan: {p['people_target']:,} registered poor people; {p['natural_villages_above_threshold']}"
                     f" natural villages above {p['threshold_m']:g} m "
                     f"({p['share_above_threshold_pct']} %)"]))

    acc = report["access"]
    names = {"village_tongchang_pct": "行政村通畅率（村，不含社区）/ administrative villages (村) tongchang",
             "settlement_tongda_pct": "30户或100人以上自然村通达率 / settlements tongda",
             "settlement_tongchang_pct": "30户或100人以上自然村通畅率 / settlements tongchang"}
    if acc.get("status") == "ok":
        cal = report.get("calibrated", {}).get("village_tongchang_before")

        def met(r):
            if r["meets_target_after"] is None:
                return f"{provenance.NO_TARGET_ZH} / {provenance.NO_TARGET_EN}"
            return "是 / yes (planned)" if r["meets_target_after"] else "否 / no"

        rows = [[names[r["indicator"]], r["target_pct"],
                 f"{_txt(r['before_pct'])}{_cal(cal and r['indicator'] == 'village_tongchang_pct')}",
                 r["after_pct"], met(r)] for r in acc["scorecard"]]
        out.append(("三、农村道路 / Rural roads scorecard (ch.1, ch.11)", "table",
                    [["指标 / indicator", "目标 / target %", "现状 / now %",
                      f"{provenance.PLANNED_ZH} / {provenance.PLANNED_EN} %",
                      "达标（规划）/ target met (planned)"], rows]))
        w = acc["works"]
        wrows = [[r["type"], r["works"], r["km"], round(r["cost_yuan"] / 1e4, 1)]
                 for r in w["by_type"]]
        wrows.append(["合计 / total", w["count"], w["km"], round(w["cost_yuan"] / 1e4, 1)])
        out.append(("建议工程 / Proposed works", "table",
                    [["类型 / type", "项数 / works", "里程 / km", "投资 / cost (万元)"], wrows]))
        out.append(("", "text", [f"plan / 规划: 累计完成农村公路建设{acc['plan_roads_km_2020']:,.0f}公里 "
                                 f"(cumulative rural road construction by end-{acc.get('plan_period_end', '')}), "
                                 f"{acc['plan_poverty_village_roads_km']:,.0f} km poverty-village "
                                 f"roads; the works here are proposals (planned), not roads built"]
                    + ([f"villages not 通畅 before, by reason: {_txt(acc['village_reasons'])}"]
                       if acc.get("village_reasons") else [])
                    + [f"left out / 未纳入分析: {x}" for x in
                       leftout.access_lines(acc["left_out"], acc["reach_distance_m"])]))
        if acc.get("cost_curve"):
            out.append(("", "chart", ["cost_curve", "投资-通畅率曲线 / cost curve: access "
                                                    "shares as works are added, cheapest first"]))
    else:
        out.append(("三、农村道路 / Rural roads scorecard (ch.1, ch.11)", "text",
                    [acc["message"], acc["message_zh"]]))

    ind = report["industry"]
    if ind.get("status") == "ok":
        rows = [[c["category"], c["projects"],
                 "; ".join(f"{x['product']} {_txt(x['total'])} {x['unit']}"
                           for x in c["scale_by_product"]),
                 c["hosts_named"], c["hosts_placed"]] for c in ind["by_category"]]
        out.append(("四、产业扶贫 / Industry projects vs the plan (ch.3)", "table",
                    [["类别 / category", "项目 / projects",
                      "规划规模（按产品和单位）/ plan scale per product and unit",
                      "规划点名村 / villages named", "已定位 / villages placed"], rows]))
        lines = [f"projects / 项目: {ind['projects']}, host villages / 承载村: "
                 f"{ind['host_villages']}"]
        if ind.get("unresolved_names") is not None:
            lines.append(f"place names of the plan not placed on the layers / 未定位地名: "
                         f"{ind['unresolved_names']} (industry/unresolved.csv lists each with "
                         f"its reason)")
            for reason, n in list((ind.get("unresolved_reasons") or {}).items())[:3]:
                short = reason if len(reason) <= 90 else reason[:87] + "..."
                lines.append(f"{n} × {short}")
        out.append(("", "text", lines))
        if ind.get("products"):
            prow = [[p.get("category"), f"{p.get('product', '')} / {p.get('product_en', '')}",
                     p.get("plan_total"), p.get("unit"), p.get("n_hosts_named"), p.get("n_hosts"),
                     p.get("placed_scale")] for p in ind["products"]]
            out.append(("产业规模与落地 / Plan totals and placement by product", "table",
                        [["类别 / category", "产品 / product", "规划规模 / plan total",
                          "单位 / unit", "点名村 / named", "已定位 / placed",
                          "已分配规模 / placed scale"], prow]))
    else:
        out.append(("四、产业扶贫 / Industry projects vs the plan (ch.3)", "text",
                    [ind["message"], ind["message_zh"]]))

    labels = tw.attrs.get("labels_zh", {})
    header = [f"{labels.get(c, c)} / {c}" for c in tw.columns]
    out.append(("五、分乡镇统计 / Per township", "table",
                [header, tw.astype(object).where(tw.notna(), None).values.tolist()]))
    out.append(("", "chart", ["townships", "分乡镇搬迁候选人口与通畅率 / relocation candidates "
                                           "and village tongchang by township"]))

    srows = [[s["key"], _years_plain(s["key"], s["value"]), s["source"]] for s in report["settings"]]
    out.append(("六、规划参数 / Plan settings used (value and source)", "table",
                [["参数 / setting", "值 / value", "来源 / source"], srows]))
    prov = report["provenance"]
    prow = [[l["layer"], l["rows"], l["synthesized_rows"], l["sources"]] for l in prov["layers"]]
    out.append(("七、数据来源 / Data provenance", "table",
                [["图层 / layer", "行数 / rows", "合成行 / synthesized rows", "来源 / sources"],
                 prow]))
    lines = [f"layers / 图层: {prov['layers_source']}", f"DEM: {prov['dem']}"]
    if prov["attribution"]:
        lines.append(f"attribution / 署名: {prov['attribution']}")
    lines += prov["notes"]
    lines.append("Rows marked synthesized are stand-ins generated where no open data exists; "
                 "figures computed from them illustrate the method, not the district. / "
                 "标为合成的数据为无公开数据时生成的替代数据，相关计算仅示范方法。")
    if any(report.get("calibrated", {}).values()):
        lines.append(f"[{provenance.CALIBRATED_ZH} / {provenance.CALIBRATED_EN}]: the synthetic "
                     f"layers were built to match these plan figures (layers/README.md): "
                     + ", ".join(k for k, v in report["calibrated"].items() if v)
                     + "; they show that the pipeline reproduces its input, not a finding.")
    out.append(("", "text", lines))
    inp = report.get("inputs")
    if inp:
        rows = [["inputs fingerprint / 输入指纹", inp["fingerprint"]],
                ["plan file / 规划参数文件", f"{inp['plan_file']} (sha256 {str(inp['plan_file_sha256'])[:12]})"],
                ["overrides / 命令行覆盖", ", ".join(f"{k} = {v}" for k, v in inp["overrides"].items()) or "none / 无"],
                ["layers / 图层", inp["layers_source"]]]
        rows += [[f"layer {k} / 图层指纹", v[:16]] for k, v in inp["layers"].items()]
        rows += [[f"step {k} / 步骤", v] for k, v in inp["steps_used"].items()]
        rows += [[f"same inputs in this folder / 同输入: {o['step']}",
                  f"{o['scope']} (command in manifest.json / 命令见 manifest.json)"]
                 for o in inp["same_inputs_in_folder"]]
        rows += [[f"NOT USED / 未采用: {o['folder']}", f"{o['scope']}: {o['command']} — {o['why']}"]
                 for o in inp["other_inputs_in_folder"]]
        out.append(("八、本报告所用输入 / Inputs this report used", "table",
                    [["item / 项目", "value / 值"], rows]))
        out.append(("", "text", [
            "A --township command gives the district analysis's rows and figures for that "
            "township (quotas, site capacity and works are decided district-wide). Outputs with "
            "the same inputs fingerprint come from the same layers, plan and parameters; "
            "manifest.json in the output folder records every step's inputs and files. / "
            "--township 输出为全区分析中该乡镇的行与数值（年度指标、安置点容量和工程按全区确定）；"
            "输入指纹相同的输出来自相同的图层、规划和参数；输出目录中的 manifest.json 记录各步骤的输入和文件。"]))
    return out


_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.5em;border-bottom:2px solid #a33;padding-bottom:.3em}
h2{font-size:1.15em;margin-top:1.8em;color:#a33}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em;width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;word-break:normal;
overflow-wrap:normal;hyphens:none}
th{background:#f3ecec;text-align:left}
td.n{white-space:nowrap;text-align:right}
.tw{overflow-x:auto;margin:.6em 0}
.tw table{margin:0;width:auto;min-width:100%}
table.wide{font-size:.78em}
td:nth-child(n+2){font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.6em 0}
.caption{font-size:.85em;color:#555}
.note{font-size:.9em;color:#444}
"""


def render_html(report: dict, tw: pd.DataFrame, charts: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page (charts inline; nothing loaded from outside)."""
    title = html.escape(f"{report['title']} — 规划指标评估 / plan scorecard")
    parts = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{title}</title><style>{_CSS}</style></head><body>",
             provenance.banner_html(report.get("data_status")),
             f"<h1>{title}</h1>"]
    for heading, kind, content in _sections(report, tw):
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if kind == "table":
            header, rows = content
            # a table wider than the page scrolls sideways instead of breaking words
            parts.append('<div class="tw">' + _table_html([html.escape(h) for h in header], rows,
                                                          "wide" if len(header) > 9 else "") + "</div>")
        elif kind == "text":
            parts.append("<div class='note'>" + "".join(f"<p>{_h(x)}</p>" for x in content)
                         + "</div>")
        elif kind == "chart" and content[0] in charts:
            b64 = base64.b64encode(charts[content[0]]).decode("ascii")
            parts.append(f'<img alt="{html.escape(content[1])}" src="data:image/png;base64,{b64}">'
                         f'<div class="caption">{html.escape(content[1])}</div>')
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: dict, tw: pd.DataFrame, charts: dict[str, bytes],
                    chart_dir: str = "report_files") -> str:
    """The report as Markdown (charts referenced as PNG files under ``chart_dir``)."""
    banner = provenance.banner_text(report.get("data_status"))
    lines = ([f"> **{_md(x)}**" for x in banner.splitlines()] + [""] if banner else [])
    lines += [f"# {_md(report['title'])} — 规划指标评估 / plan scorecard", ""]
    for heading, kind, content in _sections(report, tw):
        if heading:
            lines += [f"## {_md(heading)}", ""]
        if kind == "table":
            lines += [_table_md(content[0], content[1]), ""]
        elif kind == "text":
            lines += [f"- {_md(x)}" for x in content] + [""]
        elif kind == "chart" and content[0] in charts:
            lines += [f"![{content[1]}]({chart_dir}/{content[0]}.png)", ""]
    return "\n".join(lines)


def _headline(report: dict) -> list[str]:
    inds = report["indicators"]
    n_comp = sum(i["status"] == "computed" for i in inds)
    lines = [f"{len(inds)} plan indicators: {n_comp} computed from the layers, "
             f"{len(inds) - n_comp} not derivable or unavailable"]
    rel = report["relocation"]
    if rel.get("status") == "ok":
        lines.append(f"relocation: {rel['candidate_poor_people']:,} registered poor (plan "
                     f"{rel['plan']['people_target']:,}) + {rel['candidate_accompanying_people']:,} "
                     f"同步搬迁 in {rel['candidates']} candidate settlements")
    acc = report["access"]
    if acc.get("status") == "ok":
        v = next((r for r in acc["scorecard"] if r["indicator"] == "village_tongchang_pct"), None)
        if v:
            lines.append(f"villages (行政村) 通畅: {_txt(v['before_pct'])} % -> {_txt(v['after_pct'])} % "
                         f"{provenance.PLANNED_EN} ({acc['works']['km']:,.1f} km, "
                         f"{acc['works']['cost_yuan'] / 1e8:,.2f} 亿元)")
    return lines[:4]


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[ReportData]:
    """Pipeline step: the plan scorecard as report.html, report.md and report.json."""
    report, tw, chart_data = build_report(ctx, needs)
    charts = make_charts(report, tw, chart_data)
    report["charts"] = sorted(charts)
    files: dict[str, Any] = {
        "report.json": report,
        "report.md": render_markdown(report, tw, charts),
        "report.html": render_html(report, tw, charts),
    }
    for name, png in charts.items():
        files[f"report_files/{name}.png"] = png
    summary = {"headline": _headline(report),
               "indicators_computed": sum(i["status"] == "computed" for i in report["indicators"]),
               "indicators": len(report["indicators"])}
    return StepResult("report", files=files, data=ReportData(report=report, townships=tw),
                      summary=summary)
