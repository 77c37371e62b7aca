"""Chinese labels and values of the relocation tables, and names next to their ids."""
from __future__ import annotations

import pandas as pd

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


class SharedLabels(dict):
    """A read-only mapping that :func:`copy.deepcopy` hands back as it is.

    pandas deep-copies a frame's ``attrs`` into every frame and column derived from it (each
    column read, slice, sort, ``astype``, ``to_dict``), so labels held in plain dicts were copied
    hundreds of thousands of times per run (a third of the relocation step's time, in the field
    files and the spreadsheet). The labels of a table are fixed once set: shared, not copied.
    """

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (type(self), (dict(self),))

    def _read_only(self, *args, **kwargs):
        raise TypeError("table labels are read-only: set a new mapping in attrs instead")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _read_only
    __ior__ = _read_only


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    df.attrs["labels_zh"] = SharedLabels({c: LABELS_ZH[c] for c in df.columns if c in LABELS_ZH})
    values = {c: dict(VALUES_ZH[c]) for c in df.columns if c in VALUES_ZH and VALUES_ZH[c]}
    if "reason" in df.columns and "reason_zh" in df.columns:
        values["reason"] = {str(e): str(z) for e, z in zip(df["reason"], df["reason_zh"])
                            if isinstance(e, str) and isinstance(z, str) and z}
    if "schedule_status" in df.columns:
        values["schedule_status"] = {str(v): (BEYOND_QUOTAS_ZH.format(year=v.split()[1])
                                              if v.startswith("after ") else f"{v}年")
                                     for v in df["schedule_status"].dropna().unique() if str(v)}
    df.attrs["values_zh"] = SharedLabels({c: SharedLabels(v) for c, v in values.items()})
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


def _fmt(v: float, decimals: int = 0) -> str:
    return f"{v:,.{decimals}f}"
