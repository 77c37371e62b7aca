"""Writing the roll-up files: CSV, XLSX, JSON, a sortable HTML table with bar charts and a map of the districts."""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kaizhou_gis.batch.rollup import ROLLUP_COLUMNS, rollup_frame

#: Files of the batch itself in --out (not a district's).
ROLLUP_FILES = ("rollup.csv", "rollup.xlsx", "rollup.json", "rollup.html", "rollup_map.html")


def write_rollup(rows: list[dict], outlines: dict, out_root: Path) -> list[Path]:
    from kaizhou_gis import outputs

    df = rollup_frame(rows)
    paths = [outputs.write_csv(df, out_root / "rollup.csv", header="both"),
             outputs.write_xlsx({"rollup": df}, out_root / "rollup.xlsx", header="both"),
             outputs.write_json({"districts": df.astype(object).where(df.notna(), None)
                                 .to_dict("records"),
                                 "labels_zh": ROLLUP_COLUMNS}, out_root / "rollup.json"),
             outputs.write_text(rollup_html(df), out_root / "rollup.html"),
             outputs.write_text(rollup_map_html(df, outlines), out_root / "rollup_map.html")]
    return paths


def _h(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return html.escape(f"{v:,.2f}".rstrip("0").rstrip("."))
    if isinstance(v, int) and not isinstance(v, bool):
        return html.escape(f"{v:,}")
    return html.escape(str(v))


_TABLE_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, i) {
  th.addEventListener('click', function () {
    var tb = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(tb.rows);
    var asc = th.getAttribute('data-dir') !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(function (o) { o.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[i].getAttribute('data-v'), y = b.cells[i].getAttribute('data-v');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y), 'zh');
      return asc ? c : -c;
    });
    rows.forEach(function (r) { tb.appendChild(r); });
  });
});
"""


_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}th[data-dir=asc]:after{content:" ▲"}
th[data-dir=desc]:after{content:" ▼"}td.n{text-align:right}tr.failed td{background:#fde0dd}
.note{color:#555;font-size:13px}.chart{margin:1em 0}
"""


def _bar_chart(df: pd.DataFrame, col: str, title: str, unit: str) -> str:
    """An inline SVG bar chart of one column over the districts (no script, no CDN)."""
    vals = [(str(c), v) for c, v in zip(df["code"], df[col]) if v is not None and not pd.isna(v)]
    if not vals:
        return ""
    vmax = max(float(v) for _, v in vals) or 1.0
    bh, w, lw = 16, 360, 90
    h = bh * len(vals) + 24
    parts = [f'<svg width="{lw + w + 90}" height="{h}" '
             f'role="img" aria-label="{html.escape(title)}">']
    for i, (code, v) in enumerate(vals):
        y = 20 + i * bh
        bw = w * float(v) / vmax
        parts.append(f'<text x="{lw - 4}" y="{y + 11}" font-size="11" text-anchor="end">'
                     f'{html.escape(code)}</text><rect x="{lw}" y="{y + 2}" width="{bw:.1f}" '
                     f'height="{bh - 4}" fill="#4a7fb0"/><text x="{lw + bw + 4:.1f}" y="{y + 11}" '
                     f'font-size="11">{_h(v)} {html.escape(unit)}</text>')
    parts.append(f'<text x="0" y="12" font-size="12" font-weight="bold">{html.escape(title)}</text></svg>')
    return '<div class="chart">' + "".join(parts) + "</div>"


def rollup_html(df: pd.DataFrame) -> str:
    cols = list(ROLLUP_COLUMNS)
    head = "".join(f"<th>{html.escape(ROLLUP_COLUMNS[c])}<br>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (int, float)) and not isinstance(v, bool) and not pd.isna(v)
            dv = html.escape(str(v if num else ("" if v is None or (isinstance(v, float) and pd.isna(v)) else v)),
                             quote=True)
            text = _h(v)
            if c == "code" and r["status"] == "ok":
                text = (f'<a href="{html.escape(str(v), quote=True)}/report.html">{text}</a>')
            cells.append(f'<td data-v="{dv}"{" class=n" if num else ""}>{text}</td>')
        cls = ' class="failed"' if r["status"] != "ok" else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    n_ok = int((df["status"] == "ok").sum())
    n_syn = _n_synthetic(df)
    charts = "".join([
        _bar_chart(df, "candidate_people", "拟整体搬迁自然村人口 / people in relocation candidates", "人"),
        _bar_chart(df, "village_tongchang_before_pct", "行政村通畅率-现状 / villages 通畅 before (%)", "%"),
        _bar_chart(df, "works_km", "建议工程里程 / proposed works (km)", "km"),
        _bar_chart(df, "works_cost_yuan", "建议工程投资 / cost of works (yuan)", "元")])
    syn_note = (f"<p class=note><b>{n_syn} 个区县的数据为合成数据 / {n_syn} district(s) use "
                f"SYNTHESIZED data</b> (column 数据性质 data_status): their figures show how the "
                f"pipeline works, not facts about a place.</p>") if n_syn else ""
    return ("<!DOCTYPE html><html lang=zh><head><meta charset=utf-8>"
            "<title>区县汇总 / District roll-up</title>"
            f"<style>{_CSS}</style></head><body>"
            "<h1>区县汇总 / District roll-up</h1>"
            f"<p>{len(df)} 个区县 districts: {n_ok} ok, {len(df) - n_ok} failed. "
            "点击表头排序 / click a header to sort. Each figure is read from the district's "
            "own report.json. <a href=rollup_map.html>地图 / map</a></p>"
            f"{syn_note}"
            f'<table class=sortable><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            f"</tbody></table>{charts}<script>{_TABLE_JS}</script></body></html>\n")


def _n_synthetic(df: pd.DataFrame) -> int:
    from kaizhou_gis.provenance import SHORT_ZH
    return int(df["data_status"].astype(str).str.startswith(SHORT_ZH).sum())


def _gap_color(gap) -> str:
    if gap is None or pd.isna(gap):
        return "#bdbdbd"
    g = float(gap)
    for limit, color in ((0.0, "#1a9850"), (10.0, "#a6d96a"), (25.0, "#fee08b"), (50.0, "#fc8d59")):
        if g <= limit:
            return color
    return "#d73027"


def rollup_map_html(df: pd.DataFrame, outlines: dict) -> str:
    """District polygons coloured by the road-access gap, offline (inline SVG, no tiles, no CDN),
    each linking to its district's overview map."""
    import shapely

    geoms = {c: g for c, g in outlines.items() if g is not None and not g.is_empty}
    W, H, pad = 900, 640, 20
    if geoms:
        minx, miny, maxx, maxy = shapely.GeometryCollection(list(geoms.values())).bounds
    else:
        minx, miny, maxx, maxy = 0.0, 0.0, 1.0, 1.0
    kx = math.cos(math.radians((miny + maxy) / 2))
    sx = (W - 2 * pad) / max((maxx - minx) * kx, 1e-9)
    sy = (H - 2 * pad) / max(maxy - miny, 1e-9)
    s = min(sx, sy)

    def xy(x, y):
        return f"{pad + (x - minx) * kx * s:.1f},{H - pad - (y - miny) * s:.1f}"

    def path(g) -> str:
        polys = list(g.geoms) if hasattr(g, "geoms") else [g]
        d = []
        for p in polys:
            if p.geom_type != "Polygon":
                continue
            for ring in [p.exterior, *p.interiors]:
                pts = list(ring.coords)
                d.append("M" + " L".join(xy(x, y) for x, y in pts) + " Z")
        return " ".join(d)

    by = df.set_index("code")
    shapes, labels, missing = [], [], []
    for code, g in geoms.items():
        r = by.loc[code]
        gap = r["gap_pct"] if r["status"] == "ok" else None
        tip = (f"{code} {r['name'] or ''}: " + (f"gap {gap:g} points before works; "
                                                 f"{r['data_status']}" if gap is not None and not pd.isna(gap)
                                                 else "FAILED: "
                                                 + (str(r['error']).splitlines()[0] if r['error'] else "")))
        fill = _gap_color(gap) if r["status"] == "ok" else "#bdbdbd"
        shape = (f'<path d="{path(g)}" fill="{fill}" stroke="#333" stroke-width="1">'
                 f"<title>{html.escape(tip)}</title></path>")
        if r["status"] == "ok":
            shape = (f'<a href="{html.escape(str(code), quote=True)}/maps/overview.html">{shape}</a>')
        shapes.append(shape)
        c = g.representative_point()
        labels.append(f'<text x="{xy(c.x, c.y).split(",")[0]}" y="{xy(c.x, c.y).split(",")[1]}" '
                      f'font-size="11" text-anchor="middle" pointer-events="none">'
                      f"{html.escape(str(code))}</text>")
    for code in df["code"]:
        if code not in geoms:
            missing.append(str(code))
    legend = "".join(f'<span style="display:inline-block;width:14px;height:10px;background:{c};'
                     f'border:1px solid #333"></span> {html.escape(t)} &nbsp; '
                     for c, t in (("#1a9850", "0"), ("#a6d96a", "≤ 10"), ("#fee08b", "≤ 25"),
                                  ("#fc8d59", "≤ 50"), ("#d73027", "> 50"),
                                  ("#bdbdbd", "失败/无数据 failed or no data")))
    n_syn = _n_synthetic(df)
    syn = (f"<p><b>{n_syn} 个区县为合成数据 / {n_syn} district(s) use SYNTHESIZED data.</b></p>"
           if n_syn else "")
    miss = (f"<p class=note>无边界 / no outline: {html.escape(', '.join(missing))}</p>"
            if missing else "")
    return ("<!DOCTYPE html><html lang=zh><head><meta charset=utf-8>"
            "<title>区县汇总地图 / District roll-up map</title>"
            f"<style>{_CSS}</style></head><body>"
            "<h1>区县汇总地图 / District roll-up map</h1>"
            "<p>颜色 = 道路通达/通畅缺口（工程前，三项目标中最大的差距，百分点）/ colour = the largest "
            "gap, before the works, between a road-access target and its current share "
            "(percentage points). 点击区县打开其总览地图 / click a district for its overview map. "
            "<a href=rollup.html>表格 / table</a></p>"
            f"{syn}<p>{legend}</p>"
            f'<svg width="{W}" height="{H}" '
            f'style="border:1px solid #ccc;background:#f7fbff">{"".join(shapes)}{"".join(labels)}'
            f"</svg>{miss}</body></html>\n")
