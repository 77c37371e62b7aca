"""Drawing one print sheet (:func:`render_sheet`): layers, labels, graticule, north arrow, scale
bar, legend and notes over the relief of :mod:`kaizhou_gis.maps.sheetrelief`, written as a PDF by
:mod:`kaizhou_gis.maps.pdfwriter` (the PNG is that PDF rasterized, :mod:`kaizhou_gis.maps.sheetpng`).

The sheet keeps the look it had when matplotlib drew it: the same line widths (points), dash
patterns scaled by the line width, marker sizes, text sizes, and matplotlib's rules for placing
text (the box of a text's lines aligned at its anchor, each line at least the font's ascent and
descent tall) and for laying out a legend (padding, spacing and handle length in font sizes)."""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import numpy as np
from pyproj import Transformer

from kaizhou_gis.crs import transformer
from kaizhou_gis.maps.pdfwriter import Page, font_from_file
from kaizhou_gis.maps.sheetink import FALLBACK_PS_NAME as FALLBACK_PS_NAME  # re-exported
from kaizhou_gis.maps.sheetink import Ink
from kaizhou_gis.maps.sheetlayout import (
    _GRATICULE_MIN,
    MM_PER_IN,
    PT_PER_MM,
    Layout,
    SheetText,
    format_scale,
    plan_layout,
)
from kaizhou_gis.maps.sheetlegend import draw_legend, legend_handles, marker_kind, marker_paths
from kaizhou_gis.maps.sheetpng import sheet_png
from kaizhou_gis.maps.sheetrelief import PDF_RELIEF_ZLIB_LEVEL, frame_relief
from kaizhou_gis.maps.sheetrelief import grid_transform as grid_transform  # re-exported: the relief's
from kaizhou_gis.maps.sheetrelief import shade_to_grey as shade_to_grey  # public names stay
from kaizhou_gis.maps.sheetrelief import sheet_hillshade as sheet_hillshade  # importable as
from kaizhou_gis.maps.sheetrelief import sheet_relief as sheet_relief  # sheet.<name>
from kaizhou_gis.maps.styles import LAYER_Z as draw_order

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# the sheet
# --------------------------------------------------------------------------------------------

#: The z of the map frame's outline (matplotlib's axes spines): drawn after everything else of
#: that z inside the frame and before anything above it.
FRAME_Z = 2.5


def render_sheet(specs: list, text: SheetText, *, bounds_xy: tuple[float, float, float, float],
                 work_crs: str, dem=None, highlight=None, hillshade_dpi: int = 300,
                 png_dpi: int = 200, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                 legend_entries: list | None = None, formats: tuple[str, ...] = ("pdf", "png"),
                 map_crs: str = "EPSG:4326", font_chars=None, relief=None) -> dict[str, bytes]:
    """Draw one A3 sheet of ``specs`` (:class:`kaizhou_gis.maps.specs.LayerSpec`, lat/lon in
    ``map_crs``) framing ``bounds_xy`` (work CRS); returns ``{format: bytes}``.

    ``highlight`` (a shapely geometry in the work CRS) is the area shown at full strength; the
    hillshade outside it is faded. The parts are drawn in a fixed order: the map frame's content
    (relief, layers by :data:`kaizhou_gis.maps.styles.LAYER_Z`, graticule, the highlighted
    outline, the frame, labels), then the north arrow, neatline and scale bar, the words
    (graticule labels, title block, scale, notes) and the legend.

    The PDF is written by :mod:`kaizhou_gis.maps.pdfwriter` with the subset CJK font
    (:func:`kaizhou_gis.fonts.sheet_font_files`) made for ``font_chars`` (e.g. every character of
    a district's sheets, :func:`kaizhou_gis.maps.printmap.font_chars`) and this sheet's
    characters, embedded as it is: the same ``font_chars`` give the same bytes. The PNG is that
    PDF rasterized (:func:`kaizhou_gis.maps.sheetpng.sheet_png`).

    ``relief``: the sheet's relief made ahead for these arguments
    (:func:`kaizhou_gis.maps.sheetrelief.relief_flate`, e.g. while earlier steps ran:
    :mod:`kaizhou_gis.maps.reliefs`), embedded as it is instead of being shaded from ``dem``
    here: the same bytes.
    """
    lay = plan_layout(bounds_xy)
    to_work = transformer(map_crs, work_crs)
    to_geo = transformer(work_crs, "EPSG:4490")  # CGCS2000 geographic
    entries = legend_entries if legend_entries is not None else legend_handles(specs)
    chars = sheet_chars(specs, text, entries)
    ink = Ink(chars if font_chars is None else frozenset(font_chars) | chars)

    pw, ph = (v * PT_PER_MM for v in lay.page_mm)
    page = Page(pw, ph)
    page.rect(0, 0, pw, ph, fill="#ffffff")  # the paper
    m = _MapFrame(lay)
    page.rect(*m.box, fill="#ffffff")  # the map's background
    if relief is None and dem is not None:  # hillshade raster at the print resolution
        relief = frame_relief(dem, lay, work_crs, highlight, hillshade_dpi=hillshade_dpi,
                              azimuth_deg=azimuth_deg, altitude_deg=altitude_deg)
    # inside the frame, clipped to it: by z-order, ties in the order added
    inside: list[tuple[float, Callable]] = []
    if relief is not None:
        inside.append((0.0, lambda: page.grey_image(relief, *m.box, zlib_level=PDF_RELIEF_ZLIB_LEVEL)))
    inside += _layers(page, m, specs, lay, to_work)
    inside += _highlight(page, m, highlight)
    inside += _labels(page, m, ink, text, lay, to_work)
    inside += _graticule_lines(page, m, lay, to_geo)
    page.save()
    page.clip_rect(*m.box)
    framed = False
    for z, draw in sorted(inside, key=lambda zd: zd[0]):  # sorted is stable
        if z > FRAME_Z and not framed:  # the frame, unclipped, after all else at its z
            page.restore()
            page.rect(*m.box, stroke="#000000", lw=0.6, join=0)
            framed = True
            page.save()
            page.clip_rect(*m.box)
        draw()
    page.restore()
    if not framed:
        page.rect(*m.box, stroke="#000000", lw=0.6, join=0)

    # on the page: the shapes, then the words, then the legend
    words: list[Callable] = []
    words += _graticule_labels(page, m, ink, lay, to_geo)
    words += _true_north(page, ink, lay, to_geo, work_crs)
    words += _title_block(page, ink, lay, text)
    words += _panel(page, ink, lay, text, entries)
    for draw in words:
        draw()
    draw_legend(page, ink, lay, entries)
    # the PNG draws the relief unsmoothed where it is at least the PNG's resolution (sheet_png)
    return _save(page, lay, text, formats, png_dpi, smooth_images=hillshade_dpi < png_dpi)


def preload_fonts(font_chars) -> None:
    """Make and read the sheets' fonts for ``font_chars`` (as :func:`render_sheet` does on
    first use): a pool does it once before forking its workers, which then inherit them."""
    from kaizhou_gis import fonts

    for path in fonts.sheet_font_files(frozenset(font_chars)).values():
        font_from_file(path)


def sheet_chars(specs: list, text: SheetText, entries: list | None = None) -> frozenset[str]:
    """The characters a sheet of ``specs`` and ``text`` draws (its words, labels, legend)."""
    entries = legend_handles(specs) if entries is None else entries
    words = [text.title, text.subtitle, text.producing_unit, text.date, text.crs_note, text.banner,
             *text.status, *text.sources, *(lab[2] for lab in text.labels), *SHEET_WORDS,
             *(e.label for e in entries), "0123456789.,:km ", "lp"]
    return frozenset(ch for w in words for ch in w if not ch.isspace())


class _MapFrame:
    """The map frame on the page (points) and the work CRS -> page transform."""

    def __init__(self, lay: Layout):
        fx, fy, fw, fh = (v * PT_PER_MM for v in lay.frame_mm)
        self.box = (fx, fy, fw, fh)
        xmin, ymin, xmax, ymax = lay.extent
        self.kx, self.ky = fw / (xmax - xmin), fh / (ymax - ymin)
        self.x0, self.y0, self.xmin, self.ymin = fx, fy, xmin, ymin

    def xy(self, x, y):
        return (self.x0 + (np.asarray(x, dtype=float) - self.xmin) * self.kx,
                self.y0 + (np.asarray(y, dtype=float) - self.ymin) * self.ky)

    def pts(self, a: np.ndarray) -> np.ndarray:
        px, py = self.xy(a[:, 0], a[:, 1])
        return np.column_stack([px, py])


# --------------------------------------------------------------------------------------------
# the map frame's content
# --------------------------------------------------------------------------------------------

def _layers(page: Page, m: _MapFrame, specs: list, lay: Layout, to_work: Transformer) -> list:
    """The layers' lines, polygons and markers, in the HTML maps' draw order (seats on top)."""
    out: list = []

    def tr(latlon: np.ndarray) -> np.ndarray:
        x, y = to_work.transform(latlon[:, 1], latlon[:, 0])
        return m.pts(np.column_stack([x, y]))

    for s in sorted(specs, key=lambda s: draw_order.get(s.key, 5)):  # the HTML maps' order
        if not s.show or not s.data:
            continue
        z = draw_order.get(s.key, 5)
        used = sorted({row[1] for row in s.data})
        if s.kind in ("line", "polygon"):
            for k in used:
                c = s.cats[k]
                segs = _each_transformed(tr, [np.asarray(q, dtype=float) for row in s.data if row[1] == k
                                              for q in _flatten(row[0]) if len(q) >= 2])
                lw = float(c.get("weight", 1.0)) * (0.55 if s.kind == "line" else 0.6)
                dash = (0.0, [4.0 * lw, 3.0 * lw]) if c.get("dash") else None  # scaled by width
                out.append((z, functools.partial(page.path, segs, stroke=c.get("stroke", c["color"]),
                                                 lw=lw, dash=dash, cap=0, join=1)))
        else:
            for k in used:
                out.append((z, functools.partial(_markers, page, s, k,
                                                 [row for row in s.data if row[1] == k], tr)))
    return out



def _each_transformed(tr: Callable, parts: list[np.ndarray]) -> list[np.ndarray]:
    """``[tr(p) for p in parts]`` (each an n × 2 array of lat/lon) in one call of ``tr``: the
    transform works point by point, so the points are the same; a call per road cost ~4 µs of
    the transformer's overhead and two small arrays each (a few ms a township sheet)."""
    if len(parts) < 2:
        return [tr(p) for p in parts]
    ends = np.cumsum([len(p) for p in parts])[:-1]
    return np.split(tr(np.concatenate(parts)), ends)


def _markers(page: Page, s, k: int, rows: list, tr: Callable) -> None:
    """The markers of category ``k`` of point layer ``s``; co-located markers side by side."""
    c = s.cats[k]
    pts = tr(np.array([row[0] for row in rows], dtype=float))
    sizes = np.array([(row[2] or s.radius) for row in rows], dtype=float)
    for j, row in enumerate(rows):  # co-located markers side by side (specs.spread_colocated)
        if len(row) > 4 and row[4]:
            kk, n, ring = row[4]
            a = 2 * math.pi * kk / n
            pts[j, 0] += ring * 0.55 * math.sin(a)
            pts[j, 1] += ring * 0.55 * math.cos(a)
    kind = marker_kind(s.key)
    d = sizes * 0.55 * (math.sqrt(3.0) if kind == "*" else 1.0)
    marker_paths(page, kind, pts, d, c["color"], c.get("stroke", "#222222"), 0.35)


def _highlight(page: Page, m: _MapFrame, highlight) -> list:
    """The outline of the highlighted area (the township, or the district)."""
    if highlight is None or highlight.is_empty:
        return []
    import shapely

    rings = [m.pts(np.asarray(p.exterior.coords)) for p in shapely.get_parts(highlight)
             if p.geom_type == "Polygon"]
    return [(2.5, lambda r=r: page.path([r], stroke="#000000", lw=1.6, cap=0, join=0, close=True))
            for r in rings]


def _labels(page: Page, m: _MapFrame, ink: Ink, text: SheetText, lay: Layout,
            to_work: Transformer) -> list:
    """Seat, township and village names inside the frame (vector text on a light box: a stroked
    halo would turn the text into outlines, and labels must stay text)."""
    xmin, ymin, xmax, ymax = lay.extent
    out = []
    for lon, lat, label, kind in text.labels:
        x, y = to_work.transform(lon, lat)
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            continue
        size, dy = {"seat": (8.0, 220 * lay.scale / 50000), "township": (7.5, 0.0),
                    "village": (5.5, 130 * lay.scale / 50000)}[kind]
        px, py = m.xy(x, y + dy)
        out.append((9.0, functools.partial(ink.draw, page, float(px), float(py), label, size,
                                           ha="center", va="bottom", color="#111111",
                                           box=("#ffffff", 0.65, 0.08 * size))))
    return out


def _graticule_geometry(lay: Layout, to_geo: Transformer):
    """The graticule's meridians and parallels (work CRS) with their values."""
    xmin, ymin, xmax, ymax = lay.extent
    gx = np.linspace(xmin, xmax, 60)
    gy = np.linspace(ymin, ymax, 60)
    edge_x = np.concatenate([gx, np.full(60, xmax), gx[::-1], np.full(60, xmin)])
    edge_y = np.concatenate([np.full(60, ymin), gy, np.full(60, ymax), gy[::-1]])
    lons, lats = to_geo.transform(edge_x, edge_y)
    step = _graticule_step_min(max(max(lons) - min(lons), max(lats) - min(lats))) / 60.0
    back = transformer(to_geo.target_crs, to_geo.source_crs)
    lon_vals = np.arange(math.ceil(min(lons) / step) * step, max(lons) + 1e-12, step)
    lat_vals = np.arange(math.ceil(min(lats) / step) * step, max(lats) + 1e-12, step)
    lat_line = np.linspace(min(lats) - step, max(lats) + step, 80)
    lon_line = np.linspace(min(lons) - step, max(lons) + step, 80)
    meridians = [(lon, *back.transform(np.full_like(lat_line, lon), lat_line)) for lon in lon_vals]
    parallels = [(lat, *back.transform(lon_line, np.full_like(lon_line, lat))) for lat in lat_vals]
    return meridians, parallels


def _graticule_lines(page: Page, m: _MapFrame, lay: Layout, to_geo: Transformer) -> list:
    """Graticule lines (CGCS2000 lon/lat) over the map."""
    meridians, parallels = _graticule_geometry(lay, to_geo)
    lw = 0.35
    out = []
    for _, x, y in meridians + parallels:
        px, py = m.xy(x, y)
        out.append((1.2, functools.partial(page.path, [np.column_stack([px, py])], stroke="#4d4d4d",
                                           lw=lw, dash=(0.0, [6 * lw, 3 * lw]), cap=0, join=1)))
    return out


def _graticule_labels(page: Page, m: _MapFrame, ink: Ink, lay: Layout, to_geo: Transformer) -> list:
    """The graticule's labels (degrees, minutes) on the frame."""
    meridians, parallels = _graticule_geometry(lay, to_geo)
    xmin, ymin, xmax, ymax = lay.extent
    fx, fy, fw, fh = m.box
    off = 1.5 * PT_PER_MM
    out = []
    for lon, x, y in meridians:
        xb = float(np.interp(ymin, y, x))  # where the meridian meets the bottom edge
        if xmin < xb < xmax:
            out.append(functools.partial(ink.draw, page, float(m.xy(xb, 0)[0]), fy - off,
                                         _dms(lon, ("E", "W")), 6.5, ha="center", va="top"))
            xt = float(np.interp(ymax, y, x))
            if xmin < xt < xmax:
                out.append(functools.partial(ink.draw, page, float(m.xy(xt, 0)[0]), fy + fh + off,
                                             _dms(lon, ("E", "W")), 6.5, ha="center", va="bottom"))
    for lat, x, y in parallels:
        yl = float(np.interp(xmin, x, y))
        if ymin < yl < ymax:
            out.append(functools.partial(ink.draw, page, fx - off, float(m.xy(0, yl)[1]),
                                         _dms(lat, ("N", "S")), 6.5, ha="right", va="center",
                                         rotation=90))
        yr = float(np.interp(xmax, x, y))
        if ymin < yr < ymax:
            out.append(functools.partial(ink.draw, page, fx + fw + off, float(m.xy(0, yr)[1]),
                                         _dms(lat, ("N", "S")), 6.5, ha="left", va="center",
                                         rotation=90))
    return out


# --------------------------------------------------------------------------------------------
# around the map
# --------------------------------------------------------------------------------------------

def _true_north(page: Page, ink: Ink, lay: Layout, to_geo: Transformer, work_crs: str) -> list:
    """North arrow pointing to true north: rotated by the meridian convergence at the centre.
    Draws the arrow; returns the drawing of its letters (drawn with the other words)."""
    fx, fy, fw, fh = lay.frame_mm
    xmin, ymin, xmax, ymax = lay.extent
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    lon0, lat0 = to_geo.transform(cx, cy)
    back = transformer("EPSG:4490", work_crs)
    nx, ny = back.transform(lon0, lat0 + 0.01)
    conv = math.degrees(math.atan2(nx - cx, ny - cy))  # clockwise from grid north
    x, y = (fx + fw - 14.0) * PT_PER_MM, (fy + fh - 26.0) * PT_PER_MM
    ph = lay.page_mm[1] * PT_PER_MM
    size = 0.028 * ph  # in points
    r = math.radians(conv)

    def rot(px, py):
        return (x + px * math.cos(r) + py * math.sin(r), y - px * math.sin(r) + py * math.cos(r))

    left = [rot(0, size), rot(-size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    right = [rot(0, size), rot(size * 0.35, -size * 0.45), rot(0, -size * 0.15)]
    page.path([left], fill="#000000", stroke="#000000", lw=0.6, join=0, close=True)
    page.path([right], fill="#ffffff", stroke="#000000", lw=0.6, join=0, close=True)
    tx, ty = rot(0, size * 1.25)
    return [functools.partial(ink.draw, page, tx, ty, "北\nN", 9.0, ha="center", va="bottom",
                              linespacing=1.0)]


def _title_block(page: Page, ink: Ink, lay: Layout, text: SheetText) -> list:
    """The outer neatline (外图廓), drawn; the title (图名), subtitle and data-status banner,
    returned as drawings."""
    pw, ph = lay.page_mm
    fx, fy, fw, fh = lay.frame_mm
    k = PT_PER_MM
    page.rect((fx - 9.0) * k, (fy - 9.0) * k, (fw + 18.0) * k, (fh + 18.0) * k, stroke="#000000",
              lw=1.6, join=0)
    out = [functools.partial(ink.draw, page, pw / 2 * k, (ph - 9.0) * k, text.title, 22.0,
                             ha="center", va="top"),
           functools.partial(ink.draw, page, pw / 2 * k, (ph - 20.0) * k, text.subtitle, 10.0,
                             ha="center", va="top", color="#333333")]
    if text.banner:  # data status in the title block (the notes panel has the full text)
        out.append(functools.partial(ink.draw, page, pw / 2 * k, (ph - 2.5) * k, text.banner, 8.0,
                                     ha="center", va="top", color="#a01010", weight="bold"))
    return out


def _panel(page: Page, ink: Ink, lay: Layout, text: SheetText, entries: list) -> list:
    """The panel beside (landscape) or under (portrait) the map: the scale bar (drawn), the
    scale's words and the notes (returned as drawings)."""
    k = PT_PER_MM
    px, py, pwid, phgt = lay.panel_mm
    out, by = _scale(page, ink, lay)
    notes = _notes_text(text)
    if lay.orientation == "landscape":
        out.append(functools.partial(ink.draw, page, px * k, (py + 1.0) * k, notes, 6.2,
                                     va="bottom", linespacing=1.35))
    else:
        out.append(functools.partial(ink.draw, page, px * k, (by - 6.0) * k, notes, 6.2,
                                     va="top", linespacing=1.35))
    return out


def _scale(page: Page, ink: Ink, lay: Layout) -> tuple[list, float]:
    """The scale bar at the top of the panel (drawn) and its words (returned as drawings), and
    the bar's height (mm)."""
    k = PT_PER_MM
    px, py, pwid, phgt = lay.panel_mm
    bar_m = _nice_bar_m(lay.scale, min(pwid * 0.8, 80.0))
    bar_mm = bar_m / lay.scale * 1000.0
    top = py + phgt
    out = [functools.partial(ink.draw, page, px * k, (top - 2.0) * k,
                             f"比例尺 Scale {format_scale(lay.scale)}", 11.0, va="top")]
    by = top - 15.0
    n_seg = 4
    for i in range(n_seg):
        page.rect((px + i * bar_mm / n_seg) * k, by * k, bar_mm / n_seg * k, 1.6 * k,
                  fill="#000000" if i % 2 == 0 else "#ffffff", stroke="#000000", lw=0.5, join=0)
    for i in (0, n_seg // 2, n_seg):
        v = bar_m * i / n_seg
        lab = f"{v / 1000:g}" if bar_m >= 1000 else f"{v:g}"
        out.append(functools.partial(ink.draw, page, (px + i * bar_mm / n_seg) * k, (by + 2.3) * k,
                                     lab, 7.0, ha="center", va="bottom"))
    out.append(functools.partial(ink.draw, page, (px + bar_mm + 2.0) * k, (by + 0.8) * k,
                                 "km" if bar_m >= 1000 else "m", 7.0, va="center"))
    return out, by


# --------------------------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------------------------

def _save(page: Page, lay: Layout, text: SheetText, formats: tuple[str, ...],
          png_dpi: int, *, smooth_images: bool = True) -> dict[str, bytes]:
    """The sheet as PDF (no dates: the same map gives the same bytes) and/or PNG, the PNG
    rasterized from that PDF (:func:`kaizhou_gis.maps.sheetpng.sheet_png`)."""
    out = {}
    info = {"Title": text.title, "Author": text.producing_unit, "Subject": text.subtitle,
            "Creator": "kaizhou-gis", "Producer": "kaizhou-gis"}
    if "pdf" in formats or "png" in formats:
        pdf = page.to_pdf({k: v for k, v in info.items() if v})
        if "pdf" in formats:
            out["pdf"] = pdf
        if "png" in formats:
            w_in, h_in = (v / MM_PER_IN for v in lay.page_mm)
            out["png"] = sheet_png(pdf, (int(w_in * png_dpi), int(h_in * png_dpi)), png_dpi,
                                   {"Title": text.title, "Software": "kaizhou-gis"},
                                   smooth_images=smooth_images)
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
