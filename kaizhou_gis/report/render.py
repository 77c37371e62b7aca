"""The report as one self-contained HTML page and as Markdown, from the blocks of :mod:`.blocks`."""
from __future__ import annotations

import base64
import html

import pandas as pd

from kaizhou_gis import provenance
from kaizhou_gis.report.blocks import _sections
from kaizhou_gis.report.text import _h, _md, _table_html, _table_md

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.5em;border-bottom:2px solid #a33;padding-bottom:.3em}
h2{font-size:1.15em;margin-top:1.8em;color:#a33}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em;width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;word-break:normal;
overflow-wrap:normal;hyphens:none}
th{background:#f3ecec;text-align:left}
td.n{white-space:nowrap;text-align:right}
.tw{overflow-x:auto;margin:.6em 0}
.tw table{margin:0;width:auto;min-width:100%}
table.wide{font-size:.78em}
td:nth-child(n+2){font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.6em 0}
.caption{font-size:.85em;color:#555}
.note{font-size:.9em;color:#444}
"""


def render_html(report: dict, tw: pd.DataFrame, charts: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page (charts inline; nothing loaded from outside)."""
    title = html.escape(f"{report['title']} — 规划指标评估 / plan scorecard")
    parts = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{title}</title><style>{_CSS}</style></head><body>",
             provenance.banner_html(report.get("data_status")),
             f"<h1>{title}</h1>"]
    for heading, kind, content in _sections(report, tw):
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if kind == "table":
            header, rows = content
            # a table wider than the page scrolls sideways instead of breaking words
            parts.append('<div class="tw">' + _table_html([html.escape(h) for h in header], rows,
                                                          "wide" if len(header) > 9 else "") + "</div>")
        elif kind == "text":
            parts.append("<div class='note'>" + "".join(f"<p>{_h(x)}</p>" for x in content)
                         + "</div>")
        elif kind == "chart" and content[0] in charts:
            b64 = base64.b64encode(charts[content[0]]).decode("ascii")
            parts.append(f'<img alt="{html.escape(content[1])}" src="data:image/png;base64,{b64}">'
                         f'<div class="caption">{html.escape(content[1])}</div>')
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(report: dict, tw: pd.DataFrame, charts: dict[str, bytes],
                    chart_dir: str = "report_files") -> str:
    """The report as Markdown (charts referenced as PNG files under ``chart_dir``)."""
    banner = provenance.banner_text(report.get("data_status"))
    lines = ([f"> **{_md(x)}**" for x in banner.splitlines()] + [""] if banner else [])
    lines += [f"# {_md(report['title'])} — 规划指标评估 / plan scorecard", ""]
    for heading, kind, content in _sections(report, tw):
        if heading:
            lines += [f"## {_md(heading)}", ""]
        if kind == "table":
            lines += [_table_md(content[0], content[1]), ""]
        elif kind == "text":
            lines += [f"- {_md(x)}" for x in content] + [""]
        elif kind == "chart" and content[0] in charts:
            lines += [f"![{content[1]}]({chart_dir}/{content[0]}.png)", ""]
    return "\n".join(lines)
