"""A corpus of bad inputs: each gives exit 2 with a message naming the problem (and no output
tables), or a warning and a correct result where the input is usable.

Every case starts from the small valid layer set of ``layerset.py`` and breaks one thing.
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from shapely.geometry import Point

from kaizhou_gis.cli import main
from kaizhou_gis.plan import default_plan_path

sys.path.insert(0, str(Path(__file__).parent))
import layerset  # noqa: E402

sys.path.pop(0)

PLAN_TEXT = default_plan_path().read_text(encoding="utf-8")


@dataclass
class Case:
    """One bad input: how to break the layers/plan/options, and what must come out."""

    id: str
    frames: Callable[[dict], None] | None = None  # change the GeoDataFrames in place
    dem: Callable[[Path], None] | None = None  # rewrite dem.tif in the layer folder
    files: Callable[[Path, dict], list[str]] | None = None  # write extra files; return extra args
    plan: Callable[[str], str] | None = None  # change the plan file text
    args: list[str] = field(default_factory=list)
    command: str = "relocation"
    code: int = 2
    message: list[str] = field(default_factory=list)  # regexes that must all be in the output
    not_message: list[str] = field(default_factory=list)
    check: Callable[[Path, str], None] | None = None  # for usable inputs: the result is right


def _plan_value(key: str, value: str) -> Callable[[str], str]:
    """Set ``key = { value = <value>, ...}`` (last part of the dotted key) in the plan text."""
    leaf = key.rsplit(".", 1)[-1]

    def edit(text: str) -> str:
        pat = re.compile(rf"^{re.escape(leaf)} = \{{ value = (.*?), source = ", re.M)
        assert pat.search(text), key
        return pat.sub(lambda m: f"{leaf} = {{ value = {value}, source = ", text, count=1)
    return edit


def _set(layer: str, col: str, row: int, value) -> Callable[[dict], None]:
    def edit(frames):
        g = frames[layer]
        if isinstance(value, float) and g[col].dtype.kind in "iu":
            g[col] = g[col].astype(float)
        elif isinstance(value, str):
            g[col] = g[col].astype(object)
        g.loc[row, col] = value
    return edit


def _chain(*edits) -> Callable[[dict], None]:
    def edit(frames):
        for e in edits:
            e(frames)
    return edit


def _set_many(layer: str, col: str, values: list) -> Callable[[dict], None]:
    def edit(frames):
        frames[layer][col] = values
    return edit


def _check_two_villages_tongchang(out: Path, output: str):
    # 汉丰社区 (on R2) and 红旗村 (on R3) are reached by the three paved roads; 白泉村 only by R4
    v = pd.read_csv(out / "access/villages.csv", encoding="utf-8-sig", dtype={"village_code": str})
    got = v.set_index("village_code")["tongchang"].astype(str).str.lower().eq("true")
    assert got.to_dict() == {"500154001001": True, "500154118201": True, "500154118202": False}


def _geom(layer: str, row: int, geom) -> Callable[[dict], None]:
    def edit(frames):
        frames[layer].loc[row, "geometry"] = geom
    return edit


def _swap_all(layer: str) -> Callable[[dict], None]:
    def edit(frames):
        g = frames[layer]
        g["geometry"] = [Point(p.y, p.x) for p in g.geometry]
    return edit


def _dem_values(fn, *, nodata=None, dtype="int16") -> Callable[[Path], None]:
    def edit(folder: Path):
        arr, transform = layerset.dem_array()
        arr = fn(arr.astype("float64")).astype(dtype)
        profile = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=dtype, transform=transform, crs="EPSG:4326", nodata=nodata)
        with rasterio.open(folder / "dem.tif", "w", **profile) as ds:
            ds.write(arr, 1)
    return edit


def _voids_east(value):
    """Voids over the east quarter of the DEM (where S5 and S6 lie, lon > 108.455)."""
    def fn(a):
        a = a.copy()
        a[:, int(a.shape[1] * 0.73):] = value
        return a
    return fn


def _truncated_dem(folder: Path):
    arr, transform = layerset.dem_array()
    profile = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                   dtype="int16", transform=transform, crs="EPSG:4326", nodata=-32768,
                   tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    noisy = arr + np.random.default_rng(1).integers(0, 50, arr.shape).astype("int16")
    with rasterio.open(folder / "dem.tif", "w", **profile) as ds:
        ds.write(noisy, 1)
    data = (folder / "dem.tif").read_bytes()
    (folder / "dem.tif").write_bytes(data[: len(data) * 2 // 3])


def _shapefile(layer: str, encoding: str, *, drop: tuple[str, ...] = ()) -> Callable:
    """Move ``layer`` out of the GeoPackage into a Shapefile in ``encoding`` without a .cpg."""
    def write(folder: Path, frames: dict) -> list[str]:
        import warnings

        import pyogrio
        g = frames[layer].drop(columns=list(drop))
        with warnings.catch_warnings():  # Shapefile field names are cut to 10 bytes, as expected
            warnings.filterwarnings("ignore", message="Normalized/laundered field name")
            pyogrio.write_dataframe(g, folder / f"{layer}.shp", encoding=encoding)
        (folder / f"{layer}.cpg").unlink(missing_ok=True)
        return []
    return write


def _elevations(out: Path) -> pd.DataFrame:
    g = gpd.read_file(out / "relocation" / "settlements.gpkg")
    return g.set_index("settlement_id")


def _check_voids(out: Path, output: str):
    s = _elevations(out)
    # S5 (108.46E) and S6 (108.48E) lie on the voids: no elevation, never a candidate
    assert s.loc[["S5", "S6"], "elevation_m"].isna().all()
    assert (s.loc[["S5", "S6"], "status"] == "no_elevation").all()
    assert s["elevation_m"].min() > 0  # no -32768 / -9999 elevation anywhere
    # the other settlements keep their elevation from the DEM
    assert s.loc["S3", "elevation_m"] == pytest.approx(float(layerset.dem_elevation(108.43)), abs=3)


def _check_ratio_warning(out: Path, output: str):
    s = _elevations(out)
    assert s.loc["S2", "population"] == 3000 and s.loc["S2", "households"] == 200


def _check_rounded(out: Path, output: str):
    s = _elevations(out)
    assert s.loc["S3", "households"] == 70


CASES = [
    # ---- plan file and options: NaN, inf, negative
    Case("plan-threshold-nan", plan=_plan_value("threshold_m", "nan"),
         message=[r"relocation\.threshold_m: nan is not a usable number"]),
    Case("plan-threshold-inf", plan=_plan_value("threshold_m", "inf"),
         message=[r"relocation\.threshold_m: inf is not a usable number"]),
    Case("option-threshold-nan", args=["--threshold-m", "nan"],
         message=[r"--threshold-m nan: not a usable number"]),
    Case("option-threshold-inf", args=["--threshold-m", "inf"],
         message=[r"--threshold-m inf: not a usable number"]),
    Case("option-threshold-negative", args=["--threshold-m", "-5"],
         message=[r"--threshold-m -5: must not be below 0"]),
    Case("plan-negative-priority-weight",
         plan=_plan_value("priority_weights",
                          "{ elevation = 1.0, terrain = 0.4, remoteness = 0.2, poverty = -0.6 }"),
         message=[r"relocation\.priority_weights\.poverty: weight -0\.6 is negative"]),
    Case("plan-nan-priority-weight",
         plan=_plan_value("priority_weights",
                          "{ elevation = nan, terrain = 0.4, remoteness = 0.2, poverty = 0.4 }"),
         message=[r"relocation\.priority_weights\.elevation: nan is not a usable number"]),
    Case("plan-negative-site-weight",
         plan=_plan_value("weights", "{ slope = 0.65, road = -0.3, seat = 0.5, villages = 0.15 }"),
         message=[r"relocation\.sites\.weights\.road: weight -0\.3 is negative"]),
    Case("plan-reach-inf", plan=_plan_value("reach_distance_m", "inf"),
         message=[r"access\.reach_distance_m: inf is not a usable number"]),
    Case("plan-snap-nan", plan=_plan_value("snap_tolerance_m", "nan"),
         message=[r"access\.snap_tolerance_m: nan is not a usable number"]),
    Case("plan-unit-cost-nan",
         plan=_plan_value("cost_new_yuan_per_km",
                          "{ flat = nan, hilly = 1200000.0, mountain = 1800000.0 }"),
         message=[r"links\.cost_new_yuan_per_km\.flat: nan is not a usable number"]),
    Case("plan-dem-range-nan", plan=_plan_value("dem_plausible_m", "[nan, 3500.0]"),
         message=[r"checks\.dem_plausible_m\[0\]: nan is not a usable number"]),
    Case("plan-negative-distance", plan=_plan_value("max_distance_km", "-3.0"),
         message=[r"relocation\.sites\.max_distance_km\.value: -3\.0 must not be negative"]),
    Case("plan-not-toml", plan=lambda t: t + "\nthis is = = not toml\n",
         message=[r"is not valid TOML"]),
    Case("plan-unknown-key", plan=lambda t: t.replace("[checks]\n", "[checks]\nfoo = { value = 1, source = \"x\" }\n"),
         message=[r"checks\.foo: unknown key"]),
    # ---- DEM
    Case("dem-int16-voids-no-nodata-tag", dem=_dem_values(_voids_east(-32768), nodata=None),
         code=0, message=[r"declares no nodata value.*hold -32768, a typical void value.*treated as nodata"],
         check=_check_voids),
    Case("dem-float-voids-9999-no-tag", dem=_dem_values(_voids_east(-9999), nodata=None, dtype="float32"),
         code=0, message=[r"hold -9999, a typical void value"], check=_check_voids),
    Case("dem-voids-32767-no-tag", dem=_dem_values(_voids_east(32767), nodata=None),
         code=0, message=[r"hold 32767, a typical void value"], check=_check_voids),
    Case("dem-in-feet", dem=_dem_values(lambda a: a * 3.28084 + 2000),
         message=[r"outside the district's plausible range 0 \.\. 3,500 m", r"Is the DEM in feet\?",
                  r"gdal_calc\.py"]),
    Case("dem-in-centimetres", dem=_dem_values(lambda a: a * 100, dtype="int32"),
         message=[r"which no elevation in metres on Earth reaches", r"in centimetres it would be"]),
    Case("dem-other-void-than-tagged", dem=_dem_values(_voids_east(-9999), nodata=-32768),
         message=[r"dem: dem\.tif holds values from -9,999",
                  r"-9999 is a typical void value: the DEM.s voids are not its nodata tag"]),
    Case("dem-truncated", dem=_truncated_dem,
         message=[r"dem: dem\.tif is truncated or corrupt", r"copy or download the file again"],
         not_message=[r"^Read failed"]),
    Case("dem-not-a-raster", dem=lambda f: (f / "dem.tif").write_bytes(b"GIF89a" + b"\0" * 100),
         message=[r"dem: cannot read dem\.tif"]),
    Case("dem-all-nodata", dem=_dem_values(lambda a: a * 0 - 32768, nodata=-32768),
         message=[r"holds only nodata"]),
    # ---- counts
    Case("settlement-households-1e12", frames=_set("settlements", "households", 2, 1e12),
         message=[r"settlements\.households: 1 settlement\(s\) with more than 1,000 households \(S3; "
                  r"largest 1,000,000,000,000\)"]),
    Case("village-population-huge", frames=_set("villages", "population", 1, 9e9),
         message=[r"villages\.population: 1 village\(s\) with more than 50,000 population \(500154118201"]),
    Case("settlement-households-inf", frames=_set("settlements", "households", 0, math.inf),
         message=[r"settlements\.households: infinite value \(inf\) in 1 row\(s\) \(S1\)"],
         not_message=[r"IntCastingNaNError"]),
    Case("settlement-households-inf-text", frames=_set("settlements", "households", 1, "inf"),
         message=[r"settlements\.households: infinite value \(inf\) in 1 row\(s\) \(S2\)"]),
    Case("settlement-households-missing", frames=_set("settlements", "households", 1, math.nan),
         message=[r"settlements\.households: missing value in 1 row\(s\) \(S2\)"]),
    Case("settlement-households-negative", frames=_set("settlements", "households", 3, -5),
         message=[r"settlements\.households: negative in 1 row\(s\) \(S4\)"]),
    Case("settlement-households-text", frames=_set("settlements", "households", 4, "about 40"),
         message=[r"settlements\.households: not a number in 1 row\(s\) \(S5: about 40\)"]),
    Case("ratio-30-people-per-household", frames=_set("settlements", "population", 1, 3000),
         code=0, message=[r"warning: settlements: 1 settlement\(s\) with an implausible number of "
                          r"people per household.*S2: 3,000 people / 200 households"],
         check=_check_ratio_warning),
    Case("more-households-than-people", frames=_set("villages", "households", 2, 900),
         code=0, message=[r"warning: villages: 1 village\(s\) .*500154118202: 250 people / 900 households"]),
    Case("fractional-households", frames=_set("settlements", "households", 2, 69.6),
         code=0, message=[r"settlements\.households: 1 non-integer count\(s\) rounded \(S3\)"],
         check=_check_rounded),
    # ---- coordinates
    Case("nan-coordinate", frames=_geom("settlements", 3, Point(108.5, math.nan)),
         message=[r"settlements\.geometry: coordinates that are not numbers \(NaN or infinite\) in "
                  r"1 row\(s\) \(S4\)"], not_message=[r"GEOS", r"IllegalArgument"]),
    Case("inf-coordinate", frames=_geom("villages", 0, Point(math.inf, 31.2)),
         message=[r"villages\.geometry: coordinates that are not numbers .* \(500154001001\)"]),
    Case("lonlat-swapped-layer", frames=_swap_all("villages"),
         message=[r"villages\.geometry: longitude and latitude are swapped: x runs 31\.19 \.\. 31\.27, "
                  r"which looks like latitude"], not_message=[r"GeoJSON without"]),
    Case("lonlat-swapped-one-row", frames=_geom("settlements", 2, Point(31.21, 108.43)),
         message=[r"settlements\.geometry: longitude and latitude are swapped in 1 row\(s\) \(S3\)"]),
    Case("outside-boundary", frames=_geom("settlements", 0, Point(108.9, 31.2)),
         message=[r"settlements\.geometry: 1 feature\(s\) outside the district boundary.*S1"]),
    # ---- road surfaces (the mapping itself is layers/roads.py's; here: Chinese words count as paved,
    # an unknown word is named and counted, never silently unpaved)
    Case("surface-chinese-words", command="access",
         frames=_chain(_set_many("roads", "surface", ["水泥路", "沥青路面", "水泥硬化", "unpaved", "unpaved"]),
                       # village roads: unpaved by default, so only the surface words make them paved
                       _set_many("roads", "road_class", ["village"] * 5)),
         code=0, not_message=[r"roads\.surface: \d+ road\(s\) with a surface value in neither"],
         check=_check_two_villages_tongchang),
    Case("surface-unknown-word", command="access",
         frames=_set_many("roads", "surface", ["paved", "五彩路", "paved", "unpaved", "unpaved"]),
         code=0, message=[r"roads\.surface: 1 road\(s\) with a surface value in neither "
                          r"access\.paved_surfaces nor access\.unpaved_surfaces \('五彩路' 1\) got "
                          r"the default of their class"]),
    # ---- text encoding
    Case("gbk-read-as-latin1-with-kind", files=_shapefile("villages", "GBK"),
         args=["--encoding", "latin1"],
         message=[r"villages\.name: 3 of 3 names have no Chinese character and look like mis-decoded",
                  r"is '汉丰社区' when its bytes are read as GBK", r"--encoding latin1\) is likely wrong"],
         not_message=[r"villages\.kind"]),
    Case("gbk-read-as-latin1-no-kind", files=_shapefile("villages", "GBK", drop=("kind",)),
         args=["--encoding", "latin1"],
         message=[r"villages\.name: 3 of 3 names .*mis-decoded", r"--encoding latin1\) is likely wrong"]),
    Case("replacement-characters", frames=_set("settlements", "name", 2, "石\ufffd\ufffd沟"),
         message=[r"settlements\.name: 1 value\(s\) hold U\+FFFD replacement characters \(S3: '石��沟'\)"]),
    # ---- references and codes
    Case("duplicate-village-codes", frames=_set("villages", "village_code", 2, "500154118201"),
         message=[r"villages\.village_code: duplicate codes .*500154118201"]),
    Case("settlement-unknown-village", frames=_set("settlements", "village_code", 0, "500154999999"),
         message=[r"settlements\.village_code: 1 row\(s\) \(S1\) point to unknown villages"]),
    Case("short-village-code", frames=_set("villages", "village_code", 0, "50015400"),
         message=[r"villages\.village_code: not a 12-digit code in 1 row\(s\)"]),
    # ---- options
    Case("unknown-township", args=["--township", "火星镇"],
         message=[r"--township 火星镇: no township with that name or code"]),
    Case("bad-crs-option", args=["--crs", "EPSG:99999999"], message=[r"--crs EPSG:99999999: not a CRS"]),
    Case("unknown-encoding", args=["--encoding", "klingon"],
         message=[r"--encoding klingon: not a known text encoding"]),
    Case("out-is-a-file", files=lambda f, fr: ["--out", str(_touch(f / "out.txt"))],
         message=[r"--out .*out\.txt: is a file, not a folder"]),
    Case("out-under-a-file", files=lambda f, fr: ["--out", str(_touch(f / "x.txt") / "sub")],
         message=[r"x\.txt is a file, so no folder can be made under it"]),
]


def _touch(p: Path) -> Path:
    p.write_text("x", encoding="utf-8")
    return p


def test_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path):
    frames = layerset.layer_frames()
    if case.frames:
        case.frames(frames)
    folder = tmp_path / "layers"
    folder.mkdir()
    extra: list[str] = []
    if case.files:
        extra = case.files(folder, frames) or []
        for p in folder.glob("*.shp"):
            frames.pop(p.stem, None)
    layerset.write_layerset(folder, frames)
    if case.dem:
        case.dem(folder)
    args = [case.command, "--layers", str(folder)] + case.args + extra
    if case.plan:
        plan = tmp_path / "plan.toml"
        plan.write_text(case.plan(PLAN_TEXT), encoding="utf-8")
        args += ["--plan", str(plan)]
    out = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    res = CliRunner().invoke(main, args)
    output = res.output
    assert res.exit_code == case.code, output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in output
    for pat in case.message:
        assert re.search(pat, output, re.S), f"{pat!r} not in:\n{output}"
    for pat in case.not_message:
        assert not re.search(pat, output, re.M), f"{pat!r} in:\n{output}"
    tables = [p for p in out.rglob("*") if p.suffix in (".csv", ".xlsx", ".gpkg", ".json")] \
        if out.exists() else []
    if case.code == 2:
        assert tables == [], "a refused input must not leave result tables"
    else:
        assert tables, output
        if case.check:
            case.check(out, output)


def test_summaries_say_what_was_left_out(tmp_path, monkeypatch):
    """Settlements without elevation and points beyond reach: counted in the console summary and
    in the report (the same figures), with the file that lists them."""
    from kaizhou_gis import pipeline
    monkeypatch.setattr(pipeline, "STEPS", [s for s in pipeline.STEPS if s.name != "maps"])  # speed
    folder = layerset.write_layerset(tmp_path / "layers")  # S1, S4, S5, S6: 611-1462 m from roads
    _dem_values(_voids_east(-32768), nodata=None)(folder)  # S5, S6 on untagged voids
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--layers", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    st = pd.read_csv(out / "access/settlements.csv", encoding="utf-8-sig", dtype=str)
    far = st.loc[st["reason"].str.startswith("no road within", na=False), "settlement_id"].tolist()
    assert far == ["S1", "S4", "S5", "S6"]
    rel = _elevations(out)
    assert sorted(rel.index[rel["status"] == "no_elevation"]) == ["S5", "S6"]
    line_rel = ("2 settlement(s) without elevation (outside the DEM or on its nodata), never "
                "candidates: status no_elevation in relocation/settlements.gpkg")
    line_acc = ("0 village(s) and 4 settlement(s) beyond reach (no road within 500 m): reason in "
                "access/villages.csv and access/settlements.csv")
    assert f"left out: {line_rel}" in res.output and f"left out: {line_acc}" in res.output
    md = (out / "report.md").read_text(encoding="utf-8")
    assert f"left out / 未纳入分析: {line_rel}" in md and f"left out / 未纳入分析: {line_acc}" in md
    import json
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["relocation"]["left_out"]["no_elevation"] == 2
    assert rep["access"]["left_out"]["settlements_beyond_reach"] == 4
