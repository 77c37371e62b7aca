"""The district roll-up: one row per district (status, counts, plan figures) and its files."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from kaizhou_gis.batch.manifest import District
from kaizhou_gis.figures import pct

log = logging.getLogger(__name__)


ROLLUP_COLUMNS = {
    "code": "代码", "name": "名称", "status": "状态", "error": "错误", "data_status": "数据性质",
    "settlements": "自然村数", "candidates": "搬迁对象自然村", "candidate_households": "搬迁户数",
    "candidate_people": "搬迁人数", "registered_poor": "其中建档立卡贫困人口",
    "relocation_target_people": "规划搬迁人数", "scheduled_people": "已排期人数",
    "schedule_vs_quota_pct": "排期占计划(%)",
    "village_tongda_before_pct": "行政村通达率-现状(%)",
    "village_tongda_after_pct": "行政村通达率-工程后(%)",
    "village_tongchang_before_pct": "行政村通畅率-现状(%)",
    "village_tongchang_after_pct": "行政村通畅率-工程后(%)",
    "settlement_tongda_before_pct": "集中居住自然村(≥30户或100人)通达率-现状(%)",
    "settlement_tongda_after_pct": "集中居住自然村通达率-工程后(%)",
    "settlement_tongchang_before_pct": "集中居住自然村通畅率-现状(%)",
    "settlement_tongchang_after_pct": "集中居住自然村通畅率-工程后(%)",
    "works": "建议工程数", "works_km": "工程里程(km)", "works_cost_yuan": "工程投资(元)",
    "industry_projects": "产业项目数", "industry_host_villages": "产业落地村数",
    "industry_unresolved": "未定位实施地", "gap_pct": "通畅缺口(百分点)",
    "seconds": "耗时(秒)", "peak_rss_mb": "峰值内存(MB)", "run": "本次运行",
}


COUNT_COLUMNS = ("settlements", "candidates", "candidate_households", "candidate_people",
                 "registered_poor", "relocation_target_people", "scheduled_people",
                 "works", "industry_projects", "industry_host_villages", "industry_unresolved")


def rollup_row(out_dir: Path) -> dict[str, Any]:
    """A district's roll-up figures, read from its own ``report.json`` and the access tables."""
    r = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    rel, acc, ind = r.get("relocation") or {}, r.get("access") or {}, r.get("industry") or {}
    row: dict[str, Any] = {"name": (r.get("district") or {}).get("name")}
    row["settlements"] = rel.get("settlements")
    row["candidates"] = rel.get("candidates")
    row["candidate_households"] = rel.get("candidate_households")
    row["candidate_people"] = rel.get("candidate_people")
    row["registered_poor"] = rel.get("candidate_poor_people")
    row["relocation_target_people"] = (rel.get("plan") or {}).get("people_target")
    sched = rel.get("schedule") or []
    if sched:
        row["scheduled_people"] = int(sum(int(s.get("people") or 0) for s in sched))
        quota = sum(int(s.get("plan_people") or 0) for s in sched)
        row["schedule_vs_quota_pct"] = pct(row["scheduled_people"], quota)
    card = {c.get("indicator"): c for c in acc.get("scorecard") or []}
    for k in ("village_tongchang", "settlement_tongda", "settlement_tongchang"):
        c = card.get(f"{k}_pct") or {}
        row[f"{k}_before_pct"] = c.get("before_pct")
        row[f"{k}_after_pct"] = c.get("after_pct")
    vfile = out_dir / "access" / "villages.csv"  # 通达 of villages: the scorecard has 通畅 only
    if vfile.is_file():
        v = pd.read_csv(vfile, encoding="utf-8-sig", dtype=str,
                        usecols=lambda c: c in ("tongda", "tongda_after"))
        for c, k in (("tongda", "village_tongda_before_pct"), ("tongda_after", "village_tongda_after_pct")):
            if c in v and len(v):
                row[k] = round(100.0 * float(v[c].str.lower().eq("true").mean()), 2)
    gaps = [(c.get("target_pct") or 0) - (c.get("before_pct") or 0) for c in card.values()
            if c.get("before_pct") is not None]
    row["gap_pct"] = round(max([0.0] + gaps), 2) if gaps else None
    w = acc.get("works") or {}
    row["works"], row["works_km"], row["works_cost_yuan"] = w.get("count"), w.get("km"), w.get("cost_yuan")
    row["industry_projects"] = ind.get("projects")
    row["industry_host_villages"] = ind.get("host_villages")
    row["industry_unresolved"] = ind.get("unresolved_names")
    return row


def _boundary_wgs84(d: District, out_dir: Path):
    """The district outline for the roll-up map, from its boundary layer (WGS84; read on the
    driver, it is small), or None when it cannot be read (the table still has the row)."""
    import geopandas as gpd

    from kaizhou_gis.layers import _resolve

    lp = Path(d.layers) if d.layers else None
    if lp is None:
        return None
    try:
        sources, _, _ = _resolve(lp, [])
        src = sources.get("boundary")
        if src is None:
            return None
        g = gpd.read_file(src.path, layer=src.layer) if src.layer else gpd.read_file(src.path)
        if g.crs is None:
            g = g.set_crs(d.crs or "EPSG:4326")
        if d.coords == "gcj02":
            from kaizhou_gis.terrain.coords import convert_gcj02_to_wgs84
            g = convert_gcj02_to_wgs84(g.to_crs("EPSG:4326"))
        return g.to_crs("EPSG:4326").geometry.union_all()
    except Exception as e:  # the map just lacks this outline; the table has the row
        log.debug("no outline for %s: %s", d.code, e)
        return None


def rollup_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ROLLUP_COLUMNS:
        if c not in df:
            df[c] = None
    df = df[list(ROLLUP_COLUMNS)].copy()
    for c in COUNT_COLUMNS:  # whole numbers stay whole next to a failed district's empty cell
        df[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in df[c]], dtype="Int64")
    df.attrs["labels_zh"] = dict(ROLLUP_COLUMNS)
    return df
