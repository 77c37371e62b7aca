"""Gap-closing works: options, choice, cost curve, apply_works, and targets met after the works."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_origin
from shapely.geometry import Point
from test_access import CRS, SEAT, X0, Y0, L, P, scenario

from kaizhou_gis import access, admin
from kaizhou_gis.layers import Layers
from kaizhou_gis.network import DemGrid
from kaizhou_gis.plan import load_plan


def by_own_point(works):
    """Works indexed by the point each was made for (the first of its beneficiaries; a link
    that later links start on also lists their points)."""
    return works.set_axis(works["beneficiaries"].str.split(";").str[0])


def tables(layers, res, plan):
    p = plan.section("access")
    s = layers.settlements
    tg = access.target_group(s, households_min=p["settlement_households_min"],
                             population_min=p["settlement_population_min"])
    vt = layers.villages.join(res.villages[["tongda", "tongchang"]])
    st = s.assign(township_code=admin.settlement_townships(s, layers.villages), target_group=tg) \
        .join(res.settlements[["tongda", "tongchang"]])
    return vt, st


@pytest.fixture(scope="module")
def planned():
    layers, dem = scenario()
    plan = load_plan()
    res = access.analyse(layers, plan, dem=dem)
    vt, st = tables(layers, res, plan)
    return layers, dem, plan, res, access.plan_works(res, vt, st, plan=plan, dem=dem)


def test_unpaved_spur_is_upgraded_and_cut_off_points_get_new_links(planned):
    *_, plan, _, wp = planned
    w = wp.works
    up = w[w["type"] == "upgrade"]
    # village B: upgrading the 2 km spur (flat terrain, 400,000 yuan/km) beats a 1.5 km new link
    assert up["road_id"].tolist() == ["R1"]
    assert up["km"].iloc[0] == pytest.approx(2.0)
    assert up["cost_yuan"].iloc[0] == pytest.approx(800_000.0)
    assert up["beneficiaries"].iloc[0] == "500154001002"
    new = by_own_point(w[w["type"] == "new"])
    # C and settlement S3 (fragment), D (900 m from a road) and F (overpass fragment) need new links
    assert sorted(new.index) == ["500154001003", "500154001004", "500154001006", "S3"]
    # D: straight north-south over flat ground to the main road 900 m away
    assert new.loc["500154001004", "km"] == pytest.approx(0.9, abs=0.05)
    assert new.loc["500154001004", "cost_yuan"] == pytest.approx(new.loc["500154001004", "km"] * 800_000.0, rel=1e-3)
    assert (w["max_grade_pct"].fillna(0) <= plan["links.max_grade_pct"] + 1e-9).all()
    assert wp.unresolved.empty


def test_cost_curve_runs_from_before_to_targets(planned):
    *_, wp = planned
    cc = wp.cost_curve
    assert cc["step"].tolist() == list(range(len(cc)))
    assert cc["cumulative_cost_yuan"].is_monotonic_increasing
    assert cc["village_tongchang_pct"].iloc[0] == pytest.approx(33.33)
    assert cc["village_tongchang_pct"].iloc[-1] == pytest.approx(100.0)
    assert cc["settlement_tongda_pct"].iloc[-1] == pytest.approx(100.0)
    assert cc["cumulative_cost_yuan"].iloc[-1] == pytest.approx(wp.works["cost_yuan"].sum(), abs=2)
    assert wp.totals["total_km"] == pytest.approx(wp.works["km"].sum(), abs=1e-3)
    assert wp.totals["plan_roads_km"] == 2200.0


def test_applying_works_meets_targets(planned):
    layers, dem, plan, _, wp = planned
    roads2 = access.apply_works(layers.roads, wp.works, plan=plan)
    assert len(layers.roads) == 4  # input untouched
    r1 = roads2[roads2["road_id"].str.startswith("R1")]
    assert r1["surface"].tolist() == ["paved"] and r1["source"].iloc[0] == "upgraded by U0001"
    after = access.analyse(layers, plan, dem=dem, roads=roads2)
    assert after.villages["tongchang"].all()
    vt, st = tables(layers, after, plan)
    sc = access.scorecard(vt, st, plan)
    assert all(sc["met"].values())


def test_shared_upgrade_counted_once():
    layers, dem = scenario()
    plan = load_plan()
    # two more villages along the spur share its upgrade
    extra = gpd.GeoDataFrame({"village_code": ["500154001007", "500154001008"], "name": ["G", "H"],
                              "township_code": SEAT, "kind": "村", "households": 50, "population": 150},
                             geometry=[P(1950, 800), P(2060, 1950)], crs=CRS)
    v = pd.concat([layers.villages, extra], ignore_index=True)
    lay = Layers(**{**layers.__dict__, "villages": gpd.GeoDataFrame(v, crs=CRS)})
    res = access.analyse(lay, plan, dem=dem)
    vt, st = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    up = wp.works[wp.works["type"] == "upgrade"]
    assert len(up) == 1 and up["cost_yuan"].sum() == pytest.approx(800_000.0)
    assert sorted(up["beneficiaries"].iloc[0].split(";")) == ["500154001002", "500154001007", "500154001008"]


def test_eighty_percent_target_takes_cheapest_settlements_first():
    layers, dem = scenario()
    plan = load_plan()
    # five target settlements: one on the main road (通畅), four on unpaved spurs of growing length
    roads = pd.concat([layers.roads, gpd.GeoDataFrame(
        {"road_id": [f"T{i}" for i in range(4)], "road_class": "track", "surface": "unpaved"},
        geometry=[L((x, 0), (x, -length)) for x, length in ((500, 300), (1500, 600), (2500, 900), (3500, 1200))],
        crs=CRS)], ignore_index=True)
    # the main road needs vertices where the spurs join
    roads.loc[0, "geometry"] = L((0, 0), (500, 0), (1000, 0), (1500, 0), (2000, 0), (2500, 0), (3000, 0),
                                 (3500, 0), (4000, 0), (5000, 0))
    st = gpd.GeoDataFrame({"settlement_id": ["A", "B", "C", "D", "E"], "name": list("abcde"),
                           "village_code": "500154001001", "households": 50, "population": 150},
                          geometry=[P(1200, -20), P(520, -300), P(1520, -600), P(2520, -900), P(3520, -1200)],
                          crs=CRS)
    village = layers.villages.iloc[[0]].copy()
    village["geometry"] = [P(1200, 60)]  # beside the paved main road only
    lay = Layers(**{**layers.__dict__, "roads": gpd.GeoDataFrame(roads, crs=CRS), "settlements": st,
                    "villages": village})
    res = access.analyse(lay, plan, dem=dem)
    assert res.settlements["tongchang"].tolist() == [True, False, False, False, False]
    vt, st2 = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st2, plan=plan, dem=dem)
    # 80 % of 5 = 4: the three cheapest spurs (300, 600, 900 m) are upgraded, not the 1.2 km one
    assert sorted(wp.works["road_id"]) == ["T0", "T1", "T2"]
    assert wp.works["phase"].unique().tolist() == ["80% target"]
    assert wp.cost_curve["settlement_tongchang_pct"].tolist() == [20.0, 40.0, 60.0, 80.0]
    assert wp.totals["cost_yuan"] == pytest.approx(1.8 * 400_000.0)


def test_no_link_over_a_wall_is_reported():
    layers, _ = scenario()
    plan = load_plan()
    # village D sits in a pit walled in by cliffs far steeper than the maximum grade
    z = np.full((100, 100), 300.0)
    rr, cc = np.mgrid[0:100, 0:100]
    x = X0 - 2000 + (cc + 0.5) * 100
    y = Y0 + 8000 - (rr + 0.5) * 100
    ring = (np.abs(x - (X0 + 4000)) <= 300) & (np.abs(y - (Y0 + 900)) <= 300)
    inner = (np.abs(x - (X0 + 4000)) <= 100) & (np.abs(y - (Y0 + 900)) <= 100)
    z[ring & ~inner] = 900.0
    dem = DemGrid(values=z, transform=from_origin(X0 - 2000, Y0 + 8000, 100.0, 100.0), crs=CRS)
    res = access.analyse(layers, plan, dem=dem)
    vt, st = tables(layers, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    u = wp.unresolved.set_index("id")
    assert list(u.index) == ["500154001004"]
    assert "no new link under 12 % grade" in u.loc["500154001004", "reason"]
    assert "500154001004" not in ";".join(wp.works["beneficiaries"])


def test_apply_works_cuts_road_at_upgraded_stretch():
    roads = gpd.GeoDataFrame({"road_id": ["R"], "road_class": ["village"], "surface": ["unpaved"]},
                             geometry=[L((0, 0), (1000, 0), (2000, 0), (3000, 0))], crs=CRS)
    works = gpd.GeoDataFrame({"work_id": ["U0001", "N0001"], "type": ["upgrade", "new"], "road_id": ["R", ""]},
                             geometry=[L((1000, 0), (2000, 0)), L((3000, 0), (3000, 500))], crs=CRS)
    out = access.apply_works(roads, works)
    assert out["road_id"].tolist() == ["R#1", "R#2", "R#3", "N0001"]
    assert out["surface"].tolist() == ["unpaved", "paved", "unpaved", "paved"]
    assert out.length.round(6).tolist() == [1000.0, 1000.0, 1000.0, 500.0]
    assert out.geometry.iloc[1].coords[0] == (X0 + 1000, Y0)
    with pytest.raises(ValueError, match="road_id X"):
        access.apply_works(roads, works.assign(road_id=["X", ""]))


@pytest.fixture(scope="module")
def shipped_access(shipped_run, tmp_path_factory):
    """The access step's district result of the session's run on the shipped layers (from the
    run's cache: the same inputs, not computed again)."""
    ctx = shipped_run.context(tmp_path_factory.mktemp("links") / "cache")
    res = ctx.result("access")
    assert ctx.reused.keys() == {"access"}
    return ctx.plan, ctx.layers, res


@pytest.mark.slow
def test_shipped_layers_meet_targets_after_works(shipped_access):
    plan, layers, res = shipped_access
    works = res.data.works
    roads2 = access.apply_works(layers.roads, works, plan=plan)
    dem = access.read_dem(layers, plan)
    after = access.analyse(layers, plan, dem=dem, roads=roads2)
    vt, st = res.data.villages, res.data.settlements
    unresolved = set(res.data.unresolved["id"])
    v_ok = after.villages.loc[vt.index, "tongchang"] | vt["village_code"].isin(unresolved)
    assert v_ok.all()
    tg = st["target_group"]
    s_da = after.settlements.loc[st.index, "tongda"] | st["settlement_id"].isin(unresolved)
    assert s_da[tg].all()
    assert after.settlements.loc[st.index[tg], "tongchang"].mean() * 100 >= 80.0 - 1e-9
    # the 80 % target is met on the recomputed settlements, not only on the step's own columns
    sc = access.scorecard(vt.assign(tongda=after.villages.loc[vt.index, "tongda"],
                                    tongchang=after.villages.loc[vt.index, "tongchang"]),
                          st.assign(tongda=after.settlements.loc[st.index, "tongda"],
                                    tongchang=after.settlements.loc[st.index, "tongchang"]), plan)
    assert sc["met"]["settlement_tongchang"]


@pytest.mark.slow
def test_shipped_new_links_within_max_grade_on_the_dem(shipped_access):
    """Independent of the module's own max_grade_pct column: read the DEM file, sample it at the
    vertices of every new link and check the links under the documented hairpin model. A leg of
    horizontal length h that climbs dz needs a road of at least h * max(1, (dz/h) / max grade)
    (hairpins lengthen a road over terrain steeper than the maximum grade, never steepen it);
    the legs' sum must fit in the link's reported km."""
    import rasterio
    import shapely
    from pyproj import Transformer

    plan, layers, res = shipped_access
    new = res.data.works[res.data.works["type"] == "new"]
    assert len(new) > 0
    gmax = plan["links.max_grade_pct"] / 100.0
    with rasterio.open(layers.dem_path) as ds:
        z = ds.read(1).astype("float64")
        z[z == ds.nodata] = np.nan
        to_dem = Transformer.from_crs(new.crs, ds.crs, always_xy=True)
        bad = []
        for wid, km, geom in zip(new["work_id"], new["km"], new.geometry):
            xy = shapely.get_coordinates(geom)
            lon, lat = to_dem.transform(xy[:, 0], xy[:, 1])
            r, c = rasterio.transform.rowcol(ds.transform, lon, lat)
            zz = z[np.asarray(r), np.asarray(c)]
            assert np.isfinite(zz).all(), wid
            h = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
            dz = np.abs(np.diff(zz))
            need_m = float((h * np.maximum(1.0, dz / np.maximum(h, 1e-9) / gmax)).sum())
            assert km * 1000.0 >= geom.length - 1.0, wid  # the road is never shorter than drawn
            if need_m > km * 1000.0 * 1.02 + 1.0:
                bad.append((wid, km, round(need_m / 1000.0, 3), round(dz.sum() / (km * 10.0), 1)))
    assert bad == [], f"links steeper than {gmax * 100:g} % (id, km, km needed, mean grade %): {bad}"


def test_link_up_a_steep_slope_uses_hairpins_within_max_grade():
    layers, _ = scenario()
    plan = load_plan()
    # terrain rising 30 % northwards: village D (900 m north of the main road) is 270 m higher
    rr = np.mgrid[0:100, 0:100][0]
    y = Y0 + 8000 - (rr + 0.5) * 100
    z = 300.0 + 0.30 * (y - Y0)
    dem = DemGrid(values=z, transform=from_origin(X0 - 2000, Y0 + 8000, 100.0, 100.0), crs=CRS)
    # D alone (beside A, which is reached): no earlier link up the slope to start from
    layers = Layers(**{**layers.__dict__, "villages": layers.villages.iloc[[0, 3]],
                       "settlements": layers.settlements.iloc[[0]]})
    res = access.analyse(layers, plan, dem=dem)
    vt, st = tables(layers, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    d = by_own_point(wp.works).loc["500154001004"]
    assert d["type"] == "new"
    assert d["max_grade_pct"] <= 12.0 + 1e-9
    assert d["max_terrain_grade_pct"] == pytest.approx(30.0, abs=0.5)
    # climbing 270 m at no more than 12 % needs at least 2.25 km of road
    assert d["km"] >= 0.270 / 0.12 - 0.01
    assert d["hairpin_km"] > 1.0
    # with hairpins switched off (terrain limit = road limit) the village cannot be linked
    plan2 = load_plan(overrides={"links.switchback_terrain_max_pct": 12.0})
    wp2 = access.plan_works(res, vt, st, plan=plan2, dem=dem)
    assert "500154001004" in set(wp2.unresolved["id"])


def test_settlement_needing_only_tongda_may_link_to_an_unpaved_road():
    layers, dem = scenario()
    plan = load_plan(overrides={"links.max_new_link_km": 1.0})
    # a target settlement 600 m beyond the end of the unpaved spur, 2.6 km from any paved road
    st = gpd.GeoDataFrame({"settlement_id": ["S9"], "name": ["九组"], "village_code": ["500154001001"],
                           "households": [60], "population": [200]}, geometry=[P(2000, 2600)], crs=CRS)
    # only village A (通畅) so that no other work touches the spur
    lay = Layers(**{**layers.__dict__, "settlements": st, "villages": layers.villages.iloc[[0]]})
    res = access.analyse(lay, plan, dem=dem)
    assert not res.settlements.loc[0, "tongda"]
    vt, st2 = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st2, plan=plan, dem=dem)
    w = by_own_point(wp.works).loc["S9"]
    assert w["type"] == "new" and w["connects_to"] == "road network (通达 only)"
    assert 0.6 <= w["km"] <= 0.75  # 600 m straight; routing through 100 m cell centres adds a little
    after = access.analyse(lay, plan, dem=dem, roads=access.apply_works(lay.roads, wp.works, plan=plan))
    assert after.settlements.loc[0, "tongda"] and not after.settlements.loc[0, "tongchang"]
    assert wp.cost_curve["settlement_tongda_pct"].iloc[-1] == pytest.approx(100.0)


def test_no_gaps_no_works(tmp_path):
    from kaizhou_gis import outputs

    layers, dem = scenario()
    plan = load_plan()
    lay = Layers(**{**layers.__dict__, "villages": layers.villages.iloc[[0]],
                    "settlements": layers.settlements.iloc[[0]]})
    res = access.analyse(lay, plan, dem=dem)
    vt, st = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    assert len(wp.works) == 0 and wp.totals["cost_yuan"] == 0.0
    assert wp.cost_curve["settlement_tongchang_pct"].tolist() == [100.0]
    outputs.write_products(tmp_path, {"works.gpkg": wp.works})
    assert len(gpd.read_file(tmp_path / "works.gpkg")) == 0
    assert access.apply_works(lay.roads, wp.works, plan=plan)["road_id"].tolist() == ["R0", "R1", "R2", "R3"]


def test_later_new_link_joins_an_earlier_one_instead_of_running_beside_it():
    layers, dem = scenario()
    plan = load_plan()
    # village G lies 1.55 km straight north of village D (900 m north of the main road, no road
    # near either): G's own least-cost link runs down the same cell column as D's. Built after
    # D's, it must start on D's link, not be a second road beside it (shared works counted once).
    g = gpd.GeoDataFrame({"village_code": ["500154001007"], "name": ["G"], "township_code": SEAT,
                          "kind": "村", "households": 50, "population": 150},
                         geometry=[P(4050, 2450)], crs=CRS)
    lay = Layers(**{**layers.__dict__, "villages": gpd.GeoDataFrame(
        pd.concat([layers.villages, g], ignore_index=True), crs=CRS)})
    res = access.analyse(lay, plan, dem=dem)
    vt, st = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    new = wp.works[wp.works["type"] == "new"]
    new = by_own_point(new)
    d, gk = new.loc["500154001004"], new.loc["500154001007"]
    # D's link serves G too; G's works are both links
    assert d["beneficiaries"].split(";")[:2] == ["500154001004", "500154001007"]
    assert sorted(wp.work_ids["500154001007"].split(";")) == sorted([d["work_id"], gk["work_id"]])
    assert d["km"] == pytest.approx(0.9, abs=0.06)
    # G's link covers only the 1.5 km beyond D's (about 2.45 km standalone)
    assert gk["km"] == pytest.approx(1.5, abs=0.12)
    assert gk["cost_yuan"] == pytest.approx(gk["km"] * 800_000.0, rel=1e-3)
    assert gk.geometry.coords[0] in set(d.geometry.coords)  # starts on a vertex of D's link
    overlap = gk.geometry.intersection(d.geometry.buffer(20.0)).length
    assert overlap < 30.0
    assert wp.totals["cost_yuan"] == pytest.approx(wp.works["cost_yuan"].sum(), abs=2)
    after = access.analyse(lay, plan, dem=dem, roads=access.apply_works(lay.roads, wp.works, plan=plan))
    assert after.villages["tongchang"].all()


def test_link_never_joins_a_link_to_another_townships_network():
    layers, dem = scenario()
    plan = load_plan()
    # township 2 has its own paved road R5 (x = 4.55 km), not linked to township 1's roads.
    # D (township 1) is linked south to the main road first; X (township 2) is linked east to R5
    # across D's link: X must keep its own link to R5, not be cut short onto D's link, which
    # leads to township 1's network.
    t2 = "500154118"
    roads = gpd.GeoDataFrame(pd.concat([layers.roads, gpd.GeoDataFrame(
        {"road_id": ["R5"], "road_class": ["township"], "surface": ["paved"]},
        geometry=[L((4550, 450), (4550, 1450))], crs=CRS)], ignore_index=True), crs=CRS)
    seats = gpd.GeoDataFrame(pd.concat([layers.township_seats, gpd.GeoDataFrame(
        {"township_code": [t2], "name": ["大进镇"]}, geometry=[P(4550, 1450)], crs=CRS)],
        ignore_index=True), crs=CRS)
    v = gpd.GeoDataFrame({"village_code": ["500154001004", "500154118001"], "name": ["D", "X"],
                          "township_code": [SEAT, t2], "kind": "村", "households": 50, "population": 150},
                         geometry=[P(4050, 850), P(3550, 450)], crs=CRS)
    lay = Layers(**{**layers.__dict__, "roads": roads, "township_seats": seats, "villages": v,
                    "settlements": layers.settlements.iloc[[0]]})
    res = access.analyse(lay, plan, dem=dem)
    assert not res.villages["tongda"].any()
    vt, st = tables(lay, res, plan)
    wp = access.plan_works(res, vt, st, plan=plan, dem=dem)
    new = by_own_point(wp.works[wp.works["type"] == "new"])
    assert new.loc["500154001004", "step"] < new.loc["500154118001", "step"]
    assert new.loc["500154118001", "km"] == pytest.approx(1.0, abs=0.06)
    after = access.analyse(lay, plan, dem=dem, roads=access.apply_works(lay.roads, wp.works, plan=plan))
    assert after.villages["tongchang"].all()


def test_far_point_links_to_a_nearby_earlier_link_not_all_the_way_to_the_road(planned):
    layers, dem, plan, _, wp = planned
    # C and settlement S3 sit 400 m apart on the fragment R2, 5 km north of the main road: the
    # second one linked starts on the first one's link, not on the main road
    new = by_own_point(wp.works[wp.works["type"] == "new"])
    s3, c = new.loc["S3"], new.loc["500154001003"]
    assert s3["km"] == pytest.approx(4.95, abs=0.1)
    assert c["km"] < 0.6 and c["step"] > s3["step"]
    assert s3.geometry.distance(Point(c.geometry.coords[0])) < 1e-6
    assert s3["beneficiaries"] == "S3;500154001003"
    assert sorted(wp.work_ids["500154001003"].split(";")) == sorted([s3["work_id"], c["work_id"]])
    after = access.analyse(layers, plan, dem=dem, roads=access.apply_works(layers.roads, wp.works, plan=plan))
    assert after.villages.loc[2, "tongchang"] and after.settlements.loc[2, "tongchang"]


def test_apply_works_clear_errors_and_roads_without_road_id():
    roads = gpd.GeoDataFrame({"road_class": ["village"], "surface": ["unpaved"]},
                             geometry=[L((0, 0), (1000, 0), (2000, 0))], crs=CRS, index=[7])
    works = gpd.GeoDataFrame({"work_id": ["U0001"], "type": ["upgrade"], "road_id": ["7"]},
                             geometry=[L((0, 0), (1000, 0))], crs=CRS)
    out = access.apply_works(roads, works)
    assert out["road_id"].tolist() == ["7#1", "7#2"]
    assert out["surface"].tolist() == ["paved", "unpaved"]
    from kaizhou_gis.errors import LayerError
    with pytest.raises(LayerError, match="column 'type' is missing"):
        access.apply_works(roads, works.drop(columns="type"))
