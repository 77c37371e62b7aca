"""The web workbench's state, without HTTP: layers and plan, townships, runs, downloads.

A *run* is the plan's analyses (industry, access, relocation, report) for one set of what-if
values of the settings the plan file marks ``adjustable`` (none: the plan's own run). Runs are
keyed by their inputs (fingerprints of the layers, of the effective plan and of the changed
values), computed in a small thread pool and kept while the server runs; two browser tabs asking
for different values get two runs, and the same values get the same run. A what-if reuses the
plan run's results of the steps the changed settings cannot affect (a relocation setting leaves
industry and access as they are).

Everything a run offers for download (township map, tables, report, a ZIP of all outputs) is
written on demand under ``<cache>/runs/<key>/`` and nowhere else: :meth:`Workbench.cache_path`
refuses any path that would leave the cache folder.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
import threading
import time
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kaizhou_gis.errors import KaizhouGISError, OptionError
from kaizhou_gis.figures import pct
from kaizhou_gis.pipeline import Context

if TYPE_CHECKING:
    from kaizhou_gis.layers import Layers
    from kaizhou_gis.plan import Plan

log = logging.getLogger(__name__)

#: The analyses a run computes, in order, with their bilingual titles.
RUN_STEPS: list[tuple[str, str]] = [
    ("industry", "产业项目 Industry projects"),
    ("access", "道路通达通畅 Road access"),
    ("relocation", "高山生态扶贫搬迁 Relocation"),
    ("report", "规划指标 Plan scorecard"),
]
#: Runs kept in memory besides the plan's own (least recently used dropped first; their files stay
#: in the cache folder).
MAX_RUNS = 24
_CODE_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_KEY_RE = re.compile(r"[0-9a-f]{20}")


def default_cache_dir() -> Path:
    """``$KAIZHOU_GIS_CACHE``, else ``$XDG_CACHE_HOME/kaizhou-gis/web`` (``~/.cache/...``)."""
    env = os.environ.get("KAIZHOU_GIS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kaizhou-gis" / "web"


def steps_affected(keys) -> set[str]:
    """The steps whose results change when the plan settings ``keys`` change."""
    out = {"industry", "report"}  # industry is cheap; the report shows everything
    for k in keys:
        section = str(k).split(".")[0]
        if section == "relocation":
            out.add("relocation")
        elif section in ("access", "links"):
            out |= {"access", "relocation"}  # relocation reads access (remoteness)
        elif section != "industry":
            out |= {"access", "relocation"}
    return out


# --------------------------------------------------------------------------------------------
# townships
# --------------------------------------------------------------------------------------------

def pinyin_keys(name: str) -> tuple[str, str]:
    """(initials, full pinyin) of a Chinese name, lower case: 大进镇 -> ("djz", "dajinzhen")."""
    from pypinyin import Style, lazy_pinyin
    initials = "".join(p[:1] for p in lazy_pinyin(name, style=Style.FIRST_LETTER, errors="ignore"))
    full = "".join(lazy_pinyin(name, errors="ignore"))
    return initials.lower(), full.lower()


def township_index(townships) -> list[dict]:
    """One entry per township: code, name, pinyin initials and full pinyin (for the picker)."""
    out = []
    for code, name in zip(townships["township_code"].astype(str), townships["name"].astype(str)):
        ini, full = pinyin_keys(name)
        out.append({"code": code, "name": name, "initials": ini, "pinyin": full})
    return sorted(out, key=lambda t: t["code"])


def search_townships(index: list[dict], query: str) -> list[dict]:
    """Townships whose name contains the query, or whose code, pinyin initials or full pinyin
    starts with it (case-insensitive; spaces ignored)."""
    q = re.sub(r"\s+", "", str(query or "")).lower()
    if not q:
        return list(index)
    return [t for t in index if q in t["name"].lower() or t["code"].startswith(q)
            or t["initials"].startswith(q) or t["pinyin"].startswith(q)]


# --------------------------------------------------------------------------------------------
# tables shown on a township page (and written to its XLSX / CSV)
# --------------------------------------------------------------------------------------------

#: (key, sheet/file name, Chinese title, English title, [(column, 中文, English)])
TABLES: list[tuple[str, str, str, str, list[tuple[str, str, str]]]] = [
    ("candidates", "candidates", "搬迁对象", "Relocation candidates", [
        ("settlement_id", "自然村编号", "settlement id"), ("name", "自然村", "settlement"),
        ("village_name", "行政村", "village"), ("households", "户数", "households"),
        ("population", "人口", "people"), ("elevation_m", "海拔(米)", "elevation m"),
        ("slope_deg", "坡度(度)", "slope °"), ("priority", "优先度", "priority"),
        ("schedule_year", "计划年度", "year"), ("site_ids", "安置点", "sites"),
        ("reasons_zh", "原因", "reasons"), ("reasons_en", "原因(英文)", "reasons (English)")]),
    ("gaps", "access_gaps", "通达通畅缺口", "Road access gaps", [
        ("level", "层级", "level"), ("id", "编号", "id"), ("name", "名称", "name"),
        ("households", "户数", "households"), ("tongda", "通达", "reached"),
        ("tongchang", "通畅", "hardened"), ("reason_zh", "原因", "reason"),
        ("work_ids", "工程", "works"), ("tongchang_after", "工程后通畅", "hardened after works")]),
    ("works", "works", "道路工程", "Road works", [
        ("work_id", "工程编号", "work id"), ("type_zh", "类型", "type"), ("km", "公里", "km"),
        ("cost_10k_yuan", "投资(万元)", "cost (10k yuan)"), ("terrain", "地形", "terrain"),
        ("beneficiaries", "受益点", "beneficiaries"), ("phase", "阶段", "phase")]),
    ("industry", "industry", "产业项目", "Industry projects", [
        ("project_id", "项目编号", "project id"), ("category", "类别", "category"),
        ("product", "产品", "product"), ("village_name", "村", "village"),
        ("host_text", "规划原文地点", "place in the plan"), ("scale", "规模", "scale"),
        ("unit", "单位", "unit"), ("target_year", "目标年份", "target year"),
        ("match", "匹配", "match")]),
]


def _yes_no(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return "是 yes" if bool(v) else "否 no"


def _select(df: pd.DataFrame, cols: list[tuple[str, str, str]]) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c, _, _ in cols:
        out[c] = df[c] if c in df.columns else None
    out = pd.DataFrame(out.reset_index(drop=True))
    out.attrs["labels_zh"] = {c: f"{zh} {en}" for c, zh, en in cols}
    return out


def township_tables(ctx: Context, failures: dict[str, str], code: str) -> dict[str, pd.DataFrame | str]:
    """The four tables of a township page, or the message why a table is missing."""
    cols = {k: c for k, _, _, _, c in TABLES}
    out: dict[str, pd.DataFrame | str] = {}
    reloc = ctx.results.get("relocation")
    if reloc is None:
        out["candidates"] = failures.get("relocation", "relocation step did not run")
    else:
        s = reloc.data.settlements
        s = s[(s["township_code"].astype(str) == code) & s["relocation_candidate"].astype(bool)]
        s = s.sort_values(["priority", "settlement_id"], ascending=[False, True], kind="mergesort")
        out["candidates"] = _select(s, cols["candidates"])
    acc = ctx.results.get("access")
    if acc is None:
        out["gaps"] = out["works"] = failures.get("access", "access step did not run")
    else:
        rows = []
        v = acc.data.villages
        v = v[v["township_code"].astype(str) == code]
        gap = ~v["tongchang"].fillna(False).astype(bool)
        vv = v[gap].assign(level="行政村 village", id=v.loc[gap, "village_code"].astype(str))
        rows.append(vv)
        st = acc.data.settlements
        st = st[(st["township_code"].astype(str) == code) & st["target_group"].fillna(False).astype(bool)]
        sgap = ~(st["tongda"].fillna(False).astype(bool) & st["tongchang"].fillna(False).astype(bool))
        ss = st[sgap].assign(level="自然村 settlement", id=st.loc[sgap, "settlement_id"].astype(str))
        rows.append(ss)
        g = pd.concat([pd.DataFrame(r.drop(columns="geometry", errors="ignore")) for r in rows],
                      ignore_index=True)
        for c in ("tongda", "tongchang", "tongchang_after"):
            if c in g.columns:
                g[c] = g[c].map(_yes_no).astype(object)
        out["gaps"] = _select(g, cols["gaps"])
        w = acc.data.works
        if w is None or not len(w):
            w = pd.DataFrame(columns=["work_id", "type", "km", "cost_yuan", "township_code"])
        w = pd.DataFrame(w.drop(columns="geometry", errors="ignore"))
        w = w[w["township_code"].astype(str) == code].copy()
        w["type_zh"] = w["type"].astype(str).map({"new": "新建 new", "upgrade": "硬化 upgrade"}).fillna(w["type"])
        w["cost_10k_yuan"] = (pd.to_numeric(w["cost_yuan"], errors="coerce") / 1e4).round(1)
        w["km"] = pd.to_numeric(w["km"], errors="coerce").round(2)
        out["works"] = _select(w, cols["works"])
    ind = ctx.results.get("industry")
    if ind is None:
        out["industry"] = failures.get("industry", "industry step did not run")
    else:
        from kaizhou_gis.admin import village_townships
        from kaizhou_gis.industry import host_township_codes
        h = ind.data.hosts
        if h is None or not len(h):
            out["industry"] = _select(pd.DataFrame(), cols["industry"])
        else:
            L = ctx.layers
            h = pd.DataFrame(h.drop(columns="geometry", errors="ignore"))
            h = h[host_township_codes(h, village_townships(L.villages)).to_numpy() == code]
            out["industry"] = _select(h, cols["industry"])
    return out


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One computation of the analyses for one set of what-if values."""

    key: str
    overrides: dict[str, float]
    plan: Any
    generation: int
    inputs: dict = field(default_factory=dict)  # manifest.inputs_record of the run
    status: str = "queued"  # queued, running, done
    step: int = 0
    current: str = ""
    failures: dict[str, str] = field(default_factory=dict)
    ctx: Context | None = None
    seconds: float = 0.0
    reused: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    locks: dict = field(default_factory=dict)  # one per file built on demand
    mapdata: Any = None

    def progress(self) -> dict:
        n = len(RUN_STEPS)
        return {"key": self.key, "status": self.status, "step": self.step, "steps": n,
                "current": self.current, "percent": round(100.0 * self.step / n),
                "failures": dict(self.failures), "overrides": dict(self.overrides),
                "seconds": round(self.seconds, 1)}


def _run_ctx(run: Run) -> Context:
    """The context of a finished run (files are only made from finished runs)."""
    if run.ctx is None:
        raise OptionError(f"run {run.key[:8]} has no results: "
                          + ("; ".join(run.failures.values()) or f"it is {run.status}"))
    return run.ctx


class Workbench:
    """Layers, plan and runs of one server (see the module docstring)."""

    def __init__(self, layers_path=None, plan_path=None, *, crs=None, encoding=None, coords="wgs84",
                 cache_dir=None, workers: int = 2):
        self.layers_path, self.plan_path = layers_path, plan_path
        self.crs, self.encoding, self.coords = crs, encoding, coords
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OptionError(f"--cache-dir {self.cache_dir}: cannot create the cache folder "
                              f"({e.strerror or e}); pass a writable folder with --cache-dir or "
                              f"set KAIZHOU_GIS_CACHE.") from None
        self.cache_root = self.cache_dir.resolve()
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="kz-run")
        self._lock = threading.RLock()
        self.generation = 0
        self.layers: Layers | None = None
        self.plan: Plan | None = None
        self.error: str | None = None
        self.townships: list[dict] = []
        self.data_status: dict | None = None
        self.banner: list[str] = []
        self.layer_fps: dict[str, str | None] = {}
        self.loaded_at = 0.0
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self.base_key: str | None = None
        self.load()

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """(Re)read the layers and the plan; on bad input keep the message (as the CLI prints it)."""
        from kaizhou_gis import manifest
        from kaizhou_gis.layers import load_layers
        from kaizhou_gis.plan import load_plan
        from kaizhou_gis.provenance import banner_lines, data_status

        with self._lock:
            self.generation += 1
            self.runs.clear()
            self.base_key = None
            self.loaded_at = time.time()
            try:
                plan = load_plan(self.plan_path)
                layers = load_layers(self.layers_path, plan=plan, crs=self.crs,
                                     encoding=self.encoding, coords=self.coords)
            except KaizhouGISError as e:
                self.layers = self.plan = None
                self.error = str(e)
                self.townships, self.banner, self.data_status = [], [], None
                log.warning("workbench: %s", self.error)
                return
            self.layers, self.plan, self.error = layers, plan, None
            self.townships = township_index(layers.townships)
            self.data_status = data_status(layers, district=plan.name)
            self.banner = banner_lines(self.data_status)
            self.layer_fps = manifest.layer_fingerprints(layers)
            self.base_key = self.run_for({}).key

    @property
    def ok(self) -> bool:
        return self.error is None

    def township(self, code: str) -> dict | None:
        return next((t for t in self.townships if t["code"] == str(code)), None)

    # ---- what-if values ------------------------------------------------------------------
    def adjustable(self) -> dict[str, dict]:
        return self.plan.adjustable() if self.plan is not None else {}

    def parse_overrides(self, params) -> dict[str, float]:
        """What-if values from request parameters (only adjustable settings, within their range,
        and only those that differ from the plan). Raises OptionError with a message otherwise."""
        adj = self.adjustable()
        out: dict[str, float] = {}
        for k, raw in params.items():
            if k not in adj:
                continue
            text = str(raw).strip().replace(",", "")
            if text == "":
                continue
            try:
                v = float(text)
            except ValueError:
                raise OptionError(f"{k}: '{raw}' is not a number; give a number between "
                                  f"{adj[k]['min']:g} and {adj[k]['max']:g}.") from None
            if not math.isfinite(v) or not adj[k]["min"] <= v <= adj[k]["max"]:
                raise OptionError(f"{k}: {v:g} is outside the range the plan file allows "
                                  f"({adj[k]['min']:g} .. {adj[k]['max']:g}).")
            if v != float(adj[k]["value"]):
                out[k] = v
        return dict(sorted(out.items()))

    # ---- runs ----------------------------------------------------------------------------
    def run_for(self, overrides: dict[str, float]) -> Run:
        """The run for these what-if values, started if it is not known yet."""
        from kaizhou_gis import manifest
        from kaizhou_gis.plan import with_overrides

        with self._lock:
            if self.plan is None:
                raise OptionError(self.error or "no layers loaded")
            plan = with_overrides(self.plan, overrides)
            # the key is the fingerprint of the inputs, as the output manifests record it
            rec = manifest.inputs_record(self.layers, plan, overrides=overrides, layer_fps=self.layer_fps)
            key = rec["fingerprint"][:20]
            run = self.runs.get(key)
            if run is not None:
                self.runs.move_to_end(key)
                return run
            run = Run(key=key, overrides=dict(overrides), plan=plan, generation=self.generation,
                      inputs=rec)
            self.runs[key] = run
            while len(self.runs) > MAX_RUNS + 1:
                old = next(k for k in self.runs if k != self.base_key)
                if not self.runs[old].done.is_set():
                    break
                self.runs.pop(old)
            self.pool.submit(self._execute, run, self.layers)
            return run

    def get_run(self, key: str) -> Run | None:
        if not _KEY_RE.fullmatch(str(key)):
            return None
        with self._lock:
            return self.runs.get(key)

    @property
    def base(self) -> Run | None:
        return self.runs.get(self.base_key) if self.base_key else None

    def _execute(self, run: Run, layers) -> None:
        t0 = time.perf_counter()
        try:
            run.status = "running"
            ctx = Context(layers=layers, plan=run.plan, options={"header": "both"},
                          overrides=dict(run.overrides), _inputs=run.inputs,
                          _data_status=self.data_status)
            base = self.base if run.overrides else None
            if base is not None and base.generation == run.generation:
                base.done.wait(timeout=900)
                affected = steps_affected(run.overrides)
                if base.ctx is not None:
                    for name, _ in RUN_STEPS:
                        if name not in affected and name in base.ctx.results:
                            ctx.results[name] = base.ctx.results[name]
                            run.reused.append(name)
            run.ctx = ctx
            for i, (name, title) in enumerate(RUN_STEPS):
                run.step, run.current = i, title
                if name in ctx.results:
                    continue
                try:
                    ctx.result(name)
                except KaizhouGISError as e:
                    run.failures[name] = str(e)
                except Exception as e:  # a bug in one step must not lose the others
                    log.exception("workbench: step %s crashed", name)
                    run.failures[name] = f"{type(e).__name__}: {e}"
                    ctx.failed.setdefault(name, run.failures[name])
            run.step, run.current = len(RUN_STEPS), "完成 done"
        except Exception as e:  # never leave a page waiting for a run that died
            log.exception("workbench: run %s failed", run.key)
            run.failures["run"] = f"{type(e).__name__}: {e}"
        finally:
            run.seconds = time.perf_counter() - t0
            run.status = "done"
            run.done.set()

    # ---- figures -------------------------------------------------------------------------
    def counts(self, run: Run, code: str | None = None) -> dict[str, Any]:
        """Headline figures of a run, for the district (code None) or one township."""
        ctx = run.ctx
        out: dict[str, Any] = {}
        if ctx is None:
            return out
        reloc = ctx.results.get("relocation")
        if reloc is not None:
            s = reloc.data.settlements
            if code is not None:
                s = s[s["township_code"].astype(str) == code]
            cand = s["relocation_candidate"].astype(bool)
            out["candidates"] = int(cand.sum())
            out["candidate_households"] = int(s.loc[cand, "households"].sum())
            out["candidate_people"] = int(s.loc[cand, "population"].sum())
            out["above_threshold"] = int(s["above_threshold"].fillna(False).astype(bool).sum())
            out["settlements"] = int(len(s))
        acc = ctx.results.get("access")
        if acc is not None:
            v = acc.data.villages
            if code is not None:
                v = v[v["township_code"].astype(str) == code]
            from kaizhou_gis.access import admin_village_mask

            adm = admin_village_mask(v)  # 行政村 (村), as the scorecard: 社区 not counted
            if adm.any():
                out["village_tongchang_pct"] = pct(int(v.loc[adm, "tongchang"].fillna(False).astype(bool).sum()),
                                                   int(adm.sum()))
            w = acc.data.works
            if w is not None and len(w):
                if code is not None:
                    w = w[w["township_code"].astype(str) == code]
                out["works"] = int(len(w))
                out["works_km"] = round(float(pd.to_numeric(w["km"], errors="coerce").sum()), 1)
                out["works_cost_10k_yuan"] = round(float(pd.to_numeric(w["cost_yuan"], errors="coerce").sum()) / 1e4, 1)
            else:
                out.update(works=0, works_km=0.0, works_cost_10k_yuan=0.0)
        return out

    # ---- files (all under the cache folder) ----------------------------------------------
    def cache_path(self, *parts: str) -> Path:
        """A path inside the cache folder; anything that would leave it is refused."""
        for p in parts:
            if not p or p in (".", "..") or "/" in p or "\\" in p or "\x00" in p:
                raise OptionError(f"refused cache path part {p!r}")
        path = self.cache_root.joinpath(*parts).resolve()
        if not path.is_relative_to(self.cache_root):
            raise OptionError(f"refused a path outside the cache folder: {path}")
        return path

    def _run_dir(self, run: Run, *parts: str) -> Path:
        d = self.cache_path("runs", run.key, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _check_code(self, code: str) -> str:
        if not _CODE_RE.fullmatch(str(code)) or self.township(code) is None:
            raise OptionError(f"no township with code {code!r}")
        return str(code)

    def _township_row(self, code: str) -> dict:
        """The township index row of a checked code (see :meth:`_check_code`)."""
        tw = self.township(code)
        if tw is None:
            raise OptionError(f"no township with code {code!r}")
        return tw

    def _context_for(self, run: Run, township: str | None) -> Context:
        opts = {"header": "both", "basemap": "offline"}
        if township is not None:
            opts["township"] = township
        done = _run_ctx(run)
        return Context(layers=done.layers, plan=run.plan, options=opts,
                       results=dict(done.results), failed=dict(done.failed),
                       overrides=dict(run.overrides), _inputs=run.inputs,
                       _data_status=self.data_status)

    def _artifact_lock(self, run: Run, name: str) -> threading.Lock:
        """One lock per file of a run: a file is built once, different files at the same time."""
        with run.lock:
            return run.locks.setdefault(name, threading.Lock())

    def map_data(self, run: Run):
        """The maps' data of a run (:func:`kaizhou_gis.maps.gather`, WGS84), gathered once."""
        from kaizhou_gis import maps
        with self._artifact_lock(run, "mapdata"):
            if run.mapdata is None:
                ctx = self._context_for(run, None)
                run.mapdata = maps.gather(ctx, ctx.needs_of("maps"))
            return run.mapdata

    def township_map(self, run: Run, code: str) -> Path:
        """The township's offline HTML map (as ``kaizhou-gis maps --township`` draws it)."""
        from kaizhou_gis import maps
        code = self._check_code(code)
        path = self._run_dir(run, "townships", code) / "map.html"
        with self._artifact_lock(run, f"{code}/map.html"):
            if not path.exists():
                ctx = self._context_for(run, code)
                d = self.map_data(run)
                cfg = ctx.plan.section("maps")
                tw_work = d.work_townships.set_index("township_code")
                sub = d.townships[d.townships["township_code"] == code]
                bg = maps.make_background(ctx, maps._bounds_of(tw_work.loc[[code]].to_crs(4326), 0.06),
                                          width_px=int(cfg["hillshade_township_px"]),
                                          inside=tw_work.loc[[code]].geometry, basemap="offline")
                name = d.township_names.get(code, code)
                m = maps.build_map("township", d, maps.map_layers("township", d, maps._settings(ctx.plan), code),
                                   title_zh=f"{ctx.plan.name} {name}", title_en="Township map",
                                   subtitle=f"{name} ({code}) · {ctx.plan.get('meta.plan_title', '')}",
                                   bounds=maps._bounds_of(sub, 0.06), background=bg,
                                   basemap="offline", tianditu_key=None)
                _write_atomic(path, m.get_root().render().encode("utf-8"))
        return path

    def township_sheet(self, run: Run, code: str) -> dict[str, Path]:
        """The township's A3 print sheet as PDF and PNG (:func:`kaizhou_gis.maps.printmap.township_sheet`)."""
        from kaizhou_gis import maps
        from kaizhou_gis.maps import printmap
        code = self._check_code(code)
        d_dir = self._run_dir(run, "townships", code)
        want = {"pdf": d_dir / f"{code}.pdf", "png": d_dir / f"{code}.png"}
        with self._artifact_lock(run, f"{code}/sheet"):
            if not all(p.exists() for p in want.values()):
                ctx = self._context_for(run, code)
                d = self.map_data(run)
                specs = maps.map_layers("township", d, maps._settings(ctx.plan), code)
                sheet = printmap.township_sheet(ctx, d, specs, code, formats=("pdf", "png"))
                for fmt, p in want.items():
                    _write_atomic(p, sheet[fmt])
        return want

    def township_field(self, run: Run, code: str, coords: str = "wgs84") -> dict[str, Path]:
        """The township's field files for relocation teams (:func:`kaizhou_gis.field.field_files`):
        ``{"kmz": path, "gpx": path}``, or {} when it has no candidates and no sites."""
        from kaizhou_gis.field import FIELD_COORDS, field_files
        code = self._check_code(code)
        if coords not in FIELD_COORDS:
            raise OptionError(f"coordinates {coords!r}: use one of {', '.join(FIELD_COORDS)}")
        reloc = run.ctx.results.get("relocation") if run.ctx is not None else None
        if reloc is None:
            return {}
        d = self._run_dir(run, "townships", code)
        want = {ext: d / f"{code}_{coords}.{ext}" for ext in ("kmz", "gpx")}
        with self._artifact_lock(run, f"{code}/field_{coords}"):
            if not all(p.exists() for p in want.values()):
                files = field_files(self._context_for(run, code), reloc.data, coords=coords, codes=[code])
                if not files:
                    return {}
                for ext, p in want.items():
                    _write_atomic(p, files[f"field/{code}_{coords}.{ext}"])
        return want

    def overview_map(self, run: Run) -> Path:
        """The district overview map (offline HTML), built once per run."""
        from kaizhou_gis import maps
        path = self._run_dir(run, "district") / "overview.html"
        with self._artifact_lock(run, "overview.html"):
            if not path.exists():
                ctx = self._context_for(run, None)
                d = self.map_data(run)
                st = maps._settings(ctx.plan)
                bg = maps.make_background(ctx, maps._bounds_of(ctx.layers.boundary.to_crs(4326)),
                                          width_px=int(ctx.plan["maps.hillshade_district_px"]),
                                          inside=ctx.layers.boundary.geometry, basemap="offline")
                zh, en = maps.MAP_TITLES["overview"]
                m = maps.build_map("overview", d, maps.map_layers("overview", d, st),
                                   title_zh=f"{ctx.plan.name} {zh}", title_en=en,
                                   subtitle=ctx.plan.get("meta.plan_title", ""),
                                   bounds=maps._bounds_of(d.boundary), background=bg,
                                   basemap="offline", tianditu_key=None)
                _write_atomic(path, m.get_root().render().encode("utf-8"))
        return path

    def about_table(self, run: Run, scope: str) -> pd.DataFrame:
        """说明 About sheet: data status, scope, what-if values and the plan file."""
        from kaizhou_gis.provenance import about_table
        extra = [("scope / 范围", scope, scope),
                 ("plan file / 规划文件", str(run.plan.path), str(run.plan.path))]
        plan = self.plan
        for k, v in run.overrides.items():
            if plan is None:
                raise OptionError("the plan is not loaded: " + str(self.error))
            extra.append((f"what-if / 假设调整: {k}", f"{v:g}（规划值 {plan[k]:g}）",
                          f"{v:g} (plan: {plan[k]:g})"))
        return about_table(self.data_status, title=f"{run.plan.name} {scope}", extra=extra)

    def township_xlsx(self, run: Run, code: str) -> Path:
        from kaizhou_gis.outputs import write_xlsx
        code = self._check_code(code)
        path = self._run_dir(run, "townships", code) / f"{code}_tables.xlsx"
        with self._artifact_lock(run, path.name):
            if not path.exists():
                tables = township_tables(_run_ctx(run), run.failures, code)
                sheets = {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}
                sheets["about"] = self.about_table(run, f"{self._township_row(code)['name']} ({code})")
                write_xlsx(sheets, path, header="zh")
        return path

    def township_csv_zip(self, run: Run, code: str) -> Path:
        """The township's tables as CSV (UTF-8 with BOM) in one ZIP, with a README of the data status."""
        from kaizhou_gis.outputs import write_csv
        from kaizhou_gis.provenance import readme_text
        code = self._check_code(code)
        d = self._run_dir(run, "townships", code)
        path = d / f"{code}_csv.zip"
        with self._artifact_lock(run, path.name):
            if not path.exists():
                tables = township_tables(_run_ctx(run), run.failures, code)
                names = []
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    for key, fname, _, _, _ in TABLES:
                        t = tables[key]
                        if not isinstance(t, pd.DataFrame):
                            continue
                        tmp = d / f".{fname}.csv"
                        write_csv(t, tmp, header="zh")
                        z.write(tmp, f"{code}_{fname}.csv")
                        tmp.unlink()
                        names.append(f"{code}_{fname}.csv")
                    title = f"{run.plan.name} {self._township_row(code)['name']} ({code})"
                    z.writestr("README.txt", readme_text(self.data_status, names, title=title))
                _write_atomic(path, buf.getvalue())
        return path

    def report_html(self, run: Run) -> Path:
        path = self._run_dir(run, "district") / "report.html"
        with self._artifact_lock(run, "report.html"):
            if not path.exists():
                rep = _run_ctx(run).results.get("report")
                if rep is None:
                    raise OptionError("the report is not available: "
                                      + run.failures.get("report", "the report step did not run"))
                _write_atomic(path, rep.files["report.html"].encode("utf-8"))
        return path

    def outputs_zip(self, run: Run) -> Path:
        """Every output of ``kaizhou-gis run`` for this run, in one ZIP."""
        from kaizhou_gis.pipeline import available_steps, run_steps
        d = self._run_dir(run, "district")
        path = d / "outputs.zip"
        with self._artifact_lock(run, "outputs.zip"):
            if not path.exists():
                out = d / "outputs"
                if out.exists():
                    shutil.rmtree(out)
                ctx = self._context_for(run, None)
                what_if = " ".join(f"{k}={v:g}" for k, v in run.overrides.items())
                outcomes = run_steps(ctx, available_steps(), out,
                                     command="kaizhou-gis serve: all outputs"
                                     + (f" (what-if {what_if})" if what_if else ""))
                failed = [f"{o.name}: {o.message}" for o in outcomes if o.status == "failed"]
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    from kaizhou_gis.outputs import LOCK_NAME
                    for p in sorted(out.rglob("*")):
                        if p.is_file() and p.name != LOCK_NAME:  # the run's lock is not an output
                            z.write(p, str(p.relative_to(out)))
                    if failed:
                        z.writestr("FAILED_STEPS.txt", "\n".join(failed) + "\n")
                _write_atomic(path, buf.getvalue())
                shutil.rmtree(out)
        return path

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def table_records(df: pd.DataFrame) -> list[list[Any]]:
    """Rows of a table as display values (numbers formatted, missing as empty)."""
    rows = []
    for rec in df.itertuples(index=False):
        row = []
        for v in rec:
            if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and not math.isfinite(float(v))):
                row.append("")
            elif isinstance(v, (float, np.floating)):
                x = float(v)
                row.append(f"{x:,.1f}" if abs(x - round(x)) > 1e-9 else f"{int(round(x)):,}")
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                row.append(f"{int(v)}" if abs(int(v)) < 10000 else f"{int(v):,}")
            elif isinstance(v, (list, tuple, set)):
                row.append("; ".join(map(str, v)))
            else:
                row.append(str(v))
        rows.append(row)
    return rows
