"""`kaizhou-gis validate`: exit 0 on a clean layer set, exit 2 naming each kind of problem."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from layerset import DEM_RES_DEG, dem_array, layer_frames, write_dem, write_layerset
from shapely.geometry import LineString, Point, Polygon

from kaizhou_gis.cli import main


def validate(folder, *extra):
    r = CliRunner().invoke(main, ["validate", "--layers", str(folder), *extra])
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r


BASE: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _base_layerset(tmp_path_factory):
    """The valid layer set, written once; tests copy it and add only the layers they change."""
    BASE["dir"] = write_layerset(tmp_path_factory.mktemp("base"))
    BASE["frames"] = layer_frames()


def write(tmp_path, frames, *, dem: bool = True):
    """A layer folder: the base GeoPackage plus a per-layer file for each changed layer."""
    folder = tmp_path / "ls"
    frames = BASE["frames"] if frames is None else frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # writing a layer without a CRS warns
        if set(frames) != set(BASE["frames"]):
            return write_layerset(folder, frames, dem=dem)
        folder.mkdir(parents=True)
        shutil.copy(BASE["dir"] / "kaizhou.gpkg", folder / "kaizhou.gpkg")
        if dem:
            shutil.copy(BASE["dir"] / "dem.tif", folder / "dem.tif")
        for name, gdf in frames.items():
            ref = BASE["frames"][name]
            if not (gdf.crs == ref.crs and gdf.equals(ref)):
                gdf.to_file(folder / f"{name}.gpkg", driver="GPKG")
    return folder


def test_clean_layer_set_exits_0_with_per_layer_summary(tmp_path):
    r = validate(write(tmp_path, None))
    assert r.exit_code == 0, r.output
    assert "OK: layers and plan '开州区'" in r.output
    lines = {ln.split()[0]: ln.split() for ln in r.output.splitlines() if ln.startswith("  ")}
    assert lines["villages"][1] == "3" and lines["settlements"][1] == "6"
    assert lines["roads"][1] == "5" and lines["dem"][1] == "288x288"
    assert lines["villages"][2] == "EPSG:4326"
    assert "108.3400, 31.1900 .. 108.4700, 31.2700" in r.output


def test_missing_crs(tmp_path):
    f = layer_frames()
    f["villages"] = f["villages"].set_crs(None, allow_override=True)
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages: no CRS" in r.output and "--crs" in r.output
    # the same set passes when the CRS is given on the command line
    r2 = validate(tmp_path / "ls", "--crs", "EPSG:4326")
    assert r2.exit_code == 0, r2.output
    assert "villages: no CRS in the file; using EPSG:4326." in r2.output


def test_wrong_geometry_type(tmp_path):
    f = layer_frames()
    f["villages"] = f["villages"].set_geometry(f["villages"].to_crs(4545).buffer(100).to_crs(4326))
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages.geometry: wrong geometry type Polygon in 3 row(s)" in r.output
    assert "500154001001, 500154118201, 500154118202" in r.output
    assert "must hold Point features" in r.output


def test_empty_geometry(tmp_path):
    f = layer_frames()
    s = f["settlements"]
    s.loc[s.index[3], "geometry"] = Point()
    s.loc[s.index[4], "geometry"] = None
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "settlements.geometry: empty or missing in 2 row(s) (S4, S5)" in r.output


def test_invalid_polygon_is_repaired_with_a_note(tmp_path):
    f = layer_frames()
    # a bow-tie (self-intersecting) township outline inside the district
    bowtie = Polygon([(108.30, 31.10), (108.40, 31.30), (108.40, 31.10), (108.30, 31.30)])
    assert not bowtie.is_valid
    f["townships"].loc[0, "geometry"] = bowtie
    r = validate(write(tmp_path, f))
    assert r.exit_code == 0, r.output
    assert "townships.geometry: 1 invalid geometry repaired with make_valid (500154001)" in r.output


def test_unrepairable_geometry_is_a_problem(tmp_path):
    f = layer_frames()
    # a polygon with no area: make_valid turns it into a line, which is no township
    f["townships"].loc[1, "geometry"] = Polygon([(108.40, 31.2), (108.45, 31.2), (108.50, 31.2)])
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "townships.geometry: invalid and not repairable in 1 row(s) (500154118)" in r.output


def test_missing_required_column(tmp_path):
    f = layer_frames()
    f["villages"] = f["villages"].drop(columns=["households"])
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages.households: required column missing" in r.output
    assert "户数" in r.output  # the fix lists the recognized aliases


def test_mistyped_column(tmp_path):
    f = layer_frames()
    f["settlements"]["population"] = ["600", "600", "很多", "160", "110", "140"]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "settlements.population: not a number in 1 row(s) (S3: 很多)" in r.output


def test_bad_code_format(tmp_path):
    f = layer_frames()
    f["villages"].loc[1, "village_code"] = "5001541182"
    f["settlements"].loc[[2, 3], "village_code"] = "5001541182"
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages.village_code: not a 12-digit code in 1 row(s) (5001541182)" in r.output


def test_duplicate_codes(tmp_path):
    f = layer_frames()
    f["villages"].loc[2, "village_code"] = "500154118201"
    f["settlements"].loc[[4, 5], "village_code"] = "500154118201"
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages.village_code: duplicate codes (1: 500154118201)" in r.output


def test_shared_road_route_codes_are_not_duplicates(tmp_path):
    """路线编号 (X203, ...) is shared by every segment of a route: ids are made unique, noted."""
    f = layer_frames()
    f["roads"] = f["roads"].drop(columns=["road_id"])
    f["roads"]["路线编号"] = ["G348", "X203", "X203", None, "X203"]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 0, r.output
    assert "roads.road_id: 3 road(s) share 1 id(s) (X203); each segment got #1, #2" in r.output
    assert "roads.road_id: empty in 1 row(s); ids r<row> assigned (r4)" in r.output
    lines = {ln.split()[0]: ln.split() for ln in r.output.splitlines() if ln.startswith("  ")}
    assert lines["roads"][1] == "5"


def test_village_with_unknown_township(tmp_path):
    f = layer_frames()
    f["villages"].loc[2, "township_code"] = "500154999"
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert ("villages.township_code: 1 row(s) (500154118202) point to unknown townships "
            "(500154999)") in r.output


def test_settlement_with_unknown_village(tmp_path):
    f = layer_frames()
    f["settlements"].loc[[0, 5], "village_code"] = ["500154001009", "500154118299"]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert ("settlements.village_code: 2 row(s) (S1, S6) point to unknown villages "
            "(500154001009, 500154118299)") in r.output


def test_negative_households(tmp_path):
    f = layer_frames()
    f["villages"].loc[0, "households"] = -5
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "villages.households: negative in 1 row(s) (500154001001)" in r.output


def test_feature_outside_boundary_beyond_tolerance(tmp_path):
    f = layer_frames()
    s = f["settlements"]
    s.loc[0, "geometry"] = Point(108.2995, 31.185)   # ~48 m west of the boundary: accepted
    s.loc[1, "geometry"] = Point(108.2950, 31.195)   # ~480 m west: outside
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "settlements.geometry: 1 feature(s) outside the district boundary" in r.output
    assert "(more than 100 m; S2)" in r.output


def test_feature_outside_the_dem(tmp_path):
    folder = write(tmp_path, None, dem=False)
    arr, transform = dem_array()
    west = arr[:, : int(round((108.40 - 108.28) / DEM_RES_DEG))]  # DEM ends at 108.40E
    write_dem(folder / "dem.tif", west, transform=transform)
    r = validate(folder)
    assert r.exit_code == 2
    assert "villages.geometry: 2 feature(s) outside the DEM (500154118201, 500154118202)" in r.output
    assert "settlements.geometry: 4 feature(s) outside the DEM (S3, S4, S5, S6)" in r.output


def test_dem_without_crs(tmp_path):
    folder = write(tmp_path, None, dem=False)
    write_dem(folder / "dem.tif", crs=None)
    r = validate(folder)
    assert r.exit_code == 2
    assert "dem: dem.tif has no CRS; pass --crs" in r.output
    assert validate(folder, "--crs", "EPSG:4326").exit_code == 0


def test_dem_all_nodata(tmp_path):
    folder = write(tmp_path, None, dem=False)
    arr, _ = dem_array()
    write_dem(folder / "dem.tif", np.full_like(arr, -32768))
    r = validate(folder)
    assert r.exit_code == 2
    assert "dem: dem.tif holds only nodata (-32768.0)" in r.output


def test_missing_layer_and_missing_dem(tmp_path):
    f = layer_frames()
    del f["roads"]
    r = validate(write(tmp_path, f, dem=False))
    assert r.exit_code == 2
    assert "roads: layer not found" in r.output
    assert "dem: no DEM found" in r.output
    assert "2 problems in the layers" in r.output


def test_every_problem_is_reported_at_once(tmp_path):
    f = layer_frames()
    f["villages"].loc[0, "households"] = -1
    f["settlements"].loc[0, "village_code"] = "500154001999"
    f["roads"].loc[0, "geometry"] = LineString()
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert "3 problems in the layers" in r.output
    for text in ("villages.households: negative", "settlements.village_code: 1 row(s) (S1)",
                 "roads.geometry: empty or missing in 1 row(s) (R1)"):
        assert text in r.output
    # the per-layer table counts them
    rows = {ln.split()[0]: ln.split() for ln in r.output.splitlines() if ln.startswith("  ")
            and not ln.startswith("  -")}
    assert rows["villages"][-2] == "1" and rows["boundary"][-2] == "0"


def test_missing_layers_path_exits_2(tmp_path):
    r = validate(tmp_path / "nothing-here")
    assert r.exit_code == 2
    assert "does not exist" in r.output


def test_gcj02_layers_outside_the_dem_pass_with_coords_gcj02(tmp_path):
    """GCJ-02 points sit ~450 m east of their WGS84 place: outside a DEM that ends just east of
    them, inside once --coords gcj02 converts them back."""
    import shapely

    from kaizhou_gis.terrain.coords import wgs84_to_gcj02

    def fwd(xy):
        lo, la = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lo, la])

    f = layer_frames()
    for gdf in f.values():
        gdf[gdf.geometry.name] = shapely.transform(gdf.geometry.values, fwd)
    folder = write(tmp_path, f, dem=False)
    arr, transform = dem_array()
    # the DEM ends at 108.482E: settlement S6 (108.480E in WGS84, 108.4846E in GCJ-02) is
    # inside it only after the conversion
    write_dem(folder / "dem.tif", arr[:, : int(round((108.482 - 108.28) / DEM_RES_DEG))],
              transform=transform)
    r = validate(folder)
    assert r.exit_code == 2
    assert "settlements.geometry: 1 feature(s) outside the DEM (S6)" in r.output
    r2 = validate(folder, "--coords", "gcj02")
    assert r2.exit_code == 0, r2.output
    assert "villages: coordinates converted from GCJ-02 to WGS84." in r2.output


def test_geojson_with_projected_coordinates_and_no_crs(tmp_path):
    """GeoJSON without a "crs" member is read as WGS84; metre coordinates then need --crs."""
    import json

    folder = write(tmp_path, None)
    data = json.loads(layer_frames()["villages"].to_crs("EPSG:4545").to_json())
    data.pop("crs", None)
    (folder / "villages.geojson").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    r = validate(folder)
    assert r.exit_code == 2
    assert "villages: coordinates are not longitude/latitude (x 532407 .. 544760" in r.output
    assert "--crs EPSG:4545" in r.output
    assert "outside the DEM" not in r.output  # one clear message, not its consequences
    r2 = validate(folder, "--crs", "EPSG:4545")
    assert r2.exit_code == 0, r2.output
    lines = {ln.split()[0]: ln.split() for ln in r2.output.splitlines() if ln.startswith("  ")}
    assert lines["villages"][1] == "3"
    assert "108.3400, 31.1900 .. 108.4700, 31.2700" in r2.output


def test_one_point_with_longitude_out_of_range(tmp_path):
    f = layer_frames()
    f["villages"].loc[1, "geometry"] = Point(208.44, 31.22)  # a typo in the longitude
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert ("villages.geometry: longitude/latitude out of range in 1 row(s) (500154118201); "
            "correct their coordinates.") in r.output
    assert "not longitude/latitude (" not in r.output  # the layer's CRS is right


@pytest.mark.parametrize("layer", ["villages", "roads", "townships"])
def test_empty_layer(tmp_path, layer):
    f = layer_frames()
    f[layer] = f[layer].iloc[:0]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 2
    assert f"{layer}: the layer has no features ({layer}.gpkg)" in r.output


def test_empty_settlements_and_a_township_without_villages_are_valid(tmp_path):
    f = layer_frames()
    f["villages"] = f["villages"].iloc[:1]  # 大进镇 keeps no village
    f["settlements"] = f["settlements"].iloc[:0]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 0, r.output


def test_township_kind_derived_from_unusual_names_is_a_note(tmp_path):
    f = layer_frames()
    f["townships"] = f["townships"].drop(columns=["kind"])
    f["townships"]["name"] = ["汉丰街道", "白鹤工业园区"]
    r = validate(write(tmp_path, f))
    assert r.exit_code == 0, r.output
    assert "townships.kind: 1 name(s) end in none of 街道/镇/乡 (500154118)" in r.output
    f["townships"]["kind"] = ["街道", "园区"]  # a given kind column must hold the contract's values
    r2 = validate(write(tmp_path / "b", f))
    assert r2.exit_code == 2
    assert "townships.kind: not 街道/镇/乡 in 1 row(s) (500154118)" in r2.output


def test_shipped_layers_validate_clean():
    r = CliRunner().invoke(main, ["validate"])
    assert r.exit_code == 0, r.output
    rows = {ln.split()[0]: ln.split() for ln in r.output.splitlines() if ln.startswith("  ")
            and not ln.startswith("  -")}
    assert rows["villages"][1] == "535"  # 535 villages and communities of 开州区 (NBS 2023)
    assert rows["townships"][1] == "40"
    assert all(rows[n][-2] == "0" for n in ("boundary", "townships", "villages", "roads", "dem"))
