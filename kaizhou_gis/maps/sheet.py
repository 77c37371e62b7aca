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
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

from kaizhou_gis.crs import transformer
from kaizhou_gis.maps.pdfwriter import Font, Page, font_from_file, rgba
from kaizhou_gis.maps.sheetlayout import _GRATICULE_MIN, MM_PER_IN, Layout, SheetText, format_scale, plan_layout
from kaizhou_gis.maps.sheetpng import sheet_png
from kaizhou_gis.maps.sheetrelief import PDF_RELIEF_ZLIB_LEVEL, frame_relief
from kaizhou_gis.maps.sheetrelief import grid_transform as grid_transform  # re-exported: the relief's
from kaizhou_gis.maps.sheetrelief import shade_to_grey as shade_to_grey  # public names stay
from kaizhou_gis.maps.sheetrelief import sheet_hillshade as sheet_hillshade  # importable as
from kaizhou_gis.maps.sheetrelief import sheet_relief as sheet_relief  # sheet.<name>
from kaizhou_gis.maps.styles import LAYER_Z as draw_order
from kaizhou_gis.maps.styles import PNG_LEGEND_PREFIX

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

PT_PER_MM = 72.0 / MM_PER_IN
#: The z of the map frame's outline (matplotlib's axes spines): drawn after everything else of
#: that z inside the frame and before anything above it.
FRAME_Z = 2.5


def render_sheet(specs: list, text: SheetText, *, bounds_xy: tuple[float, float, float, float],
                 work_crs: str, dem=None, highlight=None, hillshade_dpi: int = 300,
                 png_dpi: int = 200, azimuth_deg: float = 315.0, altitude_deg: float = 45.0,
                 legend_entries: list | None = None, formats: tuple[str, ...] = ("pdf", "png"),
                 map_crs: str = "EPSG:4326", font_chars=None) -> dict[str, bytes]:
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
    """
    lay = plan_layout(bounds_xy)
    to_work = transformer(map_crs, work_crs)
    to_geo = transformer(work_crs, "EPSG:4490")  # CGCS2000 geographic
    entries = legend_entries if legend_entries is not None else legend_handles(specs)
    chars = sheet_chars(specs, text, entries)
    ink = _Ink(chars if font_chars is None else frozenset(font_chars) | chars)

    pw, ph = (v * PT_PER_MM for v in lay.page_mm)
    page = Page(pw, ph)
    page.rect(0, 0, pw, ph, fill="#ffffff")  # the paper
    m = _MapFrame(lay)
    page.rect(*m.box, fill="#ffffff")  # the map's background
    relief = None
    if dem is not None:  # hillshade raster at the print resolution
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
    _legend_of(page, ink, lay, entries)
    return _save(page, lay, text, formats, png_dpi)


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
# text: the subset font, laid out as matplotlib laid out the sheet's words
# --------------------------------------------------------------------------------------------

#: The PDF name of the fallback font (DejaVu Sans, for characters the CJK font lacks).
FALLBACK_PS_NAME = "KaizhouSheetFallback-Regular"


@functools.lru_cache(maxsize=8)
def _fallback_font(path: str) -> Font:
    import dataclasses

    return dataclasses.replace(font_from_file(path), ps_name=FALLBACK_PS_NAME)


class _Ink:
    """The sheet's fonts (regular, bold and a fallback for characters the CJK font lacks) and
    text laid out with them: lines of glyph runs with their widths and ink extents."""

    def __init__(self, chars: frozenset[str]):
        from kaizhou_gis import fonts

        files = fonts.sheet_font_files(chars)
        self.fonts = {w: font_from_file(p) for w, p in files.items()}
        regular = self.fonts["normal"]
        missing = sorted(c for c in chars if ord(c) not in regular.cmap and not c.isspace())
        self.fallback = None
        if missing:
            path = fonts.fallback_font_file(frozenset(missing))
            self.fallback = _fallback_font(path) if path else None
            lost = [c for c in missing if self.fallback is None or ord(c) not in self.fallback.cmap]
            if lost:
                log.warning("no font has the characters %s; the sheets show them as boxes",
                            "".join(lost))
        # the font's own line metrics (OS/2 typo ascender/descender): every line is at least this tall
        self.asc = regular.typo_ascent / regular.units_per_em
        self.desc = -regular.typo_descent / regular.units_per_em

    def runs(self, s: str, weight: str) -> list[tuple[Font, str]]:
        """``s`` split into runs of one font each (the fallback for what the CJK font lacks)."""
        main = self.fonts.get(weight, self.fonts["normal"])
        out: list[tuple[Font, str]] = []
        for ch in s:
            f = main if (ord(ch) in main.cmap or self.fallback is None
                         or ord(ch) not in self.fallback.cmap) else self.fallback
            if out and out[-1][0] is f:
                out[-1] = (f, out[-1][1] + ch)
            else:
                out.append((f, ch))
        return out

    def measure(self, s: str, size: float, weight: str) -> tuple[float, float, float]:
        """Width (the advances, kerning included), ascent and descent of the ink (points) of
        one line."""
        x = asc = desc = 0.0
        for f, part in self.runs(s, weight):
            _, a, d = f.extents(part, size)
            x += f.advance_pt(part, size)
            asc, desc = max(asc, a), max(desc, d)
        return x, asc, desc

    def layout(self, s: str, size: float, weight: str, linespacing: float | None):
        """The lines of ``s`` with their baselines below the box's top (matplotlib's text layout:
        each line at least the font's ascent and descent tall, or, with ``linespacing``, exactly
        ``linespacing`` × the font size); returns (lines [(text, width, baseline offset)],
        box width, box height, last line's descent)."""
        lines = s.split("\n")
        min_a, min_d = self.asc * size, self.desc * size
        y = 0.0
        out = []
        d = 0.0
        for line in lines:
            w, a, d = self.measure(line, size, weight) if line else (0.0, 0.0, 0.0)
            if linespacing is None:
                a, d = max(a, min_a), max(d, min_d)
            else:
                lead = linespacing * (min_a + min_d) - (a + d)
                a, d = a + lead / 2, d + lead / 2
            y -= a
            out.append((line, w, y))
            y -= d
        width = max(w for _, w, _ in out)
        return out, width, -y, d

    def draw(self, page: Page, x: float, y: float, s: str, size: float, *, ha: str = "left",
             va: str = "baseline", weight: str = "normal", color="#000000", rotation: float = 0.0,
             linespacing: float | None = None, box=None) -> None:
        """``s`` placed as matplotlib places text: the box of its lines aligned at (``x``, ``y``)
        by ``ha``/``va`` after rotating by ``rotation`` (0 or 90 degrees); ``box`` = (colour,
        alpha, pad in points) paints a rectangle under the text."""
        lines, width, height, descent = self.layout(s, size, weight, linespacing)
        # the box in text coordinates: x 0..width, y -height..0 (top at 0)
        if rotation == 90:  # text upwards: the box's x extent is its height
            xmin, xmax, ymin, ymax = 0.0, height, 0.0, width  # after rotation, origin at top-left corner
        else:
            xmin, xmax, ymin, ymax = 0.0, width, -height, 0.0
        ox = {"left": xmin, "right": xmax, "center": (xmin + xmax) / 2}[ha]
        oy = {"bottom": ymin, "top": ymax, "center": (ymin + ymax) / 2,
              "baseline": ymin + descent}[va]
        if box is not None:
            colour, alpha, pad = box
            r, g, b, _ = rgba(colour)
            page.rect(x + xmin - ox - pad, y + ymin - oy - pad, xmax - xmin + 2 * pad,
                      ymax - ymin + 2 * pad, fill=(r, g, b, alpha))
        for line, w, base in lines:
            lx = {"left": 0.0, "center": (width - w) / 2, "right": width - w}[ha]
            if rotation == 90:  # (lx, base) rotated by 90 degrees: (-base, lx)
                px, py = x - ox - base, y - oy + lx
            else:
                px, py = x - ox + lx, y - oy + base
            self._line(page, px, py, line, size, weight, color, rotation)

    def _line(self, page: Page, x: float, y: float, s: str, size: float, weight: str, color,
              rotation: float) -> None:
        c, sn = (0.0, 1.0) if rotation == 90 else (1.0, 0.0)
        for f, part in self.runs(s, weight):
            page.text(x, y, part, f, size, color=color, angle=rotation)
            adv = f.advance_pt(part, size)
            x, y = x + adv * c, y + adv * sn


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
                segs = [tr(np.asarray(q, dtype=float)) for row in s.data if row[1] == k
                        for q in _flatten(row[0]) if len(q) >= 2]
                lw = float(c.get("weight", 1.0)) * (0.55 if s.kind == "line" else 0.6)
                dash = (0.0, [4.0 * lw, 3.0 * lw]) if c.get("dash") else None  # scaled by width
                out.append((z, functools.partial(page.path, segs, stroke=c.get("stroke", c["color"]),
                                                 lw=lw, dash=dash, cap=0, join=1)))
        else:
            for k in used:
                out.append((z, functools.partial(_markers, page, s, k,
                                                 [row for row in s.data if row[1] == k], tr)))
    return out


def _marker_kind(key: str) -> str:
    return "s" if key == "sites" else ("*" if key == "seats" else "o")


def _star(outer_r: float) -> np.ndarray:
    """A five-pointed star pointing up (matplotlib's marker "*": inner radius 0.381966)."""
    theta = 2 * np.pi / 10 * np.arange(10) + np.pi / 2
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.381966) * outer_r
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def _marker_paths(page: Page, kind: str, centres: np.ndarray, size_pt: np.ndarray, face, edge,
                  lw: float) -> None:
    """Markers of ``kind`` ("o", "s", "*") whose size is ``size_pt`` (diameter, side, or the
    star's outer diameter), one by one in order."""
    for (cx, cy), sz in zip(centres, size_pt):
        if kind == "o":
            page.circles(np.array([[cx, cy]]), sz / 2, fill=face, stroke=edge, lw=lw)
        elif kind == "s":
            h = sz / 2
            page.markers(np.array([[cx, cy]]), np.array([[-h, -h], [h, -h], [h, h], [-h, h]]),
                         fill=face, stroke=edge, lw=lw, join=1)
        else:
            page.markers(np.array([[cx, cy]]), _star(sz / 2), fill=face, stroke=edge, lw=lw, join=1)


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
    kind = _marker_kind(s.key)
    d = sizes * 0.55 * (math.sqrt(3.0) if kind == "*" else 1.0)
    _marker_paths(page, kind, pts, d, c["color"], c.get("stroke", "#222222"), 0.35)


def _highlight(page: Page, m: _MapFrame, highlight) -> list:
    """The outline of the highlighted area (the township, or the district)."""
    if highlight is None or highlight.is_empty:
        return []
    import shapely

    rings = [m.pts(np.asarray(p.exterior.coords)) for p in shapely.get_parts(highlight)
             if p.geom_type == "Polygon"]
    return [(2.5, lambda r=r: page.path([r], stroke="#000000", lw=1.6, cap=0, join=0, close=True))
            for r in rings]


def _labels(page: Page, m: _MapFrame, ink: _Ink, text: SheetText, lay: Layout,
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


def _graticule_labels(page: Page, m: _MapFrame, ink: _Ink, lay: Layout, to_geo: Transformer) -> list:
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

def _true_north(page: Page, ink: _Ink, lay: Layout, to_geo: Transformer, work_crs: str) -> list:
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


def _title_block(page: Page, ink: _Ink, lay: Layout, text: SheetText) -> list:
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


def _panel(page: Page, ink: _Ink, lay: Layout, text: SheetText, entries: list) -> list:
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


def _scale(page: Page, ink: _Ink, lay: Layout) -> tuple[list, float]:
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
# the legend
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LegendEntry:
    """One line of the legend: a line sample (``marker`` None) or a marker, and its label."""

    label: str
    color: str
    lw: float = 1.0
    dash: bool = False
    marker: str | None = None  # "o", "s", "*"
    size: float = 6.0  # marker size (points)
    edge: str = "#222222"

    def get_label(self) -> str:  # the name matplotlib's legend handles had
        return self.label


def legend_handles(specs: list) -> list[LegendEntry]:
    """The legend's entries: the visible layers' categories that occur on the sheet."""
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
                handles.append(LegendEntry(label, c.get("stroke", c["color"]),
                                           lw=max(float(c.get("weight", 1.0)) * 0.7, 0.8),
                                           dash=bool(c.get("dash"))))
            else:
                marker = _marker_kind(s.key)
                handles.append(LegendEntry(label, c["color"], marker=marker,
                                           size=6.0 if marker != "*" else 9.0,
                                           edge=c.get("stroke", "#222222")))
    return handles


def _legend_of(page: Page, ink: _Ink, lay: Layout, entries: list) -> None:
    """The legend (图例) in the panel: upper left at the anchor, the entries in one column
    (landscape) or two (portrait), laid out as matplotlib's legend laid them out (padding,
    spacing and handle length in units of the font size, a rounded frame)."""
    if not entries:
        return
    k = PT_PER_MM
    px, py, pwid, phgt = lay.panel_mm
    top = py + phgt
    if lay.orientation == "landscape":
        fs, ncol, anchor = 7.2, 1, (px * k, (top - 24.0) * k)
    else:
        fs, ncol, anchor = 7.0, 2, ((px + 100.0) * k, top * k)
    title_fs, pad, sep, hlen, htpad, colsep = 9.0, 0.4 * fs, 0.5 * fs, 2.2 * fs, 0.8 * fs, 2.0 * fs
    hh = 0.7 * fs  # handle box height (no descent)

    def text_box(s: str, size: float):  # matplotlib's TextArea box: (width, descent, height)
        _, lp_a, _ = ink.measure("lp", size, "normal")
        _, w, h, last_d = ink.layout(s, size, "normal", None)
        return w, last_d, max(lp_a, h - last_d) + last_d

    # entries into columns (the first len % ncol columns one longer)
    n = len(entries)
    cols, start = [], 0
    for c in range(ncol):
        cnt = n // ncol + (1 if c < n % ncol else 0)
        if cnt:
            cols.append(entries[start:start + cnt])
        start += cnt
    # each item (handle and label on one baseline, the item's origin): its y span and width;
    # a column stacks its items from the top, origin at the first item's; columns side by side
    # with their origins level
    col_boxes = []
    for col in cols:
        items = []
        for e in col:
            tw, td, th = text_box(e.label, fs)
            items.append((e, min(0.0, -td), max(hh, th - td), hlen + htpad + tw))
        first_top = items[0][2]
        bases, acc = [], 0.0  # each item's origin above the column's origin
        for _e, iy0, iy1, _ in items:
            bases.append(first_top - acc - iy1)
            acc += (iy1 - iy0) + sep
        bottom = bases[-1] + items[-1][1]
        col_boxes.append((items, bases, max(it[3] for it in items), first_top, bottom))
    tw_title, td_title, th_title = text_box("图例 Legend", title_fs)
    row_top = max(b[3] for b in col_boxes)
    row_bottom = min(b[4] for b in col_boxes)
    width_row = sum(b[2] for b in col_boxes) + colsep * (len(col_boxes) - 1)
    width = max(width_row, tw_title) + 2 * pad
    height = th_title + sep + (row_top - row_bottom) + 2 * pad
    x0, y1 = anchor
    y0 = y1 - height
    # the frame: white at 0.8 opacity, edge grey 0.8, corners rounded by 0.2 font sizes
    _round_box(page, x0, y0, width, height, 0.2 * fs, fill=(1.0, 1.0, 1.0, 0.8),
               stroke=(0.8, 0.8, 0.8, 0.8), lw=1.0)
    # the title: its box's top at the padding
    ink.draw(page, x0 + pad, y1 - pad - (th_title - td_title), "图例 Legend", title_fs,
             va="baseline")
    row_origin_y = y1 - pad - th_title - sep - row_top
    cx = x0 + pad
    for items, bases, cw, _, _ in col_boxes:
        for (e, _, _, _), b in zip(items, bases):
            base = row_origin_y + b
            _legend_handle(page, e, cx, base, hlen, hh)
            ink.draw(page, cx + hlen + htpad, base, e.label, fs, va="baseline")
        cx += cw + colsep


def _legend_handle(page: Page, e: LegendEntry, x: float, y: float, length: float, height: float) -> None:
    """An entry's sample: a line across the handle box, or a marker at its centre."""
    mid = y + height / 2
    if e.marker is None:
        dash = (0.0, [4.0 * e.lw, 3.0 * e.lw]) if e.dash else None
        page.path([[(x, mid), (x + length, mid)]], stroke=e.color, lw=e.lw, dash=dash,
                  cap=0 if e.dash else 2, join=1)
    else:
        _marker_paths(page, e.marker, np.array([[x + length / 2, mid]]), np.array([e.size]),
                      e.color, e.edge, 0.5)


def _round_box(page: Page, x: float, y: float, w: float, h: float, r: float, *, fill, stroke,
               lw: float) -> None:
    """A rectangle with round corners of radius ``r`` (quadratic corners, as cubic Béziers)."""
    x1, y1 = x + w, y + h

    def corner(p0, c, p2):  # the quadratic Bézier p0-c-p2 as a cubic one
        return ("c", p0[0] + 2 / 3 * (c[0] - p0[0]), p0[1] + 2 / 3 * (c[1] - p0[1]),
                p2[0] + 2 / 3 * (c[0] - p2[0]), p2[1] + 2 / 3 * (c[1] - p2[1]), p2[0], p2[1])

    segs = [("l", x1 - r, y), corner((x1 - r, y), (x1, y), (x1, y + r)),
            ("l", x1, y1 - r), corner((x1, y1 - r), (x1, y1), (x1 - r, y1)),
            ("l", x + r, y1), corner((x + r, y1), (x, y1), (x, y1 - r)),
            ("l", x, y + r), corner((x, y + r), (x, y), (x + r, y))]
    page.curves((x + r, y), segs, fill=fill, stroke=stroke, lw=lw, join=0)


# --------------------------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------------------------

def _save(page: Page, lay: Layout, text: SheetText, formats: tuple[str, ...],
          png_dpi: int) -> dict[str, bytes]:
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
