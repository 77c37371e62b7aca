"""The district-results cache keys one step by what that step reads (pipeline.Context.cache_key).

On a small synthetic district: changing the relocation threshold reuses access's cached result and
gives the same files as a cold run; a step's options (``--field-coords``) are in its key; every
step reads only the plan sections it declares in ``pipeline.STEPS`` (a step reading another is not
cached); a township run fingerprints its inputs once.
"""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

from kaizhou_gis import manifest, pipeline
from kaizhou_gis.demo.synthetic import write_synthetic_districts
from kaizhou_gis.layers import load_layers
from kaizhou_gis.pipeline import Context, run_steps
from kaizhou_gis.plan import load_plan
from kaizhou_gis.results import StepResult

THRESHOLD = "relocation.threshold_m"


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cachekeys")
    write_synthetic_districts(d, 1, seed=11, townships=2, villages=8, area_km2=150.0)
    return d / "900001", d / "900001" / "plan.toml"


def _ctx(district, cache: Path | None, overrides: dict | None = None, **options) -> Context:
    layers_dir, plan_path = district
    plan = load_plan(plan_path, overrides=overrides)
    return Context(layers=load_layers(layers_dir, plan=plan), plan=plan,
                   options={"township": None, **options}, overrides=dict(overrides or {}),
                   cache_dir=cache)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != manifest.MANIFEST_NAME and ".cache" not in p.parts
            and not p.name.startswith(".kaizhou-gis")}


@pytest.fixture(scope="module")
def warm(district, tmp_path_factory):
    """Every step at the plan's threshold, with a cache (the township print sheets left out)."""
    base = tmp_path_factory.mktemp("warm")
    ctx = _ctx(district, base / "cache", prints=False)
    out = run_steps(ctx, [s.name for s in pipeline.STEPS], base / "out")
    assert [o.status for o in out] == ["ok"] * len(pipeline.STEPS), [o.message for o in out]
    return ctx, base


def test_a_new_threshold_reuses_access_and_gives_the_cold_runs_files(district, warm, tmp_path):
    ctx800, base = warm
    s800 = ctx800.results["relocation"].data.settlements
    lowest = float(s800.loc[s800["above_threshold"].astype(bool), "elevation_m"].min())
    threshold = lowest + 1.0  # the lowest settlement above the plan's threshold drops out
    assert threshold > float(ctx800.plan[THRESHOLD])
    hot = _ctx(district, base / "cache", {THRESHOLD: threshold})
    assert [o.status for o in run_steps(hot, ["relocation"], tmp_path / "hot")] == ["ok"]
    assert hot.reused.keys() == {"access"}  # access does not read the threshold
    assert hot.cache_key("access") == ctx800.cache_key("access")
    assert hot.cache_key("relocation") != ctx800.cache_key("relocation")

    cold = _ctx(district, None, {THRESHOLD: threshold})
    assert [o.status for o in run_steps(cold, ["relocation"], tmp_path / "cold")] == ["ok"]
    assert cold.reused == {}
    hot_files, cold_files = _files(tmp_path / "hot"), _files(tmp_path / "cold")
    assert len(hot_files) > 10 and hot_files == cold_files

    # the threshold did change the relocation figures (fewer settlements above it)
    above = "above_threshold"
    n800 = int(s800[above].astype(bool).sum())
    assert int(cold.results["relocation"].data.settlements[above].astype(bool).sum()) < n800
    assert hot_files["relocation/candidates.csv"] != \
        (base / "out" / "relocation" / "candidates.csv").read_bytes()

    again = _ctx(district, base / "cache", {THRESHOLD: threshold})
    again.result("relocation")
    assert again.reused.keys() == {"relocation"} and "access" not in again.results


def test_a_steps_options_are_in_its_key(district, warm):
    ctx800, base = warm
    gcj = _ctx(district, base / "cache", field_coords="gcj02")
    assert gcj.cache_key("access") == ctx800.cache_key("access")
    assert gcj.cache_key("relocation") != ctx800.cache_key("relocation")
    res = gcj.result("relocation")  # not the wgs84 field files of the cached result
    assert gcj.reused.keys() == {"access"}
    field = sorted(f for f in res.files if f.startswith("field/"))
    assert field and all(f.endswith(("_gcj02.kmz", "_gcj02.gpx")) for f in field)
    # not given is the command line's default: the same result as `--field-coords wgs84`
    wgs = _ctx(district, base / "cache", field_coords="wgs84")
    assert wgs.cache_key("relocation") == ctx800.cache_key("relocation")
    assert pipeline.OPTION_DEFAULTS["field_coords"] == "wgs84"
    assert all(f.endswith(("_wgs84.kmz", "_wgs84.gpx")) for f in ctx800.results["relocation"].files
               if f.startswith("field/"))


def test_every_step_reads_only_the_plan_sections_it_declares(warm):
    ctx, _ = warm
    for step in pipeline.STEPS:
        read = ctx.plan_reads[step.name]
        assert read, step.name
        if step.plan == (pipeline.EVERY_SECTION,):
            continue
        assert read <= set(step.plan), (step.name, sorted(read - set(step.plan)))
    assert pipeline.get_step("report").plan == ("*",)  # its settings table lists every setting
    assert "*" in ctx.plan_reads["report"]
    assert {"relocation", "access"} <= ctx.plan_reads["relocation"]  # sites read access settings
    assert "meta" in ctx.plan_reads["access"]  # the district's name in the scorecard


FAKE = "kz_fake_cache_steps"


def _sneaky(ctx, needs):
    return StepResult("sneaky", summary={"target": ctx.plan["report.title"] if "report.title" in
                                         ctx.plan else ctx.plan.section("report")})


def _honest(ctx, needs):
    return StepResult("honest", summary={"threshold": ctx.plan[THRESHOLD]})


def test_a_step_reading_an_undeclared_section_is_not_cached(tmp_path, monkeypatch, caplog):
    mod = types.ModuleType(FAKE)
    mod.sneaky, mod.honest = _sneaky, _honest
    monkeypatch.setitem(sys.modules, FAKE, mod)
    monkeypatch.setattr(pipeline, "STEPS", [
        pipeline.Step("sneaky", f"{FAKE}:sneaky", "S", plan=("relocation",), cached=True),
        pipeline.Step("honest", f"{FAKE}:honest", "H", plan=("relocation",), cached=True)])
    plan = load_plan()
    first = Context(layers=None, plan=plan, cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.pipeline"):
        first.result("sneaky")
        first.result("honest")
    assert first.plan_reads == {"sneaky": {"report"}, "honest": {"relocation"}}
    assert "step sneaky read plan section(s) report that it does not declare" in caplog.text
    assert "honest" not in caplog.text
    second = Context(layers=None, plan=plan, cache_dir=tmp_path / "cache")
    second.result("sneaky")
    second.result("honest")
    assert second.reused.keys() == {"honest"}
    assert first.plan is plan and second.plan is plan  # the noting copy was only for the step


def _sees_the_district(ctx, needs):
    return StepResult("looks", summary={"district_plan": ctx.district.plan,
                                        "threshold": ctx.plan[THRESHOLD]})


def test_a_district_context_made_during_a_step_gets_the_plan_itself(monkeypatch):
    mod = types.ModuleType(FAKE)
    mod.looks = _sees_the_district
    monkeypatch.setitem(sys.modules, FAKE, mod)
    monkeypatch.setattr(pipeline, "STEPS", [pipeline.Step("looks", f"{FAKE}:looks", "L",
                                                          plan=("relocation",))])
    plan = load_plan()
    ctx = Context(layers=None, plan=plan, options={"township": "500154101"})
    res = ctx.result("looks")
    assert res.summary["district_plan"] is plan and ctx.district.plan is plan and ctx.plan is plan
    assert ctx.plan_reads == {"looks": {"relocation"}}


def test_a_township_run_fingerprints_its_inputs_once(monkeypatch):
    calls = []
    real = manifest.inputs_record
    monkeypatch.setattr(manifest, "inputs_record", lambda *a, **k: calls.append(1) or real(*a, **k))
    ctx = Context(layers=None, plan=load_plan(), options={"township": "500154101"})
    district = ctx.district
    assert ctx.inputs is district.inputs
    assert ctx.cache_key("relocation") == district.cache_key("relocation")
    assert len(calls) == 1


def test_writers_at_once_keep_every_entry_of_the_cache_index(tmp_path):
    """Threads (the workbench's runs) storing results into one cache folder at the same time:
    each writer changes the index under a lock, so no entry is lost and each loads back."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    def key(i: int, j: int) -> str:
        return hashlib.sha256(f"{i} {j}".encode()).hexdigest()

    def store(i: int) -> None:
        for j in range(manifest.CACHE_KEEP):
            manifest.store_cached(tmp_path, f"step{i}", key(i, j), {"i": i, "j": j})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store, range(16)))
    for i in range(16):
        for j in range(manifest.CACHE_KEEP):
            assert manifest.load_cached(tmp_path, f"step{i}", key(i, j)) == {"i": i, "j": j}
    assert len(list(tmp_path.glob("step*.pickle"))) == 16 * manifest.CACHE_KEEP
