"""The print sheet's point markers and its legend (图例): the legend's entries from the layers
drawn, laid out as matplotlib's legend laid them out, in a frame with round corners."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kaizhou_gis.maps.pdfwriter import Page
from kaizhou_gis.maps.sheetink import Ink
from kaizhou_gis.maps.sheetlayout import PT_PER_MM, Layout
from kaizhou_gis.maps.styles import PNG_LEGEND_PREFIX


def marker_kind(key: str) -> str:
    return "s" if key == "sites" else ("*" if key == "seats" else "o")


def star(outer_r: float) -> np.ndarray:
    """A five-pointed star pointing up (matplotlib's marker "*": inner radius 0.381966)."""
    theta = 2 * np.pi / 10 * np.arange(10) + np.pi / 2
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.381966) * outer_r
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def marker_paths(page: Page, kind: str, centres: np.ndarray, size_pt: np.ndarray, face, edge,
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
            page.markers(np.array([[cx, cy]]), star(sz / 2), fill=face, stroke=edge, lw=lw, join=1)


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
                marker = marker_kind(s.key)
                handles.append(LegendEntry(label, c["color"], marker=marker,
                                           size=6.0 if marker != "*" else 9.0,
                                           edge=c.get("stroke", "#222222")))
    return handles


def draw_legend(page: Page, ink: Ink, lay: Layout, entries: list) -> None:
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
    round_box(page, x0, y0, width, height, 0.2 * fs, fill=(1.0, 1.0, 1.0, 0.8),
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
        marker_paths(page, e.marker, np.array([[x + length / 2, mid]]), np.array([e.size]),
                      e.color, e.edge, 0.5)


def round_box(page: Page, x: float, y: float, w: float, h: float, r: float, *, fill, stroke,
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
