"""Road lines → graph, on hand-made networks where the right answer is known."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from rasterio.transform import from_origin
from shapely.geometry import LineString, MultiLineString, Point

from kaizhou_gis.errors import LayerError
from kaizhou_gis.network import DemGrid, build_network, dangles_frame, terrain_class

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 3_400_000.0
SPEEDS = {"trunk": 60.0, "county": 40.0, "township": 30.0, "village": 20.0, "track": 10.0, "other": 20.0}
PAVED = ["paved", "水泥"]


def roads(lines, surfaces=None, classes=None, ids=None):
    n = len(lines)
    return gpd.GeoDataFrame({
        "road_id": ids or [f"R{i}" for i in range(n)],
        "road_class": classes or ["village"] * n,
        "surface": surfaces or ["paved"] * n,
    }, geometry=[LineString([(X0 + x, Y0 + y) for x, y in ln]) if not isinstance(ln, MultiLineString)
                 else ln for ln in lines], crs=CRS)


def build(gdf, **kw):
    kw.setdefault("snap_tolerance_m", 5.0)
    return build_network(gdf, paved_surfaces=PAVED, speed_kmh=SPEEDS, **kw)


def test_shared_end_points_and_shared_vertex_are_junctions():
    # A: 0→1000 along x; B: starts at A's end; C: passes through A's interior vertex (500, 0).
    net = build(roads([[(0, 0), (500, 0), (1000, 0)], [(1000, 0), (1000, 800)],
                       [(500, -300), (500, 0), (500, 300)]]))
    # nodes: (0,0), (500,0), (1000,0), (1000,800), (500,-300), (500,300)
    assert net.report["nodes"] == 6
    assert net.report["edges"] == 5
    assert net.report["components"] == 1
    assert net.report["dangles"] == 4
    assert net.edges["length_m"].sum() == pytest.approx(1000 + 800 + 600)
    assert sorted(net.nodes["degree"]) == [1, 1, 1, 1, 2, 4]


def test_overpass_crossing_is_not_a_junction():
    # Two roads cross at (500, 0) without a shared vertex: a bridge over the other road.
    net = build(roads([[(0, 0), (1000, 0)], [(500, -400), (500, 400)]]))
    assert net.report["edges"] == 2
    assert net.report["nodes"] == 4
    assert net.report["components"] == 2


def test_three_metre_gap_between_end_points_is_closed():
    net = build(roads([[(0, 0), (1000, 0)], [(1003, 0), (1003, 900)]]))
    assert net.report["components"] == 1
    assert net.report["endpoints_snapped_to_vertex"] == 1
    assert net.report["nodes"] == 3


def test_three_metre_undershoot_onto_segment_interior_is_closed():
    # T-junction: the stem ends 3 m short of the middle of the bar (no vertex there).
    net = build(roads([[(0, 0), (1000, 0)], [(400, 3), (400, 700)]]))
    assert net.report["components"] == 1
    assert net.report["endpoints_snapped_to_segment"] == 1
    assert net.report["edges"] == 3  # the bar is split at the junction
    bar = net.edges[net.edges["road_id"] == "R0"].sort_values("length_m")
    assert bar["length_m"].tolist() == pytest.approx([400.0, 600.0])


def test_gap_wider_than_tolerance_stays_open_and_is_a_dangle():
    net = build(roads([[(0, 0), (1000, 0)], [(1008, 0), (1008, 900)]]), dangle_check_m=20.0)
    assert net.report["components"] == 2
    assert net.report["dangles"] == 4
    d = dangles_frame(net)
    assert len(d) == 4
    # the two ends facing each other across the 8 m gap are flagged as possible missed junctions
    assert net.report["dangles_near_other_road"] == 2
    assert sorted(d["nearest_other_road_m"].dropna().round(6)) == [8.0, 8.0]


def test_surface_class_speed_and_paved_components():
    net = build(roads([[(0, 0), (1000, 0)], [(1000, 0), (2000, 0)], [(2000, 0), (3000, 0)]],
                      surfaces=["水泥", "unpaved", "paved"], classes=["county", "track", "unknown"]))
    e = net.edges.sort_values("road_id")
    assert e["paved"].tolist() == [True, False, True]
    assert e["travel_min"].tolist() == pytest.approx([1.5, 6.0, 3.0])  # 40, 10, 'other' 20 km/h
    assert net.report["components"] == 1
    # paved-only graph: the unpaved middle splits it in two
    pc = net.nodes.set_index("node_id")["paved_component"]
    assert pc[e["u"].iloc[0]] != pc[e["v"].iloc[2]]


def test_grade_from_dem_and_terrain_class():
    # DEM rising 10 m per 100 m eastwards: an east-west road has a 10 % grade.
    cols = np.arange(40)
    z = np.tile(100.0 + 10.0 * cols, (20, 1))
    dem = DemGrid(values=z, transform=from_origin(X0 - 100, Y0 + 1000, 100.0, 100.0), crs=CRS)
    net = build(roads([[(0, 0), (2000, 0)], [(500, 100), (500, 900)]]), dem=dem, grade_sample_m=100.0)
    e = net.edges.set_index("road_id")
    assert e.loc["R0", "grade_pct"] == pytest.approx(10.0)
    assert e.loc["R0", "max_grade_pct"] == pytest.approx(10.0)
    assert e.loc["R1", "grade_pct"] == pytest.approx(0.0)  # along a contour
    assert e.loc["R0", "terrain_slope_deg"] == pytest.approx(np.degrees(np.arctan(0.1)), abs=0.01)
    assert e.loc["R0", "terrain"] == "flat"
    assert list(terrain_class(np.array([3.0, 9.0, 25.0, np.nan]), {"hilly": 8.0, "mountain": 20.0})) == \
        ["flat", "hilly", "mountain", "mountain"]


def test_multilines_and_bad_rows():
    ml = MultiLineString([[(X0, Y0), (X0 + 100, Y0)], [(X0 + 100, Y0), (X0 + 100, Y0 + 100)]])
    gdf = roads([[(0, 0), (10, 0)], [(0, 0), (0, 50)]])
    gdf.loc[0, "geometry"] = ml
    gdf.loc[len(gdf)] = ["R9", "village", "paved", Point(X0, Y0)]
    net = build(gdf)
    assert net.report["roads_skipped"] == 1 and net.report["roads_skipped_ids"] == ["R9"]
    assert net.report["edges"] == 3 and net.report["components"] == 1


def test_geographic_crs_is_rejected():
    gdf = roads([[(0, 0), (10, 0)]]).set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(LayerError, match="geographic"):
        build(gdf)


def test_two_lines_starting_on_one_road_point_both_join_the_road():
    # two new links drawn from the same point in the middle of a road segment (no vertex there)
    net = build(roads([[(0, 0), (1000, 0)], [(400, 0.0004), (400, 500)], [(400, 0.0004), (700, 600)]]))
    assert net.report["components"] == 1
    assert net.report["endpoints_snapped_to_segment"] == 2
    assert net.report["edges"] == 4
    assert sorted(net.nodes["degree"]) == [1, 1, 1, 1, 4]


def _node_at(net, x, y):
    d = net.nodes.distance(Point(X0 + x, Y0 + y))
    assert d.min() < 1e-6, f"no node at ({x}, {y})"
    return int(d.idxmin())


def _network_m(net, a, b):
    from scipy.sparse.csgraph import dijkstra
    g = net.matrix(net.edges["length_m"].to_numpy())
    return float(dijkstra(g, directed=False, indices=a)[b])


def test_undershoots_onto_one_segment_keep_the_road_straight():
    # a 100 m road; two side roads end 1 m short of it at x=60 and x=30 (listed in that order):
    # the vertices go in along the road, which stays 100 m long and straight
    net = build(roads([[(0, 0), (100, 0)], [(60, 1), (60, 50)], [(30, 1), (30, 50)]]))
    bar = net.edges[net.edges["road_id"] == "R0"]
    assert bar["length_m"].sum() == pytest.approx(100.0)
    assert sorted(bar["length_m"].round(6)) == [30.0, 30.0, 40.0]
    assert net.report["km_total"] == pytest.approx((100 + 50 + 50) / 1000.0)  # side roads 49 m + 1 m moved
    assert _network_m(net, _node_at(net, 0, 0), _node_at(net, 30, 0)) == pytest.approx(30.0)
    assert _network_m(net, _node_at(net, 0, 0), _node_at(net, 60, 0)) == pytest.approx(60.0)
    j = net.joins.sort_values("road_id")
    assert j["road_id"].tolist() == ["R1", "R2"] and set(j["kind"]) == {"end_to_line"}
    assert j["moved_m"].tolist() == pytest.approx([1.0, 1.0])
    assert j["to_road_id"].tolist() == ["R0", "R0"]


def test_end_clusters_do_not_chain_beyond_the_tolerance():
    # four road ends 4 m apart in a row (x = 100, 104, 108, 112): chained merging would move the
    # end at 112 by 12 m; here no end moves more than the 5 m tolerance
    net = build(roads([[(0, 0), (100, 0)], [(104, 0), (104, 100)], [(108, 0), (108, -100)],
                       [(112, 0), (200, 0)]]))
    assert net.joins["moved_m"].max() <= 5.0
    assert len(net.joins) == 2  # 100 and 108 join the end at 104; 112 is 4 m from that node
    assert sorted(net.joins["to_road_id"]) == ["R0;R1", "R1;R2"]  # the other roads joined
    assert net.joins["moved_m"].tolist() == pytest.approx([4.0, 4.0])
    r0 = net.edges[net.edges["road_id"] == "R0"]
    assert r0["length_m"].sum() == pytest.approx(104.0)  # 100 m + at most the 4 m moved
    r3 = net.edges[net.edges["road_id"] == "R3"]
    assert r3["length_m"].sum() == pytest.approx(88.0)  # not moved
    for e in net.edges.itertuples():  # every edge end within the tolerance of its own road
        src = roads([[(0, 0), (100, 0)], [(104, 0), (104, 100)], [(108, 0), (108, -100)],
                     [(112, 0), (200, 0)]]).set_index("road_id").geometry[e.road_id]
        for p in (e.geometry.coords[0], e.geometry.coords[-1]):
            assert src.distance(Point(p)) <= 5.0 + 1e-9


def test_four_ends_on_a_square_meet_in_its_centre():
    # ends on the corners of a 4 m square (diagonal 5.7 m > 5 m): around one end the others
    # would not all fit, but all four are within 2.83 m of the centre: one node, no end moved
    # more than the tolerance
    net = build(roads([[(0, 0), (-100, 0)], [(4, 0), (104, 0)], [(0, 4), (0, 104)],
                       [(4, 4), (104, 104)]]))
    assert net.report["components"] == 1
    assert len(net.joins) == 4
    assert net.joins["moved_m"].tolist() == pytest.approx([np.hypot(2, 2)] * 4)
    assert _node_at(net, 2, 2) >= 0 and sorted(net.nodes["degree"]) == [1, 1, 1, 1, 4]


def test_a_short_road_does_not_become_a_loop():
    # a 3 m stub whose both ends are within 5 m of another road's end: only one end joins
    net = build(roads([[(0, 0), (100, 0)], [(102, 0), (104, 1)]]))
    assert (net.edges["u"] != net.edges["v"]).all()
    assert len(net.joins) == 1
    assert net.edges["length_m"].gt(0).all()


def test_tolerance_zero_keeps_the_input_geometry_and_lists_no_joins():
    gdf = roads([[(0, 0), (100, 0)], [(60, 1), (60, 50)], [(100, 0), (100, 80)]])
    net = build(gdf, snap_tolerance_m=0.0)
    assert len(net.joins) == 0
    assert net.edges["length_m"].sum() == pytest.approx(gdf.length.sum())
    assert shapely.equals(shapely.union_all(net.edges.geometry.to_numpy()),
                          shapely.union_all(gdf.geometry.to_numpy()))
