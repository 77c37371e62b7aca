"""The walkthrough notebook runs top to bottom and writes the report.

It runs on the shipped layers when they are present (``layers/kaizhou.gpkg``), else on the tiny
test layer set of ``tests/layerset.py`` (set ``KAIZHOU_LAYERS`` to choose other layers).
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
SHIPPED = ROOT / "layers" / "kaizhou.gpkg"

pytestmark = pytest.mark.slow  # the full pipeline on the shipped layers takes a while


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
    if SHIPPED.exists():
        monkeypatch.delenv("KAIZHOU_LAYERS", raising=False)
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        try:
            import layerset
        finally:
            sys.path.pop(0)
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
