"""The opt-in cache of the print sheets' subset fonts ($KAIZHOU_GIS_FONT_CACHE, kaizhou_gis.fonts):
a hit gives the bytes that were made, a key changes with everything the bytes depend on, a
damaged entry is made again, and without the variable nothing is read or written.

The fonts here are stand-ins (``_subset_bytes`` replaced: the cache's logic, not fontTools, is
under test). That fonts read from the cache draw the same outputs as fonts made anew is checked
on real runs in tests/test_batch.py (single runs without the cache, batch runs with it, compared
byte for byte)."""
from __future__ import annotations

import hashlib
import logging
import os

import pytest

from kaizhou_gis import fonts

CHARS = frozenset("开州区合成数据")


@pytest.fixture
def made(monkeypatch, tmp_path):
    """``_subset_bytes`` and ``_source_font`` replaced by stand-ins; the list of the fonts made."""
    font_file = tmp_path / "NotoSansCJK-Regular.ttc"
    font_file.write_bytes(b"source font")
    calls: list[tuple] = []

    def subset_bytes(family, weight, chars):
        calls.append((family, weight, frozenset(chars)))
        return f"font {weight} {''.join(sorted(chars))}".encode()

    monkeypatch.setattr(fonts, "_subset_bytes", subset_bytes)
    monkeypatch.setattr(fonts, "_source_font", lambda family, weight: (str(font_file), 0))
    return calls


def test_without_the_variable_fonts_are_made_and_nothing_is_written(made, tmp_path, monkeypatch):
    monkeypatch.delenv(fonts.FONT_CACHE_ENV, raising=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    for _ in range(2):
        assert fonts._cached_subset_bytes("Noto Sans CJK SC", "bold", CHARS) == \
            f"font bold {''.join(sorted(CHARS))}".encode()
    assert len(made) == 2  # made each time
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_hit_gives_the_bytes_made_before(made, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "fonts"  # made when first needed
    monkeypatch.setenv(fonts.FONT_CACHE_ENV, str(cache))
    first = {w: fonts._cached_subset_bytes("Noto Sans CJK SC", w, CHARS) for w in ("normal", "bold")}
    assert len(made) == 2
    files = sorted(cache.iterdir())
    assert len(files) == 2
    for f in files:  # <key>-<sha256 of the bytes>.ttf, written whole (no temp file left)
        key, digest = f.stem.split("-")
        assert len(key) == 32 and digest == hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    again = {w: fonts._cached_subset_bytes("Noto Sans CJK SC", w, CHARS) for w in ("normal", "bold")}
    assert again == first and first["normal"] != first["bold"]
    assert len(made) == 2  # nothing made again
    fonts._cached_subset_bytes("Noto Sans CJK SC", "normal", CHARS | {"镇"})  # other characters
    assert len(made) == 3 and len(list(cache.iterdir())) == 3


def test_a_damaged_entry_is_made_again(made, tmp_path, monkeypatch):
    monkeypatch.setenv(fonts.FONT_CACHE_ENV, str(tmp_path / "c"))
    good = fonts._cached_subset_bytes("Noto Sans CJK SC", "normal", CHARS)
    (entry,) = (tmp_path / "c").iterdir()
    entry.write_bytes(good[:5])  # half a file under the whole file's name
    assert fonts._cached_subset_bytes("Noto Sans CJK SC", "normal", CHARS) == good
    assert len(made) == 2 and entry.read_bytes() == good  # made again and stored again


def test_the_key_follows_everything_the_font_depends_on(tmp_path):
    src = tmp_path / "font.ttc"
    src.write_bytes(b"x" * 100)
    key = fonts._cache_key(str(src), 0, "normal", CHARS)
    assert key == fonts._cache_key(str(src), 0, "normal", set(CHARS))  # any iterable of the chars
    others = {fonts._cache_key(str(src), 1, "normal", CHARS),  # another face of the collection
              fonts._cache_key(str(src), 0, "bold", CHARS),
              fonts._cache_key(str(src), 0, "normal", CHARS - {"开"})}
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the font file replaced
    others.add(fonts._cache_key(str(src), 0, "normal", CHARS))
    src.write_bytes(b"x" * 101)
    others.add(fonts._cache_key(str(src), 0, "normal", CHARS))
    assert key not in others and len(others) == 5


def test_an_unwritable_cache_costs_time_not_the_run(made, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv(fonts.FONT_CACHE_ENV, str(blocker))
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.fonts"):
        data = fonts._cached_subset_bytes("Noto Sans CJK SC", "normal", CHARS)
    assert data == f"font normal {''.join(sorted(CHARS))}".encode()
    assert "KAIZHOU_GIS_FONT_CACHE" in caplog.text and "not written" in caplog.text
    assert blocker.read_text(encoding="utf-8") == "x"


@pytest.mark.skipif(fonts.find_cjk_font() is None, reason="no CJK font (apt-get install fonts-noto-cjk)")
def test_weights_made_side_by_side_are_the_bytes_made_one_after_the_other(monkeypatch):
    """With more than one worker allowed the subset font's weights are made in forked processes
    at the same time (the sheets wait for them); the bytes are those made here in turn."""
    from kaizhou_gis import forked

    monkeypatch.delenv(fonts.FONT_CACHE_ENV, raising=False)
    name = fonts.find_cjk_font()
    monkeypatch.setenv(forked.WORKERS_ENV, "1")
    here = fonts._subsets_by_weight(name, CHARS)
    monkeypatch.setenv(forked.WORKERS_ENV, "2")
    pids = []
    monkeypatch.setattr(fonts, "_cached_subset_bytes", _noting_pid)
    side = fonts._subsets_by_weight(name, CHARS)
    for w, data in side.items():
        font, pid = data.rsplit(b"|", 1)
        pids.append(int(pid))
        assert font == here[w], w
    assert set(side) == set(fonts.SUBSET_WEIGHTS) and os.getpid() not in pids


_REAL_CACHED_SUBSET_BYTES = fonts._cached_subset_bytes


def _noting_pid(family, weight, chars):
    """The font, and the process that made it (a module-level function: sent to the workers)."""
    return _REAL_CACHED_SUBSET_BYTES(family, weight, chars) + f"|{os.getpid()}".encode()


def test_weights_in_the_cache_are_read_without_forking(made, tmp_path, monkeypatch):
    import concurrent.futures

    from kaizhou_gis import forked

    monkeypatch.setenv(fonts.FONT_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(forked.WORKERS_ENV, "1")
    first = fonts._subsets_by_weight("Noto Sans CJK SC", CHARS)  # made here, stored
    assert len(made) == len(fonts.SUBSET_WEIGHTS)
    pools = []

    class Recording(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *a, **k):
            pools.append(a)
            super().__init__(*a, **k)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    monkeypatch.setenv(forked.WORKERS_ENV, "2")
    again = fonts._subsets_by_weight("Noto Sans CJK SC", CHARS)
    assert again == first and pools == [] and len(made) == len(fonts.SUBSET_WEIGHTS)
