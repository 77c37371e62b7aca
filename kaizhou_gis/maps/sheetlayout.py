"""The layout of an A3 print sheet: page, map frame and panel, a round scale, the sheet's words."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MM_PER_IN = 25.4
#: Points (1/72 inch, PDF units) per millimetre.
PT_PER_MM = 72.0 / MM_PER_IN
A3_MM = (420.0, 297.0)  # landscape (width, height)
#: Scale denominators that read well on a sheet (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5 × 10^k).
_NICE = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5)
#: Graticule intervals in arc minutes.
_GRATICULE_MIN = (0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 60, 120)


def nice_scale(min_denominator: float) -> int:
    """The smallest round scale denominator ≥ ``min_denominator`` (e.g. 43 210 → 50 000)."""
    if not math.isfinite(min_denominator) or min_denominator <= 0:
        raise ValueError(f"no scale for denominator {min_denominator!r}")
    exp = 10 ** math.floor(math.log10(min_denominator))
    for f in _NICE + (10.0,):
        if f * exp >= min_denominator - 1e-9:
            return int(round(f * exp))
    return int(round(10 * exp))  # pragma: no cover


def format_scale(denominator: int) -> str:
    """``1:50 000`` (a thin space as thousands separator, as Chinese map sheets print it)."""
    return "1:" + f"{int(denominator):,}".replace(",", " ")


@dataclass
class Layout:
    """Sheet geometry in millimetres (origin bottom left)."""

    orientation: str  # "landscape" or "portrait"
    page_mm: tuple[float, float]
    frame_mm: tuple[float, float, float, float]  # x, y, width, height of the map frame
    panel_mm: tuple[float, float, float, float]  # legend / notes panel
    scale: int
    extent: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the work CRS


def _frames(orientation: str) -> tuple[tuple[float, float], tuple, tuple]:
    if orientation == "landscape":
        pw, ph = A3_MM
        frame = (16.0, 16.0, 292.0, ph - 16.0 - 34.0)
        panel = (16.0 + 292.0 + 10.0, 16.0, pw - 16.0 - 292.0 - 10.0 - 12.0, ph - 16.0 - 34.0)
    else:
        pw, ph = A3_MM[::-1]
        frame = (16.0, 110.0, pw - 16.0 - 12.0, ph - 110.0 - 36.0)
        panel = (16.0, 12.0, pw - 16.0 - 12.0, 88.0)
    return (pw, ph), frame, panel


def plan_layout(bounds_xy: tuple[float, float, float, float]) -> Layout:
    """Orientation and scale for an area (work-CRS metres): the one that shows it largest."""
    xmin, ymin, xmax, ymax = bounds_xy
    w, h = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    best = None
    for orientation in ("landscape", "portrait"):
        page, frame, panel = _frames(orientation)
        need = max(w / (frame[2] / 1000.0), h / (frame[3] / 1000.0)) * 1.04  # 2 % margin each side
        if best is None or need < best[0]:
            best = (need, orientation, page, frame, panel)
    assert best is not None  # both orientations were tried
    need, orientation, page, frame, panel = best
    scale = nice_scale(need)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    hw, hh = frame[2] / 1000.0 * scale / 2, frame[3] / 1000.0 * scale / 2
    return Layout(orientation, page, frame, panel, scale, (cx - hw, cy - hh, cx + hw, cy + hh))


@dataclass
class SheetText:
    """The words on a sheet."""

    title: str
    subtitle: str
    producing_unit: str
    date: str
    sources: list[str]
    status: list[str]
    crs_note: str
    labels: list[tuple[float, float, str, str]] = field(default_factory=list)  # lon, lat, text, kind
    #: One line for the title block when input is synthesized (zh + en), else "".
    banner: str = ""
