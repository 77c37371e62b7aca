"""The report step: the plan scorecard as report.html, report.md and report.json."""
from __future__ import annotations

from typing import Any

from kaizhou_gis import provenance
from kaizhou_gis.report.build import build_report
from kaizhou_gis.report.charts import make_charts
from kaizhou_gis.report.render import render_html, render_markdown
from kaizhou_gis.report.text import _txt
from kaizhou_gis.results import ReportData, StepContext, StepNeeds, StepResult


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
