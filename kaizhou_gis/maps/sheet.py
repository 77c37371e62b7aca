"""Drawing one print sheet (:func:`render_sheet`) with matplotlib: layers, labels, graticule,
north arrow, scale bar, legend and notes over the relief of :mod:`kaizhou_gis.maps.sheetrelief`."""
from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from pyproj import Transformer

from kaizhou_gis.crs import transformer
from kaizhou_gis.maps.sheetlayout import _GRATICULE_MIN, MM_PER_IN, Layout, SheetText, format_scale, plan_layout
from kaizhou_gis.maps.sheetpng import sheet_png
from kaizhou_gis.maps.sheetrelief import draw_relief
from kaizhou_gis.maps.sheetrelief import grid_transform as grid_transform  # re-exported: the relief's
from kaizhou_gis.maps.sheetrelief import shade_to_grey as shade_to_grey  # public names stay
from kaizhou_gis.maps.sheetrelief import sheet_hillshade as sheet_hillshade  # importable as
from kaizhou_gis.maps.sheetrelief import sheet_relief as sheet_relief  # sheet.<name>
from kaizhou_gis.maps.styles import LAYER_Z as draw_order
from kaizhou_gis.maps.styles import PNG_LEGEND_PREFIX

#: The words every sheet draws besides its :class:`SheetText` and legend, and the signs of the
#: legend's class labels ("800–1,000 m", "≥ 1,500 m"), for the subset font.
SHEET_WORDS = ("比例尺 Scale", "图例 Legend", "北", "数据来源 Sources:", "坐标系 CRS:",
               "制图单位 Producing unit:", "制图日期 Date:", "°′″", "–—·（）：，、≥≤±×")


def _graticule_step_min(span_deg: float) -> float:
    for m in _GRATICULE_MIN:
        if span_deg * 60.0 / m <= 6:
            return m
    return _GRATICULE_MIN[-1]


def _dms(value_deg: float, hemi: tuple[str, str]) -> str:
    sign = hemi[0] if value_deg >= 0 else hemi[1]
    v = abs(value_deg)
    d = int(math.floor(v + 1e-9))
    m = (v - d) * 60.0
    if abs(m - round(m)) < 1e-6:
        return f"{d}°{int(round(m)):02d}′{sign}"
    s = (m - math.floor(m)) * 60.0
    return f"{d}°{int(math.floor(m)):02d}′{s:02.0f}″{sign}"


def _nice_bar_m(scale: int, max_mm: float) -> float:
    """A round scale-bar length (m) at most ``max_mm`` long on paper."""
    max_m = max_mm / 1000.0 * scale
    exp = 10 ** math.floor(math.log10(max_m))
    for f in (5, 2, 1):
        if f * exp <= max_m:
            return f * exp
    return exp


def render_sheet(specs: list, text: SheetText, *, bounds_xy: tuple[float, float, float, float],
                 work_crs: str, dem=None, highlight=None, hillshade_dpi: int = 300,
                 png_dpi: int = 200, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                 legend_entries: list | None = None, formats: tuple[str, ...] = ("pdf", "png"),
                 map_crs: str = "EPSG:4326", font_chars=None) -> dict[str, bytes]:
    """Draw one A3 sheet of ``specs`` (:class:`kaizhou_gis.maps.specs.LayerSpec`, lat/lon in
    ``map_crs``) framing ``bounds_xy`` (work CRS); returns ``{format: bytes}``.

    ``highlight`` (a shapely geometry in the work CRS) is the area shown at full strength; the
    hillshade outside it is faded. The parts are drawn in a fixed order (map content, graticule,
    north arrow, neatline, title, panel), which is the order of the artists in the files.

    The text is drawn with a subset of the CJK font (:func:`kaizhou_gis.fonts.subset_family`) made
    for ``font_chars`` (e.g. every character of a district's sheets,
    :func:`kaizhou_gis.maps.printmap.font_chars`) or, when None, for the characters on this sheet,
    with the full font behind it for any other: embedding it in the PDF takes milliseconds instead
    of a parse of the whole font collection per embedded font. The same ``font_chars`` give the
    same bytes.
    """
    from matplotlib.lines import Line2D

    from kaizhou_gis import fonts

    lay = plan_layout(bounds_xy)
    to_work = transformer(map_crs, work_crs)
    to_geo = transformer(work_crs, "EPSG:4490")  # CGCS2000 geographic

    fonts.subset_family(sheet_chars(specs, text) if font_chars is None else font_chars)
    with fonts.cjk_context(subset=True):
        fig, ax = _figure(lay)
        if dem is not None:  # hillshade raster at the print resolution
            draw_relief(ax, dem, lay, work_crs, highlight, hillshade_dpi=hillshade_dpi,
                        azimuth_deg=azimuth_deg, altitude_deg=altitude_deg)
        _draw_layers(ax, specs, lay, to_work)
        _draw_highlight(ax, highlight)
        _draw_labels(ax, text, lay, to_work)
        _graticule(ax, fig, lay, to_geo, *lay.page_mm)  # graticule in CGCS2000 degrees
        _draw_true_north(fig, lay, to_geo, work_crs)
        _draw_title_block(fig, lay, text)
        handles = legend_entries if legend_entries is not None else legend_handles(specs, Line2D)
        _draw_panel(fig, lay, text, handles)
        return _save(fig, text, formats, png_dpi)


def sheet_chars(specs: list, text: SheetText) -> frozenset[str]:
    """The characters a sheet of ``specs`` and ``text`` draws (its words, labels, legend)."""
    words = [text.title, text.subtitle, text.producing_unit, text.date, text.crs_note, text.banner,
             *text.status, *text.sources, *(lab[2] for lab in text.labels), *SHEET_WORDS,
             *(h.get_label() for h in legend_handles(specs))]
    return frozenset(ch for w in words for ch in w if not ch.isspace())


def _figure(lay: Layout):
    """The A3 figure and the map's axes in the work CRS (equal aspect, no ticks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pw, ph = lay.page_mm
    fx, fy, fw, fh = lay.frame_mm
    xmin, ymin, xmax, ymax = lay.extent
    fig = Figure(figsize=(pw / MM_PER_IN, ph / MM_PER_IN))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((fx / pw, fy / ph, fw / pw, fh / ph))
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_linewidth(0.6)
    ax.set_facecolor("white")
    return fig, ax



def _draw_layers(ax, specs: list, lay: Layout, to_work: Transformer) -> None:
    """The layers' lines, polygons and markers, in the HTML maps' draw order (seats on top)."""
    from matplotlib.collections import LineCollection

    def tr(latlon: np.ndarray) -> np.ndarray:
        x, y = to_work.transform(latlon[:, 1], latlon[:, 0])
        return np.column_stack([x, y])

    for s in sorted(specs, key=lambda s: draw_order.get(s.key, 5)):  # the HTML maps' order
        if not s.show or not s.data:
            continue
        z = draw_order.get(s.key, 5)
        used = sorted({row[1] for row in s.data})
        if s.kind in ("line", "polygon"):
            for k in used:
                c = s.cats[k]
                segs: list[np.ndarray] = []
                for row in s.data:
                    if row[1] == k:
                        segs.extend(tr(np.asarray(q, dtype=float)) for q in _flatten(row[0]) if len(q) >= 2)
                lw = float(c.get("weight", 1.0)) * (0.55 if s.kind == "line" else 0.6)
                ls = (0, (4, 3)) if c.get("dash") else "solid"
                ax.add_collection(LineCollection(segs, colors=c.get("stroke", c["color"]),
                                                 linewidths=lw, linestyles=ls, zorder=z))
        else:
            for k in used:
                _draw_markers(ax, s, k, [row for row in s.data if row[1] == k], lay, tr, z)


def _draw_markers(ax, s, k: int, rows: list, lay: Layout, tr: Callable, z: float) -> None:
    """The markers of category ``k`` of point layer ``s``; co-located markers side by side."""
    c = s.cats[k]
    pts = tr(np.array([row[0] for row in rows], dtype=float))
    sizes = np.array([(row[2] or s.radius) for row in rows], dtype=float)
    # co-located markers side by side (specs.spread_colocated), in paper units
    m_per_pt = 25.4 / 72.0 / 1000.0 * lay.scale
    for j, row in enumerate(rows):
        if len(row) > 4 and row[4]:
            kk, n, ring = row[4]
            a = 2 * math.pi * kk / n
            pts[j, 0] += ring * 0.55 * m_per_pt * math.sin(a)
            pts[j, 1] += ring * 0.55 * m_per_pt * math.cos(a)
    marker = "s" if s.key == "sites" else ("*" if s.key == "seats" else "o")
    ms = (sizes * 0.55) ** 2 * (3.0 if marker == "*" else 1.0)
    ax.scatter(pts[:, 0], pts[:, 1], s=ms, c=c["color"], marker=marker,
               edgecolors=c.get("stroke", "#222222"), linewidths=0.35, zorder=z)


def _draw_highlight(ax, highlight) -> None:
    """The outline of the highlighted area (the township, or the district)."""
    if highlight is None or highlight.is_empty:
        return
    import shapely
    from matplotlib.patches import Polygon as MplPolygon

    for poly in shapely.get_parts(highlight):
        if poly.geom_type == "Polygon":
            ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, fill=False,
                                    ec="#000000", lw=1.6, zorder=2.5))


def _draw_labels(ax, text: SheetText, lay: Layout, to_work: Transformer) -> None:
    """Seat, township and village names inside the frame (vector text)."""
    xmin, ymin, xmax, ymax = lay.extent
    for lon, lat, label, kind in text.labels:
        x, y = to_work.transform(lon, lat)
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            continue
        style = {"seat": dict(fontsize=8, fontweight="normal", dx=0, dy=220 * lay.scale / 50000),
                 "township": dict(fontsize=7.5, fontweight="normal", dx=0, dy=0),
                 "village": dict(fontsize=5.5, fontweight="normal", dx=0, dy=130 * lay.scale / 50000)}[kind]
        ax.text(x + style["dx"], y + style["dy"], label, fontsize=style["fontsize"],
                fontweight=style["fontweight"], ha="center", va="bottom", zorder=9,
                color="#111111", clip_on=True,
                # a light box, not a stroked halo: path effects would turn the text into
                # outlines, and labels must stay text (searchable, selectable)
                bbox=dict(boxstyle="square,pad=0.08", fc="white", ec="none", alpha=0.65))


def _draw_true_north(fig, lay: Layout, to_geo: Transformer, work_crs: str) -> None:
    """North arrow pointing to true north: rotated by the meridian convergence at the centre."""
    pw, ph = lay.page_mm
    fx, fy, fw, fh = lay.frame_mm
    xmin, ymin, xmax, ymax = lay.extent
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    lon0, lat0 = to_geo.transform(cx, cy)
    back = transformer("EPSG:4490", work_crs)
    nx, ny = back.transform(lon0, lat0 + 0.01)
    conv = math.degrees(math.atan2(nx - cx, ny - cy))  # clockwise from grid north
    _north_arrow(fig, (fx + fw - 14.0) / pw, (fy + fh - 26.0) / ph, ph / pw, conv)


def _draw_title_block(fig, lay: Layout, text: SheetText) -> None:
    """The outer neatline (外图廓), the title (图名), subtitle and data-status banner."""
    from matplotlib.patches import Rectangle

    pw, ph = lay.page_mm
    fx, fy, fw, fh = lay.frame_mm
    fig.add_artist(Rectangle(((fx - 9.0) / pw, (fy - 9.0) / ph), (fw + 18.0) / pw, (fh + 18.0) / ph,
                             transform=fig.transFigure, fill=False, lw=1.6, ec="black"))
    fig.text(0.5, (ph - 9.0) / ph, text.title, ha="center", va="top", fontsize=22, fontweight="normal")
    fig.text(0.5, (ph - 20.0) / ph, text.subtitle, ha="center", va="top", fontsize=10, color="#333333")
    if text.banner:  # data status in the title block (the notes panel has the full text)
        fig.text(0.5, (ph - 2.5) / ph, text.banner, ha="center", va="top", fontsize=8,
                 color="#a01010", fontweight="bold")


def _draw_panel(fig, lay: Layout, text: SheetText, handles: list) -> None:
    """The panel beside (landscape) or under (portrait) the map: scale, legend, notes."""
    pw, ph = lay.page_mm
    px, py, pwid, phgt = lay.panel_mm
    top = py + phgt
    by = _draw_scale(fig, lay)
    notes = _notes_text(text)
    if lay.orientation == "landscape":
        leg_top = (top - 24.0) / ph
        if handles:
            fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(px / pw, leg_top),
                       fontsize=7.2, title="图例 Legend", title_fontsize=9, frameon=True,
                       alignment="left", borderaxespad=0.0, handlelength=2.2)
        fig.text(px / pw, (py + 1.0) / ph, notes, fontsize=6.2, va="bottom", linespacing=1.35,
                 wrap=False)
    else:
        if handles:
            fig.legend(handles=handles, loc="upper left", bbox_to_anchor=((px + 100.0) / pw, top / ph),
                       fontsize=7, title="图例 Legend", title_fontsize=9, frameon=True, ncol=2,
                       alignment="left", borderaxespad=0.0, handlelength=2.2)
        fig.text(px / pw, (by - 6.0) / ph, notes, fontsize=6.2, va="top", linespacing=1.35)


def _draw_scale(fig, lay: Layout) -> float:
    """The numeric scale and the scale bar at the top of the panel; returns the bar's height (mm)."""
    from matplotlib.patches import Rectangle

    pw, ph = lay.page_mm
    px, py, pwid, phgt = lay.panel_mm
    scale_text = f"比例尺 Scale {format_scale(lay.scale)}"
    bar_m = _nice_bar_m(lay.scale, min(pwid * 0.8, 80.0))
    bar_mm = bar_m / lay.scale * 1000.0
    top = py + phgt
    fig.text(px / pw, (top - 2.0) / ph, scale_text, fontsize=11, fontweight="normal", va="top")
    by = top - 15.0
    n_seg = 4
    for i in range(n_seg):
        fig.add_artist(Rectangle(((px + i * bar_mm / n_seg) / pw, by / ph), bar_mm / n_seg / pw, 1.6 / ph,
                                 transform=fig.transFigure, fc="black" if i % 2 == 0 else "white",
                                 ec="black", lw=0.5))
    for i in (0, n_seg // 2, n_seg):
        v = bar_m * i / n_seg
        lab = f"{v / 1000:g}" if bar_m >= 1000 else f"{v:g}"
        fig.text((px + i * bar_mm / n_seg) / pw, (by + 2.3) / ph, lab, fontsize=7, ha="center", va="bottom")
    fig.text((px + bar_mm + 2.0) / pw, (by + 0.8) / ph, "km" if bar_m >= 1000 else "m", fontsize=7,
             va="center")
    return by


def _save(fig, text: SheetText, formats: tuple[str, ...], png_dpi: int) -> dict[str, bytes]:
    """The sheet as PDF (no CreationDate: the same map gives the same bytes) and/or PNG, the PNG
    rasterized from that PDF (:func:`kaizhou_gis.maps.sheetpng.sheet_png`): matplotlib draws
    the sheet once."""
    out = {}
    meta: dict[str, str | None] = {"Title": text.title, "Author": text.producing_unit, "Subject": text.subtitle,
                                   "Creator": "kaizhou-gis", "CreationDate": None}
    if "pdf" in formats or "png" in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf", metadata=meta)
        pdf = buf.getvalue()
        if "pdf" in formats:
            out["pdf"] = pdf
        if "png" in formats:
            w_in, h_in = fig.get_size_inches()
            out["png"] = sheet_png(pdf, (int(w_in * png_dpi), int(h_in * png_dpi)), png_dpi,
                                   {"Title": text.title, "Software": "kaizhou-gis"})
    return out


def _flatten(geom: list) -> list:
    if not geom:
        return []
    if isinstance(geom[0][0], (int, float)):
        return [geom]
    out = []
    for g in geom:
        out.extend(_flatten(g))
    return out


def _graticule(ax, fig, lay: Layout, to_geo: Transformer, pw: float, ph: float) -> None:
    """Graticule lines (CGCS2000 lon/lat) over the map and their labels on the frame."""
    xmin, ymin, xmax, ymax = lay.extent
    gx = np.linspace(xmin, xmax, 60)
    gy = np.linspace(ymin, ymax, 60)
    edge_x = np.concatenate([gx, np.full(60, xmax), gx[::-1], np.full(60, xmin)])
    edge_y = np.concatenate([np.full(60, ymin), gy, np.full(60, ymax), gy[::-1]])
    lons, lats = to_geo.transform(edge_x, edge_y)
    step = _graticule_step_min(max(max(lons) - min(lons), max(lats) - min(lats))) / 60.0
    back = transformer(to_geo.target_crs, to_geo.source_crs)
    fx, fy, fw, fh = lay.frame_mm
    style = dict(color="#4d4d4d", lw=0.35, ls=(0, (6, 3)), zorder=1.2)
    lon_vals = np.arange(math.ceil(min(lons) / step) * step, max(lons) + 1e-12, step)
    lat_vals = np.arange(math.ceil(min(lats) / step) * step, max(lats) + 1e-12, step)
    lat_line = np.linspace(min(lats) - step, max(lats) + step, 80)
    lon_line = np.linspace(min(lons) - step, max(lons) + step, 80)
    for lon in lon_vals:
        x, y = back.transform(np.full_like(lat_line, lon), lat_line)
        ax.plot(x, y, **style)
        xb = float(np.interp(ymin, y, x))  # where the meridian meets the bottom edge
        if xmin < xb < xmax:
            fig.text((fx + (xb - xmin) / (xmax - xmin) * fw) / pw, (fy - 1.5) / ph,
                     _dms(lon, ("E", "W")), fontsize=6.5, ha="center", va="top")
            xt = float(np.interp(ymax, y, x))
            if xmin < xt < xmax:
                fig.text((fx + (xt - xmin) / (xmax - xmin) * fw) / pw, (fy + fh + 1.5) / ph,
                         _dms(lon, ("E", "W")), fontsize=6.5, ha="center", va="bottom")
    for lat in lat_vals:
        x, y = back.transform(lon_line, np.full_like(lon_line, lat))
        ax.plot(x, y, **style)
        yl = float(np.interp(xmin, x, y))
        if ymin < yl < ymax:
            fig.text((fx - 1.5) / pw, (fy + (yl - ymin) / (ymax - ymin) * fh) / ph,
                     _dms(lat, ("N", "S")), fontsize=6.5, ha="right", va="center", rotation=90)
        yr = float(np.interp(xmax, x, y))
        if ymin < yr < ymax:
            fig.text((fx + fw + 1.5) / pw, (fy + (yr - ymin) / (ymax - ymin) * fh) / ph,
                     _dms(lat, ("N", "S")), fontsize=6.5, ha="left", va="center", rotation=90)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def _north_arrow(fig, x: float, y: float, aspect: float, rotation_deg: float) -> None:
    """A north arrow at figure coordinates (x, y), rotated clockwise by ``rotation_deg``."""
    from matplotlib.patches import Polygon as MplPolygon

    size = 0.028
    r = math.radians(rotation_deg)

    def rot(px, py):  # in units of the sheet's height (aspect corrects x)
        qx = px * math.cos(r) + py * math.sin(r)
        qy = -px * math.sin(r) + py * math.cos(r)
        return x + qx * aspect, y + qy

    left = [rot(0, size), rot(-size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    right = [rot(0, size), rot(size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    fig.add_artist(MplPolygon(left, closed=True, transform=fig.transFigure, fc="black", ec="black", lw=0.6))
    fig.add_artist(MplPolygon(right, closed=True, transform=fig.transFigure, fc="white", ec="black", lw=0.6))
    tx, ty = rot(0, size * 1.25)
    fig.text(tx, ty, "北\nN", ha="center", va="bottom", fontsize=9, fontweight="normal", linespacing=1.0)


def legend_handles(specs: list, Line2D=None) -> list:
    """matplotlib legend handles of the visible layers' categories that occur on the sheet."""
    if Line2D is None:
        from matplotlib.lines import Line2D

    handles, seen = [], set()
    for s in specs:
        if not s.show or not s.data:
            continue
        used = sorted({row[1] for row in s.data})
        for k in used:
            c = s.cats[k]
            prefix = PNG_LEGEND_PREFIX.get(s.key)
            label = f"{prefix} {c['label']}" if prefix else c["label"]
            if s.key == "townships" and len(s.cats) > 1 and k == 0:
                continue
            if label in seen:
                continue
            seen.add(label)
            if s.kind in ("line", "polygon"):
                handles.append(Line2D([], [], color=c.get("stroke", c["color"]),
                                      lw=max(float(c.get("weight", 1.0)) * 0.7, 0.8),
                                      ls=(0, (4, 3)) if c.get("dash") else "-", label=label))
            else:
                marker = "s" if s.key == "sites" else ("*" if s.key == "seats" else "o")
                handles.append(Line2D([], [], ls="", marker=marker, markersize=6 if marker != "*" else 9,
                                      markerfacecolor=c["color"], markeredgecolor=c.get("stroke", "#222222"),
                                      markeredgewidth=0.5, label=label))
    return handles


def wrap_wide(text: str, width: int) -> list[str]:
    """Wrap text to ``width`` columns counting Chinese (wide) characters as two columns."""
    import unicodedata

    lines, cur, cols = [], "", 0
    for word in _tokens(text):
        w = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in word)
        if cols + w > width and cur.strip():
            lines.append(cur.rstrip())
            cur, cols = word.lstrip(), w if not word.startswith(" ") else w - 1
        else:
            cur, cols = cur + word, cols + w
    if cur.strip():
        lines.append(cur.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Latin words (with their leading space) stay whole; every Chinese character is a token."""
    import re

    wide = "\u2e80-\u9fff\uff00-\uffef\u3000-\u303f"
    return re.findall(rf"\s*[{wide}]|\s*[^\s{wide}]+", text)


def _notes_text(text: SheetText, width: int = 78) -> str:
    lines = []
    for s in text.status:
        lines.extend(wrap_wide(s, width))
    lines.append("数据来源 Sources:")
    for s in text.sources:
        lines.extend("  " + w for w in wrap_wide(s, width - 2))
    lines.extend(wrap_wide(f"坐标系 CRS: {text.crs_note}", width))
    lines.append(f"制图单位 Producing unit: {text.producing_unit}    制图日期 Date: {text.date}")
    return "\n".join(lines)
