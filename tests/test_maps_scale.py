"""The HTML pages of a large district: rendered piece by piece (no whole-page string, no regex
over the page) into a compressed :class:`HtmlPage`, the same bytes as branca's own rendering."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kaizhou_gis.maps.mapassets import render_chunks, script_json, script_json_chunks
from kaizhou_gis.maps.page import SpecLayer
from kaizhou_gis.maps.specs import LayerSpec
from kaizhou_gis.outputs.writers import (
    HtmlPage,
    PageSpool,
    StableIds,
    stable_element_ids,
    write_html,
)


def _spec(n: int, key: str = "pts") -> LayerSpec:
    rng = np.random.default_rng(1)
    data = [[[round(float(a), 5), round(float(b), 5)], i % 3, None,
             [f"村{i} <b>&{{{{7*7}}}}</b>", f"S{i:05d}", None, 1.5 * i]]
            for i, (a, b) in enumerate(rng.uniform(30, 32, (n, 2)))]
    return LayerSpec(key, "点 Points", "point", [{"color": "#000", "label": "a"}] * 3, data,
                     ["名称 name", "编号 id", "x", "y"], 0)


@pytest.mark.parametrize("n,rows", [(0, 2000), (1, 2000), (5, 2), (4001, 2000), (7, 7)])
def test_script_json_chunks_join_to_script_json(n, rows):
    obj = _spec(n).to_json()
    chunks = list(script_json_chunks(obj, "data", rows=rows))
    assert "".join(chunks) == script_json(obj)
    assert len(chunks) == 2 + max(0, -(-n // rows))  # head, one per block of rows, tail
    assert json.loads("".join(chunks))["data"][-1:] == json.loads(json.dumps(obj["data"][-1:]))


def _page(n: int):
    import folium

    from kaizhou_gis.maps.mapassets import OfflineMap, RawHtml

    m = OfflineMap(location=[31, 108], tiles=None, zoom_start=10, prefer_canvas=True)
    m.get_root().header.add_child(RawHtml("<title>t</title>"), name="kz_title")
    SpecLayer(_spec(n, "a")).add_to(m)
    SpecLayer(_spec(3, "b")).add_to(m)
    folium.LayerControl().add_to(m)
    return m


def test_render_chunks_is_branca_render_with_stable_ids(tmp_path):
    """The page streamed piece by piece is byte for byte branca's ``render()`` with the ids
    renumbered over the whole text, and the layer data go out in pieces of rows."""
    old = stable_element_ids(_page(4500).get_root().render())
    pieces = list(render_chunks(_page(4500).get_root()))
    data = [t for t, ids in pieces if not ids]
    assert len(data) >= 4 and max(len(t) for t in data) < len(old) / 2
    page = HtmlPage(pieces)
    assert str(page) == old
    assert page.size == len(old.encode("utf-8"))
    assert "map_00000000000000000000000000000001" in page and "村4499 " in page
    write_html(page, tmp_path / "p.html")
    assert (tmp_path / "p.html").read_bytes() == old.encode("utf-8")


def test_stable_ids_over_pieces_number_in_order_of_first_appearance():
    ids = StableIds()
    a, b = "f" * 32, "0123456789abcdef" * 2
    assert ids.sub(f"var map_{a} = x_{b};") == f"var map_{1:032x} = x_{2:032x};"
    assert ids.sub(f"map_{b}.addTo(map_{a}) id_{a}0") == f"map_{2:032x}.addTo(map_{1:032x}) id_{a}0"


def test_html_page_holds_the_page_compressed(tmp_path):
    import base64

    text = "".join(f"<div>行 row {i} " + "x" * (i % 50) + "</div>\n" for i in range(300_000))
    pieces = [(text[i:i + 7000], False) for i in range(0, len(text), 7000)]
    page = HtmlPage(pieces)
    assert page.size == len(text.encode("utf-8")) > 10 * 2**20
    assert page.memory_bytes == page.stored_bytes < page.size / 5
    assert str(page) == text
    assert sum(len(c) for c in page.chunks()) == page.size
    # with a spool the compressed bytes are in its scratch file, not in memory; an image of
    # 3 MB (base64, as the hillshade) goes there as it is compressed, not at the end
    image = base64.b64encode(np.random.default_rng(0).bytes(3 * 2**20)).decode("ascii")
    img_pieces = [("<img src='data:image/png;base64,", True), (image, False), ("'>", True)]
    spool = PageSpool()
    pages = [HtmlPage(pieces, spool), HtmlPage([("<p>短 short</p>", True)], spool),
             HtmlPage(img_pieces, spool)]
    assert [p.memory_bytes for p in pages] == [0, 0, 0]
    assert pages[0].stored_bytes == page.stored_bytes and len(pages[2]._parts) >= 2
    image_page = f"<img src='data:image/png;base64,{image}'>"
    assert [str(p) for p in pages] == [text, "<p>短 short</p>", image_page]
    write_html(pages[2], tmp_path / "p.html")
    assert (tmp_path / "p.html").read_text(encoding="utf-8") == image_page


# --------------------------------------------------------------------------------------------
# a large district's pages: compact layers above MapSettings.detail_max
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def district(tmp_path_factory):
    from kaizhou_gis.maps.contents import _settings
    from kaizhou_gis.maps.data import gather
    from tests.test_maps import make_ctx

    ctx = make_ctx(tmp_path_factory.mktemp("scale"))
    return ctx, gather(ctx, ctx.needs_of("maps")), _settings(ctx.plan)


def test_large_district_pages_draw_compact_layers(district):
    import dataclasses

    from kaizhou_gis.maps.contents import map_layers
    from kaizhou_gis.maps.page import search_index

    ctx, d, full = district
    small = dataclasses.replace(full, detail_max=2)
    for kind in ("overview", "relocation", "access", "industry"):
        big = {s.key: s for s in map_layers(kind, d, full)}
        assert not any(s.compact or s.link >= 0 for s in big.values()), kind
        compact = {s.key: s for s in map_layers(kind, d, small)}
        assert set(compact) == set(big)
        for key, s in compact.items():
            n = len(big[key].data) if key != "roads" else len(d.roads["district"])
            assert s.compact == (n > 2 and key not in ("boundary", "townships", "seats", "sites")), (kind, key)
            if not s.compact or key == "roads":
                continue
            # every feature is still drawn, at the same place and in the same category
            assert [r[:2] for r in s.data] == [r[:2] for r in big[key].data], (kind, key)
            assert s.fields == big[key].fields[:3] + ["乡镇图 township map"] and s.link == 3
            assert "details on the township maps" in s.legend_note
            assert s.to_json()["link"] == 3 and "link" not in big[key].to_json()
        # the search finds every place the full page finds
        assert search_index(list(compact.values())) == search_index(list(big.values()))
    # the township code a popup links to is the feature's township
    cand = {s.key: s for s in map_layers("relocation", d, small)}["candidates"]
    tw = dict(zip(d.settlements["settlement_id"].astype(str), d.settlements["township_code"].astype(str)))
    assert cand.data and all(r[3][3] == tw[r[3][1]] for r in cand.data)


def test_large_district_roads_are_the_longest(district):
    import dataclasses

    from kaizhou_gis.maps.contents import layer_roads

    _, d, full = district
    n = len(d.roads["district"])
    assert n > 2
    spec = layer_roads(d, dataclasses.replace(full, detail_max=2), None)
    drawn = sum(len(parts) for parts, *_ in spec.data)
    assert spec.compact and drawn == 2
    assert f"the 2 longest of {n:,} roads" in spec.legend_note and "最长的 2 条" in spec.legend_note
    length = d.roads_work["district"].geometry.length
    longest = set(length.sort_values(ascending=False).index[:2])
    assert len(longest) == 2 and length.loc[list(longest)].min() >= length.drop(list(longest)).max()
    # the full layer below the limit: every road, and the township maps keep every road near them
    assert sum(len(p) for p, *_ in layer_roads(d, full, None).data) == n


def test_large_district_page_says_so(district, tmp_path, monkeypatch):
    from kaizhou_gis.maps import step, styles

    ctx, _, _ = district
    monkeypatch.setattr(styles, "DISTRICT_DETAIL_MAX", 2)
    monkeypatch.setattr("kaizhou_gis.maps.sheet.render_sheet",
                        lambda specs, text, *, formats=("pdf", "png"), **kw: {f: b"stub" for f in formats})
    from tests.test_maps import make_ctx

    ctx = make_ctx(tmp_path)
    res = step.run(ctx, ctx.needs_of("maps"))
    page = str(res.files["maps/relocation.html"])
    assert "Large district: layers with more than 2 features" in page
    assert "大区图: 超过 2 个要素的图层以简化形式显示" in page
    assert '"link":3' in page
    assert "Large district" not in str(next(v for k, v in res.files.items() if k.startswith("maps/townships/")
                                            and k.endswith(".html")))
