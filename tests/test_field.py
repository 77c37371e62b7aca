"""Field files (kaizhou_gis.field): per-township KMZ and GPX, read back through GDAL's LIBKML,
KML and GPX drivers and compared point by point with the relocation results (WGS84 and GCJ-02)."""
from __future__ import annotations

import io
import zipfile
from xml.etree import ElementTree as ET

import numpy as np
import pyogrio
import pytest
import shapely
from test_relocation import fake_access, layers  # noqa: F401,E402  (fixture; tests/ is on sys.path)

from kaizhou_gis import field, outputs
from kaizhou_gis.pipeline import Context
from kaizhou_gis.plan import load_plan
from kaizhou_gis.terrain.coords import wgs84_to_gcj02

T1 = "500154101"


@pytest.fixture
def run(layers, tmp_path):  # noqa: F811
    ctx = Context(layers=layers, plan=load_plan(), options={})
    ctx.results["access"] = fake_access(layers)
    res = ctx.result("relocation")
    return ctx, res


def _expected(res, code, coords):
    s = res.data.settlements
    cand = s[(s["township_code"] == code) & s["relocation_candidate"]]
    sites = res.data.sites
    asg = res.data.assignment
    used = set(asg.loc[asg["settlement_id"].isin(set(cand["settlement_id"])), "site_id"])
    sites = sites[(sites["township_code"] == code) | sites["site_id"].isin(used)]
    pts = {}
    for ids, gdf in ((cand["settlement_id"], cand), (sites["site_id"], sites)):
        xy = shapely.get_coordinates(gdf.geometry.to_crs(4326).values)
        lon, lat = xy[:, 0], xy[:, 1]
        if coords == "gcj02":
            lon, lat = wgs84_to_gcj02(lon, lat)
        for i, lo, la in zip(ids, np.atleast_1d(lon), np.atleast_1d(lat)):
            pts[str(i)] = (float(lo), float(la))
    return cand, sites, pts


def _read_all(path, driver=None):
    rows = []
    for name, _ in pyogrio.list_layers(path):
        df = pyogrio.read_dataframe(path, layer=name, **({"driver": driver} if driver else {}))
        df["_layer"] = name
        rows.append(df)
    return rows


@pytest.mark.parametrize("coords", ["wgs84", "gcj02"])
def test_kmz_and_gpx_round_trip_through_gdal(run, tmp_path, coords):
    ctx, res = run
    files = field.field_files(ctx, res.data, coords=coords)
    assert f"field/{T1}_{coords}.kmz" in files and f"field/{T1}_{coords}.gpx" in files
    outputs.write_products(tmp_path, files)
    checked = 0
    for code in ("500154101", "500154102"):
        kmz = tmp_path / "field" / f"{code}_{coords}.kmz"
        gpx = tmp_path / "field" / f"{code}_{coords}.gpx"
        cand, sites, expected = _expected(res, code, coords)
        if not kmz.exists():
            assert len(cand) == 0 and len(sites) == 0
            continue
        n = len(cand) + len(sites)
        assert n > 0
        checked += n
        with zipfile.ZipFile(kmz) as z:
            assert z.namelist()[0] == "doc.kml" and "files/dot.png" in z.namelist()
            doc = z.read("doc.kml").decode("utf-8")
        assert coords.upper() in doc  # the coordinate system is stated
        # LIBKML (the .kmz itself) and the plain KML driver (the doc.kml inside) agree with the data
        for path, driver in ((str(kmz), "LIBKML"), (f"/vsizip/{kmz}/doc.kml", "KML")):
            got = {}
            frames = _read_all(path, driver)
            layer_names = [f["_layer"].iloc[0] for f in frames if len(f)]
            assert "安置点 Resettlement sites" in layer_names or len(sites) == 0
            for df in frames:
                for g, desc in zip(df.geometry, df["description"]):
                    ident = next(line.split(": ", 1)[1] for line in desc.splitlines()
                                 if line.startswith("编号 id: "))
                    got[ident] = (g.x, g.y)
            assert len(got) == n == sum(len(f) for f in frames), driver
            for ident, (lo, la) in expected.items():
                assert got[ident] == pytest.approx((lo, la), abs=1.5e-6), (driver, ident)
        # one folder per village with candidates
        villages = set(cand["village_code"])
        assert sum(1 for f in frames if f["_layer"].iloc[0] != "安置点 Resettlement sites") == len(villages)
        wp = pyogrio.read_dataframe(gpx, layer="waypoints")
        assert len(wp) == n
        got = {}
        for g, desc in zip(wp.geometry, wp["desc"]):
            ident = next(line.split(": ", 1)[1] for line in desc.splitlines() if line.startswith("编号 id: "))
            got[ident] = (g.x, g.y)
        for ident, (lo, la) in expected.items():
            assert got[ident] == pytest.approx((lo, la), abs=1.5e-6), ident
        assert set(wp["type"].str.split(",").str[0]) <= {"安置点 site", "拟整体搬迁 candidate"}
    assert checked >= 4  # candidates and sites of both townships were compared


def test_kml_content_priority_schedule_and_site(run):
    ctx, res = run
    files = field.field_files(ctx, res.data)
    ns = {"k": field.KML_NS}
    s = res.data.settlements
    last = max(int(y) for y in ctx.plan["relocation.yearly_people"])
    seen = set()
    n_sites = 0
    for rel, data in files.items():
        if not rel.endswith(".kmz"):
            continue
        code = rel.split("/")[1].split("_")[0]
        root = ET.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("doc.kml"))
        cand = s[(s["township_code"] == code) & s["relocation_candidate"]]
        marks = {pm.find("k:ExtendedData/k:Data[@name='settlement_id']/k:value", ns).text: pm
                 for pm in root.iter(f"{{{field.KML_NS}}}Placemark")
                 if pm.find("k:styleUrl", ns).text != "#site"}
        assert set(marks) == set(cand["settlement_id"])
        for r in cand.itertuples():
            pm = marks[r.settlement_id]
            val = {d.get("name"): (d.find("k:value", ns).text or "") for d in pm.iter(f"{{{field.KML_NS}}}Data")}
            assert val["households"] == str(int(r.households))
            assert float(val["priority"]) == pytest.approx(float(r.priority))
            assert pm.find("k:styleUrl", ns).text == f"#priority_{field.priority_class(r.priority)[0]}"
            if str(r.schedule_year) != "<NA>":
                assert val["schedule"] == str(int(r.schedule_year))
            else:
                assert val["schedule"].startswith(f"{last}年后") and "beyond the quotas" in val["schedule"]
            if r.site_ids:
                for sid in str(r.site_ids).split(";"):
                    assert sid in val["assigned_site"]
            else:
                assert val["assigned_site"] == "未分配 not assigned"
            seen.add(r.settlement_id)
        for pm in root.iter(f"{{{field.KML_NS}}}Placemark"):  # sites carry their capacity
            if pm.find("k:styleUrl", ns).text == "#site":
                cap = pm.find("k:ExtendedData/k:Data[@name='capacity_households']/k:value", ns).text
                assert int(cap) > 0 and f"容量 {cap} 户" in pm.find("k:name", ns).text
                n_sites += 1
    assert seen == set(s.loc[s["relocation_candidate"], "settlement_id"]) and len(seen) >= 2
    assert n_sites >= 1


def test_priority_classes_and_schedule_text():
    assert field.priority_class(80)[0] == "high" and field.priority_class(67)[0] == "high"
    assert field.priority_class(50)[0] == "medium" and field.priority_class(10)[0] == "low"
    assert field.priority_class(None)[0] == "none"
    assert field.schedule_text(2017, 2018) == "2017"
    assert field.schedule_text(None, 2018) == "2018年后（超出年度指标） after 2018 / beyond the quotas"


def test_bad_field_coords_is_an_option_error(run):
    from kaizhou_gis.errors import OptionError
    ctx, res = run
    with pytest.raises(OptionError, match="--field-coords"):
        field.field_files(ctx, res.data, coords="bd09")


def test_cli_field_coords_gcj02(tmp_path):
    """`kaizhou-gis relocation --field-coords gcj02` writes the GCJ-02 variants; a bad value
    exits 2 with click's message."""
    import layerset
    from click.testing import CliRunner

    from kaizhou_gis.cli import main

    lay = layerset.write_layerset(tmp_path / "layers")
    r = CliRunner().invoke(main, ["relocation", "--layers", str(lay), "--out", str(tmp_path / "out"),
                                  "--field-coords", "gcj02"])
    assert r.exit_code == 0, r.output
    kmz = sorted(p.name for p in (tmp_path / "out" / "field").glob("*.kmz"))
    assert kmz and all(n.endswith("_gcj02.kmz") for n in kmz)
    r = CliRunner().invoke(main, ["relocation", "--layers", str(lay), "--out", str(tmp_path / "o2"),
                                  "--field-coords", "bd09"])
    assert r.exit_code == 2 and "bd09" in r.output


def test_all_townships_at_once_equal_one_by_one(run):
    """field_files cuts the tables by township once for all townships; each township's files
    are byte for byte those of a run for that township alone (which reads the whole tables)."""
    ctx, res = run
    files = field.field_files(ctx, res.data)
    codes = sorted({p.split("/")[1].split("_")[0] for p in files})
    assert len(codes) >= 2
    for code in codes:
        one = field.field_files(ctx, res.data, codes=[code])
        assert one == {p: b for p, b in files.items() if p.startswith(f"field/{code}_")}
