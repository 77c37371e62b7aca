"""Display text of report values and the HTML/Markdown table cells (escaped: no injected markup runs)."""
from __future__ import annotations

import html
import math
import re
from typing import Any

_SCHEME = re.compile(r"\bhttps?://", re.I)


def _txt(v: Any) -> str:
    """Display text of a value (numbers formatted; URLs shown without the scheme)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) < 10:
            return f"{v:.4g}"
        return f"{v:.2f}".rstrip("0").rstrip(".")
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_txt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_txt(x) for x in v)
    return _SCHEME.sub("", str(v))


_YEAR_KEY = re.compile(r"year|period", re.I)


def _years_plain(key: str, value: Any) -> Any:
    """Years print as plain integers (2015, not 2,015): integer values of a setting about years
    become text; other values are left to :func:`_txt`."""
    if not _YEAR_KEY.search(str(key)):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return [_years_plain(key, v) for v in value]
    return value


def _h(v: Any) -> str:
    return html.escape(_txt(v))


def _md(v: Any) -> str:
    """Markdown cell/line text: ``|`` cannot split a table, ``<``/``>`` cannot open inline HTML."""
    return (_txt(v).replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def _table_html(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)  # headers are our own (escaped on build)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_h(c)}</td>' if isinstance(c, (int, float)) and not isinstance(c, bool)
        else f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _table_md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
