"""Pipeline robustness: a failing step, an interrupted write and a killed run leave --out sound.

The steps here are small fake steps (a module registered in ``sys.modules`` and put into
``pipeline.STEPS``), so the tests exercise ``pipeline.run_steps`` and ``outputs`` without layers.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pandas as pd
import pytest

from kaizhou_gis import outputs, pipeline
from kaizhou_gis.errors import LayerError
from kaizhou_gis.pipeline import Context, StepResult, run_steps
from kaizhou_gis.plan import load_plan

FAKE = "kz_fake_steps"
TABLE = pd.DataFrame({"village_code": ["500154101201", "500154101202"], "people": [120, 80]})


def _alpha(ctx, needs):
    return StepResult("alpha", files={"alpha/table.csv": TABLE, "alpha/info.json": {"rows": 2}},
                      summary={"headline": ["alpha ok"]})


def _boom(ctx, needs):
    if ctx.options.get("boom"):
        raise LayerError("villages: column 'households' has negative values at 500154101201; "
                         "fix the layer.")
    return StepResult("boom", files={"boom/result.md": "# boom\ncomplete\n"})


def _needs_boom(ctx, needs):
    needs.result("boom")
    return StepResult("needs_boom", files={"needs_boom/x.md": "x\n"})


def _gamma(ctx, needs):
    rows = (needs.result("alpha").data or {}).get("rows", 2)
    return StepResult("gamma", files={"gamma/out.md": f"gamma after alpha ({rows})\n"})


def _half_written(ctx, needs):
    # first file fine, the second has no writer: the step fails after writing one file
    return StepResult("half", files={"half/a.csv": TABLE, "half/b.png": 42})


def _crash(ctx, needs):
    return {}["missing"]  # an unexpected bug (KeyError), not a KaizhouGISError


def _hungry(ctx, needs):
    block = bytearray(12 * 2**20)
    return StepResult("hungry", summary={"n": len(block)})


FAKE_STEPS = {"alpha": _alpha, "boom": _boom, "needs_boom": _needs_boom, "gamma": _gamma,
              "half": _half_written, "crash": _crash, "hungry": _hungry}


@pytest.fixture
def fake_steps(monkeypatch):
    mod = types.ModuleType(FAKE)
    for name, fn in FAKE_STEPS.items():
        setattr(mod, name, fn)
    monkeypatch.setitem(sys.modules, FAKE, mod)
    needs = {"needs_boom": ("boom",), "gamma": ("alpha",)}
    monkeypatch.setattr(pipeline, "STEPS", [pipeline.Step(n, f"{FAKE}:{n}", f"Fake {n}",
                                                          needs=needs.get(n, ()))
                                            for n in FAKE_STEPS])
    return mod


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def _ctx(plan, **options) -> Context:
    return Context(layers=None, plan=plan, options=dict(options))


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_failing_step_keeps_the_other_steps_outputs(tmp_path, plan, fake_steps):
    out = tmp_path / "out"
    names = ["alpha", "boom", "needs_boom", "gamma"]
    first = run_steps(_ctx(plan), names, out)
    assert [o.status for o in first] == ["ok"] * 4
    old_boom = (out / "boom/result.md").read_bytes()

    TABLE2 = TABLE.assign(people=[121, 81])
    fake_steps.alpha = lambda ctx, needs: StepResult("alpha", files={"alpha/table.csv": TABLE2})
    second = run_steps(_ctx(plan, boom=True), names, out)
    status = {o.name: o for o in second}
    assert status["alpha"].status == "ok" and status["gamma"].status == "ok"
    assert status["boom"].status == "failed"
    assert "households" in status["boom"].message and "500154101201" in status["boom"].message
    assert status["needs_boom"].status == "failed" and "boom" in status["needs_boom"].message
    # the successful steps' files are complete and new; the failed step's old files are untouched
    got = pd.read_csv(out / "alpha/table.csv", dtype={"village_code": str}, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(got, TABLE2)
    assert (out / "gamma/out.md").read_text(encoding="utf-8") == "gamma after alpha (2)\n"
    assert (out / "boom/result.md").read_bytes() == old_boom
    assert _temp_files(out) == []


def test_unexpected_crash_and_failure_during_writing(tmp_path, plan, fake_steps):
    out = tmp_path / "out"
    outcomes = {o.name: o for o in run_steps(_ctx(plan), ["crash", "half", "alpha"], out)}
    assert outcomes["crash"].status == "failed" and "KeyError" in outcomes["crash"].message
    assert outcomes["half"].status == "failed" and "b.png" in outcomes["half"].message
    assert outcomes["alpha"].status == "ok"
    # the file written before the failing one is complete; the failing one does not exist
    got = pd.read_csv(out / "half/a.csv", dtype={"village_code": str}, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(got, TABLE)
    assert not (out / "half/b.png").exists()
    info = json.loads((out / "alpha/info.json").read_text(encoding="utf-8"))
    assert info["rows"] == 2 and list(info) == ["data_status", "rows"]  # every JSON says what the data is
    assert _temp_files(out) == []


def test_exception_inside_atomic_path_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out" / "report.md"
    outputs.write_text("old complete\n", target)
    seen = []
    with pytest.raises(RuntimeError, match="disk full"):
        with outputs.atomic_path(target) as tmp:
            seen.append(tmp)
            tmp.write_text("new but only ha", encoding="utf-8")
            raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old complete\n"
    assert not seen[0].exists()
    assert _temp_files(tmp_path / "out") == []


def test_keyboard_interrupt_inside_a_writer(tmp_path, plan, fake_steps, monkeypatch):
    out = tmp_path / "out"
    outputs.write_csv(TABLE, out / "alpha/table.csv")
    before = (out / "alpha/table.csv").read_bytes()
    tmps = []
    real_to_csv = pd.DataFrame.to_csv

    def interrupted_to_csv(self, path, *args, **kwargs):
        tmps.append(Path(path))
        Path(path).write_text("village_code,peo", encoding="utf-8")  # half a file ...
        raise KeyboardInterrupt  # ... then Ctrl-C

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted_to_csv)
    with pytest.raises(KeyboardInterrupt):
        run_steps(_ctx(plan), ["gamma", "alpha"], out)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert (out / "gamma/out.md").read_text(encoding="utf-8").startswith("gamma after alpha")
    assert (out / "alpha/table.csv").read_bytes() == before
    assert tmps and not tmps[0].exists()
    assert _temp_files(out) == []


def test_memory_tracking_reports_peak(tmp_path, plan, fake_steps):
    (oc,) = run_steps(_ctx(plan), ["hungry"], tmp_path / "out", track_memory=True)
    assert oc.status == "ok" and oc.peak_mb >= 12.0


_KILL_SCRIPT = textwrap.dedent('''
    import os, sys, time, types
    from pathlib import Path
    import pandas as pd
    from kaizhou_gis import outputs, pipeline
    from kaizhou_gis.pipeline import Context, StepResult, run_steps
    from kaizhou_gis.plan import load_plan

    out, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    if mode == "in_folder":  # as on a machine where the system temp is another filesystem
        outputs.files._temp_dir_for = lambda folder: folder
    table = pd.DataFrame({"settlement_id": [f"S{i}" for i in range(500)], "people": range(500)})
    mod = types.ModuleType("kz_kill_steps")
    mod.alpha = lambda ctx, needs: StepResult("alpha", files={"alpha/table.csv": table})
    mod.slow = lambda ctx, needs: StepResult("slow", files={"slow/big.md": "line\\n" * 200_000})
    sys.modules["kz_kill_steps"] = mod
    pipeline.STEPS[:] = [pipeline.Step("alpha", "kz_kill_steps:alpha", "A"),
                         pipeline.Step("slow", "kz_kill_steps:slow", "S")]

    real = Path.write_text
    def slow_write_text(self, data, *args, **kwargs):
        if "big.md" not in self.name:
            return real(self, data, *args, **kwargs)
        with open(self, "w", encoding="utf-8") as f:  # write half, make it reach the disk, hang
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            real(marker, str(self), encoding="utf-8")
            time.sleep(600)
    Path.write_text = slow_write_text
    run_steps(Context(layers=None, plan=load_plan()), ["alpha", "slow"], out)
''')


@pytest.mark.parametrize("mode", ["system_temp", "in_folder"])
def test_killed_run_leaves_no_partial_file(tmp_path, mode, plan, fake_steps):
    out = tmp_path / "out"
    outputs.write_text("old complete report\n", out / "slow/big.md")
    script = tmp_path / "kill_me.py"
    script.write_text(_KILL_SCRIPT, encoding="utf-8")
    marker = tmp_path / "writing"
    sys_tmp = tmp_path / "systmp"
    sys_tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(sys_tmp))
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(marker), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no marker"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    partial = Path(marker.read_text(encoding="utf-8"))
    assert partial.exists() and partial.stat().st_size > 0  # the kill hit in the middle of a write

    # the step that finished has its complete file; the killed write never touched the target
    got = pd.read_csv(out / "alpha/table.csv", encoding="utf-8-sig")
    assert len(got) == 500 and got["people"].sum() == sum(range(500))
    assert (out / "slow/big.md").read_text(encoding="utf-8") == "old complete report\n"
    visible = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and not p.name.startswith("."))
    assert visible == ["alpha/README.txt", "alpha/table.csv", "manifest.json", "slow/big.md"]
    assert list(json.loads((out / "manifest.json").read_text(encoding="utf-8"))["steps"]) == ["alpha"]
    if mode == "system_temp":
        # the partial file is in the dead run's scratch folder, outside --out; the next run
        # removes that folder whatever its age (its owner's lock died with it)
        assert _temp_files(out) == [] and partial.parent.parent == sys_tmp / "kaizhou-gis"
        subprocess.run([sys.executable, "-c", "from kaizhou_gis import outputs; "
                        f"outputs.clean_stale_temp({str(out)!r})"], env=env, check=True)
        assert not partial.exists() and not partial.parent.exists()
    else:
        # SIGKILL allows no clean-up: the hidden partial temp is beside the target until the
        # next run, which removes it before writing anything
        assert _temp_files(out) == [partial]
        run_steps(_ctx(plan), ["alpha"], out)
        assert _temp_files(out) == []


def test_cli_run_reports_a_failed_step_and_keeps_the_others(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kaizhou_gis.cli import main

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import layerset
    finally:
        sys.path.pop(0)
    layers_dir = layerset.write_layerset(tmp_path / "layers")
    mod = types.ModuleType(FAKE)

    def broken(ctx, needs):
        raise RuntimeError("injected failure in the middle of the run")

    mod.broken = broken
    monkeypatch.setitem(sys.modules, FAKE, mod)
    steps = {s.name: s for s in pipeline.STEPS}  # the report needs steps not registered here
    monkeypatch.setattr(pipeline, "STEPS", [
        steps["industry"], pipeline.Step("broken", f"{FAKE}:broken", "Broken step"),
        steps["report"]])
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--layers", str(layers_dir), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "[2/3] Broken step ... FAILED" in res.output
    assert "injected failure" in res.output
    assert "1 step(s) failed: broken" in res.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["steps"]["industry"] == "ok"
    assert report["steps"]["access"].startswith("unavailable")
    assert len(report["indicators"]) == 10
    assert (out / "industry" / "projects.csv").stat().st_size > 0
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert _temp_files(out) == []


def test_write_succeeds_when_rename_across_mount_points_is_refused(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):  # what the kernel does for two mount points of one filesystem
        if Path(src).parent != Path(dst).parent:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real_replace(src, dst)

    sys_tmp = tmp_path / "systmp"
    sys_tmp.mkdir()
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(outputs.files, "_temp_dir_for", lambda folder: sys_tmp)
    target = tmp_path / "out" / "report.md"
    outputs.write_text("complete\n", target)
    assert target.read_text(encoding="utf-8") == "complete\n"
    assert _temp_files(tmp_path) == []
