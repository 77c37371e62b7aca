"""Print sheets (kaizhou_gis.maps.printmap, sheet, sheetrelief, sheetlayout, sheetpool): A3 PDFs
with vector text, the hillshade at >= 300 dpi, scale, graticule and notes; the PNG at >= 200 dpi;
and the CJK font lookup (kaizhou_gis.fonts) on a machine whose matplotlib font cache predates the font."""
from __future__ import annotations

import copy
import io
import re
import warnings

import numpy as np
import pytest

from kaizhou_gis import fonts, maps
from kaizhou_gis.maps import printmap, sheetlayout, sheetpool
from kaizhou_gis.outputs.files import ScratchFile

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
    # each sheet file waits in the run's scratch folder, not in memory, until it is written
    assert all(isinstance(obj, ScratchFile) for rel, obj in res.files.items()
               if rel.endswith((".pdf", ".png")))
    assert here["pdf"] == bytes(res.files[f"maps/townships/{T2}.pdf"])
    assert here["png"] == bytes(res.files[f"maps/townships/{T2}.png"])
    # a pool of one draws in this process, with the DEM read once: the same bytes again
    with sheetpool.SheetPool(ctx, workers=1) as pool:
        fut = printmap.township_sheet(ctx, d, maps.map_layers("township", d, maps._settings(ctx.plan), T2),
                                      T2, pool=pool, formats=("pdf",))
        assert fut.result()["pdf"] == here["pdf"]


def test_worker_hands_back_files_or_bytes_never_half_of_each(tmp_path, monkeypatch):
    """A sheet drawn in a worker comes back as files in the run's scratch folder; where a file
    cannot be written (folder gone or full) the bytes come back and no file is left behind."""
    from kaizhou_gis.outputs import files

    drawn = {"pdf": b"%PDF-1.7 sheet", "png": b"\x89PNG sheet"}
    monkeypatch.setattr(sheetpool.sheet, "render_sheet", lambda specs, text, **kw: dict(drawn))
    monkeypatch.setattr(sheetpool, "_WORKER_SCRATCH", str(tmp_path))
    got = sheetpool._render_in_worker([], None, {})
    assert {k: bytes(v) for k, v in got.items()} == drawn and all(isinstance(v, ScratchFile) for v in got.values())
    assert len(list(tmp_path.iterdir())) == 2
    for v in got.values():
        v.discard()
    real_of = files.ScratchFile.of.__func__
    calls = []

    def of(cls, data, folder=None, *, owned=True):  # the PDF is written, the PNG is not
        calls.append(data)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_of(cls, data, folder, owned=owned)

    monkeypatch.setattr(files.ScratchFile, "of", classmethod(of))
    assert sheetpool._render_in_worker([], None, {}) == drawn
    assert list(tmp_path.iterdir()) == []


def test_sheet_gatherings_follow_a_replaced_frame(sheets):
    """The sheets' character set and labels are gathered once per run (MapData.cache), and again
    when a layer of the maps' data is replaced."""
    ctx, _ = sheets
    d = maps.gather(ctx, ctx.needs_of("maps"))
    text = printmap.sheet_text(ctx.plan, d, title="t", subtitle="s")
    first = printmap.font_chars(ctx.plan, d, text)
    labels = printmap._labels(d, T1)
    assert printmap.font_chars(ctx.plan, d, text) == first and printmap._labels(d, T1) == labels
    assert any(lab[2] == "东风村" for lab in labels)
    d.villages = d.villages.assign(name=d.villages["name"].astype(str).str.replace("东风村", "龘龘村"))
    assert "龘" in printmap.font_chars(ctx.plan, d, text) and "龘" not in first
    assert any(lab[2] == "龘龘村" for lab in printmap._labels(d, T1))


def test_sheets_with_their_reliefs_made_ahead_are_the_same_bytes(sheets, monkeypatch):
    """The maps step's ``prepare`` (called by run_steps before the first step) makes the sheets'
    reliefs in a worker while the analyses run; the sheets drawn with them are the same files,
    and each relief's file is removed once its sheet is drawn."""
    from concurrent.futures import wait

    from kaizhou_gis.maps import reliefs
    from kaizhou_gis.maps.step import prepare

    ctx, res = sheets
    monkeypatch.setenv(sheetpool.WORKERS_ENV, "2")
    ahead = prepare(ctx)
    assert isinstance(ahead, reliefs.ReliefPrefetch) and len(ahead) == 3  # district + 2 townships
    wait(list(ahead._futures.values()))  # as when the analyses before the maps take longer
    folder = ahead.folder
    assert len(list(folder.glob("*.flate"))) == 3
    ctx.prepared["maps"] = ahead
    try:
        again = maps.run(ctx, ctx.needs_of("maps"))
        assert ahead.taken == 3 and ahead.made_here == 0
        assert list(folder.glob("*.flate")) == []  # each removed once its sheet was drawn
    finally:
        ctx.prepared.pop("maps").close()
    assert not folder.exists()
    sheet_files = [f for f in res.files if f.endswith((".pdf", ".png"))]
    assert len(sheet_files) == 5
    for f in sheet_files:
        assert bytes(again.files[f]) == bytes(res.files[f]), f


def test_a_relief_made_ahead_is_given_only_for_its_own_arguments(sheets, monkeypatch):
    from concurrent.futures import wait

    from kaizhou_gis.maps.sheetrelief import relief_flate
    from kaizhou_gis.maps.step import prepare

    ctx, _ = sheets
    monkeypatch.setenv(sheetpool.WORKERS_ENV, "2")
    ahead = prepare(ctx)
    try:
        wait(list(ahead._futures.values()))
        d = maps.gather(ctx, ctx.needs_of("maps"))
        args = printmap.relief_args(ctx.plan, d.work_townships[d.work_townships["township_code"] == T1])
        other = printmap.relief_args(ctx.plan, d.work_townships[d.work_townships["township_code"] == T2])
        x0, y0, x1, y1 = args["bounds_xy"]
        for changed in ({"hillshade_dpi": args["hillshade_dpi"] + 1}, {"azimuth_deg": 300.0},
                        {"bounds_xy": (x0, y0, x1 + 1.0, y1)}, {"highlight": other["highlight"]}):
            assert ahead.take({**args, **changed}) is None, changed
        flat = ahead.take(args)
        assert flat is not None and flat.path is not None and ahead.take(args) is None
        here = relief_flate(sheetpool.SheetPool(ctx, workers=1).dem, args["bounds_xy"], args["work_crs"],
                            args["highlight"], hillshade_dpi=args["hillshade_dpi"],
                            azimuth_deg=args["azimuth_deg"], altitude_deg=args["altitude_deg"])
        assert (flat.width, flat.height, flat.stream()) == (here.width, here.height, here.data)
    finally:
        ahead.close()


def test_reliefs_made_ahead_for_a_township_run_and_without_prints(sheets, monkeypatch):
    from kaizhou_gis.maps.step import prepare

    ctx, _ = sheets
    monkeypatch.setenv(sheetpool.WORKERS_ENV, "2")
    cases = [({"township": T1}, 1), ({"prints": False}, 1), ({"township": T1, "prints": False}, 0)]
    base = dict(ctx.options)
    for options, n in cases:
        monkeypatch.setattr(ctx, "options", {**base, **options})
        ahead = prepare(ctx)
        try:
            assert (0 if ahead is None else len(ahead)) == n, options
        finally:
            if ahead is not None:
                ahead.close()
    monkeypatch.setenv(sheetpool.WORKERS_ENV, "1")  # one process: nothing ahead
    assert prepare(ctx) is None


def test_sheets_that_catch_up_with_the_relief_worker_shade_their_own(sheets, monkeypatch):
    """The first relief not ready stops the worker's queue: the sheets waiting behind it shade
    their own reliefs side by side instead of one after another in the single relief worker."""
    from kaizhou_gis.maps import reliefs

    ctx, _ = sheets
    d = maps.gather(ctx, ctx.needs_of("maps"))
    base = printmap.relief_args(ctx.plan, d.work_townships[d.work_townships["township_code"] == T1])
    jobs = [{**base, "hillshade_dpi": 400 + i} for i in range(6)]  # some 0.3 s each
    ahead = reliefs.ReliefPrefetch(sheetpool.SheetPool(ctx, workers=1).dem, jobs)
    try:
        assert ahead.take(jobs[-1]) is None  # not started: dropped, and the queue with it
        got = [ahead.take(j) for j in jobs[:-1]]
        assert ahead.made_here >= 3 and ahead.taken + ahead.made_here == 6
        assert all(g is None for g in got[ahead.taken:])
    finally:
        ahead.close()


def test_a_worker_of_a_killed_run_lets_go_of_its_locks_and_ends(tmp_path):
    """A run killed with SIGKILL cannot stop its workers: each lets go of the run's locks when it
    starts and ends when the run's process is gone, so the next run into --out is not refused."""
    import fcntl
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    script = (
        "import os, signal, sys, time, multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from kaizhou_gis.outputs import files\n"
        "from kaizhou_gis.forked import forked_worker_setup\n"
        "with files.output_folder(sys.argv[1]):\n"
        "    ex = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('fork'),\n"
        "                             initializer=forked_worker_setup)\n"
        "    print(ex.submit(os.getpid).result(), flush=True)\n"
        "    ex.submit(time.sleep, 120)\n"
        "    time.sleep(0.5)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    printed = tmp_path / "printed.txt"
    with open(printed, "w", encoding="utf-8") as fh:  # a file, not a pipe a worker could hold
        r = subprocess.run([sys.executable, "-c", script, str(out)], stdout=fh,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    pid = int(printed.read_text(encoding="utf-8").split()[0])

    def alive(p: int) -> bool:
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                return not any(line.startswith("State:") and "Z" in line for line in f)
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not alive(pid), "the worker outlived the killed run"
    finally:
        if alive(pid):
            os.kill(pid, 9)
    from kaizhou_gis.outputs.files import LOCK_NAME

    fd = os.open(out / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: the next run may write here
    finally:
        os.close(fd)


def test_run_steps_prepares_the_maps_and_closes_what_it_started(tmp_path, monkeypatch, caplog):
    """run_steps calls each step's ``prepare`` before the first step and closes its handle after
    the last, also when a step fails; a prepare that fails is logged and the step still runs."""
    import logging

    from kaizhou_gis import pipeline

    calls = []

    class Handle:
        def close(self):
            calls.append("close")

    def prepare(ctx):
        calls.append("prepare")
        return Handle()

    def run(ctx, needs):
        calls.append("run")
        raise RuntimeError("boom")

    monkeypatch.setattr("kaizhou_gis.maps.step.prepare", prepare)
    monkeypatch.setattr("kaizhou_gis.maps.step.run", run)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    ctx = make_ctx(tmp_path / "a")
    out = pipeline.run_steps(ctx, ["maps"], tmp_path / "out")
    assert [o.status for o in out] == ["failed"] and "boom" in out[0].message
    assert calls == ["prepare", "run", "close"] and ctx.prepared == {}

    def broken(ctx):
        raise ValueError("no head start")

    monkeypatch.setattr("kaizhou_gis.maps.step.prepare", broken)
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.pipeline"):
        out = pipeline.run_steps(make_ctx(tmp_path / "b"), ["maps"], tmp_path / "out2")
    assert calls == ["run"] and [o.status for o in out] == ["failed"]
    assert "could not start its work ahead (ValueError: no head start)" in caplog.text


def _page(pdf: bytes):
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0]


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
@pytest.mark.parametrize("code, name", [(T1, "甲镇"), (T2, "乙乡")])
def test_township_pdf_is_a3_with_title_scale_and_notes(sheets, code, name):
    ctx, res = sheets
    page = _page(bytes(res.files[f"maps/townships/{code}.pdf"]))
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
    page = _page(bytes(res.files[f"maps/townships/{T1}.pdf"]))
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
    page = _page(bytes(res.files["maps/overview.pdf"]))
    text = page.extract_text()
    assert "扶贫规划总图" in text and "甲镇" in text and "乙乡" in text
    assert re.search(r"1:\d", text)


def test_png_sheet_is_200_dpi_a3(sheets):
    from PIL import Image
    _, res = sheets
    im = Image.open(io.BytesIO(bytes(res.files[f"maps/townships/{T2}.png"])))
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


def _pdf_fonts(pdf: bytes) -> list[str]:
    """The BaseFont of every font of a one-page PDF."""
    return [str(f.get_object()["/BaseFont"]) for f in _page(pdf)["/Resources"]["/Font"].values()]


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_sheets_embed_only_the_subset_font(sheets):
    """Every character of every sheet is in the district's subset font: no PDF falls back to the
    full CJK collection (which costs a parse of the 20 MB font per embedded font)."""
    _, res = sheets
    pdfs = [rel for rel in res.files if rel.endswith(".pdf")]
    assert len(pdfs) == 3  # the overview and two townships
    for rel in pdfs:
        names = _pdf_fonts(bytes(res.files[rel]))
        assert names and all(n.split("+")[-1].startswith(fonts.SUBSET_PS_NAME) for n in names), (rel, names)


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_subset_font_holds_every_character_drawn(tmp_path):
    """The district's characters (printmap.font_chars) cover what each sheet draws, and the subset
    font made for them maps every one the full font has."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    from kaizhou_gis.maps import sheet

    ctx = make_ctx(tmp_path)
    d = maps.gather_wgs84(ctx, ctx.needs_of("maps"))
    st = maps._settings(ctx.plan)
    text = printmap.sheet_text(ctx.plan, d, title="t", subtitle="s", labels=printmap._labels(d, T1))
    chars = printmap.font_chars(ctx.plan, d, text)
    for code in (T1, T2):
        tw_text = printmap.sheet_text(ctx.plan, d, title=f"{ctx.plan.name}{d.township_names[code]}扶贫规划图",
                                      subtitle=code, labels=printmap._labels(d, code))
        assert sheet.sheet_chars(maps.map_layers("township", d, st, code), tw_text) <= chars
    assert {"东", "风", "村", "甲", "镇", "比", "例", "尺", "°", "′"} <= chars
    assert fonts.subset_family(chars) == fonts.SUBSET_FAMILY
    full_path, face = fonts._source_font(fonts.find_cjk_font(), "normal")
    full = TTFont(full_path, fontNumber=face, lazy=True).getBestCmap()
    for weight, path in fonts._SUBSET["files"].items():
        sub = TTFont(path)
        cmap = sub.getBestCmap()
        assert {ord(c) for c in chars if ord(c) in full} <= set(cmap), weight
        assert sub["name"].getDebugName(1) == fonts.SUBSET_FAMILY
        assert len(sub.getGlyphOrder()) < 5_000  # a subset, not the 65 000 glyphs of the font
    found = font_manager.findfont(font_manager.FontProperties(family=fonts.SUBSET_FAMILY, weight="bold"),
                                  fallback_to_default=False)
    assert str(found) == str(fonts._SUBSET["files"]["bold"])


@pytest.mark.skipif(not HAVE_CJK, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_a_character_outside_the_subset_draws_from_the_full_font():
    """A character the subset was not made for is drawn from the full CJK font (no missing glyph)
    and stays text in the PDF."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fonts.subset_family("开州")
    with warnings.catch_warnings(), matplotlib.rc_context(fonts.cjk_rc(subset=True)):
        warnings.simplefilter("error", UserWarning)
        fig = Figure()
        FigureCanvasAgg(fig)
        fig.text(0.1, 0.5, "开州区竹溪镇")
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf")
    names = _pdf_fonts(buf.getvalue())
    assert any(fonts.SUBSET_PS_NAME in n for n in names) and any(fonts.SUBSET_PS_NAME not in n for n in names)
    assert "开州区竹溪镇" in _page(buf.getvalue()).extract_text()


def test_hillshade_shaded_at_the_dem_resolution_agrees_with_shading_every_printed_pixel(monkeypatch):
    """The sheet's hillshade is shaded on a grid of half a DEM cell and resampled to the printed
    pixels; the grey it prints agrees with shading every printed pixel (the former method) to a
    couple of grey levels, at a fraction of the work. On the shipped DEM at 1:50 000, 300 dpi."""
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.maps import sheetrelief
    from kaizhou_gis.plan import load_plan

    plan = load_plan()
    layers = load_layers(None, plan=plan)
    cx, cy = layers.townships.to_crs(plan.work_crs).geometry.iloc[0].representative_point().coords[0]
    px = 50_000 * 25.4e-3 / 300  # metres per printed pixel: 4.23 m
    w, h = 1200, 900
    extent = (cx - w * px / 2, cy - h * px / 2, cx + w * px / 2, cy + h * px / 2)
    kw = dict(azimuth_deg=315.0, altitude_deg=45.0)
    with layers.open_dem() as dem:
        dem_arr = sheetpool.DemArray(dem.read(1), dem.transform, dem.crs, dem.nodata)
    factor = sheetrelief._shade_factor(dem_arr.transform, dem_arr.values.shape, dem_arr.crs, plan.work_crs, extent, w)
    assert factor > 4  # the DEM cell spans many printed pixels
    new = sheetrelief.sheet_hillshade(dem_arr, plan.work_crs, extent, w, h, **kw)
    monkeypatch.setattr(sheetrelief, "SHADE_OVERSAMPLE", 1e9)  # every printed pixel shaded: the former way
    every = sheetrelief.sheet_hillshade(dem_arr, plan.work_crs, extent, w, h, **kw)
    assert new.shape == every.shape == (h, w) and new.dtype == np.float32
    a = sheetrelief.shade_to_grey(new, None).astype(float)
    b = sheetrelief.shade_to_grey(every, None).astype(float)
    assert b.std() > 5  # relief
    assert np.abs(a - b).mean() < 3.0  # grey levels of 255
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def _shipped_dem_and_extent(w: int, h: int):
    """The shipped DEM in memory and a ``w`` × ``h`` grid at 1:50 000, 300 dpi over the first
    township's centre, with that township as the highlighted area."""
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.plan import load_plan

    plan = load_plan()
    layers = load_layers(None, plan=plan)
    area = layers.townships.to_crs(plan.work_crs).geometry.iloc[0]
    cx, cy = area.representative_point().coords[0]
    px = 50_000 * 25.4e-3 / 300
    extent = (cx - w * px / 2, cy - h * px / 2, cx + w * px / 2, cy + h * px / 2)
    with layers.open_dem() as dem:
        dem_arr = sheetpool.DemArray(dem.read(1), dem.transform, dem.crs, dem.nodata)
    return plan, dem_arr, extent, area


def test_sheet_relief_is_the_grey_of_the_hillshade_taken_on_the_shading_grid():
    """sheet_relief takes the (linear) grey on the shading grid and resamples that 8-bit grey;
    it prints what shade_to_grey(sheet_hillshade(...)) printed, to a grey level of 255 on
    average, fade outside the township included."""
    from rasterio.features import geometry_mask

    from kaizhou_gis.maps import sheetrelief

    w, h = 1200, 900
    plan, dem, extent, area = _shipped_dem_and_extent(w, h)
    inside = geometry_mask([area], out_shape=(h, w), transform=sheetrelief.grid_transform(extent, w, h),
                           invert=True)
    assert 0.2 < inside.mean() < 0.9  # the frame shows the township and its surroundings
    kw = dict(azimuth_deg=315.0, altitude_deg=45.0)
    old = sheetrelief.shade_to_grey(sheetrelief.sheet_hillshade(dem, plan.work_crs, extent, w, h, **kw), inside)
    new = sheetrelief.sheet_relief(dem, plan.work_crs, extent, w, h, inside=inside, **kw)
    assert new.shape == (h, w) and new.dtype == np.uint8
    a, b = old.astype(float), new.astype(float)
    assert a.std() > 20  # relief
    assert np.abs(a - b).mean() < 0.5 and np.abs(a - b).max() <= 6
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
    # outside the township the same relief, faded towards white
    assert b[~inside].mean() > b[inside].mean() + 20


def test_sheet_relief_is_white_where_the_dem_has_no_data_and_the_same_for_either_mask():
    """A DEM whose eastern half is no-data: the printed relief is white (255, faded or not) where
    the nearest shading cell has no DEM, relief elsewhere; a bool mask and a 0/255 mask print
    the same pixels."""
    from rasterio.features import geometry_mask

    from kaizhou_gis.maps import sheetrelief

    w, h = 1200, 900
    plan, dem, extent, area = _shipped_dem_and_extent(w, h)
    z = dem.read(1).copy()
    nodata = -32768 if dem.nodata is None else dem.nodata
    # no data east of the frame's centre (its longitude in the DEM's grid)
    from pyproj import Transformer
    lon, _ = Transformer.from_crs(plan.work_crs, dem.crs, always_xy=True).transform(
        (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2)
    col = int((lon - dem.transform.c) / dem.transform.a)
    z[:, col:] = nodata
    half = sheetpool.DemArray(z, dem.transform, dem.crs, nodata)
    inside = geometry_mask([area], out_shape=(h, w), transform=sheetrelief.grid_transform(extent, w, h),
                           invert=True)
    kw = dict(azimuth_deg=315.0, altitude_deg=45.0)
    a = sheetrelief.sheet_relief(half, plan.work_crs, extent, w, h, inside=inside, **kw)
    b = sheetrelief.sheet_relief(half, plan.work_crs, extent, w, h, inside=inside.astype(np.uint8) * 255, **kw)
    assert np.array_equal(a, b)
    east, west = a[:, w // 2 + 30:], a[:, : w // 2 - 30]
    assert (east == 255).all()
    assert west.std() > 10 and (west < 250).mean() > 0.5


def test_sheet_relief_of_an_integer_dem_is_that_of_its_float_copy():
    """A 16-bit DEM is warped as it is (no float32 copy of the whole band per sheet): the same
    relief, pixel for pixel, as from its float32 copy, fade included."""
    import dataclasses

    from rasterio.features import geometry_mask

    from kaizhou_gis.maps import sheetrelief

    w, h = 900, 700
    plan, dem, extent, area = _shipped_dem_and_extent(w, h)
    assert dem.values.dtype == np.int16
    inside = geometry_mask([area], out_shape=(h, w), transform=sheetrelief.grid_transform(extent, w, h),
                           invert=True)
    as_float = dataclasses.replace(dem, values=dem.values.astype(np.float32))
    kw = dict(azimuth_deg=315.0, altitude_deg=45.0, inside=inside)
    a = sheetrelief.sheet_relief(dem, plan.work_crs, extent, w, h, **kw)
    b = sheetrelief.sheet_relief(as_float, plan.work_crs, extent, w, h, **kw)
    assert a.std() > 20 and np.array_equal(a, b)
    # a no-data value GDAL refuses for the band's type: warped from the float copy, as before
    assert not sheetrelief._nodata_fits(-9999, np.dtype("uint16"))
    assert not sheetrelief._nodata_fits(float("nan"), np.dtype("int16"))
    assert sheetrelief._nodata_fits(-32768, np.dtype("int16")) and sheetrelief._nodata_fits(None, np.dtype("int16"))
    as_uint = dataclasses.replace(dem, values=(dem.values.astype(np.int32) + 1000).astype(np.uint16), nodata=-9999)
    c = sheetrelief.sheet_relief(as_uint, plan.work_crs, extent, w, h, **kw)  # no "src_nodata" error
    assert np.array_equal(a, c)  # a uniform 1000 m lift shades the same


def test_relief_is_one_lossless_grey_image_in_the_pdf_and_fills_the_frame_in_the_png():
    """The sheet writes the relief's grey itself into the PDF (DeviceGray, decoded back to the
    same bytes through the Up-predictor Flate stream, north up) over the map frame, and PDFium
    draws it onto the frame's pixels of the raster sheet (the grey resampled to those pixels)."""
    from PIL import Image

    from kaizhou_gis.maps import pdfwriter, sheetpng, sheetrelief

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:300, 0:400]
    grey = np.clip(128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + rng.normal(0, 8, xx.shape),
                   0, 255).astype(np.uint8)
    grey[:50, :80] = 255  # a step, and a corner that tells up from down and left from right
    page = pdfwriter.Page(4 * 72, 3 * 72)
    page.save()
    page.clip_rect(0.1 * 288, 0.1 * 216, 0.8 * 288, 0.8 * 216)
    page.grey_image(grey, 0.1 * 288, 0.1 * 216, 0.8 * 288, 0.8 * 216,
                    zlib_level=sheetrelief.PDF_RELIEF_ZLIB_LEVEL)
    page.restore()
    pdf = page.to_pdf()
    (img,) = list(_page(pdf).images)
    assert img.image.mode == "L"
    assert np.array_equal(np.asarray(img.image), grey)  # lossless, north up
    png = sheetpng.rasterize_pdf(pdf, (400, 300), 100)[..., 0].astype(float)
    frame = png[30:270, 40:360]  # 0.1-0.9 of a 400 × 300 px page
    want = np.asarray(Image.fromarray(grey).resize((320, 240), Image.Resampling.BILINEAR)).astype(float)
    d = np.abs(frame - want)
    assert d.mean() < 4.0 and np.median(d) <= 2  # PDFium resamples a little sharper than bilinear
    assert d.mean() < 0.3 * np.abs(frame - want[::-1]).mean()  # north up, not upside down
    assert (png[:25] == 255).all() and (png[-25:] == 255).all()  # nothing outside the frame


def test_png_sheet_is_the_pdf_rasterized(sheets):
    """The PNG is the PDF's page drawn by PDFium at 200 dpi (one drawing for both files): the
    same pixels as rasterizing the PDF again, and the PDF's relief image where the map frame is."""
    from PIL import Image

    from kaizhou_gis.maps import sheetpng

    ctx, res = sheets
    pdf, png = bytes(res.files[f"maps/townships/{T1}.pdf"]), bytes(res.files[f"maps/townships/{T1}.png"])
    im = Image.open(io.BytesIO(png))
    assert im.mode == "RGB" and im.info["dpi"] == pytest.approx((200, 200), abs=0.01)
    assert im.info["Title"] == _page(pdf).pdf.metadata["/Title"] and im.info["Software"] == "kaizhou-gis"
    rgb = np.asarray(im)
    assert np.array_equal(rgb, sheetpng.rasterize_pdf(pdf, im.size, 200, smooth_images=False))
    # the map frame of the PNG shows the PDF's relief (lines, labels and graticule drawn over it)
    lay = sheetlayout.plan_layout(printmap._work_bounds(
        ctx.layers.townships[ctx.layers.townships["township_code"] == T1].to_crs(ctx.plan.work_crs)))
    fx, fy, fw, fh = (v / 25.4 * 200 for v in lay.frame_mm)
    top = lay.page_mm[1] / 25.4 * 200 - fy - fh
    box = (int(fx) + 3, int(top) + 3, int(fx + fw) - 3, int(top + fh) - 3)
    relief = np.asarray(list(_page(pdf).images)[0].image.convert("L"))
    want = np.asarray(Image.fromarray(relief).resize((int(fw), int(fh)), Image.Resampling.BILINEAR))
    got = np.asarray(im.convert("L").crop(box)).astype(float)
    want = want[3:3 + got.shape[0], 3:3 + got.shape[1]].astype(float)
    d = np.abs(got - want)
    assert np.median(d) == 0 and (d <= 3).mean() > 0.9
    assert d.mean() < 0.7 * np.abs(got - want[::-1]).mean()  # north up, not the relief upside down


def test_png_draws_the_relief_unsmoothed_within_a_few_grey_levels(sheets):
    """The PNG is drawn with PDFium's image smoothing off (a third of its drawing time) when the
    relief is at least the PNG's resolution (300 dpi and 200): the relief is already smooth, so
    the page differs from a smoothed drawing by a few grey levels, in a handful of pixels (the
    fade's edge); a coarser relief is smoothed as it is enlarged."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c
    from PIL import Image

    _, res = sheets
    pdf, png = bytes(res.files[f"maps/townships/{T1}.pdf"]), bytes(res.files[f"maps/townships/{T1}.png"])
    got = np.asarray(Image.open(io.BytesIO(png))).astype(int)
    doc = pypdfium2.PdfDocument(pdf)
    try:
        page = doc[0]
        full_h = page.render(scale=200 / 72, rev_byteorder=True, draw_annots=False,
                             force_bitmap_format=pdfium_c.FPDFBitmap_BGR).to_numpy().copy()
        page.close()
    finally:
        doc.close()
    smoothed = full_h[:got.shape[0], :got.shape[1]].astype(int)
    d = np.abs(got - smoothed).max(axis=2)
    assert d.max() <= 16 and (d > 2).mean() < 0.001 and d.mean() < 0.05  # edges of the fade
    assert (d > 0).any()  # the drawings differ: the smoothing is in fact off
    # a relief coarser than the PNG (100 dpi for a 200-dpi PNG) is smoothed as it is enlarged
    from kaizhou_gis.maps import sheetpng
    from kaizhou_gis.plan import with_overrides

    ctx, _ = sheets
    coarse = copy.copy(ctx)
    coarse.plan = with_overrides(ctx.plan, {"maps.print_hillshade_dpi": 100})
    d_maps = maps.gather(coarse, coarse.needs_of("maps"))
    specs = maps.map_layers("township", d_maps, maps._settings(coarse.plan), T1)
    sheet = printmap.township_sheet(coarse, d_maps, specs, T1)
    size = Image.open(io.BytesIO(sheet["png"])).size
    drawn = np.asarray(Image.open(io.BytesIO(sheet["png"])))
    assert np.array_equal(drawn, sheetpng.rasterize_pdf(sheet["pdf"], size, 200, smooth_images=True))
    assert not np.array_equal(drawn, sheetpng.rasterize_pdf(sheet["pdf"], size, 200, smooth_images=False))


def test_encode_png_round_trip():
    """The sheet's PNG writer: Pillow reads back the same pixels, the resolution and the text
    chunks (a Chinese title as iTXt)."""
    from PIL import Image

    from kaizhou_gis.maps import sheetpng

    rgb = np.random.default_rng(3).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    rgb[5:9] = rgb[4]  # repeated rows: the Up filter's zeros
    png = sheetpng.encode_png(rgb, dpi=200, info={"Title": "开州区汉丰街道扶贫规划图", "Software": "kaizhou-gis"})
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.mode == "RGB" and im.size == (53, 37)
    assert np.array_equal(np.asarray(im), rgb)
    assert im.info["Title"] == "开州区汉丰街道扶贫规划图" and im.info["Software"] == "kaizhou-gis"
    assert im.info["dpi"] == pytest.approx((200, 200), abs=0.01)
    assert sheetpng.up_filtered(rgb.reshape(37, -1))[6, 1:].tolist() == [0] * 159


def test_rasterize_pdf_from_several_threads():
    """PDFium is called by one thread at a time (a web workbench draws sheets in threads): the
    same page rasterized from four threads at once gives the same pixels each time."""
    from concurrent.futures import ThreadPoolExecutor

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from kaizhou_gis.maps import sheetpng

    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    fig.add_artist(Line2D([0.1, 0.9], [0.2, 0.8], color="red"))
    fig.text(0.1, 0.5, "Kaizhou 1:50 000")
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    pdf = buf.getvalue()
    one = sheetpng.rasterize_pdf(pdf, (300, 200), 100)
    assert one.shape == (200, 300, 3) and (one[..., 0] > one[..., 1] + 100).any()  # the red line
    with ThreadPoolExecutor(4) as ex:
        many = list(ex.map(lambda _: sheetpng.rasterize_pdf(pdf, (300, 200), 100), range(12)))
    assert all(np.array_equal(m, one) for m in many)
    with pytest.raises(ValueError, match="less than"):
        sheetpng.rasterize_pdf(pdf, (301, 200), 100)


@pytest.mark.parametrize("lengths", [[], [3], [2, 5, 1, 4], [7, 2]])
def test_lines_projected_together_are_each_lines_projection(lengths):
    """sheet._each_transformed: one transformer call for a category's lines gives each line the
    points its own call gives, bit for bit, in order."""
    from pyproj import Transformer

    from kaizhou_gis.maps import sheet

    to_work = Transformer.from_crs(4326, 4547, always_xy=True)

    def tr(latlon):
        x, y = to_work.transform(latlon[:, 1], latlon[:, 0])
        return np.column_stack([x, y])

    rng = np.random.default_rng(3)
    parts = [rng.random((n, 2)) * 0.5 + [31.0, 108.0] for n in lengths]
    got = sheet._each_transformed(tr, parts)
    assert len(got) == len(parts)
    for g, p in zip(got, parts):
        assert g.shape == (len(p), 2) and np.array_equal(g, tr(p))
