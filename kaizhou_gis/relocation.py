"""High-mountain ecological poverty relocation (高山生态扶贫搬迁, plan ch.5).

For every settlement (自然村) the step measures the terrain from the DEM, takes road access from
the ``access`` step when it is available, and flags the plan's criteria as separate columns:

``above_threshold``
    ``elevation_m > relocation.threshold_m`` (strictly greater: a settlement at exactly 800 m is
    not above 800 m). The plan's own count (340 natural villages above 800 m) uses this criterion.
``steep_terrain``
    mean slope within ``relocation.slope_window_m`` greater than ``relocation.steep_slope_deg``.
``deep_valley``
    the ground within ``relocation.relief_window_m`` rises at least
    ``relocation.deep_valley_relief_m`` above the settlement (深山峡谷).
``remote``
    no hardened road (not 通畅), or a hardened road but more than ``relocation.remote_km_to_seat``
    km by road to the township seat (高寒边远). Unknown (NA) when the access step is unavailable.
``in_poverty_village``
    the settlement's administrative village is a poverty village.

A settlement is a **relocation candidate** when it is above the threshold, or (when
``relocation.include_terrain_remote`` is true) when it is on steep ground *and* in a deep valley
*and* remote (the plan's 深山峡谷 where infrastructure is hard to provide); with ``relocation.require_poverty_village`` it must also lie in a poverty village. A
settlement without elevation (outside the DEM or on nodata) is never a candidate and has status
``no_elevation``.

The **priority** (0-100) is a weighted sum (``relocation.priority_weights``) of four parts in
[0, 1]: elevation (0 at the threshold, 1 at ``priority_elevation_span_m`` above it), terrain (the
larger of slope / steep_slope_deg and valley depth / deep_valley_relief_m), remoteness (1 without a
hardened road, else road km to the seat / remote_km_to_seat) and poverty (1 in a poverty village).

Candidates are **scheduled** to the plan's years (``relocation.yearly_people``) in priority order,
whole settlements only, so that the people of each year stay within its quota; what does not fit
is the remainder (with ``--township`` the district's quotas apply to that township alone).
**Resettlement sites** are points of a grid (``relocation.sites``) inside the
district, vetoed when above the elevation threshold, steeper than ``max_slope_deg`` or outside the
boundary, and ranked by a weighted suitability (gentle slope, near a hardened road, near the
township seat, near villages: low, accessible places such as township seats and central
villages). They are **sized to the demand where the demand is**: each township gets
``ceil(households / capacity_households)`` sites (households of all candidates, or of the
scheduled ones with ``size_to = "scheduled"``), best suitability first, ``min_site_spacing_m``
apart; a township short of feasible ground then uses its remaining feasible points (closer
together, ``own_points_before_neighbours``), and what it still lacks is covered by the feasible
points of neighbouring townships nearest to its settlements (``site_role = "cover"``,
``serves_township_code``/``for_township`` name the township served). The township table and the
summary say which townships have no feasible site of their own. A user ``sites`` layer replaces
the generated sites. Candidate **households are assigned** to sites by a transportation linear
program (HiGHS dual simplex): minimum total distance (straight line, km, plus
``other_township_penalty_km`` for a site neither in the household's township nor chosen to cover
it) subject to site capacity, only pairs within ``max_distance_km``. Households of one
settlement may be split over several sites. Leaving a household unplaced costs more than any
placement, so as many households as possible are placed; when capacity is short the households of
unscheduled, then of lower-priority settlements are left out first. Unplaced households are
listed with the reason. Distances are straight lines, not road distances.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kaizhou_gis import leftout
from kaizhou_gis.access import snap_to_edges
from kaizhou_gis.admin import NO_TOWNSHIP, settlement_townships
from kaizhou_gis.errors import KaizhouGISError, LayerError, PlanError, StepError, format_ids
from kaizhou_gis.figures import pct
from kaizhou_gis.results import RelocationData, StepContext, StepNeeds, StepResult
from kaizhou_gis.plan import Plan
from kaizhou_gis.terrain import point_terrain, zonal_stats

log = logging.getLogger(__name__)

#: Chinese header labels of the output tables (``--header zh`` / ``both``).
LABELS_ZH: dict[str, str] = {
    "settlement_id": "自然村编号", "name": "名称", "village_code": "行政村代码",
    "village_name": "行政村", "township_code": "乡镇代码", "township_name": "乡镇",
    "households": "户数", "population": "总人口(全部居民)", "source": "数据来源",
    "poor_population": "建档立卡贫困人口(搬迁对象)", "poor_population_basis": "贫困人口来源",
    "accompanying_population": "同步搬迁人口(其他居民)",
    "elevation_m": "海拔(米)", "slope_deg": "平均坡度(度)", "valley_depth_m": "周边高差(米)",
    "local_max_m": "周边最高(米)", "above_threshold": "海拔超过阈值", "steep_terrain": "陡坡",
    "deep_valley": "深山峡谷", "remote": "边远", "tongda": "通达", "tongchang": "通畅",
    "network_km_to_seat": "至乡镇驻地路网距离(公里)", "in_poverty_village": "位于贫困村",
    "deep_poverty_village": "位于深度贫困村", "relocation_candidate": "拟整体搬迁自然村",
    "candidate_basis": "认定依据", "priority": "优先级", "reasons_zh": "原因",
    "reasons_en": "reasons", "status": "状态", "schedule_year": "计划搬迁年度",
    "assigned_households": "已安置户数", "site_ids": "安置点", "schedule_status": "搬迁计划",
    "settlement_name": "自然村名称", "site_name": "安置点名称", "site_township_name": "安置点所在乡镇",
    "site_id": "安置点编号", "suitability": "适宜性评分", "capacity_households": "容量(户)",
    "rank": "排名", "vetoes": "否决原因", "road_distance_m": "距硬化路(米)",
    "seat_distance_m": "距乡镇驻地(米)", "village_distance_m": "距最近行政村(米)",
    "distance_km": "距离(公里)", "same_township": "同乡镇", "reason": "原因",
    "reason_zh": "原因", "settlements": "自然村数", "settlements_with_elevation": "有高程的自然村数",
    "above_threshold_settlements": "超过阈值的自然村数", "candidates": "拟整体搬迁自然村数",
    "candidate_households": "拟搬迁自然村总户数", "candidate_population": "拟搬迁自然村总人口",
    "candidate_poor_population": "搬迁对象(建档立卡贫困人口)",
    "candidate_accompanying_population": "同步搬迁人口",
    "scheduled_population": "已排期总人口", "scheduled_poor_population": "已排期建档立卡贫困人口",
    "scheduled_accompanying_population": "已排期同步搬迁人口", "poverty_village": "贫困村", "sites": "安置点数",
    "site_capacity_households": "安置容量(户)", "max_elevation_m": "最高海拔(米)",
    "year": "年度", "quota_poor_people": "计划搬迁建档立卡贫困人口", "poor_people": "搬迁对象(建档立卡贫困人口)",
    "accompanying_people": "同步搬迁人口", "people": "总人口(全部居民)",
    "assigned_households_total": "已安置户数", "unassigned_households": "未安置户数",
    "mean_elevation_m": "平均海拔(米)", "area_above_threshold_pct": "超过阈值的面积比例(%)",
    "serves_township_code": "服务乡镇代码", "for_township": "服务乡镇", "site_role": "安置点类型",
    "site_township_code": "安置点所在乡镇代码", "site_for_own_township": "本乡镇安置点",
    "reason_detail": "原因说明", "demand_households": "需安置户数", "sites_needed": "所需安置点数",
    "feasible_points": "可建点位数", "own_sites": "本乡镇安置点数", "cover_sites": "邻乡镇代建安置点数",
    "cover_site_ids": "邻乡镇代建安置点", "capacity_for_township": "为本乡镇安排的容量(户)",
    "shortfall_households": "容量缺口(户)", "site_note": "安置点说明",
    "placed_households": "已安置户数", "placed_own_township": "本乡镇内安置户数",
    "unplaced_households": "未安置户数", "mean_distance_km": "平均搬迁距离(公里)",
    "network_km": "路网距离(公里)", "spacing_relaxed": "间距放宽",
}

_STATUS = ("candidate", "not_candidate", "no_elevation")


#: Categorical values in Chinese (``--header zh``/``both`` writes these; booleans become 是/否).
VALUES_ZH = {
    "candidate_basis": {"elevation": "海拔", "terrain_remote": "地形偏远",
                        "elevation+terrain_remote": "海拔+地形偏远"},
    "status": {"candidate": "拟整体搬迁", "not_candidate": "非搬迁候选", "no_elevation": "无高程"},
    "site_role": {"own": "本乡镇", "cover": "邻乡镇代建", "user": "用户给定"},
    "reason": {},  # filled per table: the reason_zh column holds the Chinese text
}
#: schedule_status of a candidate beyond the last year's quota (plan ch.5: 2016-2018 yearly quotas).
BEYOND_QUOTAS_EN = "after {year} / beyond the quotas"
BEYOND_QUOTAS_ZH = "{year}年后（超出年度指标）"


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    df.attrs["labels_zh"] = {c: LABELS_ZH[c] for c in df.columns if c in LABELS_ZH}
    values = {c: dict(VALUES_ZH[c]) for c in df.columns if c in VALUES_ZH and VALUES_ZH[c]}
    if "reason" in df.columns and "reason_zh" in df.columns:
        values["reason"] = {str(e): str(z) for e, z in zip(df["reason"], df["reason_zh"])
                            if isinstance(e, str) and isinstance(z, str) and z}
    if "schedule_status" in df.columns:
        values["schedule_status"] = {str(v): (BEYOND_QUOTAS_ZH.format(year=v.split()[1])
                                              if v.startswith("after ") else f"{v}年")
                                     for v in df["schedule_status"].dropna().unique() if str(v)}
    df.attrs["values_zh"] = values
    return df


def _add_names(table: pd.DataFrame, settlements: pd.DataFrame, sites: pd.DataFrame,
                townships: pd.DataFrame) -> None:
    """Names next to the ids of a table (in place): settlement, village, township, site."""
    def put(after: str, col: str, values: pd.Series) -> None:
        if after in table.columns and col not in table.columns:
            table.insert(table.columns.get_loc(after) + 1, col, values)

    sd = settlements.drop_duplicates("settlement_id")
    by_id = sd.set_index(sd["settlement_id"].astype(str))
    if "settlement_id" in table.columns:
        sid = table["settlement_id"].astype(str)
        put("settlement_id", "settlement_name", sid.map(by_id["name"]) if "name" in by_id else None)
        if "village_code" not in table.columns and "village_code" in by_id:
            put("settlement_name", "village_code", sid.map(by_id["village_code"]))
            put("village_code", "village_name", sid.map(by_id["village_name"]) if "village_name" in by_id else None)
    tw_names = dict(zip(townships["township_code"].astype(str), townships["name"].astype(str)))
    if "township_code" in table.columns:
        put("township_code", "township_name", table["township_code"].astype(str).map(tw_names))
    if "site_id" in table.columns and len(sites):
        names = dict(zip(sites["site_id"].astype(str),
                         (sites["name"] if "name" in sites else sites["site_id"]).astype(str)))
        put("site_id", "site_name", table["site_id"].astype(str).map(names))
    if "site_township_code" in table.columns:
        put("site_township_code", "site_township_name", table["site_township_code"].astype(str).map(tw_names))


def schedule_status(schedule_year: pd.Series, candidate: pd.Series, years) -> pd.Series:
    """A candidate's schedule in words: its year, or "after 2018 / beyond the quotas" when the
    yearly quotas are used up before it; "" for settlements that are not candidates."""
    last = max(int(y) for y in years) if len(years) else None
    out = pd.Series("", index=schedule_year.index, dtype=object)
    has = schedule_year.notna() & candidate
    out[has] = schedule_year[has].astype("Int64").astype(str)
    out[candidate & ~schedule_year.notna()] = BEYOND_QUOTAS_EN.format(year=last)
    return out


def _fmt(v: float, decimals: int = 0) -> str:
    return f"{v:,.{decimals}f}"


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def settlement_table(settlements: gpd.GeoDataFrame, villages: gpd.GeoDataFrame,
                     townships: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Settlements with their administrative village and township attached.

    Parameters
    ----------
    settlements, villages, townships
        Layers of the layer contract (any CRS; the settlements' CRS is kept).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``settlements`` (same index) with ``village_name``, ``township_code``,
        ``township_name``, ``in_poverty_village`` and ``deep_poverty_village``. A settlement whose
        ``village_code`` is not in the villages layer gets empty names and False flags.
    """
    need = [c for c in ("settlement_id", "village_code", "households", "population")
            if c not in settlements.columns]
    if need:
        raise LayerError(f"settlements: missing column(s) {', '.join(need)}; the relocation step "
                         f"needs settlement_id, village_code, households and population.")
    s = settlements.copy()
    vil = pd.DataFrame(villages.drop(columns=villages.geometry.name)).drop_duplicates("village_code")
    vil = vil.set_index(vil["village_code"].astype(str))
    code = s["village_code"].astype(str)
    s["village_name"] = code.map(vil["name"]).fillna("").astype(str)
    s["township_code"] = settlement_townships(s, villages, warn=False).astype(str)
    tw = pd.Series(townships["name"].astype(str).to_numpy(),
                   index=townships["township_code"].astype(str))
    tw = tw[~tw.index.duplicated()]
    s["township_name"] = s["township_code"].map(tw).fillna("").astype(str)
    for src, dst in (("poverty_village", "in_poverty_village"), ("deep_poverty", "deep_poverty_village")):
        flag = vil[src].fillna(False).astype(bool) if src in vil.columns else pd.Series(False, index=vil.index)
        s[dst] = code.map(flag).fillna(False).astype(bool)
    for c in ("households", "population"):
        s[c] = pd.to_numeric(s[c], errors="coerce").fillna(0).astype("int64")
    missing = s.loc[s["township_code"] == NO_TOWNSHIP, "settlement_id"].astype(str).tolist()
    if missing:
        log.warning("settlements: %d settlement(s) whose village_code is not in the villages layer "
                    "(kept, without township): %s", len(missing), format_ids(missing))
    return s


def access_columns(needs: StepNeeds, settlements: gpd.GeoDataFrame) -> tuple[pd.DataFrame | None, str]:
    """Road access of each settlement from the ``access`` step (``needs``), or None with the reason.

    Returns
    -------
    (table, note)
        ``table`` aligned to ``settlements.index`` with ``tongda``, ``tongchang`` and
        ``network_km_to_seat``; ``note`` says where remoteness came from or why it is unknown.
    """
    try:
        res = needs.result("access")
        acc = res.data.settlements
    except KaizhouGISError as e:
        return None, f"road access unavailable (access step: {' '.join(str(e).split())}); remoteness unknown"
    except Exception as e:  # a bug in another step must not stop the relocation list
        msg = " ".join(str(e).split())
        log.warning("access step crashed (%s: %s); relocation continues without remoteness",
                    type(e).__name__, msg)
        log.debug("access step traceback", exc_info=True)
        return None, f"road access unavailable (access step crashed: {type(e).__name__}: {msg}); remoteness unknown"
    need = {"tongchang", "network_km_to_seat"}
    if acc is None or not need <= set(acc.columns):
        return None, "road access unavailable (access data lacks tongchang/network_km_to_seat); remoteness unknown"
    if "settlement_id" in acc.columns:
        acc = pd.DataFrame(acc).assign(settlement_id=acc["settlement_id"].astype(str))
        acc = acc.drop_duplicates("settlement_id").set_index("settlement_id")
        key = settlements["settlement_id"].astype(str)
        table = pd.DataFrame({c: key.map(acc[c]) if c in acc.columns else np.nan
                              for c in ("tongda", "tongchang", "network_km_to_seat")},
                             index=settlements.index)
    else:
        table = pd.DataFrame(acc).reindex(settlements.index)[
            [c for c in ("tongda", "tongchang", "network_km_to_seat") if c in acc.columns]]
        if "tongda" not in table.columns:
            table["tongda"] = np.nan
    missing = table["tongchang"].isna()
    if missing.all() and len(table):
        return None, "road access unavailable (no settlement matched the access results); remoteness unknown"
    if missing.any():
        log.warning("access results lack %d settlement(s): %s", int(missing.sum()),
                    format_ids(settlements.loc[missing, "settlement_id"].tolist()))
    table["tongda"] = table["tongda"].astype("boolean")
    table["tongchang"] = table["tongchang"].astype("boolean")
    table["network_km_to_seat"] = pd.to_numeric(table["network_km_to_seat"], errors="coerce")
    return table, "from the access step (通畅 and road km to the township seat)"


# ---------------------------------------------------------------------------------------------
# Criteria, priority, reasons
# ---------------------------------------------------------------------------------------------

#: Settings that divide a value and so must be positive (zero is allowed by the plan's type check).
_POSITIVE = ("relocation.priority_elevation_span_m", "relocation.steep_slope_deg",
             "relocation.deep_valley_relief_m", "relocation.remote_km_to_seat",
             "relocation.sites.max_slope_deg", "relocation.sites.candidate_spacing_m",
             "relocation.sites.road_distance_scale_m", "relocation.sites.seat_distance_scale_m",
             "relocation.sites.village_distance_scale_m", "relocation.sites.capacity_households")

#: Accepted values of ``relocation.sites.size_to``.
SIZE_TO = ("candidates", "scheduled")


def check_settings(plan: Plan) -> None:
    """Raise :class:`PlanError` naming every relocation setting that must be positive but is not."""
    bad = [f"{k} = {plan[k]!r}" for k in _POSITIVE if not plan[k] > 0]
    if bad:
        raise PlanError(f"plan {plan.path}: these relocation settings must be greater than 0: "
                        f"{', '.join(bad)}; set positive values.")
    if plan["relocation.sites.size_to"] not in SIZE_TO:
        raise PlanError(f"plan {plan.path}: relocation.sites.size_to = "
                        f"{plan['relocation.sites.size_to']!r} is not one of "
                        f"{', '.join(repr(v) for v in SIZE_TO)}; choose one of them.")


def flag_settlements(s: pd.DataFrame, plan: Plan, *, access: pd.DataFrame | None) -> pd.DataFrame:
    """The plan's criteria, the candidate flag, the priority, the reasons and the status.

    Parameters
    ----------
    s
        Settlements with ``elevation_m``, ``slope_deg``, ``valley_depth_m`` and
        ``in_poverty_village`` (and optionally ``deep_poverty_village``).
    plan
        The plan (section ``relocation``).
    access
        Road access aligned to ``s.index`` (``tongda``, ``tongchang``, ``network_km_to_seat``),
        or None when unknown.

    Returns
    -------
    pandas.DataFrame
        A copy of ``s`` with ``above_threshold``, ``steep_terrain``, ``deep_valley``, ``remote``
        (nullable boolean; NA when road access is unknown), ``tongda``, ``tongchang``,
        ``network_km_to_seat``, ``relocation_candidate``, ``candidate_basis``, ``priority``,
        ``reasons_zh``, ``reasons_en`` and ``status``.
    """
    r = plan.section("relocation")
    thr = float(r["threshold_m"])
    out = s.copy()
    elev = out["elevation_m"].astype("float64")
    has_elev = elev.notna()
    out["above_threshold"] = (elev > thr).fillna(False).astype(bool)
    out["steep_terrain"] = (out["slope_deg"] > r["steep_slope_deg"]).fillna(False).astype(bool)
    out["deep_valley"] = (out["valley_depth_m"] >= r["deep_valley_relief_m"]).fillna(False).astype(bool)
    if access is None:
        out["tongda"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["tongchang"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["network_km_to_seat"] = np.nan
    else:
        out["tongda"] = access["tongda"].astype("boolean")
        out["tongchang"] = access["tongchang"].astype("boolean")
        out["network_km_to_seat"] = access["network_km_to_seat"].astype("float64")
    far = (out["network_km_to_seat"] > r["remote_km_to_seat"]).astype("boolean")
    remote = (~out["tongchang"]) | (out["tongchang"] & far)
    # reached by a hardened road with an unknown seat distance counts as not remote
    remote = remote.where(~(out["tongchang"].fillna(False) & out["network_km_to_seat"].isna()), False)
    out["remote"] = remote.astype("boolean")
    hard = out["steep_terrain"] & out["deep_valley"]
    by_terrain = hard & out["remote"].fillna(False).astype(bool) & bool(r["include_terrain_remote"])
    cand = (out["above_threshold"] | by_terrain) & has_elev
    if r["require_poverty_village"]:
        cand &= out["in_poverty_village"].astype(bool)
    out["relocation_candidate"] = cand.astype(bool)
    basis = np.where(out["above_threshold"] & by_terrain, "elevation+terrain_remote",
                     np.where(out["above_threshold"], "elevation",
                              np.where(by_terrain, "terrain_remote", "")))
    out["candidate_basis"] = np.where(cand, basis, "")

    w = r["priority_weights"]
    e_part = ((elev - thr) / float(r["priority_elevation_span_m"])).clip(0, 1)
    t_part = np.fmax((out["slope_deg"] / float(r["steep_slope_deg"])).clip(0, 1),
                     (out["valley_depth_m"] / float(r["deep_valley_relief_m"])).clip(0, 1)).fillna(0)
    r_part = pd.Series(0.0, index=out.index)
    if access is not None:
        by_km = (out["network_km_to_seat"] / float(r["remote_km_to_seat"])).clip(0, 1).fillna(0)
        r_part = pd.Series(np.where(~out["tongchang"].fillna(True).astype(bool), 1.0, by_km),
                           index=out.index)
    p_part = out["in_poverty_village"].astype(float)
    prio = 100.0 * (w["elevation"] * e_part + w["terrain"] * t_part + w["remoteness"] * r_part
                    + w["poverty"] * p_part)
    out["priority"] = prio.where(has_elev).round(1)

    zh, en = [], []
    deep_pov = out.get("deep_poverty_village", pd.Series(False, index=out.index)).astype(bool)
    fields = ["elevation_m", "above_threshold", "steep_terrain", "slope_deg", "deep_valley",
              "valley_depth_m", "tongda", "tongchang", "remote", "network_km_to_seat",
              "in_poverty_village"]
    for row, dp in zip(out[fields].to_dict("records"), deep_pov):
        rz, re_ = _reasons(row, r, known=access is not None and not pd.isna(row["tongchang"]),
                           deep_poverty=bool(dp))
        zh.append("; ".join(rz))
        en.append("; ".join(re_))
    out["reasons_zh"] = zh
    out["reasons_en"] = en
    out["status"] = np.where(~has_elev, "no_elevation",
                             np.where(out["relocation_candidate"], "candidate", "not_candidate"))
    return out


def _reasons(row: dict, r: dict, *, known: bool, deep_poverty: bool) -> tuple[list[str], list[str]]:
    """Chinese and English reason phrases of one settlement (criteria it meets)."""
    zh: list[str] = []
    en: list[str] = []
    thr = float(r["threshold_m"])
    if pd.isna(row["elevation_m"]):
        return (["无高程(不在DEM范围内或无数据)"], ["no elevation (outside the DEM or nodata)"])
    if row["above_threshold"]:
        zh.append(f"海拔 {_fmt(row['elevation_m'])} m > {_fmt(thr)} m")
        en.append(f"elevation {_fmt(row['elevation_m'])} m > {_fmt(thr)} m")
    if row["steep_terrain"]:
        zh.append(f"坡度 {row['slope_deg']:.1f}° > {r['steep_slope_deg']:g}°")
        en.append(f"slope {row['slope_deg']:.1f}° > {r['steep_slope_deg']:g}°")
    if row["deep_valley"]:
        zh.append(f"深山峡谷: {_fmt(r['relief_window_m'])} m 内地势高出 {_fmt(row['valley_depth_m'])} m")
        en.append(f"deep valley: ground rises {_fmt(row['valley_depth_m'])} m within "
                  f"{_fmt(r['relief_window_m'])} m")
    if not known:
        zh.append("道路通达情况未知")
        en.append("road access unknown")
    elif not bool(row["tongchang"]):
        if not pd.isna(row.get("tongda")) and not bool(row["tongda"]):
            zh.append("不通公路")
            en.append("no motorable road")
        else:
            zh.append("无硬化路")
            en.append("no hardened road")
    elif not pd.isna(row["remote"]) and bool(row["remote"]):
        zh.append(f"距乡镇驻地 {row['network_km_to_seat']:.1f} km > {r['remote_km_to_seat']:g} km")
        en.append(f"{row['network_km_to_seat']:.1f} km by road to the township seat > "
                  f"{r['remote_km_to_seat']:g} km")
    if deep_poverty:
        zh.append("深度贫困村")
        en.append("deep-poverty village")
    elif row["in_poverty_village"]:
        zh.append("贫困村")
        en.append("poverty village")
    return zh, en


# ---------------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------------

def with_poor_population(s: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """``s`` with ``poor_population`` (registered poor, 建档立卡贫困人口), its basis and
    ``accompanying_population`` (the other residents, who move with a settlement: 同步搬迁).

    Layers read by :func:`kaizhou_gis.layers.load_layers` already carry ``poor_population``
    (estimated there when the layer lacks it); a frame built otherwise gets the same estimate.
    """
    s = s.copy()
    if "poor_population" not in s.columns or s["poor_population"].isna().any():
        from kaizhou_gis.layers import estimate_poor_population

        notes: list[str] = []
        s = estimate_poor_population(s, plan, [], notes, [])
        for n in notes:
            log.warning("%s", n)
    if "poor_population_basis" not in s.columns:
        s["poor_population_basis"] = "layer"
    s["poor_population"] = pd.to_numeric(s["poor_population"], errors="coerce").fillna(0).astype("int64")
    s["accompanying_population"] = (s["population"] - s["poor_population"]).clip(lower=0).astype("int64")
    return s


def schedule_years(candidates: pd.DataFrame, quotas: dict[str, int], *,
                   count: str | None = None) -> pd.Series:
    """Year of relocation of each candidate settlement, by priority, within the yearly quotas.

    The plan's quotas (ch.5: 2016 7,600; 2017 7,000; 2018 2,300) count **registered poor people**
    (建档立卡贫困人口), so each settlement counts with its ``poor_population``; its other residents
    move with it (同步搬迁) and do not use the quota. Settlements are taken in order of falling
    ``priority`` (then falling elevation, then ``settlement_id``). Each year is filled in that
    order: a settlement goes into the first year whose remaining quota still holds all its
    registered poor (whole settlements only); one that fits no year is left unscheduled (the
    remainder). No year exceeds its quota, and a settlement is only passed over for a
    lower-priority one when it no longer fits the remaining quota. A settlement without
    registered poor people uses no quota and is not scheduled (nothing of the plan's target moves
    with it).

    Parameters
    ----------
    candidates
        Candidate settlements with ``settlement_id``, ``poor_population`` (or ``population``),
        ``priority`` and ``elevation_m``.
    quotas
        Registered poor people per year, e.g. ``{"2016": 7600, "2017": 7000, "2018": 2300}``.
    count : str, optional
        The column counted against the quotas (default ``poor_population`` when present, else
        ``population``).

    Returns
    -------
    pandas.Series
        ``Int64`` years aligned to ``candidates.index``; NA for the remainder.
    """
    years = sorted(quotas, key=int)
    left = {y: int(quotas[y]) for y in years}
    order = candidates.assign(_e=candidates["elevation_m"].fillna(-1e9),
                              _id=candidates["settlement_id"].astype(str)).sort_values(
        ["priority", "_e", "_id"], ascending=[False, False, True], kind="mergesort")
    out = pd.Series(pd.NA, index=candidates.index, dtype="Int64")
    if count is None:
        count = "poor_population" if "poor_population" in candidates.columns else "population"
    for idx, people in zip(order.index, order[count].astype(int)):
        if people <= 0 and count == "poor_population":
            continue
        for y in years:
            if people <= left[y]:
                out[idx] = int(y)
                left[y] -= people
                break
    return out


# ---------------------------------------------------------------------------------------------
# Sites
# ---------------------------------------------------------------------------------------------

def _paved(roads: gpd.GeoDataFrame, plan: Plan) -> gpd.GeoDataFrame:
    paved = {str(v).strip().lower() for v in plan["access.paved_surfaces"]}
    return roads[roads["surface"].astype(str).str.strip().str.lower().isin(paved)]


def _nearest_distance(points: gpd.GeoSeries, targets: gpd.GeoSeries) -> np.ndarray:
    """Distance from each point to the nearest target geometry (NaN when there are none)."""
    out = np.full(len(points), np.nan)
    targets = targets[~(targets.isna() | targets.is_empty)]
    if len(points) == 0 or len(targets) == 0:
        return out
    (ip, it), dist = targets.sindex.nearest(points, return_distance=True, return_all=False)
    out[ip] = dist
    return out


def grid_sites(boundary: gpd.GeoDataFrame, *, spacing_m: float) -> gpd.GeoSeries:
    """Points of a square grid of ``spacing_m`` over the boundary's bounding box (work CRS)."""
    if spacing_m <= 0:
        raise StepError(f"relocation.sites.candidate_spacing_m must be positive; got {spacing_m}.")
    minx, miny, maxx, maxy = boundary.total_bounds
    xs = np.arange(minx + spacing_m / 2, maxx, spacing_m)
    ys = np.arange(maxy - spacing_m / 2, miny, -spacing_m)
    X, Y = np.meshgrid(xs, ys)
    return gpd.GeoSeries(gpd.points_from_xy(X.ravel(), Y.ravel()), crs=boundary.crs)


def evaluate_sites(points: gpd.GeoDataFrame, *, layers, plan: Plan, dem) -> gpd.GeoDataFrame:
    """Vetoes and suitability of candidate resettlement sites.

    Parameters
    ----------
    points
        Site points in the work CRS; a ``township_code`` column is used when present, otherwise
        the township polygon holding the point (or the nearest one) gives it.
    layers
        The :class:`~kaizhou_gis.layers.Layers` (boundary, townships, seats, villages, roads).
    plan
        The plan (``relocation`` and ``relocation.sites``).
    dem
        Open DEM dataset.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``points`` with ``township_code``, ``elevation_m``, ``slope_deg``,
        ``road_distance_m``, ``seat_distance_m``, ``village_distance_m``, ``vetoes`` (text, ""
        when none) and ``suitability`` (0-100, weighted by ``relocation.sites.weights``).
    """
    sp = plan.section("relocation.sites")
    thr = float(plan["relocation.threshold_m"])
    g = points.copy()
    tw = layers.townships[["township_code", layers.townships.geometry.name]].copy()
    tw["township_code"] = tw["township_code"].astype(str)
    if "township_code" not in g.columns or g["township_code"].isna().all():
        g["township_code"] = ""
    g["township_code"] = g["township_code"].fillna("").astype(str)
    blank = g["township_code"] == ""
    if blank.any():
        j = gpd.sjoin_nearest(g.loc[blank, [g.geometry.name]], tw, how="left")
        j = j[~j.index.duplicated()]
        g.loc[blank, "township_code"] = j["township_code"].reindex(g.index[blank]).fillna("").astype(str)
    t = point_terrain(g.geometry, dem, slope_radius_m=float(plan["relocation.slope_window_m"]),
                      relief_radius_m=float(plan["relocation.slope_window_m"]))
    g["elevation_m"] = t["elevation_m"]
    g["slope_deg"] = t["slope_deg"].round(2)
    # the distances are shown to 0.1 m; the suitability is computed from them unrounded, so that
    # coordinate noise far below 0.1 m (a File Geodatabase's 0.1 mm grid) cannot move a
    # distance across a rounding boundary and reorder the sites
    d_road = _nearest_distance(g.geometry, _paved(layers.roads, plan).geometry)
    g["road_distance_m"] = np.round(d_road, 1)
    seats = layers.township_seats.copy()
    seats["township_code"] = seats["township_code"].astype(str)
    seat_geom = seats.drop_duplicates("township_code").set_index("township_code").geometry
    own_seat = gpd.GeoSeries(g["township_code"].map(seat_geom), index=g.index, crs=g.crs)
    d_seat = np.asarray(g.geometry.distance(own_seat, align=False), dtype="float64")
    no_seat = ~np.isfinite(d_seat)
    if no_seat.any():
        d_seat[no_seat] = _nearest_distance(g.geometry[no_seat], seats.geometry)
    g["seat_distance_m"] = np.round(d_seat, 1)
    d_village = _nearest_distance(g.geometry, layers.villages.geometry)
    g["village_distance_m"] = np.round(d_village, 1)
    inside = shapely.contains_xy(shapely.union_all(layers.boundary.geometry.to_numpy()),
                                 g.geometry.x.to_numpy(), g.geometry.y.to_numpy())
    vetoes = []
    for ins, e, s in zip(inside, g["elevation_m"].to_numpy(), g["slope_deg"].to_numpy()):
        v = [] if ins else ["outside the boundary"]
        if np.isnan(e):
            v.append("no elevation")
        elif e > thr:
            v.append(f"elevation {_fmt(e)} m > {_fmt(thr)} m")
        if not np.isnan(s) and s > sp["max_slope_deg"]:
            v.append(f"slope {s:.1f}° > {sp['max_slope_deg']:g}°")
        vetoes.append("; ".join(v))
    g["vetoes"] = vetoes
    w = sp["weights"]
    parts = {
        "slope": (1 - g["slope_deg"] / float(sp["max_slope_deg"])).clip(0, 1),
        "road": pd.Series(1 - d_road / float(sp["road_distance_scale_m"]), index=g.index).clip(0, 1),
        "seat": pd.Series(1 - d_seat / float(sp["seat_distance_scale_m"]), index=g.index).clip(0, 1),
        "villages": pd.Series(1 - d_village / float(sp["village_distance_scale_m"]),
                              index=g.index).clip(0, 1),
    }
    g["suitability"] = (100.0 * sum(w[k] * parts[k].fillna(0) for k in w)).round(1)
    return g


#: Distances (m) within this of each other are equal in the site rules: grid points two steps
#: apart are ``2 x candidate_spacing_m`` apart up to float noise (a few 1e-12 m, decided by the
#: grid's origin, i.e. by the boundary's coordinates), so ``>= min_site_spacing_m`` must not
#: depend on which side of the value the noise falls.
SPACING_TOL_M = 0.001


def _spaced(xy: np.ndarray, chosen: list[np.ndarray], min_spacing_m: float) -> bool:
    """True when point ``xy`` is at least ``min_spacing_m`` (less ``SPACING_TOL_M``) from every
    point in ``chosen``."""
    if not chosen:
        return True
    c = np.asarray(chosen)
    return bool(np.hypot(c[:, 0] - xy[0], c[:, 1] - xy[1]).min() >= min_spacing_m - SPACING_TOL_M)


def _veto_kinds(vetoes: pd.Series) -> dict[str, int]:
    v = vetoes.astype(str)
    return {"elevation": int(v.str.contains("elevation").sum()),
            "slope": int(v.str.contains("slope").sum()),
            "other": int(v.str.contains("outside|no elevation").sum())}


def select_sites(evaluated: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, *,
                 capacity_households: int, min_spacing_m: float, max_distance_km: float,
                 own_before_neighbours: bool = True,
                 township_names: dict[str, str] | None = None
                 ) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Resettlement sites sized to each township's demand, where the demand is.

    1. Each township with households to house gets ``ceil(households / capacity_households)``
       sites: its unvetoed grid points in order of falling suitability, each at least
       ``min_spacing_m`` from the township's sites already taken.
    2. With ``own_before_neighbours``, a township short of sites first takes its remaining
       unvetoed points, nearest to its settlements first, closer than ``min_spacing_m``
       (``spacing_relaxed``; in effect a larger site) before using other townships' ground.
    3. What is still short is covered by unvetoed points of *other* townships (``site_role`` =
       "cover", ``serves_township_code`` = the township covered), nearest to the township's
       households still without room (smallest household-weighted mean distance), each at least
       ``min_spacing_m`` from every site taken so far; then, as a last resort, without the
       spacing. A site's room (``capacity_households``) is given to the township's nearest
       settlements within ``max_distance_km``, and a point is only taken when it is within that
       distance of a settlement still without room. Townships are served most constrained first
       (fewest free feasible points in reach per site still needed).
    What still cannot be covered is the township's ``shortfall_households``.

    Parameters
    ----------
    evaluated
        Output of :func:`evaluate_sites` (``township_code``, ``suitability``, ``vetoes``).
    demand
        Settlements to house (``township_code``, ``households``), same CRS.
    capacity_households
        Households per generated site (> 0).
    min_spacing_m, max_distance_km
        Spacing of the sites; longest allowed move.
    own_before_neighbours
        Step 2 above (``relocation.sites.own_points_before_neighbours``).
    township_names
        Township code -> name, for the site names and the coverage notes.

    Returns
    -------
    (sites, coverage)
        ``sites``: the chosen points with ``site_id`` (``S<host township>-<k>``), ``name``,
        ``rank`` (k), ``capacity_households``, ``serves_township_code`` (the township whose
        demand the site was chosen for), ``for_township`` (its name), ``site_role`` ("own" or
        "cover") and ``source``. ``coverage``: one row per township with demand:
        ``township_code``, ``demand_households``, ``sites_needed``, ``feasible_points``,
        ``own_sites``, ``cover_sites``, ``cover_site_ids``, ``capacity_for_township``,
        ``shortfall_households``, ``site_note``.
    """
    cap = int(capacity_households)
    if cap <= 0:
        raise StepError(f"relocation.sites.capacity_households must be positive; got {cap}.")
    names = township_names or {}
    ev = evaluated.copy()
    ev["township_code"] = ev["township_code"].astype(str)
    ok = ev[ev["vetoes"] == ""].sort_values(["township_code", "suitability"],
                                            ascending=[True, False], kind="mergesort")
    xy = np.column_stack([ok.geometry.x.to_numpy(), ok.geometry.y.to_numpy()]) if len(ok) \
        else np.zeros((0, 2))
    pos = {i: k for k, i in enumerate(ok.index)}
    d = demand[demand["households"] > 0]
    hh = d.groupby(d["township_code"].astype(str))["households"].sum().astype(int)
    need = {c: -(-int(v) // cap) for c, v in hh.items()}
    picks: list[tuple[Any, str, str, bool]] = []  # (index, serves township, role, spacing relaxed)
    own: dict[str, int] = {}
    for code in sorted(hh.index):
        chosen: list[np.ndarray] = []
        for i in ok.index[ok["township_code"].to_numpy() == code]:
            if len(chosen) >= need[code]:
                break
            if _spaced(xy[pos[i]], chosen, min_spacing_m):
                chosen.append(xy[pos[i]])
                picks.append((i, code, "own", False))
        own[code] = len(chosen)
    own_spaced = dict(own)
    taken = {i for i, _, _, _ in picks}
    all_xy = [xy[pos[i]] for i in taken]
    cover: dict[str, list[Any]] = {c: [] for c in hh.index}
    relaxed_n: dict[str, int] = {c: 0 for c in hh.index}
    max_m = max_distance_km * 1000.0
    tw_ok = ok["township_code"].to_numpy()
    suit_all = ok["suitability"].to_numpy()
    # households of each settlement not yet given room at a site chosen for its township; a
    # site's room goes to the township's nearest settlements within reach (a siting rule only:
    # the households themselves are placed by the assignment LP)
    dist: dict[str, np.ndarray] = {}
    rem: dict[str, np.ndarray] = {}
    for code in hh.index:
        pts = d[d["township_code"].astype(str) == code]
        sx, sy = pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()
        dist[code] = np.hypot(xy[:, 0][:, None] - sx[None, :], xy[:, 1][:, None] - sy[None, :])
        rem[code] = pts["households"].to_numpy(dtype=float)

    def give_room(code: str, k: int) -> None:
        room = float(cap)
        for j in np.argsort(dist[code][k], kind="stable"):
            if room <= 0 or dist[code][k, j] > max_m:
                break
            take = min(room, rem[code][j])
            rem[code][j] -= take
            room -= take

    for i, code, _, _ in picks:
        give_room(code, pos[i])

    def fill(code: str, relaxed: bool, own_only: bool = False) -> None:
        while rem[code].sum() > 0:
            w = rem[code]
            free = np.array([i not in taken for i in ok.index], dtype=bool)
            reach = (dist[code][:, w > 0] <= max_m).any(axis=1)
            mean_d = dist[code] @ w / w.sum()
            # strict pass: other townships' points (the own ones failed the spacing already);
            # relaxed pass: the township's own free points first, then the nearest elsewhere
            own_first = (tw_ok != code).astype(int) if relaxed else np.zeros(len(ok), dtype=int)
            pick = None
            for k in np.lexsort((-suit_all, mean_d, own_first)):
                if (free[k] and reach[k] and (not own_only or tw_ok[k] == code)
                        and (relaxed or _spaced(xy[k], all_xy, min_spacing_m))):
                    pick = k
                    break
            if pick is None:
                return
            taken.add(ok.index[pick])
            all_xy.append(xy[pick])
            is_own = tw_ok[pick] == code
            picks.append((ok.index[pick], code, "own" if is_own else "cover", relaxed))
            if is_own:
                own[code] += 1
            else:
                cover[code].append(ok.index[pick])
            relaxed_n[code] += int(relaxed)
            give_room(code, pick)

    # most constrained townships first: fewest free feasible points in reach per site short
    def order() -> list[str]:
        free = np.array([i not in taken for i in ok.index], dtype=bool)
        short = [c for c in hh.index if rem[c].sum() > 0]
        n_free = {c: int((free & (dist[c][:, rem[c] > 0] <= max_m).any(axis=1)).sum()) for c in short}
        return sorted(short, key=lambda c: (n_free[c] - math.ceil(rem[c].sum() / cap),
                                            -rem[c].sum(), c))

    if own_before_neighbours:
        for code in order():
            fill(code, True, own_only=True)
    for relaxed in (False, True):
        for code in order():
            fill(code, relaxed)
    left = {c: int(rem[c].sum()) for c in hh.index}
    left_over = {c: max(left[c], 0) for c in hh.index}

    out = ok.loc[[i for i, _, _, _ in picks]].copy()
    out["serves_township_code"] = [c for _, c, _, _ in picks]
    out["site_role"] = [r for _, _, r, _ in picks]
    out["spacing_relaxed"] = [x for _, _, _, x in picks]
    out["_own_first"] = (out["site_role"] != "own").astype(int)
    out["_suit"] = -out["suitability"]
    out = out.sort_values(["township_code", "_own_first", "_suit"], kind="mergesort")
    out["rank"] = out.groupby("township_code").cumcount() + 1
    out["site_id"] = [f"S{c}-{k}" for c, k in zip(out["township_code"], out["rank"])]
    out["for_township"] = [names.get(c, c) for c in out["serves_township_code"]]
    out["name"] = [f"候选安置点 {c}-{k}" if role == "own" else f"候选安置点 {c}-{k}(安置{names.get(s, s)})"
                   for c, k, role, s in zip(out["township_code"], out["rank"], out["site_role"],
                                             out["serves_township_code"])]
    out["capacity_households"] = cap
    out["source"] = "generated"
    out = out.drop(columns=["_own_first", "_suit"])
    site_of = dict(zip(out.index, out["site_id"]))

    rows = []
    for code in sorted(hh.index):
        mine = ev[ev["township_code"] == code]
        n_ok = int((mine["vetoes"] == "").sum())
        kinds = _veto_kinds(mine.loc[mine["vetoes"] != "", "vetoes"])
        name = names.get(code, code)
        if n_ok == 0:
            note = (f"no feasible site of its own ({len(mine)} grid point(s), all vetoed: "
                    f"{kinds['elevation']} above the elevation threshold, {kinds['slope']} too steep)")
        elif own_spaced[code] < need[code]:
            note = (f"too few feasible points at {min_spacing_m:,.0f} m spacing ({n_ok} feasible, "
                    f"{own_spaced[code]} site(s) of {need[code]} needed)")
        else:
            note = "own sites"
        if cover[code]:
            note += f"; covered by {len(cover[code])} site(s) in neighbouring townships"
        if relaxed_n[code]:
            note += (f"; {relaxed_n[code]} site(s) closer than {min_spacing_m:,.0f} m to another "
                     f"(the township's own remaining feasible points, or no spaced feasible point "
                     f"left within {max_distance_km:g} km)")
        if left_over[code]:
            note += (f"; {left_over[code]:,} households not covered by a site chosen for it "
                     f"(no further feasible point within {max_distance_km:g} km)")
        rows.append({"township_code": code, "township_name": name,
                     "demand_households": int(hh[code]), "sites_needed": need[code],
                     "feasible_points": n_ok, "own_sites": own[code], "cover_sites": len(cover[code]),
                     "cover_site_ids": ";".join(site_of[i] for i in cover[code]),
                     "capacity_for_township": (own[code] + len(cover[code])) * cap,
                     "shortfall_households": left_over[code], "site_note": note})
    coverage = pd.DataFrame(rows, columns=["township_code", "township_name", "demand_households",
                                           "sites_needed", "feasible_points", "own_sites",
                                           "cover_sites", "cover_site_ids", "capacity_for_township",
                                           "shortfall_households", "site_note"])
    return out, _labelled(coverage)


# ---------------------------------------------------------------------------------------------
# Assignment (transportation problem)
# ---------------------------------------------------------------------------------------------

def assign_households(demand: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *, max_distance_km: float,
                      other_township_penalty_km: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign households of settlements to sites at minimum total distance within capacity.

    A transportation linear program solved with HiGHS (dual simplex): variables are the
    households moved from settlement *i* to site *j* for every pair within ``max_distance_km``
    (straight line), plus the households of *i* left unplaced. Cost per household is the distance
    in km, plus ``other_township_penalty_km`` when the site is neither in the settlement's
    township nor chosen to cover it (``serves_township_code``, optional); an unplaced
    household costs more than any chain of placements, so the number placed is maximal; households
    of scheduled settlements (``schedule_year`` given) are placed before unscheduled ones, and
    among the rest those of higher ``priority`` are placed first. The
    constraint matrix is totally unimodular and the supplies and capacities are integers, so the
    simplex vertex solution is integral.

    Parameters
    ----------
    demand
        Settlements with ``settlement_id``, ``township_code``, ``households`` (int >= 0) and
        optionally ``priority`` (0-100) and ``schedule_year``, in a metric CRS.
    sites
        Sites with ``site_id``, ``township_code``, ``capacity_households`` and optionally
        ``serves_township_code``, same CRS.
    max_distance_km
        Longest allowed move.
    other_township_penalty_km
        Extra cost of a site in another township.

    Returns
    -------
    (assignment, unassigned)
        ``assignment``: settlement_id, township_code, site_id, site_township_code, households,
        distance_km, same_township (the site lies in the settlement's township),
        site_for_own_township (it lies there or was chosen to cover that township); one row per
        pair with households > 0. ``unassigned``: settlement_id, township_code, households,
        reason ("no site within N km" or "sites within N km are full"), reason_zh,
        reason_detail (nearest site, or the sites and capacity in reach); one row per
        settlement with unplaced households.
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    cols_a = ["settlement_id", "township_code", "site_id", "site_township_code", "households",
              "distance_km", "same_township", "site_for_own_township"]
    cols_u = ["settlement_id", "township_code", "households", "reason", "reason_zh", "reason_detail"]
    d = demand[demand["households"] > 0]
    h = d["households"].astype(int).to_numpy()
    n, m = len(d), len(sites)
    cap = sites["capacity_households"].astype(int).to_numpy() if m else np.zeros(0, dtype=int)
    if (cap < 0).any():
        bad = sites.loc[cap < 0, "site_id"].tolist()
        raise LayerError(f"sites: column capacity_households is negative for {format_ids(bad)}; "
                         f"give a capacity of 0 or more households.")
    max_m = max_distance_km * 1000.0
    if n and m:
        ii, jj = sites.sindex.query(d.geometry, predicate="dwithin", distance=max_m)
    else:
        ii = jj = np.zeros(0, dtype=int)
    dist_km = (np.asarray(d.geometry.iloc[ii].distance(sites.geometry.iloc[jj], align=False),
                          dtype="float64") / 1000.0) if len(ii) else np.zeros(0)
    keep = dist_km <= max_distance_km
    ii, jj, dist_km = ii[keep], jj[keep], dist_km[keep]
    # the problem in a canonical order (settlement row, then site row), so that among equally
    # good solutions the solver's choice depends on the data, not on the spatial index's order
    order = np.lexsort((jj, ii))
    ii, jj, dist_km = ii[order], jj[order], dist_km[order]
    d_tw = d["township_code"].astype(str).to_numpy()
    same = d_tw[ii] == sites["township_code"].astype(str).to_numpy()[jj]
    serves = (sites["serves_township_code"].fillna("").astype(str).to_numpy()
              if "serves_township_code" in sites.columns else np.full(m, "", dtype=object))
    for_own = same | (d_tw[ii] == serves[jj])
    cost = dist_km + np.where(for_own, 0.0, other_township_penalty_km)
    x_pairs = np.zeros(len(ii))
    unplaced = h.astype(float)
    if n and len(ii):
        c_max = max_distance_km + other_township_penalty_km + 1.0
        big = (m + 1) * c_max
        prio = (d["priority"].fillna(0).to_numpy(dtype=float).clip(0, 100) if "priority" in d.columns
                else np.zeros(n))
        tier = (d["schedule_year"].notna().to_numpy(dtype=float) if "schedule_year" in d.columns
                else np.zeros(n))
        c = np.concatenate([cost, big * (1.0 + prio / 100.0 + 2.0 * tier)])
        k = len(ii)
        a_eq = coo_matrix((np.ones(k + n), (np.concatenate([ii, np.arange(n)]),
                                            np.arange(k + n))), shape=(n, k + n)).tocsr()
        a_ub = coo_matrix((np.ones(k), (jj, np.arange(k))), shape=(m, k + n)).tocsr()
        sol = linprog(c, A_ub=a_ub, b_ub=cap.astype(float), A_eq=a_eq, b_eq=h.astype(float),
                      bounds=(0, None), method="highs-ds")
        if sol.status != 0:
            raise StepError(f"relocation: the assignment problem could not be solved "
                            f"({sol.message}); check site capacities and settlement households.")
        x = sol.x
        if np.abs(x - np.round(x)).max() > 1e-6:
            raise StepError("relocation: the assignment solver returned a fractional solution; "
                            "report this as a bug.")
        x = np.round(x)
        x_pairs, unplaced = x[:k], x[k:]
    sid = d["settlement_id"].astype(str).to_numpy()
    site_ids = sites["site_id"].astype(str).to_numpy() if m else np.zeros(0, dtype=object)
    used = x_pairs > 0
    site_tw = sites["township_code"].astype(str).to_numpy() if m else np.zeros(0, dtype=object)
    assignment = pd.DataFrame({
        "settlement_id": sid[ii[used]], "township_code": d_tw[ii[used]],
        "site_id": site_ids[jj[used]], "site_township_code": site_tw[jj[used]],
        "households": x_pairs[used].astype("int64"), "distance_km": dist_km[used].round(2),
        "same_township": same[used], "site_for_own_township": for_own[used]}, columns=cols_a)
    # rows by settlement, then by the unrounded distance (the rounded one can tie, and which of
    # two sites 0.01 km apart comes first must not depend on a rounding boundary), then site
    assignment["_d"] = dist_km[used]
    assignment = (assignment.sort_values(["settlement_id", "_d", "site_id"], kind="mergesort")
                  .drop(columns="_d").reset_index(drop=True))
    rows = []
    n_reach = np.bincount(ii, minlength=n) if n else np.zeros(0, dtype=int)
    cap_reach = np.bincount(ii, weights=cap[jj].astype(float), minlength=n) if n else np.zeros(0)
    lacking = np.flatnonzero(unplaced > 0)
    nearest_km = (_nearest_distance(d.geometry.iloc[lacking], sites.geometry) / 1000.0
                  if len(lacking) and m else np.full(len(lacking), np.nan))
    for t, near in zip(lacking, nearest_km):
        near_txt = f"nearest site {near:.1f} km" if np.isfinite(near) else "no site at all"
        if n_reach[t] == 0:
            reason = f"no site within {max_distance_km:g} km"
            reason_zh = f"{max_distance_km:g} 公里内无安置点"
            detail = near_txt
        else:
            reason = f"sites within {max_distance_km:g} km are full"
            reason_zh = f"{max_distance_km:g} 公里内安置点已满"
            detail = (f"{int(n_reach[t])} site(s) within {max_distance_km:g} km, "
                      f"{int(cap_reach[t]):,} households of capacity, taken by other settlements "
                      f"(scheduled, then higher-priority settlements are placed first)")
        rows.append((sid[t], d_tw[t], int(unplaced[t]), reason, reason_zh, detail))
    unassigned = pd.DataFrame(rows, columns=cols_u)
    return _labelled(assignment), _labelled(unassigned)


def network_distance_km(origins: gpd.GeoSeries, targets: gpd.GeoSeries, edges: gpd.GeoDataFrame
                        ) -> np.ndarray:
    """Road-network distance (km) from each origin to the target of the same position.

    Each point is projected onto its nearest edge; the distance is the straight leg from the
    point to that edge, the way along the network (shortest path over ``length_m`` between the
    edges' end nodes ``u``/``v``, or directly along a shared edge) and the leg from the edge to
    the other point. NaN where the two points' edges are not connected, or without edges.

    Parameters
    ----------
    origins, targets
        Points of equal length, in the edges' (metric) CRS.
    edges
        Network edges with ``u``, ``v`` (node ids), ``length_m`` and line geometries drawn from
        ``u`` to ``v`` (the ``access`` step's ``edges``).

    Returns
    -------
    numpy.ndarray
        Kilometres, one per pair.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n = len(origins)
    out = np.full(n, np.nan)
    if n == 0 or edges is None or len(edges) == 0:
        return out
    e = edges[~(edges.geometry.isna() | edges.geometry.is_empty)].reset_index(drop=True)
    u = e["u"].to_numpy(dtype=np.int64)
    v = e["v"].to_numpy(dtype=np.int64)
    L = e["length_m"].to_numpy(dtype=float)
    # undirected graph; parallel edges keep the shortest length
    pair = pd.DataFrame({"a": np.minimum(u, v), "b": np.maximum(u, v), "w": L})
    pair = pair[pair["a"] != pair["b"]].groupby(["a", "b"], as_index=False)["w"].min()
    n_nodes = int(max(u.max(), v.max())) + 1
    graph = coo_matrix((pair["w"].to_numpy(), (pair["a"].to_numpy(), pair["b"].to_numpy())),
                       shape=(n_nodes, n_nodes)).tocsr()

    def snap(points: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the access step's snapping rule: equally near edges (a point on a junction) are
        # decided canonically, not by float noise
        sn = snap_to_edges(gpd.GeoSeries(points.to_numpy()), e)
        edge = sn["edge"].to_numpy(dtype=np.int64)
        off = sn["snap_distance_m"].to_numpy(dtype=float)
        along = np.full(len(points), np.nan)
        ok = edge >= 0
        along[ok] = np.clip(shapely.line_locate_point(e.geometry.to_numpy()[edge[ok]],
                                                      points.to_numpy()[ok]), 0, None)
        along[ok] = np.minimum(along[ok] * L[edge[ok]] / np.maximum(e.geometry.length.to_numpy()[edge[ok]], 1e-9),
                               L[edge[ok]])
        return edge, along, off

    eo, ao, oo = snap(origins)
    et, at, ot = snap(targets)
    ok = (eo >= 0) & (et >= 0)
    if not ok.any():
        return out
    # shortest paths from the end nodes of the targets' edges (few sites, many settlements)
    src = np.unique(np.concatenate([u[et[ok]], v[et[ok]]]))
    dmat = dijkstra(graph, directed=False, indices=src)
    row = {int(s): k for k, s in enumerate(src)}
    for k in np.flatnonzero(ok):
        te, oe = et[k], eo[k]
        t_ends = ((u[te], at[k]), (v[te], L[te] - at[k]))
        o_ends = ((u[oe], ao[k]), (v[oe], L[oe] - ao[k]))
        best = min(tp + dmat[row[int(tn)], on] + op for tn, tp in t_ends for on, op in o_ends)
        if te == oe:
            best = min(best, abs(at[k] - ao[k]))
        if np.isfinite(best):
            out[k] = (best + oo[k] + ot[k]) / 1000.0
    return out


# ---------------------------------------------------------------------------------------------
# Roll-ups and the plan comparison
# ---------------------------------------------------------------------------------------------

def rollup_villages(s: pd.DataFrame, villages: pd.DataFrame) -> pd.DataFrame:
    """Settlements, candidates, households and people per administrative village."""
    v = villages.drop(columns=villages.geometry.name) if isinstance(villages, gpd.GeoDataFrame) else villages
    v = pd.DataFrame(v).drop_duplicates("village_code")
    base = pd.DataFrame({"village_code": v["village_code"].astype(str),
                         "village_name": v["name"].astype(str),
                         "township_code": v["township_code"].astype(str),
                         "poverty_village": v.get("poverty_village", False)})
    g = _group(s, "village_code")
    out = base.merge(g, on="village_code", how="outer")
    # settlements whose village is not in the villages layer keep a row of their own
    out["village_name"] = out["village_name"].fillna("")
    out["township_code"] = out["township_code"].fillna("")
    out["poverty_village"] = out["poverty_village"].fillna(False).astype(bool)
    out = _fill_counts(out)
    return _labelled(out.sort_values(["township_code", "village_code"], kind="mergesort")
                     .reset_index(drop=True))


def rollup_townships(s: pd.DataFrame, townships: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Settlements, candidates, households, people and sites per township."""
    base = pd.DataFrame({"township_code": townships["township_code"].astype(str),
                         "township_name": townships["name"].astype(str)}).drop_duplicates("township_code")
    out = base.merge(_group(s, "township_code"), on="township_code", how="outer")
    out["township_name"] = out["township_name"].fillna("")
    if len(sites):
        sg = sites.groupby(sites["township_code"].astype(str)).agg(
            sites=("site_id", "size"), site_capacity_households=("capacity_households", "sum"))
        out = out.merge(sg, left_on="township_code", right_index=True, how="left")
    else:
        out["sites"] = 0
        out["site_capacity_households"] = 0
    out = _fill_counts(out)
    return _labelled(out.sort_values("township_code", kind="mergesort").reset_index(drop=True))


def _group(s: pd.DataFrame, key: str) -> pd.DataFrame:
    c = s["relocation_candidate"].astype(bool)
    t = pd.DataFrame({
        key: s[key].astype(str),
        "settlements": 1,
        "settlements_with_elevation": s["elevation_m"].notna().astype(int),
        "above_threshold_settlements": s["above_threshold"].astype(int),
        "candidates": c.astype(int),
        "candidate_households": s["households"].where(c, 0),
        "candidate_population": s["population"].where(c, 0),
        "candidate_poor_population": s["poor_population"].where(c, 0),
        "candidate_accompanying_population": s["accompanying_population"].where(c, 0),
        "scheduled_population": s["population"].where(s["schedule_year"].notna(), 0),
        "scheduled_poor_population": s["poor_population"].where(s["schedule_year"].notna(), 0),
        "scheduled_accompanying_population": s["accompanying_population"].where(
            s["schedule_year"].notna(), 0),
        "max_elevation_m": s["elevation_m"],
    })
    agg = {k: "sum" for k in t.columns if k not in (key, "max_elevation_m")}
    agg["max_elevation_m"] = "max"
    return t.groupby(key, sort=True).agg(agg).reset_index()


def _fill_counts(df: pd.DataFrame) -> pd.DataFrame:
    for col in ("settlements", "settlements_with_elevation", "above_threshold_settlements",
                "candidates", "candidate_households", "candidate_population",
                "candidate_poor_population", "candidate_accompanying_population",
                "scheduled_population", "scheduled_poor_population",
                "scheduled_accompanying_population", "sites", "site_capacity_households"):
        if col in df.columns:
            df[col] = df[col].fillna(0).astype("int64")
    return df


def plan_comparison(s: pd.DataFrame, plan: Plan, *, township: str | None) -> dict[str, Any]:
    """The step's figures beside the plan's (ch.5), with what the comparison means."""
    r = plan.section("relocation")
    n = len(s)
    n_elev = int(s["elevation_m"].notna().sum())
    above = s["above_threshold"].astype(bool)
    cand = s["relocation_candidate"].astype(bool)
    from kaizhou_gis.provenance import is_synthetic_text

    synthetic = int(s.get("source", pd.Series("", index=s.index)).map(is_synthetic_text).sum())
    share = 100.0 * above.sum() / n_elev if n_elev else float("nan")
    people_above = int(s.loc[above, "population"].sum())
    people_cand = int(s.loc[cand, "population"].sum())
    poor_cand = int(s.loc[cand, "poor_population"].sum())
    poor_all = int(s["poor_population"].sum())
    estimated = int((s.get("poor_population_basis", pd.Series("", index=s.index)) == "estimated").sum())
    incidence = float(plan["baseline.poverty_incidence_pct"])
    notes = [
        f"The plan counts {r['outmigration_natural_villages']:,} natural villages in the out-migration "
        f"area ({r['outmigration_townships']} townships, {r['outmigration_villages']} administrative "
        f"villages), {r['natural_villages_above_threshold']} of them ({r['share_above_threshold_pct']} %) "
        f"above {r['threshold_m']:g} m. Here every settlement of the layer is tested, so the shares "
        f"have different denominators; the count above the threshold is the comparable figure.",
        f"The plan's {r['people_target']:,} people (ch.5, yearly quotas "
        + ", ".join(f"{y} {q:,}" for y, q in sorted(r["yearly_people"].items())) +
        ") are registered poor people (建档立卡贫困人口) to be moved, so the schedule counts each "
        f"settlement's registered poor (poor_population) against the quotas. Whole settlements "
        f"move together: their other residents move with them (同步搬迁) and are reported "
        f"separately (accompanying_population), not counted in the quotas. The candidate "
        f"settlements hold {poor_cand:,} registered poor and {people_cand - poor_cand:,} other "
        f"residents ({people_cand:,} people in all); the layer holds {poor_all:,} registered poor "
        f"in all settlements (the plan's district total is {int(plan['baseline.poor_population']):,}).",
    ]
    if estimated:
        notes.append(f"poor_population of {estimated:,} of the {n:,} settlements is ESTIMATED as "
                     f"population x the plan's poverty incidence ({incidence:g} %), because the "
                     f"settlements layer does not give it; give a poor_population column "
                     f"(建档立卡贫困人口) for real figures.")
    if synthetic:
        notes.append(f"{synthetic:,} of the {n:,} settlements are synthesized (their source says so); "
                     f"their positions, households and people are illustrative, not surveyed.")
    if plan.source("relocation.threshold_m").startswith("command-line override"):
        notes.append(f"The threshold was set on the command line to {r['threshold_m']:g} m; the plan's "
                     f"{r['natural_villages_above_threshold']} natural villages and "
                     f"{r['share_above_threshold_pct']} % refer to the plan's own threshold.")
    if township:
        notes.append(f"Limited to township {township}: the plan's figures are for the whole "
                     f"district, so the comparison only shows this township's part.")
    return {
        "settlements_tested": n,
        "settlements_with_elevation": n_elev,
        "above_threshold": {"layer": int(above.sum()), "plan": r["natural_villages_above_threshold"]},
        "share_above_threshold_pct": {
            "layer": None if math.isnan(share) else round(share, 1),
            "plan": r["share_above_threshold_pct"],
            "layer_count_over_plan_base": pct(above.sum(), r["outmigration_natural_villages"], 1)},
        "candidates": {"layer": int(cand.sum()), "by_elevation": int((cand & above).sum()),
                       "by_terrain_and_remoteness_only": int((cand & ~above).sum())},
        "people": {"plan_target": r["people_target"],
                   "plan_target_counts": "registered poor people (建档立卡贫困人口), ch.5",
                   "candidate_poor_population": poor_cand,
                   "candidate_accompanying_population": people_cand - poor_cand,
                   "candidate_population": people_cand,
                   "poor_population_total": poor_all,
                   "poor_population_basis": ("estimated: population x poverty incidence "
                                             f"{incidence:g} % (baseline.poverty_incidence_pct) for "
                                             f"{estimated:,} of {n:,} settlements"
                                             if estimated else "layer (settlements.poor_population)"),
                   "above_threshold_population": people_above,
                   "candidate_poor_over_plan_pct": pct(poor_cand, r["people_target"], 1)},
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------------

def _coverage_user(sites: gpd.GeoDataFrame, demand: pd.DataFrame,
                   names: dict[str, str]) -> pd.DataFrame:
    """Per-township demand beside the capacity of the user's sites in that township."""
    d = demand[demand["households"] > 0]
    hh = d.groupby(d["township_code"].astype(str))["households"].sum().astype(int)
    tw = sites["township_code"].fillna("").astype(str)
    n_sites = tw.value_counts()
    cap = sites["capacity_households"].groupby(tw).sum()
    rows = []
    for code in sorted(hh.index):
        n = int(n_sites.get(code, 0))
        c = int(cap.get(code, 0))
        note = ("no user site in the township" if n == 0 else
                "own sites" if c >= hh[code] else "own sites hold less than the demand")
        rows.append({"township_code": code, "township_name": names.get(code, code),
                     "demand_households": int(hh[code]), "sites_needed": None,
                     "feasible_points": None, "own_sites": n, "cover_sites": 0, "cover_site_ids": "",
                     "capacity_for_township": c, "shortfall_households": max(int(hh[code]) - c, 0),
                     "site_note": note})
    return _labelled(pd.DataFrame(rows, columns=[
        "township_code", "township_name", "demand_households", "sites_needed", "feasible_points",
        "own_sites", "cover_sites", "cover_site_ids", "capacity_for_township",
        "shortfall_households", "site_note"]))


def _access_edges(needs: StepNeeds) -> gpd.GeoDataFrame | None:
    """The road network edges of the ``access`` step (None when unavailable)."""
    try:
        e = needs.result("access").data.edges
    except Exception:  # the step already reported why access is unavailable
        return None
    need = {"u", "v", "length_m"}
    return e if isinstance(e, gpd.GeoDataFrame) and need <= set(e.columns) and len(e) else None


def _site_points(ctx: StepContext, dem, demand: gpd.GeoDataFrame
                 ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, str, pd.DataFrame]:
    """(selected sites, every evaluated site, origin, per-township coverage) for the step.

    ``demand`` holds the settlements whose households the generated sites are sized for.
    """
    plan, layers = ctx.plan, ctx.layers
    sp = plan.section("relocation.sites")
    names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
    user = getattr(layers, "sites", None)
    if user is not None and len(user):
        need = [c for c in ("site_id", "capacity_households") if c not in user.columns]
        if need:
            raise LayerError(f"sites: missing column(s) {', '.join(need)}; a sites layer needs "
                             f"site_id and capacity_households (and township_code, name).")
        u = user.copy()
        u["site_id"] = u["site_id"].astype(str)
        dup = u.loc[u["site_id"].duplicated(), "site_id"].tolist()
        if dup:
            raise LayerError(f"sites: column site_id has duplicates: {format_ids(dup)}; make them unique.")
        u["capacity_households"] = pd.to_numeric(u["capacity_households"], errors="coerce")
        bad = u.loc[u["capacity_households"].isna() | (u["capacity_households"] < 0), "site_id"].tolist()
        if bad:
            raise LayerError(f"sites: column capacity_households is missing or negative for "
                             f"{format_ids(bad)}; give each site a capacity in households (>= 0).")
        u["capacity_households"] = u["capacity_households"].astype("int64")
        ev = evaluate_sites(u, layers=layers, plan=plan, dem=dem)
        ev = ev.sort_values(["township_code", "suitability"], ascending=[True, False], kind="mergesort")
        ev["rank"] = ev.groupby("township_code").cumcount() + 1
        if "name" not in ev.columns:
            ev["name"] = ev["site_id"]
        ev["source"] = "user"
        ev["serves_township_code"] = ev["township_code"]
        ev["for_township"] = ev["township_code"].map(names).fillna("")
        ev["site_role"] = "user"
        return ev, ev, "user sites layer", _coverage_user(ev, demand, names)
    grid = gpd.GeoDataFrame(geometry=grid_sites(layers.boundary, spacing_m=float(sp["candidate_spacing_m"])))
    tw = layers.townships[["township_code", layers.townships.geometry.name]].copy()
    tw["township_code"] = tw["township_code"].astype(str)
    j = gpd.sjoin(grid, tw, how="left", predicate="within")
    j = j[~j.index.duplicated()]
    grid["township_code"] = j["township_code"].reindex(grid.index).fillna("").astype(str)
    inside_any = shapely.contains_xy(shapely.union_all(layers.boundary.geometry.to_numpy()),
                                     grid.geometry.x.to_numpy(), grid.geometry.y.to_numpy())
    grid = grid[inside_any | (grid["township_code"] != "")]
    grid = grid.reset_index(drop=True)
    ev = evaluate_sites(grid, layers=layers, plan=plan, dem=dem)
    sel, coverage = select_sites(ev, demand, capacity_households=int(sp["capacity_households"]),
                                 min_spacing_m=float(sp["min_site_spacing_m"]),
                                 max_distance_km=float(sp["max_distance_km"]),
                                 own_before_neighbours=bool(sp["own_points_before_neighbours"]),
                                 township_names=names)
    ev = ev.copy()
    ev["selected"] = ev.index.isin(sel.index)
    return sel, ev, f"generated grid ({sp['candidate_spacing_m']:g} m spacing)", coverage


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[RelocationData]:
    """The relocation step: candidates, schedule, sites, assignment, roll-ups, plan comparison.

    Writes (paths under ``--out``) ``relocation/settlements.gpkg`` (every settlement),
    ``candidates.csv``/``.xlsx``, ``villages.csv``, ``townships.csv``, ``sites.gpkg`` (layers
    ``sites`` and ``evaluated``), ``assignment.csv``, ``unassigned.csv`` and ``summary.json``.
    For the district; a township's result is :func:`township_view` of the district's.
    """
    plan, layers = ctx.plan, ctx.layers
    check_settings(plan)
    r = plan.section("relocation")
    sp = plan.section("relocation.sites")
    s = settlement_table(layers.settlements, layers.villages, layers.townships)
    s = with_poor_population(s, plan)
    with layers.open_dem() as dem:
        t = point_terrain(s.geometry, dem, slope_radius_m=float(r["slope_window_m"]),
                          relief_radius_m=float(r["relief_window_m"]))
        s["elevation_m"] = t["elevation_m"]
        s["slope_deg"] = t["slope_deg"].round(2)
        s["local_max_m"] = t["local_max_m"]
        s["valley_depth_m"] = t["valley_depth_m"]
        access, access_note = access_columns(needs, s)
        s = flag_settlements(s, plan, access=access)
        cand = s["relocation_candidate"]
        s["schedule_year"] = pd.Series(pd.NA, index=s.index, dtype="Int64")
        s.loc[cand, "schedule_year"] = schedule_years(s[cand], r["yearly_people"])
        size_to = sp["size_to"]
        sizing = s[cand] if size_to == "candidates" else s[cand & s["schedule_year"].notna()]
        sites, evaluated, site_origin, coverage = _site_points(ctx, dem, sizing)
        tws = layers.townships
        tw_terrain = zonal_stats(tws.geometry, dem, threshold_m=float(r["threshold_m"]))
        tw_terrain.index = tws["township_code"].astype(str).to_numpy()
    assignment, unassigned = assign_households(
        s[cand], sites, max_distance_km=float(sp["max_distance_km"]),
        other_township_penalty_km=float(sp["other_township_penalty_km"]))
    short_tw = set(coverage.loc[coverage["shortfall_households"] > 0, "township_code"])
    if len(unassigned) and short_tw:
        hit = unassigned["township_code"].isin(short_tw)
        unassigned.loc[hit, "reason_detail"] = unassigned.loc[hit, "reason_detail"] + (
            f"; every feasible point within {float(sp['max_distance_km']):g} km of the township's "
            f"remaining households is already a site (a larger site, a longer max_distance_km or "
            f"ground above the threshold would be needed)")
    edges = _access_edges(needs) if access is not None else None
    if len(assignment):
        sd = s.drop_duplicates("settlement_id")
        s_geo = pd.Series(sd.geometry.to_numpy(), index=sd["settlement_id"].astype(str))
        site_geo = pd.Series(sites.geometry.to_numpy(), index=sites["site_id"].astype(str))
        assignment["network_km"] = np.round(network_distance_km(
            gpd.GeoSeries(assignment["settlement_id"].map(s_geo).to_numpy(), crs=s.crs),
            gpd.GeoSeries(assignment["site_id"].map(site_geo).to_numpy(), crs=s.crs), edges), 2)
    else:
        assignment["network_km"] = pd.Series(dtype="float64")
    _add_names(assignment, s, sites, layers.townships)
    _add_names(unassigned, s, sites, layers.townships)
    _labelled(assignment)
    _labelled(unassigned)
    per_s = assignment.groupby("settlement_id")
    s["assigned_households"] = s["settlement_id"].astype(str).map(per_s["households"].sum()).fillna(0).astype("int64")
    s["site_ids"] = s["settlement_id"].astype(str).map(
        per_s["site_id"].agg(lambda v: ";".join(v))).fillna("")
    sites = sites.copy()
    sites["assigned_households"] = sites["site_id"].map(
        assignment.groupby("site_id")["households"].sum()).fillna(0).astype("int64")
    parts = {"s": s, "sites": sites, "evaluated": evaluated, "assignment": assignment,
             "unassigned": unassigned, "coverage": coverage, "tws": tws, "tw_terrain": tw_terrain,
             "sizing": sizing, "site_origin": site_origin, "access": access,
             "access_note": access_note, "size_to": size_to}
    return _build(ctx, parts, None)


def township_view(district: StepResult[RelocationData], ctx: StepContext) -> StepResult[RelocationData]:
    """The relocation step for ``ctx.township``: the district's result filtered to the township.

    Candidates, priorities, schedule years, sites and the assignment are the district's (the
    yearly quotas, site capacity and the assignment are decided district-wide); only the rows of
    the township are kept: its settlements, its own sites, sites chosen for it and sites its
    households were assigned to, its assignment and unplaced rows, its coverage row.
    """
    p = district.data.parts
    code = str(ctx.township)
    s = p["s"][p["s"]["township_code"].astype(str) == code].copy()
    assignment = p["assignment"][p["assignment"]["township_code"].astype(str) == code]
    sites = p["sites"]
    used = set(assignment["site_id"].astype(str))
    sites = sites[(sites["township_code"].astype(str) == code)
                  | (sites["serves_township_code"].astype(str) == code)
                  | sites["site_id"].astype(str).isin(used)]
    tws = p["tws"][p["tws"]["township_code"].astype(str) == code]
    parts = dict(p, s=s, sites=sites, assignment=assignment,
                 evaluated=p["evaluated"][p["evaluated"]["township_code"].astype(str) == code],
                 unassigned=p["unassigned"][p["unassigned"]["township_code"].astype(str) == code],
                 coverage=p["coverage"][p["coverage"]["township_code"].astype(str) == code],
                 tws=tws, tw_terrain=p["tw_terrain"][p["tw_terrain"].index.astype(str) == code],
                 sizing=p["sizing"][p["sizing"]["township_code"].astype(str) == code])
    return _build(ctx, parts, code)


def _build(ctx: StepContext, parts: dict[str, Any], township: str | None) -> StepResult[RelocationData]:
    """Tables, summary and files of the relocation step from the district's decisions
    (``parts``, filtered to ``township`` when given)."""
    plan, layers = ctx.plan, ctx.layers
    r = plan.section("relocation")
    sp = plan.section("relocation.sites")
    s, sites, evaluated = parts["s"], parts["sites"], parts["evaluated"]
    assignment, unassigned, coverage = parts["assignment"], parts["unassigned"], parts["coverage"]
    tws, tw_terrain, sizing = parts["tws"], parts["tw_terrain"], parts["sizing"]
    site_origin, access, access_note = parts["site_origin"], parts["access"], parts["access_note"]
    size_to = parts["size_to"]

    s["schedule_status"] = schedule_status(s["schedule_year"], s["relocation_candidate"].astype(bool),
                                           list(r["yearly_people"]))
    cols = ["settlement_id", "name", "village_code", "village_name", "township_code", "township_name",
            "households", "population", "poor_population", "accompanying_population",
            "poor_population_basis", "elevation_m", "slope_deg", "valley_depth_m",
            "above_threshold", "steep_terrain", "deep_valley", "remote", "tongda", "tongchang",
            "network_km_to_seat", "in_poverty_village", "deep_poverty_village",
            "relocation_candidate", "candidate_basis", "priority", "reasons_zh", "reasons_en",
            "status", "schedule_year", "schedule_status", "assigned_households", "site_ids", "source"]
    cols = [c for c in cols if c in s.columns]
    full = gpd.GeoDataFrame(s[cols + [s.geometry.name]], geometry=s.geometry.name, crs=s.crs)
    _labelled(full)
    candidates = pd.DataFrame(full[full["relocation_candidate"]].drop(columns=full.geometry.name))
    candidates = candidates.sort_values(["township_code", "priority", "settlement_id"],
                                        ascending=[True, False, True], kind="mergesort")
    _labelled(candidates)
    villages = rollup_villages(full, layers.villages if not township else
                               layers.villages[layers.villages["township_code"].astype(str) == township])
    if "township_name" not in villages.columns:  # a name next to each id
        tw_names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
        villages.insert(villages.columns.get_loc("township_code") + 1, "township_name",
                        villages["township_code"].astype(str).map(tw_names))
        _labelled(villages)
    townships = rollup_townships(full, tws, sites)
    tw_terrain = tw_terrain[~tw_terrain.index.duplicated()]
    townships["mean_elevation_m"] = townships["township_code"].map(tw_terrain["mean_m"]).round(1)
    townships["area_above_threshold_pct"] = townships["township_code"].map(
        tw_terrain["share_above_pct"]).round(1)
    cov = coverage.drop(columns=["township_name"]).set_index("township_code")
    for c in cov.columns:
        townships[c] = townships["township_code"].map(cov[c])
    for c in ("demand_households", "own_sites", "cover_sites", "capacity_for_township",
              "shortfall_households"):
        townships[c] = townships[c].fillna(0).astype("int64")
    for c in ("sites_needed", "feasible_points"):  # counts; empty where a township has no demand
        if c in townships.columns:
            townships[c] = pd.array(pd.to_numeric(townships[c], errors="coerce").round(), dtype="Int64")
    townships["cover_site_ids"] = townships["cover_site_ids"].fillna("")
    townships["site_note"] = townships["site_note"].fillna("")
    by_tw = assignment.groupby("township_code")
    townships["placed_households"] = townships["township_code"].map(
        by_tw["households"].sum()).fillna(0).astype("int64")
    townships["placed_own_township"] = townships["township_code"].map(
        assignment[assignment["same_township"]].groupby("township_code")["households"].sum()
    ).fillna(0).astype("int64")
    townships["unplaced_households"] = townships["township_code"].map(
        unassigned.groupby("township_code")["households"].sum()).fillna(0).astype("int64")
    wd = (assignment["households"] * assignment["distance_km"]).groupby(assignment["township_code"]).sum()
    townships["mean_distance_km"] = (townships["township_code"].map(wd)
                                     / townships["placed_households"].where(lambda v: v > 0)).round(2)
    _labelled(townships)

    years = sorted(r["yearly_people"], key=int)
    sched_rows = []
    for y in years:
        sel = (full["schedule_year"] == int(y)).fillna(False).astype(bool)
        sched_rows.append({"year": int(y), "quota_poor_people": int(r["yearly_people"][y]),
                           "settlements": int(sel.sum()),
                           "households": int(full.loc[sel, "households"].sum()),
                           "poor_people": int(full.loc[sel, "poor_population"].sum()),
                           "accompanying_people": int(full.loc[sel, "accompanying_population"].sum()),
                           "people": int(full.loc[sel, "population"].sum())})
    rest = full["relocation_candidate"] & full["schedule_year"].isna()
    schedule = _labelled(pd.DataFrame(sched_rows))
    remainder = {"settlements": int(rest.sum()), "households": int(full.loc[rest, "households"].sum()),
                 "poor_people": int(full.loc[rest, "poor_population"].sum()),
                 "accompanying_people": int(full.loc[rest, "accompanying_population"].sum()),
                 "people": int(full.loc[rest, "population"].sum()),
                 "largest_settlement_poor_people": int(full.loc[rest, "poor_population"].max())
                 if rest.any() else 0}

    site_cols = ["site_id", "name", "township_code", "serves_township_code", "for_township",
                 "site_role", "spacing_relaxed", "rank", "elevation_m", "slope_deg",
                 "road_distance_m", "seat_distance_m", "village_distance_m", "suitability", "vetoes",
                 "capacity_households", "assigned_households", "source"]
    sites_out = gpd.GeoDataFrame(sites[[c for c in site_cols if c in sites.columns] + [sites.geometry.name]],
                                 geometry=sites.geometry.name, crs=sites.crs)
    _labelled(sites_out)
    ev_cols = ["township_code", "elevation_m", "slope_deg", "road_distance_m", "seat_distance_m",
               "village_distance_m", "suitability", "vetoes", "selected"]
    evaluated_out = gpd.GeoDataFrame(evaluated[[c for c in ev_cols if c in evaluated.columns]
                                               + [evaluated.geometry.name]],
                                     geometry=evaluated.geometry.name, crs=evaluated.crs)

    cand_hh = int(candidates["households"].sum())
    scheduled = full["schedule_year"].notna()
    sched_hh = int(full.loc[scheduled, "households"].sum())
    sched_placed = int(full.loc[scheduled, "assigned_households"].sum())
    assigned_hh = int(assignment["households"].sum())
    unassigned_hh = int(unassigned["households"].sum())
    comparison = plan_comparison(full, plan, township=township)
    user_vetoed = int((sites_out["vetoes"] != "").sum()) if site_origin.startswith("user") else 0
    own_hh = int(assignment.loc[assignment["same_township"], "households"].sum())
    for_own_hh = int(assignment.loc[assignment["site_for_own_township"], "households"].sum())
    no_own = coverage[coverage["feasible_points"].fillna(-1) == 0] if not site_origin.startswith("user") \
        else coverage[coverage["own_sites"] == 0]
    short_own = coverage[(coverage["feasible_points"].fillna(0) > 0)
                         & (coverage["own_sites"] < coverage["sites_needed"].fillna(0))]
    with_own = set(coverage.loc[coverage["own_sites"] > 0, "township_code"])
    a_own = assignment[assignment["township_code"].isin(with_own)]
    own_hh_where = int(a_own.loc[a_own["same_township"], "households"].sum())
    unplaced_by_reason = ({str(k): int(v) for k, v in
                           unassigned.groupby("reason")["households"].sum().sort_values(ascending=False).items()}
                          if len(unassigned) else {})
    summary: dict[str, Any] = {
        "township": township,
        "scope": ("township view of the district analysis: candidates, priorities, schedule years "
                  "(district quotas), sites and assignment are the district run's, filtered to "
                  "this township" if township else "district"),
        "settlements": len(full),
        "status_counts": {k: int((full["status"] == k).sum()) for k in _STATUS},
        "above_threshold": int(full["above_threshold"].sum()),
        "steep_terrain": int(full["steep_terrain"].sum()),
        "deep_valley": int(full["deep_valley"].sum()),
        "remote": None if access is None else int(full["remote"].fillna(False).sum()),
        "candidates": int(full["relocation_candidate"].sum()),
        "candidate_households": cand_hh,
        "candidate_population": int(candidates["population"].sum()),
        "candidate_poor_population": int(candidates["poor_population"].sum()),
        "candidate_accompanying_population": int(candidates["accompanying_population"].sum()),
        "candidates_in_poverty_villages": int(candidates["in_poverty_village"].sum()),
        "remoteness": access_note,
        "candidate_rule": ("above threshold_m" + (" OR (steep_terrain AND deep_valley AND remote)"
                                                  if r["include_terrain_remote"] else "")
                           + (" AND in a poverty village" if r["require_poverty_village"] else "")),
        "plan_comparison": comparison,
        "schedule": {"years": sched_rows, "remainder": remainder,
                     "rule": "by priority, whole settlements, each year's registered poor people "
                             "(poor_population, 建档立卡贫困人口) <= its quota; the settlements' other "
                             "residents move with them (同步搬迁, accompanying_people) outside the quota"},
        "sites": {"origin": site_origin, "selected": len(sites_out),
                  "evaluated": len(evaluated_out),
                  "vetoed": int((evaluated_out["vetoes"] != "").sum()),
                  "capacity_households": int(sites_out["capacity_households"].sum()),
                  "townships_with_sites": int(sites_out["township_code"].nunique()),
                  "user_sites_breaking_a_veto": user_vetoed,
                  "sized_to": (f"relocation.sites.size_to = {size_to!r}: each township gets "
                               f"ceil(households / {int(sp['capacity_households'])}) sites, best "
                               f"suitability first, at least {float(sp['min_site_spacing_m']):,.0f} m apart; "
                               f"what its own feasible points cannot hold is covered by the nearest "
                               f"feasible points of neighbouring townships (site_role = cover)"
                               if not site_origin.startswith("user") else "user sites, not generated"),
                  "sized_households": int(sizing["households"].sum()),
                  "own_sites": int((sites_out["site_role"] == "own").sum()),
                  "cover_sites": int((sites_out["site_role"] == "cover").sum()),
                  "townships_without_own_feasible_site": [
                      {"township_code": c, "township_name": n, "demand_households": int(h),
                       "covered_by": ids.split(";") if ids else [], "shortfall_households": int(sh)}
                      for c, n, h, ids, sh in zip(no_own["township_code"], no_own["township_name"],
                                                  no_own["demand_households"], no_own["cover_site_ids"],
                                                  no_own["shortfall_households"])],
                  "townships_short_of_own_sites": [
                      {"township_code": c, "township_name": n, "own_sites": int(o),
                       "sites_needed": int(k), "covered_by": ids.split(";") if ids else []}
                      for c, n, o, k, ids in zip(short_own["township_code"], short_own["township_name"],
                                                 short_own["own_sites"], short_own["sites_needed"],
                                                 short_own["cover_site_ids"])],
                  "shortfall_households": int(coverage["shortfall_households"].sum()),
                  "note": ("township view: the district's sites serving this township or its "
                           "households (chosen for the whole district)" if township else "")},
        "assignment": {"candidate_households": cand_hh, "assigned_households": assigned_hh,
                       "unassigned_households": unassigned_hh,
                       "unassigned_settlements": len(unassigned),
                       "scheduled_households": sched_hh,
                       "scheduled_households_placed": sched_placed,
                       "same_township_households": own_hh,
                       "same_township_pct": pct(own_hh, assigned_hh, 1),
                       "placed_households_of_townships_with_own_sites": int(a_own["households"].sum()),
                       "same_township_pct_of_townships_with_own_sites":
                           pct(own_hh_where, a_own["households"].sum(), 1),
                       "site_for_own_township_households": for_own_hh,
                       "mean_distance_km": round(float((assignment["households"] * assignment["distance_km"]).sum()
                                                       / assigned_hh), 2) if assigned_hh else None,
                       "max_distance_km": round(float(assignment["distance_km"].max()), 2) if assigned_hh else None,
                       "unplaced_households_by_reason": unplaced_by_reason,
                       "unplaced_settlements": [
                           {"settlement_id": r_["settlement_id"], "township_code": r_["township_code"],
                            "households": int(r_["households"]), "reason": r_["reason"],
                            "detail": r_["reason_detail"]}
                           for r_ in unassigned.head(50).to_dict("records")],
                       "distance": "the assignment minimises straight-line km (distance_km); network_km is "
                                   "the road distance of each assigned pair afterwards (straight legs to the "
                                   "nearest road at both ends + shortest path over the access step's roads)",
                       "mean_network_km": (round(float((assignment["households"] * assignment["network_km"]).sum()
                                                       / assignment.loc[assignment["network_km"].notna(), "households"].sum()), 2)
                                           if assignment["network_km"].notna().any() else None),
                       "max_network_km": (round(float(assignment["network_km"].max()), 2)
                                          if assignment["network_km"].notna().any() else None),
                       "households_without_network_km": int(assignment.loc[assignment["network_km"].isna(), "households"].sum()),
                       "solver": "scipy.optimize.linprog (HiGHS dual simplex), transportation problem",
                       "split_settlements": "households of one settlement may go to several sites"},
        "parameters": plan.settings("relocation"),
    }
    pc = comparison
    headline = [
        f"{len(full):,} settlements: {pc['above_threshold']['layer']:,} above {r['threshold_m']:g} m "
        f"({'district ' if township else ''}plan: {r['natural_villages_above_threshold']:,}); "
        f"{summary['candidates']:,} candidate settlements: {summary['candidate_poor_population']:,} "
        f"registered poor 建档立卡贫困人口 ({'district ' if township else ''}plan: "
        f"{r['people_target']:,}) + {summary['candidate_accompanying_population']:,} other residents "
        f"同步搬迁 = {summary['candidate_population']:,} people",
        ("schedule (this township's share of the district schedule; registered poor/district quota): "
         if township else "schedule (registered poor/quota): ") + ", ".join(
            f"{x['year']} {x['poor_people']:,}/{x['quota_poor_people']:,} (+{x['accompanying_people']:,} 同步搬迁)"
            for x in sched_rows)
        + f"; left over {remainder['settlements']:,} settlements, {remainder['poor_people']:,} "
          f"registered poor + {remainder['accompanying_people']:,} others",
        f"sites: {len(sites_out):,} ({site_origin}), {summary['sites']['capacity_households']:,} households "
        f"capacity; placed {assigned_hh:,} of {cand_hh:,} households ({sched_placed:,} of the "
        f"{sched_hh:,} scheduled; {summary['assignment']['same_township_pct'] or 0:g} % in their own "
        f"township, {pct(for_own_hh, assigned_hh, 1) or 0:g} % at sites in or "
        f"chosen for it; mean {summary['assignment']['mean_distance_km'] or 0:g} km, max "
        f"{summary['assignment']['max_distance_km'] or 0:g} km straight line), {unassigned_hh:,} unplaced",
        f"remoteness: {access_note}",
    ]
    summary["left_out"] = leftout.relocation(full, unassigned)
    headline += [f"left out: {x}" for x in leftout.relocation_lines(summary["left_out"])]
    summary["headline"] = headline
    files = {
        "relocation/settlements.gpkg": full,
        "relocation/candidates.csv": candidates,
        "relocation/candidates.xlsx": {"candidates": candidates, "villages": villages,
                                       "townships": townships, "schedule": schedule,
                                       "sites": _labelled(pd.DataFrame(sites_out.drop(columns=sites_out.geometry.name))),
                                       "site_coverage": coverage,
                                       "assignment": assignment, "unassigned": unassigned},
        "relocation/villages.csv": villages,
        "relocation/townships.csv": townships,
        "relocation/sites.gpkg": {"sites": sites_out, "evaluated": evaluated_out},
        "relocation/assignment.csv": assignment,
        "relocation/unassigned.csv": unassigned,
        "relocation/summary.json": {k: v for k, v in summary.items()},
    }
    data = RelocationData(settlements=full, sites=sites_out, assignment=assignment,
                          unassigned=unassigned, villages=villages, townships=townships,
                          schedule=schedule, parts=parts)
    # field files for relocation teams' phones (KMZ, GPX), per township
    from kaizhou_gis.field import field_files
    files.update(field_files(ctx, data, coords=ctx.options.get("field_coords") or "wgs84"))
    log.info("relocation: %s", headline[0])
    return StepResult(name="relocation", files=files, data=data, summary=summary,
                      township_view=township is not None)
