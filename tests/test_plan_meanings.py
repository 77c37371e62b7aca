"""The plan's meanings: figures and plan-file entries say what the plan text says.

- the relocation quotas (ch.5) are filled with registered poor people, whole settlements only;
- indicator 5 (贫困地区行政村通畅率) counts 行政村 (kind 村), not 社区, in every output;
- industry category totals never add two products or two units;
- plan-file sources and the 10 indicator names are checked against the plan text shipped in
  ``layers/sources/``.

The shipped-layer checks share one module-scoped run of the industry and report steps (no maps)
on the access and relocation results of the session's run on the shipped layers.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kaizhou_gis.layers import load_layers
from kaizhou_gis.plan import load_plan

PLAN_TEXT = Path(__file__).resolve().parent.parent / "layers" / "sources" / \
    "kaizhou_13th_fyp_poverty_plan.txt"


@pytest.fixture(scope="module")
def plan():
    return load_plan()


@pytest.fixture(scope="module")
def text():
    return PLAN_TEXT.read_text(encoding="utf-8")


def _indicator_table(text: str) -> dict[int, list[str]]:
    """The plan's 主要指标 table: id -> [name, kind, unit, 2015, 2018, 2020] (cells as printed)."""
    start = text.index("“十三五”时期脱贫攻坚主要指标")
    block = text[start:text.index("第二章", start)]
    rows: dict[int, list[str]] = {}
    for chunk in re.split(r"\n\s*\n", block):
        cells = [c.strip() for c in chunk.split("\n")]
        while cells and cells[0] == "":
            cells.pop(0)
        if cells and cells[0].isdigit() and 1 <= int(cells[0]) <= 10:
            rows[int(cells[0])] = cells[1:]
    return rows


# --------------------------------------------------------------------------------------------
# plan file against the plan text


def test_indicator_names_are_the_plans_words(plan, text):
    table = _indicator_table(text)
    assert sorted(table) == list(range(1, 11))
    for ind in plan.indicators:
        assert ind["name_zh"] == table[ind["id"]][0], ind["id"]
    kinds = {"约束性": "binding", "预期性": "expected"}
    assert all(kinds[table[i["id"]][1]] == i["kind"] for i in plan.indicators)


def test_indicator_targets_given_in_words_stay_words(plan, text):
    table = _indicator_table(text)
    one = next(i for i in plan.indicators if i["id"] == 1)
    assert one["target_2018"] == "实现脱贫" and "实现脱贫" in table[1]
    assert one["baseline_2015"] == 119207 and "119207" in table[1]
    nine = next(i for i in plan.indicators if i["id"] == 9)
    assert nine["target_2018"] == "基本解决" and "基本解决" in table[9]


def test_relocation_investment_is_in_yi_yuan(plan, text):
    inv = plan["relocation.investment_yi_yuan"]
    src = plan.source("relocation.investment_yi_yuan")
    assert "亿元" in src and "0.845 billion" in src
    assert round(sum(inv.values()), 2) == 8.45 and "资金总规模8.45亿元" in text
    for v in inv.values():
        assert f"{v:g}亿元" in text
    assert "relocation.investment_bn_yuan" not in plan


def test_quoted_sources_are_in_the_plan_text(plan, text):
    roads = plan.source("access.roads_km_2020")
    assert "累计完成农村公路建设2200公里" in roads and "累计完成农村公路建设2200公里" in text
    assert "cumulative" in roads
    thr = plan.source("relocation.threshold_m")
    quote = "海拔800米以上自然村340个，占迁出区自然村总数25.6%"
    assert thr.startswith("derived:") and quote in thr and quote in text
    assert "criterion" in thr
    assert "搬迁贫困人口16900人" in plan.source("relocation.people_target") and "搬迁贫困人口16900人" in text


def test_paved_surfaces_is_an_assumption_not_the_plans(plan, text):
    assert plan.is_assumption("access.paved_surfaces")
    for word in ("沥青", "水泥", "硬化"):
        assert word not in text


# --------------------------------------------------------------------------------------------
# shipped layers: one run of the steps


@pytest.fixture(scope="module")
def shipped(shipped_run, tmp_path_factory):
    """The steps on the shipped layers; access and relocation are the session run's (its cache)."""
    ctx = shipped_run.context(tmp_path_factory.mktemp("meanings") / "cache")
    for step in ("access", "relocation", "industry", "report"):
        ctx.result(step)
    assert ctx.reused.keys() == {"access", "relocation"}
    return ctx


def test_schedule_fills_the_quotas_with_registered_poor(shipped, plan):
    s = shipped.results["relocation"].data.settlements
    years = shipped.results["relocation"].summary["schedule"]["years"]
    cand = s["relocation_candidate"].astype(bool)
    left = s[cand & s["schedule_year"].isna() & (s["poor_population"] > 0)]
    smallest_left = int(left["poor_population"].min())
    quotas = plan["relocation.yearly_people"]
    assert [y["quota_poor_people"] for y in years] == [quotas[k] for k in sorted(quotas)]
    for y in years:
        sel = s["schedule_year"] == y["year"]
        poor, people = int(s.loc[sel, "poor_population"].sum()), int(s.loc[sel, "population"].sum())
        assert y["poor_people"] == poor and y["people"] == people
        assert y["accompanying_people"] == people - poor > 0  # whole settlements: others move too
        # filled with registered poor: within the smallest settlement left over (whole settlements)
        assert 0 <= y["quota_poor_people"] - poor < smallest_left
    total = sum(y["poor_people"] for y in years)
    assert plan["relocation.people_target"] - total < 3 * smallest_left
    # the shipped layers give poor_population (synthesized, labelled), not the loader's estimate
    assert (s["poor_population_basis"] == "layer").all()
    assert int(s["poor_population"].sum()) <= plan["baseline.poor_population"]


def test_indicator_5_counts_administrative_villages_only(shipped):
    v = shipped.results["access"].data.villages
    kind = shipped.layers.villages.set_index("village_code")["kind"]
    is_cun = v["village_code"].map(kind).eq("村")
    assert is_cun.sum() < len(v)  # the shipped layers have 社区 too
    pct_cun = round(100.0 * v.loc[is_cun, "tongchang"].sum() / is_cun.sum(), 2)
    pct_all = round(100.0 * v["tongchang"].sum() / len(v), 2)
    assert pct_cun != pct_all
    card = shipped.results["access"].files["access/scorecard.json"]
    assert card["before"]["village_tongchang_pct"] == pct_cun
    assert card["before"]["villages"] == int(is_cun.sum())
    assert card["before"]["communities_excluded"] == int((~is_cun).sum())
    rep = shipped.results["report"].data.report
    ind5 = next(i for i in rep["indicators"] if i["id"] == 5)
    assert ind5["computed"] == pct_cun
    acc = {r["indicator"]: r for r in rep["access"]["scorecard"]}
    assert acc["village_tongchang_pct"]["before_pct"] == pct_cun
    # the per-township tables count the same villages
    towns = shipped.results["access"].files["access/townships.csv"]
    assert int(towns["villages"].sum()) == int(is_cun.sum())
    tw_report = shipped.results["report"].data.townships.set_index("township_code")
    grp = v.loc[is_cun].groupby(v.loc[is_cun, "township_code"].astype(str))["tongchang"]
    expect = (100.0 * grp.sum() / grp.size()).round(1)
    got = tw_report["tongchang_before_pct"].reindex(expect.index)
    assert (got - expect).abs().max() < 1e-9


def test_industry_totals_never_add_different_products_or_units(shipped):
    rep = shipped.results["report"].data.report
    projects = shipped.results["industry"].data.projects.set_index("project_id")
    seen_units = set()
    for cat in rep["industry"]["by_category"]:
        keys = [(x["product"], x["unit"]) for x in cat["scale_by_product"]]
        assert len(keys) == len(set(keys)), cat["category"]
        for x in cat["scale_by_product"]:
            rows = projects.loc[x["project_ids"]]
            assert set(rows["product"]) == {x["product"]} and set(rows["unit"]) == {x["unit"]}
            assert set(rows["category"]) == {cat["category"]}
            seen_units.add(x["unit"])
    # the cases the issue names are now separate lines
    by = {(x["product"], x["unit"]) for c in rep["industry"]["by_category"] for x in c["scale_by_product"]}
    heads = [k for k in by if k[1] == "头"]
    assert len(heads) >= 2  # goats and pigs: two totals, not one
    assert {"头", "亩"} <= seen_units
    md = shipped.results["report"].files["report.md"]
    assert "plan scale per product and unit" in md


# --------------------------------------------------------------------------------------------
# poor_population: from the layer (aliases), checked, or estimated and said so


def test_poor_population_from_an_alias_column(tmp_path, plan):
    from layerset import layer_frames, write_layerset

    frames = layer_frames()
    frames["settlements"]["建档立卡贫困人口"] = [60, 50, 100, 20, 40, 30]
    layers = load_layers(write_layerset(tmp_path / "l", frames), plan=plan)
    s = layers.settlements
    assert s["poor_population"].tolist() == [60, 50, 100, 20, 40, 30]
    assert (s["poor_population_basis"] == "layer").all() and layers.estimated == []


def test_poor_population_above_population_is_an_error(tmp_path, plan):
    from layerset import layer_frames, write_layerset

    from kaizhou_gis.errors import LayerError

    frames = layer_frames()
    frames["settlements"]["poor_population"] = [60, 50, 300, 20, 40, 30]  # S3 has 220 people
    with pytest.raises(LayerError, match=r"settlements.poor_population: more registered poor .*S3"):
        load_layers(write_layerset(tmp_path / "l", frames), plan=plan)


def test_missing_poor_population_is_estimated_and_labelled(tmp_path, plan):
    from layerset import real_frames, write_layerset

    from kaizhou_gis import provenance

    frames = real_frames()
    frames["settlements"]["poor_population"] = [60.0, None, 100.0, None, 40.0, 30.0]
    layers = load_layers(write_layerset(tmp_path / "l", frames), plan=plan)
    s = layers.settlements.set_index("settlement_id")
    # S2 (600 people) and S4 (160) estimated at the plan's 10.45 %: 63 and 17
    assert s.loc["S2", "poor_population"] == 63 and s.loc["S4", "poor_population"] == 17
    assert s.loc["S1", "poor_population"] == 60
    assert s["poor_population_basis"].tolist() == ["layer", "estimated", "layer", "estimated",
                                                   "layer", "layer"]
    assert any("poor_population" in n and "10.45" in n for n in layers.notes)
    st = provenance.data_status(layers)
    assert st["synthetic"] is False and st["estimated"][0]["rows"] == 2
    assert "10.45" in provenance.readme_text(st)
