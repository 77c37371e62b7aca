"""Listing the steps does not import them: ``pipeline.installed_steps`` finds each step's module on
the import path (``pipeline.step_available``), and agrees with importing it
(``pipeline.available_steps``, which imports them for a worker's preload)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kaizhou_gis import pipeline
from kaizhou_gis.pipeline import Context, run_steps
from kaizhou_gis.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent


def test_listing_the_steps_imports_none_of_them():
    code = ("import json, sys\n"
            "from kaizhou_gis.pipeline import STEPS, installed_steps\n"
            "steps = installed_steps()\n"
            "mods = [s.target.split(':')[0] for s in STEPS]\n"
            "heavy = ('folium', 'matplotlib', 'networkx', 'fontTools', 'highspy')\n"
            "print(json.dumps([steps, sorted(m for m in sys.modules if m in mods\n"
            "                  or m.split('.')[0] in heavy)]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    steps, imported = json.loads(out.stdout)
    assert steps == ["industry", "access", "relocation", "maps", "report"]
    assert imported == []


def test_the_check_agrees_with_importing_the_module(monkeypatch):
    assert pipeline.installed_steps() == pipeline.available_steps() == \
        ["industry", "access", "relocation", "maps", "report"]
    for step in pipeline.STEPS:
        assert pipeline.step_available(step.name) is (pipeline.step_function(step.name) is not None)
        assert pipeline.step_available(step.name), step.name
    monkeypatch.setattr(pipeline, "STEPS", [
        pipeline.Step("ghost", "kaizhou_gis.no_such_module:run", "Ghost"),
        pipeline.Step("ghost_pkg", "kaizhou_gis.no_such_package.step:run", "Ghost package"),
        pipeline.Step("ghost_in_pkg", "kaizhou_gis.maps.no_such_step:run", "Ghost in maps"),
        pipeline.Step("plain", "json.decoder:JSONDecoder", "A module of the standard library")])
    for name in ("ghost", "ghost_pkg", "ghost_in_pkg"):
        assert not pipeline.step_available(name) and pipeline.step_function(name) is None, name
    assert pipeline.installed_steps() == pipeline.available_steps() == ["plain"]


def test_a_step_whose_module_is_missing_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline, "STEPS", [pipeline.Step("ghost", "kaizhou_gis.no_such_module:run",
                                                          "Ghost")])
    out = run_steps(Context(layers=None, plan=load_plan()), ["ghost"], tmp_path / "out")
    assert [(o.name, o.status, o.message) for o in out] == \
        [("ghost", "skipped", "not available in this installation")]
