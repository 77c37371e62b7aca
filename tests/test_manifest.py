"""kaizhou_gis.manifest: fingerprints of layers and plan, the manifest of an output folder."""
from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest

from kaizhou_gis import manifest, outputs
from kaizhou_gis.layers import load_layers
from kaizhou_gis.plan import load_plan
from tests.layerset import layer_frames, write_layerset


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def test_frame_fingerprint_ignores_row_order_column_order_and_int_as_float():
    s = layer_frames()["settlements"]
    fp = manifest.frame_fingerprint(s)
    shuffled = s.sample(frac=1.0, random_state=3)[list(reversed(s.columns))]
    shuffled = gpd.GeoDataFrame(shuffled, geometry="geometry", crs=s.crs)
    as_float = s.assign(households=s["households"].astype("float64"))
    assert manifest.frame_fingerprint(shuffled) == fp
    assert manifest.frame_fingerprint(as_float) == fp
    changed = s.copy()
    changed.loc[changed.index[0], "households"] += 1
    assert manifest.frame_fingerprint(changed) != fp
    moved = s.copy()
    moved.geometry = moved.geometry.translate(xoff=1e-5)
    assert manifest.frame_fingerprint(moved) != fp
    # a fractional value stays fractional (12.5 is not 12)
    half = s.assign(households=s["households"].astype("float64") + 0.5)
    assert manifest.frame_fingerprint(half) != manifest.frame_fingerprint(as_float)


def test_layer_and_plan_fingerprints(tmp_path, plan):
    folder = write_layerset(tmp_path / "a")
    lay = load_layers(folder, plan=plan)
    fps = manifest.layer_fingerprints(lay)
    assert set(fps) >= {"boundary", "townships", "township_seats", "villages", "settlements",
                        "roads", "dem"}
    assert all(len(v) == 64 for v in fps.values())
    assert manifest.layer_fingerprints(load_layers(folder, plan=plan)) == fps

    p800 = manifest.plan_fingerprint(plan)
    p1000 = manifest.plan_fingerprint(load_plan(overrides={"relocation.threshold_m": 1000.0}))
    assert p800 != p1000 and p800 == manifest.plan_fingerprint(load_plan())

    rec = manifest.inputs_record(lay, plan, overrides={}, options={"split": None}, layer_fps=fps)
    rec2 = manifest.inputs_record(lay, load_plan(overrides={"relocation.threshold_m": 1000.0}),
                                  overrides={"relocation.threshold_m": 1000.0}, layer_fps=fps)
    assert rec["fingerprint"] != rec2["fingerprint"]
    assert rec2["plan"]["overrides"] == {"relocation.threshold_m": 1000.0}
    # the plan file is the same; only the effective values differ
    assert rec["plan"]["file_sha256"] == rec2["plan"]["file_sha256"]
    assert "overrides" in manifest.describe_difference(rec2, rec)
    split = manifest.inputs_record(lay, plan, options={"split": "even"}, layer_fps=fps)
    assert split["fingerprint"] != rec["fingerprint"]


def test_record_read_and_is_current(tmp_path, plan):
    out = tmp_path / "out"
    outputs.write_text("a,b\n1,2\n", out / "step/t.csv")
    inputs = {"layers": {"villages": "x"}, "plan": {"fingerprint": "p", "overrides": {}},
              "options": {}}
    inputs["fingerprint"] = manifest.combined_fingerprint(inputs)
    fp = inputs["fingerprint"]
    e = manifest.step_entry("step", inputs=inputs, scope=None, files=[out / "step/t.csv"],
                            out_dir=out, command="kaizhou-gis step", output_options={"header": "en"})
    manifest.record_step(out, e)
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["format"] == manifest.FORMAT
    assert m["steps"]["step"]["files"] == {"step/t.csv": manifest.file_sha256(out / "step/t.csv")}
    assert m["steps"]["step"]["command"] == "kaizhou-gis step"
    assert m["steps"]["step"]["scope"] == {"township_code": None, "township_name": None}

    assert manifest.is_step_current(out, "step", fp)
    assert manifest.is_step_current(out, "step", fp, output_options={"header": "en"})
    assert not manifest.is_step_current(out, "step", fp, output_options={"header": "zh"})
    assert not manifest.is_step_current(out, "step", "0" * 64)          # other inputs
    assert not manifest.is_step_current(out, "step", fp, township_code="500154118")  # other scope
    assert not manifest.is_step_current(out, "other", fp)               # never written
    assert manifest.stale_steps(out, fp) == {}
    outputs.write_text("a,b\n1,3\n", out / "step/t.csv")              # edited since
    assert not manifest.is_step_current(out, "step", fp)
    assert manifest.stale_steps(out, fp) == {"step": "files changed or missing since they were written"}
    assert "step" in manifest.stale_steps(out, "0" * 64)

    manifest.record_command(out, command="kaizhou-gis step", steps={"step": "ok"}, scope=None,
                            fingerprint=fp)
    assert manifest.read_manifest(out)["history"][-1]["steps"] == {"step": "ok"}
    # a broken manifest reads as empty (everything stale), never a crash
    (out / "manifest.json").write_text("{not json", encoding="utf-8")
    assert manifest.read_manifest(out)["steps"] == {}
    assert not manifest.is_step_current(out, "step", fp)


def test_private_options_never_recorded():
    assert manifest.public_options({"tianditu_key": "secret", "township": "x", "header": "en",
                                    "split": None}) == {"header": "en"}


def test_command_line_quotes():
    assert manifest.command_line(["relocation", "--township", "九龙山镇", "--out", "a b"]) == \
        "kaizhou-gis relocation --township 九龙山镇 --out 'a b'"
    assert isinstance(pd.Timestamp(manifest.now()), pd.Timestamp)
