"""The web workbench in headless Chromium, with every request to another host aborted and recorded.

One server on the shipped layers (one plan run) serves the module: open the overview, pick 大进镇 by
typing 大进, see its map and candidate table, set the threshold to 1,000 m and get the candidate
count that ``kaizhou-gis relocation --threshold-m 1000`` gives, download the XLSX and the print map
and open them; two what-ifs at once, each page with its own result. A second server on the small
test layers, with injection probes as names, checks that they render as text.
Skipped when ``/usr/bin/chromium`` is absent (``.ci/run`` installs it).
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import openpyxl
import pytest
from test_web import INJECTION, JINJA, fast_plan, probe_layers
from webserver import running, wait_done

from kaizhou_gis.web.workbench import STEP_CACHE, Workbench

SHIPPED = Path(__file__).resolve().parent.parent / "layers"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
DAJIN_NAME = "大进镇"
SLOW = 180_000  # ms: a what-if recompute on 2 shared cores

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory, shipped_run):
    """The workbench on the shipped layers, its cache folder holding the district results of the
    session's shipped run (the coarser print settings of :func:`fast_plan` leave the analyses'
    inputs as they are): the plan's run takes access and relocation from there, as a server
    started again after a `run` on the same layers and plan would."""
    tmp = tmp_path_factory.mktemp("webshipped")
    shutil.copytree(shipped_run.out / ".cache", tmp / "cache" / STEP_CACHE)
    wb = Workbench(SHIPPED, fast_plan(tmp / "plan.toml"), cache_dir=tmp / "cache")
    assert wb.error is None, wb.error
    with running(wb) as url:
        wait_done(wb)
        assert {"access", "relocation"} <= set(wb.base.reused), wb.base.reused
        yield wb, url, tmp


class Tab:
    """A page of the workbench; requests to any host but the server are aborted and recorded."""

    def __init__(self, context, base_url: str):
        self.base = base_url
        self.host = urlsplit(base_url).netloc
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = context.new_page()

        def route(r):
            url = r.request.url
            if url.startswith(("data:", "about:", "blob:")) or urlsplit(url).netloc == self.host:
                r.continue_()
            else:
                self.foreign.append(url)
                r.abort()

        self.page.route("**/*", route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.add_init_script("window.__alerts = []; "
                                  "window.alert = function (m) { window.__alerts.push(String(m)); };")

    def goto(self, path: str):
        self.page.goto(self.base + path)

    def assert_clean(self):
        assert self.foreign == [], f"requests to other hosts: {self.foreign[:5]}"
        assert self.errors == [], f"console/page errors: {self.errors[:5]}"
        assert self.dialogs == [] and self.page.evaluate("window.__alerts") == []

    def count(self, key: str) -> int:
        return int(float(self.page.locator(f"#count-{key} td").first.get_attribute("data-value")))


def cli_candidates(tmp: Path, township: str, threshold_m: float) -> int:
    """Candidates of a township from ``kaizhou-gis relocation --threshold-m`` (its candidates.csv)."""
    from click.testing import CliRunner

    from kaizhou_gis.cli import main

    out = tmp / f"cli_{threshold_m:g}"
    # in this process (the command's code path as from a shell, without paying the imports of a
    # new interpreter)
    r = CliRunner().invoke(main, ["-q", "relocation", "--threshold-m", f"{threshold_m:g}",
                                  "--township", township, "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "relocation" / "candidates.csv", encoding="utf-8-sig") as f:
        return sum(1 for _ in csv.DictReader(f))


def test_overview_pick_township_what_if_and_downloads(browser, shipped_server):
    wb, url, tmp = shipped_server
    expected_1000 = cli_candidates(tmp, DAJIN_NAME, 1000.0)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    tab = Tab(context, url)
    page = tab.page
    try:
        tab.goto("/")
        page.wait_for_selector("#district-counts", timeout=SLOW)
        assert "总览" in page.locator("h1").inner_text()
        assert "合成数据" in page.locator("#data-status").inner_text()
        assert page.locator("#scorecard tbody tr").count() >= 5
        page.frame_locator("#overview-map").locator(".leaflet-control-layers").wait_for(timeout=30_000)
        # pick 大进镇 by typing 大进
        page.fill("#tw-search", "大进")
        hits = page.locator("#tw-results li.kz-hit")
        assert hits.count() == 1 and DAJIN_NAME in hits.first.inner_text()
        hits.first.locator("a").click()
        page.wait_for_selector("#table-candidates", timeout=SLOW)
        assert DAJIN_NAME in page.locator("h1").inner_text()
        frame = page.frame_locator("#township-map")
        frame.locator(".leaflet-control-layers").wait_for(timeout=30_000)
        assert frame.locator("#kz-legend").inner_text().count("图例") == 1
        rows_800 = page.locator("#table-candidates tbody tr").count()
        assert rows_800 == tab.count("candidates") == int(page.locator("#rows-candidates").inner_text())
        # what-if: threshold 1,000 m
        page.fill("input[name='relocation.threshold_m']", "1000")
        page.click("#whatif-run")
        page.wait_for_selector("#progress, #table-candidates", timeout=SLOW)
        page.wait_for_selector("#table-candidates", timeout=SLOW)
        assert "relocation.threshold_m = 1000" in page.locator("#whatif-active").inner_text()
        n = tab.count("candidates")
        assert n == expected_1000 != rows_800
        assert page.locator("#table-candidates tbody tr").count() == n
        assert int(page.locator("#count-candidates td").nth(1).get_attribute("data-value")) == rows_800
        page.frame_locator("#township-map").locator(".leaflet-control-layers").wait_for(timeout=30_000)
        # downloads: the XLSX and the print map of this what-if
        with page.expect_download(timeout=SLOW) as d:
            page.click("#dl-xlsx")
        xlsx = tmp / "dl.xlsx"
        d.value.save_as(xlsx)
        book = openpyxl.load_workbook(xlsx)
        assert len(list(book["candidates"].iter_rows())) - 1 == n
        about = "\n".join(str(c) for r in book["about"].iter_rows(values_only=True) for c in r)
        assert "合成" in about and "relocation.threshold_m" in about
        with page.expect_download(timeout=SLOW) as d:
            page.click("#dl-pdf")
        pdf = tmp / "dl.pdf"
        d.value.save_as(pdf)
        from pypdf import PdfReader
        reader = PdfReader(pdf)
        assert len(reader.pages) == 1
        w_mm, h_mm = (float(v) / 72 * 25.4 for v in reader.pages[0].mediabox.upper_right)
        assert sorted([round(w_mm), round(h_mm)]) == [297, 420]  # A3
        assert DAJIN_NAME in reader.pages[0].extract_text()
        tab.assert_clean()
    finally:
        context.close()


def test_two_what_ifs_at_once_each_page_shows_its_own(browser, shipped_server):
    wb, url, tmp = shipped_server
    code = next(t["code"] for t in wb.townships if t["name"] == DAJIN_NAME)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tabs = [Tab(context, url), Tab(context, url)]
    values = [900.0, 1150.0]
    try:
        for tab, v in zip(tabs, values):  # both start before either is finished
            tab.goto(f"/township/{code}?relocation.threshold_m={v:g}")
        keys = [tab.page.locator("#progress").get_attribute("data-run") for tab in tabs]
        assert keys[0] != keys[1]
        for tab in tabs:
            tab.page.wait_for_selector("#table-candidates", timeout=SLOW)
        # expected, from the plan run's settlements: above the threshold, or steep AND deep
        # valley AND remote (those three do not depend on the threshold)
        s = wb.base.ctx.results["relocation"].data.settlements
        s = s[s["township_code"] == code]
        terrain = (s["steep_terrain"].astype(bool) & s["deep_valley"].astype(bool)
                   & s["remote"].fillna(False).astype(bool))
        for tab, key, v in zip(tabs, keys, values):
            expect = int(((s["elevation_m"] > v) | terrain).sum())
            assert wb.get_run(key).plan["relocation.threshold_m"] == v
            assert f"relocation.threshold_m = {v:g}" in tab.page.locator("#whatif-active").inner_text()
            assert tab.count("candidates") == expect
            assert tab.page.locator("#table-candidates tbody tr").count() == expect
            assert tab.page.locator("input[name='relocation.threshold_m']").input_value() == f"{v:g}"
            tab.assert_clean()
        assert tabs[0].count("candidates") > tabs[1].count("candidates")
    finally:
        context.close()


def test_injection_probes_render_as_text(browser, tmp_path):
    layers = probe_layers(tmp_path / "layers")
    wb = Workbench(layers, None, cache_dir=tmp_path / "cache")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    with running(wb) as url:
        wait_done(wb)
        tab = Tab(context, url)
        page = tab.page
        try:
            tab.goto("/")
            page.wait_for_selector("#district-counts", timeout=SLOW)
            page.fill("#tw-search", "onerror")
            hit = page.locator("#tw-results li.kz-hit")
            assert hit.count() == 1 and INJECTION in hit.first.inner_text()
            hit.first.locator("a").click()
            page.wait_for_selector("#table-candidates", timeout=SLOW)
            assert INJECTION in page.locator("h1").inner_text()
            assert INJECTION + JINJA in page.locator("#table-candidates").inner_text()
            assert page.locator("img[src='x']").count() == 0
            frame = page.frame_locator("#township-map")
            frame.locator(".leaflet-control-layers").wait_for(timeout=30_000)
            assert frame.locator("img[src='x']").count() == 0
            page.wait_for_timeout(300)
            tab.assert_clean()
            # a URL with /../ is refused, not resolved
            resp = page.request.get(url + "/runs/%2e%2e/%2e%2e/report.html")
            assert resp.status == 404
        finally:
            context.close()
