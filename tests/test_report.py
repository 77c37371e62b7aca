"""The plan scorecard (report step) on a tiny district with hand-made step results.

Two townships, four villages, six settlements; the access, relocation and industry results are
built here so every figure of the report can be checked by hand:

- poverty villages: V1, V2, V4 -> 3
- relocation candidates: S1 (120 people, 2016), S2 (80, 2017), S5 (300, 2016) -> 500 people; the
  settlements give no poor_population, so registered poor are estimated at the plan's incidence
  (10.45 %): 13 + 8 + 31 = 52 registered poor, all scheduled -> indicator 4 = 0.0052 万人
- villages 通畅 before: V1, V4 -> 50 %; after (V2 is a beneficiary of work W1) -> 75 %
"""
from __future__ import annotations

import json
import re

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from kaizhou_gis import outputs, report
from kaizhou_gis.errors import PlanError
from kaizhou_gis.layers import Layers
from kaizhou_gis.pipeline import Context, StepResult
from kaizhou_gis.plan import load_plan
from kaizhou_gis.results import AccessData, IndustryData, RelocationData

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_450_000.0
T1, T2 = "500154101", "500154102"


def _layers() -> Layers:
    townships = gpd.GeoDataFrame(
        {"township_code": [T1, T2], "name": ["甲镇", "乙乡<script>"], "kind": ["镇", "乡"],
         "source": ["test", "test"]},
        geometry=[box(X0, Y0, X0 + 10_000, Y0 + 10_000), box(X0 + 10_000, Y0, X0 + 20_000, Y0 + 10_000)],
        crs=CRS)
    boundary = gpd.GeoDataFrame({"code": ["500154"], "name": ["开州区"]},
                                geometry=[box(X0, Y0, X0 + 20_000, Y0 + 10_000)], crs=CRS)
    seats = gpd.GeoDataFrame({"township_code": [T1, T2], "name": ["甲镇", "乙乡"],
                              "elevation_m": [300.0, 400.0], "source": ["test", "test"]},
                             geometry=[Point(X0 + 5000, Y0 + 5000), Point(X0 + 15000, Y0 + 5000)],
                             crs=CRS)
    villages = gpd.GeoDataFrame({
        "village_code": [T1 + "201", T1 + "202", T2 + "201", T2 + "202"],
        "name": ["一村", "二村", "三村", "四村"], "township_code": [T1, T1, T2, T2],
        "kind": ["村"] * 4, "households": [300, 200, 250, 150], "population": [900, 600, 800, 450],
        "poverty_village": [True, True, False, True], "deep_poverty": [False, True, False, False],
        "poverty_source": ["plan"] * 4, "source": ["synthetic", "synthetic", "test", "test"]},
        geometry=[Point(X0 + 2000, Y0 + 2000), Point(X0 + 8000, Y0 + 8000),
                  Point(X0 + 12000, Y0 + 2000), Point(X0 + 18000, Y0 + 8000)], crs=CRS)
    vc = villages["village_code"].tolist()
    settlements = gpd.GeoDataFrame({
        "settlement_id": [f"S{i}" for i in range(1, 7)],
        "name": [f"组{i}" for i in range(1, 7)],
        "village_code": [vc[0], vc[1], vc[1], vc[2], vc[2], vc[3]],
        "households": [40, 25, 35, 20, 90, 30], "population": [120, 80, 110, 60, 300, 100],
        "source": ["synthetic"] * 6},
        geometry=[Point(X0 + 1000 * i, Y0 + 3000) for i in (1, 7, 8, 11, 12, 19)], crs=CRS)
    roads = gpd.GeoDataFrame({"road_id": ["R1"], "road_class": ["county"], "surface": ["paved"],
                              "source": ["test"]},
                             geometry=[LineString([(X0, Y0 + 5000), (X0 + 20000, Y0 + 5000)])], crs=CRS)
    return Layers(boundary=boundary, townships=townships, township_seats=seats, villages=villages,
                  settlements=settlements, roads=roads, dem_path="dem.tif", source="test layers",
                  attribution="Roads © OpenStreetMap contributors, https://www.openstreetmap.org/copyright")


def _results(layers: Layers) -> dict[str, StepResult]:
    v = layers.villages.copy()
    v["tongda"] = [True, True, False, True]
    v["tongchang"] = [True, False, False, True]
    v["reason"] = ["", "unpaved road only", "no road within 500 m", ""]
    s = layers.settlements.copy()
    s["tongda"] = [True, True, False, False, True, True]
    s["tongchang"] = [True, False, False, False, True, False]
    s["target_group"] = [True, False, True, False, True, True]
    works = gpd.GeoDataFrame({
        "work_id": ["W1", "W2"], "type": ["new", "upgrade"], "km": [2.5, 1.0],
        "cost_yuan": [3_000_000.0, 500_000.0], "beneficiaries": [f"{v['village_code'][1]};S3", "S6"]},
        geometry=[LineString([(X0 + 3000, Y0 + 1000), (X0 + 5000, Y0 + 1000)]),
                  LineString([(X0 + 14000, Y0 + 1000), (X0 + 15000, Y0 + 1000)])], crs=CRS)
    scorecard = {
        "before": {"village_tongchang_pct": 50.0, "settlement_tongda_pct": 75.0,
                   "settlement_tongchang_pct": 50.0, "per_township": []},
        "after": {"village_tongchang_pct": 75.0, "settlement_tongda_pct": 100.0,
                  "settlement_tongchang_pct": 100.0,
                  "per_township": [{"township_code": T1, "village_tongchang_pct": 100.0},
                                   {"township_code": T2, "village_tongchang_pct": 50.0}]}}
    curve = pd.DataFrame({"step": [0, 1, 2], "cumulative_km": [0.0, 2.5, 3.5],
                          "cumulative_cost_yuan": [0.0, 3e6, 3.5e6],
                          "village_tongchang_pct": [50.0, 75.0, 75.0],
                          "settlement_tongda_pct": [75.0, 100.0, 100.0],
                          "settlement_tongchang_pct": [50.0, 75.0, 100.0]})
    access = StepResult("access", data=AccessData(villages=v, settlements=s, works=works,
                                                  scorecard=scorecard, cost_curve=curve))
    r = layers.settlements.copy()
    r["elevation_m"] = [950.0, 820.0, 500.0, 600.0, 1200.0, 880.0]
    r["slope_deg"] = [20.0, 30.0, 5.0, 8.0, 26.0, 10.0]
    r["above_threshold"] = r["elevation_m"] >= 800
    r["steep_terrain"] = r["slope_deg"] >= 25
    r["deep_valley"] = False
    r["remote"] = [True, False, False, False, True, False]
    r["in_poverty_village"] = [True, True, True, False, False, True]
    r["relocation_candidate"] = [True, True, False, False, True, False]
    r["priority"] = [80.0, 60.0, 0.0, 0.0, 90.0, 0.0]
    r["status"] = ["candidate", "candidate", "below threshold", "below threshold", "candidate",
                   "above threshold, not eligible"]
    r["schedule_year"] = pd.array([2016, 2017, None, None, 2016, None], dtype="Int64")
    sites = gpd.GeoDataFrame({"site_id": ["A"], "township_code": [T1], "elevation_m": [400.0],
                              "slope_deg": [4.0], "suitability": [0.9], "capacity_households": [120],
                              "assigned_households": [65]},
                             geometry=[Point(X0 + 4000, Y0 + 4000)], crs=CRS)
    assignment = pd.DataFrame({"settlement_id": ["S1", "S2"], "site_id": ["A", "A"],
                               "households": [40, 25], "distance_km": [3.0, 5.0]})
    unassigned = pd.DataFrame({"settlement_id": ["S5"], "households": [90],
                               "reason": ["no site within 30 km"]})
    relocation = StepResult("relocation", data=RelocationData(settlements=r, sites=sites,
                                                              assignment=assignment, unassigned=unassigned))
    projects = pd.DataFrame({"project_id": ["P1", "P2"], "category": ["种植业", "养殖业"],
                             "product": ["柑橘", "山羊"], "scale": [10000.0, 500.0],
                             "unit": ["亩", "头"], "target_year": [2020, 2020], "n_hosts": [2, 1]})
    hosts = gpd.GeoDataFrame({"project_id": ["P1", "P1", "P2"],
                              "village_code": [v["village_code"][0], v["village_code"][2],
                                               v["village_code"][1]]},
                             geometry=[Point(0, 0)] * 3, crs=CRS)
    unresolved = pd.DataFrame({"project_id": ["P1"], "township_text": ["某镇"],
                               "village_text": ["某村"], "reason": ["village not in layers"]})
    industry = StepResult("industry", data=IndustryData(projects=projects, hosts=hosts,
                                                        unresolved=unresolved))
    return {"access": access, "relocation": relocation, "industry": industry}


@pytest.fixture(scope="module")
def plan():
    return load_plan()


@pytest.fixture(scope="module")
def layers():
    return _layers()


@pytest.fixture(scope="module")
def full(plan, layers):
    ctx = Context(layers=layers, plan=plan, results=_results(layers))
    return report.run(ctx, ctx.needs_of("report"))


def _ind(rep: dict, i: int) -> dict:
    return next(x for x in rep["indicators"] if x["id"] == i)


def test_ten_indicators_each_with_target_and_value_or_reason(full, plan):
    inds = full.data.report["indicators"]
    assert [i["id"] for i in inds] == list(range(1, 11))
    for i in inds:
        assert (i["target_2018"] is not None or i["target_2020"] is not None or i["note"]), i
        if i["status"] == "computed":
            assert i["computed"] is not None
        else:
            assert i["reason"].startswith(report.NOT_DERIVABLE) or "step" in i["reason"]
    assert {i["id"] for i in inds if i["status"] == "computed"} == {2, 4, 5}
    assert _ind(full.data.report, 4)["target_2018"] == 1.69
    assert _ind(full.data.report, 8)["reason"].startswith("not derivable from these layers")


def test_computed_values_match_the_step_results(full):
    rep = full.data.report
    assert _ind(rep, 2)["computed"] == 3
    assert _ind(rep, 4)["computed"] == pytest.approx(0.0052)
    assert _ind(rep, 4)["people"] == 500
    assert _ind(rep, 4)["registered_poor_scheduled"] == 13 + 8 + 31
    assert _ind(rep, 4)["accompanying_people_scheduled"] == 500 - 52
    assert _ind(rep, 4)["poor_population_basis"].startswith("estimated")
    assert _ind(rep, 5)["computed"] == 50.0
    assert _ind(rep, 5)["computed_after"] == 75.0
    assert full.summary["indicators_computed"] == 3


def test_relocation_section(full):
    rel = full.data.report["relocation"]
    assert rel["candidates"] == 3 and rel["candidate_people"] == 500
    assert rel["candidate_households"] == 40 + 25 + 90
    assert rel["above_threshold"] == 4
    assert rel["share_above_threshold_pct"] == pytest.approx(66.67)
    assert rel["candidate_poor_people"] == 52 and rel["candidate_accompanying_people"] == 448
    assert rel["candidate_poor_vs_target_pct"] == pytest.approx(100 * 52 / 16900, abs=0.01)
    sched = {r["year"]: r for r in rel["schedule"]}
    assert sched[2016]["people"] == 420 and sched[2016]["plan_people"] == 7600
    assert sched[2016]["poor_people"] == 13 + 31 and sched[2016]["accompanying_people"] == 420 - 44
    assert sched[2017]["people"] == 80 and sched[2018]["people"] == 0
    assert sched[2018]["plan_people"] == 2300
    assert rel["unscheduled_candidates"] == 0
    assert rel["assignment"]["households"] == 65 and rel["assignment"]["mean_distance_km"] == 4.0
    assert rel["unassigned"]["households"] == 90
    assert rel["candidate_flags"]["remote"] == 2


def test_access_and_industry_sections(full):
    acc = full.data.report["access"]
    card = {r["indicator"]: r for r in acc["scorecard"]}
    assert card["village_tongchang_pct"]["before_pct"] == 50.0
    assert card["settlement_tongchang_pct"]["target_pct"] == 80.0
    assert card["settlement_tongchang_pct"]["meets_target_after"] is True
    assert card["village_tongchang_pct"]["meets_target_after"] is False
    assert acc["works"]["km"] == 3.5 and acc["works"]["cost_yuan"] == 3_500_000
    assert {r["type"]: r["km"] for r in acc["works"]["by_type"]} == {"new": 2.5, "upgrade": 1.0}
    assert len(acc["cost_curve"]) == 3
    ind = full.data.report["industry"]
    assert ind["projects"] == 2 and ind["host_villages"] == 3 and ind["unresolved_names"] == 1
    cats = {c["category"]: c for c in ind["by_category"]}
    assert cats["种植业"]["scale_by_product"] == [
        {"product": "柑橘", "unit": "亩", "total": 10000.0, "project_ids": ["P1"]}]
    assert cats["种植业"]["hosts_placed"] == 2 and cats["养殖业"]["hosts_named"] == 1


def test_township_table(full):
    tw = full.data.townships.set_index("township_code")
    assert tw.loc[T1, "villages"] == 2 and tw.loc[T1, "poverty_villages"] == 2
    assert tw.loc[T1, "settlements"] == 3 and tw.loc[T2, "settlements"] == 3
    assert tw.loc[T1, "candidate_people"] == 200 and tw.loc[T2, "candidate_people"] == 300
    assert tw.loc[T1, "tongchang_before_pct"] == 50.0
    assert tw.loc[T1, "tongchang_after_pct"] == 100.0 and tw.loc[T2, "tongchang_after_pct"] == 50.0
    assert tw.loc[T1, "works_km"] == 2.5 and tw.loc[T2, "works_km"] == 1.0
    assert tw.loc[T1, "works_cost_10k_yuan"] == 300.0
    assert tw.loc[T1, "industry_projects"] == 2 and tw.loc[T2, "industry_projects"] == 1
    assert full.data.townships.attrs["labels_zh"]["candidate_people"] == "拟搬迁自然村总人口"
    assert tw.loc[T1, "candidate_poor_people"] == 13 + 8 and tw.loc[T2, "candidate_poor_people"] == 31


def test_township_scope(plan, layers):
    ctx = Context(layers=layers, plan=plan, options={"township": T2}, results=_results(layers))
    rep = report.run(ctx, ctx.needs_of("report")).data.report
    assert _ind(rep, 2)["computed"] == 1
    assert _ind(rep, 4)["computed"] == pytest.approx(0.0031)  # S5: 31 registered poor of 300 people
    assert (_ind(rep, 5)["computed"], _ind(rep, 5)["computed_after"]) == (50.0, 50.0)
    assert [r["township_code"] for r in rep["townships"]] == [T2]
    assert rep["access"]["works"]["km"] == 1.0
    card = {r["indicator"]: r for r in rep["access"]["scorecard"]}
    # target-group settlements of T2: S5 (通达, 通畅) and S6 (通达, beneficiary of W2)
    assert card["settlement_tongchang_pct"]["before_pct"] == 50.0
    assert card["settlement_tongchang_pct"]["after_pct"] == 100.0
    assert rep["industry"]["projects"] == 1


def test_failed_step_is_reported_not_fatal(plan, layers):
    res = _results(layers)
    del res["relocation"]
    ctx = Context(layers=layers, plan=plan, results=res,
                  failed={"relocation": "LayerError: settlements have no elevation"})
    out = report.run(ctx, ctx.needs_of("report"))
    rep = out.data.report
    i4 = _ind(rep, 4)
    assert i4["status"] == "unavailable" and i4["computed"] is None
    assert "relocation" in i4["reason"] and "no elevation" in i4["reason"]
    assert rep["relocation"]["status"] == "unavailable"
    assert _ind(rep, 2)["computed"] == 3  # from the layers alone
    assert "no elevation" in out.files["report.html"]
    assert "candidate_people" not in out.data.townships


def test_html_is_offline_escaped_and_has_charts(full):
    page = full.files["report.html"]
    assert "http://" not in page and "https://" not in page
    assert "openstreetmap.org/copyright" in page  # the attribution stays, without a link
    assert "<script>" not in page and "乙乡&lt;script&gt;" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert "建档立卡贫困村" in page and "Registered poverty villages" in page
    assert sorted(full.data.report["charts"]) == ["cost_curve", "elevation", "townships"]
    for name in ("elevation", "cost_curve", "townships"):
        assert full.files[f"report_files/{name}.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_has_tables(full):
    md = full.files["report.md"]
    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| # | 指标"))
    assert lines[head + 1] == "|" + "---|" * 9
    rows = list(lines[head + 2:head + 12])
    assert all(r.startswith("| ") for r in rows) and rows[1].startswith("| 2 | 建档立卡贫困村")
    assert "3 → " not in rows[1] and "| 3 |" in rows[1]
    assert "![" in md and "report_files/elevation.png" in md


def test_json_holds_every_figure(full, tmp_path):
    paths = outputs.write_products(tmp_path, full.files)
    assert {p.name for p in paths} >= {"report.html", "report.md", "report.json", "elevation.png"}
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert len(data["indicators"]) == 10
    assert _ind(data, 5)["computed_after"] == 75.0
    assert data["relocation"]["plan"]["people_target"] == 16900
    keys = {s["key"] for s in data["settings"]}
    assert {"relocation.threshold_m", "access.reach_distance_m"} <= keys
    prov = {x["layer"]: x for x in data["provenance"]["layers"]}
    assert prov["villages"]["synthesized_rows"] == 2 and prov["settlements"]["synthesized_rows"] == 6


def test_unknown_measure_in_plan_is_a_plan_error(layers):
    bad = load_plan(overrides={"report.indicator_measures": {"2": "poverty_villages", "3": "income"}})
    ctx = Context(layers=layers, plan=bad, results=_results(layers))
    with pytest.raises(PlanError, match="income"):
        report.run(ctx, ctx.needs_of("report"))


def test_results_missing_columns_leave_out_parts_not_the_report(plan, layers):
    res = _results(layers)
    res["relocation"].data.settlements = res["relocation"].data.settlements.drop(
        columns="relocation_candidate")
    res["access"].data.villages = res["access"].data.villages.drop(columns="tongchang")
    out = Context(layers=layers, plan=plan, results=res).result("report")
    rep = out.data.report
    assert rep["relocation"]["status"] == "unavailable"
    assert "relocation_candidate" in rep["relocation"]["message"]
    assert _ind(rep, 4)["status"] == "unavailable" and "relocation_candidate" in _ind(rep, 4)["reason"]
    assert _ind(rep, 5)["computed"] == 50.0  # the scorecard still answers indicator 5
    assert rep["access"]["status"] == "ok" and rep["industry"]["status"] == "ok"
    tw = out.data.townships
    assert "candidate_people" not in tw and "tongchang_before_pct" not in tw
    assert tw["industry_projects"].tolist() == [2, 1]
    assert len(rep["problems"]) == 3 and "problem / 问题" in out.files["report.md"]


def test_poverty_villages_not_derivable_when_the_layer_has_no_flag_column(tmp_path, plan):
    # A user's villages layer without poverty_village: the loader fills False (and notes it);
    # the report must not claim "0 poverty villages" as a computed value.
    from layerset import layer_frames, write_layerset

    from kaizhou_gis.layers import load_layers
    frames = layer_frames()
    frames["villages"] = frames["villages"].drop(columns=["poverty_village", "deep_poverty"])
    lay = load_layers(write_layerset(tmp_path, frames), plan=plan)
    out = Context(layers=lay, plan=plan, results=_results(_layers())).result("report")
    ind = _ind(out.data.report, 2)
    assert ind["status"] == "not_derivable" and ind["computed"] is None
    assert "poverty_village" in ind["reason"] and "poverty_village" in ind["reason_zh"]
    assert "poverty_villages" not in out.data.townships  # no column of made-up zeros


def test_markdown_shows_layer_markup_as_text(full):
    # Markdown renderers pass inline HTML through: a township named 乙乡<script> must stay text.
    md = full.files["report.md"]
    assert "乙乡&lt;script&gt;" in md
    assert "<script" not in md.lower()


def test_industry_category_totals_do_not_count_parts_twice(plan, layers):
    # IND24/IND25 of the plan table are parts of IND22 (part_of): the category total is IND22's.
    res = _results(layers)
    p = res["industry"].data.projects
    res["industry"].data.projects = pd.concat([p.assign(part_of=""), pd.DataFrame({
        "project_id": ["P3"], "category": ["种植业"], "product": ["柑橘(一部分)"],
        "scale": [4000.0], "unit": ["亩"], "target_year": [2020], "n_hosts": [0],
        "part_of": ["P1"]})], ignore_index=True)
    rep = Context(layers=layers, plan=plan, results=res).result("report").data.report
    crops = next(c for c in rep["industry"]["by_category"] if c["category"] == "种植业")
    assert [(x["product"], x["unit"], x["total"]) for x in crops["scale_by_product"]] == [
        ("柑橘", "亩", 10000.0)]
    assert crops["projects"] == 2  # rows of the plan table, parts included (as the industry step counts)


def test_years_plain_and_tables_do_not_break_words(full):
    page, md = full.files["report.html"], full.files["report.md"]
    # years are plain integers: the plan's base year and period, never "2,015"
    assert not re.search(r"\b20,(0[0-9]|1[0-9]|2[0-9])\b", page + md)
    assert re.search(r"meta\.base_year</td><td[^>]*>2015<", page)
    assert re.search(r"meta\.plan_period</td><td[^>]*>2016, 2020<", page)
    # no rule breaks a word anywhere; wide tables scroll sideways in a container instead
    css = page[page.index("<style>"):page.index("</style>")]
    assert "anywhere" not in css and "break-all" not in css and "break-word" not in css
    assert page.count('<div class="tw"><table') == page.count("<table")
    # numbers do not wrap inside their cell
    assert '<td class="n">' in page and "td.n{white-space:nowrap" in css
