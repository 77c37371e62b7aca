"""Print sheets (kaizhou_gis.maps.printmap, sheet, sheetlayout, sheetpool): A3 PDFs with vector
text, the hillshade at >= 300 dpi, scale, graticule and notes; the PNG at >= 200 dpi; and the CJK
font lookup (kaizhou_gis.fonts) on a machine whose matplotlib font cache predates the font."""
from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest

from kaizhou_gis import fonts, maps
from kaizhou_gis.maps import printmap, sheetlayout, sheetpool

pypdf = pytest.importorskip("pypdf")

from test_maps import T1, T2, make_ctx  # noqa: E402  (tests/ is on sys.path)

A3_PT = (420 / 25.4 * 72, 297 / 25.4 * 72)
HAVE_CJK = fonts.find_cjk_font() is not None


@pytest.fixture(scope="module")
def sheets(tmp_path_factory):
    ctx = make_ctx(tmp_path_factory.mktemp("print"))
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("error", UserWarning)  # a missing glyph fails here too
        mp.setenv(sheetpool.WORKERS_ENV, "2")  # sheets drawn in 2 worker processes
        assert sheetpool.sheet_workers() == 2
        res = maps.run(ctx, ctx.needs_of("maps"))
    return ctx, res


def test_sheets_from_worker_processes_are_the_bytes_drawn_in_process(sheets):
    """maps.run draws the sheets in worker processes; one drawn here, alone, is the same file."""
    ctx, res = sheets
    d = maps.gather(ctx, ctx.needs_of("maps"))
    here = printmap.township_sheet(ctx, d, maps.map_layers("township", d, maps._settings(ctx.plan), T2), T2)
    assert here["pdf"] == res.files[f"maps/townships/{T2}.pdf"]
    assert here["png"] == res.files[f"maps/townships/{T2}.png"]
    # a pool of one draws in this process, with the DEM read once: the same bytes again
    with sheetpool.SheetPool(ctx, workers=1) as pool:
        fut = printmap.township_sheet(ctx, d, maps.map_layers("township", d, maps._settings(ctx.plan), T2),
                                      T2, pool=pool, formats=("pdf",))
        assert fut.result()["pdf"] == here["pdf"]


def _page(pdf: bytes):
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0]


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
@pytest.mark.parametrize("code, name", [(T1, "甲镇"), (T2, "乙乡")])
def test_township_pdf_is_a3_with_title_scale_and_notes(sheets, code, name):
    ctx, res = sheets
    page = _page(res.files[f"maps/townships/{code}.pdf"])
    w, h = float(page.mediabox.width), float(page.mediabox.height)
    assert sorted((round(w), round(h))) == sorted((round(A3_PT[0]), round(A3_PT[1])))
    text = page.extract_text()
    assert f"开州区{name}扶贫规划图" in text  # the title (图名) is text, not outlines
    m = re.search(r"1:(\d{1,3}(?: \d{3})+|\d+)", text)
    assert m and "比例尺" in text
    denominator = int(m.group(1).replace(" ", ""))
    assert denominator == sheetlayout.nice_scale(denominator) and 5_000 <= denominator <= 500_000
    for word in ("图例", "制图单位", "开州区扶贫开发办公室", "制图日期", "数据来源", "数据状态",
                 "CGCS2000", "合成数据", "synthe"):
        assert word.lower() in text.lower(), word
    assert re.search(r"108°\d\d′E", text) and re.search(r"31°\d\d′N", text)  # graticule labels
    # the village names are text on the sheet (vector labels)
    assert ("东风村" in text) == (code == T1) and ("高山村" in text) == (code == T2)


def test_hillshade_raster_is_at_least_300_dpi(sheets):
    ctx, res = sheets
    page = _page(res.files[f"maps/townships/{T1}.pdf"])
    images = list(page.images)
    assert len(images) == 1  # only the hillshade is raster; lines, points and labels are vector
    wpx, hpx = images[0].image.size
    lay = sheetlayout.plan_layout(printmap._work_bounds(
        ctx.layers.townships[ctx.layers.townships["township_code"] == T1].to_crs(ctx.plan.work_crs)))
    fw_in, fh_in = lay.frame_mm[2] / 25.4, lay.frame_mm[3] / 25.4
    assert wpx / fw_in >= 299.5 and hpx / fh_in >= 299.5
    shade = np.asarray(images[0].image.convert("L"))
    assert shade.std() > 3  # relief, not a flat grey


def test_district_overview_pdf(sheets):
    _, res = sheets
    page = _page(res.files["maps/overview.pdf"])
    text = page.extract_text()
    assert "扶贫规划总图" in text and "甲镇" in text and "乙乡" in text
    assert re.search(r"1:\d", text)


def test_png_sheet_is_200_dpi_a3(sheets):
    from PIL import Image
    _, res = sheets
    im = Image.open(io.BytesIO(res.files[f"maps/townships/{T2}.png"]))
    assert im.format == "PNG"
    long_px, short_px = max(im.size), min(im.size)
    assert long_px >= 420 / 25.4 * 200 - 2 and short_px >= 297 / 25.4 * 200 - 2
    assert np.asarray(im.convert("L")).std() > 20  # hillshade, layers and text, not blank


def test_scale_and_layout_choice():
    assert sheetlayout.nice_scale(43_210) == 50_000
    assert sheetlayout.nice_scale(50_000) == 50_000
    assert sheetlayout.nice_scale(50_001) == 60_000
    assert sheetlayout.nice_scale(8_100) == 10_000
    assert sheetlayout.format_scale(250000) == "1:250 000"
    wide = sheetlayout.plan_layout((0, 0, 30_000, 10_000))
    tall = sheetlayout.plan_layout((0, 0, 10_000, 30_000))
    assert wide.orientation == "landscape" and tall.orientation == "portrait"
    for lay in (wide, tall):  # the area fits the frame at the chosen scale
        xmin, ymin, xmax, ymax = lay.extent
        assert xmax - xmin >= 30_000 * (lay.orientation == "landscape") + 10_000 * (lay.orientation == "portrait")
        assert (xmax - xmin) / (lay.frame_mm[2] / 1000) == pytest.approx(lay.scale)


def test_write_township_pdf(tmp_path):
    ctx = make_ctx(tmp_path)
    out = printmap.write_township_pdf(ctx, T1, tmp_path / "out" / "sheet.pdf")
    assert out.exists() and out.read_bytes().startswith(b"%PDF")
    assert not list((tmp_path / "out").glob(".*"))  # written atomically, no temp left


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_cjk_font_found_when_the_cache_predates_the_font():
    """A font manager whose cache lists no CJK font (as if written before fonts-noto-cjk was
    installed): the helper registers the system's CJK font files and the text draws without a
    missing-glyph warning."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stale = font_manager.FontManager.__new__(font_manager.FontManager)
    stale.__dict__.update(font_manager.fontManager.__dict__)
    stale.ttflist = [f for f in font_manager.fontManager.ttflist if f.name not in fonts.CJK_FAMILIES]
    assert fonts._registered(stale) is None
    name = fonts.find_cjk_font(stale, font_files=font_manager.findSystemFonts())
    assert name in fonts.CJK_FAMILIES
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        import matplotlib
        with matplotlib.rc_context(fonts.cjk_rc()):
            fig = Figure()
            FigureCanvasAgg(fig)
            fig.text(0.1, 0.5, "开州区 乡镇规划图 比例尺")
            fig.savefig(io.BytesIO(), format="png")


def test_missing_glyph_would_fail():
    """The check is real: DejaVu Sans alone has no Chinese glyphs and warns."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with pytest.warns(UserWarning, match="Glyph"):
        with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
            fig = Figure()
            FigureCanvasAgg(fig)
            fig.text(0.1, 0.5, "开州")
            fig.savefig(io.BytesIO(), format="png")


def test_sheets_are_drawn_from_wgs84_data_with_the_gaode_basemap(tmp_path):
    from unittest import mock
    ctx = make_ctx(tmp_path, basemap="gaode", township=T1)
    shifted = maps.gather(ctx, ctx.needs_of("maps"))
    assert shifted.basemap == "gaode"
    with pytest.raises(ValueError, match="WGS84"):
        printmap.township_sheet(ctx, shifted, maps.map_layers("township", shifted, maps._settings(ctx.plan), T1), T1)
    seen = []

    def record(ctx_, d, specs, code, **kw):
        seen.append(d.basemap)
        return {"pdf": b"%PDF", "png": b"png"}

    with mock.patch.object(printmap, "township_sheet", record):
        res = maps.run(ctx, ctx.needs_of("maps"))
    assert seen == ["offline"] and f"maps/townships/{T1}.pdf" in res.files
