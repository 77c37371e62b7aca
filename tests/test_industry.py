"""Tests of the plan's industry projects (ch.3) and their placement on villages."""
from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from kaizhou_gis.errors import LayerError, OptionError
from kaizhou_gis.industry import load_projects, product_totals, project_status, resolve_hosts, split_hosts
from kaizhou_gis.industry import projects as industry_projects
from kaizhou_gis.results import IndustryData

CRS = "EPSG:4545"
REPO = Path(__file__).resolve().parent.parent

# The plan's figures (ch.3), per product of the table: (product, unit) -> total.
PLAN_TOTALS = {
    ("晚熟柑橘", "亩"): 10000,            # citrus
    ("晚熟伏季水果", "亩"): 16000,        # mid-mountain fruit
    ("伏季水果管护", "亩"): 5000,
    ("中山蔬菜", "亩"): 5000,
    ("茶叶", "亩"): 10000,                # tea
    ("中药材", "亩"): 10000,              # herbs
    ("“双低”油菜", "亩"): 8000,           # oilseed
    ("基本口粮田", "亩"): 20000,          # grain
    ("山羊", "头"): 16890,                # goats
    ("优质家禽", "羽"): 125750,           # poultry
    ("泥鳅和桑叶生态鱼", "亩"): 250,
    ("生猪", "头"): 5000,                 # pigs
    ("农村沼气池", "口"): 1270,           # biogas
    ("专业大户", "户"): 500,
    ("家庭农场", "户"): 177,
    ("农民合作社示范社", "个"): 135,
    ("农业企业", "家"): 20,
    ("带动贫困农户", "户"): 5000,
    ("实用技术培训", "人"): 50000,
    ("农产品初加工基地", "个"): 5,
    ("休闲农业与乡村旅游示范村", "个"): 17,
    ("田园式风情农家", "户"): 160,
    ("带动贫困户就业增收", "户"): 2000,
    ("庭院式休闲农庄", "家"): 40,
    ("园林式生态庄园", "家"): 10,
    ("露营基地", "顶"): 3000,
    ("电商服务站点", "个"): 135,
    ("农产品电子商务品牌", "个"): 30,
    ("农村电子商务带头人", "名"): 1000,
    ("村级光伏电站", "kW"): 40500,        # photovoltaic 135 x 300 kW = 40.5 MWp
    ("光伏受益贫困户", "户"): 7682,
    ("光伏受益贫困人口", "人"): 28406,
}

# township code -> name (NBS 2023) for the small test district
TOWNSHIPS = {
    "500154100": "大德镇", "500154102": "厚坝镇", "500154103": "金峰镇", "500154105": "郭家镇",
    "500154108": "河堰镇", "500154109": "大进镇", "500154112": "高桥镇", "500154119": "铁桥镇",
    "500154122": "岳溪镇", "500154124": "南门镇", "500154125": "渠口镇", "500154126": "满月镇",
    "500154127": "雪宝山镇", "500154008": "正安街道",
}
# villages: code, name (the duplicate names 中山村, 石龙村, 龙王村, 双丰村 are in two townships each)
VILLAGES = [
    ("500154103203", "中山村"), ("500154112205", "中山村"),
    ("500154102202", "石龙村"), ("500154108204", "石龙村"),
    ("500154100202", "龙王村"), ("500154122212", "龙王村"), ("500154119201", "龙王桥村"),
    ("500154124217", "双丰村"), ("500154125207", "双丰村"), ("500154125204", "茶香村"),
    ("500154105207", "团包村"), ("500154105204", "桑坪村"),
    ("500154127204", "钟鼓村"), ("500154127201", "罗家村"),
    ("500154109209", "长城村"), ("500154109211", "杨柳村"),
    ("500154126204", "马营村"), ("500154008203", "镇安村"),
]
POVERTY = {"500154112205", "500154108204", "500154127201", "500154109209"}


def _tw_x(code: str) -> float:
    return sorted(TOWNSHIPS).index(code) * 10_000.0


@pytest.fixture()
def townships() -> gpd.GeoDataFrame:
    codes = sorted(TOWNSHIPS)
    return gpd.GeoDataFrame({"township_code": codes, "name": [TOWNSHIPS[c] for c in codes]},
                            geometry=[box(_tw_x(c), 0, _tw_x(c) + 8000, 8000) for c in codes], crs=CRS)


@pytest.fixture()
def villages() -> gpd.GeoDataFrame:
    rows = []
    for i, (code, name) in enumerate(VILLAGES):
        tc = code[:9]
        rows.append({"village_code": code, "name": name, "township_code": tc,
                     "poverty_village": code in POVERTY,
                     "geometry": Point(_tw_x(tc) + 100 + 50 * i, 500 + 10 * i)})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    gdf.index = pd.RangeIndex(100, 100 + len(gdf))  # a non-default index must not matter
    return gdf


@pytest.fixture()
def seats() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"township_code": ["500154109"], "name": ["大进镇"]},
                            geometry=[Point(_tw_x("500154109") + 4000, 4000)], crs=CRS)


@pytest.fixture(scope="module")
def projects() -> pd.DataFrame:
    return load_projects()


def _host(hosts: pd.DataFrame, pid: str, token: str) -> pd.DataFrame:
    return hosts[(hosts["project_id"] == pid) & (hosts["host_text"] == token)]


# ------------------------------------------------------------------------------------------
# the table against the plan
# ------------------------------------------------------------------------------------------
def test_per_product_totals_equal_plan_figures(projects):
    main = projects[projects["part_of"] == ""]
    got = main.dropna(subset=["scale"]).groupby(["product", "unit"])["scale"].sum()
    assert {k: v for k, v in got.items() if k in PLAN_TOTALS} == pytest.approx(PLAN_TOTALS)
    assert set(PLAN_TOTALS) <= set(got.index)
    # the same figures through product_totals (what totals.csv and the report show)
    nothing = pd.DataFrame(columns=["project_id", "scale", "scale_assumed_split"])
    totals = product_totals(project_status(projects, nothing, nothing), nothing)
    t = totals.set_index(["product", "unit"])["plan_total"]
    for key, value in PLAN_TOTALS.items():
        assert t[key] == value, key


def test_photovoltaic_is_135_stations_of_300_kw(projects):
    pv = projects.set_index("project_id").loc["IND34"]
    assert (pv["unit"], pv["scale_per_host"], pv["n_villages_stated"]) == ("kW", 300, 135)
    assert pv["scale_per_host"] * pv["n_villages_stated"] == pv["scale"] == 40_500
    assert pv["scale"] / 1000 == 40.5  # MWp
    assert pv["host_level"] == "poverty_villages"


def test_each_row_is_consistent_with_its_source_sentence(projects):
    chinese_numbers = {2: "2", 3: "三", 9: "9", 14: "14", 32: "32", 112: "112", 135: "135"}
    for _, r in projects.iterrows():
        text = r["source_sentence"]
        low = text.lower()
        if pd.notna(r["scale"]):
            unit_head = r["unit"].split("/")[0].lower()
            figures = [f"{r['scale']:g}{unit_head}"]
            if pd.notna(r["scale_per_host"]):
                figures.append(f"{r['scale_per_host']:g}{unit_head}")
                assert r["scale"] == pytest.approx(r["scale_per_host"] * r["n_villages_stated"]), r["project_id"]
            if pd.notna(r["scale_max"]):
                figures = [f"{r['scale']:g}-{r['scale_max']:g}{unit_head}"]
            assert any(f in low for f in figures), (r["project_id"], figures)
        if pd.notna(r["target_year"]):
            assert f"{r['target_year']}年" in text, r["project_id"]
        if pd.notna(r["n_villages_stated"]):
            assert chinese_numbers[int(r["n_villages_stated"])] + "个" in text, r["project_id"]
        for token in split_hosts(r["hosts_text"]):
            tw, _, village = token.partition("+")
            assert tw in text or tw.rstrip("镇乡") in text, (r["project_id"], token)
            if village:
                assert village in text, (r["project_id"], token)
        if r["at_least"]:
            assert "以上" in text, r["project_id"]


def test_table_names_every_village_of_the_chapter(projects):
    # every "township + village" pair the chapter writes (townships as the plan writes them)
    named = {"金峰镇+中山村", "厚坝镇+石龙村", "竹溪镇+青吉村", "渠口镇+茶香村", "镇东街道+安居村",
             "竹溪镇+夫坪村", "郭家镇+桑坪村", "中和镇+白果村", "郭家镇+盆丰村", "白桥镇+山茶村",
             "铁桥镇+龙王村", "竹溪镇+大海村", "巫山镇+盘龙村", "大进镇+新元村", "大进镇+杨柳村",
             "关面乡+青蒿村", "白泉乡+钟鼓村", "南门镇+龙河村", "南门镇+龙头村", "义和镇+同治村",
             "三汇口乡+咸乐村", "郭家镇+团保村", "白桥镇+柏大村", "渠口镇+双丰村", "大进镇+双龙桥村",
             "谭家镇+撕栗村", "白泉乡+罗家村", "大进镇+长城村", "中和镇+新义村", "渠口镇+剑阁楼村",
             "河堰镇+马家村", "温泉镇+顺平村", "长沙镇+齐圣村", "长沙镇+狮子村", "满月乡+马营村",
             "满月乡+顶星村", "满月乡+双坪村", "河堰镇+倪家村", "紫水乡+雄鹰村", "谭家镇+锦竹村"}
    in_table = {t for h in projects["hosts_text"] for t in split_hosts(h) if "+" in t}
    assert in_table == named
    assert projects["project_id"].is_unique
    assert len(projects) == 37


def test_split_hosts():
    assert split_hosts("金峰镇+中山村、大进镇; 长沙镇；临江镇") == ["金峰镇+中山村", "大进镇", "长沙镇", "临江镇"]
    assert split_hosts("") == []


# ------------------------------------------------------------------------------------------
# resolution
# ------------------------------------------------------------------------------------------
def test_ambiguous_names_resolve_by_township(projects, villages, townships):
    hosts, unresolved = resolve_hosts(projects, villages, townships)
    code = lambda pid, tok: _host(hosts, pid, tok)["village_code"].tolist()  # noqa: E731
    assert code("IND01", "金峰镇+中山村") == ["500154103203"]       # not 高桥镇 500154112205
    assert code("IND13", "金峰镇+中山村") == ["500154103203"]
    assert code("IND01", "厚坝镇+石龙村") == ["500154102202"]       # not 河堰镇 500154108204
    assert code("IND09", "渠口镇+双丰村") == ["500154125207"]       # not 南门镇 500154124217
    # 铁桥镇 has no 龙王村: not resolved to 大德镇's or 岳溪镇's 龙王村
    assert _host(hosts, "IND03", "铁桥镇+龙王村").empty
    row = unresolved[(unresolved["project_id"] == "IND03") & (unresolved["host_text"] == "铁桥镇+龙王村")]
    assert len(row) == 1
    reason = row["reason"].iloc[0]
    assert "铁桥镇 (500154119)" in reason and "大德镇 500154100202" in reason and "岳溪镇 500154122212" in reason
    assert row["suggestions"].iloc[0].startswith("龙王桥村 (500154119201)")
    assert row["township_code"].iloc[0] == "500154119"


def test_old_township_names_and_spelling_aliases(projects, villages, townships):
    hosts, _ = resolve_hosts(projects, villages, townships)
    h = _host(hosts, "IND06", "白泉乡+钟鼓村")
    assert h["village_code"].tolist() == ["500154127204"]
    assert h["township_name"].tolist() == ["雪宝山镇"] and h["match"].tolist() == ["alias"]
    assert "白泉乡 → 雪宝山镇" in h["match_note"].iloc[0]
    h = _host(hosts, "IND08", "郭家镇+团保村")
    assert h["village_code"].tolist() == ["500154105207"] and h["match"].tolist() == ["alias"]
    assert "团保村 → 团包村" in h["match_note"].iloc[0]
    h = _host(hosts, "IND21", "满月乡+马营村")
    assert h["village_code"].tolist() == ["500154126204"] and h["match"].tolist() == ["alias"]
    assert "满月乡 → 满月镇" in h["match_note"].iloc[0]
    h = _host(hosts, "IND27", "大进")
    assert h["township_code"].tolist() == ["500154109"]
    assert "大进 → 大进镇" in h["match_note"].iloc[0]
    # bare township stems of the plan (大进、镇安 ...) at township level
    h = _host(hosts, "IND27", "镇安")
    assert h["township_code"].tolist() == ["500154008"] and h["village_code"].tolist() == [""]
    assert _host(hosts, "IND01", "金峰镇+中山村")["match"].tolist() == ["exact"]


def test_every_named_host_is_placed_or_unresolved(projects, villages, townships):
    hosts, unresolved = resolve_hosts(projects, villages, townships)
    named = projects.loc[projects["host_level"].isin(["village", "township", "place"])]
    named_tokens = sorted((pid, t) for pid, h in zip(named["project_id"], named["hosts_text"])
                          for t in split_hosts(h))
    placed = hosts[hosts["host_level"] != "poverty_villages"]
    got = sorted(list(zip(placed["project_id"], placed["host_text"]))
                 + list(zip(unresolved["project_id"], unresolved["host_text"])))
    assert got == named_tokens
    assert unresolved["reason"].str.len().gt(20).all()
    # villages missing from this small layer are reported with the township found
    r = unresolved[(unresolved["project_id"] == "IND01") & (unresolved["host_text"] == "竹溪镇+青吉村")]
    assert r["township_code"].tolist() == [""]  # 竹溪镇 is not in the small townships layer
    assert "竹溪镇" in r["reason"].iloc[0]
    places = unresolved[unresolved["project_id"] == "IND28"]
    assert places["host_text"].tolist() == ["南山", "雪宝山", "铁峰山"]


def test_scale_is_never_split_unless_asked(projects, villages, townships):
    hosts, _ = resolve_hosts(projects, villages, townships)
    goats = hosts[hosts["project_id"] == "IND09"]
    assert len(goats) == 1 and goats["scale"].isna().all() and not goats["scale_assumed_split"].any()
    assert goats["project_scale"].iloc[0] == 16890
    assert "over 32 villages (3 named); not split" in goats["scale_basis"].iloc[0]
    even, _ = resolve_hosts(projects, villages, townships, split="even")
    goats = even[even["project_id"] == "IND09"]
    assert goats["scale"].iloc[0] == pytest.approx(16890 / 32)
    assert goats["scale_assumed_split"].all()
    assert goats["scale_basis"].iloc[0].startswith("assumed even split: 16890 / 32 villages")
    # a per-village figure given by the plan is never an assumption
    for frame in (hosts, even):
        farm = frame[frame["project_id"] == "IND24"]  # 平均发展30户以上
        assert (farm["scale"] == 30).all() and not farm["scale_assumed_split"].any()
    tea = hosts[hosts["project_id"] == "IND05"]  # 在大进镇集中发展茶叶10000亩: one host, whole total
    assert tea["scale"].tolist() == [10000.0] and tea["township_code"].tolist() == ["500154109"]


def test_township_hosts_at_seat_or_inside_polygon(projects, villages, townships, seats):
    hosts, _ = resolve_hosts(projects, villages, townships, seats=seats)
    tea = hosts[hosts["project_id"] == "IND05"].iloc[0]
    assert tea["location"] == "township seat"
    assert tea.geometry.equals(seats.geometry.iloc[0])
    manor = _host(hosts, "IND27", "厚坝")
    assert manor["location"].iloc[0] == "point inside township polygon"
    poly = townships.set_index("township_code").geometry.loc["500154102"]
    assert poly.contains(manor.geometry.iloc[0])


def test_poverty_village_projects(projects, villages, townships):
    hosts, _ = resolve_hosts(projects, villages, townships)
    pv = hosts[hosts["project_id"] == "IND34"]
    assert sorted(pv["village_code"]) == sorted(POVERTY)
    assert (pv["scale"] == 300).all() and (pv["unit"] == "kW").all()
    table = project_status(projects, hosts, pd.DataFrame(columns=["project_id"]))
    totals = product_totals(table, hosts).set_index("product")
    assert totals.loc["村级光伏电站", "placed_scale"] == 300 * len(POVERTY)
    assert totals.loc["村级光伏电站", "plan_total"] == 40500
    assert math.isnan(totals.loc["山羊", "placed_scale"])  # a total only: never placed per village


def test_inputs_unchanged_and_errors(projects, villages, townships):
    before_v, before_p = villages.copy(), projects.copy()
    resolve_hosts(projects, villages, townships, split="even")
    pd.testing.assert_frame_equal(villages, before_v)
    pd.testing.assert_frame_equal(projects, before_p)
    with pytest.raises(OptionError, match="split 'half'"):
        resolve_hosts(projects, villages, townships, split="half")
    with pytest.raises(LayerError, match="villages: missing column"):
        resolve_hosts(projects, villages.drop(columns="township_code"), townships)


def test_project_status_keeps_every_row(projects, villages, townships):
    hosts, unresolved = resolve_hosts(projects, villages, townships)
    table = project_status(projects, hosts, unresolved)
    assert len(table) == len(projects) and table["status"].ne("").all()
    st = table.set_index("project_id")["status"]
    assert st["IND01"] == "partly placed"          # 竹溪镇 is not in the small layer
    assert st["IND03"] == "not placed: no host found"  # none of its 4 hosts is in the small layer
    assert st["IND14"].startswith("district-wide")
    assert st["IND28"].startswith("not placed")
    assert (table.set_index("project_id").loc["IND09", ["n_hosts_named", "n_hosts", "n_unresolved"]].tolist()
            == [3, 1, 2])


# ------------------------------------------------------------------------------------------
# pipeline step
# ------------------------------------------------------------------------------------------
def _context(villages, townships, seats, **options):
    from kaizhou_gis.layers import Layers
    from kaizhou_gis.pipeline import Context
    from kaizhou_gis.plan import load_plan

    empty = gpd.GeoDataFrame(geometry=[], crs=CRS)
    layers = Layers(boundary=empty, townships=townships, township_seats=seats, villages=villages,
                    settlements=empty, roads=empty, dem_path="")
    return Context(layers=layers, plan=load_plan(), options=options)


def test_run_writes_tables_and_layer(tmp_path, villages, townships, seats):
    from kaizhou_gis import outputs

    res = _context(villages, townships, seats).result("industry")
    assert set(res.files) == {"industry/projects.csv", "industry/projects.gpkg",
                              "industry/unresolved.csv", "industry/totals.csv"}
    assert isinstance(res.data, IndustryData) and len(res.data.projects) == 37
    assert res.summary["n_projects"] == 37 and res.summary["split"] == "none"
    # 69 named hosts in the table; 18 of the small layer's villages, so most are not found
    assert res.summary["n_named_hosts"] == 69
    assert res.summary["n_named_hosts_placed"] + res.summary["n_unresolved"] == 69
    assert res.summary["n_named_villages"] == 50  # 12 township and 7 place names besides
    assert 1 <= len(res.summary["headline"]) <= 4
    outputs.write_products(tmp_path, res.files)
    raw = (tmp_path / "industry/projects.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(tmp_path / "industry/projects.csv", encoding="utf-8-sig", dtype=str)
    assert len(table) == 37 and "晚熟柑橘" in set(table["product"])
    layer = gpd.read_file(tmp_path / "industry/projects.gpkg", layer="industry_hosts")
    assert len(layer) == len(res.data.hosts) and layer.crs.to_epsg() == 4545
    assert "500154103203" in set(layer["village_code"])
    unres = pd.read_csv(tmp_path / "industry/unresolved.csv", encoding="utf-8-sig", dtype=str)
    assert "铁桥镇+龙王村" in set(unres["host_text"])
    per_tw = res.summary["projects_per_township"]
    # 大进镇: vegetables, tea (township host), fish, biogas, demo village, manors, e-commerce, PV
    assert per_tw["500154109"] == 8
    assert per_tw["500154103"] == 3  # 金峰镇 中山村: citrus, grain, biogas
    totals = {t["product"]: t["plan_total"] for t in res.summary["totals"]}
    assert totals["山羊"] == 16890 and totals["村级光伏电站"] == 40500


def test_run_for_one_township_and_even_split_option(villages, townships, seats):
    res = _context(villages, townships, seats, township="500154103").result("industry")  # 金峰镇
    assert sorted(res.data.projects["project_id"]) == ["IND01", "IND08", "IND13"]
    assert set(res.data.hosts["township_code"]) == {"500154103"}
    assert res.data.unresolved.empty
    assert res.summary["projects_per_township"] == {"500154103": 3}
    assert res.summary["headline"][0] == ("3 plan projects (ch.3) in 金峰镇; 3 named hosts in 金峰镇: "
                                          "3 placed")
    res = _context(villages, townships, seats, split="even").result("industry")
    h = res.data.hosts
    assert h.loc[h["project_id"] == "IND09", "scale"].tolist() == [pytest.approx(16890 / 32)]
    assert res.summary["split"] == "even"


# ------------------------------------------------------------------------------------------
# the shipped layers
# ------------------------------------------------------------------------------------------
def test_resolution_on_shipped_layers(projects):
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.plan import load_plan

    layers = load_layers(None, plan=load_plan())
    hosts, unresolved = resolve_hosts(projects, layers.villages, layers.townships,
                                      seats=layers.township_seats)
    code = lambda pid, tok: _host(hosts, pid, tok)["village_code"].tolist()  # noqa: E731
    assert code("IND01", "金峰镇+中山村") == ["500154103203"]
    assert code("IND02", "厚坝镇+石龙村") == ["500154102202"]
    assert code("IND09", "渠口镇+双丰村") == ["500154125207"]
    assert code("IND10", "白泉乡+罗家村") == ["500154127201"]
    assert code("IND08", "郭家镇+团保村") == ["500154105207"]
    village_level = unresolved[unresolved["village_text"] != ""]
    assert village_level["host_text"].tolist() == ["铁桥镇+龙王村"]
    n_poverty = int(layers.villages["poverty_village"].sum())
    assert (hosts["project_id"] == "IND34").sum() == n_poverty
    assert np.isfinite(hosts.geometry.x).all()


def test_broken_project_table_is_reported_once(monkeypatch):
    from kaizhou_gis.errors import PlanError

    real = industry_projects._read_data_csv
    good = real("industry_projects.csv")

    def fake(name):
        if name != "industry_projects.csv":
            return real(name)
        bad = good.copy()
        bad.loc[1, "project_id"] = bad.loc[0, "project_id"]      # duplicate id
        bad.loc[2, "host_level"] = "county"                      # unknown level
        bad.loc[3, "hosts_text"] = "镇东街道安居村"               # village host without '+'
        bad.loc[4, "scale"] = "about 10000"                      # not a number
        return bad

    monkeypatch.setattr(industry_projects, "_read_data_csv", fake)
    with pytest.raises(PlanError) as e:
        load_projects()
    msg = str(e.value)
    assert "4 problem(s)" in msg
    assert "duplicated ids IND01" in msg and "host_level: unknown in IND03" in msg
    assert "镇名+村名 in IND04" in msg and "scale: not a number in IND05" in msg


def test_poverty_village_projects_without_flagged_villages_are_listed_unresolved(
        projects, villages, townships):
    # A user's villages layer with no poverty_village column arrives all-False from the loader:
    # the per-poverty-village projects must say why they are not placed, not vanish.
    v = villages.assign(poverty_village=False)
    hosts, unresolved = resolve_hosts(projects, v, townships)
    pv_ids = set(projects.loc[projects["host_level"].eq("poverty_villages"), "project_id"])
    assert not hosts["project_id"].isin(pv_ids).any()
    listed = unresolved[unresolved["project_id"].isin(pv_ids)]
    assert set(listed["project_id"]) == pv_ids
    assert listed["reason"].str.contains("poverty_village").all()
