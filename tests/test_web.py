"""The web workbench without a browser: township search, what-if values, runs keyed by inputs,
downloads inside the cache folder, path tricks, escaping, error pages and reload.

Uses the small test layer set (``layerset.py``) so a run takes a few seconds; the browser tests
(``test_web_browser.py``) use the shipped layers.
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from layerset import DAJIN, layer_frames, write_layerset
from webserver import raw_get, running, wait_done

from kaizhou_gis.errors import OptionError, PlanError
from kaizhou_gis.plan import default_plan_path, load_plan, with_overrides
from kaizhou_gis.web.townships import pinyin_keys, search_townships, township_tables
from kaizhou_gis.web.workbench import STEP_CACHE, Workbench

INJECTION = "<img src=x onerror=alert(1)>"
JINJA = "{{ 7*7 }}"


def probe_layers(folder: Path) -> Path:
    """The test layers with injection probes as a township, a village and a settlement name."""
    f = layer_frames()
    f["townships"].loc[f["townships"]["township_code"] == DAJIN, "name"] = INJECTION
    f["villages"].loc[f["villages"]["name"] == "白泉村", "name"] = JINJA
    f["settlements"].loc[f["settlements"]["name"] == "白泉坪", "name"] = INJECTION + JINJA
    return write_layerset(folder, f)


def fast_plan(path: Path) -> Path:
    """The shipped plan with coarser print sheets (60 dpi instead of 300/200) and district
    hillshade, so the PDF/PNG/ZIP tests are quick; no analysis setting changes."""
    text = default_plan_path().read_text(encoding="utf-8")
    text = re.sub(r"print_hillshade_dpi = \{ value = \d+", "print_hillshade_dpi = { value = 60", text)
    text = re.sub(r"png_dpi = \{ value = \d+", "png_dpi = { value = 60", text)
    text = re.sub(r"hillshade_district_px = \{ value = \d+", "hillshade_district_px = { value = 300", text)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    layers = probe_layers(tmp / "layers")
    plan = tmp / "plan.toml"
    fast_plan(plan)
    wb = Workbench(layers, plan, cache_dir=tmp / "cache")
    assert wb.plan["maps.print_hillshade_dpi"] == 60
    assert wb.error is None, wb.error
    wait_done(wb)
    with running(wb) as url:
        yield wb, url, tmp


def get(url: str, path: str) -> tuple[int, str]:
    status, _, body = raw_get(url, path)
    return status, body.decode("utf-8")


def page_when_done(wb, url: str, path: str) -> str:
    status, text = get(url, path)
    m = re.search(r'id="progress" data-run="([0-9a-f]+)"', text)
    if m:
        wait_done(wb, m.group(1))
        status, text = get(url, path)
    assert status == 200, text[:500]
    return text


def test_pinyin_keys_and_search():
    assert pinyin_keys("大进镇") == ("djz", "dajinzhen")
    assert pinyin_keys("汉丰街道") == ("hfjd", "hanfengjiedao")
    index = [{"code": "500154109", "name": "大进镇", "initials": "djz", "pinyin": "dajinzhen"},
             {"code": "500154001", "name": "汉丰街道", "initials": "hfjd", "pinyin": "hanfengjiedao"}]
    for q in ("大进", "djz", "DJ", "dajin", "500154109", " 大 进 "):
        assert [t["code"] for t in search_townships(index, q)] == ["500154109"], q
    assert len(search_townships(index, "")) == 2
    assert search_townships(index, "xyz") == []


def test_adjustable_settings_in_the_plan_schema(tmp_path):
    plan = load_plan()
    adj = plan.adjustable()
    assert adj["relocation.threshold_m"] == {"value": 800.0, "min": 300.0, "max": 2500.0, "step": 50.0,
                                             "source": plan.source("relocation.threshold_m")}
    assert "access.reach_distance_m" in adj
    text = default_plan_path().read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("adjustable = { min = 300.0, max = 2500.0, step = 50.0 }",
                                "adjustable = { min = 900.0, max = 2500.0 }"), encoding="utf-8")
    with pytest.raises(PlanError, match=r"relocation\.threshold_m\.adjustable: the value 800 is outside min 900"):
        load_plan(bad)
    bad.write_text(text.replace('district_name = { value = "开州区", source = "ch.0 (title)" }',
                                'district_name = { value = "开州区", source = "ch.0 (title)", '
                                'adjustable = { min = 1.0, max = 2.0 } }'), encoding="utf-8")
    with pytest.raises(PlanError, match="only number settings can be adjustable"):
        load_plan(bad)
    # a command-line override is not bound by the what-if range
    assert load_plan(overrides={"relocation.threshold_m": 3000.0})["relocation.threshold_m"] == 3000.0
    assert with_overrides(plan, {"relocation.threshold_m": 1000.0})["relocation.threshold_m"] == 1000.0
    assert plan["relocation.threshold_m"] == 800.0  # the loaded plan is not changed
    with pytest.raises(PlanError, match="expected a number"):
        with_overrides(plan, {"relocation.threshold_m": "high"})


def test_what_if_values_are_checked(bench):
    wb, _, _ = bench
    assert wb.parse_overrides({"relocation.threshold_m": "1,000", "q": "x"}) == {"relocation.threshold_m": 1000.0}
    assert wb.parse_overrides({"relocation.threshold_m": "800"}) == {}  # the plan's own value
    assert wb.parse_overrides({"crs.work": "EPSG:4326"}) == {}  # not adjustable: ignored
    with pytest.raises(OptionError, match=r"outside the range the plan file allows \(300 \.\. 2500\)"):
        wb.parse_overrides({"relocation.threshold_m": "5000"})
    with pytest.raises(OptionError, match="is not a number"):
        wb.parse_overrides({"relocation.threshold_m": "abc"})


def test_runs_are_keyed_by_inputs_and_reuse_unaffected_steps(bench):
    wb, _, _ = bench
    a = wb.run_for({"relocation.threshold_m": 950.0})
    assert wb.run_for({"relocation.threshold_m": 950.0}) is a
    b = wb.run_for({"access.reach_distance_m": 300.0})
    assert b.key != a.key != wb.base_key
    wait_done(wb, a.key)
    wait_done(wb, b.key)
    assert a.reused == ["access"] and b.reused == []
    # the counts are the relocation step's: S4 (900 m) drops out at 950 m, S5 (940 m) too
    s = a.ctx.results["relocation"].data.settlements
    expect = int(s[s["township_code"] == DAJIN]["relocation_candidate"].sum())
    assert wb.counts(a, DAJIN)["candidates"] == expect
    base = wb.counts(wb.base, DAJIN)["candidates"]
    assert base == 4 and expect == 1  # 820, 900, 940, 1020 m > 800 m; only 1020 m > 950 m
    tables = township_tables(a.ctx.results, a.ctx.layers.villages, a.failures, DAJIN)
    assert len(tables["candidates"]) == expect


def test_a_server_started_again_takes_the_district_results_from_its_cache_folder(bench):
    """The costly district results of the plan's run are kept in ``<cache>/steps`` by what each
    step reads: a second workbench on the same layers, plan and cache folder (a restarted
    server) takes access and relocation from there, with the same figures."""
    import json

    wb, _, tmp = bench
    wait_done(wb)
    # what-ifs (run by the tests before) do not store their results: the plan's run is the one
    # entry of each cached step, not pushed out by them
    index = json.loads((tmp / "cache" / STEP_CACHE / ".index.json").read_text(encoding="utf-8"))
    assert {step: len(entries) for step, entries in index.items()} == {"access": 1, "relocation": 1}
    assert any(r.overrides for r in wb.runs.values())  # there were what-ifs
    again = Workbench(wb.layers_path, wb.plan_path, cache_dir=tmp / "cache")
    try:
        assert again.base_key == wb.base_key
        wait_done(again)
        assert {"access", "relocation"} <= set(again.base.reused), again.base.reused
        assert again.base.failures == {}
        for code in (None, DAJIN):
            assert again.counts(again.base, code) == wb.counts(wb.base, code)
        a = again.base.ctx.results["relocation"].data.settlements
        b = wb.base.ctx.results["relocation"].data.settlements
        pd.testing.assert_frame_equal(a, b)
    finally:
        again.close()


def test_downloads_stay_in_the_cache_folder(bench):
    wb, url, tmp = bench
    run = wb.base
    before = {p for p in tmp.rglob("*") if "cache" not in p.relative_to(tmp).parts}
    status, headers, body = raw_get(url, f"/runs/{run.key}/township/{DAJIN}/{DAJIN}_tables.xlsx")
    assert status == 200 and "attachment" in headers["content-disposition"]
    wbk = openpyxl.load_workbook(io.BytesIO(body))
    assert wbk.sheetnames == ["candidates", "gaps", "works", "industry", "about"]
    rows = list(wbk["candidates"].iter_rows(values_only=True))
    assert rows[0][0] == "自然村编号 settlement id" and len(rows) - 1 == wb.counts(run, DAJIN)["candidates"]
    assert INJECTION + JINJA in [r[1] for r in rows[1:]]
    about = [r for r in wbk["about"].iter_rows(values_only=True)]
    assert any("合成" in str(r[1]) or "真实" in str(r[1]) for r in about)
    status, _, body = raw_get(url, f"/runs/{run.key}/township/{DAJIN}/{DAJIN}_csv.zip")
    z = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(z.namelist()) == sorted(["README.txt", f"{DAJIN}_candidates.csv",
                                           f"{DAJIN}_access_gaps.csv", f"{DAJIN}_works.csv",
                                           f"{DAJIN}_industry.csv"])
    csv_text = z.read(f"{DAJIN}_candidates.csv").decode("utf-8-sig")
    assert len(csv_text.strip().splitlines()) - 1 == wb.counts(run, DAJIN)["candidates"]
    for path in (f"/runs/{run.key}/township/{DAJIN}/{DAJIN}.png", f"/runs/{run.key}/report.html"):
        assert raw_get(url, path)[0] == 200, path
    status, headers, body = raw_get(url, f"/runs/{run.key}/township/{DAJIN}/{DAJIN}.pdf")
    assert status == 200 and headers["content-type"] == "application/pdf" and body.startswith(b"%PDF")
    # field files: the what-if's candidates as GPX waypoints and KMZ placemarks
    import xml.etree.ElementTree as ET
    n_cand = wb.counts(run, DAJIN)["candidates"]
    status, headers, body = raw_get(url, f"/runs/{run.key}/township/{DAJIN}/{DAJIN}_wgs84.gpx")
    assert status == 200 and "attachment" in headers["content-disposition"]
    wpts = ET.fromstring(body).findall("{http://www.topografix.com/GPX/1/1}wpt")
    names = [w.findtext("{http://www.topografix.com/GPX/1/1}name") for w in wpts]
    assert sum(INJECTION + JINJA in (n or "") for n in names) == 1
    assert len(wpts) >= n_cand >= 1
    status, _, body = raw_get(url, f"/runs/{run.key}/township/{DAJIN}/{DAJIN}_gcj02.kmz")
    kml = zipfile.ZipFile(io.BytesIO(body)).read("doc.kml").decode("utf-8")
    assert kml.count("<Placemark") == len(wpts) and "GCJ-02" in kml
    page = page_when_done(wb, url, f"/township/{DAJIN}")
    for ext, coords in (("kmz", "wgs84"), ("gpx", "wgs84"), ("kmz", "gcj02"), ("gpx", "gcj02")):
        assert f'href="/runs/{run.key}/township/{DAJIN}/{DAJIN}_{coords}.{ext}"' in page
    after = {p for p in tmp.rglob("*") if "cache" not in p.relative_to(tmp).parts}
    assert after == before  # nothing written outside the cache folder
    files = [p for p in (tmp / "cache").rglob("*") if p.is_file()]
    assert files and all(p.resolve().is_relative_to((tmp / "cache").resolve()) for p in files)
    with pytest.raises(OptionError):
        wb.cache_path("runs", "..", "..", "etc")
    with pytest.raises(OptionError):
        wb.cache_path("a/../../b")


@pytest.mark.parametrize("path", [
    "/../", "/../etc/passwd", "/static/../app.py", "/static/..%2fapp.py", "/static/workbench.py",
    "/township/..", "/township/%2e%2e", "/township/..%2f..%2fetc%2fpasswd", "/runs/../../x",
    "/runs/0123456789abcdef0123/report.html", "/runs/..%2f..%2f/report.html",
    "/api/runs/..", "/township/999999999"])
def test_path_tricks_get_404(bench, path):
    _, url, _ = bench
    status, headers, body = raw_get(url, path)
    assert status == 404, (path, status)
    assert "找不到该页面" in body.decode("utf-8")


def test_pages_escape_every_name_and_load_nothing_from_elsewhere(bench):
    wb, url, _ = bench
    for path in ("/", f"/township/{DAJIN}", "/townships?q="):
        text = page_when_done(wb, url, path)
        assert INJECTION not in text and not re.search(r"<img[^>]*onerror", text)
        assert not re.search(r'(src|href)="(https?:)?//', text), path
    text = page_when_done(wb, url, f"/township/{DAJIN}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert f"<td>&lt;img src=x onerror=alert(1)&gt;{JINJA}</td>" in text  # the settlement, as text
    status, headers, _ = raw_get(url, "/")
    assert "script-src 'self'" in headers["content-security-policy"]
    status, headers, body = raw_get(url, f"/runs/{wb.base_key}/township/{DAJIN}/map.html")
    assert status == 200 and INJECTION.encode() not in body
    assert not re.search(rb'<(script|link)[^>]+(src|href)="https?://', body)


def _cli_in_process(*args: str):
    """``kaizhou-gis ARGS`` in this process (CliRunner: exit code, stdout and stderr apart)."""
    from click.testing import CliRunner

    from kaizhou_gis.cli import main

    return CliRunner().invoke(main, list(args))


def test_bad_layers_page_shows_the_cli_message(tmp_path):
    missing = tmp_path / "nothing_here.gpkg"
    wb = Workbench(missing, None, cache_dir=tmp_path / "cache")
    assert wb.error and "nothing_here.gpkg" in wb.error
    cli = _cli_in_process("relocation", "--layers", str(missing), "--out", str(tmp_path / "out"))
    assert cli.exit_code == 2 and wb.error in cli.stderr
    with running(wb) as url:
        for path in ("/", f"/township/{DAJIN}"):
            status, text = get(url, path)
            assert status == 503 and "图层或规划文件有误" in text
            assert wb.error.splitlines()[0].replace('"', "&#34;").replace("'", "&#39;") in text or \
                wb.error.splitlines()[0] in text
            assert 'id="reload"' in text


def test_plan_error_page_and_reload(tmp_path):
    layers = write_layerset(tmp_path / "layers")
    plan = tmp_path / "plan.toml"
    good = default_plan_path().read_text(encoding="utf-8")
    plan.write_text(good.replace("[meta]", "[meta]\nspeling = { value = 1, source = \"x\" }"), encoding="utf-8")
    wb = Workbench(layers, plan, cache_dir=tmp_path / "cache")
    cli = _cli_in_process("relocation", "--layers", str(layers), "--plan", str(plan),
                          "--out", str(tmp_path / "out"))
    assert cli.exit_code == 2 and wb.error in cli.stderr and "meta.speling: unknown key" in wb.error
    with running(wb) as url:
        status, text = get(url, "/")
        assert status == 503 and "meta.speling: unknown key" in text
        # fix the file, then reload: the plan is read again (here with another threshold)
        plan.write_text(good.replace('threshold_m = { value = 800.0', 'threshold_m = { value = 850.0'),
                        encoding="utf-8")
        status, _, _ = raw_get(url, "/reload", method="POST", body=b"next=/",
                               headers={"Origin": "http://evil.example",
                                        "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 403 and wb.error is not None  # another site cannot make it reload
        status, headers, _ = raw_get(url, "/reload", method="POST", body=b"next=/",
                                     headers={"Origin": url,
                                              "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["location"] == "/"
        assert wb.error is None and wb.plan["relocation.threshold_m"] == 850.0
        text = page_when_done(wb, url, "/")
        assert 'data-plan="850"' in text
        # the page to return to after a reload is a path of this server, never another site
        for nxt in (b"//evil.example/", b"/\\evil.example/", b"https://evil.example/"):
            status, headers, _ = raw_get(url, "/reload", method="POST", body=b"next=" + nxt,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status == 303 and headers["location"] == "/", nxt


def test_cache_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OptionError, match="cannot create the cache folder"):
        Workbench(None, None, cache_dir=blocker / "cache")


def test_serve_command_binds_loopback_and_says_so(tmp_path):
    from webserver import free_port
    layers = write_layerset(tmp_path / "layers")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kaizhou_gis", "serve", "--layers", str(layers),
                             "--port", str(port), "--cache-dir", str(tmp_path / "cache")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not any("cache folder" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line, "serve exited: " + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text and "listening on 127.0.0.1 only" in text
        assert str(tmp_path / "cache") in text
        import time
        for _ in range(100):  # the server starts listening right after printing
            try:
                status, _, body = raw_get(f"http://127.0.0.1:{port}", "/")
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        assert status == 200 and "开州区" in body.decode("utf-8")
        # another name for the address (DNS rebinding) is refused on a loopback server
        status, _, _ = raw_get(f"http://127.0.0.1:{port}", "/", headers={"Host": "evil.example"})
        assert status == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_district_report_and_zip_of_all_outputs(bench):
    wb, url, _ = bench
    run = wb.run_for({"relocation.threshold_m": 950.0})
    wait_done(wb, run.key)
    status, headers, body = raw_get(url, f"/runs/{run.key}/report.html")
    assert status == 200 and "950" in body.decode("utf-8")
    status, headers, body = raw_get(url, f"/runs/{run.key}/outputs.zip")
    assert status == 200 and "attachment" in headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(body))
    names = set(z.namelist())
    for need in ("report.html", "relocation/candidates.csv", "relocation/summary.json",
                 "access/scorecard.json", "industry/projects.csv", "maps/overview.html",
                 f"maps/townships/{DAJIN}.html", f"maps/townships/{DAJIN}.pdf", "manifest.json"):
        assert need in names, need
    assert "FAILED_STEPS.txt" not in names and not any(n.startswith(".") or "/." in n for n in names)
    import json
    summary = json.loads(z.read("relocation/summary.json"))
    assert summary["candidates"] == wb.counts(run)["candidates"]  # one truth: page and files
    card = json.loads(z.read("access/scorecard.json"))["before"]  # 行政村 only, as the plan counts
    assert wb.counts(run)["village_tongchang_pct"] == card["village_tongchang_pct"]
    tw = next(r for r in card["per_township"] if r["township_code"] == DAJIN)
    assert wb.counts(run, DAJIN)["village_tongchang_pct"] == tw["village_tongchang_pct"]
    manifest = json.loads(z.read("manifest.json"))
    assert "relocation.threshold_m=950" in json.dumps(manifest, ensure_ascii=False)
    # the outputs folder used to build the ZIP is gone; the ZIP stays in the cache
    assert not (wb.cache_path("runs", run.key, "district") / "outputs").exists()
