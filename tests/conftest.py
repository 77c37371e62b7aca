"""Test-session settings shared by every test file."""
from __future__ import annotations


def pytest_configure(config):
    # Chinese text drawn with a font that lacks the glyphs (boxes) is a defect: matplotlib's
    # "Glyph ... missing from font(s)" warning fails the test. Where the machine has no CJK font at
    # all (fonts-noto-cjk not installed) the warning stays a warning.
    from kaizhou_gis.fonts import find_cjk_font

    if find_cjk_font() is not None:
        config.addinivalue_line("filterwarnings", "error:Glyph:UserWarning")
