"""The report's charts (matplotlib -> PNG bytes).

Drawn on :class:`matplotlib.figure.Figure` objects saved through the Agg canvas, without
pyplot: no figure manager, no global figure list to close, and no pyplot import (≈ 1 s) in a
report-only run."""
from __future__ import annotations

import io
import math
from typing import cast

import numpy as np
import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.report.common import _num


def _png(fig, status: dict | None = None) -> bytes:
    """PNG bytes of a chart; with synthesized input its footer says so (zh + en)."""
    lines = provenance.banner_lines(status)
    if lines:
        fig.text(0.0, -0.02, f"⚠ {provenance.MARK_ZH}（{provenance.SHORT_ZH}） / "
                             f"{provenance.MARK_EN} ({provenance.SHORT_EN})",
                 fontsize=8, color="#a01010", va="top", fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _figure(**kwargs):
    """A figure drawn by the Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


class _Label:
    """Chart text: Chinese / English when a CJK font is installed, English alone otherwise."""

    def __init__(self, zh: bool):
        self.zh = zh

    def __call__(self, z: str, e: str) -> str:
        return f"{z} / {e}" if self.zh else e


def make_charts(report: dict, townships: pd.DataFrame, chart_data: dict) -> dict[str, bytes]:
    """PNG charts: settlement elevation histogram, cost curve, township bars (what data allows)."""
    from kaizhou_gis.fonts import cjk_context, find_cjk_font

    lab = _Label(find_cjk_font() is not None)
    status = report.get("data_status")
    charts: dict[str, bytes] = {}
    with cjk_context():
        elev = chart_data.get("elevation_m")
        if elev is not None and len(elev):
            charts["elevation"] = _elevation_chart(elev, chart_data, lab, status)
        curve = chart_data.get("cost_curve")
        if curve is not None and len(curve) and "cumulative_cost_yuan" in curve:
            charts["cost_curve"] = _cost_curve_chart(curve, report, lab)
        if len(townships) > 1 and ("candidate_people" in townships
                                   or "tongchang_before_pct" in townships):
            charts["townships"] = _townships_chart(townships, lab, status)
    return charts


def _elevation_chart(elev: pd.Series, chart_data: dict, lab: _Label, status: dict | None) -> bytes:
    """Histogram of the settlements' elevations, below and above the plan's threshold."""
    from matplotlib.ticker import MaxNLocator

    thr, bw = float(chart_data["threshold_m"]), float(chart_data["bin_m"])
    lo = math.floor(min(elev.min(), thr) / bw) * bw
    hi = math.ceil(max(elev.max(), thr) / bw) * bw + bw
    fig = _figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
    bins = np.arange(lo, hi + bw / 2, bw)
    ax.hist(elev[elev < thr], bins=bins.tolist(), color="#7fa6c9", label=lab("低于阈值", "below"))
    ax.hist(elev[elev >= thr], bins=bins.tolist(), color="#d9534f", label=lab("高于阈值", "above"))
    ax.axvline(thr, color="k", ls="--", lw=1.2)
    ax.text(thr, ax.get_ylim()[1] * 0.95, f" {thr:g} m", va="top")
    ax.set_xlabel(lab("自然村海拔(米)", "settlement elevation (m)"))
    ax.set_ylabel(lab("自然村数", "settlements"))
    cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)
    ax.legend(frameon=False)
    return _png(fig, status)


def _cost_curve_chart(curve: pd.DataFrame, report: dict, lab: _Label) -> bytes:
    """Access shares as works are added, cheapest first, with the plan's targets dotted."""
    zh = lab.zh
    fig = _figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
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
    return _png(fig, report.get("data_status"))


def _townships_chart(townships: pd.DataFrame, lab: _Label, status: dict | None) -> bytes:
    """Per township: people in candidate settlements and village tongchang before/after."""
    zh = lab.zh
    t = townships.iloc[::-1]
    names = t["name"] if zh else t["township_code"]
    panels = [c for c in ("candidate_people", "tongchang_before_pct") if c in t]
    poor_t = t["candidate_poor_people"] if "candidate_poor_people" in t else None
    fig = _figure(figsize=(4.2 * len(panels) + 1.5, 0.22 * len(t) + 1.2))
    axes = fig.subplots(1, len(panels), sharey=True)
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
                        height=0.4, color="#5cb85c",
                        label=lab("实施拟建工程后（规划）", "with the proposed works (planned)"))
            ax.set_xlabel(lab("行政村通畅率(%)", "villages tongchang (%)"))
            ax.set_xlim(0, 100)
            ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(names, fontsize=7)
    return _png(fig, status)
