"""Scorecard: the shares of villages and settlements against the plan's access targets, overall,
per township, and before/after the proposed works."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from kaizhou_gis.figures import pct

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def admin_village_mask(villages: pd.DataFrame) -> pd.Series:
    """True for administrative villages (行政村, ``kind`` 村), False for urban communities (社区).

    The plan's village indicator (专栏 indicator 5, 贫困地区行政村通畅率) and the 100 % target for
    villages (撤并村通畅率100%, ch.11) concern 行政村; 社区 are urban neighbourhoods. A villages
    layer without ``kind`` (or without any 村) counts every row as a village.
    """
    if "admin_village" in villages.columns:
        return villages["admin_village"].astype(bool)
    if "kind" not in villages.columns:
        return pd.Series(True, index=villages.index)
    kind = villages["kind"].astype(str).str.strip()
    if not (kind == "村").any():
        return pd.Series(True, index=villages.index)
    return kind == "村"


def scorecard(villages: pd.DataFrame, settlements: pd.DataFrame, plan, *,
              township_names: dict[str, str] | None = None) -> dict:
    """Shares against the plan's targets, overall and per township.

    Parameters
    ----------
    villages : DataFrame
        ``township_code``, ``tongchang`` (and ``tongda``), ``kind``; only administrative villages
        (村, :func:`admin_village_mask`) count, 社区 are reported as ``communities_excluded``.
    settlements : DataFrame
        ``township_code``, ``target_group``, ``tongda``, ``tongchang``.
    plan : Plan
    township_names : dict, optional
        Code → name for the per-township list.
    """
    p = plan.section("access")
    names = township_names or {}

    def figures(nv: int, v_da: int, v_ch: int, nt: int, t_da: int, t_ch: int) -> dict:
        f: dict[str, Any] = {
            "villages": nv, "villages_tongda": v_da, "villages_tongchang": v_ch,
            "village_tongchang_pct": pct(v_ch, nv),
            "target_settlements": nt, "target_settlements_tongda": t_da,
            "target_settlements_tongchang": t_ch,
            "settlement_tongda_pct": pct(t_da, nt), "settlement_tongchang_pct": pct(t_ch, nt),
        }
        f["met"] = {
            "village_tongchang": _met(f["village_tongchang_pct"], p["village_tongchang_target_pct"]),
            "settlement_tongda": _met(f["settlement_tongda_pct"], p["settlement_tongda_target_pct"]),
            "settlement_tongchang": _met(f["settlement_tongchang_pct"], p["settlement_tongchang_target_pct"]),
        }
        return f

    admin = admin_village_mask(villages).to_numpy()
    v = pd.DataFrame({"code": villages["township_code"].astype(str).to_numpy(), "n": 1,
                      "da": villages["tongda"].astype(bool).to_numpy(),
                      "ch": villages["tongchang"].astype(bool).to_numpy()})[admin]
    tg = settlements["target_group"].astype(bool).to_numpy()
    t = pd.DataFrame({"code": settlements["township_code"].astype(str).to_numpy()[tg], "n": 1,
                      "da": settlements["tongda"].astype(bool).to_numpy()[tg],
                      "ch": settlements["tongchang"].astype(bool).to_numpy()[tg]})
    out = figures(len(v), int(v["da"].sum()), int(v["ch"].sum()), len(t), int(t["da"].sum()),
                  int(t["ch"].sum()))
    out["communities_excluded"] = int((~admin).sum())
    codes = sorted(set(villages["township_code"].astype(str)) | set(settlements["township_code"].astype(str)))
    vs = v.groupby("code")[["n", "da", "ch"]].sum().reindex(codes, fill_value=0)
    ts = t.groupby("code")[["n", "da", "ch"]].sum().reindex(codes, fill_value=0)
    out["per_township"] = [
        {"township_code": c, "township_name": names.get(c, ""),
         **figures(int(a[0]), int(a[1]), int(a[2]), int(b[0]), int(b[1]), int(b[2]))}
        for c, a, b in zip(codes, vs[["n", "da", "ch"]].to_numpy().tolist(),
                           ts[["n", "da", "ch"]].to_numpy().tolist(), strict=True)]
    return out


def _met(pct: float | None, target: float) -> bool | None:
    """Target met? None when the group is empty (no target villages/settlements: neither met nor
    missed; reported as "no target settlements" / 无目标聚居点)."""
    return None if pct is None else bool(pct + 1e-9 >= target)


def township_table(before: dict, after: dict, works: pd.DataFrame) -> pd.DataFrame:
    """Per-township scorecard before and after the works, with the works' km and cost."""
    keys = ["villages", "village_tongchang_pct", "target_settlements", "settlement_tongda_pct",
            "settlement_tongchang_pct"]
    cols = ["township_code", "township_name"] + keys
    b = pd.DataFrame(before["per_township"], columns=cols).set_index("township_code")
    a = pd.DataFrame(after["per_township"], columns=cols).set_index("township_code")
    t = b[["township_name"] + keys].copy()
    for k in ("village_tongchang_pct", "settlement_tongda_pct", "settlement_tongchang_pct"):
        t[k + "_after"] = a[k]
    w = works.assign(township_code=works["township_code"].astype(str).str.split(";")).explode("township_code")
    n = works.assign(n=works["township_code"].astype(str).str.count(";") + 1)["n"]
    w["share"] = 1.0 / n.reindex(w.index).to_numpy()  # a work serving several townships is split evenly
    g = w.assign(km=w["km"] * w["share"], cost_yuan=w["cost_yuan"] * w["share"]) \
        .groupby("township_code")[["km", "cost_yuan"]].sum()
    t["works_km"] = g["km"].reindex(t.index).fillna(0.0).round(3)
    t["works_cost_yuan"] = g["cost_yuan"].reindex(t.index).fillna(0.0).round(0)
    t = t.reset_index()
    t.attrs["labels_zh"] = {
        "township_code": "乡镇代码", "township_name": "乡镇", "villages": "行政村数",
        "village_tongchang_pct": "行政村通畅率(%)", "target_settlements": "30户/100人以上居住地数",
        "settlement_tongda_pct": "居住地通达率(%)", "settlement_tongchang_pct": "居住地通畅率(%)",
        "village_tongchang_pct_after": "实施拟建工程后行政村通畅率(规划,%)",
        "settlement_tongda_pct_after": "实施拟建工程后居住地通达率(规划,%)",
        "settlement_tongchang_pct_after": "实施拟建工程后居住地通畅率(规划,%)",
        "works_km": "工程里程(公里)", "works_cost_yuan": "工程投资(元)"}
    return t
