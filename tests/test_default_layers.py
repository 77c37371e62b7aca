"""Default layers (no --layers): found next to the package (source checkout, editable install)
or in ./layers (the repository root after a non-editable install); elsewhere a clear error that
names --layers and the expected files, exit code 2, no traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kaizhou_gis.errors import LayerError
from kaizhou_gis.layers import DEFAULT_LAYERS_DIR, default_layers_dir

ROOT = Path(__file__).resolve().parents[1]


def _layers(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for n in names:
        (folder / n).write_bytes(b"")
    return folder


def test_source_checkout_uses_the_layers_next_to_the_package(tmp_path):
    repo = _layers(tmp_path / "repo" / "layers", "kaizhou.gpkg", "dem.tif").parent
    other = _layers(tmp_path / "elsewhere" / "layers", "roads.shp").parent
    assert default_layers_dir(package_dir=repo / "kaizhou_gis", cwd=other) == repo / "layers"
    assert default_layers_dir() == DEFAULT_LAYERS_DIR  # this checkout


def test_installed_package_uses_layers_of_the_current_folder(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    (site / "kaizhou_gis").mkdir(parents=True)  # no layers/ next to an installed package
    repo = _layers(tmp_path / "repo" / "layers", "kaizhou.gpkg", "dem.tif").parent
    assert default_layers_dir(package_dir=site / "kaizhou_gis", cwd=repo) == repo / "layers"
    per_layer = _layers(tmp_path / "mine" / "layers", "villages.geojson").parent
    assert default_layers_dir(package_dir=site / "kaizhou_gis", cwd=per_layer) == per_layer / "layers"


def test_no_layers_anywhere_names_layers_option_and_files(tmp_path):
    site = tmp_path / "site-packages"
    (site / "kaizhou_gis").mkdir(parents=True)
    _layers(tmp_path / "empty" / "layers", "README.md")  # a layers/ folder without layers
    with pytest.raises(LayerError) as e:
        default_layers_dir(package_dir=site / "kaizhou_gis", cwd=tmp_path / "empty")
    msg = str(e.value)
    for part in ("--layers", "kaizhou.gpkg", "dem.tif", str(site / "layers"),
                 str((tmp_path / "empty" / "layers").resolve()), "repository root"):
        assert part in msg, part


@pytest.mark.skipif(not (DEFAULT_LAYERS_DIR / "kaizhou.gpkg").exists(), reason="no shipped layers")
def test_installed_copy_of_the_package_finds_the_layers_from_the_repository_root(tmp_path):
    """What a non-editable ``pip install .`` leaves: the package in site-packages, no layers next
    to it. ``kaizhou-gis validate`` from the repository root uses ./layers; from another folder it
    fails with exit code 2 and the message, without a traceback."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "kaizhou_gis", site / "kaizhou_gis",
                    ignore=shutil.ignore_patterns("__pycache__"))
    launcher = tmp_path / "bin" / "kaizhou-gis"  # like the console script pip writes
    launcher.parent.mkdir()
    launcher.write_text(textwrap.dedent(f"""
        import sys
        import kaizhou_gis
        assert kaizhou_gis.__file__.startswith({str(site)!r}), kaizhou_gis.__file__
        from kaizhou_gis.cli import main
        sys.exit(main())
    """))
    env = dict(os.environ, PYTHONPATH=str(site))

    def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(launcher), *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)

    ok = cli(ROOT, "validate")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"Layers: {ROOT / 'layers'}" in ok.stdout and "OK: layers and plan" in ok.stdout
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    bad = cli(elsewhere, "run", "--out", str(tmp_path / "out"))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    for part in ("--layers", "kaizhou.gpkg", "dem.tif", str((elsewhere / "layers").resolve())):
        assert part in bad.stderr, part
    out = tmp_path / "out"  # nothing written but the run lock of the output folder
    assert not out.exists() or [p.name for p in out.iterdir()] in ([], [".kaizhou-gis.lock"])
