"""Pipeline step ``access``: reads the layers and the plan, runs the analysis and the works
planning, and builds the step's tables, scorecard and files (district, or a township view)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.admin import settlement_townships
from kaizhou_gis.errors import LayerError, format_ids
from kaizhou_gis.layers import leftout
from kaizhou_gis.network import (
    DemGrid,
    dangles_frame,
    joins_frame,
    nodes_frame,
)
from kaizhou_gis.results import AccessData, StepResult

if TYPE_CHECKING:
    from kaizhou_gis.results import StepContext, StepNeeds
from kaizhou_gis.access.apply import apply_works
from kaizhou_gis.access.points import analyse, target_group
from kaizhou_gis.access.scoring import admin_village_mask, scorecard, township_table
from kaizhou_gis.access.works import plan_works

log = logging.getLogger(__name__)

LABELS_ZH = {
    "village_code": "行政村代码", "settlement_id": "自然村编号", "name": "名称",
    "township_code": "乡镇代码", "township_name": "乡镇", "village_name": "行政村",
    "kind": "类型", "households": "户数", "population": "人口", "poverty_village": "贫困村",
    "admin_village": "行政村(计入通畅率指标)",
    "target_group": "30户或100人以上", "tongda": "通达", "tongchang": "通畅",
    "snap_distance_m": "距最近道路(米)", "network_km_to_seat": "至乡镇驻地路网距离(公里)",
    "network_km_to_county": "至区政府驻地路网距离(公里)", "travel_min_to_seat": "至乡镇驻地行车时间(分钟)",
    "road_id": "最近道路编号", "road_surface": "最近道路路面", "reason": "未通达/未通畅原因",
    "reason_zh": "原因", "tongda_after": "实施拟建工程后通达(规划)", "tongchang_after": "实施拟建工程后通畅(规划)",
    "work_ids": "相关工程编号",
}


def parameters(plan) -> dict:
    """The plan settings the access analysis used, with their sources."""
    return {k: v for k, v in plan.settings("access.").items()} | \
        {k: v for k, v in plan.settings("links.").items()}


# --------------------------------------------------------------------------------------------
# Pipeline step
# --------------------------------------------------------------------------------------------
def read_dem(layers, plan) -> DemGrid:
    """The DEM window covering every layer plus the longest new link searched."""
    frames = [layers.roads, layers.villages, layers.settlements, layers.township_seats]
    b = np.array([f.total_bounds for f in frames if len(f)])
    bounds = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    with layers.open_dem() as ds:
        return DemGrid.from_dataset(ds, bounds, layers.roads.crs,
                                    margin_m=float(plan["links.max_new_link_km"]) * 1000.0)


def _table(base: gpd.GeoDataFrame, cols: list[str], acc: pd.DataFrame, extra: dict) -> gpd.GeoDataFrame:
    t = base[[c for c in cols if c in base.columns]].copy()
    for k, val in extra.items():
        t[k] = val
    for c in ("tongda", "tongchang", "snap_distance_m", "network_km_to_seat", "network_km_to_county",
              "travel_min_to_seat", "road_id", "road_surface", "reason", "reason_zh"):
        t[c] = acc[c]
    return gpd.GeoDataFrame(t, geometry=base.geometry, crs=base.crs)


def run(ctx: StepContext, needs: StepNeeds) -> StepResult[AccessData]:
    """Pipeline step ``access``: tables, GeoPackages, scorecard before/after, works, cost curve.

    For the district; a township's result is :func:`township_view` of the district's.
    """
    layers, plan = ctx.layers, ctx.plan
    p = plan.section("access")
    for name, col in (("villages", "village_code"), ("settlements", "settlement_id"),
                      ("settlements", "village_code"), ("villages", "township_code")):
        if col not in getattr(layers, name).columns:
            raise LayerError(f"{name}: column '{col}' is missing; see the layer contract.")
    dem = read_dem(layers, plan)
    before = analyse(layers, plan, dem=dem)
    v, s = layers.villages, layers.settlements
    s_town = settlement_townships(s, v)
    tg = target_group(s, households_min=p["settlement_households_min"],
                      population_min=p["settlement_population_min"])
    names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"].astype(str)))
    vt = _table(v, ["village_code", "name", "township_code", "kind", "households", "population",
                    "poverty_village", "deep_poverty"], before.villages,
                {"township_name": v["township_code"].astype(str).map(names).fillna(""),
                 "admin_village": admin_village_mask(v).to_numpy()})
    st = _table(s, ["settlement_id", "name", "village_code", "households", "population"], before.settlements,
                {"township_code": s_town, "township_name": s_town.map(names).fillna(""), "target_group": tg})

    plan_out = plan_works(before, vt, st, plan=plan, dem=dem)
    works = plan_out.works
    roads_after = apply_works(layers.roads, works, plan=plan)
    after = analyse(layers, plan, dem=dem, roads=roads_after, reach_only=True)  # 通达/通畅 after
    vt["tongda_after"] = after.villages.loc[vt.index, "tongda"]
    vt["tongchang_after"] = after.villages.loc[vt.index, "tongchang"]
    st["tongda_after"] = after.settlements.loc[st.index, "tongda"]
    st["tongchang_after"] = after.settlements.loc[st.index, "tongchang"]
    vt["work_ids"] = plan_out.work_ids.reindex(vt["village_code"].astype(str)).fillna("").to_numpy()
    st["work_ids"] = plan_out.work_ids.reindex(st["settlement_id"].astype(str)).fillna("").to_numpy()
    vt.attrs["labels_zh"] = LABELS_ZH
    st.attrs["labels_zh"] = LABELS_ZH
    parts = {"before": before, "vt": vt, "st": st, "plan_out": plan_out, "names": names,
             "works": plan_out.works, "cost_curve": plan_out.cost_curve,
             "unresolved": plan_out.unresolved, "choices": plan_out.choices,
             "totals": plan_out.totals}
    return _build(ctx, parts, None)


def _works_of(works: pd.DataFrame, code: str) -> pd.Series:
    """True for the works that serve township ``code`` (``township_code`` lists them, ``;``)."""
    return works["township_code"].astype(str).str.split(";").map(lambda c: code in c).astype(bool)


def township_view(district: StepResult[AccessData], ctx: StepContext) -> StepResult[AccessData]:
    """The access step for ``ctx.township``: the district's result filtered to the township.

    通达/通畅 before and after, the works and their costs are the district run's (the works are
    chosen for the whole district); kept are the township's villages and settlements, the works
    serving them (a work shared with neighbours is listed whole; ``townships.csv`` and the
    township's ``works_share_*`` figures split it evenly, as the district table does), the
    cost-curve steps of its points and its unresolved points.
    """
    p = district.data.parts
    code = str(ctx.township)
    vt = p["vt"][p["vt"]["township_code"].astype(str) == code]
    st = p["st"][p["st"]["township_code"].astype(str) == code]
    if vt.empty and st.empty:  # empty tables and scorecard, like the other steps
        log.warning("access: township %s has no village or settlement in the layers.", code)
    works = p["works"][_works_of(p["works"], code).to_numpy()]
    pids = set(vt["village_code"].astype(str)) | set(st["settlement_id"].astype(str))
    curve = p["cost_curve"][p["cost_curve"]["beneficiary"].astype(str).isin(pids).to_numpy()]
    unresolved = p["unresolved"][p["unresolved"]["township_code"].astype(str) == code]
    choices = p["choices"][p["choices"]["pid"].astype(str).isin(pids).to_numpy()]
    parts = dict(p, vt=vt, st=st, works=works, cost_curve=curve, unresolved=unresolved,
                 choices=choices, totals=_township_totals(p["totals"], works, code, unresolved, choices))
    return _build(ctx, parts, code)


def _township_totals(district: dict, works: pd.DataFrame, code: str, unresolved: pd.DataFrame,
                     choices: pd.DataFrame) -> dict:
    """Works totals of one township from the district's works serving it."""
    new = works["type"] == "new"
    n = works["township_code"].astype(str).str.count(";") + 1
    new_km, up_km = float(works.loc[new, "km"].sum()), float(works.loc[~new, "km"].sum())
    t = dict(district)
    t.update({
        "new_links": int(new.sum()), "new_km": round(new_km, 3),
        "upgrades": int((~new).sum()), "upgrade_km": round(up_km, 3),
        "total_km": round(new_km + up_km, 3), "cost_yuan": float(works["cost_yuan"].sum()),
        "cost_100pct_targets_yuan": float(works.loc[works["phase"] == "100% targets", "cost_yuan"].sum()),
        "cost_80pct_target_yuan": float(works.loc[works["phase"] == "80% target", "cost_yuan"].sum()),
        "share_of_plan_km_pct": None,
        "unresolved": int(len(unresolved)),
        "points_considered": int(len(choices)),
        "township_share_km": round(float((works["km"] / n).sum()), 3),
        "township_share_cost_yuan": round(float((works["cost_yuan"] / n).sum()), 0),
        "district_total_km": district["total_km"], "district_cost_yuan": district["cost_yuan"],
        "scope": (f"township {code}: the district's works that serve it (chosen for the whole "
                  f"district); km and cost_yuan count each such work whole, township_share_* split "
                  f"a work serving several townships evenly (as townships.csv)"),
    })
    return t


def _build(ctx: StepContext, parts: dict, township: str | None) -> StepResult[AccessData]:
    """Tables, scorecard and files of the access step from the district's analysis and works
    (``parts``, filtered to ``township`` when given)."""

    layers, plan = ctx.layers, ctx.plan
    p = plan.section("access")
    before, vt, st, names = parts["before"], parts["vt"], parts["st"], parts["names"]
    works, totals = parts["works"], parts["totals"]

    sc_before = scorecard(vt, st, plan, township_names=names)
    after_v = vt.assign(tongda=vt["tongda_after"], tongchang=vt["tongchang_after"])
    after_s = st.assign(tongda=st["tongda_after"], tongchang=st["tongchang_after"])
    sc_after = scorecard(after_v, after_s, plan, township_names=names)
    check = _after_check(vt, st, parts["choices"])
    sc = {"district": plan.name, "township": township,
          "scope": ("township view of the district analysis: 通达/通畅 and the works are the "
                    "district run's, filtered to this township" if township else "district"),
          "parameters": parameters(plan),
          "network": before.net.report, "before": sc_before, "after": sc_after, "works": totals,
          "check": check, "unresolved": parts["unresolved"].to_dict(orient="records")}

    towns = township_table(sc_before, sc_after, works)
    network = _network_layers(before.net, layers, township)
    curve = parts["cost_curve"]
    if "village_code" in st.columns and "village_name" not in st.columns:  # a name next to each id
        v_names = dict(zip(layers.villages["village_code"].astype(str), layers.villages["name"].astype(str)))
        st = st.copy()
        st.insert(st.columns.get_loc("village_code") + 1, "village_name",
                  st["village_code"].astype(str).map(v_names))
        if isinstance(st.attrs.get("labels_zh"), dict):
            st.attrs["labels_zh"]["village_name"] = "行政村"
    files = {
        "access/villages.csv": vt, "access/settlements.csv": st,
        "access/access.gpkg": {"villages": vt, "settlements": st, **network},
        "access/scorecard.json": sc,
        "access/works.gpkg": works,
        "access/cost_curve.csv": curve,
        "access/townships.csv": towns,
    }
    b, a = sc_before, sc_after
    headline = _headline(b, a, totals, p, township, len(parts["unresolved"]))
    left_out = leftout.access(vt, st)
    headline += [f"left out: {x}" for x in leftout.access_lines(left_out, p["reach_distance_m"])]
    summary = {"headline": headline, "left_out": left_out,
               "before": {k: b[k] for k in b if k != "per_township"},
               "after": {k: a[k] for k in a if k != "per_township"}, "works": totals,
               "network": before.net.report}
    data = AccessData(villages=vt, settlements=st, edges=before.net.edges, works=works,
                      scorecard={"before": sc_before, "after": sc_after}, cost_curve=curve,
                      network=before.net, unresolved=parts["unresolved"], townships=towns,
                      parts=parts)
    return StepResult(name="access", files=files, data=data, summary=summary,
                      township_view=township is not None)


def _after_check(vt: pd.DataFrame, st: pd.DataFrame, ch: pd.DataFrame) -> dict:
    """Check: every point the works were chosen for is reached in the re-run on the changed roads."""
    after_ch = pd.concat([vt.set_index(vt["village_code"].astype(str))["tongchang_after"],
                          st.set_index(st["settlement_id"].astype(str))["tongchang_after"]])
    after_da = pd.concat([vt.set_index(vt["village_code"].astype(str))["tongda_after"],
                          st.set_index(st["settlement_id"].astype(str))["tongda_after"]])
    missed = sorted(set(ch.loc[ch["expect_tongchang"].to_numpy()
                               & ~after_ch.reindex(ch["pid"]).fillna(False).to_numpy(), "pid"])
                    | set(ch.loc[ch["expect_tongda"].to_numpy()
                                 & ~after_da.reindex(ch["pid"]).fillna(False).to_numpy(), "pid"]))
    if missed:
        log.warning("access: %d point(s) given works are still not reached after applying them: %s",
                    len(missed), format_ids(missed))
    return {"points_given_works": int((ch["option"] != "").sum()),
            "not_reached_after_applying_works": missed}


def _network_layers(net, layers, township: str | None) -> dict[str, gpd.GeoDataFrame]:
    """The network layers of access.gpkg (edges, dangles, joins, nodes); for a township, its own
    part of the network (edges and dangles touching its polygon, the nodes the kept edges join)."""
    edges = net.edges.drop(columns=["road_index"])
    dangles = dangles_frame(net)
    joins = joins_frame(net)
    nodes = nodes_frame(net)
    if township and "township_code" in layers.townships.columns:
        poly = layers.townships.loc[layers.townships["township_code"].astype(str) == str(township)]
        poly = poly.geometry[~(poly.geometry.is_empty | poly.geometry.isna())]
        if len(poly):
            area = poly.union_all()
            edges = edges[edges.intersects(area).to_numpy()]
            dangles = dangles[dangles.intersects(area).to_numpy()]
            joins = joins[joins.intersects(area).to_numpy()]
            # the nodes the kept edges join (every u/v of the edges layer is a node_id here)
            ends = np.union1d(edges["u"].to_numpy(), edges["v"].to_numpy())
            nodes = nodes[nodes["node_id"].isin(ends).to_numpy()]
    return {"edges": edges, "dangles": dangles, "joins": joins, "nodes": nodes}


def _headline(b: dict, a: dict, totals: dict, p, township: str | None, n_unresolved: int) -> list[str]:
    """The step's headline lines: scorecard before → after (planned) and the works."""
    fmt = lambda x: "n/a" if x is None else f"{x:.1f}%"  # noqa: E731
    headline = [
        f"villages 通畅 {fmt(b['village_tongchang_pct'])} → {fmt(a['village_tongchang_pct'])} "
        f"with the proposed works (planned) / 实施拟建工程后（规划） (target {p['village_tongchang_target_pct']:g}%; "
        f"{b['villages']:,} 行政村, {b.get('communities_excluded', 0):,} 社区 not counted)",
        f"settlements ≥{p['settlement_households_min']}户/{p['settlement_population_min']}人: 通达 "
        f"{fmt(b['settlement_tongda_pct'])} → {fmt(a['settlement_tongda_pct'])}, 通畅 "
        f"{fmt(b['settlement_tongchang_pct'])} → {fmt(a['settlement_tongchang_pct'])} (planned)",
        f"works: {totals['new_links']} new links {totals['new_km']:.1f} km + {totals['upgrades']} upgrades "
        f"{totals['upgrade_km']:.1f} km, {totals['cost_yuan'] / 1e8:.2f} 亿元"
        + (f" ({totals['share_of_plan_km_pct']:.0f}% of the plan's {totals['plan_roads_km']:g} km)"
           if totals["share_of_plan_km_pct"] is not None else ""),
    ]
    if township:
        headline[-1] = ("works serving this township (district selection): " + headline[-1][7:]
                        + f"; its share (shared works split evenly, as townships.csv): "
                          f"{totals['township_share_km']:.1f} km, "
                          f"{totals['township_share_cost_yuan'] / 1e8:.2f} 亿元")
    if n_unresolved:
        headline.append(f"{n_unresolved} village(s)/settlement(s) without a feasible work "
                        f"(see scorecard.json 'unresolved')")
    return headline
