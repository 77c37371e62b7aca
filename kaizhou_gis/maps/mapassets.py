"""Offline map assets: the vendored Leaflet files inlined into each HTML map.

folium's templates load Leaflet, jQuery, Bootstrap and plugins from CDNs. A reviewer on an
intranet has no internet, so :class:`OfflineMap` drops every CDN link and :func:`inline_assets`
puts the few files the maps need into the page itself: Leaflet 1.9.4 and Leaflet.markercluster
1.5.3 (vendored from the npm registry with their licences, see ``assets/README.md``) and the
project's own small runtime ``assets/kaizhou-maps.js``/``.css``. Images referenced by Leaflet's
CSS become ``data:`` URIs. The page makes no network request unless the user switches on an
online tile layer.
"""
from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, cast

import folium
from branca.element import Element, Figure, MacroElement
from jinja2 import Template

LEAFLET_DIR = "leaflet-1.9.4"
CLUSTER_DIR = "leaflet.markercluster-1.5.3"


def _asset_text(*parts: str) -> str:
    return (resources.files("kaizhou_gis") / "assets").joinpath(*parts).read_text(encoding="utf-8")


def _asset_bytes(*parts: str) -> bytes:
    return (resources.files("kaizhou_gis") / "assets").joinpath(*parts).read_bytes()


def _strip_source_map(js: str) -> str:
    return re.sub(r"//# sourceMappingURL=\S+\s*$", "", js.rstrip()) + "\n"


def _safe_in_tag(text: str, tag: str) -> str:
    """Make text safe inside <script>/<style>: no closing tag can end the element early."""
    return re.sub(rf"</(?={tag})", r"<\\/", text, flags=re.IGNORECASE)


@functools.cache
def leaflet_js() -> str:
    js = _strip_source_map(_asset_text(LEAFLET_DIR, "leaflet.js"))
    # Leaflet's attribution prefix links to its web site; keep the credit, drop the outbound link
    # so that the offline page holds no http(s) reference at all.
    js = js.replace('href="https://leafletjs.com"', 'href="#leaflet"')
    return _safe_in_tag(js, "script")


@functools.cache
def leaflet_css() -> str:
    css = _asset_text(LEAFLET_DIR, "leaflet.css")

    def data_uri(m: re.Match) -> str:
        name = m.group(1)
        b64 = base64.b64encode(_asset_bytes(LEAFLET_DIR, "images", name)).decode("ascii")
        return f"url(data:image/png;base64,{b64})"

    css = re.sub(r"url\(images/([\w.-]+\.png)\)", data_uri, css)
    return _safe_in_tag(css, "style")


@functools.cache
def cluster_js() -> str:
    return _safe_in_tag(_strip_source_map(_asset_text(CLUSTER_DIR, "leaflet.markercluster.js")), "script")


@functools.cache
def cluster_css() -> str:
    return _safe_in_tag(_asset_text(CLUSTER_DIR, "MarkerCluster.css") + "\n"
                        + _asset_text(CLUSTER_DIR, "MarkerCluster.Default.css"), "style")


@functools.cache
def runtime_js() -> str:
    return _safe_in_tag(_asset_text("kaizhou-maps.js"), "script")


@functools.cache
def runtime_css() -> str:
    return _safe_in_tag(_asset_text("kaizhou-maps.css"), "style")


def script_json(obj: Any) -> str:
    """JSON text that is safe inside an inline <script> of a folium page.

    ``<``, ``>``, ``&`` and line separators are written as ``\\u`` escapes, so no data can close
    the script element or open a tag. A ``{`` that starts ``{{``, ``{%`` or ``{#`` is written as
    ``\\u007b`` too: branca compiles the script output of folium elements as a Jinja template, and a
    name like ``{{ 7*7 }}`` would otherwise be evaluated. (JSON's own braces are never followed by
    ``{``, ``%`` or ``#``, so only string contents change.)
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return re.sub(r"\{(?=[{%#])", r"\\u007b", text)


class RawHtml(Element):
    """Literal HTML text in a page. Unlike ``branca.element.Element(text)`` the text is not
    compiled as a Jinja template: it is faster for big inline scripts, and data such as a name
    containing ``{{ ... }}`` stays literal text."""

    _template = Template("{{ this.content }}")

    def __init__(self, content: str):
        super().__init__()
        self._name = "RawHtml"
        self.content = content


def _literal(text: str) -> str:
    """What branca's ``Element(text).render()`` gives for the rendered text of an element: the
    text itself (newlines normalised, one trailing newline dropped, as Jinja does) when it holds
    no template syntax, else the template's own rendering."""
    if "{{" in text or "{%" in text or "{#" in text:
        return Template(text).render()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:-1] if text.endswith("\n") else text


class LiteralParts(MacroElement):
    """Mixin for a folium element (put it last in the bases): its header, html and script parts
    go into the page as literal text (:class:`RawHtml`) instead of each being compiled as a new
    Jinja template, as ``MacroElement.render`` does; so do those of its children that render as a
    plain ``MacroElement`` (e.g. the ``addTo`` statement folium adds to each layer). The page is
    the same byte for byte; the compile of the large layer data (the JSON specs, the hillshade
    image) is gone."""

    def render(self, **kwargs):
        _render_literal(self, kwargs)

    def literal_parts(self, kwargs: dict) -> dict[str, Element]:
        """The element's header, html and script parts (those its template has) as page
        elements: by default its template's macros rendered to literal text."""
        macros = self._template.module.__dict__
        return {part: RawHtml(_literal(macros[part](self, kwargs)))
                for part in ("header", "html", "script") if macros.get(part) is not None}


def _render_literal(el: MacroElement, kwargs: dict) -> None:
    """``MacroElement.render`` of ``el`` with its parts added as literal text."""
    figure = el.get_root()
    assert isinstance(figure, Figure), "You cannot render this Element if it is not in a Figure."
    if isinstance(el, LiteralParts):
        parts = el.literal_parts(kwargs)
    else:
        parts = LiteralParts.literal_parts(el, kwargs)  # type: ignore[arg-type]  # same attributes
    for part, child in parts.items():
        getattr(figure, part).add_child(child, name=el.get_name())
    for child in el._children.values():
        if isinstance(child, MacroElement) and type(child).render is MacroElement.render:
            _render_literal(child, kwargs)
        else:
            child.render(**kwargs)


class StreamText(Element):
    """Literal text of a page given as a sequence of pieces (:meth:`pieces`), so that a large
    part (a layer's data) goes out piece by piece and is never one string (:func:`render_chunks`).
    ``render`` joins the pieces, for branca's own rendering. A piece is ``(text, ids)``: ``ids``
    False for data text, which holds no element id (:func:`render_chunks` leaves it as it is)."""

    def __init__(self, pieces: Callable[[], Iterator[tuple[str, bool]]]):
        super().__init__()
        self._name = "StreamText"
        self.pieces = pieces

    def render(self, **kwargs) -> str:
        return "".join(text for text, _ in self.pieces())


def script_json_chunks(obj: dict, stream_key: str, rows: int = 2000) -> Iterator[str]:
    """:func:`script_json` of the dict ``obj`` in pieces: the list ``obj[stream_key]`` goes out
    ``rows`` items at a time. The pieces joined are exactly ``script_json(obj)`` (JSON with
    compact separators joins a list's items with ``,``; the escapes of :func:`script_json` act on
    single characters, and ``{{``, ``{%``, ``{#`` can only occur inside one item's strings)."""
    items = list(obj.items())
    head = "{"
    for n, (k, v) in enumerate(items):
        sep = "," if n else ""
        if k != stream_key:
            head += sep + script_json(k) + ":" + script_json(v)
            continue
        yield head + sep + script_json(k) + ":["
        data = v
        for i in range(0, len(data), rows):
            yield ("," if i else "") + script_json(data[i:i + rows])[1:-1]
        head = "]"
    yield head + "}"


def render_chunks(figure: Figure) -> Iterator[tuple[str, bool]]:
    """``figure.render()`` (a branca Figure, e.g. a folium map's root) as a sequence of
    ``(text, ids)`` pieces whose texts joined are the rendered page byte for byte, without ever
    holding the page as one string: the children of the header, body and script parts are
    rendered one by one and a :class:`StreamText` gives its pieces. ``ids`` is False for pieces
    of layer data (they hold no element id)."""
    for child in figure._children.values():
        child.render()
    yield ("<!DOCTYPE html>\n<html>\n<head>\n"
           + (f"<title>{figure.title}</title>" if figure.title else "") + "    ", True)
    tails = ("\n</head>\n<body>\n    ", "\n</body>\n<script>\n    ", "\n</script>\n</html>")
    for part, tail in zip((figure.header, figure.html, figure.script), tails):
        if type(part)._template is not Element._template:  # a plain Element joins its children
            raise TypeError(f"render_chunks: {type(part).__name__} is not a plain branca Element")
        for child in part._children.values():
            yield "\n    ", True
            if isinstance(child, StreamText):
                yield from child.pieces()
            else:
                yield child.render(), True
        yield tail, True


class OfflineMap(folium.Map, LiteralParts):
    """A folium Map that links no CDN file; :func:`inline_assets` supplies the code inline."""

    default_js: list = []
    default_css: list = []


def inline_assets(m: folium.Map, *, cluster: bool = True) -> None:
    """Add Leaflet (and, if ``cluster``, MarkerCluster) plus the runtime inline to the page header."""
    root = cast(Figure, m.get_root())  # a folium.Map's root is a branca Figure
    parts = [("kz_leaflet_css", f"<style>{leaflet_css()}</style>")]
    if cluster:
        parts.append(("kz_cluster_css", f"<style>{cluster_css()}</style>"))
    parts.append(("kz_runtime_css", f"<style>{runtime_css()}</style>"))
    parts.append(("kz_leaflet_js", f"<script>{leaflet_js()}</script>"))
    if cluster:
        parts.append(("kz_cluster_js", f"<script>{cluster_js()}</script>"))
    parts.append(("kz_runtime_js", f"<script>{runtime_js()}</script>"))
    for name, html_text in parts:
        root.header.add_child(RawHtml(html_text), name=name)


#: Strings whose presence in an offline page would mean a network fetch of code, style or font.
REMOTE_REFERENCE_PATTERNS = (
    re.compile(r"""<script[^>]+src\s*=\s*["']?\s*(https?:)?//""", re.IGNORECASE),
    re.compile(r"""<link[^>]+href\s*=\s*["']?\s*(https?:)?//""", re.IGNORECASE),
    re.compile(r"""(src|href)\s*=\s*["']\s*https?://""", re.IGNORECASE),
    re.compile(r"""url\(\s*["']?\s*(https?:)?//""", re.IGNORECASE),
    re.compile(r"""@import""", re.IGNORECASE),
)


def remote_references(html_text: str) -> list[str]:
    """Snippets of ``html_text`` that reference a remote script, stylesheet, image or font."""
    found = []
    for pat in REMOTE_REFERENCE_PATTERNS:
        for mt in pat.finditer(html_text):
            found.append(html_text[max(0, mt.start() - 20): mt.end() + 40])
    return found
