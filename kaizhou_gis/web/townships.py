"""The township picker's index and search, and the four tables of a township page (also written
to its XLSX and CSV downloads) from a run's step results."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from kaizhou_gis.results import StepResult


def pinyin_keys(name: str) -> tuple[str, str]:
    """(initials, full pinyin) of a Chinese name, lower case: 大进镇 -> ("djz", "dajinzhen")."""
    from pypinyin import Style, lazy_pinyin
    initials = "".join(p[:1] for p in lazy_pinyin(name, style=Style.FIRST_LETTER, errors="ignore"))
    full = "".join(lazy_pinyin(name, errors="ignore"))
    return initials.lower(), full.lower()


def township_index(townships) -> list[dict]:
    """One entry per township: code, name, pinyin initials and full pinyin (for the picker)."""
    out = []
    for code, name in zip(townships["township_code"].astype(str), townships["name"].astype(str)):
        ini, full = pinyin_keys(name)
        out.append({"code": code, "name": name, "initials": ini, "pinyin": full})
    return sorted(out, key=lambda t: t["code"])


def search_townships(index: list[dict], query: str) -> list[dict]:
    """Townships whose name contains the query, or whose code, pinyin initials or full pinyin
    starts with it (case-insensitive; spaces ignored)."""
    q = re.sub(r"\s+", "", str(query or "")).lower()
    if not q:
        return list(index)
    return [t for t in index if q in t["name"].lower() or t["code"].startswith(q)
            or t["initials"].startswith(q) or t["pinyin"].startswith(q)]



#: (key, sheet/file name, Chinese title, English title, [(column, 中文, English)])
TABLES: list[tuple[str, str, str, str, list[tuple[str, str, str]]]] = [
    ("candidates", "candidates", "拟整体搬迁自然村", "Relocation candidates", [
        ("settlement_id", "自然村编号", "settlement id"), ("name", "自然村", "settlement"),
        ("village_name", "行政村", "village"), ("households", "户数", "households"),
        ("population", "人口", "people"), ("elevation_m", "海拔(米)", "elevation m"),
        ("slope_deg", "坡度(度)", "slope °"), ("priority", "优先度", "priority"),
        ("schedule_year", "计划年度", "year"), ("site_ids", "安置点", "sites"),
        ("reasons_zh", "原因", "reasons"), ("reasons_en", "原因(英文)", "reasons (English)")]),
    ("gaps", "access_gaps", "通达通畅缺口", "Road access gaps", [
        ("level", "层级", "level"), ("id", "编号", "id"), ("name", "名称", "name"),
        ("households", "户数", "households"), ("tongda", "通达", "reached"),
        ("tongchang", "通畅", "hardened"), ("reason_zh", "原因", "reason"),
        ("work_ids", "工程", "works"), ("tongchang_after", "工程后通畅", "hardened after works")]),
    ("works", "works", "道路工程", "Road works", [
        ("work_id", "工程编号", "work id"), ("type_zh", "类型", "type"), ("km", "公里", "km"),
        ("cost_10k_yuan", "投资(万元)", "cost (10k yuan)"), ("terrain", "地形", "terrain"),
        ("beneficiaries", "受益点", "beneficiaries"), ("phase", "阶段", "phase")]),
    ("industry", "industry", "产业项目", "Industry projects", [
        ("project_id", "项目编号", "project id"), ("category", "类别", "category"),
        ("product", "产品", "product"), ("village_name", "村", "village"),
        ("host_text", "规划原文地点", "place in the plan"), ("scale", "规模", "scale"),
        ("unit", "单位", "unit"), ("target_year", "目标年份", "target year"),
        ("match", "匹配", "match")]),
]


def _yes_no(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return "是 yes" if bool(v) else "否 no"


def _select(df: pd.DataFrame, cols: list[tuple[str, str, str]]) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c, _, _ in cols:
        out[c] = df[c] if c in df.columns else None
    out = pd.DataFrame(out.reset_index(drop=True))
    out.attrs["labels_zh"] = {c: f"{zh} {en}" for c, zh, en in cols}
    return out


def township_tables(results: dict[str, StepResult], villages: pd.DataFrame, failures: dict[str, str],
                    code: str) -> dict[str, pd.DataFrame | str]:
    """The four tables of township ``code`` from a run's step ``results`` (``villages``: the villages
    layer, for the industry hosts' townships), or the message why a table is missing."""
    cols = {k: c for k, _, _, _, c in TABLES}
    out: dict[str, pd.DataFrame | str] = {}
    reloc = results.get("relocation")
    if reloc is None:
        out["candidates"] = failures.get("relocation", "relocation step did not run")
    else:
        s = reloc.data.settlements
        s = s[(s["township_code"].astype(str) == code) & s["relocation_candidate"].astype(bool)]
        s = s.sort_values(["priority", "settlement_id"], ascending=[False, True], kind="mergesort")
        out["candidates"] = _select(s, cols["candidates"])
    acc = results.get("access")
    if acc is None:
        out["gaps"] = out["works"] = failures.get("access", "access step did not run")
    else:
        rows = []
        v = acc.data.villages
        v = v[v["township_code"].astype(str) == code]
        gap = ~v["tongchang"].fillna(False).astype(bool)
        vv = v[gap].assign(level="行政村 village", id=v.loc[gap, "village_code"].astype(str))
        rows.append(vv)
        st = acc.data.settlements
        st = st[(st["township_code"].astype(str) == code) & st["target_group"].fillna(False).astype(bool)]
        sgap = ~(st["tongda"].fillna(False).astype(bool) & st["tongchang"].fillna(False).astype(bool))
        ss = st[sgap].assign(level="自然村 settlement", id=st.loc[sgap, "settlement_id"].astype(str))
        rows.append(ss)
        g = pd.concat([pd.DataFrame(r.drop(columns="geometry", errors="ignore")) for r in rows],
                      ignore_index=True)
        for c in ("tongda", "tongchang", "tongchang_after"):
            if c in g.columns:
                g[c] = g[c].map(_yes_no).astype(object)
        out["gaps"] = _select(g, cols["gaps"])
        w = acc.data.works
        if w is None or not len(w):
            w = pd.DataFrame(columns=["work_id", "type", "km", "cost_yuan", "township_code"])
        w = pd.DataFrame(w.drop(columns="geometry", errors="ignore"))
        w = w[w["township_code"].astype(str) == code].copy()
        w["type_zh"] = w["type"].astype(str).map({"new": "新建 new", "upgrade": "硬化 upgrade"}).fillna(w["type"])
        w["cost_10k_yuan"] = (pd.to_numeric(w["cost_yuan"], errors="coerce") / 1e4).round(1)
        w["km"] = pd.to_numeric(w["km"], errors="coerce").round(2)
        out["works"] = _select(w, cols["works"])
    ind = results.get("industry")
    if ind is None:
        out["industry"] = failures.get("industry", "industry step did not run")
    else:
        from kaizhou_gis.admin import village_townships
        from kaizhou_gis.industry import host_township_codes
        h = ind.data.hosts
        if h is None or not len(h):
            out["industry"] = _select(pd.DataFrame(), cols["industry"])
        else:
            h = pd.DataFrame(h.drop(columns="geometry", errors="ignore"))
            h = h[host_township_codes(h, village_townships(villages)).to_numpy() == code]
            out["industry"] = _select(h, cols["industry"])
    return out



def table_records(df: pd.DataFrame) -> list[list[Any]]:
    """Rows of a table as display values (numbers formatted, missing as empty)."""
    rows = []
    for rec in df.itertuples(index=False):
        row = []
        for v in rec:
            if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and not math.isfinite(float(v))):
                row.append("")
            elif isinstance(v, (float, np.floating)):
                x = float(v)
                row.append(f"{x:,.1f}" if abs(x - round(x)) > 1e-9 else f"{int(round(x)):,}")
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                row.append(f"{int(v)}" if abs(int(v)) < 10000 else f"{int(v):,}")
            elif isinstance(v, (list, tuple, set)):
                row.append("; ".join(map(str, v)))
            else:
                row.append(str(v))
        rows.append(row)
    return rows
