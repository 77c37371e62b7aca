"""Detection of synthesized input and the data-status labels every output carries."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import rasterio
from layerset import real_frames, write_layerset

from kaizhou_gis import outputs, provenance
from kaizhou_gis.layers import load_layers
from kaizhou_gis.plan import load_plan


@pytest.mark.parametrize("text, expected", [
    ("synthetic", True),
    ("synthetic (location, name, households, population)", True),
    ("NBS 2023 (code, name); location, households, population: synthetic", True),
    ("Synthesized by the district office", True),
    ("synthesised", True),
    ("合成数据", True),
    ("模拟", True),
    ("NBS 2023 (code, name)", False),
    ("GeoNames 1808950 (Hanfeng), CC BY 4.0", False),
    ("", False),
    (None, False),
    (float("nan"), False),
])
def test_is_synthetic_text(text, expected):
    assert provenance.is_synthetic_text(text) is expected


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def test_real_layer_set_has_no_label(tmp_path, plan):
    layers = load_layers(write_layerset(tmp_path / "real", real_frames()), plan=plan)
    st = provenance.data_status(layers)
    assert st["synthetic"] is False
    assert st["synthetic_layers"] == [] and st["label_zh"] == "" and st["label_en"] == ""
    assert provenance.banner_text(st) == "" and provenance.banner_html(st) == ""
    text = provenance.readme_text(st, ["a.csv"])
    assert provenance.MARK_ZH not in text and provenance.MARK_EN not in text
    assert provenance.MARK_ZH not in provenance.about_table(st).to_string()


def test_source_column_marks_layer(tmp_path, plan):
    frames = real_frames()
    frames["roads"].loc[frames["roads"]["road_id"] == "R4", "source"] = "synthetic (routed)"
    layers = load_layers(write_layerset(tmp_path / "one", frames), plan=plan)
    st = provenance.data_status(layers)
    assert st["synthetic"] is True and st["synthetic_layers"] == ["roads"]
    assert st["layers"]["roads"]["rows"] == 1 and st["layers"]["roads"]["of"] == 5
    assert "道路" in st["label_zh"] and "合成" in st["label_zh"]
    assert "roads" in st["label_en"] and "SYNTHETIC" in st["label_en"]


def test_gpkg_layer_metadata_and_dem_tag_mark_layers(tmp_path, plan):
    folder = write_layerset(tmp_path / "meta", real_frames())
    # settlements declared synthetic by GeoPackage layer metadata, not by a column
    s = real_frames()["settlements"].drop(columns="source")
    s.to_file(folder / "kaizhou.gpkg", layer="settlements", driver="GPKG", engine="pyogrio",
              layer_metadata={"source": "synthesized for training"})
    with rasterio.open(folder / "dem.tif", "r+") as ds:
        ds.update_tags(source="synthetic DEM")
    layers = load_layers(folder, plan=plan)
    st = provenance.data_status(layers)
    assert st["synthetic_layers"] == ["settlements", "dem"]
    assert st["layers"]["settlements"]["rows"] == 6


def test_write_products_adds_status(tmp_path):
    st = {"synthetic": True, "synthetic_layers": ["roads"],
          "layers": {"roads": {"rows": 1, "of": 2, "sources": ["synthetic"]}},
          "estimated": [], "label_zh": "合成数据：测试", "label_en": "SYNTHETIC DATA: test",
          "short_zh": "合成", "short_en": "synthetic"}
    df = pd.DataFrame({"a": [1, 2]})
    outputs.write_products(tmp_path, {"x/t.csv": df, "x/t.xlsx": {"rows": df}, "x/s.json": {"n": 2},
                                      "y/u.csv": df}, status=st)
    assert json.loads((tmp_path / "x/s.json").read_text())["data_status"]["synthetic"] is True
    sheets = pd.read_excel(tmp_path / "x/t.xlsx", sheet_name=None)
    assert list(sheets) == ["rows", outputs.ABOUT_SHEET]
    assert "合成数据：测试" in sheets[outputs.ABOUT_SHEET].to_string()
    for f in ("x", "y"):
        text = (tmp_path / f / "README.txt").read_text(encoding="utf-8")
        assert "合成数据：测试" in text and "SYNTHETIC DATA: test" in text
    assert "t.csv" in (tmp_path / "x/README.txt").read_text(encoding="utf-8")
