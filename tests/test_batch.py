"""Batch of districts on dask.distributed: outputs equal single runs byte for byte, a broken
district is reported and does not stop the others, reruns skip unchanged districts, and an
external scheduler + worker started with the `dask` CLIs runs a manifest."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kaizhou_gis.batch import read_manifest
from kaizhou_gis.cli import main
from kaizhou_gis.demo.synthetic import write_synthetic_districts
from kaizhou_gis.errors import OptionError
from kaizhou_gis.fonts import FONT_CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent
GOOD = ["900001", "900002", "900003"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kaizhou_gis", *args], capture_output=True,
                          text=True, env=_env(), timeout=timeout, cwd=ROOT)


#: The output folder's lock (one run per folder; holds the process id), not an output.
LOCK = ".kaizhou-gis.lock"


def _files(folder: Path) -> list[str]:
    """The outputs in ``folder``: not the lock, not the district-results cache (``.cache/``, an
    internal store of intermediate results keyed by the inputs fingerprint, not an output)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.name != LOCK
                  and p.relative_to(folder).parts[0] != ".cache")


def _manifest_without_volatile(path: Path) -> dict:
    """manifest.json minus its documented volatile fields: times, the command line, history."""
    m = json.loads(path.read_text(encoding="utf-8"))
    m.pop("updated", None)
    m.pop("history", None)
    for e in m["steps"].values():
        e.pop("time", None)
        e.pop("command", None)
    return m


def _same_outputs(a: Path, b: Path) -> None:
    """``b`` holds the same files as ``a``, byte for byte (manifest.json: but for its volatile
    fields)."""
    assert _files(a) == _files(b)
    assert len(_files(a)) > 25
    for f in sorted(_files(a), key=lambda f: f == "manifest.json"):  # the manifest last: a
        if f == "manifest.json":  # difference in an output is named by the file
            assert _manifest_without_volatile(a / f) == _manifest_without_volatile(b / f)
        else:
            assert filecmp.cmp(a / f, b / f, shallow=False), f"{b / f} differs"


@pytest.fixture(scope="module")
def districts(tmp_path_factory) -> Path:
    """Three small synthetic districts (another code, CRS zone, no industry table each) and a
    broken copy of the first one (its DEM removed)."""
    d = tmp_path_factory.mktemp("districts")
    write_synthetic_districts(d, 3, seed=11, townships=2, villages=8, area_km2=150.0)
    shutil.copytree(d / "900001", d / "broken")
    (d / "broken" / "dem.tif").unlink()
    manifest = (d / "batch.toml").read_text(encoding="utf-8")
    manifest += ('\n[[district]]\ncode = "999999"\nname = "坏区 <b>broken</b>"\n'
                 'layers = "broken"\nplan = "broken/plan.toml"\n')
    (d / "batch4.toml").write_text(manifest, encoding="utf-8")
    return d


def _single_run(districts: Path, code: str, out: Path) -> None:
    r = CliRunner().invoke(main, ["run", "--layers", str(districts / code),
                                  "--plan", str(districts / code / "plan.toml"), "--out", str(out)])
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def runs(districts, tmp_path_factory) -> tuple[Path, tuple[Path, subprocess.CompletedProcess]]:
    """Each good district through the plain `run` command, and the 4-district batch (a `batch`
    process with 2 dask workers), which runs while the single runs of the second and third
    district run here. The first single run runs WITHOUT the session's font cache
    (tests/conftest.py) and before the batch starts: it makes its subset fonts, the batch runs
    of that district take them from the cache, and the tests compare the two byte for byte."""
    single = tmp_path_factory.mktemp("single")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(FONT_CACHE_ENV, raising=False)
        _single_run(districts, GOOD[0], single / GOOD[0])
    out = tmp_path_factory.mktemp("batch")
    args = [sys.executable, "-m", "kaizhou_gis", "batch", str(districts / "batch4.toml"),
            "--out", str(out), "--workers", "2"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(), cwd=ROOT)
    try:
        for code in GOOD[1:]:
            _single_run(districts, code, single / code)
        stdout, stderr = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return single, (out, subprocess.CompletedProcess(args, p.returncode, stdout, stderr))


@pytest.fixture(scope="module")
def single_runs(runs) -> Path:
    """Each good district's `run` output folder: ``single_runs / code``."""
    return runs[0]


@pytest.fixture(scope="module")
def batch_run(runs) -> tuple[Path, subprocess.CompletedProcess]:
    """The batch's output folder and the finished `batch` process (exit code, what it printed)."""
    return runs[1]


def test_synthetic_districts_differ_and_are_labelled(districts):
    import geopandas as gpd

    from kaizhou_gis.plan import load_plan

    crs, extents = set(), set()
    for code in GOOD:
        plan = load_plan(districts / code / "plan.toml")
        assert plan["meta.district_code"] == code
        assert plan["industry.projects_table"] == ""
        crs.add(plan.work_crs)
        b = gpd.read_file(districts / code / "district.gpkg", layer="boundary")
        assert b["code"].tolist() == [code] and "synthetic" in b["source"].iloc[0]
        v = gpd.read_file(districts / code / "district.gpkg", layer="villages")
        assert v["village_code"].str.startswith(code).all() and (v["source"] == "synthetic").all()
        extents.add(tuple(round(x, 2) for x in b.total_bounds))
        assert "合成数据" in (districts / code / "README.md").read_text(encoding="utf-8")
    assert crs == {"EPSG:4543", "EPSG:4544", "EPSG:4546"}  # three CRS zones, none Kaizhou's
    assert len(extents) == 3


def test_batch_equals_single_runs_and_reports_the_broken_district(batch_run, single_runs):
    out, r = batch_run
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "1 of 4 district(s) failed" in r.stderr and "999999" in r.stderr
    for code in GOOD:  # the same files with the same bytes as a single `run`
        _same_outputs(single_runs / code, out / code)
    # progress lines, one per district, and the overall count
    for code in GOOD + ["999999"]:
        assert code in r.stdout
    assert "4/4" in r.stdout and "dask: 2 worker(s)" in r.stdout


def test_rollup_has_every_district_with_the_reports_figures(batch_run):
    out, _ = batch_run
    roll = json.loads((out / "rollup.json").read_text(encoding="utf-8"))["districts"]
    assert [x["code"] for x in roll] == GOOD + ["999999"]
    bad = roll[-1]
    assert bad["status"] == "failed" and "dem" in bad["error"].lower() and "no DEM" in bad["error"]
    csv = pd.read_csv(out / "rollup.csv", encoding="utf-8-sig", dtype=str)
    assert len(csv) == 4 and csv.iloc[-1, 2] == "failed"
    xl = pd.read_excel(out / "rollup.xlsx", dtype=str)
    assert len(xl) == 4
    for row in roll[:3]:
        rep = json.loads((out / row["code"] / "report.json").read_text(encoding="utf-8"))
        rel, acc = rep["relocation"], rep["access"]
        assert row["status"] == "ok" and row["data_status"].startswith("合成数据（非实测） / synthetic")
        assert "villages" in row["data_status"] and "dem" in row["data_status"]
        assert row["candidates"] == rel["candidates"]
        assert row["candidate_people"] == rel["candidate_people"]
        assert row["candidate_households"] == rel["candidate_households"]
        assert row["registered_poor"] == rel["candidate_poor_people"]
        assert row["scheduled_people"] == sum(s["people"] for s in rel["schedule"])
        card = {c["indicator"]: c for c in acc["scorecard"]}
        assert row["village_tongchang_before_pct"] == card["village_tongchang_pct"]["before_pct"]
        assert row["settlement_tongchang_after_pct"] == card["settlement_tongchang_pct"]["after_pct"]
        assert row["works_km"] == acc["works"]["km"] and row["works_cost_yuan"] == acc["works"]["cost_yuan"]
        assert row["industry_projects"] == 0
        v = pd.read_csv(out / row["code"] / "access" / "villages.csv", encoding="utf-8-sig")
        assert row["village_tongda_before_pct"] == round(100 * v["tongda"].mean(), 2)
    assert sum(row["candidates"] for row in roll[:3]) > 0
    assert csv["candidates 搬迁对象自然村"].iloc[:3].str.fullmatch(r"\d+").all()  # counts stay whole
    page = (out / "rollup.html").read_text(encoding="utf-8")
    assert "<b>broken</b>" not in page and "坏区 &lt;b&gt;broken&lt;/b&gt;" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert 'href="900001/report.html"' in page and "SYNTHESIZED" in page
    mp = (out / "rollup_map.html").read_text(encoding="utf-8")
    assert mp.count("<path ") == 4  # the broken district's outline is drawn too (grey)
    assert 'href="900002/maps/overview.html"' in mp and 'href="999999/' not in mp
    assert "http://" not in mp and "https://" not in mp and "<script src" not in mp


def test_rerun_skips_unchanged_districts(batch_run, districts):
    out, _ = batch_run
    before = {c: {f: (out / c / f).stat().st_mtime_ns for f in _files(out / c)} for c in GOOD}
    time.sleep(0.05)
    r = _cli("batch", str(districts / "batch4.toml"), "--out", str(out), "--workers", "1")
    assert r.returncode == 1
    assert "1 run, 3 unchanged (skipped), 1 failed" in r.stdout
    assert r.stdout.count("unchanged, not rerun") == 3
    after = {c: {f: (out / c / f).stat().st_mtime_ns for f in _files(out / c)} for c in GOOD}
    assert after == before  # no file of the 3 was rewritten
    roll = json.loads((out / "rollup.json").read_text(encoding="utf-8"))["districts"]
    assert [x["run"] for x in roll] == ["unchanged (skipped)"] * 3 + ["ran"]
    assert roll[1]["candidates"] > 0  # figures still there for the skipped ones


def test_manifest_problems_are_named(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('[[district]]\ncode = "a/b"\nlayers = "x"\n[[district]]\ncode = "1"\n'
                 'layers = "x"\nfoo = 1\n[[district]]\ncode = "1"\nlayers = "y"\n', encoding="utf-8")
    with pytest.raises(OptionError) as e:
        read_manifest(m)
    msg = str(e.value)
    assert "'a/b' is not a usable code" in msg and "district[1].foo: unknown key" in msg
    assert "listed twice" in msg
    r = CliRunner().invoke(main, ["batch", str(m), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "Traceback" not in r.output


def _wait_for(path: Path, seconds: float = 60) -> None:
    t0 = time.time()
    while not path.exists() or path.stat().st_size == 0:
        if time.time() - t0 > seconds:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.2)


def test_external_scheduler_and_worker(districts, tmp_path, single_runs):
    """`dask scheduler` and `dask worker` as separate processes; the batch uses --scheduler."""
    sched_file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cli = [sys.executable, "-m", "distributed.cli.dask_worker"]
    if shutil.which("dask"):
        dask_cli, worker_cli = ["dask", "scheduler"], ["dask", "worker"]
    log_s = open(tmp_path / "scheduler.log", "w")
    log_w = open(tmp_path / "worker.log", "w")
    sched = subprocess.Popen([*dask_cli, "--scheduler-file", str(sched_file), "--port", "0",
                              "--dashboard-address", ":0", "--host", "127.0.0.1"],
                             stdout=log_s, stderr=subprocess.STDOUT, env=_env())
    worker = None
    try:
        # the worker starts at once and finds the scheduler through its file when it is there
        worker = subprocess.Popen([*worker_cli, "--scheduler-file", str(sched_file),
                                   "--nworkers", "1", "--nthreads", "1",
                                   "--no-dashboard", "--local-directory", str(tmp_path / "w")],
                                  stdout=log_w, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
        _wait_for(sched_file)
        addr = json.loads(sched_file.read_text())["address"]
        m = tmp_path / "two.toml"
        m.write_text("\n".join(f'[[district]]\ncode = "{c}"\nlayers = "{districts / c}"\n'
                               f'plan = "{districts / c / "plan.toml"}"\n' for c in GOOD[:2]),
                     encoding="utf-8")
        out = tmp_path / "out"
        deadline = time.time() + 60
        from dask.distributed import Client
        with Client(addr, timeout="30s") as c:  # wait until the worker has joined
            while not c.scheduler_info()["workers"] and time.time() < deadline:
                time.sleep(0.2)
        r = _cli("batch", str(m), "--out", str(out), "--scheduler", addr)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"on {addr}" in r.stdout
        for code in GOOD[:2]:
            _same_outputs(single_runs / code, out / code)
        roll = json.loads((out / "rollup.json").read_text(encoding="utf-8"))["districts"]
        assert [x["status"] for x in roll] == ["ok", "ok"]
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        log_s.close()
        log_w.close()


# --------------------------------------------------------------------------------------------
# a worker process killed (SIGKILL) while it runs a district
# --------------------------------------------------------------------------------------------
def _kill_worker_running(district_out: Path, batch: subprocess.Popen, seconds: float = 600) -> int:
    """Wait until a process holds ``district_out``'s lock (a worker is running that district's
    pipeline: the lock holds its pid), kill that process with SIGKILL and return its pid."""
    import fcntl
    import signal

    lock = district_out / LOCK
    t0 = time.time()
    while time.time() - t0 < seconds:
        if batch.poll() is not None:
            raise AssertionError(f"the batch ended before {district_out.name} ran: "
                                 f"{batch.communicate()}")
        if lock.exists():
            fd = os.open(lock, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)  # not held (yet, or any more)
                except BlockingIOError:  # held: the district is running
                    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                    if text.isdigit():
                        pid = int(text)
                        assert pid not in (os.getpid(), batch.pid)  # a worker, not the driver
                        os.kill(pid, signal.SIGKILL)
                        return pid
            finally:
                os.close(fd)
        time.sleep(0.01)
    raise TimeoutError(f"no worker ran {district_out.name} within {seconds} s")


def _batch_popen(manifest: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kaizhou_gis", "batch", str(manifest),
                             "--out", str(out), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _manifest_of(districts: Path, tmp_path: Path, codes: list[str]) -> Path:
    m = tmp_path / f"{len(codes)}.toml"
    m.write_text("\n".join(f'[[district]]\ncode = "{c}"\nlayers = "{districts / c}"\n'
                           f'plan = "{districts / c / "plan.toml"}"\n' for c in codes),
                 encoding="utf-8")
    return m


def test_worker_killed_mid_district_is_rerun_by_dask(districts, tmp_path, single_runs):
    """SIGKILL the worker process while it runs a district: the nanny restarts it, the scheduler
    reruns the task (distributed.scheduler.allowed-failures, default 3), and the district's
    outputs are complete and equal a single run's, byte for byte (the killed run's temporaries
    are cleaned). One district on two workers: the other worker is free to rerun it at once (a
    batch whose other districts go on is test_worker_killed_beyond_allowed_failures_is_reported)."""
    out = tmp_path / "out"
    env = _env()
    env.pop("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", None)
    p = _batch_popen(_manifest_of(districts, tmp_path, GOOD[:1]), out, env)
    try:
        killed = _kill_worker_running(out / GOOD[0], p)
        stdout, stderr = p.communicate(timeout=900)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    roll = json.loads((out / "rollup.json").read_text(encoding="utf-8"))["districts"]
    assert [(x["code"], x["status"], x["error"]) for x in roll] == [(GOOD[0], "ok", "")]
    _same_outputs(single_runs / GOOD[0], out / GOOD[0])
    line = next(ln for ln in stdout.splitlines() if f" {GOOD[0]}: ok in" in ln)
    assert "(worker pid " in line and f"(worker pid {killed})" not in line  # rerun elsewhere


def test_worker_killed_beyond_allowed_failures_is_reported(districts, tmp_path, single_runs):
    """With distributed.scheduler.allowed-failures = 0 one SIGKILL exhausts dask's reruns: the
    district is in the roll-up as failed with "worker lost ...", the other completes, exit 1."""
    out = tmp_path / "out"
    env = _env()
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
    p = _batch_popen(_manifest_of(districts, tmp_path, GOOD[:2]), out, env)
    try:
        _kill_worker_running(out / GOOD[0], p)
        stdout, stderr = p.communicate(timeout=900)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "1 of 2 district(s) failed" in stderr and GOOD[0] in stderr
    roll = json.loads((out / "rollup.json").read_text(encoding="utf-8"))["districts"]
    assert [(x["code"], x["status"]) for x in roll] == [(GOOD[0], "failed"), (GOOD[1], "ok")]
    err = roll[0]["error"]
    assert err.startswith(f"worker lost: the worker process running district {GOOD[0]} died 1 time(s)")
    assert "distributed.scheduler.allowed-failures = 0" in err
    assert f"{GOOD[0]}" in stdout and "FAILED: worker lost" in stdout
    csv = pd.read_csv(out / "rollup.csv", encoding="utf-8-sig", dtype=str)
    assert csv.iloc[0, 2] == "failed" and csv.iloc[0, 3].startswith("worker lost")
    _same_outputs(single_runs / GOOD[1], out / GOOD[1])
