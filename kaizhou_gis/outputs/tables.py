"""Tables for spreadsheets: CSV (UTF-8 with BOM, so Excel shows Chinese) and XLSX (widths,
filters, frozen header, number formats, codes as text), every text cell formula-safe
(:func:`cell_safe`)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kaizhou_gis.outputs.files import FIXED_DATE, atomic_path

#: Header styles for tables: English snake_case, Chinese labels, or both ("elevation_m 海拔(米)").
HEADER_STYLES = ("en", "zh", "both")


#: First characters that make Excel, WPS or LibreOffice read a cell as a formula (OWASP "CSV
#: injection"): a text cell starting with one of them gets a leading apostrophe.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

#: The note every table's About text carries about such cells (Chinese and English).
FORMULA_NOTE_ZH = ("以 = + - @ 或制表符/回车开头的文字单元格前加了一个撇号 '，"
                   "防止表格软件把它当作公式执行；数值（包括负数）不受影响。")
FORMULA_NOTE_EN = ("Text cells that start with =, +, -, @, a tab or a carriage return are written "
                   "with a leading apostrophe (') so that no spreadsheet runs them as a formula; "
                   "numbers, negative ones included, stay numbers.")


_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

#: The row of the 说明/About sheet (and the lines of a CSV folder's README.txt) with that note.
FORMULA_ABOUT_ROW = ("spreadsheet safety / 防公式注入", FORMULA_NOTE_ZH, FORMULA_NOTE_EN)


def cell_safe(value: Any) -> Any:
    """``value`` made safe for a spreadsheet cell: text that could start a formula gets a ``'``.

    Only text is changed; numbers (negative ones too), booleans, dates and missing values are
    returned as they are. Every CSV and XLSX cell the tool writes goes through here.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _labels(df: pd.DataFrame, header: str) -> list[str]:
    labels = df.attrs.get("labels_zh", {}) or {}
    cols = [c for c in df.columns if c != "geometry"]
    if header == "zh":
        out = [labels.get(c, c) for c in cols]
    elif header == "both":
        out = [f"{c} {labels[c]}" if c in labels else c for c in cols]
    else:
        out = cols
    return [cell_safe(str(c)) for c in out]


#: Columns that hold identifiers (codes): written as text, never as numbers (a 12-digit village
#: code shown as 5.00154E+11 or losing a leading zero is a different code).
CODE_COLUMN = re.compile(r"(^|_)(code|codes|id|ids)$")


def is_code_column(name: Any) -> bool:
    return bool(CODE_COLUMN.search(str(name)))


def _code_text(v: Any) -> Any:
    """A code as text: 500154118.0 → "500154118"; missing stays missing."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    return v if isinstance(v, str) else str(v)


def translate_values(df: pd.DataFrame, header: str) -> pd.DataFrame:
    """Categorical values in Chinese for ``header`` "zh" (中文) or "both" (中文 English).

    Booleans become 是/否 (是 yes / 否 no with "both"); columns listed in ``df.attrs["values_zh"]``
    (``{column: {value: 中文}}``) are mapped; other values stay as they are.
    """
    if header not in ("zh", "both"):
        return df
    maps = df.attrs.get("values_zh", {}) or {}
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col) or (col.dtype == object and col.map(
                lambda v: isinstance(v, (bool, np.bool_)) or v is None or v is pd.NA
                or (isinstance(v, float) and math.isnan(v))).all() and col.map(
                lambda v: isinstance(v, (bool, np.bool_))).any()):
            table = {True: "是", False: "否"} if header == "zh" else {True: "是 yes", False: "否 no"}
            out[c] = col.map(lambda v, table=table: table.get(bool(v)) if isinstance(v, (bool, np.bool_)) else v)
        elif c in maps:
            m = maps[c]
            out[c] = col.map(lambda v, m=m: (m.get(v, v) if header == "zh" else
                                              (f"{m[v]} {v}" if v in m else v))
                             if isinstance(v, str) else v)
    return out


def _plain_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table as written to CSV/XLSX: no geometry, lists joined, text cells formula-safe."""
    df = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
                or pd.api.types.is_datetime64_any_dtype(col):
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        df[c] = col.map(lambda v: cell_safe("; ".join(map(str, v)))
                        if isinstance(v, (list, tuple, set)) else cell_safe(v))
    return df


def write_csv(df: pd.DataFrame, path: str | Path, *, header: str = "en") -> Path:
    """CSV in UTF-8 with BOM (Excel opens Chinese text correctly); geometry is left out.

    With ``header`` "zh"/"both" categorical values are in Chinese too (:func:`translate_values`).
    """
    table = _plain_table(translate_values(df, header))
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8-sig", header=_labels(df, header))
    return Path(path)


def write_xlsx(df: pd.DataFrame | dict[str, pd.DataFrame], path: str | Path, *,
               header: str = "en") -> Path:
    """XLSX workbook: one sheet per table (``{sheet: df}``) or one sheet "data".

    Written with XlsxWriter row by row (``constant_memory``: one row held at a time, strings
    inline): a frozen, bold, top-aligned and wrapped header row, an autofilter over
    the table, column widths from the content, number formats by column kind
    (:data:`NUMBER_FORMATS`), codes as text cells. Text goes in as text only (no formula, number
    or URL is ever made of a string) and every text cell is :func:`cell_safe`. Missing values are
    empty cells; infinities are written as text ("inf", "'-inf"), as pandas writes them.
    """
    import datetime as dt

    import xlsxwriter

    sheets = df if isinstance(df, dict) else {"data": df}
    with atomic_path(path) as tmp:
        wb = xlsxwriter.Workbook(str(tmp), {"constant_memory": True, "strings_to_formulas": False,
                                            "strings_to_numbers": False, "strings_to_urls": False})
        wb.set_properties({"created": dt.datetime.strptime(FIXED_DATE, "%Y-%m-%dT%H:%M:%SZ")})
        head = wb.add_format({"bold": True, "valign": "top", "text_wrap": True})
        formats = {k: wb.add_format({"num_format": f}) for k, f in NUMBER_FORMATS.items()}
        formats["datetime"] = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        formats["date"] = wb.add_format({"num_format": "yyyy-mm-dd"})
        for name, table in sheets.items():
            plain = _plain_table(translate_values(table, header))
            for c in list(plain.columns):
                if is_code_column(c):
                    plain[c] = plain[c].map(_code_text).astype(object)
            kinds = [_column_kind(plain[c], c) for c in plain.columns]
            plain.columns = _labels(table, header)
            ws = wb.add_worksheet(str(name)[:31])
            _write_sheet(ws, plain, kinds, head, formats)
        wb.close()
    return Path(path)


def _write_sheet(ws, plain: pd.DataFrame, kinds: list[str], head, formats: dict) -> None:
    """One sheet: widths, frozen header, autofilter, then the cells row by row."""
    import datetime as dt

    n_rows, n_cols = len(plain), len(plain.columns)
    sample = plain.head(2000)
    for j, label in enumerate(plain.columns):
        width = max([_display_width(label) + 3] + [_display_width(v) for v in sample.iloc[:, j].tolist()])
        # XlsxWriter stores a width of w pixels as w / 7 characters (Calibri 11's digit)
        ws.set_column_pixels(j, j, 7 * min(max(width + 2, 8), 60))
    ws.freeze_panes(1, 0)
    if n_cols:
        ws.autofilter(0, 0, max(n_rows, 0), n_cols - 1)
    for j, label in enumerate(plain.columns):
        ws.write_string(0, j, cell_safe(str(label)), head)
    fmts = [formats.get(k) for k in kinds]
    columns = [plain.iloc[:, j].tolist() for j in range(n_cols)]
    number, string, blank, boolean = ws.write_number, ws.write_string, ws.write_blank, ws.write_boolean
    for i in range(n_rows):
        r = i + 1
        for j in range(n_cols):
            v, f = columns[j][i], fmts[j]
            t = type(v)
            if t is str:
                string(r, j, cell_safe(v), f) if v else blank(r, j, None, f)
            elif t is float or t is int:
                if v != v:
                    blank(r, j, None, f)
                elif t is float and math.isinf(v):
                    string(r, j, cell_safe("inf" if v > 0 else "-inf"), f)
                else:
                    number(r, j, v, f)
            elif t is bool or isinstance(v, np.bool_):
                boolean(r, j, bool(v), f)
            elif v is None or v is pd.NA or v is pd.NaT:
                blank(r, j, None, f)
            elif isinstance(v, (np.integer, np.floating)):
                fv = float(v)
                if fv != fv:
                    blank(r, j, None, f)
                elif math.isinf(fv):
                    string(r, j, cell_safe("inf" if fv > 0 else "-inf"), f)
                else:
                    number(r, j, int(v) if isinstance(v, np.integer) else fv, f)
            elif isinstance(v, dt.datetime):
                ws.write_datetime(r, j, v.replace(tzinfo=None), formats["datetime"])
            elif isinstance(v, dt.date):
                ws.write_datetime(r, j, v, formats["date"])
            else:
                string(r, j, cell_safe(str(v)), f)


#: Number formats by column kind (Excel codes): codes and text as text, years without a
#: thousands separator, counts with one, decimals with up to two places.
NUMBER_FORMATS = {"code": "@", "year": "0", "int": "#,##0", "float": "#,##0.0#", "pct": "0.0"}


def _column_kind(col: pd.Series, name: Any) -> str:
    n = str(name)
    if is_code_column(n):
        return "code"
    if pd.api.types.is_bool_dtype(col):
        return "text"
    if pd.api.types.is_numeric_dtype(col):
        if n == "year" or n.endswith("_year") or n.startswith("year_"):
            return "year"
        if n.endswith("_pct"):
            return "pct"
        if pd.api.types.is_integer_dtype(col):
            return "int"
        vals = col.dropna()
        return "int" if len(vals) and (vals == vals.round()).all() and n.endswith(
            ("households", "population", "people", "settlements")) else "float"
    return "text"


def _display_width(v: Any) -> int:
    """Columns a value needs: Chinese (wide) characters count twice."""
    import unicodedata

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return 0
    if isinstance(v, float):
        v = f"{v:,.2f}"
    elif isinstance(v, (int, np.integer)):
        v = f"{v:,}"
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(v))
