"""No CSV or XLSX cell the tool writes can start a formula (OWASP CSV injection)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from kaizhou_gis import outputs
from kaizhou_gis.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import layerset  # noqa: E402

sys.path.pop(0)

INJECTED = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1"]


def _plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dangerous(text: str) -> bool:
    return text.startswith(outputs.FORMULA_TRIGGERS) and not _plain_number(text)


def scan_tables(out: Path) -> tuple[list[str], int]:
    """Every cell of every CSV/XLSX under ``out`` that could start a formula; and the cell count."""
    bad, cells = [], 0
    for p in sorted(out.rglob("*.csv")):
        with open(p, encoding="utf-8-sig", newline="") as f:
            for i, row in enumerate(csv.reader(f)):
                for j, v in enumerate(row):
                    cells += 1
                    if _dangerous(v):
                        bad.append(f"{p.relative_to(out)} row {i} col {j}: {v!r}")
    for p in sorted(out.rglob("*.xlsx")):
        wb = openpyxl.load_workbook(p)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    cells += 1
                    if c.data_type == "f" or (isinstance(c.value, str) and _dangerous(c.value)):
                        bad.append(f"{p.relative_to(out)}[{ws.title}]{c.coordinate}: {c.value!r}")
    return bad, cells


def test_cell_safe_rule():
    assert outputs.cell_safe('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    for t in ("+1+1", "-x", "@A1", "\tx", "\rx", "-1-1"):
        assert outputs.cell_safe(t) == "'" + t
    # numbers (negative ones too) and harmless text stay as they are
    for v in (-3, -2.5, 0, None, "汉丰街道", "a=b", "-12.5", "+86", "'=x"):
        assert outputs.cell_safe(v) == v


def test_tables_keep_numbers_and_neutralise_text(tmp_path):
    df = pd.DataFrame({"name": ["=1+1", "-村", "ok"], "dz": [-12.5, 3.0, -1.0],
                       "n": [-3, 4, 5], "tags": [["@x", "y"], None, ["a"]]})
    df.attrs["labels_zh"] = {"name": "=名称"}
    outputs.write_csv(df, tmp_path / "t.csv", header="zh")
    outputs.write_xlsx({"t": df}, tmp_path / "t.xlsx", header="zh")
    back = pd.read_csv(tmp_path / "t.csv", encoding="utf-8-sig")
    assert list(back.columns)[0] == "'=名称"
    assert back.iloc[:, 0].tolist() == ["'=1+1", "'-村", "ok"]
    assert back["dz"].tolist() == [-12.5, 3.0, -1.0] and back["n"].tolist() == [-3, 4, 5]
    assert back["tags"].tolist()[0] == "'@x; y"
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["t"]
    assert ws["A2"].value == "'=1+1" and ws["A2"].data_type == "s"
    assert ws["B2"].value == -12.5 and ws["B2"].data_type == "n"
    assert ws["C2"].value == -3 and ws["C2"].data_type == "n"
    assert scan_tables(tmp_path)[0] == []


def test_a_formula_text_that_skipped_the_table_preparation_is_made_a_string(tmp_path, monkeypatch):
    # the XLSX writer itself makes every text cell safe, whatever prepared the table
    from kaizhou_gis.outputs import tables

    monkeypatch.setattr(tables, "_plain_table", lambda df: pd.DataFrame(df))
    outputs.write_xlsx({"about": pd.DataFrame({"a": ["=1+1", "+A2", "@x", "-2"]})}, tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["about"]
    assert [c.value for c in ws["A"][1:]] == ["'=1+1", "'+A2", "'@x", "-2"]
    assert all(c.data_type == "s" for c in ws["A"][1:])


@pytest.mark.slow
def test_no_cell_of_a_whole_run_can_start_a_formula(tmp_path):
    frames = layerset.layer_frames()
    frames["villages"]["name"] = [INJECTED[0], INJECTED[1], INJECTED[3]]
    frames["settlements"]["name"] = INJECTED
    frames["townships"]["name"] = ["-2+3镇", "@大进镇"]
    frames["townships"]["kind"] = ["街道", "镇"]
    frames["township_seats"]["name"] = ["=A1", "+A2"]
    layers = layerset.write_layerset(tmp_path / "layers", frames)
    out = tmp_path / "out"
    # every step's tables; not the print sheets (PDF/PNG: no cells), the costliest part of a run
    res = CliRunner().invoke(main, ["run", "--layers", str(layers), "--out", str(out),
                                    "--header", "both", "--no-prints"])
    assert res.exit_code == 0, res.output
    tables = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                    if p.suffix in (".csv", ".xlsx"))
    assert "relocation/candidates.xlsx" in tables and "access/settlements.csv" in tables
    bad, cells = scan_tables(out)
    assert cells > 1000
    assert bad == []
    # every workbook's About sheet and every CSV folder's README.txt say why cells may start with '
    for p in out.rglob("*.xlsx"):
        about = openpyxl.load_workbook(p)[outputs.ABOUT_SHEET]
        assert outputs.FORMULA_NOTE_EN in [c.value for row in about.iter_rows() for c in row], p
    for p in {q.parent for q in out.rglob("*.csv")}:
        assert outputs.FORMULA_NOTE_ZH in (p / "README.txt").read_text(encoding="utf-8"), p
    # the names are kept, only prefixed
    settlements = pd.read_csv(out / "access/settlements.csv", encoding="utf-8-sig", dtype=str)
    name_col = next(c for c in settlements.columns if c.startswith("name"))
    assert "'" + INJECTED[0] in set(settlements[name_col])
