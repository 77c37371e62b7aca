"""One truth: a township is a view of the district; the manifest; order- and dtype-free results.

One district ``run`` of the shipped layers (the session's ``shipped_run``) is the reference. Then, for three
townships (one with unplaced households, one with cover sites in its neighbours, one urban 街道),
``relocation/access/maps/report --township`` must give exactly the district's rows and values
filtered to the township; the README's command sequence must leave a report that says which inputs
it used and uses none of another parameter's outputs; and the same layers with their rows shuffled
and their counts stored as floats must give byte-identical outputs.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from kaizhou_gis.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "layers"


@pytest.fixture(scope="module", autouse=True)
def _one_load_per_input():
    """The commands of this module read each set of inputs once: the CLI's loader
    (``kaizhou_gis.cli._load``: read + check the layers, read the plan) is called for the first
    command on given layers/plan/options, and later commands with the very same arguments get a
    deep copy of what it returned (so no command sees another's changes). Everything else each
    command does as from a shell (options, township, fingerprints, cache, manifest) is
    unchanged; the loader itself is tested in test_layers/test_bad_inputs."""
    import copy

    from kaizhou_gis import cli

    real, loaded = cli._load, {}

    def load(layers_path, plan_path, crs, encoding, coords, overrides=None):
        key = (str(layers_path), str(plan_path), crs, encoding, coords,
               tuple(sorted((overrides or {}).items())))
        if key not in loaded:
            loaded[key] = real(layers_path, plan_path, crs, encoding, coords, overrides)
        return copy.deepcopy(loaded[key])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "_load", load)
        yield


def _cli(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _gpkg(path: Path, layer: str) -> pd.DataFrame:
    g = gpd.read_file(path, layer=layer, engine="pyogrio")
    wkb = g.geometry.to_wkb(hex=True)
    return pd.DataFrame(g).assign(geometry=wkb.to_numpy())


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    if len(a) == 0 and len(b) == 0:  # an empty layer reads back without dtypes
        assert list(a.columns) == list(b.columns)
        return
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.fixture(scope="module")
def district(shipped_run) -> Path:
    """The session's one ``kaizhou-gis run`` of the shipped layers (read only: copied to change)."""
    return shipped_run.out


@pytest.fixture(scope="module")
def picks(district) -> dict[str, str]:
    """The three townships, chosen from the district's own results."""
    t = _csv(district / "relocation/townships.csv").sort_values("township_code")
    num = lambda c: pd.to_numeric(t[c])  # noqa: E731
    short = t[num("unplaced_households") > 0]
    assert len(short), "the shipped layers have no township with unplaced households"
    rest = t[~t["township_code"].isin(short["township_code"])]
    cover = rest.loc[pd.to_numeric(rest["cover_sites"]).idxmax()]
    assert int(cover["cover_sites"]) > 0
    urban = t[t["township_name"].str.endswith("街道")]
    urban = urban.loc[pd.to_numeric(urban["candidates"]).idxmax()]
    return {"shortfall": short["township_code"].iloc[0], "cover": cover["township_code"],
            "urban": urban["township_code"]}


@pytest.fixture(scope="module")
def townships(district, picks, tmp_path_factory) -> dict[str, Path]:
    """Each township's four commands into its own folder that holds the district's cache.

    A print sheet shows the day it was drawn (制图日期): the session draws every sheet on the
    day of ``SOURCE_DATE_EPOCH`` (tests/conftest.py), so the township sheets and the district's
    show the same date even when the session passes midnight between them."""
    import os

    assert os.environ.get("SOURCE_DATE_EPOCH")
    outs = {}
    for code in picks.values():
        out = tmp_path_factory.mktemp(f"tw{code}")
        shutil.copytree(district / ".cache", out / ".cache")
        for cmd in ("relocation", "access", "maps", "report"):
            _cli(cmd, "--township", code, "--out", str(out))
        outs[code] = out
    return outs


@pytest.mark.parametrize("which", ["shortfall", "cover", "urban"])
def test_township_relocation_is_the_district_filtered(district, picks, townships, which):
    code = picks[which]
    out = townships[code]
    for name in ("candidates", "villages", "townships", "assignment", "unassigned"):
        d = _csv(district / f"relocation/{name}.csv")
        t = _csv(out / f"relocation/{name}.csv")
        _same(t, d[d["township_code"] == code])
    d_set = _gpkg(district / "relocation/settlements.gpkg", "settlements")
    t_set = _gpkg(out / "relocation/settlements.gpkg", "settlements")
    _same(t_set, d_set[d_set["township_code"] == code])
    assert len(t_set) > 0

    d_asg = _csv(district / "relocation/assignment.csv")
    used = set(d_asg.loc[d_asg["township_code"] == code, "site_id"])
    d_sites = _gpkg(district / "relocation/sites.gpkg", "sites")
    t_sites = _gpkg(out / "relocation/sites.gpkg", "sites")
    keep = ((d_sites["township_code"] == code) | (d_sites["serves_township_code"] == code)
            | d_sites["site_id"].isin(used))
    _same(t_sites, d_sites[keep])
    d_ev = _gpkg(district / "relocation/sites.gpkg", "evaluated")
    _same(_gpkg(out / "relocation/sites.gpkg", "evaluated"), d_ev[d_ev["township_code"] == code])

    # the summary's figures are those of the district's rows of the township
    s = _json(out / "relocation/summary.json")
    cand = _csv(district / "relocation/candidates.csv")
    cand = cand[cand["township_code"] == code]
    assert s["township"] == code and s["candidates"] == len(cand)
    assert s["candidate_population"] == pd.to_numeric(cand["population"]).sum()
    for row in s["schedule"]["years"]:
        sel = cand[cand["schedule_year"] == str(row["year"])]
        assert row["people"] == pd.to_numeric(sel["population"]).sum()
        assert row["settlements"] == len(sel)
    un = _csv(district / "relocation/unassigned.csv")
    un = un[un["township_code"] == code]
    assert s["assignment"]["unassigned_households"] == pd.to_numeric(un["households"]).sum()
    if which == "shortfall":
        assert s["assignment"]["unassigned_households"] > 0
    if which == "cover":
        # sites in neighbouring townships chosen for this one are in its view
        assert ((t_sites["serves_township_code"] == code) & (t_sites["township_code"] != code)).any()
    # the district quota is not handed to the township: each year at most the district's people
    d_sum = _json(district / "relocation/summary.json")
    for row, drow in zip(s["schedule"]["years"], d_sum["schedule"]["years"]):
        assert row["quota_poor_people"] == drow["quota_poor_people"]
        assert row["poor_people"] <= drow["poor_people"]


@pytest.mark.parametrize("which", ["shortfall", "cover", "urban"])
def test_township_access_is_the_district_filtered(district, picks, townships, which):
    code = picks[which]
    out = townships[code]
    for name in ("villages", "settlements", "townships"):
        d = _csv(district / f"access/{name}.csv")
        _same(_csv(out / f"access/{name}.csv"), d[d["township_code"] == code])
    d_w = _gpkg(district / "access/works.gpkg", "works")
    t_w = _gpkg(out / "access/works.gpkg", "works")
    _same(t_w, d_w[d_w["township_code"].str.split(";").map(lambda c: code in c)])

    d_sc, t_sc = _json(district / "access/scorecard.json"), _json(out / "access/scorecard.json")
    for when in ("before", "after"):
        per = {p["township_code"]: p for p in d_sc[when]["per_township"]}[code]
        assert t_sc[when]["per_township"] == [per]
        assert t_sc[when]["village_tongchang_pct"] == per["village_tongchang_pct"]
        assert t_sc[when]["settlement_tongda_pct"] == per["settlement_tongda_pct"]
        assert t_sc[when]["settlement_tongchang_pct"] == per["settlement_tongchang_pct"]
    row = _csv(district / "access/townships.csv").set_index("township_code").loc[code]
    assert round(t_sc["works"]["township_share_km"], 3) == pytest.approx(float(row["works_km"]))
    assert t_sc["works"]["township_share_cost_yuan"] == pytest.approx(float(row["works_cost_yuan"]))
    assert t_sc["works"]["total_km"] == pytest.approx(pd.to_numeric(t_w["km"]).sum(), abs=1e-3)


@pytest.mark.parametrize("which", ["shortfall", "cover", "urban"])
def test_township_maps_and_report_equal_the_district(district, picks, townships, which):
    code = picks[which]
    out = townships[code]
    for ext in ("html", "png"):
        rel = f"maps/townships/{code}.{ext}"
        assert (out / rel).read_bytes() == (district / rel).read_bytes(), rel
    d_rep, t_rep = _json(district / "report.json"), _json(out / "report.json")
    d_row = {r["township_code"]: r for r in d_rep["townships"]}[code]
    assert t_rep["townships"] == [d_row]
    assert t_rep["scope"]["township_code"] == code
    # the report's township figures are the relocation/access views' figures
    rel_sum = _json(out / "relocation/summary.json")
    assert t_rep["relocation"]["candidates"] == rel_sum["candidates"]

    m = _json(out / "manifest.json")
    d_m = _json(district / "manifest.json")
    for step in ("relocation", "access", "maps", "report"):
        e = m["steps"][step]
        assert e["scope"]["township_code"] == code
        assert e["fingerprint"] == d_m["steps"][step]["fingerprint"]  # same inputs as the district
        assert e["command"].startswith(f"kaizhou-gis {step} --township {code}")
    # the costly district results were taken from the cache, not recomputed
    assert set(m["steps"]["relocation"]["reused"]) == {"relocation"}
    assert set(m["steps"]["maps"]["reused"]) == {"access", "relocation"}
    # the report's per-township works are the access step's (shared works split evenly)
    acc = _csv(district / "access/townships.csv").set_index("township_code").loc[code]
    # the report shows works km to 1 m as access/townships.csv does (at 0.01 km two sums of the
    # same works could round apart: 雪宝山镇 98.475 km)
    assert d_row["works_km"] == float(acc["works_km"])
    assert t_rep["access"]["works"]["km"] == d_row["works_km"]


def test_readme_sequence_report_states_inputs_and_mixes_nothing(district, picks, tmp_path):
    out = tmp_path / "outputs"
    # = `kaizhou-gis run` into this folder; the maps (191 MB of the run's 208 MB, which none of
    # the commands below writes) as hard links instead of copies
    shutil.copytree(district, out, ignore=shutil.ignore_patterns("maps"))
    shutil.copytree(district / "maps", out / "maps", copy_function=os.link)
    _cli("relocation", "--threshold-m", "1000", "--out", str(out))
    code = picks["cover"]
    _cli("access", "--township", code, "--out", str(out))
    _cli("report", "--out", str(out))

    m = _json(out / "manifest.json")
    st = m["steps"]
    assert st["relocation"]["inputs"]["plan"]["overrides"] == {"relocation.threshold_m": 1000.0}
    assert st["report"]["inputs"]["plan"]["overrides"] == {}
    assert st["relocation"]["fingerprint"] != st["report"]["fingerprint"]
    # access (one township) and maps (from `run`) have the report's inputs; relocation does not
    assert st["access"]["fingerprint"] == st["maps"]["fingerprint"] == st["report"]["fingerprint"]
    assert st["access"]["scope"]["township_code"] == code
    assert [h["command"].split(" --out")[0] for h in m["history"]] == [
        "kaizhou-gis run", "kaizhou-gis relocation --threshold-m 1000",
        f"kaizhou-gis access --township {code}", "kaizhou-gis report"]

    rep = _json(out / "report.json")
    inp = rep["inputs"]
    assert inp["parameters"]["relocation.threshold_m"] == 800
    assert inp["fingerprint"] == st["report"]["fingerprint"]
    assert [o["step"] for o in inp["other_inputs_in_folder"]] == ["relocation"]
    assert "1000" in inp["other_inputs_in_folder"][0]["why"]
    assert {o["step"] for o in inp["same_inputs_in_folder"]} >= {"access", "maps", "industry"}
    # the report's relocation figures are the 800 m ones (the district run's), not the folder's
    d800 = _json(district / "relocation/summary.json")
    d1000 = _json(out / "relocation/summary.json")
    assert d1000["candidates"] != d800["candidates"]
    assert rep["relocation"]["candidates"] == d800["candidates"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "relocation.threshold_m = 800" in md
    assert "NOT USED / 未采用: relocation/" in md and "--threshold-m 1000" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "本报告所用输入 / Inputs this report used" in html and st["report"]["fingerprint"] in html


def _shuffled_layers(folder: Path) -> Path:
    """The shipped layers with every layer's rows in another order and counts as floats."""
    folder.mkdir()
    src = SHIPPED / "kaizhou.gpkg"
    for i, (name, _) in enumerate(pyogrio.list_layers(src)):
        g = gpd.read_file(src, layer=name, engine="pyogrio")
        g = g.sample(frac=1.0, random_state=11 + i)
        for c in g.columns:
            if c != "geometry" and pd.api.types.is_integer_dtype(g[c]):
                g[c] = g[c].astype("float64")
        g.to_file(folder / "kaizhou.gpkg", layer=name, driver="GPKG", engine="pyogrio")
    for extra in SHIPPED.iterdir():  # dem.tif, the README with the attribution, sources
        if extra.name != "kaizhou.gpkg":
            (shutil.copytree if extra.is_dir() else shutil.copy)(extra, folder / extra.name)
    return folder


def _comparable_report(rep: dict) -> dict:
    """report.json without what names the layer folder and the output folder's history (the
    inputs section lists the commands run in the folder; its fingerprints are compared apart)."""
    rep = json.loads(json.dumps(rep))
    rep.get("provenance", {}).pop("layers_source", None)
    rep.get("provenance", {}).pop("dem", None)
    inputs = rep.pop("inputs")
    return rep | {"inputs": {k: inputs[k] for k in ("fingerprint", "layers", "parameters")}}


def _report_body(md: str) -> str:
    """report.md up to its inputs section, without the lines naming the layer folder."""
    body = md.split("## 八")[0]
    return "\n".join(x for x in body.splitlines() if "layers / 图层" not in x and "DEM:" not in x)


def test_shuffled_rows_and_float_counts_give_identical_outputs(district, tmp_path):
    lay = _shuffled_layers(tmp_path / "shuffled")
    g = gpd.read_file(lay / "kaizhou.gpkg", layer="settlements", engine="pyogrio")
    assert g["households"].dtype == "float64"
    assert list(g["settlement_id"]) != sorted(g["settlement_id"])
    out = tmp_path / "out"
    # the analysis steps and the report (the maps' own determinism: run vs maps --township above)
    for step in ("relocation", "access", "industry", "report"):
        _cli(step, "--layers", str(lay), "--out", str(out))
    compared = 0
    for p in sorted(district.rglob("*")):
        rel = p.relative_to(district).as_posix()
        if not p.is_file() or rel.split("/")[0] not in ("relocation", "access", "industry",
                                                          "report.json", "report.md"):
            continue
        q = out / rel
        assert q.is_file(), rel
        if rel == "report.json":
            assert _comparable_report(_json(q)) == _comparable_report(_json(p))
        elif rel == "report.md":
            assert _report_body(q.read_text(encoding="utf-8")) == \
                _report_body(p.read_text(encoding="utf-8"))
        elif p.suffix in (".csv", ".json", ".txt"):
            assert q.read_bytes() == p.read_bytes(), rel
        elif p.suffix == ".gpkg":
            for name, _ in pyogrio.list_layers(p):
                _same(_gpkg(q, name), _gpkg(p, name))
        elif p.suffix == ".xlsx":
            a, b = pd.read_excel(p, sheet_name=None), pd.read_excel(q, sheet_name=None)
            assert list(a) == list(b)
            for k in a:
                _same(b[k], a[k])
        else:
            continue
        compared += 1
    assert compared >= 20
    # the inputs fingerprint ignores row order and int-vs-float: the same as the district's
    assert _json(out / "manifest.json")["steps"]["relocation"]["fingerprint"] == \
        _json(district / "manifest.json")["steps"]["relocation"]["fingerprint"]
