"""The report step: the plan scorecard as report.html, report.md and report.json.

The only report module that reads the run's context: :func:`build_report` takes the needed steps'
results, the inputs record and the output folder's manifest, and hands plain tables to the
sections."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.errors import KaizhouGISError
from kaizhou_gis.report.build import SOURCE_STEPS, provenance_section, settings_table
from kaizhou_gis.report.charts import make_charts
from kaizhou_gis.report.common import _RESULT_ERRORS, _records
from kaizhou_gis.report.frames import _calibrated, _Frames, _scope_label
from kaizhou_gis.report.indicators import indicator_table
from kaizhou_gis.report.render import render_html, render_markdown
from kaizhou_gis.report.sections import access_section, industry_section, relocation_section
from kaizhou_gis.report.text import _txt
from kaizhou_gis.report.townships import township_table
from kaizhou_gis.results import ReportData, StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)


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


def inputs_section(ctx: StepContext, needs: StepNeeds) -> dict:
    """The inputs this report used (fingerprints, plan file, overrides, scope, how each step's
    result was obtained) and the outputs in the same folder that were made from other inputs."""
    from kaizhou_gis import manifest

    inp = ctx.inputs
    used = {}
    for n in SOURCE_STEPS:
        how = ("district result reused from the cache of this folder (the same layers, and the "
               "same plan sections and options that step reads)"
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
    frames = _Frames(ctx.layers, plan, ctx.township, ctx.data_status)
    steps, why = {}, {}
    for name in SOURCE_STEPS:
        steps[name], why[name] = _step(ctx, needs, name)
    report: dict[str, Any] = {
        "data_status": ctx.data_status,
        "title": plan["meta.plan_title"],
        "district": {"name": plan["meta.district_name"], "name_en": plan["meta.district_name_en"],
                     "code": plan["meta.district_code"]},
        "scope": {"township_code": ctx.township, "township_name": _scope_label(ctx.layers, ctx.township) or None},
        "plan_file": plan.path,
        "steps": {n: ("ok" if steps[n] is not None else f"unavailable: {why[n]}")
                  for n in SOURCE_STEPS},
    }
    report["calibrated"] = _calibrated(ctx.data_status)
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
    report["provenance"] = provenance_section(ctx.layers)
    report["inputs"] = inputs_section(ctx, needs)
    chart_data: dict[str, Any] = {"threshold_m": plan["relocation.threshold_m"],
                                  "bin_m": plan["report.elevation_bin_m"]}
    rel = steps["relocation"]
    if report["relocation"].get("status") == "ok" and rel is not None:
        s = frames.scoped_settlements(rel.data.settlements)
        if "elevation_m" in s:
            chart_data["elevation_m"] = pd.to_numeric(s["elevation_m"], errors="coerce").dropna()
    if report["access"].get("cost_curve"):
        chart_data["cost_curve"] = pd.DataFrame(report["access"]["cost_curve"])
    report["problems"] = list(frames.problems)
    return report, tw, chart_data
