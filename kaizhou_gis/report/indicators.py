"""The plan's main indicators (ch.1 专栏): targets and what the layers can compute for each."""
from __future__ import annotations

import numpy as np
import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.errors import PlanError
from kaizhou_gis.figures import pct
from kaizhou_gis.report.common import NOT_DERIVABLE, NOT_DERIVABLE_ZH, _bool, _num, _plain_value
from kaizhou_gis.report.frames import _admin, _after_tongchang, _cal, _calibrated, _Frames, _poor, _poverty_flag_filled

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
        if "poverty_village" not in v or _poverty_flag_filled(frames.layers):
            return {"status": "not_derivable", "computed": None, "basis": MEASURES[measure],
                    "reason": f"{NOT_DERIVABLE}: the villages layer has no poverty_village column",
                    "reason_zh": f"{NOT_DERIVABLE_ZH}（村图层无贫困村标记 poverty_village）"}
        n = int(_bool(v["poverty_village"]).sum())
        bkey, _ = frames.plan.indicator_years
        base = _num(ind.get(bkey))
        comment = (f"the layers hold {n} poverty villages ({scope}); the plan's "
                   f"{bkey.rsplit('_', 1)[1]} baseline is {base:g}" if base is not None
                   else f"{n} poverty villages in the layers")
        comment += _cal(_calibrated(frames.data_status)["poverty_villages"])
        return {"status": "computed", "computed": n, "computed_after": None,
                "compare_with": bkey, "basis": MEASURES[measure], "comment": comment}
    if measure == "relocation_people":
        s = frames.scoped_settlements(steps["relocation"].data.settlements)
        cand = _bool(s["relocation_candidate"])
        pop = pd.to_numeric(s["population"], errors="coerce").fillna(0)
        poor, basis = _poor(s, frames.plan)
        years = pd.to_numeric(s.get("schedule_year"), errors="coerce") if "schedule_year" in s \
            else pd.Series(np.nan, s.index)
        sched = cand & years.notna()
        people = float(pop[cand].sum())
        poor_sched = int(poor[sched].sum())
        unit = str(ind.get("unit", ""))
        value = poor_sched / 10_000 if "万" in unit else poor_sched
        tkeys = frames.plan.indicator_years[1]
        target = next((t for t in (_num(ind.get(k)) for k in tkeys) if t is not None), None)
        comment = (f"{poor_sched:,} registered poor people (建档立卡贫困人口) in the "
                   f"{int(sched.sum())} settlements scheduled for the plan's years ({scope}; "
                   f"planned, 规划), moving with {int(pop[sched].sum()) - poor_sched:,} other "
                   f"residents (同步搬迁); the {int(cand.sum())} candidate settlements hold "
                   f"{int(poor[cand].sum()):,} registered poor of {int(people):,} residents; "
                   f"basis: {basis}")
        if target:
            comment += f"; {100 * value / target:.1f} % of the plan's {target:g} {unit}"
        comment += _cal(_calibrated(frames.data_status)["registered_poor"] and "estimated" not in basis)
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
                   f"{_cal(_calibrated(frames.data_status)['village_tongchang_before'])}; {after}% "
                   f"{provenance.PLANNED_EN} / {provenance.PLANNED_ZH}")
        return {"status": "computed", "computed": before, "computed_after": after,
                "compare_with": frames.plan.indicator_years[1][0], "basis": MEASURES[measure], "comment": comment}
    raise PlanError(f"unknown measure {measure!r}")  # pragma: no cover (checked by _indicator_measures)


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
