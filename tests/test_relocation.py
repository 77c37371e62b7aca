"""Tests of kaizhou_gis.relocation on a tiny layer set whose answers are known."""
from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import LineString, Point, box

from kaizhou_gis import outputs, relocation
from kaizhou_gis.layers import Layers
from kaizhou_gis.pipeline import Context, StepResult
from kaizhou_gis.plan import load_plan
from kaizhou_gis.results import AccessData

WORK = "EPSG:4545"
RES = 1 / 1200  # 3 arc-seconds
ORIGIN = (108.0, 31.1)
NODATA = -32768
TO_WORK = Transformer.from_crs("EPSG:4326", WORK, always_xy=True)


def cell_lonlat(row: int, col: int) -> tuple[float, float]:
    return ORIGIN[0] + (col + 0.5) * RES, ORIGIN[1] - (row + 0.5) * RES


def work_point(lon: float, lat: float) -> Point:
    return Point(*TO_WORK.transform(lon, lat))


def work_box(x0, y0, x1, y1):
    return gpd.GeoSeries([box(x0, y0, x1, y1)], crs="EPSG:4326").to_crs(WORK).iloc[0]


#: settlement_id: (row, col) of its DEM cell or (lon, lat) when outside; village; households; people
SETTLEMENTS = {
    "s800": ((20, 20), "500154101001", 10, 30),     # plateau at exactly 800 m
    "s801": ((20, 50), "500154101001", 12, 40),     # plateau at 801 m
    "s1200": ((20, 80), "500154102001", 20, 70),    # plateau at 1,200 m
    "snodata": ((45, 15), "500154101001", 5, 15),   # on DEM nodata
    "ssteep": ((80, 45), "500154101002", 8, 25),    # 525 m on a ~30 degree ramp in a deep valley
    "slow": ((110, 110), "500154102001", 30, 100),  # 600 m, flat
    "soutside": ((108.15, 31.05), "500154102001", 6, 20),  # east of the DEM
}


def make_dem(path: Path) -> Path:
    z = np.full((120, 120), 600, dtype="int16")
    z[10:30, 10:30] = 800
    z[10:30, 40:60] = 801
    z[10:30, 70:90] = 1200
    z[40:50, 10:20] = NODATA
    z[60:100, 40:80] = (300 + 45 * (np.arange(40, 80) - 40))[None, :]
    tr = Affine.translation(*ORIGIN) @ Affine.scale(RES, -RES)
    with rasterio.open(path, "w", driver="GTiff", height=120, width=120, count=1, dtype="int16",
                       crs="EPSG:4326", transform=tr, nodata=NODATA) as ds:
        ds.write(z, 1)
    return path


@pytest.fixture
def layers(tmp_path) -> Layers:
    dem = make_dem(tmp_path / "dem.tif")
    boundary = gpd.GeoDataFrame({"code": ["500154"], "name": ["开州区"]},
                                geometry=[work_box(107.98, 30.98, 108.17, 31.12)], crs=WORK)
    townships = gpd.GeoDataFrame(
        {"township_code": ["500154101", "500154102"], "name": ["甲镇", "乙镇"], "kind": ["镇", "镇"],
         "source": ["test", "test"]},
        geometry=[work_box(107.98, 30.98, 108.05, 31.12), work_box(108.05, 30.98, 108.17, 31.12)], crs=WORK)
    seats = gpd.GeoDataFrame(
        {"township_code": ["500154101", "500154102"], "name": ["甲镇", "乙镇"],
         "elevation_m": [np.nan, np.nan], "source": ["test", "test"]},
        geometry=[work_point(108.02, 31.03), work_point(108.08, 31.03)], crs=WORK)
    villages = gpd.GeoDataFrame(
        {"village_code": ["500154101001", "500154101002", "500154102001"],
         "name": ["一村", "二村", "三村"], "township_code": ["500154101", "500154101", "500154102"],
         "kind": ["村", "村", "村"], "households": [100, 100, 100], "population": [300, 300, 300],
         "poverty_village": [True, False, False], "deep_poverty": [False, False, False],
         "poverty_source": ["plan", "", ""], "source": ["test"] * 3},
        geometry=[work_point(108.02, 31.06), work_point(108.03, 31.02), work_point(108.08, 31.06)], crs=WORK)
    rows = []
    for sid, (where, vcode, hh, pop) in SETTLEMENTS.items():
        lon, lat = cell_lonlat(*where) if isinstance(where[0], int) else where
        rows.append({"settlement_id": sid, "name": sid, "village_code": vcode, "households": hh,
                     "population": pop, "source": "test", "geometry": work_point(lon, lat)})
    settlements = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK)
    roads = gpd.GeoDataFrame(
        {"road_id": ["r1", "r2"], "road_class": ["county", "track"], "surface": ["paved", "unpaved"]},
        geometry=[LineString([TO_WORK.transform(107.99, 31.05), TO_WORK.transform(108.16, 31.05)]),
                  LineString([TO_WORK.transform(108.03, 31.0), TO_WORK.transform(108.03, 31.1)])], crs=WORK)
    return Layers(boundary=boundary, townships=townships, township_seats=seats, villages=villages,
                  settlements=settlements, roads=roads, dem_path=str(dem))


def fake_access(layers: Layers, *, no_road: tuple[str, ...] = (), far: dict | None = None) -> StepResult:
    s = layers.settlements.copy()
    s["tongda"] = True
    s["tongchang"] = ~s["settlement_id"].isin(no_road)
    s["network_km_to_seat"] = [(far or {}).get(i, 3.0) for i in s["settlement_id"]]
    return StepResult("access", data=AccessData(settlements=s))


def run_step(layers, plan=None, township=None, access=None):
    ctx = Context(layers=layers, plan=plan or load_plan(), options={"township": township})
    if access is not None:
        ctx.results["access"] = access
    else:
        ctx.failed["access"] = "not run in this test"
    return ctx.result("relocation")


def test_elevation_criterion_strict_and_dem_agreement(layers, tmp_path):
    res = run_step(layers)
    paths = outputs.write_products(tmp_path / "out", res.files)
    assert {p.name for p in paths} >= {"settlements.gpkg", "candidates.csv", "candidates.xlsx",
                                       "villages.csv", "sites.gpkg", "assignment.csv", "summary.json"}
    s = gpd.read_file(tmp_path / "out" / "relocation" / "settlements.gpkg").set_index("settlement_id")
    # every input settlement exactly once
    assert sorted(s.index) == sorted(SETTLEMENTS) and s.index.is_unique
    # elevation equals an independent read of the DEM cell
    with rasterio.open(layers.dem_path) as ds:
        for sid, (where, *_rest) in SETTLEMENTS.items():
            if sid in ("snodata", "soutside"):
                continue
            expected = float(ds.read(1)[where])
            assert s.loc[sid, "elevation_m"] == pytest.approx(expected, abs=0.01)
    assert s.loc["s800", "elevation_m"] == 800 and s.loc["s801", "elevation_m"] == 801
    # the elevation criterion is exactly elevation_m > threshold
    thr = 800.0
    assert (s["above_threshold"].astype(bool) == (s["elevation_m"] > thr).fillna(False)).all()
    assert not s.loc["s800", "relocation_candidate"]  # exactly 800 m is not above 800 m
    assert s.loc["s801", "relocation_candidate"] and s.loc["s1200", "relocation_candidate"]
    # outside the DEM and on nodata: NaN, not flagged, status no_elevation
    for sid in ("snodata", "soutside"):
        assert math.isnan(s.loc[sid, "elevation_m"])
        assert not s.loc[sid, "above_threshold"] and not s.loc[sid, "relocation_candidate"]
        assert s.loc[sid, "status"] == "no_elevation"
    assert s.loc["s1200", "reasons_zh"].startswith("海拔 1,200 m > 800 m")
    assert "elevation 801 m > 800 m" in s.loc["s801", "reasons_en"]
    assert "poverty village" in s.loc["s801", "reasons_en"]  # village 500154101001 is poor
    # without road access, remoteness is unknown and said so
    assert "road access unknown" in s.loc["ssteep", "reasons_en"]
    assert s.loc["ssteep", "steep_terrain"] and s.loc["ssteep", "deep_valley"]
    assert not s.loc["ssteep", "relocation_candidate"]
    assert "unavailable" in res.summary["remoteness"]
    csv = pd.read_csv(tmp_path / "out" / "relocation" / "candidates.csv", encoding="utf-8-sig")
    assert list(csv["settlement_id"]) == ["s801", "s1200"]  # township 101 first, then 102
    assert csv.columns[0] == "settlement_id"


def test_threshold_override_moves_candidates(layers):
    res = run_step(layers, plan=load_plan(overrides={"relocation.threshold_m": 799.0}))
    s = res.data.settlements.set_index("settlement_id")
    assert s.loc["s800", "relocation_candidate"] and s.loc["s800", "above_threshold"]
    assert "海拔 800 m > 799 m" in s.loc["s800", "reasons_zh"]


def test_terrain_and_remoteness_from_access(layers):
    res = run_step(layers, access=fake_access(layers, no_road=("ssteep",)))
    s = res.data.settlements.set_index("settlement_id")
    assert s.loc["ssteep", "slope_deg"] == pytest.approx(29.5, abs=1.0)
    assert s.loc["ssteep", "valley_depth_m"] >= 300
    assert s.loc["ssteep", "remote"] and s.loc["ssteep", "relocation_candidate"]
    assert s.loc["ssteep", "candidate_basis"] == "terrain_remote"
    assert "无硬化路" in s.loc["ssteep", "reasons_zh"]
    assert not s.loc["slow", "remote"]
    assert "from the access step" in res.summary["remoteness"]
    # far from the seat by road also makes a settlement remote
    res2 = run_step(layers, access=fake_access(layers, far={"ssteep": 40.0}))
    s2 = res2.data.settlements.set_index("settlement_id")
    assert s2.loc["ssteep", "remote"] and "40.0 km by road" in s2.loc["ssteep", "reasons_en"]
    # priority: s1200 = 0.4 * 400/600 (elevation) + 0.2 * 3/15 (remoteness) = 30.7
    assert s2.loc["s1200", "priority"] == pytest.approx(100 * (0.4 * 400 / 600 + 0.2 * 3 / 15), abs=0.05)
    # without the terrain rule only the elevation criterion counts
    plan = load_plan(overrides={"relocation.include_terrain_remote": False})
    s3 = run_step(layers, plan=plan, access=fake_access(layers, no_road=("ssteep",))).data.settlements
    assert not s3.set_index("settlement_id").loc["ssteep", "relocation_candidate"]


def test_township_filter(layers):
    res = run_step(layers, township="500154102")
    s = res.data.settlements
    assert sorted(s["settlement_id"]) == ["s1200", "slow", "soutside"]
    sites = res.data.sites
    assert ((sites["township_code"] == "500154102") | (sites["assigned_households"] > 0)).all()
    assert (sites["township_code"] == "500154102").any()
    assert set(res.data.assignment["settlement_id"]) <= {"s1200"}
    assert list(res.data.townships["township_code"]) == ["500154102"]


def test_rollups_and_summary(layers):
    res = run_step(layers)
    v = res.data.villages.set_index("village_code")
    assert v.loc["500154101001", "settlements"] == 3
    assert v.loc["500154101001", "candidates"] == 1
    assert v.loc["500154101001", "candidate_households"] == 12
    assert v.loc["500154102001", "candidate_population"] == 70
    t = res.data.townships.set_index("township_code")
    assert t.loc["500154101", "candidate_population"] == 40 and t.loc["500154102", "candidates"] == 1
    # township 102 (108.05-108.17E) holds DEM cells 60-119 of rows 0-119 (the rest is off the DEM):
    # of its 7,200 cells on the DEM, 400 are the 1,200 m plateau and 40 x 20 ramp cells exceed 800 m
    ramp = 300 + 45 * (np.arange(60, 80) - 40)
    expected = 100 * (400 + 40 * (ramp > 800).sum()) / 7200
    assert t.loc["500154102", "area_above_threshold_pct"] == pytest.approx(expected, abs=0.3)
    pc = res.summary["plan_comparison"]
    assert pc["above_threshold"] == {"layer": 2, "plan": 340}
    assert pc["people"]["candidate_population"] == 110 and pc["people"]["plan_target"] == 16900
    assert pc["share_above_threshold_pct"]["layer"] == pytest.approx(100 * 2 / 5, abs=0.05)
    assert any("registered poor" in n for n in pc["notes"])
    assert res.summary["parameters"]["relocation.threshold_m"]["value"] == 800.0
    # four lines, and a fifth saying what was left out: this layer set has settlements off the DEM
    assert len(res.summary["headline"]) == 5
    lo = res.summary["left_out"]
    assert lo["no_elevation"] == int((res.data.settlements["status"] == "no_elevation").sum()) > 0
    assert res.summary["headline"][4].startswith(f"left out: {lo['no_elevation']} settlement(s) "
                                                 f"without elevation")


def test_sites_vetoes_and_assignment_on_layers(layers):
    plan = load_plan(overrides={"relocation.sites.capacity_households": 15})
    res = run_step(layers, plan=plan)
    sites = res.data.sites
    assert len(sites) > 0 and (sites["vetoes"] == "").all()
    assert (sites["elevation_m"] <= 800).all() and (sites["slope_deg"] <= 25).all()
    # sized to the demand: township 101 has 12 candidate households (s801), 102 has 20 (s1200);
    # at 15 households a site that is ceil(12/15) = 1 and ceil(20/15) = 2 sites, on own ground
    assert sites.groupby("township_code").size().to_dict() == {"500154101": 1, "500154102": 2}
    assert (sites["site_role"] == "own").all()
    assert (sites["serves_township_code"] == sites["township_code"]).all()
    assert sites["site_id"].is_unique
    a, u = res.data.assignment, res.data.unassigned
    cap = sites.set_index("site_id")["capacity_households"]
    used = a.groupby("site_id")["households"].sum()
    assert (used <= cap.reindex(used.index)).all()
    cand = res.data.settlements
    cand = cand[cand["relocation_candidate"]]
    assert a["households"].sum() + u["households"].sum() == cand["households"].sum() == 32
    assert (a["distance_km"] <= 30).all()
    # each township's candidates fit in its own sites: all placed there
    assert a["same_township"].all() and a["households"].sum() == 32 and len(u) == 0
    assert res.summary["assignment"]["same_township_pct"] == 100.0
    assert res.summary["sites"]["townships_without_own_feasible_site"] == []


def test_township_without_feasible_ground_is_covered_by_neighbour(layers):
    # township 102 (east of 108.05E, DEM columns 60-119) is all high ground; 101 is flat at 600 m
    z = np.full((120, 120), 600, dtype="int16")
    z[:, 60:] = 1000
    with rasterio.open(layers.dem_path, "r+") as ds:
        ds.write(z, 1)
    plan = load_plan(overrides={"relocation.sites.capacity_households": 40})
    res = run_step(layers, plan=plan)
    cand = res.data.settlements
    cand = cand[cand["relocation_candidate"]]
    assert sorted(cand["settlement_id"]) == ["s1200", "slow"]  # 20 + 30 households, both in 102
    sites = res.data.sites
    # ceil(50 / 40) = 2 sites, both on 101's ground, chosen for 102 and labelled so
    assert len(sites) == 2
    assert (sites["township_code"] == "500154101").all()
    assert (sites["serves_township_code"] == "500154102").all()
    assert (sites["for_township"] == "乙镇").all() and (sites["site_role"] == "cover").all()
    assert (sites["elevation_m"] <= 800).all()
    # the first is the feasible point nearest (household-weighted) to 102's candidates
    ev = res.files["relocation/sites.gpkg"]["evaluated"]
    ok = ev[(ev["vetoes"] == "")]
    w = cand.set_index("settlement_id")["households"]
    mean_d = sum(ok.geometry.distance(cand.set_index("settlement_id").geometry[i]) * w[i]
                 for i in w.index) / w.sum()
    best = ok.geometry[mean_d.idxmin()]
    assert min(best.distance(g) for g in sites.geometry) < 1.0
    s = res.summary["sites"]
    [row] = s["townships_without_own_feasible_site"]
    assert row["township_code"] == "500154102" and row["demand_households"] == 50
    assert sorted(row["covered_by"]) == sorted(sites["site_id"])
    assert s["cover_sites"] == 2 and s["own_sites"] == 0
    t = res.data.townships.set_index("township_code")
    assert t.loc["500154102", "feasible_points"] == 0
    assert "no feasible site of its own" in t.loc["500154102", "site_note"]
    a, u = res.data.assignment, res.data.unassigned
    assert a["households"].sum() == 50 and len(u) == 0
    assert a["site_for_own_township"].all() and not a["same_township"].any()
    used = a.groupby("site_id")["households"].sum()
    assert (used <= sites.set_index("site_id")["capacity_households"].reindex(used.index)).all()


def _evaluated(points: dict[str, tuple[str, float, float, float, str]]) -> gpd.GeoDataFrame:
    """Evaluated grid points: name -> (township, x_m, y_m, suitability, vetoes)."""
    return gpd.GeoDataFrame(
        {"township_code": [v[0] for v in points.values()],
         "suitability": [v[3] for v in points.values()], "vetoes": [v[4] for v in points.values()]},
        index=list(points), geometry=[Point(v[1], v[2]) for v in points.values()], crs=WORK)


def test_select_sites_sizing_spacing_and_cover():
    ev = _evaluated({
        "a1": ("A", 0, 0, 90, ""), "a2": ("A", 500, 0, 85, ""), "a3": ("A", 5000, 0, 70, ""),
        "a4": ("A", 10000, 0, 60, ""), "a5": ("A", 0, 9000, 50, ""),
        "b1": ("B", 20000, 0, 80, ""), "b2": ("B", 21000, 0, 40, ""),
        "c1": ("C", 40000, 0, 0, "elevation 1,100 m > 800 m"),
        "z1": ("Z", 36000, 0, 10, ""), "z2": ("Z", 30000, 0, 20, ""),
    })
    demand = gpd.GeoDataFrame(
        {"township_code": ["A", "A", "B", "C", "C"], "households": [150, 100, 150, 30, 20]},
        geometry=[Point(1000, 1000), Point(9000, 0), Point(20500, 500), Point(39000, 0),
                  Point(41000, 0)], crs=WORK)
    sites, cov = relocation.select_sites(ev, demand, capacity_households=100, min_spacing_m=3000,
                                         max_distance_km=30, township_names={"C": "丙乡"})
    by = sites.set_index(sites.index)
    # A: ceil(250/100) = 3 sites by suitability, a2 skipped (500 m from a1), a5 not needed
    assert set(by.index[by["serves_township_code"] == "A"]) == {"a1", "a3", "a4"}
    # B: 2 needed, one spaced point of its own; its second point is taken (closer than the
    # spacing) before any neighbour's ground
    b = by[by["serves_township_code"] == "B"]
    assert set(b.index) == {"b1", "b2"} and (b["site_role"] == "own").all()
    assert b.loc["b2", "spacing_relaxed"] and not b.loc["b1", "spacing_relaxed"]
    # C: no feasible point; covered by the nearest feasible point elsewhere (z1, 36 km east of
    # A's origin, nearer to C's settlements than z2)
    c = by[by["serves_township_code"] == "C"]
    assert list(c.index) == ["z1"] and c.loc["z1", "site_role"] == "cover"
    assert c.loc["z1", "for_township"] == "丙乡" and c.loc["z1", "site_id"] == "SZ-1"
    cv = cov.set_index("township_code")
    assert cv.loc["C", "feasible_points"] == 0 and cv.loc["C", "cover_site_ids"] == "SZ-1"
    assert "no feasible site of its own" in cv.loc["C", "site_note"]
    assert cv["shortfall_households"].sum() == 0
    assert (sites["capacity_households"] == 100).all()
    # the assignment: C's households go to z1 (chosen for C), A and B stay in their township
    demand["settlement_id"] = ["dA1", "dA2", "dB", "dC1", "dC2"]
    a, u = relocation.assign_households(demand, sites, max_distance_km=30,
                                        other_township_penalty_km=10)
    assert a.groupby("settlement_id")["households"].sum().to_dict() == {
        "dA1": 150, "dA2": 100, "dB": 150, "dC1": 30, "dC2": 20}
    assert set(a.loc[a["township_code"] == "C", "site_id"]) == {"SZ-1"}
    assert a.loc[a["township_code"] != "C", "same_township"].all()
    assert a["site_for_own_township"].all() and len(u) == 0
    # without own ground first, B's shortfall goes to the nearest spaced point elsewhere
    sites2, _ = relocation.select_sites(ev, demand, capacity_households=100, min_spacing_m=3000,
                                        max_distance_km=30, own_before_neighbours=False)
    b2 = sites2[sites2["serves_township_code"] == "B"]
    assert "b2" not in b2.index and (b2["site_role"] == "cover").sum() == 1


def test_network_distance_km_along_roads():
    # an L-shaped road 0,0 -> 4000,0 -> 4000,3000 (nodes 0, 1, 2) and a detached road far away
    edges = gpd.GeoDataFrame(
        {"u": [0, 1, 3], "v": [1, 2, 4], "length_m": [4000.0, 3000.0, 1000.0]},
        geometry=[LineString([(0, 0), (4000, 0)]), LineString([(4000, 0), (4000, 3000)]),
                  LineString([(50000, 0), (51000, 0)])], crs=WORK)
    origins = gpd.GeoSeries([Point(1000, 100), Point(1000, 100), Point(1000, 100), Point(3000, -50)],
                            crs=WORK)
    targets = gpd.GeoSeries([Point(4100, 2000), Point(2000, 0), Point(50500, 10), Point(3900, 2500)],
                            crs=WORK)
    km = relocation.network_distance_km(origins, targets, edges)
    # 100 m to the road, 3,000 m to the corner, 2,000 m up, 100 m off the road
    assert km[0] == pytest.approx(5.2)
    assert km[1] == pytest.approx(1.1)  # along one shared edge
    assert math.isnan(km[2])  # not connected
    assert km[3] == pytest.approx((50 + 1000 + 2500 + 100) / 1000)
    assert math.isnan(relocation.network_distance_km(origins, targets, edges.iloc[:0])[0])


def test_network_distance_km_long_detours_and_source_batches(monkeypatch):
    """Two points 800 m apart whose roads meet only 20 km round a loop of 1 km edges: the
    bounded first search misses the way and the widened ones find it; searching the
    sources one per call gives the same figures."""
    from kaizhou_gis.relocation import assignment as asg_mod

    xs = np.arange(0, 10001, 1000.0)
    pts = [(x, 0.0) for x in xs] + [(x, 1000.0) for x in xs[::-1]]
    lines = [LineString([pts[k], pts[k + 1]]) for k in range(len(pts) - 1)]
    edges = gpd.GeoDataFrame({"u": np.arange(len(lines)), "v": np.arange(len(lines)) + 1,
                              "length_m": [ln.length for ln in lines]}, geometry=lines, crs=WORK)
    origins = gpd.GeoSeries([Point(500, 100), Point(2500, -30), Point(9800, 950)], crs=WORK)
    targets = gpd.GeoSeries([Point(500, 900), Point(2700, 20), Point(9000, 0)], crs=WORK)
    km = relocation.network_distance_km(origins, targets, edges)
    assert km[0] == pytest.approx((100 + 9500 + 1000 + 9500 + 100) / 1000)
    assert km[1] == pytest.approx((30 + 200 + 20) / 1000)  # along one edge
    assert km[2] == pytest.approx((50 + 200 + 1000 + 1000) / 1000)
    monkeypatch.setattr(asg_mod, "_SOURCES_PER_CALL", 1)
    assert np.array_equal(relocation.network_distance_km(origins, targets, edges), km)


def test_user_sites_layer(layers):
    layers.sites = gpd.GeoDataFrame(
        {"site_id": ["U1", "U2"], "name": ["甲安置点", "乙安置点"], "township_code": ["500154101", "500154102"],
         "capacity_households": [5, 100]},
        geometry=[work_point(108.02, 31.08), cell_lonlat_point(20, 80)], crs=WORK)
    res = run_step(layers)
    sites = res.data.sites.set_index("site_id")
    assert list(sites.index) == ["U1", "U2"]
    assert "elevation 1,200 m > 800 m" in sites.loc["U2", "vetoes"]  # flagged, still used
    assert res.summary["sites"]["user_sites_breaking_a_veto"] == 1
    a = res.data.assignment
    assert a.loc[a["site_id"] == "U1", "households"].sum() <= 5
    assert a["households"].sum() == 32


def cell_lonlat_point(row, col):
    return work_point(*cell_lonlat(row, col))


def test_schedule_respects_quotas_by_priority():
    c = pd.DataFrame({"settlement_id": list("abcdefgh"),
                      "population": [5000, 3000, 2600, 2000, 400, 7001, 100, 2300],
                      "priority": [90, 80, 70, 60, 50, 95, 10.0, 5.0],
                      "elevation_m": [1000.0] * 8})
    years = relocation.schedule_years(c, {"2016": 7600, "2017": 7000, "2018": 2300})
    got = dict(zip(c["settlement_id"], years))
    # by priority: f (7,001) -> 2016 (599 left); a (5,000) -> 2017 (2,000 left); b (3,000) and
    # c (2,600) fit no remaining quota -> remainder; d (2,000) -> 2017; e, g -> 2016
    assert got["f"] == 2016 and got["a"] == 2017 and got["e"] == 2016 and got["g"] == 2016
    assert got["d"] == 2017 and got["h"] == 2018
    assert pd.isna(got["b"]) and pd.isna(got["c"])
    per_year = c.assign(y=years).groupby("y")["population"].sum()
    assert per_year.to_dict() == {2016: 7501, 2017: 7000, 2018: 2300}


def _min_cost_networkx(demand, sites, max_km, penalty):
    g = nx.DiGraph()
    total = int(demand["households"].sum())
    g.add_node("src", demand=-total)
    g.add_node("sink", demand=total)
    for _, d in demand.iterrows():
        g.add_edge("src", d.settlement_id, capacity=int(d.households), weight=0)
        g.add_edge(d.settlement_id, "sink", capacity=total, weight=10**7)  # unplaced
        for _, s in sites.iterrows():
            km = d.geometry.distance(s.geometry) / 1000
            if km <= max_km:
                w = int(round(1000 * (km + (0 if d.township_code == s.township_code else penalty))))
                g.add_edge(d.settlement_id, s.site_id, capacity=total, weight=w)
    for _, s in sites.iterrows():
        g.add_edge(s.site_id, "sink", capacity=int(s.capacity_households), weight=0)
    flow = nx.min_cost_flow(g)
    site_ids = set(sites["site_id"])
    cost = sum(flow[d][s] * g[d][s]["weight"] for d in flow for s in flow[d]
               if s in site_ids and d != "src") / 1000.0
    placed = sum(flow[s]["sink"] for s in site_ids)
    return cost, placed


def test_assignment_optimal_capacity_and_conservation():
    rng = np.random.default_rng(7)
    n, m = 25, 6
    demand = gpd.GeoDataFrame({
        "settlement_id": [f"d{i}" for i in range(n)],
        "township_code": rng.choice(["A", "B"], n),
        "households": rng.integers(0, 40, n)},
        geometry=gpd.points_from_xy(rng.uniform(0, 40000, n), rng.uniform(0, 40000, n)), crs=WORK)
    demand.loc[0, "geometry"] = Point(200000, 200000)  # nothing within reach
    sites = gpd.GeoDataFrame({
        "site_id": [f"S{j}" for j in range(m)], "township_code": rng.choice(["A", "B"], m),
        "capacity_households": rng.integers(20, 80, m)},
        geometry=gpd.points_from_xy(rng.uniform(0, 40000, m), rng.uniform(0, 40000, m)), crs=WORK)
    a, u = relocation.assign_households(demand, sites, max_distance_km=20, other_township_penalty_km=10)
    cap = sites.set_index("site_id")["capacity_households"]
    used = a.groupby("site_id")["households"].sum()
    assert (used <= cap.reindex(used.index)).all()
    assert a["households"].sum() + u["households"].sum() == demand["households"].sum()
    per_settlement = a.groupby("settlement_id")["households"].sum().add(
        u.set_index("settlement_id")["households"], fill_value=0)
    want = demand.set_index("settlement_id")["households"]
    assert (per_settlement.reindex(want[want > 0].index) == want[want > 0]).all()
    assert (a["distance_km"] <= 20).all()
    row0 = u.set_index("settlement_id").loc["d0"]
    if demand.loc[0, "households"] > 0:
        assert row0["reason"] == "no site within 20 km"
    # same total cost as an independent min-cost-flow solution, and the same number placed
    dgeo = demand.set_index("settlement_id").geometry
    sgeo = sites.set_index("site_id").geometry
    km = np.array([dgeo[d].distance(sgeo[t]) / 1000 for d, t in zip(a["settlement_id"], a["site_id"])])
    assert np.allclose(a["distance_km"], km, atol=0.005)  # reported rounded to 10 m
    cost = (km + np.where(a["same_township"], 0, 10)) * a["households"]
    ref_cost, ref_placed = _min_cost_networkx(demand[demand["households"] > 0], sites, 20, 10)
    assert a["households"].sum() == ref_placed
    assert cost.sum() == pytest.approx(ref_cost, abs=0.001 * ref_placed + 1e-6)


def test_assignment_full_sites_reason():
    demand = gpd.GeoDataFrame({"settlement_id": ["x", "y"], "township_code": ["A", "A"],
                               "households": [30, 30], "priority": [90.0, 10.0]},
                              geometry=[Point(0, 0), Point(1000, 0)], crs=WORK)
    sites = gpd.GeoDataFrame({"site_id": ["S"], "township_code": ["A"], "capacity_households": [40]},
                             geometry=[Point(500, 0)], crs=WORK)
    a, u = relocation.assign_households(demand, sites, max_distance_km=5, other_township_penalty_km=10)
    assert a.set_index("settlement_id")["households"].to_dict() == {"x": 30, "y": 10}  # priority first
    assert u.to_dict("records")[0]["settlement_id"] == "y"
    assert u.to_dict("records")[0]["households"] == 20
    assert "full" in u.to_dict("records")[0]["reason"]
    # a scheduled settlement is placed before an unscheduled one of higher priority
    demand["schedule_year"] = pd.array([pd.NA, 2016], dtype="Int64")
    a, u = relocation.assign_households(demand, sites, max_distance_km=5, other_township_penalty_km=10)
    assert a.set_index("settlement_id")["households"].to_dict() == {"x": 10, "y": 30}


def test_picks_up_the_real_access_step(tmp_path):
    """On the shared tiny layer set, remoteness comes from the access step when it exists."""
    import layerset

    from kaizhou_gis.layers import load_layers

    plan = load_plan()
    lay = load_layers(layerset.write_layerset(tmp_path / "ls"), plan=plan)
    ctx = Context(layers=lay, plan=plan, options={"township": None})
    res = ctx.result("relocation")
    assert ctx.failed == {}  # the access step ran (a failure there is a regression, not a skip)
    s = res.data.settlements
    assert "from the access step" in res.summary["remoteness"]
    assert s["tongchang"].notna().all()
    acc = ctx.result("access").data.settlements.set_index("settlement_id")
    for row in s.itertuples():
        expected = (not acc.loc[row.settlement_id, "tongchang"]) or (
            acc.loc[row.settlement_id, "network_km_to_seat"] > plan["relocation.remote_km_to_seat"])
        assert bool(row.remote) == bool(expected)
    # elevations agree with an independent read and with the layer set's DEM formula
    ll = s.geometry.to_crs("EPSG:4326")
    with rasterio.open(lay.dem_path) as ds:
        read = np.array([v[0] for v in ds.sample(list(zip(ll.x, ll.y)))], dtype=float)
    assert np.allclose(s["elevation_m"], read, atol=0.01)
    assert np.allclose(s["elevation_m"], layerset.dem_elevation(ll.x), atol=5.0)  # within a cell
    assert (s["above_threshold"] == (s["elevation_m"] > 800)).all()


@pytest.mark.slow
def test_end_to_end_on_shipped_layers(shipped_run):
    """The relocation outputs of the session's ``kaizhou-gis run`` on the shipped layers."""
    import json

    from kaizhou_gis.layers import load_layers

    plan = load_plan()
    lay = load_layers(None, plan=plan)
    rel = shipped_run.out / "relocation"
    s = gpd.read_file(rel / "settlements.gpkg", layer="settlements")
    assert len(s) == len(lay.settlements) and s["settlement_id"].is_unique
    assert set(s["settlement_id"]) == set(lay.settlements["settlement_id"].astype(str))
    # elevation equals an independent read of the DEM at the settlement
    pts = lay.settlements.set_index("settlement_id").geometry.to_crs("EPSG:4326")
    with rasterio.open(lay.dem_path) as ds:
        inside = [(sid, p) for sid, p in pts.items()
                  if ds.bounds.left <= p.x < ds.bounds.right and ds.bounds.bottom < p.y <= ds.bounds.top]
        read = dict(zip([sid for sid, _ in inside], (float(v[0]) for v in ds.sample([(p.x, p.y) for _, p in inside]))))
        nodata = ds.nodata
    el = s.set_index("settlement_id")["elevation_m"]
    for sid, v in read.items():
        if v == nodata:
            assert math.isnan(el[sid])
        else:
            assert el[sid] == pytest.approx(v, abs=0.01)
    assert el.drop(list(read)).isna().all()
    thr = plan["relocation.threshold_m"]
    assert (s["above_threshold"].astype(bool) == (s["elevation_m"] > thr).fillna(False)).all()
    assert (s.loc[s["elevation_m"].isna(), "status"] == "no_elevation").all()
    assert s["relocation_candidate"].astype(bool).sum() > 0
    a = pd.read_csv(rel / "assignment.csv", dtype={"site_id": str}, encoding="utf-8-sig")
    u = pd.read_csv(rel / "unassigned.csv", encoding="utf-8-sig")
    cap = gpd.read_file(rel / "sites.gpkg", layer="sites").set_index("site_id")["capacity_households"]
    used = a.groupby("site_id")["households"].sum()
    assert len(used) > 0 and (used <= cap.reindex(used.index)).all()
    cand = s[s["relocation_candidate"].astype(bool)]
    assert a["households"].sum() + u["households"].sum() == cand["households"].sum()
    years = json.loads((rel / "summary.json").read_text(encoding="utf-8"))["schedule"]["years"]
    assert years
    assert all(y["poor_people"] <= y["quota_poor_people"] for y in years)


def test_zero_scale_setting_is_a_plan_error(layers):
    from kaizhou_gis.errors import PlanError

    plan = load_plan(overrides={"relocation.priority_elevation_span_m": 0.0})
    with pytest.raises(PlanError, match="priority_elevation_span_m = 0.0"):
        run_step(layers, plan=plan)


def test_size_to_must_be_a_known_choice(layers):
    from kaizhou_gis.errors import PlanError

    plan = load_plan(overrides={"relocation.sites.size_to": "everyone"})
    with pytest.raises(PlanError, match="relocation.sites.size_to = 'everyone'"):
        run_step(layers, plan=plan)


@pytest.mark.parametrize("first", [(1, 1), (8, 30)])
def test_assignment_column_generation_reaches_the_whole_problems_optimum(monkeypatch, first):
    # the assignment is solved over a few pairs per settlement and site, adding the pairs the
    # duals price below zero; it must end at the optimum of the LP over every pair in reach
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    from kaizhou_gis.relocation import assignment

    monkeypatch.setattr(assignment, "_FIRST_PER_SETTLEMENT", first[0])
    monkeypatch.setattr(assignment, "_FIRST_PER_SITE", first[1])
    rng = np.random.default_rng(7)
    n, m = 80, 12
    xy_s, xy_t = rng.uniform(0, 20_000, (n, 2)), rng.uniform(0, 20_000, (m, 2))
    h = rng.integers(1, 40, n)
    cap = rng.integers(40, 110, m)  # less capacity than households: some stay unplaced
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(m), indexing="ij"))
    cost = np.hypot(*(xy_s[ii] - xy_t[jj]).T) / 1000.0 + np.where((ii + jj) % 3 == 0, 10.0, 0.0)
    d = pd.DataFrame({"priority": rng.uniform(0, 100, n),
                      "schedule_year": np.where(rng.uniform(size=n) < 0.5, 2017, np.nan)})
    unplaced_cost = (m + 1) * 50.0
    x, unplaced = assignment._solve(d, ii, jj, cost, h, cap, unplaced_cost=unplaced_cost)
    c_un = unplaced_cost * (1 + d["priority"].to_numpy() / 100 + 2 * d["schedule_year"].notna().to_numpy())
    k = len(ii)
    whole = linprog(np.concatenate([cost, c_un]),
                    A_ub=coo_matrix((np.ones(k), (jj, np.arange(k))), shape=(m, k + n)),
                    b_ub=cap.astype(float),
                    A_eq=coo_matrix((np.ones(k + n), (np.concatenate([ii, np.arange(n)]),
                                                      np.arange(k + n))), shape=(n, k + n)),
                    b_eq=h.astype(float), bounds=(0, None), method="highs-ds")
    assert whole.status == 0
    assert unplaced.sum() == h.sum() - cap.sum() > 0  # every site full, the rest unplaced
    np.testing.assert_array_equal(np.bincount(ii, weights=x, minlength=n) + unplaced, h)
    assert (np.bincount(jj, weights=x, minlength=m) <= cap).all()
    assert cost @ x + c_un @ unplaced == pytest.approx(whole.fun, rel=1e-12)
    np.testing.assert_array_equal(x, np.round(whole.x[:k]))
