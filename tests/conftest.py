"""Test-session settings and fixtures shared by every test file.

``shipped_run``: ONE ``kaizhou-gis run`` on the shipped layers for the whole test session (the
costliest thing the suite does). It starts in the background as soon as the tests are collected
and one of them needs it, so it runs while other tests run; the fixture waits for it. Under
pytest-xdist each worker is its own process: the first worker that collects starts it (under a
file lock) into the session's shared temp folder and every worker reads that one folder.
Tests only READ it: a test that needs a changed run makes its own, or copies the folder
(``shutil.copytree``) and changes the copy.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the shipped layers (in git): tests on them fail, not skip, when they are missing
SHIPPED = ROOT / "layers"
#: how long a test waits for the shared shipped run (it takes ~1 min on an idle machine)
SHIPPED_RUN_TIMEOUT_S = 3600


def pytest_report_header(config):
    from kaizhou_gis.fonts import find_cjk_font

    font = find_cjk_font()
    return [f"CJK font: {font or 'NONE (apt-get install fonts-noto-cjk): maps with Chinese text fail'}"]


#: Skips that depend on the machine, not on what .ci/run installs; any other skip fails under CI
#: (CI=true, set by the CI runner): a test that skips there tests nothing.
CI_ALLOWED_SKIPS = (
    "root writes into a mode-555 folder",  # CI runs as root (tests/test_outdir.py)
    "no tmpfs (/dev/shm)",  # the machine's mounts (tests/test_outdir.py)
    "does not support unnamed temp files",  # the kernel/filesystem (tests/test_outdir.py)
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("CI", "").lower() in ("1", "true", "yes") \
            and not hasattr(rep, "wasxfail"):
        reason = str(rep.longrepr[-1] if isinstance(rep.longrepr, tuple) else rep.longrepr)
        if not any(ok in reason for ok in CI_ALLOWED_SKIPS):
            rep.outcome = "failed"
            rep.longrepr = (f"skipped under CI ({reason}): .ci/run must install what this test "
                            f"needs, or the skip is a failure in disguise")


@dataclass(frozen=True)
class ShippedRun:
    """The shared run: its output folder (read only!) and what the command printed."""

    out: Path
    stdout: str
    stderr: str

    def context(self, cache_copy: Path, **options):
        """A fresh :class:`~kaizhou_gis.pipeline.Context` on the shipped layers and plan whose
        costly district results (access, relocation) come from a copy of this run's ``.cache``
        in ``cache_copy`` (the same inputs give the same cache key), not computed again."""
        from kaizhou_gis.layers import load_layers
        from kaizhou_gis.pipeline import Context
        from kaizhou_gis.plan import load_plan

        if not cache_copy.exists():
            shutil.copytree(self.out / ".cache", cache_copy)
        plan = load_plan()
        return Context(layers=load_layers(None, plan=plan), plan=plan,
                       options={"township": None, **options}, cache_dir=cache_copy)


def pytest_sessionstart(session):
    """Every run of the session (in the test processes and the CLI subprocesses they start)
    shares the subset fonts of the print sheets through ``$KAIZHOU_GIS_FONT_CACHE`` in the
    session's temp folder: the same district drawn again takes its fonts from there (about
    1.2 CPU-s a run). A user's own setting is kept. The first single run of tests/test_batch.py
    runs without it (fonts made anew) and the later batch runs of that district, drawn with the
    cached fonts, are compared with it byte for byte; tests/test_fontcache.py tests the cache."""
    from kaizhou_gis.fonts import FONT_CACHE_ENV

    if not os.environ.get(FONT_CACHE_ENV):
        os.environ[FONT_CACHE_ENV] = str(_shared_tmp(session.config._tmp_path_factory) / "font-cache")


def _shared_tmp(factory) -> Path:
    """The session's temp folder, the same for every xdist worker of the session."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _start_shipped_run(shared: Path) -> None:
    """Start ``python3 -m kaizhou_gis run`` on the shipped layers in the background, once per
    session (the first caller under the lock starts it). It writes its output to
    ``shared/shipped_run``, what it printed beside it, and its exit code last
    (``shipped_run.rc``, which the fixture waits for)."""
    from filelock import FileLock

    with FileLock(str(shared / "shipped_run.lock")):
        started = shared / "shipped_run.started"
        if started.exists():
            return
        missing = [f for f in ("kaizhou.gpkg", "dem.tif") if not (SHIPPED / f).is_file()]
        if missing:  # the fixture reports it
            (shared / "shipped_run.stderr").write_text(f"shipped layers missing from {SHIPPED}: "
                                                       f"{missing}\n", encoding="utf-8")
            (shared / "shipped_run.rc").write_text("2", encoding="utf-8")
            started.touch()
            return
        # FutureWarnings and missing glyphs are errors as in the tests; the fixture fails on
        # any other warning the run prints
        cmd = [sys.executable, "-W", "error::FutureWarning", "-W", "error:Glyph:UserWarning",
               "-m", "kaizhou_gis", "run", "--out", str(shared / "shipped_run")]
        q = {k: shlex.quote(str(shared / f"shipped_run.{k}"))
             for k in ("stdout", "stderr", "rc", "times")}
        # `times`: the run's CPU time (not counted in pytest's, which does not wait for it)
        script = (f"{shlex.join(cmd)} >{q['stdout']} 2>{q['stderr']}; rc=$?; times >{q['times']}; "
                  f"echo $rc >{q['rc']}.part && mv {q['rc']}.part {q['rc']}")
        subprocess.Popen(["sh", "-c", script], cwd=ROOT, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        started.touch()


#: Rough work (CPU seconds on the 2-core dev machine) of the test files that cost most. Under
#: ``--dist loadfile`` each file is one unit of work that pytest-xdist hands, in collection
#: order, to the next worker that runs out; the longest files go first (so no long file is left
#: for the end while the other worker idles) and the files that need the shared shipped run go
#: last (so both workers do other work while the run, which starts at collection, goes on).
#: Files not listed count as small; an unlisted new slow file only runs in alphabetical order.
FILE_WEIGHTS = {
    "test_batch.py": 90, "test_maps_browser.py": 60, "test_web_browser.py": 50, "test_dbio.py": 45,
    "test_scope.py": 40, "test_demo_layers.py": 35, "test_web.py": 30, "test_bad_inputs.py": 25,
    "test_print.py": 25, "test_data_status_outputs.py": 20, "test_maps.py": 20,
    "test_dem_window.py": 15, "test_fuzz_loaders.py": 15, "test_cellsafe.py": 12,
    "test_layers.py": 10, "test_helpers.py": 10, "test_pipeline.py": 10, "test_notebook.py": 10,
}


def pytest_configure(config):
    # every run of the session draws its print sheets on the day the checksum record's sheets
    # show (a sheet prints the day it was drawn): the same bytes on any day, also when the
    # session passes midnight between two runs it compares
    import shipped_checksums

    os.environ.setdefault("SOURCE_DATE_EPOCH", shipped_checksums.source_date_epoch())
    # pytest-xdist (>= 3.5) hands out the files of ``--dist loadfile`` by their NUMBER OF TESTS,
    # most first, unless told to keep the collection order (``--no-loadscope-reorder``, xdist
    # >= 3.8): by that count the few long files (test_batch, test_web_browser) went last and
    # one worker ran them alone at the end. Keep the order :func:`_order_for_two_workers` makes.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def _order_for_two_workers(items) -> None:
    """Sort ``items`` (in place) file by file: files that need no shipped run first, longest
    first; then those that need it, longest first; the tests of a file keep their order. The
    order is the same in every xdist worker (it depends on the names only)."""
    needs: dict[str, bool] = {}
    for item in items:
        f = item.nodeid.split("::", 1)[0]
        needs[f] = needs.get(f, False) or "shipped_run" in getattr(item, "fixturenames", ())
    first = {}
    for i, item in enumerate(items):
        first.setdefault(item.nodeid.split("::", 1)[0], i)

    def key(pair):
        i, item = pair
        f = item.nodeid.split("::", 1)[0]
        return needs[f], -FILE_WEIGHTS.get(Path(f).name, 0), first[f], i

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


@pytest.hookimpl(trylast=True)  # after -k/-m deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    _order_for_two_workers(items)
    if any("shipped_run" in getattr(item, "fixturenames", ()) for item in items):
        _start_shipped_run(_shared_tmp(config._tmp_path_factory))


@pytest.fixture(scope="session")
def shipped_run(tmp_path_factory) -> ShippedRun:
    """``python3 -m kaizhou_gis run --out OUT`` on the shipped layers, once per test session,
    in a fresh process like a user's run (no state left by other tests in matplotlib or pandas)."""
    shared = _shared_tmp(tmp_path_factory)
    _start_shipped_run(shared)
    rc_file = shared / "shipped_run.rc"
    deadline = time.monotonic() + SHIPPED_RUN_TIMEOUT_S
    while not rc_file.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the shipped run did not end within {SHIPPED_RUN_TIMEOUT_S} s "
                        f"(its output so far: {shared / 'shipped_run.stderr'})")
        time.sleep(0.5)
    rc = rc_file.read_text(encoding="utf-8").strip()
    stdout, stderr = ((shared / f"shipped_run.{k}").read_text(encoding="utf-8", errors="replace")
                      for k in ("stdout", "stderr"))
    warned = [ln for ln in stderr.splitlines() if "Warning:" in ln]
    if rc != "0" or warned:
        pytest.fail(f"kaizhou-gis run on the shipped layers: exit {rc}, warnings {warned}\n"
                    f"{stdout}\n{stderr}", pytrace=False)
    return ShippedRun(out=shared / "shipped_run", stdout=stdout, stderr=stderr)
