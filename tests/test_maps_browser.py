"""The HTML maps in a real headless Chromium with the network off.

Every request that is not a ``file:`` or ``data:`` URL is aborted and recorded as a failure;
console errors and page errors are collected. Synthetic maps (from ``test_maps``) are checked for
layers, legend, search and the injection name; one shipped-layer township map is checked when the
shipped layers exist. Skipped when ``/usr/bin/chromium`` is absent (install the Debian package
``chromium``; ``.ci/run`` does).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaizhou_gis import maps, outputs
from kaizhou_gis.plan import load_plan

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]

from test_maps import HAVE_SHIPPED, INJECTION, T1, T2, make_ctx, shipped_maps  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="module")
def browser():
    """One browser context for the module (each test opens its own page in it)."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = b.new_context(viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    ctx = make_ctx(tmp)
    # cluster the village layer (6 points) so the MarkerCluster code path runs in the browser too
    ctx.plan = load_plan(overrides={"maps.cluster_min_points": 4})
    res = maps.run(ctx)
    out = tmp / "out"
    outputs.write_products(out, res.files)
    return out / "maps"


class Page:
    """A page opened offline, with the failures it produced."""

    def __init__(self, context, path: Path):
        self.failures: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = context.new_page()

        def route(r):
            url = r.request.url
            if url.startswith(("file:", "data:", "about:")):
                r.continue_()
            else:
                self.failures.append(url)
                r.abort()

        self.page.route("**/*", route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failures.append(r.url)
                     if not r.url.startswith("data:") else None)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.add_init_script("window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };")
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector(".leaflet-control-layers", timeout=10_000)

    def close(self):
        self.page.close()

    def assert_clean(self):
        assert self.failures == [], f"network requests: {self.failures[:5]}"
        assert self.errors == [], f"console/page errors: {self.errors[:5]}"
        assert self.dialogs == [] and self.page.evaluate("window.__alerts") == []


@pytest.mark.parametrize("rel, expect", [
    ("overview.html", "Villages (poverty status)"), ("relocation.html", "Relocation candidates"),
    ("industry.html", "Industry projects"), ("access.html", "Village road access"),
    (f"townships/{T1}.html", "Relocation candidates"), (f"townships/{T2}.html", "Proposed road works")])
def test_map_loads_offline_with_layers_and_legend(browser, site, rel, expect):
    p = Page(browser, site / rel)
    try:
        p.assert_clean()
        layer_names = p.page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
        assert any(expect in n for n in layer_names), layer_names
        assert any("Hillshade" in n for n in p.page.locator(".leaflet-control-layers-base label").all_inner_texts())
        legend = p.page.locator("#kz-legend")
        assert legend.is_visible() and "图例" in legend.inner_text()
        assert p.page.locator(".leaflet-control-scale-line").count() == 1
        assert p.page.locator(".kz-north").count() == 1
        assert p.page.locator(".kz-search input").count() == 1
        # the hillshade is an inline image, drawn
        assert p.page.locator("img.leaflet-image-layer").count() == 1
        assert p.page.evaluate("Object.keys(KZ.layers).length") >= 3
    finally:
        p.close()


def test_search_finds_a_village_and_opens_its_popup(browser, site):
    p = Page(browser, site / "overview.html")
    try:
        p.page.fill(".kz-search input", "高山")
        hits = p.page.locator(".kz-search-results li.kz-search-hit")
        assert hits.count() == 1 and "高山村" in hits.first.inner_text()
        hits.first.click()
        popup = p.page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5000)
        text = popup.inner_text()
        assert "高山村" in text and "户数 households" in text and "180" in text and "深度贫困村" in text
        p.assert_clean()
    finally:
        p.close()


def test_injection_name_is_shown_as_text_and_runs_nothing(browser, site):
    p = Page(browser, site / f"townships/{T1}.html")
    try:
        p.page.fill(".kz-search input", "onerror")
        hit = p.page.locator(".kz-search-results li.kz-search-hit").first
        assert INJECTION in hit.inner_text()
        hit.click()
        popup = p.page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5000)
        assert INJECTION in popup.inner_text()  # visible as text
        assert p.page.locator(".leaflet-popup-content img").count() == 0
        assert p.page.locator("img[src='x']").count() == 0
        # hovering the point shows the tooltip, also as text
        p.page.wait_for_timeout(300)
        assert p.page.locator(".leaflet-tooltip img").count() == 0
        p.assert_clean()
    finally:
        p.close()


def test_layer_can_be_switched_off(browser, site):
    p = Page(browser, site / "overview.html")
    try:
        n0 = p.page.evaluate("document.querySelectorAll('.leaflet-overlay-pane canvas').length")
        assert n0 >= 1
        on = p.page.evaluate("KZ.layers.villages.map.hasLayer(KZ.layers.villages.group)")
        label = p.page.locator(".leaflet-control-layers-overlays label", has_text="Villages (poverty status)")
        label.locator("input").click()
        off = p.page.evaluate("KZ.layers.villages.map.hasLayer(KZ.layers.villages.group)")
        assert on is True and off is False
        p.assert_clean()
    finally:
        p.close()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SHIPPED, reason="shipped layers not built yet")
def test_shipped_maps_offline(browser, tmp_path):
    ctx, res = shipped_maps()
    L = ctx.layers
    code = "500154118" if "500154118" in set(L.townships["township_code"].astype(str)) else str(
        L.townships["township_code"].iloc[0])
    outputs.write_products(tmp_path, {k: v for k, v in res.files.items()
                                      if k in ("maps/overview.html", f"maps/townships/{code}.html")})
    for rel in ("overview.html", f"townships/{code}.html"):
        p = Page(browser, tmp_path / "maps" / rel)
        try:
            p.assert_clean()
            v = L.villages[L.villages["township_code"].astype(str) == code]
            name = str(v["name"].iloc[0])
            p.page.fill(".kz-search input", name)
            hits = p.page.locator(".kz-search-results li.kz-search-hit")
            assert hits.count() >= 1 and name in hits.first.inner_text()
            hits.first.click()
            p.page.locator(".leaflet-popup-content").wait_for(timeout=5000)
            assert name in p.page.locator(".leaflet-popup-content").inner_text()
            p.assert_clean()
        finally:
            p.close()
