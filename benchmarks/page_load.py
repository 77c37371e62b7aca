"""Load time of HTML maps in headless chromium (as ``tests/test_maps_browser.py`` opens them).

Usage::

    python benchmarks/page_load.py outputs/maps/overview.html [more pages] [--loads 10]

Each page is opened ``--loads`` times in a fresh tab, offline (every request that is not
``file:``/``data:`` is refused); one load is timed from the start of the navigation until the
layer switcher is there and two animation frames have been drawn after the ``load`` event (the
page parsed, its layers built and drawn). Printed per page: its size, the median and the min/max
load time in ms, and the browser's main-thread script and layout time of the last load
(``Performance.getMetrics``). Needs ``playwright`` and ``/usr/bin/chromium``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
DRAWN = """() => new Promise(done => {
    const wait = () => requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
    if (document.readyState === "complete") wait(); else addEventListener("load", wait);
})"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="+", type=Path)
    ap.add_argument("--loads", type=int, default=10)
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                      else r.abort())
        for path in a.pages:
            times, metrics = [], {}
            for _ in range(a.loads):
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                t0 = time.perf_counter()
                page.goto(path.resolve().as_uri(), timeout=120_000)
                page.wait_for_selector(".leaflet-control-layers", timeout=120_000)
                page.evaluate(DRAWN)
                times.append((time.perf_counter() - t0) * 1000)
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                page.close()
            print(f"{path}: {path.stat().st_size / 2**20:.2f} MB, {a.loads} loads: median "
                  f"{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f}); "
                  f"last load: script {metrics.get('ScriptDuration', 0) * 1000:.0f} ms, "
                  f"layout {metrics.get('LayoutDuration', 0) * 1000:.0f} ms, "
                  f"style {metrics.get('RecalcStyleDuration', 0) * 1000:.0f} ms, "
                  f"DOM nodes {metrics.get('Nodes', 0):.0f}")
        context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
