"""report.json as a dict: the sections built from the needed steps' results and the inputs."""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.errors import KaizhouGISError
from kaizhou_gis.report.common import _RESULT_ERRORS, _records
from kaizhou_gis.report.frames import _calibrated, _Frames, _scope_label
from kaizhou_gis.report.indicators import indicator_table
from kaizhou_gis.report.sections import access_section, industry_section, relocation_section
from kaizhou_gis.report.townships import township_table
from kaizhou_gis.results import StepContext, StepNeeds, StepResult

log = logging.getLogger(__name__)


#: Steps whose results the report reads.
SOURCE_STEPS = ("access", "relocation", "industry")


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
    rel = steps["relocation"]
    if report["relocation"].get("status") == "ok" and rel is not None:
        s = frames.scoped_settlements(rel.data.settlements)
        if "elevation_m" in s:
            chart_data["elevation_m"] = pd.to_numeric(s["elevation_m"], errors="coerce").dropna()
    if report["access"].get("cost_curve"):
        chart_data["cost_curve"] = pd.DataFrame(report["access"]["cost_curve"])
    report["problems"] = list(frames.problems)
    return report, tw, chart_data
