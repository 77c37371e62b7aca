"""Every output kind says when the input is synthesized (Chinese and English), and says nothing of
the kind when the input is real: report.html/.md banner, HTML map title boxes, PNG title blocks,
the console, data_status in every JSON, a 说明/About sheet in every XLSX, README.txt beside CSVs.

Two full runs of the CLI on the tiny layer set of ``tests/layerset.py``: once as it is (one
village row says ``synthetic``) and once with every source real.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from layerset import layer_frames, real_frames, write_layerset

from kaizhou_gis import outputs, provenance
from kaizhou_gis.cli import main

ZH, EN = provenance.MARK_ZH, provenance.MARK_EN


def _run(tmp: Path, frames) -> tuple[Path, str]:
    layers = write_layerset(tmp / "layers", frames)
    out = tmp / "out"
    res = CliRunner().invoke(main, ["run", "--layers", str(layers), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("synthetic"), layer_frames())


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("real"), real_frames())


def _files(out: Path, suffix: str) -> list[Path]:
    return sorted(p for p in out.rglob(f"*{suffix}") if not p.name.startswith("."))


def _red_pixels_in_title_block(png: Path) -> int:
    from PIL import Image

    im = np.asarray(Image.open(png).convert("RGB")).astype(int)
    top = im[: int(im.shape[0] * 0.03)]  # the top of the title block (banner line, title)
    r, g, b = top[..., 0], top[..., 1], top[..., 2]
    return int(((r > 120) & (g < 80) & (b < 80)).sum())


def test_synthetic_run_labels_every_output_kind(synthetic_run):
    out, console = synthetic_run
    # console summary: banner in both languages
    assert ZH in console and EN in console
    # report: banner at the top of report.html (before the title) and report.md (first line)
    page = (out / "report.html").read_text(encoding="utf-8")
    body = page.split("<body>", 1)[1]
    assert body.index(ZH) < body.index("<h1>") and EN in body[: body.index("<h1>")]
    md = (out / "report.md").read_text(encoding="utf-8").splitlines()
    assert ZH in md[0] and EN in md[1]
    # every HTML map: the banner sits inside the title box
    maps = _files(out / "maps", ".html")
    assert len(maps) >= 5
    for m in maps:
        text = m.read_text(encoding="utf-8")
        box = text[text.index('id="kz-title"'):]
        box = box[: box.index("</div></div>") + 12]
        assert ZH in box and EN in box, m
    # every PNG map: red banner lines in the title block
    pngs = _files(out / "maps", ".png")
    assert pngs and all(_red_pixels_in_title_block(p) > 200 for p in pngs)
    # every JSON: data_status
    jsons = _files(out, ".json")
    assert {p.name for p in jsons} >= {"report.json", "summary.json", "scorecard.json"}
    for p in jsons:
        st = json.loads(p.read_text(encoding="utf-8"))["data_status"]
        assert st["synthetic"] is True and st["synthetic_layers"] == ["villages"], p
        assert ZH in st["label_zh"] and EN in st["label_en"]
    # every XLSX: a 说明/About sheet with the label
    xlsx = _files(out, ".xlsx")
    assert xlsx
    for p in xlsx:
        about = pd.read_excel(p, sheet_name=outputs.ABOUT_SHEET).to_string()
        assert ZH in about and EN in about, p
    # every folder with CSV files: README.txt with the label and the folder's tables
    folders = {p.parent for p in _files(out, ".csv")}
    assert {f.name for f in folders} >= {"relocation", "access", "industry"}
    for f in folders:
        text = (f / "README.txt").read_text(encoding="utf-8")
        assert ZH in text and EN in text
        assert all(c.name in text for c in f.glob("*.csv"))


def test_real_run_carries_no_synthetic_label(real_run, synthetic_run):
    out, console = real_run
    assert ZH not in console and EN not in console
    for p in _files(out, ".html") + _files(out, ".md") + _files(out, ".txt"):
        text = p.read_text(encoding="utf-8")
        assert ZH not in text and EN not in text, p
    for p in _files(out, ".json"):
        st = json.loads(p.read_text(encoding="utf-8"))["data_status"]
        assert st["synthetic"] is False and st["label_zh"] == "" and st["label_en"] == ""
    for p in _files(out, ".xlsx"):
        about = pd.read_excel(p, sheet_name=outputs.ABOUT_SHEET).to_string()
        assert provenance.REAL_ZH in about and ZH not in about
    # the PNG title block has no banner (its red pixels come from the banner only)
    pngs = _files(out / "maps", ".png")
    assert pngs and all(_red_pixels_in_title_block(p) < 50 for p in pngs)
    # both runs wrote the same kinds of output
    syn_out, _ = synthetic_run
    kinds = lambda o: sorted({p.suffix for p in o.rglob("*") if p.is_file()})  # noqa: E731
    assert kinds(out) == kinds(syn_out)


def test_report_marks_calibrated_and_planned_figures(synthetic_run, real_run):
    syn = (synthetic_run[0] / "report.md").read_text(encoding="utf-8")
    real = (real_run[0] / "report.md").read_text(encoding="utf-8")
    # villages are synthesized in the first run: the poverty-village count is calibrated
    assert provenance.CALIBRATED_EN in syn and provenance.CALIBRATED_EN not in real
    for text in (syn, real):
        assert provenance.PLANNED_ZH in text and provenance.PLANNED_EN in text
        assert "建档立卡贫困人口" in text and "同步搬迁" in text
    rep = json.loads((synthetic_run[0] / "report.json").read_text(encoding="utf-8"))
    assert rep["calibrated"]["poverty_villages"] is True
    assert rep["calibrated"]["village_tongchang_before"] is False  # roads are real ("test")
