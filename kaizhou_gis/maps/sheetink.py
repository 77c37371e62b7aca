"""The print sheet's text: its fonts (the subset CJK font, regular and bold, and a fallback for
characters it lacks) and text laid out with them as matplotlib laid out the sheet's words, drawn
on a :class:`~kaizhou_gis.maps.pdfwriter.Page`."""
from __future__ import annotations

import functools
import logging

from kaizhou_gis.maps.pdfwriter import Font, Page, font_from_file, rgba

log = logging.getLogger(__name__)

#: The PDF name of the fallback font (DejaVu Sans, for characters the CJK font lacks).
FALLBACK_PS_NAME = "KaizhouSheetFallback-Regular"


@functools.lru_cache(maxsize=8)
def _fallback_font(path: str) -> Font:
    import dataclasses

    return dataclasses.replace(font_from_file(path), ps_name=FALLBACK_PS_NAME)


class Ink:
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
