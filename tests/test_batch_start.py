"""How `kaizhou-gis batch` starts its local dask workers: from a fork server that imported the
pipeline once (kaizhou_gis.batch.preload), unless the user chose a start method."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dask
import distributed  # noqa: F401 - dask's distributed.* settings

from kaizhou_gis.batch import run as batch_run

ROOT = Path(__file__).resolve().parent.parent


def test_a_start_method_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setenv(batch_run.START_METHOD_ENV, "spawn")
    before = dask.config.get(batch_run.START_METHOD_KEY)
    assert batch_run._start_workers_from_fork_server() is False
    assert dask.config.get(batch_run.START_METHOD_KEY) == before


def test_workers_start_from_a_fork_server_that_imported_the_pipeline():
    """In a fresh process (the setting is process-wide): the fork server's module list ends with
    the preload module, which imports every step and the drawing libraries and starts no thread
    (a fork server must not: a thread does not survive a fork)."""
    script = """
import json, sys, threading
import multiprocessing.forkserver
import dask
from kaizhou_gis.batch import run
out = {"set": run._start_workers_from_fork_server(),
       "method": dask.config.get(run.START_METHOD_KEY),
       "preload": multiprocessing.forkserver._forkserver._preload_modules}
import kaizhou_gis.batch.preload
out["threads"] = threading.active_count()
out["modules"] = sorted(m for m in ("kaizhou_gis.access.step", "kaizhou_gis.relocation.step",
                                    "kaizhou_gis.maps.step", "kaizhou_gis.report.step",
                                    "kaizhou_gis.industry.step", "matplotlib.figure",
                                    "fontTools.subset", "geopandas") if m in sys.modules)
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != batch_run.START_METHOD_ENV}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["set"] is True and out["method"] == "forkserver"
    assert out["preload"][0] == "distributed" and out["preload"][-1] == batch_run.PRELOAD_MODULE
    assert out["threads"] == 1
    assert len(out["modules"]) == 8, out["modules"]
