"""The maps' once-per-run preparation gives the same layers as drawing each map from its own
rows: :class:`kaizhou_gis.maps.specs.Prepared` (rows taken by position) against a layer drawn from
the selected rows of the frame, the per-run cache of the layers against a replaced frame, and the
literal rendering of large page parts against branca's template rendering."""
from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from branca.element import Element
from shapely.geometry import LineString, MultiLineString, Point, Polygon

sys.path.insert(0, str(Path(__file__).parent))
from test_maps import T1, T2, make_ctx  # noqa: E402  (tests/ is on sys.path)

from kaizhou_gis import maps  # noqa: E402
from kaizhou_gis.maps import contents  # noqa: E402
from kaizhou_gis.maps.mapassets import _literal  # noqa: E402
from kaizhou_gis.maps.specs import (  # noqa: E402
    Field,
    Prepared,
    _fmt_m,
    line_layer,
    point_layer,
    polygon_layer,
)


def _frame() -> gpd.GeoDataFrame:
    geoms = [Point(108.1234567, 31.1), None, Point(108.3, 31.3), Point(108.4, 31.4),
             Point(108.5, 31.5)]
    return gpd.GeoDataFrame({"name": ["a", "b", None, "d", "e"],
                             "elevation_m": [1200.4, np.nan, 800.0, 950.5, 99.0],
                             "flag": [True, False, True, None, False]},
                            geometry=geoms, crs=4326)


def test_prepared_points_equal_points_of_the_selected_rows():
    gdf = _frame()
    fields = [Field("name", "名称"), Field("elevation_m", "海拔", _fmt_m), Field("flag", "标志"),
              Field("absent", "无")]
    prep = Prepared(gdf, 5)
    for rows in ([0, 1, 2, 3, 4], [3, 0], [1], []):
        rows = np.asarray(rows, dtype=int)
        cat = np.arange(len(rows)) % 2
        radius = pd.Series(np.linspace(9.0, 3.0, len(rows)))
        kw = dict(decimals=5, title="name", cluster_min=2, base_radius=4, radius=radius)
        direct = point_layer("k", "K", gdf.iloc[rows], pd.Series(cat), [{}, {}], fields, **kw)
        taken = point_layer("k", "K", prep, cat, [{}, {}], fields, rows=rows, **kw)
        assert taken == direct
    full = point_layer("k", "K", prep, np.zeros(5, int), [{}], fields, decimals=5)
    # the row without geometry is left out; values formatted, coordinates rounded to 5 decimals
    assert [r[0] for r in full.data] == [[31.1, 108.12346], [31.3, 108.3], [31.4, 108.4], [31.5, 108.5]]
    assert full.data[0][3] == ["a", "1,200 m", "是 yes", None]
    with pytest.raises(ValueError, match="decimals"):
        point_layer("k", "K", prep, [0], [{}], fields, decimals=4, rows=[0])


def test_prepared_lines_and_polygons_equal_those_of_the_selected_rows():
    lines = gpd.GeoDataFrame(
        {"work_id": ["w1", "w2", "w3", "w4"], "cat": [0, 1, 0, 1]},
        geometry=[LineString([(0, 0), (1, 1.123456)]), MultiLineString([[(0, 0), (1, 0)], [(2, 2), (3, 3)]]),
                  LineString(), LineString([(5, 5), (6, 6)])], crs=4326)
    prep = Prepared(lines, 3)
    for rows in ([0, 1, 2, 3], [3, 1], [2]):
        rows = np.asarray(rows, dtype=int)
        sub = lines.iloc[rows]
        for fields in (None, [Field("work_id", "编号")]):
            direct = line_layer("w", "W", sub, sub["cat"], [{}, {}], fields, decimals=3, title=None)
            taken = line_layer("w", "W", prep, lines["cat"].to_numpy()[rows], [{}, {}], fields, decimals=3,
                               rows=rows)
            assert taken == direct
    merged = line_layer("w", "W", prep, lines["cat"], [{}, {}], None, decimals=3)
    # without fields the lines of one category merge (the empty line is left out)
    assert merged.data == [[[[[0.0, 0.0], [1.123, 1.0]]], 0, None, None],
                           [[[[0.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [3.0, 3.0]], [[5.0, 5.0], [6.0, 6.0]]],
                            1, None, None]]
    polys = gpd.GeoDataFrame({"name": ["p", "q"]},
                             geometry=[Polygon([(0, 0), (1, 0), (1, 1)]), Polygon()], crs=4326)
    pp = Prepared(polys, 2)
    direct = polygon_layer("p", "P", polys.iloc[[1, 0]], pd.Series([1, 0]), [{}, {}],
                           [Field("name", "名称")], decimals=2)
    assert polygon_layer("p", "P", pp, [1, 0], [{}, {}], [Field("name", "名称")], decimals=2,
                         rows=[1, 0]) == direct
    assert [r[3] for r in direct.data] == [["p"]]


def _township_specs(d, st, code):
    return {s.key: s for s in maps.map_layers("township", d, st, code)}


def test_township_layers_are_those_of_its_own_rows(tmp_path):
    ctx = make_ctx(tmp_path)
    d = maps.gather(ctx, ctx.needs_of("maps"))
    st = maps._settings(ctx.plan)
    for code in (T1, T2):
        specs = _township_specs(d, st, code)
        names = {r[3][0] for r in specs["villages"].data}
        assert names == set(d.villages.loc[d.villages["township_code"] == code, "name"])
        cand = d.settlements[(d.settlements["township_code"] == code)
                             & d.settlements["relocation_candidate"].astype(bool)]
        assert sorted(r[3][1] for r in specs["candidates"].data) == sorted(cand["settlement_id"])
        # the township is drawn bold (category 1), its neighbour thin
        bold = [r[3][1] for r in specs["townships"].data if r[1] == 1]
        assert bold == [code]
    # the preparation is made once per run and kept with the data
    assert len([k for k in d.cache if k[0] == "map_rows"]) == 1


def test_replaced_frame_is_prepared_again(tmp_path):
    ctx = make_ctx(tmp_path)
    d = maps.gather(ctx, ctx.needs_of("maps"))
    st = maps._settings(ctx.plan)
    before = _township_specs(d, st, T1)["villages"]
    assert len(before.data) > 1
    d.villages = d.villages[d.villages["township_code"] == T1].iloc[:1]
    after = _township_specs(d, st, T1)["villages"]
    assert [r[3][0] for r in after.data] == [d.villages["name"].iloc[0]]
    assert contents._map_rows(d, st).frames["villages"] is d.villages


@pytest.mark.parametrize("text", [
    "\n        var layer_1 = KZ.layer(map_1, {\"data\":[[1,2]]});\n        ",
    "a\r\nb\r\n", "a\rb\n\n", "ends with newline\n", "", "no newline",
    "{{ 7*7 }} and {% if true %}x{% endif %} {# c #}\n",
])
def test_literal_rendering_equals_the_template_rendering(text):
    assert _literal(text) == Element(text).render()
