"""--out is checked before any work, locked for one run, and never keeps a killed run's temp files."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kaizhou_gis import outputs
from kaizhou_gis.cli import main
from kaizhou_gis.errors import OptionError

sys.path.insert(0, str(Path(__file__).parent))
import layerset  # noqa: E402

sys.path.pop(0)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def layers_dir(tmp_path_factory):
    return layerset.write_layerset(tmp_path_factory.mktemp("layers"))



def _stray_temp_files(out: Path, files: list[str]) -> list[str]:
    """Temp files left in ``out``: anything named .tmp or hidden, but the locks (the folder's, and
    the one its writers take to change the district-results cache's index) and that index
    (written atomically too, so it must be complete JSON)."""
    allowed = (".kaizhou-gis.lock", ".cache/.index.json", ".cache/.index.lock")
    if ".cache/.index.json" in files:
        json.loads((out / ".cache/.index.json").read_text(encoding="utf-8"))
    return [f for f in files if ".tmp" in f or (Path(f).name.startswith(".") and f not in allowed)]

def _all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("command", ["run", "relocation", "maps"])
def test_out_that_is_a_file_exits_2_before_any_work(tmp_path, layers_dir, command):
    f = tmp_path / "outputs"
    f.write_text("not a folder", encoding="utf-8")
    res = CliRunner().invoke(main, [command, "--layers", str(layers_dir), "--out", str(f)])
    assert res.exit_code == 2, res.output
    assert f"--out {f}: is a file, not a folder" in res.output
    assert "Layers:" not in res.output and "loading layers" not in res.output  # nothing was read
    assert "Traceback" not in res.output
    assert f.read_text(encoding="utf-8") == "not a folder"


def test_out_under_a_file_exits_2_naming_the_file(tmp_path, layers_dir):
    f = tmp_path / "report.txt"
    f.write_text("x", encoding="utf-8")
    res = CliRunner().invoke(main, ["relocation", "--layers", str(layers_dir),
                                    "--out", str(f / "sub" / "out")])
    assert res.exit_code == 2, res.output
    assert f"{f} is a file, so no folder can be made under it" in res.output
    assert "loading layers" not in res.output


def test_read_only_out_exits_2_with_the_reason(tmp_path, layers_dir, monkeypatch):
    real = outputs.files.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(outputs.files.tempfile, "mkstemp", mkstemp)
    res = CliRunner().invoke(main, ["run", "--layers", str(layers_dir), "--out", str(tmp_path / "ro")])
    assert res.exit_code == 2, res.output
    assert f"--out {tmp_path / 'ro'}: cannot write into the folder (read-only filesystem)" in res.output
    assert "Layers:" not in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-555 folder anyway")
def test_folder_without_write_permission_exits_2(tmp_path, layers_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = CliRunner().invoke(main, ["relocation", "--layers", str(layers_dir), "--out", str(ro)])
    finally:
        ro.chmod(0o755)
    assert res.exit_code == 2 and "no permission to write" in res.output, res.output


def test_second_run_into_the_same_out_is_refused_clearly(tmp_path, layers_dir):
    out = tmp_path / "out"
    with outputs.output_folder(out):  # this process plays the first run, still writing
        res = subprocess.run([sys.executable, "-m", "kaizhou_gis", "relocation", "--layers",
                              str(layers_dir), "--out", str(out)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
        assert res.returncode == 2, res.stdout + res.stderr
        assert (f"another kaizhou-gis run (process {os.getpid()}) is writing into this folder"
                in res.stderr)
        assert "loading layers" not in res.stdout
        # nested use within one process (the CLI's run wraps the pipeline's) is allowed
        with outputs.output_folder(out):
            pass
        # the live run's temp files are not someone else's stale ones
        live = out / ".x.csv.123.tmp.csv"
        live.write_text("partial", encoding="utf-8")
        subprocess.run([sys.executable, "-c", "from kaizhou_gis import outputs; "
                        f"outputs.clean_stale_temp({str(out)!r})"], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert live.exists()
    # once the first run is over the folder is free again, and stale temps go
    with pytest.raises(OptionError, match="is a file"):
        outputs.check_out_dir(live)
    with outputs.output_folder(out):
        assert not live.exists()


_KILL_SCRIPT = textwrap.dedent('''
    import os, shutil, sys, time, types
    from pathlib import Path
    import pandas as pd
    from kaizhou_gis import outputs, pipeline
    from kaizhou_gis.pipeline import Context, StepResult, run_steps
    from kaizhou_gis.plan import load_plan

    out, marker, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    table = pd.DataFrame({"settlement_id": [f"S{i}" for i in range(500)], "people": range(500)})
    mod = types.ModuleType("kz_kill_steps")
    mod.alpha = lambda ctx, needs: StepResult("alpha", files={"alpha/table.csv": table})
    mod.big = lambda ctx, needs: StepResult("big", files={"big/big.md": "line\\n" * 400_000})
    sys.modules["kz_kill_steps"] = mod
    pipeline.STEPS[:] = [pipeline.Step("alpha", "kz_kill_steps:alpha", "A"),
                         pipeline.Step("big", "kz_kill_steps:big", "B")]

    def hang(where):
        marker.write_text(where, encoding="utf-8")
        time.sleep(600)

    if stage == "writer":  # half the temp file written, then the kill
        real = Path.write_text
        def write_text(self, data, *args, **kwargs):
            if "big.md" not in self.name:
                return real(self, data, *args, **kwargs)
            with open(self, "w", encoding="utf-8") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
            hang(str(self))
        Path.write_text = write_text
    else:  # "copy": the finished temp is half copied into the output folder, then the kill
        real_copy = shutil.copyfileobj
        def copyfileobj(src, dst, length=0):
            data = src.read()
            if len(data) < 1_000_000:
                dst.write(data)
                return
            dst.write(data[: len(data) // 2])
            dst.flush()
            os.fsync(dst.fileno())
            hang(str(out))
        shutil.copyfileobj = copyfileobj
    run_steps(Context(layers=None, plan=load_plan()), ["alpha", "big"], out)
''')


def _other_filesystem_out() -> Path | None:
    """A folder on a tmpfs (another filesystem than the system temp), or None."""
    for base in (Path("/dev/shm"), Path("/run/user") / str(os.getuid())):
        try:
            if base.is_dir() and os.stat(base).st_dev != os.stat(outputs.files._shared_temp().parent).st_dev:
                d = base / f"kaizhou-gis-test-{uuid.uuid4().hex[:8]}"
                d.mkdir()
                return d
        except OSError:
            continue
    return None


@pytest.mark.parametrize("stage", ["writer", "copy"])
def test_kill_9_with_out_on_another_filesystem_leaves_no_temp_file(tmp_path, stage):
    base = _other_filesystem_out()
    if base is None:
        pytest.skip("no tmpfs (/dev/shm) on another filesystem than the system temp folder")
    try:
        if stage == "copy":
            try:
                os.close(os.open(base, os.O_TMPFILE | os.O_WRONLY, 0o600))
            except OSError as e:
                pytest.skip(f"{base} does not support unnamed temp files (O_TMPFILE): {e}")
        out = base / "out"
        outputs.write_text("old complete report\n", out / "big/big.md")
        script = tmp_path / "kill_me.py"
        script.write_text(_KILL_SCRIPT, encoding="utf-8")
        marker = tmp_path / "writing"
        env = dict(os.environ, TMPDIR=str(tmp_path / "systmp"), PYTHONPATH=str(ROOT))
        (tmp_path / "systmp").mkdir()
        proc = subprocess.Popen([sys.executable, str(script), str(out), str(marker), stage],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "hung"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        # nothing in --out but the complete files and the lock file: no partial, hidden or not
        files = _all_files(out)
        assert {"alpha/table.csv", "big/big.md", ".kaizhou-gis.lock"} <= set(files)
        assert _stray_temp_files(out, files) == []
        assert (out / "big/big.md").read_text(encoding="utf-8") == "old complete report\n"
        got = pd.read_csv(out / "alpha/table.csv", encoding="utf-8-sig")
        assert len(got) == 500 and got["people"].sum() == sum(range(500))
        if stage == "writer":  # the partial temp was outside --out; the next run removes it
            partial = Path(marker.read_text(encoding="utf-8"))
            assert partial.stat().st_size > 0 and not partial.is_relative_to(out)
            subprocess.run([sys.executable, "-c", "from kaizhou_gis import outputs; "
                            f"outputs.clean_stale_temp({str(out)!r})"], env=env, check=True)
            assert not partial.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_write_into_another_filesystem_is_complete(tmp_path):
    base = _other_filesystem_out()
    if base is None:
        pytest.skip("no tmpfs (/dev/shm) on another filesystem than the system temp folder")
    try:
        table = pd.DataFrame({"a": range(1000)})
        outputs.write_csv(table, base / "t.csv")
        outputs.write_csv(table.assign(a=table["a"] * 2), base / "t.csv")  # over an old file
        assert pd.read_csv(base / "t.csv", encoding="utf-8-sig")["a"].sum() == 2 * sum(range(1000))
        assert _all_files(base) == ["t.csv"]
        assert oct((base / "t.csv").stat().st_mode & 0o777) == oct(0o666 & ~outputs.files._UMASK)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_demo_layers_out_that_is_a_file_exits_2_at_once(tmp_path):
    f = tmp_path / "layers"
    f.write_text("x", encoding="utf-8")
    res = CliRunner().invoke(main, ["demo-layers", "--out", str(f)])
    assert res.exit_code == 2 and f"--out {f}: is a file, not a folder" in res.output, res.output


def test_kill_9_of_a_real_run_into_another_filesystem_leaves_no_temp_file(tmp_path, layers_dir):
    """A real `relocation` run into a tmpfs, killed as soon as it has started writing its files:
    whatever it was writing at that moment, --out holds only complete files and the lock."""
    base = _other_filesystem_out()
    if base is None:
        pytest.skip("no tmpfs (/dev/shm) on another filesystem than the system temp folder")
    try:
        out = base / "out"
        env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "kaizhou_gis", "relocation", "--layers",
                                 str(layers_dir), "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = out / "relocation" / "settlements.gpkg"
        try:
            deadline = time.monotonic() + 300
            while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert first.exists(), "the run never wrote its first file"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        files = _all_files(out)
        assert _stray_temp_files(out, files) == []
        written = [f for f in files if f.startswith("relocation/")]
        assert "relocation/settlements.gpkg" in written
        import pyogrio
        assert len(pyogrio.read_dataframe(out / "relocation/settlements.gpkg")) == 6  # complete
    finally:
        shutil.rmtree(base, ignore_errors=True)
