"""The walkthrough notebook runs top to bottom and writes the report.

It runs on the tiny test layer set of ``tests/layerset.py`` (through ``KAIZHOU_LAYERS``, which
the notebook reads): the pipeline on the shipped layers runs once per test session
(``shipped_run`` in conftest.py), not again inside the notebook's kernel.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"

pytestmark = pytest.mark.slow  # a kernel running the steps takes a while


def test_committed_notebook_matches_its_generator_and_has_no_outputs():
    sys.path.insert(0, str(NOTEBOOK.parent))
    try:
        import make_walkthrough
    finally:
        sys.path.pop(0)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    built = make_walkthrough.build()
    assert [c["source"] for c in nb.cells] == [c["source"] for c in built.cells]
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c["cell_type"] == "code")


def test_notebook_executes_and_writes_the_report(tmp_path, monkeypatch):
    import layerset

    monkeypatch.setenv("KAIZHOU_LAYERS", str(layerset.write_layerset(tmp_path / "layers")))
    out = tmp_path / "out"
    monkeypatch.setenv("KAIZHOU_OUT", str(out))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert len(report["indicators"]) == 10
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "relocation").is_dir() and (out / "access").is_dir()
    # the threshold comparison cell: raising the threshold never adds candidates
    texts = [o.get("data", {}).get("text/plain", "") for c in nb.cells
             if "plan900" in c["source"] for o in c.get("outputs", [])]
    assert texts and "threshold_m" in texts[0]
    people = [int(line.split()[-1]) for line in texts[0].splitlines()[1:]]
    assert people[1] <= people[0]
