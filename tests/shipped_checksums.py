"""Checksums of the outputs of ``kaizhou-gis run`` on the shipped layers.

``tests/data/shipped_outputs.json`` holds the SHA-256 of every file such a run writes (but
``manifest.json``, whose times and command line change from run to run, the folder lock holding
the writer's process id, and the ``.cache/`` folder), recorded before the code was reshaped: a
refactoring must leave every byte as it was. The checkout's own path, which the report prints
with the layer files' paths, is replaced by ``<repo>`` in text files before hashing. Rendered
images and PDFs depend on the versions of the drawing libraries too, so the file records those
versions and the comparison of ``.png``/``.pdf`` files applies when they match.

The print sheets show the day they were drawn (制图日期), so the record keeps the day its sheets
show (``sheet_date``) and a run to compare draws on that day: ``run`` makes the run with
``SOURCE_DATE_EPOCH`` set to it (the test session's shipped run does the same).

When a change alters an output on purpose (a fixed drift or a new layer), re-record and say why
in the commit::

    python3 tests/shipped_checksums.py run /tmp/shipped && python3 tests/shipped_checksums.py record /tmp/shipped
    python3 tests/shipped_checksums.py run /tmp/shipped && python3 tests/shipped_checksums.py compare /tmp/shipped
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

RECORD = Path(__file__).parent / "data" / "shipped_outputs.json"
VOLATILE = {"manifest.json", ".kaizhou-gis.lock"}  # times/command line; the writer's process id
RENDERED = {".png", ".pdf"}
RENDERERS = ("matplotlib", "pillow", "numpy", "folium", "pypdfium2", "fonttools", "zlib-ng")
REPO = Path(__file__).resolve().parents[1]
TEXT = {".html", ".md", ".json", ".csv", ".txt", ".geojson", ".kml", ".gpx"}


def renderer_versions() -> dict[str, str]:
    return {name: version(name) for name in RENDERERS}


def checksums(out: Path) -> dict[str, str]:
    """SHA-256 of each output file under ``out``, keyed by its POSIX path relative to ``out``."""
    sums = {}
    for f in sorted(out.rglob("*")):
        rel = f.relative_to(out).as_posix()
        if not f.is_file() or rel in VOLATILE or rel.startswith(".cache/"):
            continue
        data = f.read_bytes()
        if f.suffix in TEXT:  # the report names the layer files by their absolute path
            data = data.replace(str(REPO).encode(), b"<repo>")
        sums[rel] = hashlib.sha256(data).hexdigest()
    return sums


def sheet_date() -> str:
    """The day (ISO) the recorded print sheets show."""
    return json.loads(RECORD.read_text(encoding="utf-8"))["sheet_date"]


def source_date_epoch() -> str:
    """``SOURCE_DATE_EPOCH`` (seconds, UTC midnight) of the recorded sheets' day: a run made
    with it draws its sheets with the record's date."""
    day = dt.date.fromisoformat(sheet_date())
    return str(int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()))


def run(out: Path) -> int:
    """``kaizhou-gis run --out OUT`` on the shipped layers, drawing on the record's day."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch()}
    return subprocess.call([sys.executable, "-m", "kaizhou_gis", "run", "--out", str(out)],
                           env=env, cwd=REPO)


def record(out: Path) -> None:
    """Record the run in ``out``, made by :func:`run` (its sheets show the record's day, which
    the new record keeps; a first record takes the day of ``$SOURCE_DATE_EPOCH`` or today)."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    if RECORD.exists():
        day = dt.date.fromisoformat(sheet_date())
    else:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        day = dt.datetime.fromtimestamp(int(epoch), dt.UTC).date() if epoch else dt.date.today()
    data = {"renderers": renderer_versions(), "sheet_date": day.isoformat(), "files": checksums(out)}
    RECORD.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(data['files'])} files recorded in {RECORD}")


def differences(out: Path) -> list[str]:
    """What differs between the run in ``out`` and the record (empty when all agree)."""
    rec = json.loads(RECORD.read_text(encoding="utf-8"))
    same_renderers = rec["renderers"] == renderer_versions()
    now = checksums(out)
    problems = [f"missing: {f}" for f in sorted(set(rec["files"]) - set(now))]
    problems += [f"not recorded: {f}" for f in sorted(set(now) - set(rec["files"]))]
    for f in sorted(set(now) & set(rec["files"])):
        if Path(f).suffix in RENDERED and not same_renderers:
            continue
        if now[f] != rec["files"][f]:
            problems.append(f"changed: {f}")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "record", "compare"):
        sys.exit("usage: python3 tests/shipped_checksums.py run|record|compare OUTPUT_FOLDER")
    if sys.argv[1] == "run":
        sys.exit(run(Path(sys.argv[2])))
    if sys.argv[1] == "record":
        record(Path(sys.argv[2]))
    else:
        diff = differences(Path(sys.argv[2]))
        print("\n".join(diff) or "all outputs identical to the record")
        sys.exit(1 if diff else 0)
