"""Road access (通达/通畅) on hand-made networks where the answer is known, and the access step."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point

from kaizhou_gis import access, admin
from kaizhou_gis.layers import Layers
from kaizhou_gis.network import DemGrid
from kaizhou_gis.plan import load_plan

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_400_000.0
SEAT = "500154001"


def L(*pts):
    return LineString([(X0 + x, Y0 + y) for x, y in pts])


def P(x, y):
    return Point(X0 + x, Y0 + y)


def scenario() -> tuple[Layers, DemGrid]:
    """One township; seat at the west end of a 5 km paved road.

    R0 paved main road (vertices every km); R1 unpaved spur from the main road's vertex at 2 km;
    R2 a paved fragment 5 km north; R3 a paved road crossing R0 at x = 3 km WITHOUT a shared vertex
    (an overpass), so it is a separate fragment.
    """
    roads = gpd.GeoDataFrame(
        {"road_id": ["R0", "R1", "R2", "R3"], "road_class": ["county", "track", "village", "village"],
         "surface": ["paved", "unpaved", "paved", "paved"]},
        geometry=[L((0, 0), (1000, 0), (2000, 0), (3000, 0), (4000, 0), (5000, 0)),
                  L((2000, 0), (2000, 2000)), L((0, 5000), (1000, 5000)),
                  L((3000, -1000), (3000, 1000))], crs=CRS)
    seats = gpd.GeoDataFrame({"township_code": [SEAT], "name": ["汉丰街道"]}, geometry=[P(0, 0)], crs=CRS)
    villages = gpd.GeoDataFrame(
        {"village_code": [f"500154001{i:03d}" for i in range(1, 7)], "name": list("ABCDEF"),
         "township_code": SEAT, "kind": "村", "households": 100, "population": 300},
        geometry=[P(1500, 100),   # A: beside the paved main road
                  P(2100, 1500),  # B: beside the unpaved spur
                  P(500, 5100),   # C: beside the disconnected fragment
                  P(4000, 900),   # D: 900 m from any road
                  P(4500, 300),   # E: 300 m from the edge, 583 m from its nearest vertex
                  P(3050, 800)],  # F: beside the overpass road
        crs=CRS)
    settlements = gpd.GeoDataFrame(
        {"settlement_id": ["S1", "S2", "S3"], "name": ["一组", "二组", "三组"],
         "village_code": ["500154001001", "500154001002", "500154001003"],
         "households": [40, 10, 5], "population": [120, 20, 100]},
        geometry=[P(1500, -50), P(2050, 1900), P(900, 4950)], crs=CRS)
    tw = gpd.GeoDataFrame({"township_code": [SEAT], "name": ["汉丰街道"], "kind": ["街道"]},
                          geometry=[P(2500, 2500).buffer(9000)], crs=CRS)
    layers = Layers(boundary=tw, townships=tw, township_seats=seats, villages=villages,
                    settlements=settlements, roads=roads, dem_path="")
    z = np.full((100, 100), 300.0) + np.arange(100)[None, :] * 0.5
    dem = DemGrid(values=z, transform=from_origin(X0 - 2000, Y0 + 8000, 100.0, 100.0), crs=CRS)
    return layers, dem


@pytest.fixture(scope="module")
def result():
    layers, dem = scenario()
    return access.analyse(layers, load_plan(), dem=dem)


def by_name(res, layers):
    return res.villages.set_axis(layers.villages["name"])


def test_village_on_paved_road_is_tongda_and_tongchang(result):
    v = by_name(result, scenario()[0]).loc["A"]
    assert v["tongda"] and v["tongchang"]
    assert v["snap_distance_m"] == pytest.approx(100.0)
    assert v["network_km_to_seat"] == pytest.approx(1.5)
    assert v["network_km_to_county"] == pytest.approx(1.5)
    assert v["travel_min_to_seat"] == pytest.approx(1.5 / 40 * 60, abs=0.05)  # county road 40 km/h
    assert v["reason"] == ""


def test_village_on_unpaved_spur_is_tongda_not_tongchang(result):
    v = by_name(result, scenario()[0]).loc["B"]
    assert v["tongda"] and not v["tongchang"]
    assert v["road_id"] == "R1"
    # 2 km along the main road, then 1.5 km up the spur to the projection point
    assert v["network_km_to_seat"] == pytest.approx(3.5)
    assert "unpaved" in v["reason"]


def test_fragment_not_connected_to_seat_is_neither(result):
    v = by_name(result, scenario()[0]).loc["C"]
    assert not v["tongda"] and not v["tongchang"]
    assert np.isnan(v["network_km_to_seat"])
    assert "fragment" in v["reason"]


def test_overpass_road_does_not_connect(result):
    v = by_name(result, scenario()[0]).loc["F"]
    assert v["road_id"] == "R3" and v["snap_distance_m"] == pytest.approx(50.0)
    assert not v["tongda"] and "fragment" in v["reason"]


def test_beyond_reach_distance_says_so(result):
    v = by_name(result, scenario()[0]).loc["D"]
    assert not v["tongda"] and not v["tongchang"]
    assert v["snap_distance_m"] == pytest.approx(900.0)
    assert v["reason"] == "no road within 500 m (nearest 900 m)"


def test_snapping_picks_nearest_edge_not_vertex(result):
    v = by_name(result, scenario()[0]).loc["E"]
    # nearest vertex is 583 m away (beyond reach); the edge itself is 300 m away
    assert v["snap_distance_m"] == pytest.approx(300.0)
    assert v["tongchang"]
    assert v["network_km_to_seat"] == pytest.approx(4.5)


def test_every_input_row_once_with_reason_when_not_reached(result):
    layers, _ = scenario()
    assert result.villages.index.equals(layers.villages.index)
    assert result.settlements.index.equals(layers.settlements.index)
    not_reached = ~result.villages["tongchang"]
    assert (result.villages.loc[not_reached, "reason"] != "").all()
    assert (result.villages.loc[~not_reached, "reason"] == "").all()


def test_snap_to_edges_projection_and_mask():
    layers, _ = scenario()
    from kaizhou_gis.network import build_network, network_settings
    net = build_network(layers.roads, **network_settings(load_plan()))
    pts = gpd.GeoSeries([P(1000, 1500), Point()], crs=CRS)
    s = access.snap_to_edges(pts, net.edges)
    e = net.edges.iloc[s["edge"].iloc[0]]
    assert e["road_id"] == "R1" and s["along_m"].iloc[0] == pytest.approx(1500.0)
    assert s["snap_distance_m"].iloc[0] == pytest.approx(1000.0)
    assert s["edge"].iloc[1] == -1 and np.isnan(s["snap_distance_m"].iloc[1])
    sp = access.snap_to_edges(pts, net.edges, mask=net.edges["paved"].to_numpy())
    assert net.edges.iloc[sp["edge"].iloc[0]]["road_id"] == "R0"
    assert sp["snap_distance_m"].iloc[0] == pytest.approx(1500.0)


def test_settlement_target_group_and_scorecard(result):
    layers, _ = scenario()
    plan = load_plan()
    s = layers.settlements
    tg = access.target_group(s, households_min=30, population_min=100)
    assert tg.tolist() == [True, False, True]  # 40 households; 10/20; 5 households but 100 people
    st = result.settlements.assign(township_code=admin.settlement_townships(s, layers.villages), target_group=tg)
    vt = result.villages.assign(township_code=layers.villages["township_code"])
    sc = access.scorecard(vt, st, plan, township_names={SEAT: "汉丰街道"})
    assert sc["villages"] == 6 and sc["villages_tongchang"] == 2
    assert sc["village_tongchang_pct"] == pytest.approx(33.33)
    # S1 beside the main road (通畅), S3 on the fragment (neither)
    assert sc["target_settlements"] == 2
    assert sc["settlement_tongda_pct"] == pytest.approx(50.0)
    assert sc["settlement_tongchang_pct"] == pytest.approx(50.0)
    assert sc["met"] == {"village_tongchang": False, "settlement_tongda": False, "settlement_tongchang": False}
    assert sc["per_township"][0]["township_name"] == "汉丰街道"
    assert sc["per_township"][0]["villages_tongchang"] == 2


def test_own_township_seat_is_used():
    layers, dem = scenario()
    # a second township whose seat is on the fragment R2: village C belongs to it -> reached
    seats = pd.concat([layers.township_seats, gpd.GeoDataFrame(
        {"township_code": ["500154118"], "name": ["大进镇"]}, geometry=[P(0, 5000)], crs=CRS)],
        ignore_index=True)
    villages = layers.villages.copy()
    villages.loc[2, "township_code"] = "500154118"
    lay = Layers(**{**layers.__dict__, "township_seats": gpd.GeoDataFrame(seats, crs=CRS),
                    "villages": villages})
    res = access.analyse(lay, load_plan(), dem=dem)
    c = res.villages.loc[2]
    assert c["tongda"] and c["tongchang"]
    assert c["network_km_to_seat"] == pytest.approx(0.5)
    assert np.isnan(c["network_km_to_county"])  # the county seat is on another component
    # village A stays measured against 汉丰街道
    assert res.villages.loc[0, "network_km_to_seat"] == pytest.approx(1.5)


def test_missing_seat_gives_reason():
    layers, dem = scenario()
    villages = layers.villages.copy()
    villages.loc[0, "township_code"] = "500154999"
    res = access.analyse(Layers(**{**layers.__dict__, "villages": villages}), load_plan(), dem=dem)
    assert not res.villages.loc[0, "tongda"]
    assert "no seat" in res.villages.loc[0, "reason"]


def test_step_on_tiny_layer_set(tmp_path):
    from layerset import write_layerset

    from kaizhou_gis import outputs
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context

    plan = load_plan()
    layers = load_layers(write_layerset(tmp_path / "layers"), plan=plan)
    res = Context(layers=layers, plan=plan).result("access")
    assert set(res.files) == {"access/villages.csv", "access/settlements.csv", "access/access.gpkg",
                              "access/scorecard.json", "access/works.gpkg", "access/cost_curve.csv",
                              "access/townships.csv"}
    v, s = res.data.villages, res.data.settlements
    assert v.index.equals(layers.villages.index) and s.index.equals(layers.settlements.index)
    assert v["village_code"].is_unique and s["settlement_id"].is_unique
    # 红旗村 sits on the junction of paved R3 and unpaved R5: the paved road wins the tie
    hq = v.set_index("village_code").loc["500154118201"]
    assert hq["tongchang"] and hq["snap_distance_m"] == pytest.approx(0.0, abs=0.01)
    # 白泉村 lies on the unpaved R4 only
    bq = v.set_index("village_code").loc["500154118202"]
    assert bq["tongda"] and not bq["tongchang"] and bq["work_ids"].startswith("U")
    assert (v.loc[~v["tongchang"], "reason"] != "").all()
    sc = res.files["access/scorecard.json"]
    # indicator 5 counts 行政村 only: 红旗村 通畅, 白泉村 not; 汉丰社区 (a 社区) is left out
    assert sc["before"]["village_tongchang_pct"] == pytest.approx(50.0)
    assert sc["before"]["villages"] == 2 and sc["before"]["communities_excluded"] == 1
    assert bool(v.set_index("village_code").loc["500154001001", "admin_village"]) is False
    assert all(sc["after"]["met"].values())
    assert sc["check"]["not_reached_after_applying_works"] == []
    assert sc["check"]["points_given_works"] >= 4
    assert sc["parameters"]["access.reach_distance_m"]["value"] == 500.0
    assert {"before", "after"} <= set(res.data.scorecard)
    assert res.summary["headline"][0].startswith("villages 通畅 50.0% → 100.0%")
    assert "with the proposed works (planned)" in res.summary["headline"][0]
    towns = res.files["access/townships.csv"].set_index("township_code")
    assert towns.loc["500154118", "village_tongchang_pct"] == pytest.approx(50.0)
    assert towns.loc["500154118", "village_tongchang_pct_after"] == pytest.approx(100.0)
    assert towns["works_km"].sum() == pytest.approx(res.data.works["km"].sum(), abs=0.01)
    paths = outputs.write_products(tmp_path / "out", res.files)
    assert len(paths) == 7
    back = gpd.read_file(tmp_path / "out" / "access" / "access.gpkg", layer="edges")
    assert {"length_m", "surface", "road_class", "grade_pct", "travel_min"} <= set(back.columns)
    joins = gpd.read_file(tmp_path / "out" / "access" / "access.gpkg", layer="joins")
    assert {"road_id", "end", "kind", "to_road_id", "moved_m"} <= set(joins.columns)
    assert len(joins) == res.files["access/scorecard.json"]["network"]["joins"] == 0  # shared vertices
    # one node per graph node, its ids those of the edges' u/v, as RoadNetwork.to_networkx keys them
    nodes = gpd.read_file(tmp_path / "out" / "access" / "access.gpkg", layer="nodes")
    assert len(nodes) == res.files["access/scorecard.json"]["network"]["nodes"] == res.data.network.n_nodes
    assert set(back["u"]) | set(back["v"]) == set(nodes["node_id"])
    assert nodes["node_id"].tolist() == sorted(res.data.network.to_networkx().nodes)
    assert (nodes["degree"] == 1).sum() == res.files["access/scorecard.json"]["network"]["dangles"]
    # township filter: only 大进镇's rows
    res2 = Context(layers=layers, plan=plan, options={"township": "500154118"}).result("access")
    assert set(res2.data.villages["township_code"]) == {"500154118"}
    assert set(res2.data.settlements["township_code"]) == {"500154118"}
    # ... and only the network inside it (R2 lies wholly in 汉丰街道)
    e2 = res2.files["access/access.gpkg"]["edges"]
    town = layers.townships.set_index("township_code").geometry.loc["500154118"]
    assert 0 < len(e2) < len(res.data.edges) and e2.intersects(town).all()
    assert "R2" not in set(e2["road_id"])
    n2 = res2.files["access/access.gpkg"]["nodes"]
    assert set(n2["node_id"]) == set(e2["u"]) | set(e2["v"])


def test_road_digitized_twice_paved_copy_wins_the_snap():
    layers, dem = scenario()
    # an unpaved copy of the first kilometre of the main road, its vertices 1 mm off the original
    dup = gpd.GeoDataFrame({"road_id": ["R0dup"], "road_class": ["track"], "surface": ["unpaved"]},
                           geometry=[L((0, 0.001), (1000, 0.001))], crs=CRS)
    roads = gpd.GeoDataFrame(pd.concat([layers.roads, dup], ignore_index=True), crs=CRS)
    villages = layers.villages.iloc[[0]].copy()
    villages["geometry"] = [P(500, 0.0007)]  # 0.3 mm nearer the unpaved copy
    res = access.analyse(Layers(**{**layers.__dict__, "roads": roads, "villages": villages}), load_plan(), dem=dem)
    assert res.villages.loc[0, "road_id"] == "R0"
    assert res.villages.loc[0, "tongchang"]


def test_step_with_no_villages_and_no_settlements(tmp_path):
    import dataclasses

    from layerset import write_layerset

    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context

    plan = load_plan()
    layers = load_layers(write_layerset(tmp_path / "layers"), plan=plan)
    lay = dataclasses.replace(layers, villages=layers.villages.iloc[0:0], settlements=layers.settlements.iloc[0:0])
    res = Context(layers=lay, plan=plan).result("access")
    assert len(res.data.villages) == 0 and len(res.data.works) == 0
    assert len(res.files["access/townships.csv"]) == 0
    assert res.data.scorecard["before"]["village_tongchang_pct"] is None


def test_target_group_with_missing_or_nan_counts():
    s = pd.DataFrame({"settlement_id": ["a", "b", "c"], "households": [np.nan, 30, "12"]})
    assert access.target_group(s, households_min=30, population_min=100).tolist() == [False, True, False]
    s2 = pd.DataFrame({"settlement_id": ["a"], "population": [150]})
    assert access.target_group(s2, households_min=30, population_min=100).tolist() == [True]


def test_seat_attaches_to_the_main_network_not_a_stray_fragment():
    layers, dem = scenario()
    # a 50 m paved stray fragment 2 m from the seat; the main road is 20 m away
    stray = gpd.GeoDataFrame({"road_id": ["RX"], "road_class": ["village"], "surface": ["paved"]},
                             geometry=[L((-2, 10), (-2, 60))], crs=CRS)
    roads = gpd.GeoDataFrame(pd.concat([layers.roads, stray], ignore_index=True), crs=CRS)
    seats = layers.township_seats.copy()
    seats["geometry"] = [P(0, 20)]
    res = access.analyse(Layers(**{**layers.__dict__, "roads": roads, "township_seats": seats}),
                         load_plan(), dem=dem)
    a = res.villages.loc[0]
    assert a["tongda"] and a["tongchang"]
    assert a["network_km_to_seat"] == pytest.approx(1.5)
    assert res.seats.seats.loc[0, "snap_distance_m"] == pytest.approx(20.0)
    # with the stray fragment the only road near the seat, it is the seat's network
    seats["geometry"] = [P(-2, 540)]  # the main road is 540 m away, the fragment 480 m
    res2 = access.analyse(Layers(**{**layers.__dict__, "roads": roads, "township_seats": seats}),
                          load_plan(), dem=dem)
    assert not res2.villages.loc[0, "tongda"]


def test_step_on_a_projected_dem_and_multiline_roads(tmp_path):
    """The shipped DEM is geographic; a user's may be projected (UTM here) and their roads
    MultiLineStrings: same access, works that meet the targets, links within the grade."""
    import rasterio
    from layerset import layer_frames, write_layerset
    from rasterio.warp import Resampling, calculate_default_transform, reproject
    from shapely.geometry import MultiLineString

    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context

    plan = load_plan()
    fr = layer_frames()
    fr["roads"].loc[3, "geometry"] = MultiLineString([[(108.45, 31.25), (108.46, 31.26)],
                                                      [(108.46, 31.26), (108.47, 31.27)]])
    folder = write_layerset(tmp_path / "layers", fr)
    geo = Context(layers=load_layers(folder, plan=plan), plan=plan).result("access")
    with rasterio.open(folder / "dem.tif") as src:
        tr, w, h = calculate_default_transform(src.crs, "EPSG:32649", src.width, src.height,
                                               *src.bounds, resolution=90.0)
        arr = np.full((h, w), -32768, dtype="int16")
        reproject(rasterio.band(src, 1), arr, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=tr, dst_crs="EPSG:32649", resampling=Resampling.bilinear,
                  dst_nodata=-32768)
    with rasterio.open(folder / "dem.tif", "w", driver="GTiff", width=w, height=h, count=1, dtype="int16",
                       crs="EPSG:32649", transform=tr, nodata=-32768) as ds:
        ds.write(arr, 1)
    res = Context(layers=load_layers(folder, plan=plan), plan=plan).result("access")
    v, s = res.data.villages, res.data.settlements
    assert v["tongchang"].tolist() == geo.data.villages["tongchang"].tolist()
    assert s["tongda"].tolist() == geo.data.settlements["tongda"].tolist()
    assert res.data.edges["grade_pct"].notna().all()
    # edge grades agree with the geographic DEM's to within resampling error
    assert np.allclose(res.data.edges["grade_pct"], geo.data.edges["grade_pct"], atol=1.0)
    sc = res.files["access/scorecard.json"]
    assert all(sc["after"]["met"].values()) and sc["check"]["not_reached_after_applying_works"] == []
    new = res.data.works[res.data.works["type"] == "new"]
    assert len(new) and (new["max_grade_pct"] <= plan["links.max_grade_pct"] + 1e-9).all()


def test_no_seats_at_all_every_point_says_so():
    layers, dem = scenario()
    lay = Layers(**{**layers.__dict__, "township_seats": layers.township_seats.iloc[0:0]})
    res = access.analyse(lay, load_plan(), dem=dem)
    assert len(res.villages) == 6 and not res.villages["tongda"].any()
    assert (res.villages["reason"] == "its township has no seat in township_seats").all()


def test_township_without_villages_gives_empty_tables_not_a_failure(tmp_path):
    """--township for a township that has no village or settlement: empty rows, exit 0."""
    from layerset import layer_frames, write_layerset

    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context
    from kaizhou_gis.plan import load_plan

    frames = layer_frames()
    tw = frames["townships"]
    empty_code = str(tw["township_code"].iloc[-1])
    v = frames["villages"]
    keep = v["township_code"].astype(str) != empty_code
    frames["villages"] = v[keep]
    frames["settlements"] = frames["settlements"][
        frames["settlements"]["village_code"].isin(set(frames["villages"]["village_code"]))]
    write_layerset(tmp_path, frames)
    plan = load_plan()
    ctx = Context(layers=load_layers(tmp_path, plan=plan), plan=plan, options={"township": empty_code})
    res = ctx.result("access")
    assert len(res.files["access/villages.csv"]) == 0
    assert len(res.files["access/settlements.csv"]) == 0
