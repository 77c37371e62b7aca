"""The folium page of a map: layer elements, legend, title, notes, search index, attribution and
stable element ids (:func:`build_map`)."""
from __future__ import annotations

import html
import re
from typing import Any, cast

import folium
from branca.element import Element, Figure
from jinja2 import Template

from kaizhou_gis.maps.background import Background
from kaizhou_gis.maps.contents import _missing_for
from kaizhou_gis.maps.data import MapData
from kaizhou_gis.maps.mapassets import (
    LiteralParts,
    OfflineMap,
    RawHtml,
    StreamText,
    inline_assets,
    script_json,
    script_json_chunks,
)
from kaizhou_gis.maps.specs import LayerSpec
from kaizhou_gis.maps.styles import (
    GAODE_ATTR,
    GAODE_URL,
    LAYER_Z,
    OSM_ATTR,
    OSM_URL,
    STEP_NAMES_ZH,
    TIANDITU_ATTR,
    TIANDITU_LABEL_URL,
    TIANDITU_URL,
)

# --------------------------------------------------------------------------------------------
# folium elements
# --------------------------------------------------------------------------------------------

class SpecLayer(folium.map.Layer, LiteralParts):
    """A folium layer drawn in the browser by ``KZ.layer`` from a :class:`LayerSpec`.

    Its script (``var <name> = KZ.layer(<map>, <spec JSON>);``) is rendered as a
    :class:`StreamText`: the spec's JSON is made when the page is written, a few thousand rows at
    a time (:func:`script_json_chunks`), so neither the layer nor the page holds it as one string.
    """

    def __init__(self, spec: LayerSpec):
        super().__init__(name=html.escape(spec.label), overlay=True, control=True, show=spec.show)
        self._name = "SpecLayer"
        self.spec = spec

    def literal_parts(self, kwargs: dict) -> dict[str, Element]:
        assert self._parent is not None, "a SpecLayer is rendered on its map"
        name, parent, spec = self.get_name(), self._parent.get_name(), self.spec

        def pieces():
            yield f"\n        var {name} = KZ.layer({parent}, ", True
            for chunk in script_json_chunks(spec.to_json(), "data"):
                yield chunk, False
            yield ");\n        ", True

        return {"script": StreamText(pieces)}


class PageExtras(LiteralParts):
    """Title, legend, notes, search box, north arrow, scale bar and attribution of a map."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function (map) {
            map.attributionControl.setPrefix('<a href="#leaflet">Leaflet</a>');
            map.attributionControl.addAttribution({{ this.attribution_json }});
            L.control.scale({metric: true, imperial: false, position: "bottomleft"}).addTo(map);
            KZ.addPanel(map, "kz-title", "topleft");
            KZ.addSearch(map, {{ this.search_json }}, {{ this.placeholder_json }});
            KZ.addNorthArrow(map);
            KZ.addPanel(map, "kz-legend", "bottomright");
            KZ.watchLayers(map);
            KZ.addPanel(map, "kz-notes", "bottomleft");
        })({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self, *, attribution_html: str, search_index: list, placeholder: str):
        super().__init__()
        self._name = "PageExtras"
        self.attribution_json = script_json(attribution_html)
        self.search_json = script_json(search_index)
        self.placeholder_json = script_json(placeholder)


class HillshadeOverlay(folium.raster_layers.ImageOverlay, LiteralParts):
    """The hillshade image overlay (a large ``data:`` URL), rendered as literal text."""


def _legend_html(specs: list[LayerSpec], extra: list[tuple[str, str]] | None = None) -> str:
    """Categorical legend, every label escaped. Only categories that occur are listed; each
    layer's block carries ``data-layer`` so the page lists only the layers switched on."""
    out = ['<details id="kz-legend" class="kz-legend" style="display:none" open>',
           "<summary>图例 Legend</summary>"]
    for s in specs:
        used = sorted({row[1] for row in s.data})
        if not used:
            continue
        # one block per layer; the page shows the blocks of the layers switched on (KZ.updateLegend)
        out.append(f'<div class="kz-leg" data-layer="{html.escape(s.key)}">')
        out.append(f"<h3>{html.escape(s.label)}</h3>")
        for k in used:
            c = s.cats[k]
            if s.kind == "line":
                style = f"border-top-color:{c['color']};border-top-style:{'dashed' if c.get('dash') else 'solid'}"
                cls = "kz-sw kz-line"
            elif s.kind == "polygon":
                style = f"border:2px solid {c['color']};background:transparent"
                cls = "kz-sw kz-area"
            else:
                style = f"background:{c['color']};border-color:{c.get('stroke', 'rgba(0,0,0,0.5)')}"
                cls = "kz-sw"
            out.append(f'<div class="kz-item"><span class="{cls}" style="{html.escape(style)}">'
                       f'</span><span>{html.escape(c["label"])}</span></div>')
        if s.legend_note:
            out.append(f'<div class="kz-item kz-note">{html.escape(s.legend_note)}</div>')
        out.append("</div>")
    for head, text in extra or []:
        out.append(f"<h3>{html.escape(head)}</h3><div>{html.escape(text)}</div>")
    out.append("</details>")
    return "\n".join(out)


def _title_html(title_zh: str, title_en: str, subtitle: str, status: dict | None = None) -> str:
    """The title box; with synthesized input it carries the data-status banner (zh + en)."""
    from kaizhou_gis.provenance import banner_html

    return (f'<div id="kz-title" class="kz-title" style="display:none"><h1>{html.escape(title_zh)}'
            f' <span style="font-weight:normal">{html.escape(title_en)}</span></h1>'
            f'<div class="kz-sub">{html.escape(subtitle)}</div>{banner_html(status)}</div>')


def _notes_html(missing: dict[str, str], notes: list[str], attribution: str) -> str:
    parts = [f'<details id="kz-notes" class="kz-notes" style="display:none"{" open" if missing else ""}>',
             "<summary>说明与数据来源 Notes &amp; sources</summary>"]
    for step, why in missing.items():
        parts.append(f'<div class="kz-missing">缺少图层 missing layer: {html.escape(STEP_NAMES_ZH.get(step, step))}'
                     f' — {html.escape(why)}</div>')
    for n in notes:
        parts.append(f"<div>{html.escape(n)}</div>")
    if attribution:
        parts.append(f"<pre>{html.escape(attribution)}</pre>")
    parts.append("</details>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# building a folium map
# --------------------------------------------------------------------------------------------


def attribution_parts(text: str) -> tuple[list[str], str]:
    """The attribution of ``layers/README.md`` as (full lines, short form).

    The README quotes the text every map must carry as ``>`` lines and may give a one-line
    "Short form (map footers): `...`"; without them every non-empty line is used.
    """
    lines = [ln.strip() for ln in (text or "").splitlines()]
    quoted = [ln.lstrip(">").strip() for ln in lines if ln.startswith(">")]
    full = [ln for ln in (quoted or lines) if ln]
    m = re.search(r"short form[^`]*`([^`]+)`", text or "", flags=re.IGNORECASE)
    short = m.group(1).strip() if m else " · ".join(full)
    return full, short


def _says_synthesized(d: MapData) -> bool:
    return "synthes" in d.attribution.lower()


def _attribution_html(d: MapData, basemap: str) -> str:
    """Attribution control text (escaped): the README's short form, which says what is synthesized."""
    parts = []
    _, short = attribution_parts(d.attribution)
    if short:
        parts.append(short)
    if d.synthesized and not _says_synthesized(d):
        parts.append("合成数据 SYNTHESIZED layers: " + ", ".join(d.synthesized))
    parts.append("晕渲底图 hillshade from the DEM (offline)")
    if basemap != "offline":
        parts.append("在线底图仅联网可用 online tiles need the internet")
    return html.escape(" | ".join(parts))


#: Searchable layers: (layer key, field label of the code/id, field label of the detail shown).
SEARCH_LAYERS = [("villages", "代码 code", "乡镇 township"), ("villages_access", "代码 code", "乡镇 township"),
                 ("candidates", "编号 id", "行政村 village"), ("gaps", "编号 id", "行政村 village"),
                 ("settlements_other", "编号 id", "行政村 village"), ("seats", None, None)]


def search_index(specs: list[LayerSpec]) -> list[list]:
    """Entries ``[name, detail, layer key, feature index, code]`` of every village and settlement
    (and township seat) on the map, each place once (the first layer that has it)."""
    by_key = {s.key: s for s in specs}
    out, seen = [], set()
    for key, code_label, detail_label in SEARCH_LAYERS:
        s = by_key.get(key)
        if s is None or s.title_field < 0:
            continue
        ci = s.fields.index(code_label) if code_label in s.fields else -1
        di = s.fields.index(detail_label) if detail_label in s.fields else -1
        for i, row in enumerate(s.data):
            props = row[3] or []
            name = props[s.title_field]
            code = props[ci] if ci >= 0 else None
            ident = (key in ("villages", "villages_access"), str(code) if code is not None else (key, i))
            if name is None or ident in seen:
                continue
            seen.add(ident)
            detail = props[di] if di >= 0 and props[di] else ""
            out.append([name, detail, key, i, "" if code is None else str(code)])
    return out


def _tile_layer(url: str, *, attr: str, name: str, **kwargs) -> folium.TileLayer:
    """folium's ``TileLayer(url, attr=..., name=..., **kwargs)``, the same layer, without its
    search of xyzservices' provider names for ``url`` (a walk over the whole catalogue, 4 ms a
    layer: some 8 % of a township page's CPU): the URL goes in as a provider of its own."""
    import xyzservices

    return folium.TileLayer(xyzservices.TileProvider(name=name, url=url, attribution=attr),
                            attr=attr, name=name, **kwargs)


def build_map(kind: str, d: MapData, specs: list[LayerSpec], *, title_zh: str, title_en: str,
              subtitle: str, bounds: tuple[float, float, float, float], background: Background | None,
              basemap: str, tianditu_key: str | None, notes: list[str] | None = None) -> folium.Map:
    """One offline folium map from layer specs (nothing is written)."""
    west, south, east, north = bounds
    zoom: dict[str, Any] = {"maxZoom": 18, "minZoom": 6}  # Leaflet's option names, as given
    m = OfflineMap(location=[(south + north) / 2, (west + east) / 2], tiles=None, zoom_start=10,
                   control_scale=False, prefer_canvas=True, **zoom)
    any_cluster = any(s.cluster for s in specs)
    inline_assets(m, cluster=any_cluster)
    root = cast(Figure, m.get_root())  # a folium.Map's root is a branca Figure
    root.header.add_child(RawHtml(f"<title>{html.escape(title_zh)} {html.escape(title_en)}</title>"),
                          name="kz_title")

    # base layers: hillshade (default) and optional online tiles, only one shown
    if background is not None:
        import base64
        url = "data:image/png;base64," + base64.b64encode(background.png).decode("ascii")
        b = background.bounds
        HillshadeOverlay(
            url, bounds=[[b[1], b[0]], [b[3], b[2]]], name="地形晕渲 Hillshade (offline)",
            overlay=False, control=True, show=basemap == "offline", opacity=0.9,
            interactive=False).add_to(m)
    else:
        folium.map.FeatureGroup(name="无底图 No basemap (DEM not available)", overlay=False,
                                show=basemap == "offline").add_to(m)
    if basemap == "gaode":
        _tile_layer(GAODE_URL, attr=GAODE_ATTR, name="高德 Gaode (online, GCJ-02)",
                         subdomains="1234", overlay=False, show=True, max_zoom=18).add_to(m)
    else:
        _tile_layer(OSM_URL, attr=OSM_ATTR, name="OpenStreetMap (online)", overlay=False,
                         show=basemap == "osm", max_zoom=19).add_to(m)
        if tianditu_key:
            _tile_layer(TIANDITU_URL % tianditu_key, attr=TIANDITU_ATTR, name="天地图 Tianditu (online)",
                             subdomains="01234567", overlay=False, show=basemap == "tianditu",
                             max_zoom=18).add_to(m)
            _tile_layer(TIANDITU_LABEL_URL % tianditu_key, attr=TIANDITU_ATTR,
                             name="天地图注记 Tianditu labels (online)", subdomains="01234567",
                             overlay=True, show=basemap == "tianditu", max_zoom=18).add_to(m)

    for s in sorted(specs, key=lambda s: LAYER_Z.get(s.key, 5.0)):  # seats last, on top
        SpecLayer(s).add_to(m)
    folium.LayerControl(collapsed=True, position="topright").add_to(m)

    search = search_index(specs)
    page_notes = list(d.notes) + list(notes or [])
    root.html.add_child(RawHtml(_title_html(title_zh, title_en, subtitle, d.status)),
                        name="kz_title_html")
    root.html.add_child(RawHtml(_legend_html(specs)), name="kz_legend_html")
    root.html.add_child(RawHtml(_notes_html(_missing_for(kind, d), page_notes, d.attribution)),
                        name="kz_notes_html")
    m.add_child(PageExtras(attribution_html=_attribution_html(d, basemap), search_index=search,
                           placeholder="搜索村/自然村 名称或代码 search by name or code"))
    # fitted without animation: a zoom animation still running when the reader's first click
    # (a search hit) arrives would end on its own target and undo the view that click set
    fit = folium.map.FitBounds([[south, west], [north, east]])
    fit.options["animate"] = False
    m.add_child(fit)
    stable_element_ids(m, f"{kind}|{title_zh}|{subtitle}")
    return m


def stable_element_ids(m: folium.Map, seed: str) -> None:
    """Give every element of the page an id derived from ``seed`` and its position instead of
    folium's random one, so the same map built twice (``run`` and ``maps --township``, or two
    runs) is the same HTML byte for byte."""
    import hashlib

    seen: set[int] = set()
    counter = 0

    def walk(el) -> None:
        nonlocal counter
        if id(el) in seen:
            return
        seen.add(id(el))
        if hasattr(el, "_id"):
            el._id = hashlib.sha256(f"{seed}|{counter}".encode()).hexdigest()[:32]
            counter += 1
        for child in list(getattr(el, "_children", {}).values()):
            walk(child)

    root = m.get_root()
    walk(root)
    for part in (getattr(root, "header", None), getattr(root, "html", None), getattr(root, "script", None)):
        if part is not None:
            walk(part)
