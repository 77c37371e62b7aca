"""The outputs of ``kaizhou-gis run`` on the shipped layers are byte-identical to the record in
``tests/data/shipped_outputs.json`` (see ``tests/shipped_checksums.py``: a change that alters an
output on purpose re-records it in its own commit and says why)."""
from __future__ import annotations

import json

import shipped_checksums


def test_shipped_run_outputs_equal_the_recorded_checksums(shipped_run):
    assert shipped_checksums.differences(shipped_run.out) == []


def test_the_record_covers_every_kind_of_output(shipped_run):
    """The comparison above is not vacuous: the record lists the run's files of every step
    (the maps' PNG/PDF are compared only with the recorded drawing-library versions)."""
    files = json.loads(shipped_checksums.RECORD.read_text(encoding="utf-8"))["files"]
    assert set(files) == set(shipped_checksums.checksums(shipped_run.out))
    tops = {f.split("/")[0] for f in files}
    assert {"relocation", "access", "industry", "maps", "report.json", "report.html"} <= tops
    assert sum(f.startswith("maps/townships/") and f.endswith(".html") for f in files) == 40
