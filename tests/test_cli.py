"""CLI: version, error mapping to exit code 2 without traceback, township resolution."""
from __future__ import annotations

import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from kaizhou_gis import __version__
from kaizhou_gis.cli import main
from kaizhou_gis.errors import OptionError
from kaizhou_gis.pipeline import resolve_township


def test_version():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_bad_plan_file_exits_2_with_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta\nname = 1\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["validate", "--plan", str(bad)])
    assert r.exit_code == 2
    assert "not valid TOML" in r.output and "Traceback" not in r.output


def test_missing_plan_file_exits_2(tmp_path):
    r = CliRunner().invoke(main, ["run", "--plan", str(tmp_path / "nope.toml"), "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "does not exist" in r.output


@pytest.fixture()
def layers_with_townships():
    class L:
        townships = gpd.GeoDataFrame(
            {"township_code": ["500154118", "500154119", "500154201"],
             "name": ["大进镇", "谭家镇", "满月乡"]},
            geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 0, 3, 1)], crs="EPSG:4545")
    return L()


@pytest.mark.parametrize("text, code", [("大进镇", "500154118"), ("大进", "500154118"),
                                        ("500154119", "500154119"), ("500154201000", "500154201"),
                                        ("满月", "500154201"), (None, None)])
def test_resolve_township(layers_with_townships, text, code):
    assert resolve_township(layers_with_townships, text) == code


def test_unknown_township_lists_the_choices(layers_with_townships):
    with pytest.raises(OptionError) as e:
        resolve_township(layers_with_townships, "火星镇")
    assert "火星镇" in str(e.value) and "大进镇 (500154118)" in str(e.value)


def test_tianditu_basemap_without_key_exits_2_before_any_work(tmp_path):
    r = CliRunner().invoke(main, ["maps", "--basemap", "tianditu", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "--tianditu-key" in r.output and "Traceback" not in r.output
    assert not any(tmp_path.iterdir())
