"""The per-township table of the report."""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.report.common import _RESULT_ERRORS, _bool, _num
from kaizhou_gis.report.frames import _admin, _beneficiary_ids, _Frames, _poor, _poverty_flag_filled, _works_in_scope
from kaizhou_gis.results import StepResult

log = logging.getLogger(__name__)


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


def township_table(frames: _Frames, steps: dict) -> pd.DataFrame:
    """One row per township: villages, settlements, candidates, 通畅 before/after, works, industry."""
    tw = frames.townships
    codes = tw["township_code"].astype(str)
    df = pd.DataFrame({"township_code": codes.values, "name": tw["name"].astype(str).values})
    v = frames.villages
    vt = v["township_code"].astype(str) if "township_code" in v else pd.Series(dtype=str)
    df["villages"] = df["township_code"].map(vt.value_counts()).fillna(0).astype(int)
    if "poverty_village" in v and not _poverty_flag_filled(frames.layers):
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
    poor, _ = _poor(s, frames.plan)
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
        # exact sums (math.fsum): the same works give the same total in a district and a
        # township report, whatever the order of the rows (a float sum near a rounding
        # boundary of the shown 0.01 km could otherwise differ between the two)
        wk = pd.to_numeric(w["km"], errors="coerce").fillna(0).groupby(w["township_code"]).agg(math.fsum)
        wc = pd.to_numeric(w["cost_yuan"], errors="coerce").fillna(0).groupby(
            w["township_code"]).agg(math.fsum)
        df["works_km"] = df["township_code"].map(wk).fillna(0).round(3)
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
