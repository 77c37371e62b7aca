"""OpenStreetMap roads as a first-class input: found by name, ways cut by the extract counted,
non-vehicle classes left out, surfaces (OSM values, tracktype, Chinese words) classed by the plan's
tables, unknown surface values named, an extract larger than the district clipped."""
from __future__ import annotations

import osmium
import pytest
from layerset import layer_frames, write_layerset

from kaizhou_gis.layers import check_layers, load_layers
from kaizhou_gis.plan import load_plan


@pytest.fixture(scope="module")
def plan():
    return load_plan()


#: node id -> (lon, lat), inside the test district (108.30..108.50E, 31.10..31.30N)
NODES = {1: (108.35, 31.20), 2: (108.45, 31.25), 3: (108.44, 31.22), 4: (108.47, 31.27),
         5: (108.43, 31.21), 6: (108.36, 31.20), 7: (108.37, 31.21), 8: (108.38, 31.22),
         9: (108.46, 31.24)}
#: way id -> (node ids, tags); nodes 90, 91 are not in the file (outside the extract)
WAYS = {
    101: ([1, 2], {"highway": "primary", "surface": "asphalt", "name": "G348"}),
    102: ([2, 3], {"highway": "tertiary"}),                                  # no surface: default
    103: ([2, 4], {"highway": "track", "tracktype": "grade1"}),              # paved by tracktype
    104: ([3, 5], {"highway": "unclassified", "surface": "cobblestone"}),    # stone: hardened
    105: ([5, 1], {"highway": "residential", "surface": "concrete:plates"}),
    106: ([1, 6], {"highway": "service", "surface": "sett"}),
    107: ([6, 7], {"highway": "unclassified", "surface": "paving_stones;gravel"}),  # mixed: unpaved
    108: ([7, 8], {"highway": "track", "tracktype": "grade3"}),
    109: ([8, 9], {"highway": "unclassified", "surface": "moon_dust"}),     # unknown value
    110: ([1, 7], {"highway": "footway"}),
    111: ([6, 8], {"highway": "steps"}),
    112: ([3, 9], {"highway": "cycleway", "surface": "asphalt"}),
    113: ([4, 9, 90], {"highway": "unclassified", "surface": "concrete:lanes"}),  # truncated
    114: ([9, 91], {"highway": "residential"}),                              # dropped: one node
    115: ([1, 5], {"waterway": "stream"}),                                   # not a road
}


def write_osm(path, nodes=NODES, ways=WAYS):
    with osmium.SimpleWriter(str(path)) as w:
        for nid, (lon, lat) in sorted(nodes.items()):
            w.add_node(osmium.osm.mutable.Node(id=nid, location=(lon, lat), version=1))
        for wid, (refs, tags) in sorted(ways.items()):
            w.add_way(osmium.osm.mutable.Way(id=wid, nodes=refs, tags=tags, version=1))
    return path


def folder_with_osm(tmp_path, name="roads.osm.pbf", **kw):
    frames = {k: v for k, v in layer_frames().items() if k != "roads"}
    folder = write_layerset(tmp_path, frames)
    write_osm(folder / name, **kw)
    return folder


def test_roads_osm_pbf_in_a_folder_loads_with_every_way_accounted_for(tmp_path, plan):
    report = check_layers(folder_with_osm(tmp_path), plan=plan)
    assert report.ok, report.problem_text()
    r = report.layers.roads.set_index("road_id")
    assert r.index.tolist() == ["osm101", "osm102", "osm103", "osm104", "osm105", "osm106",
                                "osm107", "osm108", "osm109", "osm113"]
    assert r["surface"].to_dict() == {
        "osm101": "paved", "osm102": "paved", "osm103": "paved", "osm104": "paved",
        "osm105": "paved", "osm106": "paved", "osm107": "unpaved", "osm108": "unpaved",
        "osm109": "unpaved", "osm113": "paved"}
    assert r.loc["osm103", "road_class"] == "track" and r.loc["osm101", "name"] == "G348"
    notes = "\n".join(report.notes)
    assert "1 OSM way(s) without a highway tag" in notes
    assert "1 OSM highway way(s) dropped: fewer than two of their nodes are in roads.osm.pbf" in notes
    assert "osm114" in notes
    assert "1 OSM highway way(s) truncated" in notes and "osm113" in notes
    assert ("3 way(s) of classes that carry no vehicle were left out of the network "
            "(cycleway 1, footway 1, steps 1; layers.non_vehicle_classes)") in notes
    # the unknown value is named, not silently unpaved (its class default, unclassified -> village)
    assert ("1 road(s) with a surface value in neither access.paved_surfaces nor "
            "access.unpaved_surfaces ('moon_dust' 1)") in notes
    assert "2 way(s) without a surface tag classed by their tracktype (1 paved" in notes
    assert "1 road(s) without a surface got the default of their class" in notes
    assert len(r.loc["osm113"].geometry.coords) == 2  # the part inside the extract: 4 -> 9


def test_a_way_leaving_the_extract_is_cut_not_bridged(tmp_path, plan):
    nodes = dict(NODES) | {10: (108.465, 31.255)}
    ways = {201: ([4, 10, 90, 2, 9], {"highway": "secondary"}),
            202: ([1, 2], {"highway": "primary"})}
    layers = load_layers(folder_with_osm(tmp_path, nodes=nodes, ways=ways), plan=plan)
    r = layers.roads.set_index("road_id")
    assert sorted(r.index) == ["osm201-1", "osm201-2", "osm202"]  # two parts, no chord 10 -> 2
    assert len(r.loc["osm201-1"].geometry.coords) == 2 and len(r.loc["osm201-2"].geometry.coords) == 2


def test_any_single_osm_file_in_the_folder_is_the_roads(tmp_path, plan):
    report = check_layers(folder_with_osm(tmp_path, name="chongqing-latest.osm.pbf"), plan=plan)
    assert report.ok, report.problem_text()
    assert len(report.layers.roads) == 10
    write_osm(tmp_path / "other.pbf")
    report = check_layers(tmp_path, plan=plan)
    assert not report.ok
    assert "roads: several OSM files" in report.problem_text()
    assert "chongqing-latest.osm.pbf, other.pbf" in report.problem_text()


def test_an_extract_larger_than_the_district_is_clipped(tmp_path, plan):
    # one way runs 20 km east out of the district (108.50E) and one lies wholly outside it
    nodes = dict(NODES) | {20: (108.70, 31.25), 21: (108.75, 31.25), 22: (108.80, 31.26)}
    ways = {301: ([2, 20], {"highway": "primary"}), 302: ([21, 22], {"highway": "primary"}),
            303: ([1, 2], {"highway": "primary"})}
    report = check_layers(folder_with_osm(tmp_path, nodes=nodes, ways=ways), plan=plan)
    assert report.ok, report.problem_text()
    r = report.layers.roads.set_index("road_id")
    assert sorted(r.index) == ["osm301", "osm303"]
    b = report.layers.boundary.geometry.iloc[0]
    # cut 3 km (layers.osm_clip_margin_m) beyond the boundary
    assert r.loc["osm301"].geometry.distance(b) == 0
    assert b.exterior.distance(shapely_point(r.loc["osm301"].geometry.coords[-1])) == \
        pytest.approx(3000.0, abs=1.0)
    assert any("1 cut at the boundary + 3000 m (layers.osm_clip_margin_m)" in n for n in report.notes)
    # the way wholly outside is not even built (the reader skips ways outside the district's box)
    assert any("1 OSM highway way(s) wholly outside the district's box" in n for n in report.notes)


def shapely_point(xy):
    from shapely.geometry import Point
    return Point(xy)


def test_chinese_surface_words(tmp_path, plan):
    frames = layer_frames()
    frames["roads"]["surface"] = ["混凝土", "水泥路", "沥青路面", "泥结碎石", "水泥硬化"]
    layers = load_layers(write_layerset(tmp_path, frames), plan=plan)
    assert layers.roads["surface"].tolist() == ["paved", "paved", "paved", "unpaved", "paved"]
    frames["roads"]["surface"] = ["砂石", "土路", "沥青", "水泥", "石子路"]
    report = check_layers(write_layerset(tmp_path / "b", frames), plan=plan)
    assert report.layers.roads["surface"].tolist() == ["unpaved", "unpaved", "paved", "paved", "unpaved"]
    assert any("'石子路' 1" in n for n in report.notes)  # unknown: named (track default: unpaved)


def test_osm_roads_command_builds_the_roads_layer_from_a_larger_extract(tmp_path, plan):
    from click.testing import CliRunner

    from kaizhou_gis.cli import main
    nodes = dict(NODES) | {20: (108.70, 31.25), 21: (108.75, 31.25), 22: (108.80, 31.26)}
    ways = dict(WAYS) | {301: ([2, 20], {"highway": "primary"}), 302: ([21, 22], {"highway": "primary"})}
    big = write_osm(tmp_path / "province.osm.pbf", nodes=nodes, ways=ways)
    frames = layer_frames()
    frames["boundary"].to_file(tmp_path / "boundary.geojson")
    out = tmp_path / "layers" / "roads.gpkg"
    res = CliRunner().invoke(main, ["osm-roads", "--osm", str(big), "--boundary",
                                    str(tmp_path / "boundary.geojson"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 OSM highway way(s) wholly outside the district's box" in res.output  # 302
    assert "1 cut at the boundary + 3000 m" in res.output  # 301
    assert "3 way(s) of classes that carry no vehicle were left out" in res.output
    import geopandas as gpd
    r = gpd.read_file(out, layer="roads")
    assert sorted(r["road_id"]) == sorted(["osm101", "osm102", "osm103", "osm104", "osm105", "osm106",
                                           "osm107", "osm108", "osm109", "osm113", "osm301"])
    assert set(r.columns) >= {"road_class", "surface", "tracktype", "name"}
    # the written layer is a roads layer like any other: the rest of the layer set loads with it
    folder = write_layerset(tmp_path / "layers", {k: v for k, v in frames.items() if k != "roads"})
    layers = load_layers(folder, plan=plan)
    assert layers.roads.set_index("road_id").loc["osm103", "surface"] == "paved"  # tracktype grade1
    bad = CliRunner().invoke(main, ["osm-roads", "--osm", str(big), "--boundary",
                                    str(tmp_path / "boundary.geojson"), "--out", str(tmp_path / "x.shp")])
    assert bad.exit_code == 2 and "ending in .gpkg" in bad.output


def test_a_broken_osm_file_is_a_problem_not_a_traceback(tmp_path, plan):
    from click.testing import CliRunner

    from kaizhou_gis.cli import main
    frames = {k: v for k, v in layer_frames().items() if k != "roads"}
    folder = write_layerset(tmp_path, frames)
    (folder / "roads.osm.pbf").write_bytes(b"not a pbf at all")
    report = check_layers(folder, plan=plan)
    assert "roads: roads.osm.pbf is not a readable OpenStreetMap file" in report.problem_text()
    frames["boundary"].to_file(tmp_path / "b.geojson")
    res = CliRunner().invoke(main, ["osm-roads", "--osm", str(folder / "roads.osm.pbf"),
                                    "--boundary", str(tmp_path / "b.geojson"), "--out", str(tmp_path / "r.gpkg")])
    assert res.exit_code == 2 and "not a readable OpenStreetMap file" in res.output
    assert not (tmp_path / "r.gpkg").exists()


def test_geofabrik_roads_shapefile(tmp_path, plan):
    # Geofabrik's gis_osm_roads_free_1.shp: osm_id, fclass (highway, tracks as track_gradeN), no surface
    import geopandas as gpd
    from shapely.geometry import LineString
    frames = {k: v for k, v in layer_frames().items() if k != "roads"}
    folder = write_layerset(tmp_path, frames)
    gpd.GeoDataFrame({"osm_id": ["11", "12", "13", "14"], "code": [5113, 5141, 5151, 5122],
                      "fclass": ["primary", "track_grade1", "track_grade3", "footway"],
                      "name": ["G348", "", "", ""]},
                     geometry=[LineString([(108.35, 31.20), (108.45, 31.25)]),
                               LineString([(108.45, 31.25), (108.44, 31.22)]),
                               LineString([(108.44, 31.22), (108.43, 31.21)]),
                               LineString([(108.45, 31.25), (108.47, 31.27)])],
                     crs="EPSG:4326").to_file(folder / "roads.shp")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    r = report.layers.roads.set_index("road_id")
    assert r.index.tolist() == ["11", "12", "13"]  # the footway is left out (counted)
    assert r["road_class"].tolist() == ["trunk", "track", "track"]
    assert r["surface"].tolist() == ["paved", "paved", "unpaved"]  # default; grade1; grade3
    assert any("carry no vehicle were left out of the network (footway 1" in n for n in report.notes)
