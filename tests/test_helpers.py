"""One helper per concept (issue 14): admin code joins (kaizhou_gis.admin), percentages
(kaizhou_gis.figures), road classes (kaizhou_gis.layers.ROAD_CLASSES), CRS transformers
(kaizhou_gis.crs) and the CJK font lookup (kaizhou_gis.fonts), each used by every module that
needs it; the lookup finds the CJK font on a machine whose matplotlib font cache predates it."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS, Transformer
from shapely.geometry import Point

from kaizhou_gis import access, admin, crs, figures, fonts, relocation
from kaizhou_gis.industry import host_township_codes
from kaizhou_gis.layers import ROAD_CLASSES
from kaizhou_gis.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kaizhou_gis"

T1, T2 = "500154001", "500154002"
VILLAGES = pd.DataFrame({"village_code": [T1 + "001", T2 + "001"], "name": ["中山村", "红旗村"],
                         "township_code": [T1, T2]})


# --------------------------------------------------------------------------------------------
# settlement -> village -> township
# --------------------------------------------------------------------------------------------
def test_settlement_township_is_its_villages_never_a_code_prefix(caplog):
    s = pd.DataFrame({"settlement_id": ["S1", "S2", "S3", "S4"],
                      # S3: a 12-digit code whose first 9 digits are T1, but no such village
                      "village_code": [T1 + "001", T2 + "001", T1 + "099", None]},
                     index=[10, 11, 12, 13])
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.admin"):
        got = admin.settlement_townships(s, VILLAGES)
    assert got.index.tolist() == [10, 11, 12, 13]
    assert got.tolist() == [T1, T2, admin.NO_TOWNSHIP, admin.NO_TOWNSHIP]
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "2 settlement(s)" in msg and "S3" in msg and "S4" in msg and "villages layer" in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kaizhou_gis.admin"):
        quiet = admin.settlement_townships(s, admin.village_townships(VILLAGES), warn=False)
    assert quiet.tolist() == got.tolist() and not caplog.records


def test_host_township_given_or_through_its_village():
    hosts = pd.DataFrame({"village_code": [T2 + "001", "", T1 + "099"],
                          "township_code": [None, T1, None]})
    assert host_township_codes(hosts, admin.village_townships(VILLAGES)).tolist() == [T2, T1, ""]


def test_relocation_keeps_a_settlement_of_an_unknown_village_with_an_empty_township():
    pts = [Point(500_000 + 100 * i, 3_400_000) for i in range(3)]
    s = gpd.GeoDataFrame({"settlement_id": ["S1", "S2", "S3"],
                          "village_code": [T1 + "001", T2 + "001", T1 + "099"],
                          "households": [10, 20, 30], "population": [30, 60, 90]},
                         geometry=pts, crs="EPSG:4545")
    v = gpd.GeoDataFrame(VILLAGES, geometry=pts[:2], crs="EPSG:4545")
    tw = gpd.GeoDataFrame({"township_code": [T1, T2], "name": ["甲镇", "乙乡"]},
                          geometry=[p.buffer(50) for p in pts[:2]], crs="EPSG:4545")
    t = relocation.settlement_table(s, v, tw)
    assert len(t) == 3  # no row dropped
    assert t["township_code"].tolist() == [T1, T2, ""]
    assert t["township_name"].tolist() == ["甲镇", "乙乡", ""]
    assert t["township_code"].tolist() == admin.settlement_townships(s, v, warn=False).tolist()


def test_access_gives_a_settlement_of_an_unknown_village_a_visible_reason():
    from test_access import scenario  # tests/ is on sys.path

    layers, dem = scenario()
    s = layers.settlements
    extra = gpd.GeoDataFrame({"settlement_id": ["S9"], "name": ["九组"],
                              # beside the paved main road; its code starts with the seat's
                              # township code, so the old code[:9] guess made it 通达 + 通畅
                              "village_code": ["500154001099"], "households": [40],
                              "population": [120]},
                             geometry=[Point(s.geometry.iloc[0].x + 10, s.geometry.iloc[0].y)],
                             crs=s.crs)
    layers.settlements = pd.concat([s, extra], ignore_index=True)
    res = access.analyse(layers, load_plan(), dem=dem)
    row = res.settlements.iloc[-1]
    assert not row["tongda"] and not row["tongchang"]
    assert row["reason"] == "no township: its village is not in the villages layer"
    assert row["reason_zh"].startswith("无所属乡镇")
    first = res.settlements.iloc[0]  # the neighbour with a known village is reached
    assert first["tongda"] and first["tongchang"] and first["reason"] == ""


# --------------------------------------------------------------------------------------------
# percentages
# --------------------------------------------------------------------------------------------
def test_pct_rounding_and_empty_base():
    assert figures.pct(1, 3) == 33.33
    assert figures.pct(2, 3, 1) == 66.7
    assert figures.pct(0, 7) == 0.0
    assert figures.pct(5, 0) is None and figures.pct(0, 0) is None
    assert figures.pct(np.int64(535), np.int64(535)) == 100.0


# --------------------------------------------------------------------------------------------
# CRS transformers
# --------------------------------------------------------------------------------------------
def test_transformer_is_cached_lon_lat_ordered_and_matches_pyproj():
    a = crs.transformer("EPSG:4326", "EPSG:4545")
    assert crs.transformer(4326, CRS.from_epsg(4545)) is a  # other spellings, same transformer
    x, y = a.transform(108.39, 31.16)  # Kaizhou, lon first
    ox, oy = Transformer.from_crs(4326, 4545, always_xy=True).transform(108.39, 31.16)
    assert (x, y) == (ox, oy)
    assert 400_000 < x < 600_000 and 3_400_000 < y < 3_500_000
    same = crs.transformer("EPSG:4545", CRS.from_epsg(4545))
    assert same.transform(512_345.678, 3_456_789.012) == (512_345.678, 3_456_789.012)


# --------------------------------------------------------------------------------------------
# one definition per concept in the package
# --------------------------------------------------------------------------------------------
def _package_sources():
    return {p.relative_to(PACKAGE).as_posix(): p.read_text(encoding="utf-8")
            for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("pattern, home", [
    (r"^def _?pct\(", "figures.py"),
    (r"round\(100(\.0)? \*[^\n]*\bif\b", "figures.py"),  # a pct with its own zero guard
    (r"^ROAD_CLASSES\s*=", "layers/contract.py"),
    (r"Transformer\.from_crs\(", "crs.py"),
    (r"lru_cache[\s\S]{0,80}def \w*transformer", None),
    (r"\.get\(\w+, \w+\[:9\]\)|\.str\[:9\]\)", None),  # a village code cut to a township code
    (r"findSystemFonts|\"font\.sans-serif\"", "fonts.py"),
])
def test_one_definition_per_concept(pattern, home):
    where = sorted(name for name, text in _package_sources().items()
                   if re.search(pattern, text, flags=re.MULTILINE))
    assert where == ([home] if home else []), f"{pattern!r} found in {where}"


def test_every_module_uses_the_shared_helpers():
    from kaizhou_gis import network
    from kaizhou_gis.access import options, scoring, works
    from kaizhou_gis.batch import rollup as batch
    from kaizhou_gis.demo import roads as demo_roads
    from kaizhou_gis.report import frames, indicators, sections

    for m in (scoring, works, frames, indicators, sections, relocation.rollups, relocation.summary, batch):
        assert m.pct is figures.pct, m.__name__
    assert network.grid.transformer is crs.transformer and options.transformer is crs.transformer
    assert not hasattr(network, "ROAD_CLASSES")
    assert demo_roads.CLASSES == ROAD_CLASSES[:-1] and ROAD_CLASSES[-1] == "other"


# --------------------------------------------------------------------------------------------
# the CJK font with a matplotlib font cache older than the font
# --------------------------------------------------------------------------------------------
def _cjk_files() -> list[str]:
    from matplotlib import font_manager

    return [f for f in font_manager.findSystemFonts()
            if any(h in re.sub(r"[-_ ]", "", f.lower()) for h in fonts.CJK_FILE_HINTS)]


def test_cached_cjk_entry_whose_file_is_gone_is_not_trusted(tmp_path):
    from matplotlib import font_manager

    entry = font_manager.FontEntry(fname=str(tmp_path / "NotoSansCJK-Regular.ttc"),
                                   name="Noto Sans CJK SC")
    stale = font_manager.FontManager.__new__(font_manager.FontManager)
    stale.__dict__.update(font_manager.fontManager.__dict__)
    stale.ttflist = [f for f in font_manager.fontManager.ttflist
                     if f.name not in fonts.CJK_FAMILIES] + [entry]
    assert fonts._registered(stale) is None
    assert fonts.find_cjk_font(stale, font_files=[]) is None


@pytest.mark.skipif(not _cjk_files(), reason="no CJK font file (apt-get install fonts-noto-cjk)")
def test_township_png_has_chinese_with_a_font_cache_that_predates_the_font(tmp_path):
    """MPLCONFIGDIR points at a folder whose fontlist-*.json was written without the CJK fonts
    (as on a machine where fonts-noto-cjk was installed after the first plot). A fresh Python
    loads that cache; the lookup must still find the CJK font, and the township sheet's PNG (drawn
    by kaizhou_gis.maps.printmap, at a low resolution to stay fast) must draw its Chinese title and
    labels without a missing-glyph warning."""
    from matplotlib import font_manager

    cfg = tmp_path / "mplconfig"
    cfg.mkdir()
    stale = font_manager.FontManager.__new__(font_manager.FontManager)
    stale.__dict__.update(font_manager.fontManager.__dict__)
    cjk = set(_cjk_files())
    stale.ttflist = [f for f in font_manager.fontManager.ttflist
                     if f.fname not in cjk and f.name not in fonts.CJK_FAMILIES]
    cache = cfg / f"fontlist-v{font_manager.FontManager.__version__}.json"
    font_manager.json_dump(stale, cache)
    assert not any(e["name"] in fonts.CJK_FAMILIES
                   for e in json.loads(cache.read_text())["ttflist"])
    before = cache.read_bytes()
    script = textwrap.dedent(f"""
        import warnings
        from pathlib import Path
        from matplotlib import font_manager
        from kaizhou_gis import fonts, maps
        from kaizhou_gis.maps import printmap
        from kaizhou_gis.plan import with_overrides
        from test_maps import T1, make_ctx
        assert fonts._registered(font_manager.fontManager) is None, "the cache lists a CJK font"
        name = fonts.find_cjk_font()
        assert name in fonts.CJK_FAMILIES, name
        ctx = make_ctx(Path({str(tmp_path)!r}))
        ctx.plan = with_overrides(ctx.plan, {{"maps.png_dpi": 60, "maps.print_hillshade_dpi": 60}})
        d = maps.gather_wgs84(ctx, ctx.needs_of("maps"))
        specs = maps.map_layers("township", d, maps._settings(ctx.plan), T1)
        warnings.simplefilter("error", UserWarning)  # "Glyph ... missing from font(s)" fails
        png = printmap.township_sheet(ctx, d, specs, T1, formats=("png",))["png"]
        Path({str(tmp_path / "t.png")!r}).write_bytes(png)
        print("font:", name)
    """)
    env = dict(os.environ, MPLCONFIGDIR=str(cfg),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                           os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "font: " in r.stdout
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    assert cache.read_bytes() == before  # the stale cache was used as it was, not rebuilt


def test_subset_font_files_are_named_by_weight_and_bytes(monkeypatch):
    """The PDF backend orders embedded fonts by file name: the subset fonts' names must not be
    random, or the regular and bold fonts swap between runs and the same sheet gives other bytes."""
    names = []
    for _ in range(2):  # as two processes: each makes its own folder
        monkeypatch.setitem(fonts._SUBSET, "folder", None)
        paths = {w: fonts._font_file(b"font bytes " + w.encode(), w) for w in fonts.SUBSET_WEIGHTS}
        assert all(os.path.exists(p) for p in paths.values())
        names.append({w: os.path.basename(p) for w, p in paths.items()})
    assert names[0] == names[1]
    assert names[0]["normal"].startswith(f"{fonts.SUBSET_PS_NAME}-normal-")
    assert names[0]["normal"] != fonts._font_file(b"other bytes", "normal").rsplit("/", 1)[-1]
