"""The print sheets' PDF writer (kaizhou_gis.maps.pdfwriter): text in the embedded subset font
that PDF readers extract again, its widths, dashes, images in place, reproducible bytes."""
from __future__ import annotations

import io
import re
import zlib

import numpy as np
import pytest

from kaizhou_gis import fonts
from kaizhou_gis.maps import pdfwriter, sheetpng

pypdf = pytest.importorskip("pypdf")
HAVE_CJK = fonts.find_cjk_font() is not None
WORDS = "开州区汉丰街道 Scale 1:50 000 AVATAR"


@pytest.fixture(scope="module")
def font():
    files = fonts.sheet_font_files(frozenset(WORDS))
    return pdfwriter.font_from_file(files["normal"])


def _text_pdf(font, text=WORDS, size=12.0):
    page = pdfwriter.Page(300, 100)
    page.text(20, 50, text, font, size, color="#123456")
    return page.to_pdf({"Title": "测试 test"})


def _pdfium_text(pdf: bytes) -> str:
    import pypdfium2

    doc = pypdfium2.PdfDocument(pdf)
    try:
        tp = doc[0].get_textpage()
        return tp.get_text_range()
    finally:
        doc.close()


def _streams(pdf: bytes) -> list[bytes]:
    """The decompressed streams of a PDF written by the writer (Flate)."""
    out = []
    for m in re.finditer(rb"stream\n(.*?)\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    return out


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_text_round_trips_through_pdfium_and_pypdf(font):
    """The text is real text: PDFium and pypdf extract the same characters (ToUnicode), the font
    is embedded whole as a CIDFontType2 font with a subset tag, and the document info is there."""
    pdf = _text_pdf(font)
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert _pdfium_text(pdf).strip() == WORDS
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.pages[0].extract_text().strip() == WORDS
    assert reader.metadata["/Title"] == "测试 test"
    f0 = reader.pages[0]["/Resources"]["/Font"]["/F0"].get_object()
    assert f0["/Subtype"] == "/Type0" and f0["/Encoding"] == "/Identity-H"
    cid = f0["/DescendantFonts"][0].get_object()
    assert cid["/Subtype"] == "/CIDFontType2"
    assert re.fullmatch(r"/[A-Z]{6}\+" + fonts.SUBSET_PS_NAME + "-Regular", str(f0["/BaseFont"]))
    embedded = cid["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
    assert embedded == font.data  # the subset font verbatim, not subset again


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_widths_are_the_fonts_advances(font):
    """/W gives each glyph used its hmtx advance in 1/1000 em; the text's width is their sum plus
    the font's kerning; a CJK ideograph is one em wide."""
    from fontTools.ttLib import TTFont

    pdf = _text_pdf(font)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    cid = reader.pages[0]["/Resources"]["/Font"]["/F0"].get_object()["/DescendantFonts"][0].get_object()
    w = list(cid["/W"])
    widths = {int(w[i]): float(w[i + 1][0]) for i in range(0, len(w), 2)}
    tt = TTFont(io.BytesIO(font.data))
    upem = tt["head"].unitsPerEm
    cmap, order, hmtx = tt.getBestCmap(), tt.getGlyphOrder(), tt["hmtx"].metrics
    for ch in set(WORDS) - {" "}:
        g = order.index(cmap[ord(ch)])
        assert widths[g] == pytest.approx(hmtx[cmap[ord(ch)]][0] * 1000 / upem, abs=1e-3), ch
    assert font.advance_pt("开州区", 10.0) == pytest.approx(30.0)
    plain = sum(hmtx[cmap[ord(c)]][0] for c in "AVATAR") * 12.0 / upem
    kerned = font.advance_pt("AVATAR", 12.0)
    assert kerned < plain - 0.5  # "AV", "VA", "TA" kerned closer
    ext = font.extents("开州区", 10.0)
    assert 27.0 < ext[0] <= 30.0 and 7.0 < ext[1] < 9.5 and 0.5 < ext[2] < 2.0


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_text_is_drawn_where_placed(font):
    """The glyphs are drawn from the baseline start given (PDFium's character boxes)."""
    import pypdfium2

    pdf = _text_pdf(font, "开州", 20.0)
    doc = pypdfium2.PdfDocument(pdf)
    try:
        tp = doc[0].get_textpage()
        left, bottom, right, top = tp.get_charbox(0)
        assert 19.0 < left < 22.0 and 44.0 < bottom < 51.0 and 64.0 < top < 70.0
        left2 = tp.get_charbox(1)[0]
        assert left2 - left == pytest.approx(20.0, abs=0.5)  # one em further
    finally:
        doc.close()


def test_dash_pattern_and_line_width():
    """A dashed stroke writes its width and dash array and draws dashes: on 8 pt, off 4 pt."""
    page = pdfwriter.Page(200, 40)
    page.path([np.array([[10.0, 20.0], [190.0, 20.0]])], stroke="#000000", lw=2.0,
              dash=(0.0, [8.0, 4.0]))
    pdf = page.to_pdf()
    content = _streams(pdf)[0].decode()
    assert "2 w" in content and "[8 4] 0 d" in content and "10.00 20.00 m 190.00 20.00 l" in content
    row = sheetpng.rasterize_pdf(pdf, (200, 40), 72)[20, :, 0]  # the line's row, 1 px per point
    ink = row[10:190] < 128
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, ink.astype(int), 0])))[::2]
    assert len(runs) == 15 and all(7 <= r <= 9 for r in runs)  # 180 pt / 12 pt a dash


def test_image_fills_its_rectangle_north_up():
    """A grey image is decoded back losslessly and drawn into its rectangle, its first row at the
    top; nothing is drawn outside it."""
    grey = np.full((20, 40), 200, dtype=np.uint8)
    grey[:10, :20] = 0  # the top left quarter black
    page = pdfwriter.Page(100, 60)
    page.grey_image(grey, 10, 10, 80, 40)
    pdf = page.to_pdf()
    (img,) = list(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].images)
    assert np.array_equal(np.asarray(img.image), grey)
    px = sheetpng.rasterize_pdf(pdf, (100, 60), 72)[..., 0]  # row 0 is the page's top
    assert px[15, 15] < 30 and px[45, 15] == 200 and px[15, 80] == 200  # top left black
    assert (px[:9] == 255).all() and (px[:, :9] == 255).all() and (px[52:] == 255).all()


def test_fill_stroke_alpha_and_clip():
    """Fills take their colour and opacity (an ExtGState), and a clip rectangle keeps a fill
    inside it until the state is restored."""
    page = pdfwriter.Page(100, 100)
    page.save()
    page.clip_rect(0, 0, 50, 100)
    page.rect(0, 0, 100, 100, fill="#ff0000")
    page.restore()
    page.rect(0, 0, 100, 50, fill=(0.0, 0.0, 1.0, 0.5))
    page.rect(60, 60, 10, 10, fill="#00ff00")  # opaque again after the translucent fill
    px = sheetpng.rasterize_pdf(page.to_pdf(), (100, 100), 72)
    assert tuple(px[10, 10]) == (255, 0, 0) and tuple(px[10, 90]) == (255, 255, 255)
    assert px[90, 90, 2] > 120 and px[90, 90, 0] > 120  # blue at half opacity over white
    assert tuple(px[35, 65]) == (0, 255, 0)


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_same_drawing_same_bytes(font):
    assert _text_pdf(font) == _text_pdf(font)
    assert _text_pdf(font) != _text_pdf(font, "开州区")


def test_colours():
    assert pdfwriter.rgba("#ff8000") == pytest.approx((1.0, 128 / 255, 0.0, 1.0))
    assert pdfwriter.rgba("#f80") == pdfwriter.rgba("#ff8800")
    assert pdfwriter.rgba("0.8") == pytest.approx((0.8, 0.8, 0.8, 1.0))
    assert pdfwriter.rgba("#00000080")[3] == pytest.approx(128 / 255)
    with pytest.raises(ValueError, match="colour"):
        pdfwriter.rgba("not-a-colour")


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_a_sheet_draws_characters_outside_font_chars_and_outside_the_cjk_font(tmp_path):
    """A label with a character the district's characters (font_chars) missed is still drawn
    from the subset font (made for font_chars and the sheet's own characters); a character the
    CJK font lacks (Georgian) is drawn from DejaVu Sans, as matplotlib fell back to it. Both stay
    text, and no glyph is the .notdef box."""
    import pypdfium2

    from kaizhou_gis.crs import transformer
    from kaizhou_gis.maps import sheet
    from kaizhou_gis.maps.sheetlayout import SheetText

    text = SheetText(title="开州区测试图", subtitle="s", producing_unit="u", date="2026-01-01",
                     sources=["src"], status=["ok"], crs_note="EPSG:4545",
                     labels=[(108.4, 31.2, "竹溪镇 ქ", "township")])
    x, y = transformer("EPSG:4326", "EPSG:4545").transform(108.4, 31.2)
    res = sheet.render_sheet([], text, bounds_xy=(x - 2000, y - 2000, x + 2000, y + 2000),
                             work_crs="EPSG:4545", formats=("pdf",), font_chars=frozenset("开州区"))
    pdf = res["pdf"]
    doc = pypdfium2.PdfDocument(pdf)
    try:
        extracted = doc[0].get_textpage().get_text_range()
    finally:
        doc.close()
    assert "竹溪镇 ქ" in extracted and "开州区测试图" in extracted
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    names = sorted(str(f.get_object()["/BaseFont"]) for f in reader.pages[0]["/Resources"]["/Font"].values())
    assert len(names) == 2, names
    assert sorted(n.split("+")[1] for n in names) == sorted([fonts.SUBSET_PS_NAME + "-Regular",
                                                            sheet.FALLBACK_PS_NAME]), names
    content = _streams(pdf)[0].decode()
    glyphs = [run[i:i + 4] for run in re.findall(r"<([0-9A-F]+)>", content) for i in range(0, len(run), 4)]
    assert len(glyphs) > 100 and "0000" not in glyphs  # no glyph drawn as .notdef (glyph 0)


def test_the_sheet_modules_do_not_draw_with_matplotlib(tmp_path):
    """The sheet worker imports no matplotlib to draw: the modules import none, and a sheet drawn
    in a fresh process loads neither matplotlib's figure, text nor any backend (the font lookup
    may read matplotlib's font list)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (
        "import sys\n"
        "from kaizhou_gis.maps import pdfwriter, sheet, sheetpng, sheetpool, sheetrelief, printmap\n"
        "assert not [m for m in sys.modules if m.startswith('matplotlib')], 'imported'\n"
        "from kaizhou_gis.crs import transformer\n"
        "from kaizhou_gis.maps.sheetlayout import SheetText\n"
        "x, y = transformer('EPSG:4326', 'EPSG:4545').transform(108.4, 31.2)\n"
        "t = SheetText(title='开州区', subtitle='s', producing_unit='u', date='2026-01-01', sources=['a'],"
        " status=['b'], crs_note='c', labels=[(108.4, 31.2, '竹溪镇', 'township')])\n"
        "res = sheet.render_sheet([], t, bounds_xy=(x - 2000, y - 2000, x + 2000, y + 2000),"
        " work_crs='EPSG:4545', formats=('pdf', 'png'), png_dpi=30)\n"
        "assert res['pdf'].startswith(b'%PDF') and res['png'].startswith(b'\\x89PNG')\n"
        "bad = [m for m in sys.modules if m.startswith(('matplotlib.figure', 'matplotlib.text',"
        " 'matplotlib.backends.backend_', 'matplotlib.pyplot', 'matplotlib.axes'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
