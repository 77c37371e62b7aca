"""The Starlette application of the web workbench (``kaizhou-gis serve``).

Why Starlette + uvicorn: Starlette is the small, well-kept ASGI toolkit FastAPI is built on; the
workbench needs routing, responses, file downloads and a test client, not FastAPI's request
validation and OpenAPI layers, so the lighter layer keeps the dependency list short. uvicorn is
its reference server. Pages are Jinja2 templates with autoescaping (every name from the layers is
escaped); the page script and style are served from this package (no CDN); the maps are the
pipeline's offline folium pages, which inline their vendored Leaflet.

URLs (nothing maps a URL onto the file system; each file is named by a fixed route):

* ``/`` district overview, ``/township/<code>`` a township, ``/townships?q=`` picker results;
  what-if values are query parameters named after the plan settings (``?relocation.threshold_m=1000``)
* ``/api/runs/<key>`` progress of a run (JSON)
* ``/runs/<key>/overview.html``, ``/runs/<key>/township/<code>/map.html`` maps;
  ``/runs/<key>/township/<code>/<file>`` and ``/runs/<key>/report.html|outputs.zip`` downloads
* ``POST /reload`` re-reads the layers and the plan
"""
from __future__ import annotations

import datetime as _dt
import logging
from urllib.parse import urlencode, urlsplit

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kaizhou_gis.errors import KaizhouGISError
from kaizhou_gis.field import FIELD_COORDS
from kaizhou_gis.maps.mapassets import script_json
from kaizhou_gis.web.townships import TABLES, search_townships, table_records, township_tables
from kaizhou_gis.web.workbench import Workbench

log = logging.getLogger(__name__)

#: The workbench's own pages: scripts and styles from this server only, nothing from elsewhere.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-src 'self'; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
#: The offline folium maps inline their scripts and images; they may load nothing from elsewhere.
MAP_CSP = ("default-src 'self' 'unsafe-inline' data: blob:; object-src 'none'; base-uri 'none'; "
           "frame-ancestors 'self'")
STATIC = {"workbench.css": "text/css; charset=utf-8",
          "workbench.js": "text/javascript; charset=utf-8"}
#: Labels of the adjustable settings the shipped plan marks (others show their key).
PARAM_LABELS = {
    "relocation.threshold_m": ("搬迁海拔门槛(米)", "Relocation elevation threshold (m)"),
    "relocation.steep_slope_deg": ("陡坡(度)", "Steep slope (°)"),
    "relocation.deep_valley_relief_m": ("深谷相对高差(米)", "Deep-valley relief (m)"),
    "relocation.remote_km_to_seat": ("偏远：到乡镇驻地路程(公里)", "Remote: road km to the township seat"),
    "access.reach_distance_m": ("道路可达距离(米)", "Road reach distance (m)"),
}
COUNT_LABELS = [
    ("candidates", "拟整体搬迁自然村", "relocation candidates (settlements)"),
    ("candidate_households", "搬迁户数", "candidate households"),
    ("candidate_people", "搬迁人口", "candidate people"),
    ("above_threshold", "海拔门槛以上自然村", "settlements above the threshold"),
    ("village_tongchang_pct", "行政村通畅率(%)", "villages on hardened roads (%)"),
    ("works", "道路工程(项)", "road works"),
    ("works_km", "道路工程(公里)", "road works (km)"),
    ("works_cost_10k_yuan", "道路工程投资(万元)", "road works cost (10k yuan)"),
]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}" if isinstance(v, (int, float)) else str(v)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _scorecard(report: dict) -> list[dict]:
    """The overview's rows of the plan's main indicators (report.json's figures, formatted)."""
    scorecard = []
    for ind in report.get("indicators", []):
        computed = ind.get("computed")
        after = ind.get("computed_after")
        ctext = _fmt(computed) if computed is not None else ""
        if after is not None:
            ctext += f" → {_fmt(after)}"
        scorecard.append({
            "id": ind.get("id"), "name_zh": ind.get("name_zh"), "name_en": ind.get("name_en"),
            "unit": ind.get("unit"), "baseline": _fmt(ind.get("baseline_2015")),
            "t2018": _fmt(ind.get("target_2018")), "t2020": _fmt(ind.get("target_2020")),
            "computed": ctext or ind.get("reason_zh", ""),
            "note": ind.get("comment") or ind.get("note") or ""})
    return scorecard


def _shown_tables(tables: dict) -> list[dict]:
    """The township page's tables: rows and bilingual column names, or the message why a table
    is missing."""
    shown = []
    for key, _, zh, en, cols in TABLES:
        t = tables[key]
        if isinstance(t, pd.DataFrame):
            shown.append({"key": key, "zh": zh, "en": en, "n": len(t), "message": "",
                          "columns": [(c_zh, c_en) for _, c_zh, c_en in cols],
                          "rows": table_records(t)})
        else:
            shown.append({"key": key, "zh": zh, "en": en, "n": "–", "message": t, "rows": [],
                          "columns": []})
    return shown


def _file_response(path, media_type: str, filename: str | None = None, csp: str | None = None):
    headers = {"X-Content-Type-Options": "nosniff"}
    if csp:
        headers["Content-Security-Policy"] = csp
    return FileResponse(path, media_type=media_type, filename=filename, headers=headers,
                        content_disposition_type="attachment" if filename else "inline")


class _Pages:
    """The workbench's request handlers (one method per route) and the page helpers they share."""

    def __init__(self, workbench: Workbench):
        self.wb = workbench
        self.env = Environment(loader=PackageLoader("kaizhou_gis.web", "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))

    def common(self, request: Request, overrides: dict | None = None) -> dict:
        overrides = overrides or {}
        query = "?" + urlencode(overrides) if overrides else ""
        return {
            "district": self.wb.plan.name if self.wb.plan is not None else "kaizhou-gis",
            "banner": self.wb.banner,
            "query": query,
            "here": request.url.path,
            "overrides": {k: f"{v:g}" for k, v in overrides.items()},
            "layers_source": getattr(self.wb.layers, "source", "") if self.wb.layers is not None else "",
            "plan_path": self.wb.plan.path if self.wb.plan is not None else "",
            "loaded_at": _dt.datetime.fromtimestamp(self.wb.loaded_at).strftime("%Y-%m-%d %H:%M:%S"),
        }

    def page(self, name: str, status_code: int = 200, **ctx) -> HTMLResponse:
        body = self.env.get_template(name).render(**ctx)
        return HTMLResponse(body, status_code=status_code, headers={
            "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    def error_page(self, request: Request, status_code: int, title_zh: str, title_en: str, message: str,
                   hint_zh: str = "", hint_en: str = "") -> HTMLResponse:
        return self.page("error.html", status_code, **self.common(request), title_zh=title_zh,
                         title_en=title_en, message=message, hint_zh=hint_zh, hint_en=hint_en)

    def load_error(self, request: Request) -> HTMLResponse:
        return self.error_page(request, 503, "图层或规划文件有误", "Bad layers or plan file", str(self.wb.error),
                               "修正后点击“重新读取数据”。",
                               "Fix them, then press Reload data (the message is the one the command line "
                               "prints).")

    def params(self, run) -> list[dict]:
        out = []
        for key, a in self.wb.adjustable().items():
            zh, en = PARAM_LABELS.get(key, (key, ""))
            cur = run.plan[key] if run is not None else a["value"]
            out.append({"key": key, "label_zh": zh, "label_en": en, "current": f"{cur:g}",
                        "plan_value": f"{a['value']:g}", "min": f"{a['min']:g}", "max": f"{a['max']:g}",
                        "step": f"{a['step']:g}" if a.get("step") else "any", "source": a["source"]})
        return out

    def counts(self, run, code=None) -> list[dict]:
        mine = self.wb.counts(run, code)
        base = self.wb.base
        theirs = self.wb.counts(base, code) if base is not None and base.done.is_set() and run.overrides else {}
        rows = []
        for key, zh, en in COUNT_LABELS:
            if key not in mine:
                continue
            v, b = mine[key], theirs.get(key)
            delta = ""
            if b is not None and v != b:
                d = v - b
                delta = ("+" if d > 0 else "") + _fmt(round(d, 1) if isinstance(d, float) else d)
            rows.append({"key": key, "zh": zh, "en": en, "value": v, "text": _fmt(v), "base": b,
                         "base_text": _fmt(b), "delta": delta})
        return rows

    def resolve_run(self, request: Request):
        """The run for the request's what-if values, or an error response."""
        try:
            overrides = self.wb.parse_overrides(request.query_params)
            return self.wb.run_for(overrides), overrides, None
        except KaizhouGISError as e:
            return None, {}, self.error_page(request, 400, "假设参数有误", "Bad what-if value", str(e))

    async def overview(self, request: Request) -> Response:
        if not self.wb.ok:
            return self.load_error(request)
        run, overrides, err = self.resolve_run(request)
        if err is not None:
            return err
        ctx = self.common(request, overrides)
        plan = self.wb.plan
        assert plan is not None  # loaded (self.wb.ok)
        ctx.update(title_zh="总览", title_en="Overview", run=run, params=self.params(run),
                   townships=self.wb.townships,
                   township_json=Markup(script_json(self.wb.townships)),  # < > & escaped as \u00xx
                   plan_title=plan.get("meta.plan_title", ""))
        if not run.done.is_set():
            return self.page("overview.html", progress=run.progress(), **ctx)
        if run.ctx is None:
            return self.error_page(request, 500, "计算失败", "The run failed", "\n".join(run.failures.values()))
        rep = run.ctx.results.get("report")
        scorecard = _scorecard(rep.data.report) if rep is not None else []
        return self.page("overview.html", progress=None, counts=self.counts(run), failures=run.failures,
                         scorecard=scorecard,
                         scorecard_missing=run.failures.get("report", "报告未生成 no report"), **ctx)

    async def townships(self, request: Request) -> Response:
        if not self.wb.ok:
            return self.load_error(request)
        try:
            overrides = self.wb.parse_overrides(request.query_params)
        except KaizhouGISError as e:
            return self.error_page(request, 400, "假设参数有误", "Bad what-if value", str(e))
        q = request.query_params.get("q", "")
        hits = search_townships(self.wb.townships, q)
        if len(hits) == 1:
            return RedirectResponse(f"/township/{hits[0]['code']}"
                                    + ("?" + urlencode(overrides) if overrides else ""), 303)
        return self.page("townships.html", **self.common(request, overrides), title_zh="乡镇",
                         title_en="Townships", q=q, hits=hits)

    async def township(self, request: Request) -> Response:
        if not self.wb.ok:
            return self.load_error(request)
        code = request.path_params["code"]
        tw = self.wb.township(code)
        if tw is None:
            raise HTTPException(404)
        run, overrides, err = self.resolve_run(request)
        if err is not None:
            return err
        ctx = self.common(request, overrides)
        ctx.update(title_zh=tw["name"], title_en="Township", township=tw, run=run, params=self.params(run))
        if not run.done.is_set():
            return self.page("township.html", progress=run.progress(), **ctx)
        if run.ctx is None:
            return self.error_page(request, 500, "计算失败", "The run failed", "\n".join(run.failures.values()))
        tables = await run_in_threadpool(township_tables, run.ctx.results, run.ctx.layers.villages,
                                         run.failures, code)
        downloads, note = await self.township_downloads(run, code)
        return self.page("township.html", progress=None, counts=self.counts(run, code), failures=run.failures,
                         tables=_shown_tables(tables), downloads=downloads, downloads_note=note, **ctx)

    async def township_downloads(self, run, code: str) -> tuple[list[dict], str]:
        """The township page's download links (the field files where the township has any) and
        the note shown when it has none."""
        base = f"/runs/{run.key}/township/{code}"
        downloads = [
            {"id": "xlsx", "href": f"{base}/{code}_tables.xlsx", "filename": f"{code}_tables.xlsx",
             "zh": "表格 (XLSX，含说明页)", "en": "Tables (XLSX, with an About sheet)"},
            {"id": "csv", "href": f"{base}/{code}_csv.zip", "filename": f"{code}_csv.zip",
             "zh": "表格 CSV (ZIP)", "en": "Tables as CSV (ZIP, UTF-8 with BOM)"},
            {"id": "pdf", "href": f"{base}/{code}.pdf", "filename": f"{code}.pdf",
             "zh": "打印地图 (PDF, A3)", "en": "Print map (PDF, A3)"},
            {"id": "png", "href": f"{base}/{code}.png", "filename": f"{code}.png",
             "zh": "打印地图 (PNG)", "en": "Print map (PNG)"},
            {"id": "html", "href": f"{base}/map.html", "filename": f"{code}.html",
             "zh": "离线地图 (HTML)", "en": "Offline map (HTML)"},
        ]
        note = ""
        for coords, zh, en in (("wgs84", "WGS84，GPS、奥维、Google Earth", "WGS84: GPS, Ovi, Google Earth"),
                               ("gcj02", "GCJ-02，高德等国内底图", "GCJ-02: Gaode and other Chinese base maps")):
            field = await run_in_threadpool(self.wb.township_field, run, code, coords)
            for ext in ("kmz", "gpx"):
                if ext in field:
                    downloads.append({"id": f"{ext}-{coords}", "href": f"{base}/{code}_{coords}.{ext}",
                                      "filename": f"{code}_{coords}.{ext}",
                                      "zh": f"外业文件 {ext.upper()}（{zh}）",
                                      "en": f"Field file {ext.upper()} ({en})"})
            if not field:
                note = ("本乡镇没有拟整体搬迁自然村或安置点，无外业文件 (KMZ/GPX)。 "
                        "No field files (KMZ/GPX): the township has no candidates and no sites.")
        return downloads, note

    async def run_progress(self, request: Request) -> Response:
        run = self.wb.get_run(request.path_params["key"])
        if run is None:
            raise HTTPException(404)
        return JSONResponse(run.progress(), headers={"Cache-Control": "no-store"})

    def done_run(self, request: Request):
        run = self.wb.get_run(request.path_params["key"])
        if run is None or not run.done.is_set() or run.ctx is None:
            raise HTTPException(404)
        return run

    async def overview_map(self, request: Request) -> Response:
        run = self.done_run(request)
        path = await run_in_threadpool(self.wb.overview_map, run)
        return _file_response(path, "text/html; charset=utf-8", csp=MAP_CSP)

    async def township_file(self, request: Request) -> Response:
        run = self.done_run(request)
        code, name = request.path_params["code"], request.path_params["name"]
        if self.wb.township(code) is None:
            raise HTTPException(404)
        try:
            if name == "map.html":
                path = await run_in_threadpool(self.wb.township_map, run, code)
                return _file_response(path, "text/html; charset=utf-8", csp=MAP_CSP)
            if name in (f"{code}.pdf", f"{code}.png"):
                paths = await run_in_threadpool(self.wb.township_sheet, run, code)
                if name.endswith(".pdf"):
                    return _file_response(paths["pdf"], "application/pdf", name)
                return _file_response(paths["png"], "image/png", name)
            for coords in FIELD_COORDS:
                if name in (f"{code}_{coords}.kmz", f"{code}_{coords}.gpx"):
                    paths = await run_in_threadpool(self.wb.township_field, run, code, coords)
                    ext = name.rsplit(".", 1)[1]
                    if ext not in paths:
                        raise HTTPException(404)
                    return _file_response(paths[ext], "application/vnd.google-earth.kmz" if ext == "kmz"
                                          else "application/gpx+xml", name)
            if name == f"{code}_tables.xlsx":
                path = await run_in_threadpool(self.wb.township_xlsx, run, code)
                return _file_response(path, "application/vnd.openxmlformats-officedocument."
                                      "spreadsheetml.sheet", path.name)
            if name == f"{code}_csv.zip":
                path = await run_in_threadpool(self.wb.township_csv_zip, run, code)
                return _file_response(path, "application/zip", path.name)
        except KaizhouGISError as e:
            return self.error_page(request, 500, "文件无法生成", "The file could not be made", str(e))
        raise HTTPException(404)

    async def district_file(self, request: Request) -> Response:
        run = self.done_run(request)
        name = request.path_params["name"]
        try:
            if name == "report.html":
                path = await run_in_threadpool(self.wb.report_html, run)
                return _file_response(path, "text/html; charset=utf-8", csp=MAP_CSP)
            if name == "outputs.zip":
                path = await run_in_threadpool(self.wb.outputs_zip, run)
                district = self.wb.plan.name if self.wb.plan is not None else "kaizhou-gis"
                return _file_response(path, "application/zip", f"{district}_outputs_{run.key[:8]}.zip")
        except KaizhouGISError as e:
            return self.error_page(request, 500, "文件无法生成", "The file could not be made", str(e))
        raise HTTPException(404)

    async def reload(self, request: Request) -> Response:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return self.error_page(request, 403, "拒绝", "Refused",
                                   "reload must come from this workbench's own page.")
        form = await request.body()
        from urllib.parse import parse_qs
        nxt = (parse_qs(form.decode("utf-8", "replace")).get("next") or ["/"])[0]
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"
        await run_in_threadpool(self.wb.load)
        return RedirectResponse(nxt, 303)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPException(404)
        from importlib import resources
        data = (resources.files("kaizhou_gis.web") / "static" / name).read_bytes()
        return Response(data, media_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """The error page of an HTTPException (the only exception it is registered for)."""
        if not isinstance(exc, HTTPException):
            raise exc
        if exc.status_code != 404:
            return self.error_page(request, exc.status_code, "错误", "Error", str(exc.detail))
        return self.error_page(request, 404, "找不到该页面", "Not found",
                               f"{request.url.path} 不存在 does not exist.")


def create_app(workbench: Workbench, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The application; ``allowed_hosts`` limits the Host header (serving on a loopback address
    accepts only loopback names, so a web page elsewhere cannot reach it by DNS rebinding)."""
    h = _Pages(workbench)
    routes = [
        Route("/", h.overview),
        Route("/townships", h.townships),
        Route("/township/{code}", h.township),
        Route("/api/runs/{key}", h.run_progress),
        Route("/runs/{key}/overview.html", h.overview_map),
        Route("/runs/{key}/township/{code}/{name}", h.township_file),
        Route("/runs/{key}/{name}", h.district_file),
        Route("/reload", h.reload, methods=["POST"]),
        Route("/static/{name}", h.static),
    ]
    middleware = []
    if allowed_hosts:
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, exception_handlers={HTTPException: h.not_found}, middleware=middleware)
    app.state.workbench = workbench
    return app


def serve(workbench: Workbench, host: str = "127.0.0.1", port: int = 8765, *, echo=print) -> None:
    """Run the workbench with uvicorn until interrupted."""
    import uvicorn

    app = create_app(workbench, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]
                     if host in LOOPBACK else None)
    shown = f"[{host}]" if ":" in host else host
    echo(f"kaizhou-gis serve: open http://{shown}:{port}/ in a browser (Ctrl+C stops it).")
    if host in LOOPBACK:
        echo(f"  listening on {host} only: 仅本机可访问, only this computer can open it "
             f"(--host 0.0.0.0 shares it on the office network).")
    else:
        echo(f"  listening on {host}: 其他电脑也可访问, other computers on the network can open it "
             f"(there is no login).")
    echo(f"  cache folder (what-if results and downloads): {workbench.cache_root}")
    uvicorn.run(app, host=host, port=port, log_level="warning")
