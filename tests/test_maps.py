"""Tests of kaizhou_gis.maps: offline folium maps (HTML); the print sheets (PDF/PNG) are stubbed
here and tested in test_print.py.

Most tests use a tiny synthetic district (two townships, six villages, a DEM with one hill)
built here, with fake results of the access, relocation and industry steps that follow the data
contract. The size-budget test reads the maps of the session's run on the shipped layers.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from unittest import mock

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, box

from kaizhou_gis import maps
from kaizhou_gis.errors import LayerError, OptionError
from kaizhou_gis.layers import Layers
from kaizhou_gis.maps import hillshade as hs
from kaizhou_gis.maps.mapassets import remote_references, script_json
from kaizhou_gis.pipeline import Context, StepResult
from kaizhou_gis.plan import load_plan
from kaizhou_gis.results import AccessData, IndustryData, RelocationData

INJECTION = "<img src=x onerror=alert(1)>"
WORK = "EPSG:4545"
T1, T2 = "500154101", "500154102"


def _dem(path: Path) -> str:
    """A 0.2° x 0.1° DEM at 3 arc-seconds with a 1500 m cone-shaped hill in the east."""
    res = 1 / 1200
    west, north = 108.30, 31.25
    w, h = int(round(0.2 / res)), int(round(0.1 / res))
    lon = west + (np.arange(w) + 0.5) * res
    lat = north - (np.arange(h) + 0.5) * res
    lo, la = np.meshgrid(lon, lat)
    dist = np.hypot((lo - 108.45) * 95.0, (la - 31.20) * 111.0)  # km
    z = np.clip(1500.0 - 150.0 * dist, 300.0, None).astype("int16")
    z[0, 0] = -32768
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="int16",
                       crs="EPSG:4326", transform=from_origin(west, north, res, res),
                       nodata=-32768) as ds:
        ds.write(z, 1)
    return str(path)


def synthetic_layers(tmp_path: Path) -> Layers:
    """Two townships side by side (west: T1, east: T2 with the hill), six villages."""
    g = lambda geoms: gpd.GeoSeries(geoms, crs="EPSG:4326").to_crs(WORK)  # noqa: E731
    t1 = box(108.31, 31.16, 108.40, 31.24)
    t2 = box(108.40, 31.16, 108.49, 31.24)
    boundary = gpd.GeoDataFrame({"code": ["500154"], "name": ["开州区"]}, geometry=g([t1.union(t2)]))
    townships = gpd.GeoDataFrame({"township_code": [T1, T2], "name": ["甲镇", "乙乡"],
                                  "kind": ["镇", "乡"], "source": ["real", "real"]}, geometry=g([t1, t2]))
    seats = gpd.GeoDataFrame({"township_code": [T1, T2], "name": ["甲镇驻地", "乙乡驻地"],
                              "elevation_m": [350.0, np.nan], "source": ["real", "synthetic"]},
                             geometry=g([Point(108.35, 31.20), Point(108.42, 31.19)]))
    names = ["东风村", "红旗村", INJECTION, "高山村", "云顶村", "河坝社区"]
    vpts = [Point(108.33, 31.18), Point(108.37, 31.22), Point(108.38, 31.17),
            Point(108.45, 31.20), Point(108.47, 31.22), Point(108.42, 31.175)]
    villages = gpd.GeoDataFrame({
        "village_code": [f"{T1}{i:03d}" for i in (201, 202, 203)] + [f"{T2}{i:03d}" for i in (201, 202, 3)],
        "name": names,
        "township_code": [T1, T1, T1, T2, T2, T2],
        "kind": ["村", "村", "村", "村", "村", "社区"],
        "households": [300, 250, 120, 180, 90, 600],
        "population": [900, 800, 400, 560, 280, 1900],
        "poverty_village": [False, True, False, True, True, False],
        "deep_poverty": [False, False, False, True, False, False],
        "poverty_source": ["", "plan", "", "plan", "synthetic", ""],
        "source": ["synthetic"] * 6}, geometry=g(vpts))
    spts = [Point(108.332, 31.182), Point(108.451, 31.201), Point(108.455, 31.205),
            Point(108.47, 31.224), Point(108.381, 31.171)]
    settlements = gpd.GeoDataFrame({
        "settlement_id": ["S1", "S2", "S3", "S4", "S5"],
        "name": ["一组", "山顶组", "<b>bold</b>组", "云顶组", "坝上组"],
        "village_code": [villages.village_code[0], villages.village_code[3], villages.village_code[3],
                         villages.village_code[4], villages.village_code[2]],
        "households": [40, 35, 12, 50, 20], "population": [120, 110, 40, 150, 60],
        "source": ["synthetic"] * 5}, geometry=g(spts))
    roads = gpd.GeoDataFrame({
        "road_id": ["R1", "R2", "R3"], "road_class": ["county", "village", "track"],
        "surface": ["paved", "unpaved", "unpaved"], "source": ["real", "synthetic", "synthetic"]},
        geometry=g([LineString([(108.32, 31.20), (108.42, 31.19)]),
                    LineString([(108.42, 31.19), (108.45, 31.201)]),
                    LineString([(108.35, 31.20), (108.37, 31.22)])]))
    return Layers(boundary=boundary, townships=townships, township_seats=seats, villages=villages,
                  settlements=settlements, roads=roads, dem_path=_dem(tmp_path / "dem.tif"),
                  source="synthetic test layers",
                  attribution="Every map must carry this text:\n\n> Names: NBS 2023 (real).\n"
                              "> Settlements and roads are SYNTHESIZED for tests.\n\n"
                              "Short form (map footers): `names NBS 2023 · settlements, roads SYNTHESIZED`")


def fake_results(L: Layers) -> dict[str, StepResult]:
    """Results of access/relocation/industry following the data contract."""
    v = L.villages.copy()
    v["tongda"] = [True, True, True, True, False, True]
    v["tongchang"] = [True, False, True, True, False, True]
    v["reason"] = ["", "路面未硬化", "", "", "无道路 no road within 500 m", ""]
    v["network_km_to_seat"] = [2.5, 4.0, 6.0, 3.3, np.nan, 1.0]
    s = L.settlements.copy()
    s["tongda"] = [True, True, False, False, True]
    s["tongchang"] = [True, False, False, False, False]
    s["target_group"] = [True, True, False, True, False]
    s["reason"] = ["", "路面未硬化", "no road", "no road", ""]
    works = gpd.GeoDataFrame({"work_id": ["W1", "W2"], "type": ["new", "upgrade"], "km": [3.2, 1.1],
                              "cost_yuan": [5.76e6, 7.2e5], "beneficiaries": ["S4;S2", "S2"]},
                             geometry=gpd.GeoSeries([LineString([(108.45, 31.201), (108.47, 31.224)]),
                                                     LineString([(108.42, 31.19), (108.45, 31.201)])],
                                                    crs="EPSG:4326").to_crs(WORK))
    access = StepResult("access", data=AccessData(villages=v, settlements=s, works=works))
    rs = L.settlements.copy()
    rs["elevation_m"] = [420.0, 1480.0, 1390.0, 1150.0, 500.0]
    rs["slope_deg"] = [5.0, 31.0, 28.0, 12.0, 3.0]
    rs["relocation_candidate"] = [False, True, True, True, False]
    rs["priority"] = [np.nan, 88.0, 75.0, 60.0, np.nan]
    rs["reasons_zh"] = ["", "海拔1480米>800米; 坡度31°", "海拔1390米>800米", "海拔1150米>800米", ""]
    rs["status"] = ["not_candidate", "assigned", "assigned", "unassigned", "not_candidate"]
    rs["schedule_year"] = pd.array([pd.NA, 2016, 2016, 2017, pd.NA], dtype="Int64")
    sites = gpd.GeoDataFrame({"site_id": ["P1", "P2"], "township_code": [T2, T1],
                              "elevation_m": [450.0, 380.0], "slope_deg": [4.0, 3.0],
                              "suitability": [0.8, 0.7], "capacity_households": [120, 60],
                              "assigned_households": [47, 0]},
                             geometry=gpd.GeoSeries([Point(108.42, 31.18), Point(108.34, 31.19)],
                                                    crs="EPSG:4326").to_crs(WORK))
    assignment = pd.DataFrame({"settlement_id": ["S2", "S3"], "site_id": ["P1", "P1"],
                               "households": [35, 12], "distance_km": [3.4, 3.9]})
    unassigned = pd.DataFrame({"settlement_id": ["S4"], "households": [50], "reason": ["no capacity"]})
    reloc = StepResult("relocation", data=RelocationData(settlements=rs, sites=sites, assignment=assignment,
                                                         unassigned=unassigned))
    vv = L.villages
    hosts = gpd.GeoDataFrame({
        "project_id": ["P01", "P01", "P02"],
        "village_code": [vv.village_code[1], vv.village_code[3], vv.village_code[4]],
        "village_name": [vv.name[1], vv.name[3], vv.name[4]], "township_name": ["甲镇", "乙乡", "乙乡"],
        "category": ["种植业", "种植业", "乡村旅游"], "product": ["柑橘", "柑橘", INJECTION],
        "scale": [500.0, 500.0, 2.0], "unit": ["亩", "亩", "个"], "target_year": [2017, 2017, 2018],
        "scale_assumed_split": [True, True, False]},
        geometry=gpd.GeoSeries([vv.geometry[1], vv.geometry[3], vv.geometry[4]], crs=WORK))
    industry = StepResult("industry", data=IndustryData(
        hosts=hosts, projects=pd.DataFrame({"project_id": ["P01", "P02"]}),
        unresolved=pd.DataFrame({"project_id": ["P03"], "township_text": ["某镇"], "village_text": [""],
                                 "reason": ["not found"]})))
    return {"access": access, "relocation": reloc, "industry": industry}


def make_ctx(tmp_path: Path, *, results: bool = True, **options) -> Context:
    L = synthetic_layers(tmp_path)
    ctx = Context(layers=L, plan=load_plan(), options=dict(options))
    if results:
        ctx.results.update(fake_results(L))
    else:  # every other step "failed"
        for n in ("access", "relocation", "industry"):
            ctx.failed[n] = f"{n} crashed in this test"
    return ctx


def _stub_sheet(specs, text, *, formats=("pdf", "png"), **kw):
    return {f: b"stub " + f.encode() for f in formats}


@pytest.fixture(scope="module", autouse=True)
def _fast_sheets():
    """Print sheets are drawn by test_print.py; here a stub keeps the many map builds fast."""
    with mock.patch("kaizhou_gis.maps.sheet.render_sheet", _stub_sheet):
        yield


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("maps")
    ctx = make_ctx(tmp)
    res = maps.run(ctx, ctx.needs_of("maps"))
    pages = {rel: str(obj) for rel, obj in res.files.items() if rel.endswith(".html")}
    return ctx, res, pages


def _spec_layers(page: str) -> dict[str, dict]:
    """The layer specs embedded in a rendered page, by key."""
    out = {}
    for m in re.finditer(r"KZ\.layer\([a-z_0-9]+, (\{.*?\})\);\n", page):
        spec = json.loads(m.group(1))
        out[spec["key"]] = spec
    return out


def test_files_district_and_every_township(built):
    _, res, _ = built
    assert sorted(res.files) == sorted(
        ["maps/overview.html", "maps/relocation.html", "maps/industry.html", "maps/access.html",
         "maps/overview.pdf",
         f"maps/townships/{T1}.html", f"maps/townships/{T1}.png", f"maps/townships/{T1}.pdf",
         f"maps/townships/{T2}.html", f"maps/townships/{T2}.png", f"maps/townships/{T2}.pdf"])
    assert res.summary["maps"] == 6 and res.summary["township_maps"] == 2
    assert res.summary["over_budget"] == []
    assert 1 <= len(res.summary["headline"]) <= 4


def test_pages_are_offline(built):
    _, _, pages = built
    for rel, page in pages.items():
        assert remote_references(page) == [], rel
        assert "cdn.jsdelivr" not in page and "code.jquery" not in page, rel
        assert "L.markerClusterGroup" in page or "markercluster" not in page.lower()
        assert page.count("Leaflet 1.9.4") == 1  # inlined exactly once
        assert "sourceMappingURL" not in page


def test_injection_is_escaped_everywhere(built):
    _, _, pages = built
    for rel, page in pages.items():
        assert INJECTION not in page, rel   # never raw: escaped in HTML, \u003c in JSON
        assert "<b>bold</b>" not in page, rel
    ov = pages["maps/overview.html"]
    villages = _spec_layers(ov)["villages"]
    names = [row[3][villages["tf"]] for row in villages["data"]]
    assert INJECTION in names  # the data keeps the real name; the runtime shows it as text
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in ov


def test_overview_layers_and_village_popup_values(built):
    _, _, pages = built
    specs = _spec_layers(pages["maps/overview.html"])
    assert {"boundary", "townships", "roads", "seats", "villages"} <= set(specs)
    v = specs["villages"]
    rows = {row[3][0]: row for row in v["data"]}
    # 高山村 is deep-poverty (category 0), 红旗村 poverty (1), 东风村 other (2), 河坝社区 community (3)
    assert rows["高山村"][1] == 0 and rows["红旗村"][1] == 1 and rows["东风村"][1] == 2 and rows["河坝社区"][1] == 3
    f = v["f"]
    gs = dict(zip(f, rows["高山村"][3]))
    assert gs["户数 households"] == 180 and gs["人口 population"] == 560
    # 高山村 sits 0 km from the hill top (1500 m) of the synthetic DEM
    elev = int(gs["海拔 elevation"].replace(",", "").split()[0])
    assert 1400 <= elev <= 1500
    assert dict(zip(f, rows["云顶村"][3]))["道路 road access"] == "未通达"
    # roads merged per surface class: one paved multi-line, one unpaved
    assert sorted(r[1] for r in specs["roads"]["data"]) == [0, 1]


def test_relocation_map_classes_sites_and_lines(built):
    _, _, pages = built
    specs = _spec_layers(pages["maps/relocation.html"])
    cand = specs["candidates"]
    labels = [c["label"] for c in cand["cats"]]
    assert labels == ["< 800 m", "800–1,000 m", "1,000–1,200 m", "1,200–1,500 m", "≥ 1,500 m"]
    by_id = {row[3][1]: row[1] for row in cand["data"]}
    assert by_id == {"S2": 3, "S3": 3, "S4": 2}  # 1480, 1390 → 1200–1500; 1150 → 1000–1200
    assert len(specs["settlements_other"]["data"]) == 2
    sites = {row[3][1]: row for row in specs["sites"]["data"]}
    assert sites["P1"][1] == 0 and sites["P2"][1] == 1  # in use / unused
    assert sites["P1"][2] > sites["P2"][2]  # radius grows with capacity
    assert len(specs["assignment"]["data"]) == 2


def test_industry_and_access_layers(built):
    _, _, pages = built
    ind = _spec_layers(pages["maps/industry.html"])["industry"]
    assert [c["label"] for c in ind["cats"]] == sorted(["种植业", "乡村旅游"])
    assert len(ind["data"]) == 3
    acc = _spec_layers(pages["maps/access.html"])
    gaps = {row[3][1]: row[1] for row in acc["gaps"]["data"]}
    assert gaps == {"S2": 0, "S4": 1}  # S2 road not hardened, S4 not reached; S1 fine, S3/S5 not targets
    works = {row[3][0]: row[1] for row in acc["works"]["data"]}
    assert works == {"W1": 0, "W2": 1}
    assert "未能定位到村" in pages["maps/industry.html"]  # the unresolved project is reported


def test_township_map_is_limited_to_its_township(built):
    _, _, pages = built
    specs = _spec_layers(pages[f"maps/townships/{T2}.html"])
    names = {row[3][0] for row in specs["villages"]["data"]}
    assert names == {"高山村", "云顶村", "河坝社区"}
    assert {row[3][1] for row in specs["candidates"]["data"]} == {"S2", "S3", "S4"}
    assert {row[3][1] for row in specs["sites"]["data"]} == {"P1"}
    assert {row[3][0] for row in specs["works"]["data"]} == {"W1", "W2"}
    # the township polygon is drawn bold (category 1), the neighbour thin
    cats = sorted(r[1] for r in specs["townships"]["data"])
    assert cats == [0, 1]
    t1 = _spec_layers(pages[f"maps/townships/{T1}.html"])
    assert "works" not in t1 or all(r[3][0] != "W1" for r in t1["works"]["data"])
    assert "甲镇" in pages[f"maps/townships/{T1}.html"]


def test_search_index_legend_and_attribution(built):
    _, _, pages = built
    page = pages["maps/overview.html"]
    m = re.search(r"KZ\.addSearch\(map, (\[.*?\]), ", page)
    index = json.loads(m.group(1))
    assert ["高山村", "乙乡", "villages", 3] in [e for e in index] or any(
        e[0] == "高山村" and e[2] == "villages" for e in index)
    # every village (with its code, for search by code) and every township seat, each once
    assert sorted(e[2] for e in index) == ["seats"] * 2 + ["villages"] * 6
    assert {e[4] for e in index if e[2] == "villages"} == {f"{T1}201", f"{T1}202", f"{T1}203",
                                                           f"{T2}201", f"{T2}202", f"{T2}003"}
    rel = json.loads(re.search(r"KZ\.addSearch\(map, (\[.*?\]), ", pages["maps/relocation.html"]).group(1))
    assert {e[0] for e in rel if e[2] in ("candidates", "settlements_other")} == {
        "一组", "山顶组", "<b>bold</b>组", "云顶组", "坝上组"}  # settlements are searchable too
    assert 'id="kz-legend"' in page and "深度贫困村 deep-poverty village" in page
    # the attribution control carries the README's short form; the notes panel the full text
    assert "names NBS 2023 · settlements, roads SYNTHESIZED | 晕渲底图" in page
    assert "Settlements and roads are SYNTHESIZED for tests." in page


def test_attribution_without_readme_names_synthesized_layers(tmp_path):
    ctx = make_ctx(tmp_path, township=T1)
    ctx.layers.attribution = ""
    page = str(maps.run(ctx, ctx.needs_of("maps")).files[f"maps/townships/{T1}.html"])
    assert "合成数据 SYNTHESIZED layers: township_seats, villages, settlements, roads" in page
    full, short = maps.attribution_parts("intro\n> a (MIT)\n> b SYNTHESIZED\nShort form: `a · b`")
    assert full == ["a (MIT)", "b SYNTHESIZED"] and short == "a · b"


def test_no_prints_leaves_out_the_township_sheets_only(tmp_path):
    ctx = make_ctx(tmp_path, prints=False)
    res = maps.run(ctx, ctx.needs_of("maps"))
    assert sorted(res.files) == sorted(
        ["maps/overview.html", "maps/relocation.html", "maps/industry.html", "maps/access.html",
         "maps/overview.pdf", f"maps/townships/{T1}.html", f"maps/townships/{T2}.html"])
    assert res.summary["township_prints"] is False
    assert "township print sheets left out: --no-prints" in res.summary["headline"][0]
    assert ctx.output_options["prints"] is False  # recorded in the manifest beside the fingerprint


def test_no_prints_on_the_command_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kaizhou_gis import cli

    seen = {}
    monkeypatch.setattr(cli, "_run", lambda names, **kw: seen.update(names=names, **kw))
    res = CliRunner().invoke(cli.main, ["maps", "--no-prints", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert seen["names"] == ["maps"] and seen["options"]["prints"] is False


def test_missing_steps_are_reported_not_fatal(tmp_path):
    ctx = make_ctx(tmp_path, results=False)
    res = maps.run(ctx, ctx.needs_of("maps"))
    page = str(res.files["maps/relocation.html"])
    assert "缺少图层 missing layer: 搬迁 relocation" in page
    assert "relocation crashed in this test" in page
    specs = _spec_layers(page)
    assert "candidates" not in specs and "sites" not in specs and "boundary" in specs
    assert "villages" in specs  # still searchable by village name
    assert set(res.summary["missing_layers"]) == {"access", "relocation", "industry"}
    ov = _spec_layers(str(res.files["maps/overview.html"]))
    assert "villages" in ov  # poverty status needs no other step


def test_one_township_only(tmp_path):
    ctx = make_ctx(tmp_path, township=T1)
    res = maps.run(ctx, ctx.needs_of("maps"))
    assert sorted(res.files) == [f"maps/townships/{T1}.html", f"maps/townships/{T1}.pdf",
                                 f"maps/townships/{T1}.png"]


def test_basemap_options(tmp_path):
    with pytest.raises(OptionError, match="tianditu-key"):
        make_ctx(tmp_path, basemap="tianditu").result("maps")
    with pytest.raises(OptionError, match="unknown basemap"):
        make_ctx(tmp_path, basemap="google").result("maps")
    with pytest.raises(OptionError, match="tianditu-key"):
        make_ctx(tmp_path, basemap="tianditu", tianditu_key='k"};alert(1)//').result("maps")
    res = make_ctx(tmp_path, basemap="tianditu", tianditu_key="KEY12345", township=T1).result("maps")
    page = str(res.files[f"maps/townships/{T1}.html"])
    assert "tianditu.gov.cn" in page and "tk=KEY12345" in page


def test_gaode_variant_shifts_overlays(tmp_path):
    off = make_ctx(tmp_path, township=T1).result("maps")
    gd = make_ctx(tmp_path, basemap="gaode", township=T1).result("maps")
    a = _spec_layers(str(off.files[f"maps/townships/{T1}.html"]))["villages"]["data"]
    b = _spec_layers(str(gd.files[f"maps/townships/{T1}.html"]))["villages"]["data"]
    dlat = b[0][0][0] - a[0][0][0]
    dlon = b[0][0][1] - a[0][0][1]
    # near Kaizhou GCJ-02 is ~+0.0046° lon, ~-0.0021° lat off WGS84
    assert 0.003 < dlon < 0.006 and -0.004 < dlat < -0.001
    assert "autonavi" in str(gd.files[f"maps/townships/{T1}.html"])


def test_hillshade_faces_the_sun():
    # a plane rising to the east faces west: a western sun (azimuth 270) lights it more than flat
    res = 1 / 1200
    t = from_origin(108.0, 31.0, res, res)
    z = np.tile(np.arange(20, dtype=float) * 20.0, (10, 1))
    flat = hs.hillshade(np.zeros((10, 20)), t, "EPSG:4326", azimuth_deg=270, altitude_deg=45)
    west = hs.hillshade(z, t, "EPSG:4326", azimuth_deg=270, altitude_deg=45)
    east = hs.hillshade(z, t, "EPSG:4326", azimuth_deg=90, altitude_deg=45)
    assert np.allclose(flat, np.sin(np.radians(45)))
    assert east[5, 10] < flat[5, 10] < west[5, 10]


def test_read_hillshade_geographic_projected_and_outside(tmp_path):
    with rasterio.open(_dem(tmp_path / "geo.tif")) as ds:
        h = hs.read_hillshade(ds, (108.42, 31.17, 108.48, 31.23), width_px=120, azimuth_deg=315,
                              altitude_deg=45)
        assert h.shade.shape[1] == 120 and h.bounds[0] == pytest.approx(108.42, abs=1e-3)
        # the cone's north-west flank faces the sun: brighter than its south-east flank
        assert h.shade[20, 20] > h.shade[-20, -20]
        assert hs.read_hillshade(ds, (100.0, 20.0, 100.1, 20.1), width_px=50, azimuth_deg=315,
                                 altitude_deg=45) is None
    # a projected DEM (EPSG:4545, 30 m cells) rising to the east is shaded and returned in lon/lat
    from pyproj import Transformer
    x0, y0 = Transformer.from_crs(4326, WORK, always_xy=True).transform(108.3, 31.25)
    z = np.tile(np.linspace(0, 1000, 300, dtype="float32"), (200, 1))
    path = tmp_path / "proj.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=200, count=1, dtype="float32",
                       crs=WORK, transform=from_origin(x0, y0, 30, 30)) as ds:
        ds.write(z, 1)
    with rasterio.open(path) as ds:
        h = hs.read_hillshade(ds, (108.29, 31.18, 108.40, 31.26), width_px=300, azimuth_deg=270,
                              altitude_deg=45)
    assert 108.29 < h.bounds[0] < 108.31 and 31.24 < h.bounds[3] < 31.26
    flat = np.sin(np.radians(45))
    assert np.nanmedian(h.shade) > flat + 0.05  # west-facing slope, sun in the west


def test_mercator_rows_keep_edges():
    img = np.arange(100).reshape(100, 1)
    out = hs.to_web_mercator_rows(img, (108.0, 0.0, 109.0, 60.0))
    assert out[0, 0] == 0 and out[-1, 0] == 99
    # Web Mercator stretches high latitudes: the middle row of the map is at ~35.3° N, not 30° N
    assert 40 <= out[50, 0] <= 42


def test_script_json_cannot_close_a_script():
    s = script_json({"a": "</script><script>alert(1)</script>", "b": "a&b"})
    assert "<" not in s and ">" not in s and "&" not in s
    assert json.loads(s) == {"a": "</script><script>alert(1)</script>", "b": "a&b"}


@pytest.mark.slow
def test_shipped_layers_within_size_budget(shipped_run):
    """The maps of the session's ``kaizhou-gis run`` on the shipped layers, as written."""
    import pyogrio

    plan = load_plan()
    shipped = Path(__file__).resolve().parent.parent / "layers" / "kaizhou.gpkg"
    n_tw = pyogrio.read_info(shipped, layer="townships")["features"]
    maps_dir = shipped_run.out / "maps"
    files = sorted(p.relative_to(maps_dir).as_posix() for p in maps_dir.rglob("*") if p.is_file())
    htmls = [r for r in files if r.endswith(".html")]
    assert len(htmls) == 4 + n_tw and n_tw == 40
    assert sum(r.startswith("townships/") and r.endswith(".png") for r in files) == n_tw
    assert sum(r.endswith(".pdf") for r in files) == n_tw + 1  # + the district overview
    for rel in htmls:
        page = (maps_dir / rel).read_text(encoding="utf-8")
        mb = len(page.encode("utf-8")) / 2**20
        limit = plan["maps.township_max_mb" if rel.startswith("townships/") else "maps.district_max_mb"]
        assert mb <= limit <= (2.0 if rel.startswith("townships/") else 6.0), (rel, mb)
        assert remote_references(page) == [], rel


def test_names_are_not_templates_and_codes_name_files(tmp_path):
    ctx = make_ctx(tmp_path, township=T1)
    tw = ctx.layers.townships.copy()
    tw.loc[tw["township_code"] == T1, "name"] = "丙{{ 7*7 }}镇"
    ctx.layers.townships = tw
    page = str(maps.run(ctx, ctx.needs_of("maps")).files[f"maps/townships/{T1}.html"])
    assert "丙{{ 7*7 }}镇" in page and "丙49镇" not in page
    ctx = make_ctx(tmp_path)
    tw = ctx.layers.townships.copy()
    tw.loc[tw["township_code"] == T2, "township_code"] = "../evil"
    ctx.layers.townships = tw
    with pytest.raises(LayerError, match=r"\.\./evil"):
        maps.run(ctx, ctx.needs_of("maps"))


def test_layer_loader_notes_are_on_the_page(tmp_path):
    # A user's villages layer without poverty flags: every village is drawn "other village";
    # the page must say why (the loader's note), escaped like any layer text.
    ctx = make_ctx(tmp_path, township=T1)
    ctx.layers.notes = ["villages.poverty_village: no column; every village counts as not poverty village.",
                        f"villages.name: {INJECTION}"]
    page = str(maps.run(ctx, ctx.needs_of("maps")).files[f"maps/townships/{T1}.html"])
    assert "villages.poverty_village: no column" in page
    assert "villages.name: &lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("url, kwargs", [
    ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", dict(overlay=False, show=False, max_zoom=19)),
    ("https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY12345",
     dict(subdomains="01234567", overlay=True, show=True, max_zoom=18)),
    ("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
     dict(subdomains="1234", overlay=False, show=True, max_zoom=18)),
])
def test_tile_layer_is_folium_s_own_layer_for_the_url(url, kwargs):
    """The online base layers are made without folium's search of provider names
    (page._tile_layer): the same URL template, options, name and HTML as folium's TileLayer."""
    import folium

    from kaizhou_gis.maps.page import _tile_layer

    mine = _tile_layer(url, attr="© 测试 <b>", name="底图 Base", **kwargs)
    theirs = folium.TileLayer(url, attr="© 测试 <b>", name="底图 Base", **kwargs)
    assert mine.tiles == theirs.tiles == url
    assert mine.options == theirs.options and mine.tile_name == theirs.tile_name
    assert (mine.overlay, mine.control, mine.show) == (theirs.overlay, theirs.control, theirs.show)
    pages = []
    for layer in (mine, theirs):
        m = folium.Map(tiles=None)
        layer._id = "fixed"
        layer.add_to(m)
        pages.append(layer._template.module.script(layer, {}))
    assert pages[0] == pages[1] and "L.tileLayer(" in pages[0]
