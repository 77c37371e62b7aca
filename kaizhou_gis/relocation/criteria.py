"""The plan's relocation criteria, the candidate flag, the priority and the reasons (plan ch.5)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from kaizhou_gis.errors import PlanError
from kaizhou_gis.plan import Plan
from kaizhou_gis.relocation.labels import _fmt

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
    out = s.copy()
    has_elev = out["elevation_m"].astype("float64").notna()
    _add_criteria(out, r, access)
    out["priority"] = _priority(out, r, access_known=access is not None).where(has_elev).round(1)
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


def _add_criteria(out: pd.DataFrame, r: dict, access: pd.DataFrame | None) -> None:
    """The criteria columns, the road access, ``relocation_candidate`` and ``candidate_basis``
    (in place; ``r`` is the plan's ``relocation`` section)."""
    thr = float(r["threshold_m"])
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


def _priority(out: pd.DataFrame, r: dict, *, access_known: bool) -> pd.Series:
    """The unrounded priority (0-100) of every settlement: the weighted elevation, terrain,
    remoteness and poverty parts."""
    w = r["priority_weights"]
    elev = out["elevation_m"].astype("float64")
    e_part = ((elev - float(r["threshold_m"])) / float(r["priority_elevation_span_m"])).clip(0, 1)
    t_part = np.fmax((out["slope_deg"] / float(r["steep_slope_deg"])).clip(0, 1),
                     (out["valley_depth_m"] / float(r["deep_valley_relief_m"])).clip(0, 1)).fillna(0)
    r_part = pd.Series(0.0, index=out.index)
    if access_known:
        by_km = (out["network_km_to_seat"] / float(r["remote_km_to_seat"])).clip(0, 1).fillna(0)
        r_part = pd.Series(np.where(~out["tongchang"].fillna(True).astype(bool), 1.0, by_km),
                           index=out.index)
    p_part = out["in_poverty_village"].astype(float)
    return 100.0 * (w["elevation"] * e_part + w["terrain"] * t_part + w["remoteness"] * r_part
                    + w["poverty"] * p_part)


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
