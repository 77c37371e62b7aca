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


def cjk_font_family() -> list[str]:
    """``font.sans-serif`` list: the CJK font (when there is one), then DejaVu Sans."""
    name = find_cjk_font()
    return ([name] if name else []) + ["DejaVu Sans"]


def cjk_rc(**extra) -> dict:
    """matplotlib rc settings for Chinese text (and TrueType fonts embedded in PDFs, so the text
    stays text: searchable and extractable)."""
    rc = {"font.family": "sans-serif", "font.sans-serif": cjk_font_family(),
          "axes.unicode_minus": False, "pdf.fonttype": 42}
    rc.update(extra)
    return rc


@contextlib.contextmanager
def cjk_context(**extra) -> Iterator[None]:
    """``with cjk_context(): ...`` draws Chinese text with the CJK font."""
    import matplotlib

    with matplotlib.rc_context(cjk_rc(**extra)):
        yield
