"""Excel that opens right: candidates.xlsx read back with openpyxl (codes as text, autofilter,
frozen header, widths, number formats), Chinese values with --header zh, names next to ids,
schedule status beyond the quotas."""
from __future__ import annotations

import re

import openpyxl
import pandas as pd
import pytest
from test_relocation import fake_access, layers  # noqa: F401,E402  (fixture; tests/ is on sys.path)

from kaizhou_gis import outputs
from kaizhou_gis.pipeline import Context
from kaizhou_gis.plan import load_plan


@pytest.fixture
def res(layers):  # noqa: F811
    ctx = Context(layers=layers, plan=load_plan(), options={})
    ctx.results["access"] = fake_access(layers)
    return ctx.result("relocation")


def _sheet(path, name):
    wb = openpyxl.load_workbook(path)
    ws = wb[name]
    header = [c.value for c in ws[1]]
    return ws, header


def test_candidates_xlsx_codes_filter_widths_formats(res, tmp_path):
    outputs.write_products(tmp_path, {"relocation/candidates.xlsx": res.files["relocation/candidates.xlsx"]})
    path = tmp_path / "relocation" / "candidates.xlsx"
    ws, header = _sheet(path, "candidates")
    cand = res.files["relocation/candidates.xlsx"]["candidates"]
    assert ws.max_row == len(cand) + 1 and len(cand) >= 2
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}{len(cand) + 1}"
    for j, name in enumerate(header, start=1):
        letter = openpyxl.utils.get_column_letter(j)
        width = ws.column_dimensions[letter].width
        assert 8 <= width <= 60, (name, width)
    # the width follows the content: the reasons column is wider than the households column
    wid = {h: ws.column_dimensions[openpyxl.utils.get_column_letter(j)].width for j, h in enumerate(header, 1)}
    assert wid["reasons_en"] > wid["households"]
    for code_col, digits in (("village_code", 12), ("township_code", 9), ("settlement_id", None)):
        j = header.index(code_col) + 1
        for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
            assert cell.data_type == "s" and isinstance(cell.value, str) and cell.number_format == "@"
            if digits:
                assert re.fullmatch(rf"\d{{{digits}}}", cell.value)
    j = header.index("households") + 1
    assert all(c.number_format == "#,##0" and isinstance(c.value, int)
               for (c,) in ws.iter_rows(min_row=2, min_col=j, max_col=j))
    j = header.index("schedule_year") + 1
    assert all(c.number_format == "0" for (c,) in ws.iter_rows(min_row=2, min_col=j, max_col=j))
    # schedule status for every candidate: a year, or beyond the quotas
    j = header.index("schedule_status") + 1
    last = max(int(y) for y in load_plan()["relocation.yearly_people"])
    years = [c.value for (c,) in ws.iter_rows(min_row=2, min_col=header.index("schedule_year") + 1,
                                              max_col=header.index("schedule_year") + 1)]
    for (c,), y in zip(ws.iter_rows(min_row=2, min_col=j, max_col=j), years):
        assert c.value == (str(y) if y is not None else f"after {last} / beyond the quotas")


def test_header_zh_translates_values(res, tmp_path):
    table = res.files["relocation/candidates.xlsx"]
    outputs.write_products(tmp_path, {"relocation/candidates.xlsx": table,
                                       "relocation/candidates.csv": res.files["relocation/candidates.csv"]},
                           header="zh")
    ws, header = _sheet(tmp_path / "relocation" / "candidates.xlsx", "candidates")
    cand = table["candidates"]
    col = {h: [c.value for (c,) in ws.iter_rows(min_row=2, min_col=j, max_col=j)]
           for j, h in enumerate(header, start=1)}
    # a candidate is a whole settlement (拟整体搬迁自然村); 搬迁对象 are its registered poor people
    assert "认定依据" in header and "拟整体搬迁自然村" in header and "海拔超过阈值" in header
    assert "建档立卡贫困人口(搬迁对象)" in header and "同步搬迁人口(其他居民)" in header
    basis_zh = {"elevation": "海拔", "terrain_remote": "地形偏远", "elevation+terrain_remote": "海拔+地形偏远"}
    assert col["认定依据"] == [basis_zh[v] for v in cand["candidate_basis"]]
    assert col["海拔超过阈值"] == ["是" if v else "否" for v in cand["above_threshold"]]
    assert col["状态"] == ["拟整体搬迁"] * len(cand)
    left = {h for h, vals in col.items() for v in vals if isinstance(v, bool) or v in ("True", "False")}
    assert not left
    csv = pd.read_csv(tmp_path / "relocation" / "candidates.csv", encoding="utf-8-sig", dtype=str)
    assert list(csv["认定依据"]) == col["认定依据"]
    both = tmp_path / "both"
    outputs.write_products(both, {"c.xlsx": table}, header="both")
    ws, header = _sheet(both / "c.xlsx", "candidates")
    j = header.index("candidate_basis 认定依据") + 1
    assert [c.value for (c,) in ws.iter_rows(min_row=2, min_col=j, max_col=j)] == \
        [f"{basis_zh[v]} {v}" for v in cand["candidate_basis"]]


def test_names_next_to_ids(res):
    s = res.data.settlements.set_index("settlement_id")
    for key in ("assignment", "unassigned"):
        t = getattr(res.data, key)
        if "settlement_id" in t and len(t):
            assert list(t["settlement_name"]) == [s.loc[i, "name"] for i in t["settlement_id"]]
            assert t["township_name"].notna().all()
    a = res.data.assignment
    assert len(a) and a["site_name"].notna().all()
    assert list(res.files["relocation/unassigned.csv"].columns[:3]) == \
        ["settlement_id", "settlement_name", "village_code"] \
        or len(res.data.unassigned) == 0



def test_village_rollup_has_township_names(res, layers):  # noqa: F811
    v = res.data.villages
    names = dict(zip(layers.townships["township_code"].astype(str), layers.townships["name"]))
    assert list(v["township_name"]) == [names[c] for c in v["township_code"]]
