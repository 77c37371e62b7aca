"""A small PDF writer for the print sheets: one page of vector paths (fills, strokes, dashes,
clipping), grey images and text in embedded TrueType fonts.

Why hand-written: matplotlib's PDF backend spent some 0.45 CPU-s of the 0.69 CPU-s a township
sheet cost in ``savefig`` (re-subsetting the already-subset CJK font with fontTools for every file,
laying out every text through FreeType, and re-encoding the relief). pypdfium2 can write pages
(``FPDFPageObj_*``) but embeds a TrueType font by re-parsing it per document and lays text out
without ToUnicode control; fontTools reads fonts but writes no PDF; reportlab and similar writers
are not dependencies here and would add a third text layout to agree with. What a sheet needs is
small and fixed, so it is written here directly: the page's content stream (PDF 1.4 operators),
images as Flate streams with the PNG "Up" predictor, and each font embedded verbatim as a
``CIDFontType2`` font (``Identity-H``, glyph ids as character codes, ``/W`` widths of the glyphs
used and a ``ToUnicode`` CMap, so the text stays selectable and extractable).

The output depends only on what is drawn: no dates, no random ids (the same drawing gives the
same bytes).
"""
from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: zlib level of the page's content stream and font files (small; compressed once per sheet).
STREAM_ZLIB_LEVEL = 6


# --------------------------------------------------------------------------------------------
# colours
# --------------------------------------------------------------------------------------------

_NAMED = {"black": "#000000", "white": "#ffffff", "red": "#ff0000", "green": "#008000",
          "blue": "#0000ff", "grey": "#808080", "gray": "#808080", "none": "#00000000"}


@functools.lru_cache(maxsize=1024)
def rgba(color) -> tuple[float, float, float, float]:
    """``color`` as (r, g, b, a) in 0-1: ``#rgb``, ``#rrggbb``, ``#rrggbbaa``, a grey level as a
    string (``"0.8"``, matplotlib's convention), a few names, or a 3/4-tuple of floats."""
    if isinstance(color, (tuple, list)):
        v = [float(c) for c in color]
        if len(v) in (3, 4):
            return (v[0], v[1], v[2], v[3] if len(v) == 4 else 1.0)
        raise ValueError(f"not a colour: {color!r}")
    s = str(color).strip().lower()
    s = _NAMED.get(s, s)
    if s.startswith("#"):
        h = s[1:]
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h)
        if len(h) in (6, 8):
            try:
                vals = [int(h[i:i + 2], 16) / 255.0 for i in range(0, len(h), 2)]
            except ValueError:
                vals = []
            if vals:
                return (vals[0], vals[1], vals[2], vals[3] if len(vals) == 4 else 1.0)
    try:
        g = float(s)
    except ValueError:
        g = -1.0
    if 0.0 <= g <= 1.0:
        return (g, g, g, 1.0)
    raise ValueError(f"not a colour the sheet writer knows: {color!r} (use #rrggbb)")


def _num(v: float) -> str:
    """A number as PDF writes it: at most 4 decimals, no exponent, no trailing zeros."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


# --------------------------------------------------------------------------------------------
# fonts
# --------------------------------------------------------------------------------------------

@dataclass
class Font:
    """A TrueType font (``glyf`` outlines) to embed whole, with what laying out text needs: the
    glyph of each character, advance widths and glyph boxes (font units), units per em."""

    data: bytes
    ps_name: str
    cmap: dict[int, int]  # code point -> glyph id
    advance: np.ndarray  # by glyph id (font units)
    bbox: np.ndarray  # by glyph id: xMin, yMin, xMax, yMax (font units; 0 for empty glyphs)
    units_per_em: int
    ascent: int
    descent: int  # negative
    font_bbox: tuple[int, int, int, int]
    kern: Callable[[int, int], float] = field(default=lambda a, b: 0.0)  # glyph pair -> x advance (font units)
    typo_ascent: int = 880
    typo_descent: int = -120  # negative
    italic_angle: float = 0.0
    cap_height: int = 700
    stem_v: int = 80
    _shaped: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Font:
        """Read a TrueType font's tables (fontTools); the bytes are embedded as they are."""
        import io

        from fontTools.ttLib import TTFont

        tt = TTFont(io.BytesIO(data), lazy=True)
        try:
            if "glyf" not in tt:
                raise ValueError("the sheet writer embeds TrueType (glyf) fonts only")
            order = tt.getGlyphOrder()
            gid = {name: i for i, name in enumerate(order)}
            cmap = {cp: gid[name] for cp, name in tt.getBestCmap().items() if name in gid}
            hmtx = tt["hmtx"].metrics
            advance = np.array([hmtx[n][0] for n in order], dtype=np.float64)
            glyf = tt["glyf"]
            bbox = np.zeros((len(order), 4), dtype=np.float64)
            for i, n in enumerate(order):
                g = glyf[n]
                if getattr(g, "numberOfContours", 0) != 0 and hasattr(g, "xMin"):
                    bbox[i] = (g.xMin, g.yMin, g.xMax, g.yMax)
            kern = _Kerning(tt, gid)
            head, hhea, os2 = tt["head"], tt["hhea"], tt["OS/2"] if "OS/2" in tt else None
            name = tt["name"].getDebugName(6) or "Font"
            return cls(data=data, ps_name="".join(c for c in name if 33 <= ord(c) < 127 and c not in "()<>[]{}/%#"),
                       cmap=cmap, advance=advance, bbox=bbox, kern=kern, units_per_em=int(head.unitsPerEm),
                       ascent=int(hhea.ascent), descent=int(hhea.descent),
                       font_bbox=(int(head.xMin), int(head.yMin), int(head.xMax), int(head.yMax)),
                       typo_ascent=int(os2.sTypoAscender) if os2 is not None else int(hhea.ascent),
                       typo_descent=int(os2.sTypoDescender) if os2 is not None else int(hhea.descent),
                       italic_angle=float(tt["post"].italicAngle),
                       cap_height=int(getattr(os2, "sCapHeight", 0) or 700) if os2 is not None else 700,
                       stem_v=80 if os2 is None or os2.usWeightClass < 600 else 140)
        finally:
            tt.close()

    @functools.cached_property
    def flate(self) -> bytes:
        """The font file, compressed once (every sheet embeds the same file)."""
        return zlib.compress(self.data, STREAM_ZLIB_LEVEL)

    def glyphs(self, text: str) -> list[int]:
        """The glyph id of each character (0, the .notdef box, when the font has none)."""
        return [self.cmap.get(ord(c), 0) for c in text]

    def shape(self, text: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The glyphs of ``text``, their advances and the kerning after each (font units): one
        glyph per character, the pair adjustments of the font's ``kern`` feature (GPOS), as a
        shaper applies them to horizontal text. Remembered by text (a sheet measures its words
        before drawing them; graticule labels repeat)."""
        hit = self._shaped.get(text)
        if hit is None:
            hit = self._shaped[text] = self._shape(text)
        return hit

    def _shape(self, text: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        g = self.glyphs(text)
        kern = np.array([self.kern(a, b) for a, b in zip(g, g[1:])] + [0.0] if g else [],
                        dtype=np.float64)
        return g, self.advance[g], kern

    def advance_pt(self, text: str, size: float) -> float:
        """The advance width of ``text`` at ``size`` points (kerning included)."""
        g, adv, kern = self.shape(text)
        return float(adv.sum() + kern.sum()) * size / self.units_per_em if g else 0.0

    def extents(self, text: str, size: float) -> tuple[float, float, float]:
        """Width, height above the baseline and depth below it (points, >= 0) of the glyphs' ink
        of ``text`` at ``size``: the width from the pen's start to the last glyph's right edge."""
        g, adv, kern = self.shape(text)
        if not g:
            return 0.0, 0.0, 0.0
        k = size / self.units_per_em
        step = adv + kern
        pens = np.concatenate([[0.0], np.cumsum(step)[:-1]])
        bb = self.bbox[g]
        inked = (bb[:, 2] > bb[:, 0]) | (bb[:, 3] > bb[:, 1])
        right = float(np.max(np.where(inked, pens + bb[:, 2], pens + adv))) * k
        top = float(bb[:, 3].max()) * k if inked.any() else 0.0
        depth = float(-bb[:, 1].min()) * k if inked.any() else 0.0
        return max(right, 0.0), max(top, 0.0), max(depth, 0.0)


class _Kerning:
    """The x-advance adjustments of glyph pairs by the ``kern`` feature's pair-positioning
    lookups (GPOS type 2, formats 1 and 2, also inside extension lookups): within a lookup the
    first subtable covering a pair applies, the lookups add up. Looked up pair by pair (and
    remembered): a district's font has some 2,000 glyphs, a sheet's text a few hundred pairs."""

    def __init__(self, tt, gid: dict[str, int]):
        self.lookups: list[list[tuple[int, Any]]] = []
        self.cache: dict[tuple[int, int], float] = {}
        if "GPOS" not in tt or tt["GPOS"].table.FeatureList is None:
            return
        table = tt["GPOS"].table
        n = len(gid)
        for li in sorted({i for fr in table.FeatureList.FeatureRecord if fr.FeatureTag == "kern"
                          for i in fr.Feature.LookupListIndex}):
            lookup = table.LookupList.Lookup[li]
            subs: list[tuple[int, Any]] = []
            for st in lookup.SubTable:
                if lookup.LookupType == 9:
                    if st.ExtensionLookupType != 2:
                        continue
                    st = st.ExtSubTable
                elif lookup.LookupType != 2:
                    continue
                if st.Format == 1:
                    pairs = {}
                    for first, ps in zip(st.Coverage.glyphs, st.PairSet):
                        if first in gid:
                            pairs[gid[first]] = {gid[r.SecondGlyph]: float(getattr(r.Value1, "XAdvance", 0) or 0)
                                                 for r in ps.PairValueRecord if r.SecondGlyph in gid}
                    subs.append((1, pairs))
                elif st.Format == 2:
                    cov = {gid[g] for g in st.Coverage.glyphs if g in gid}
                    c1, c2 = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)
                    for g, c in st.ClassDef1.classDefs.items():
                        if g in gid:
                            c1[gid[g]] = c
                    for g, c in st.ClassDef2.classDefs.items():
                        if g in gid:
                            c2[gid[g]] = c
                    values = np.array([[float(getattr(r.Value1, "XAdvance", 0) or 0) if r.Value1 is not None else 0.0
                                        for r in rec.Class2Record] for rec in st.Class1Record])
                    subs.append((2, (cov, c1, c2, values)))
            self.lookups.append(subs)

    def __call__(self, a: int, b: int) -> float:
        key = (a, b)
        v = self.cache.get(key)
        if v is None:
            v = 0.0
            for subs in self.lookups:
                for fmt, data in subs:
                    if fmt == 1:
                        second = data.get(a)
                        if second is not None and b in second:
                            v += second[b]
                            break
                    else:
                        cov, c1, c2, values = data
                        if a in cov:
                            v += float(values[c1[a], c2[b]])
                            break
            self.cache[key] = v
        return v


@functools.lru_cache(maxsize=8)
def font_from_file(path: str) -> Font:
    """:meth:`Font.from_bytes` of a font file, read once per process (the subset fonts' files are
    named by their bytes, so a path names one font)."""
    with open(path, "rb") as fh:
        return Font.from_bytes(fh.read())


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FlateGrey:
    """A grey image (``width`` × ``height``, 8 bits) compressed as the PDF holds it (rows PNG
    "Up"-filtered, then deflated at ``zlib_level``, :func:`flate_grey`): made ahead of the page,
    e.g. in another process (:mod:`kaizhou_gis.maps.reliefs`), and given to
    :meth:`Page.grey_image` as it is. ``data`` holds the stream, or ``path`` names the file that
    holds it (read when the page is written)."""

    width: int
    height: int
    zlib_level: int
    data: bytes | None = None
    path: str | None = None

    def stream(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None, "a FlateGrey holds its data or names its file"
        with open(self.path, "rb") as fh:
            return fh.read()


def flate_grey(grey: np.ndarray, zlib_level: int) -> FlateGrey:
    """``grey`` (uint8, rows top to bottom) compressed as :meth:`Page.grey_image` embeds it."""
    from kaizhou_gis.maps.sheetpng import deflate, up_filtered

    g = np.ascontiguousarray(grey, dtype=np.uint8)
    return FlateGrey(int(g.shape[1]), int(g.shape[0]), zlib_level,
                     data=deflate(up_filtered(g), zlib_level))


@dataclass
class _Image:
    image: np.ndarray | FlateGrey  # uint8 rows top to bottom, or already compressed
    zlib_level: int
    interpolate: bool


@dataclass
class Page:
    """One page (``width`` × ``height`` points) drawn by appending operators to its content
    stream. Coordinates are points from the bottom left. The methods keep the PDF graphics state
    as the drawing asked for it: :meth:`save`/:meth:`restore` bracket clipping and transforms."""

    width: float
    height: float
    ops: list[str] = field(default_factory=list)
    fonts: list[Font] = field(default_factory=list)
    used: list[dict[int, str]] = field(default_factory=list)  # per font: glyph id -> text
    images: list[_Image] = field(default_factory=list)
    alphas: list[tuple[float, float]] = field(default_factory=list)  # (fill, stroke) ExtGStates
    _alpha_now: list[tuple[float, float]] = field(default_factory=lambda: [(1.0, 1.0)])

    # graphics state -------------------------------------------------------------------------
    def save(self) -> None:
        self.ops.append("q")
        self._alpha_now.append(self._alpha_now[-1])

    def restore(self) -> None:
        self.ops.append("Q")
        self._alpha_now.pop()

    def clip_rect(self, x: float, y: float, w: float, h: float) -> None:
        """Clip what follows (until :meth:`restore`) to a rectangle."""
        self.ops.append(f"{_num(x)} {_num(y)} {_num(w)} {_num(h)} re W n")

    def _alpha(self, fill_a: float, stroke_a: float) -> None:
        """Set the fill and stroke opacity (an ExtGState; kept until changed or restored)."""
        key = (round(min(fill_a, 1.0), 4), round(min(stroke_a, 1.0), 4))
        if key == self._alpha_now[-1]:
            return
        if key not in self.alphas:
            self.alphas.append(key)
        self.ops.append(f"/A{self.alphas.index(key)} gs")
        self._alpha_now[-1] = key

    def _style(self, fill, stroke, lw: float, dash, cap: int, join: int) -> str:
        """Set the colours, width, dash, cap and join; returns the painting operator."""
        fa = sa = 1.0
        if fill is not None:
            r, g, b, fa = rgba(fill)
            self.ops.append(f"{_num(r)} {_num(g)} {_num(b)} rg")
        if stroke is not None and lw > 0:
            r, g, b, sa = rgba(stroke)
            self.ops.append(f"{_num(r)} {_num(g)} {_num(b)} RG {_num(lw)} w {cap} J {join} j")
            if dash:
                off, seq = dash
                self.ops.append("[" + " ".join(_num(v) for v in seq) + f"] {_num(off)} d")
            else:
                self.ops.append("[] 0 d")
        else:
            stroke = None
        self._alpha(fa if fill is not None else 1.0, sa if stroke is not None else 1.0)
        if fill is not None and stroke is not None:
            return "B"
        return "f" if fill is not None else ("S" if stroke is not None else "n")

    # paths ----------------------------------------------------------------------------------
    def path(self, parts, *, fill=None, stroke=None, lw: float = 1.0, dash=None, cap: int = 0,
             join: int = 1, close: bool = False) -> None:
        """Paint the polylines ``parts`` (each an (n, 2) array of points, or a list of pairs):
        filled (nonzero rule) with ``fill`` and/or stroked with ``stroke`` at ``lw`` points,
        ``dash`` = (offset, [on, off, ...]) in points, ``cap`` 0 butt / 1 round / 2 square,
        ``join`` 0 miter / 1 round / 2 bevel; ``close`` closes each part."""
        paint = self._style(fill, stroke, lw, dash, cap, join)
        chunks = []
        for p in parts:
            a = np.asarray(p, dtype=np.float64)
            if len(a) < 2:
                continue
            chunks.append(_polyline(a, close))
        if not chunks:
            return
        self.ops.append("\n".join(chunks))
        self.ops.append(paint)

    def curves(self, start, segments, *, fill=None, stroke=None, lw: float = 1.0, join: int = 0,
               cap: int = 0) -> None:
        """Paint one closed path from ``start`` through ``segments``: ("l", x, y) lines and
        ("c", x1, y1, x2, y2, x3, y3) cubic Béziers."""
        paint = self._style(fill, stroke, lw, None, cap, join)
        out = [f"{_num(start[0])} {_num(start[1])} m"]
        for s in segments:
            out.append(" ".join(_num(v) for v in s[1:]) + (" l" if s[0] == "l" else " c"))
        out.append("h")
        self.ops.append(" ".join(out))
        self.ops.append(paint)

    def markers(self, centres: np.ndarray, shape: np.ndarray, *, fill, stroke, lw: float,
                join: int = 1) -> None:
        """Paint the unit ``shape`` (closed polygon, points relative to a centre) at each of
        ``centres``, filled and stroked (one path per marker, in order)."""
        paint = self._style(fill, stroke, lw, None, 0, join)
        shape = np.asarray(shape, dtype=np.float64)
        chunks = []
        for cx, cy in np.asarray(centres, dtype=np.float64):
            chunks.append(_polyline(shape + (cx, cy), True))
            chunks.append(paint)
        self.ops.append("\n".join(chunks))

    def circles(self, centres: np.ndarray, radius: float, *, fill, stroke, lw: float) -> None:
        """Filled and stroked circles (four cubic Béziers each) of ``radius`` points."""
        paint = self._style(fill, stroke, lw, None, 0, 1)
        k = 0.5522847498 * radius
        r = radius
        chunks = []
        for cx, cy in np.asarray(centres, dtype=np.float64):
            n = _num
            chunks.append(
                f"{n(cx + r)} {n(cy)} m "
                f"{n(cx + r)} {n(cy + k)} {n(cx + k)} {n(cy + r)} {n(cx)} {n(cy + r)} c "
                f"{n(cx - k)} {n(cy + r)} {n(cx - r)} {n(cy + k)} {n(cx - r)} {n(cy)} c "
                f"{n(cx - r)} {n(cy - k)} {n(cx - k)} {n(cy - r)} {n(cx)} {n(cy - r)} c "
                f"{n(cx + k)} {n(cy - r)} {n(cx + r)} {n(cy - k)} {n(cx + r)} {n(cy)} c h {paint}")
        self.ops.append("\n".join(chunks))

    def rect(self, x: float, y: float, w: float, h: float, *, fill=None, stroke=None,
             lw: float = 1.0, join: int = 0) -> None:
        paint = self._style(fill, stroke, lw, None, 0, join)
        self.ops.append(f"{_num(x)} {_num(y)} {_num(w)} {_num(h)} re {paint}")

    # images ---------------------------------------------------------------------------------
    def grey_image(self, grey: np.ndarray | FlateGrey, x: float, y: float, w: float, h: float, *,
                   zlib_level: int = 1, interpolate: bool = False) -> None:
        """The grey image ``grey`` (uint8, rows top to bottom) filling the rectangle (``x``,
        ``y``, ``w``, ``h``): a DeviceGray image, Flate-compressed with the PNG Up predictor
        (a :class:`FlateGrey` is that compression made ahead: embedded as it is, its own level)."""
        image = grey if isinstance(grey, FlateGrey) else np.ascontiguousarray(grey, dtype=np.uint8)
        self.images.append(_Image(image, zlib_level, interpolate))
        self.ops.append(f"q {_num(w)} 0 0 {_num(h)} {_num(x)} {_num(y)} cm /Im{len(self.images) - 1} Do Q")

    # text -----------------------------------------------------------------------------------
    def font_index(self, font: Font) -> int:
        for i, f in enumerate(self.fonts):
            if f is font:
                return i
        self.fonts.append(font)
        self.used.append({})
        return len(self.fonts) - 1

    def text(self, x: float, y: float, text: str, font: Font, size: float, *, color="#000000",
             angle: float = 0.0) -> None:
        """``text`` with its baseline starting at (``x``, ``y``), ``angle`` degrees
        anticlockwise, in ``font`` at ``size`` points."""
        if not text:
            return
        fi = self.font_index(font)
        used = self.used[fi]
        gids = font.glyphs(text)
        for g, ch in zip(gids, text):
            if g and g not in used:
                used[g] = ch
        r, gg, b, a = rgba(color)
        self.ops.append(f"{_num(r)} {_num(gg)} {_num(b)} rg")
        self._alpha(a, 1.0)
        if angle:
            t = math.radians(angle)
            c, s = math.cos(t), math.sin(t)
            tm = f"{_num(c)} {_num(s)} {_num(-s)} {_num(c)} {_num(x)} {_num(y)} Tm"
        else:
            tm = f"1 0 0 1 {_num(x)} {_num(y)} Tm"
        _, _, kern = font.shape(text)
        parts, run = [], []
        for g, kk in zip(gids, kern):
            run.append(f"{g:04X}")
            if kk:  # TJ moves the next glyph left by its number (thousandths of the size)
                parts.append(f"<{''.join(run)}> {_num(-kk * 1000.0 / font.units_per_em)}")
                run = []
        if run:
            parts.append(f"<{''.join(run)}>")
        self.ops.append(f"BT /F{fi} {_num(size)} Tf {tm} [{' '.join(parts)}] TJ ET")

    # the file -------------------------------------------------------------------------------
    def to_pdf(self, info: dict[str, str] | None = None) -> bytes:
        """The page as a complete PDF file (with ``info`` as its document information)."""
        w = _Writer()
        catalog, pages, page = w.reserve(), w.reserve(), w.reserve()
        content = zlib.compress("\n".join(self.ops).encode("ascii"), STREAM_ZLIB_LEVEL)
        content_id = w.add_stream(b"/Filter /FlateDecode", content)
        font_refs = [_embed_font(w, f, u, f"{subset_tag(f.data)}+{f.ps_name}")
                     for f, u in zip(self.fonts, self.used)]
        image_refs = [_embed_image(w, im) for im in self.images]
        res = []
        if font_refs:
            res.append("/Font << " + " ".join(f"/F{i} {r} 0 R" for i, r in enumerate(font_refs)) + " >>")
        if image_refs:
            res.append("/XObject << " + " ".join(f"/Im{i} {r} 0 R" for i, r in enumerate(image_refs)) + " >>")
        if self.alphas:
            res.append("/ExtGState << " + " ".join(
                f"/A{i} << /Type /ExtGState /ca {_num(fa)} /CA {_num(sa)} >>"
                for i, (fa, sa) in enumerate(self.alphas)) + " >>")
        res.append("/ProcSet [/PDF /Text /ImageB]")
        w.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 {_num(self.width)} "
                    f"{_num(self.height)}] /Resources << {' '.join(res)} >> /Contents {content_id} 0 R >>")
        w.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
        w.set(catalog, f"<< /Type /Catalog /Pages {pages} 0 R >>")
        info_id = None
        if info:
            info_id = w.add("<< " + " ".join(f"/{k} {_pdf_string(v)}" for k, v in info.items()) + " >>")
        return w.finish(catalog, info_id)


def _polyline(a: np.ndarray, close: bool) -> str:
    """``x y m x y l ...`` of the points ``a`` (n × 2, points to 1/100), closed with ``h``
    when ``close``."""
    xy = np.round(a, 2) + 0.0  # no "-0.00"
    body = ("%.2f %.2f l " * len(xy)) % tuple(xy.ravel().tolist())
    first = body.index(" l ")
    return body[:first] + " m" + body[first + 2:] + ("h" if close else "")


def _pdf_string(s: str) -> str:
    """A PDF text string: literal (escaped) when ASCII, else UTF-16BE with a byte-order mark."""
    if all(32 <= ord(c) < 127 for c in s):
        return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"
    return "<FEFF" + s.encode("utf-16-be").hex().upper() + ">"


def subset_tag(data: bytes) -> str:
    """The six capital letters a subset font's name starts with in a PDF (``ABCDEF+Name``, PDF
    32000-1 9.6.4), from the font's bytes: the same font gets the same tag."""
    import hashlib

    h = hashlib.sha256(data).digest()
    return "".join(chr(ord("A") + b % 26) for b in h[:6])


def _embed_font(w: _Writer, font: Font, used: dict[int, str], name: str) -> int:
    """The Type0 font (``Identity-H``) over a ``CIDFontType2`` font whose CIDs are the glyph ids:
    the font file verbatim (named ``name``), the widths of the glyphs used and their ToUnicode
    map."""
    k = 1000.0 / font.units_per_em
    file_id = w.add_stream(f"/Filter /FlateDecode /Length1 {len(font.data)}".encode(),
                           font.flate)
    b = font.font_bbox
    flags = 4  # symbolic: glyphs outside the standard Latin set
    desc = w.add(f"<< /Type /FontDescriptor /FontName /{name} /Flags {flags} "
                 f"/FontBBox [{_num(b[0] * k)} {_num(b[1] * k)} {_num(b[2] * k)} {_num(b[3] * k)}] "
                 f"/ItalicAngle {_num(font.italic_angle)} /Ascent {_num(font.ascent * k)} "
                 f"/Descent {_num(font.descent * k)} /CapHeight {_num(font.cap_height * k)} "
                 f"/StemV {font.stem_v} /FontFile2 {file_id} 0 R >>")
    gids = sorted(used)
    widths = " ".join(f"{g} [{_num(round(font.advance[g] * k, 3))}]" for g in gids)
    cid = w.add(f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{name} "
                f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                f"/FontDescriptor {desc} 0 R /DW {_num(round(font.advance[0] * k, 3))} "
                f"/W [{widths}] /CIDToGIDMap /Identity >>")
    tounicode = w.add_stream(b"/Filter /FlateDecode",
                             zlib.compress(_to_unicode_cmap(used).encode("ascii"), STREAM_ZLIB_LEVEL))
    return w.add(f"<< /Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /Identity-H "
                 f"/DescendantFonts [{cid} 0 R] /ToUnicode {tounicode} 0 R >>")


def _to_unicode_cmap(used: dict[int, str]) -> str:
    """The ToUnicode CMap of glyph ids ``used`` (glyph id -> its character)."""
    items = sorted(used.items())
    lines = ["/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap",
             "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
             "/CMapName /Adobe-Identity-UCS def", "/CMapType 2 def",
             "1 begincodespacerange", "<0000> <FFFF>", "endcodespacerange"]
    for i in range(0, len(items), 100):
        chunk = items[i:i + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        lines.extend(f"<{g:04X}> <{ch.encode('utf-16-be').hex().upper()}>" for g, ch in chunk)
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines)


def _embed_image(w: _Writer, im: _Image) -> int:
    flat = im.image if isinstance(im.image, FlateGrey) else flate_grey(im.image, im.zlib_level)
    h, wd, data = flat.height, flat.width, flat.stream()
    return w.add_stream(
        (f"/Type /XObject /Subtype /Image /Width {wd} /Height {h} /ColorSpace /DeviceGray "
         f"/BitsPerComponent 8 /Filter /FlateDecode /DecodeParms << /Predictor 10 /Colors 1 "
         f"/Columns {wd} >>" + (" /Interpolate true" if im.interpolate else "")).encode(), data)


class _Writer:
    """Numbered objects written in order, then the cross-reference table and trailer."""

    def __init__(self) -> None:
        self.objs: dict[int, bytes] = {}
        self.n = 0

    def reserve(self) -> int:
        self.n += 1
        return self.n

    def set(self, num: int, body: str | bytes) -> None:
        self.objs[num] = body.encode("latin-1") if isinstance(body, str) else body

    def add(self, body: str | bytes) -> int:
        num = self.reserve()
        self.set(num, body)
        return num

    def add_stream(self, dict_entries: bytes, data: bytes) -> int:
        return self.add(b"<< " + dict_entries + b" /Length " + str(len(data)).encode()
                        + b" >>\nstream\n" + data + b"\nendstream")

    def finish(self, root: int, info: int | None) -> bytes:
        out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
        pos = len(out[0])
        offsets = {}
        for num in range(1, self.n + 1):
            offsets[num] = pos
            chunk = f"{num} 0 obj\n".encode() + self.objs[num] + b"\nendobj\n"
            out.append(chunk)
            pos += len(chunk)
        xref = [f"xref\n0 {self.n + 1}\n0000000000 65535 f \n"]
        xref += [f"{offsets[i]:010d} 00000 n \n" for i in range(1, self.n + 1)]
        trailer = f"trailer\n<< /Size {self.n + 1} /Root {root} 0 R" + \
            (f" /Info {info} 0 R" if info else "") + f" >>\nstartxref\n{pos}\n%%EOF\n"
        out.append(("".join(xref) + trailer).encode("ascii"))
        return b"".join(out)
