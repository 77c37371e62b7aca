"""One place that finds a font with Chinese glyphs for everything matplotlib draws (maps, PDFs,
report charts).

matplotlib keeps a font cache (``~/.cache/matplotlib/fontlist-*.json``). On a machine where that
cache was written before a CJK font was installed (``apt-get install fonts-noto-cjk`` after the
first plot), the cache does not list the font and every Chinese character is drawn as a box with
a "Glyph ... missing from font(s)" warning. :func:`find_cjk_font` therefore takes a CJK font from
the cache only when its file still exists and, otherwise, scans the system font folders and
registers the CJK font files it finds (``FontManager.addfont``), so the font works without
deleting the cache. Every matplotlib drawing (township and district print sheets and PNGs,
report charts) takes its rc settings from :func:`cjk_rc`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

#: Families with Chinese glyphs, in order of preference (Simplified Chinese first).
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Source Han Sans SC",
                "Source Han Sans CN", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
                "Microsoft YaHei", "PingFang SC", "Noto Serif CJK SC", "AR PL UMing CN",
                "Droid Sans Fallback")
#: Parts of font file names that identify CJK fonts (lower case, without separators).
CJK_FILE_HINTS = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "wenquanyi", "simhei",
                  "msyh", "pingfang", "uming", "droidsansfallback")

_FOUND: dict[int, str | None] = {}


def _registered(fm_manager) -> str | None:
    """The preferred CJK family the font manager lists with a font file that still exists (a cached
    list can also name files that were removed since)."""
    have = {f.name for f in fm_manager.ttflist if os.path.exists(f.fname)}
    return next((n for n in CJK_FAMILIES if n in have), None)


def find_cjk_font(fm_manager=None, *, font_files: list[str] | None = None) -> str | None:
    """The family name of a usable CJK font, registering system CJK font files if needed.

    ``fm_manager`` defaults to matplotlib's global ``fontManager``; ``font_files`` to the system
    font files (``font_manager.findSystemFonts()``). Returns None when the machine has none.
    """
    from matplotlib import font_manager

    fm_manager = fm_manager or font_manager.fontManager
    key = id(fm_manager)
    if key in _FOUND and font_files is None:
        return _FOUND[key]
    name = _registered(fm_manager)
    if name is None:  # a cache older than the font: register the files themselves
        files = font_files if font_files is not None else font_manager.findSystemFonts()
        for path in files:
            low = str(path).lower().replace("-", "").replace("_", "").replace(" ", "")
            if any(h in low for h in CJK_FILE_HINTS):
                try:
                    fm_manager.addfont(path)
                except (OSError, RuntimeError, ValueError) as e:  # unreadable font file
                    log.debug("font %s not usable: %s", path, e)
        name = _registered(fm_manager)
        if name is not None:
            log.info("registered CJK font %s (matplotlib's font cache did not list it)", name)
    if name is None:
        log.warning("no font with Chinese glyphs found; Chinese text in PNG/PDF maps and charts "
                    "shows as boxes (install fonts-noto-cjk).")
    _FOUND[key] = name
    return name


def cjk_font_family(*, subset: bool = False) -> list[str]:
    """``font.sans-serif`` list: the CJK font (when there is one), then DejaVu Sans; with
    ``subset``, the subset font of :func:`subset_family` first (when one is registered)."""
    name = find_cjk_font()
    first = [SUBSET_FAMILY] if subset and name and _SUBSET["files"] else []
    return first + ([name] if name else []) + ["DejaVu Sans"]


def cjk_rc(*, subset: bool = False, **extra) -> dict:
    """matplotlib rc settings for Chinese text (and TrueType fonts embedded in PDFs, so the text
    stays text: searchable and extractable).

    With ``subset`` the family is the list of :func:`cjk_font_family` itself (subset font, full
    CJK font, DejaVu Sans), so matplotlib falls back glyph by glyph along it; the generic
    ``sans-serif`` family would take only the first font of the list."""
    rc = {"font.family": cjk_font_family(subset=True) if subset else "sans-serif",
          "font.sans-serif": cjk_font_family(subset=subset),
          "axes.unicode_minus": False, "pdf.fonttype": 42, "ps.fonttype": 42}
    rc.update(extra)
    return rc


#: matplotlib's rc settings are one process-wide dict: a drawing in one thread (the web
#: workbench draws reports and sheets in worker threads) must not see another thread's
#: ``rc_context`` end half-way (its text then falls back to DejaVu Sans: boxes for Chinese).
_RC_LOCK = threading.RLock()


@contextlib.contextmanager
def cjk_context(*, subset: bool = False, **extra) -> Iterator[None]:
    """``with cjk_context(): ...`` draws Chinese text with the CJK font (:func:`cjk_rc`), one
    thread at a time: the rc settings hold for the whole block, whatever other threads draw."""
    import matplotlib

    with _RC_LOCK, matplotlib.rc_context(cjk_rc(subset=subset, **extra)):
        yield


# --------------------------------------------------------------------------------------------
# a small subset of the CJK font for PDFs of many sheets
# --------------------------------------------------------------------------------------------

#: Family name of the subset font (:func:`subset_family`): first in ``font.sans-serif``, the full
#: CJK font behind it as the fallback for any character it lacks.
SUBSET_FAMILY = "Kaizhou Sheet CJK"
#: PostScript name of the subset font (``-Regular``/``-Bold``), the BaseFont in a PDF.
SUBSET_PS_NAME = "KaizhouSheetCJK"
#: Weights the print sheets draw with (the data-status banner is bold).
SUBSET_WEIGHTS = ("normal", "bold")

#: The OpenType features the subset font keeps: those HarfBuzz (matplotlib's text layout)
#: applies to horizontal text by default, so text is shaped as with the full font. Vertical
#: forms, proportional and half widths (``vert``, ``palt``, ``halt`` ...) are never applied there
#: and would only enlarge the tables matplotlib subsets again for every PDF.
SHAPING_FEATURES = ("abvm", "blwm", "calt", "ccmp", "clig", "curs", "dist", "kern", "liga",
                    "locl", "mark", "mkmk", "rclt", "rlig", "rvrn")

#: This process's subset font: the characters it was made for and its files by weight. A forked
#: worker inherits it with its files (see :func:`_font_file`).
_SUBSET: dict = {"chars": frozenset(), "files": {}}
#: The subset fonts made in this process, by their characters (a long-lived process, e.g. the web
#: workbench, that draws sheets of several districts makes each once).
_MADE: dict[frozenset, dict[str, str]] = {}


def subset_family(chars, *, register: bool = True) -> str | None:
    """The family of a subset of the CJK font (regular and bold) made for exactly ``chars`` (and
    printable ASCII), registered with matplotlib's font manager in this process (unless
    ``register`` is False); None without a CJK font.

    Why: a PDF must embed the font of its text, and the whole Noto CJK collection is 20 MB of
    65 000 glyphs. The print sheets' PDF writer (:mod:`kaizhou_gis.maps.pdfwriter`, through
    :func:`sheet_font_files`) embeds this subset (the glyphs of a few hundred characters) as it
    is; matplotlib, for a chart PDF, subsets it again in milliseconds instead of parsing the
    collection (0.3-0.6 s a time). The subset keeps the glyph outlines, metrics and layout
    tables (GSUB/GPOS) of the characters, so the text is laid out and drawn as with the full
    font and stays real text in the PDF.

    The glyph numbers of the subset, and so the bytes of a PDF drawn with it, depend on the
    characters it was made for: the same ``chars`` give the same font in any process. It is made
    again only when ``chars`` change. Making it costs about 0.6 CPU-s per weight; with
    ``$KAIZHOU_GIS_FONT_CACHE`` set to a folder, runs share the fonts made before for the same
    characters (:func:`_cached_subset_bytes`; the same bytes as made anew). Put
    :data:`SUBSET_FAMILY` before the full font in ``font.sans-serif`` (:func:`cjk_font_family`
    with ``subset=True``): a character outside the subset then draws from the full font.
    """
    name = find_cjk_font()
    if name is None:
        return None
    chars = frozenset(chars)
    if _SUBSET["files"] and chars == _SUBSET["chars"] and \
            all(os.path.exists(p) for p in _SUBSET["files"].values()):
        if register and not _SUBSET.get("registered"):
            _register(_SUBSET["files"])
            _SUBSET["registered"] = True
        return SUBSET_FAMILY
    made = _MADE.get(chars)  # made before in this process (or its parent): the same files
    if made is None or not all(os.path.exists(p) for p in made.values()):
        made = _MADE[chars] = {w: _font_file(data, w)
                               for w, data in _subsets_by_weight(name, chars).items()}
    files = made
    if register:
        _register(files)
    _SUBSET.update(chars=chars, files=files, registered=register)
    log.debug("CJK subset font of %d characters: %s", len(chars), files)
    return SUBSET_FAMILY


def _subsets_by_weight(family: str, chars) -> dict[str, bytes]:
    """:func:`_cached_subset_bytes` of every weight of :data:`SUBSET_WEIGHTS`: side by side in
    forked processes where a run may fork (:func:`kaizhou_gis.forked.worker_count`; making a
    weight is ~1.3 s of pure-Python work that the print sheets wait for), else one after the
    other; those ``$KAIZHOU_GIS_FONT_CACHE`` holds are read here. The same bytes either way."""
    from kaizhou_gis.forked import forked_worker_setup, worker_count

    done = _cached_weights(family, chars)  # read here: no process is forked for a cache hit
    todo = [w for w in SUBSET_WEIGHTS if w not in done]
    n = min(len(todo), worker_count())
    if n > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        try:
            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"),
                                     initializer=forked_worker_setup) as ex:
                done.update(zip(todo, ex.map(_cached_subset_bytes, [family] * len(todo), todo,
                                             [frozenset(chars)] * len(todo))))
        except Exception as e:  # noqa: BLE001 - no process to be had, or it died: made here
            log.debug("subset fonts made in this process (%s: %s)", type(e).__name__, e)
    for w in todo:
        if w not in done:
            done[w] = _cached_subset_bytes(family, w, chars)
    return {w: done[w] for w in SUBSET_WEIGHTS}


def sheet_font_files(chars) -> dict[str, str]:
    """The font files (by weight, :data:`SUBSET_WEIGHTS`) the print sheets are written with: the
    subset of the CJK font made for ``chars`` (:func:`subset_family`, not registered with
    matplotlib: the sheets lay their text out themselves), or, on a machine without a CJK font,
    the same subset of DejaVu Sans (matplotlib's own font; Chinese then shows as boxes, with the
    warning of :func:`find_cjk_font`)."""
    chars = frozenset(chars)
    if subset_family(chars, register=False) is not None:
        return dict(_SUBSET["files"])
    return {w: _font_file(_cached_subset_bytes("DejaVu Sans", w, chars), w) for w in SUBSET_WEIGHTS}


def fallback_font_file(chars) -> str | None:
    """A subset of DejaVu Sans (regular) with those of ``chars`` it has, for characters the CJK
    font lacks (symbols, some scripts), as matplotlib fell back to it glyph by glyph; None when
    it has none of them."""
    from fontTools.ttLib import TTFont

    chars = frozenset(chars)
    path, face = _source_font("DejaVu Sans", "normal")
    have = TTFont(path, fontNumber=face, lazy=True).getBestCmap()
    mine = frozenset(c for c in chars if ord(c) in have)
    if not mine:
        return None
    return _font_file(_cached_subset_bytes("DejaVu Sans", "normal", mine), "fallback")


def _source_font(family: str, weight: str) -> tuple[str, int]:
    """The font file (and its face in a collection) matplotlib draws ``family`` at ``weight`` with."""
    from fontTools.ttLib import TTCollection
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family=family, weight=weight),
                                 fallback_to_default=False)
    face = getattr(path, "face_index", None)  # matplotlib >= 3.11 names the face of a collection
    if face is None:
        face = 0
        if str(path).lower().endswith((".ttc", ".otc")):  # the face whose family is `family`
            for i, f in enumerate(TTCollection(str(path), lazy=True).fonts):
                if f["name"].getDebugName(1) == family:
                    face = i
                    break
    return str(path), int(face)


#: Environment variable: a folder where the subset fonts are kept between runs (opt-in; unset,
#: every run makes its fonts again and writes nothing outside its own temp folder).
FONT_CACHE_ENV = "KAIZHOU_GIS_FONT_CACHE"


def _cached_subset_bytes(family: str, weight: str, chars) -> bytes:
    """:func:`_subset_bytes`, read from the folder ``$KAIZHOU_GIS_FONT_CACHE`` when it holds a font
    made for the same key, else made and stored there (when the variable is set).

    The key (:func:`_cache_key`) is everything the bytes depend on: the source font file (path,
    size, modification time, face), the weight, the characters and the code that makes the font
    (this module's source and the fontTools version), so a stale entry is never used. A file's
    name also carries the SHA-256 of its bytes, checked on reading: a damaged or half-copied file
    is ignored and made again. Writes are atomic (a temporary file renamed), so processes that
    share the folder (parallel runs, test workers) never read half a file."""
    import hashlib

    folder = os.environ.get(FONT_CACHE_ENV, "").strip()
    if not folder:
        return _subset_bytes(family, weight, chars)
    path, face = _source_font(family, weight)
    key = _cache_key(path, face, weight, chars)
    data = _read_cached(folder, key)
    if data is not None:
        return data
    data = _subset_bytes(family, weight, chars)
    try:
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"{key}-{hashlib.sha256(data).hexdigest()[:16]}.ttf")
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError as e:  # a read-only or full cache folder costs time, not the run
        log.warning("font cache %s=%s not written (%s); fonts are made on every run",
                    FONT_CACHE_ENV, folder, e)
    return data


def _read_cached(folder: str, key: str) -> bytes | None:
    """The font of ``key`` in the cache ``folder`` (checked against the SHA-256 in its name), or
    None."""
    import hashlib

    try:
        for entry in os.scandir(folder):
            if entry.name.startswith(f"{key}-") and entry.name.endswith(".ttf"):
                with open(entry.path, "rb") as fh:
                    data = fh.read()
                if entry.name == f"{key}-{hashlib.sha256(data).hexdigest()[:16]}.ttf":
                    return data
                log.debug("font cache: %s does not hold what its name says; made again", entry.path)
    except OSError as e:  # no folder yet, or unreadable: make the font
        log.debug("font cache %s not read: %s", folder, e)
    return None


def _cached_weights(family: str, chars) -> dict[str, bytes]:
    """The weights of the subset font for ``chars`` that ``$KAIZHOU_GIS_FONT_CACHE`` holds."""
    folder = os.environ.get(FONT_CACHE_ENV, "").strip()
    if not folder:
        return {}
    out = {}
    for w in SUBSET_WEIGHTS:
        path, face = _source_font(family, w)
        data = _read_cached(folder, _cache_key(path, face, w, chars))
        if data is not None:
            out[w] = data
    return out


def _cache_key(path: str, face: int, weight: str, chars) -> str:
    """The cache key of a subset font (see :func:`_cached_subset_bytes`): 32 hex digits."""
    import hashlib
    import json

    import fontTools

    st = os.stat(path)
    with open(__file__, "rb") as fh:
        code = hashlib.sha256(fh.read()).hexdigest()
    ident = json.dumps({"font": [os.path.realpath(path), st.st_size, st.st_mtime_ns, face],
                        "weight": weight, "chars": "".join(sorted(chars)), "code": code,
                        "fonttools": fontTools.version}, ensure_ascii=True, sort_keys=True)
    return hashlib.sha256(ident.encode("ascii")).hexdigest()[:32]


def _subset_bytes(family: str, weight: str, chars) -> bytes:
    """A font file (bytes) with the glyphs of ``chars`` (and printable ASCII) from the CJK font
    at ``weight``, its family renamed to :data:`SUBSET_FAMILY` so the font manager tells it from
    the full font."""
    import io

    from fontTools import subset
    from fontTools.ttLib import TTFont

    path, face = _source_font(family, weight)
    opts = subset.Options(layout_features=list(SHAPING_FEATURES), name_IDs=["*"], name_languages=["*"],
                          glyph_names=True, notdef_outline=True, recommended_glyphs=True,
                          font_number=face)
    opts.drop_tables += ["FFTM"]  # FontForge's timestamps (DejaVu Sans): not subsettable, not needed
    # the CFF outlines become TrueType ones below (_cff_to_truetype) and the CFF table is dropped:
    # inlining its subroutines costs less than pruning the unused ones (~11 % of the subset's
    # time), for the same font file
    opts.desubroutinize = True
    font = TTFont(path, fontNumber=face, lazy=True, recalcTimestamp=False)
    try:
        sub = subset.Subsetter(opts)
        sub.populate(unicodes=sorted({ord(c) for c in chars} | set(range(0x20, 0x7F))))
        sub.subset(font)
        for rec in font["name"].names:
            if rec.nameID in (1, 16):
                rec.string = SUBSET_FAMILY
            elif rec.nameID == 4:
                rec.string = SUBSET_FAMILY + ("" if weight == "normal" else " Bold")
            elif rec.nameID == 6:  # the PDF's BaseFont: says the subset was embedded
                rec.string = SUBSET_PS_NAME + ("-Regular" if weight == "normal" else "-Bold")
        if "CFF " in font:
            _cff_to_truetype(font)
        buf = io.BytesIO()
        font.save(buf)
    finally:
        font.close()
    return buf.getvalue()


def _cff_to_truetype(font) -> None:
    """Turn the PostScript (CFF) outlines of ``font`` into TrueType (quadratic ``glyf``) outlines,
    in place (fontTools' ``otf2ttf`` recipe: cubic curves approximated by quadratic ones to
    within 1/1000 em, i.e. 0.02 pt at 22 pt).

    Why: matplotlib embeds a font of a PDF as a TrueType font (``FontFile2``) and subsets it per
    file. A CFF font written there is not what the PDF says it is: strict readers (MuPDF, used by
    many viewers and converters) draw the wrong glyphs or none, and subsetting CFF (running the
    charstrings, pruning subroutines, compiling) is the most expensive part of writing a sheet.
    TrueType outlines are what ``FontFile2`` holds and are copied glyph by glyph."""
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import newTable

    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyph_set)
        # CFF contours run counter-clockwise, TrueType ones clockwise
        glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
        glyf.glyphs[name] = pen.glyph()
    font["loca"] = newTable("loca")
    font["glyf"] = glyf
    del font["CFF "]
    if "VORG" in font:
        del font["VORG"]
    glyf.compile(font)
    hmtx = font["hmtx"]
    for name, g in glyf.glyphs.items():  # TrueType places a glyph by its left side bearing
        if hasattr(g, "xMin"):
            hmtx[name] = (hmtx[name][0], g.xMin)
    maxp = font["maxp"] = newTable("maxp")
    maxp.tableVersion = 0x00010000
    for attr in ("maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
                 "maxStackElements", "maxSizeOfInstructions", "maxComponentElements"):
        setattr(maxp, attr, 0)
    maxp.maxZones = 1
    maxp.compile(font)
    post = font["post"]
    post.formatType, post.extraNames, post.mapping = 2.0, [], {}
    post.glyphOrder = order
    font["head"].glyphDataFormat = 0
    font.sfntVersion = "\x00\x01\x00\x00"


def _font_file(data: bytes, weight: str) -> str:
    """A font file holding ``data`` in a temporary folder of this process, removed when the
    process ends (inside the run's scratch folder in the system temp, which the next run sweeps
    if this one is killed); forked workers read it while this process lives.

    The file's name is fixed by the weight and the bytes (``KaizhouSheetCJK-bold-<sha>.ttf``):
    matplotlib's PDF backend orders the embedded fonts by their file names, so a random name
    would swap the regular and bold fonts from one run to the next and the same chart would give
    other bytes; a forked worker finds the same file its parent made."""
    import hashlib
    import shutil
    import tempfile
    from multiprocessing import util

    from kaizhou_gis.outputs.files import _scratch_dir

    folder = _SUBSET.get("folder")
    if folder is None or _SUBSET.get("pid") != os.getpid() or not os.path.isdir(folder):
        folder = tempfile.mkdtemp(prefix="fonts-", dir=_scratch_dir())
        # at exit of this process only (a finalizer is skipped in a forked child)
        util.Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=10)
        _SUBSET.update(folder=folder, pid=os.getpid())
    path = os.path.join(folder, f"{SUBSET_PS_NAME}-{weight}-{hashlib.sha256(data).hexdigest()[:16]}.ttf")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return path


def _register(files: dict[str, str]) -> None:
    """Make ``files`` the fonts of :data:`SUBSET_FAMILY` in matplotlib's font manager (the
    previous subset's entries are dropped)."""
    from matplotlib import font_manager

    fm = font_manager.fontManager
    fm.ttflist = [f for f in fm.ttflist if f.name != SUBSET_FAMILY]
    for path in files.values():
        fm.addfont(path)  # also clears the font manager's lookup cache
