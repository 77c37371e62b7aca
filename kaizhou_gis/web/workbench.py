"""The web workbench's state, without HTTP: layers and plan, townships, runs, downloads.

A *run* is the plan's analyses (industry, access, relocation, report) for one set of what-if
values of the settings the plan file marks ``adjustable`` (none: the plan's own run). Runs are
keyed by their inputs (fingerprints of the layers, of the effective plan and of the changed
values), computed in a small thread pool and kept while the server runs; two browser tabs asking
for different values get two runs, and the same values get the same run. A what-if reuses the
plan run's results of the steps the changed settings cannot affect (a relocation setting leaves
industry and access as they are). The plan's own run also keeps the district results of the
costly steps in ``<cache>/steps/``, keyed by what each step reads, as ``run`` keeps them in
``<out>/.cache``: a server started again on the same layers and plan takes them from there
instead of computing them (what-ifs do not store theirs, so they cannot push these out).

Everything a run offers for download (township map, tables, report, a ZIP of all outputs) is
written on demand under ``<cache>/runs/<key>/`` and nowhere else (:mod:`kaizhou_gis.web.downloads`:
:meth:`Workbench.cache_path` refuses any path that would leave the cache folder); a run itself is
:class:`kaizhou_gis.web.runs.Run`, the township tables come from :mod:`kaizhou_gis.web.townships`.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kaizhou_gis.errors import KaizhouGISError, OptionError
from kaizhou_gis.figures import pct
from kaizhou_gis.pipeline import Context
from kaizhou_gis.web.downloads import RunFiles
from kaizhou_gis.web.runs import RUN_STEPS, Run, steps_affected
from kaizhou_gis.web.townships import township_index

if TYPE_CHECKING:
    from kaizhou_gis.layers import Layers
    from kaizhou_gis.plan import Plan

log = logging.getLogger(__name__)

#: Runs kept in memory besides the plan's own (least recently used dropped first; their files stay
#: in the cache folder).
MAX_RUNS = 24
#: Folder of the cache (beside ``runs/``) that keeps the district results of the steps by the
#: inputs each step reads (:meth:`kaizhou_gis.pipeline.Context.cache_key`).
STEP_CACHE = "steps"
_KEY_RE = re.compile(r"[0-9a-f]{20}")


def default_cache_dir() -> Path:
    """``$KAIZHOU_GIS_CACHE``, else ``$XDG_CACHE_HOME/kaizhou-gis/web`` (``~/.cache/...``)."""
    env = os.environ.get("KAIZHOU_GIS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kaizhou-gis" / "web"


class Workbench(RunFiles):
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
            # the plan's own run keeps its district results (access, relocation) in the cache
            # folder by what each step reads, as `run` keeps them in <out>/.cache: a restarted
            # server takes them from there. What-ifs do not store theirs (the cache keeps a few
            # results per step: they would push the plan's run out)
            ctx = Context(layers=layers, plan=run.plan, options={"header": "both"},
                          overrides=dict(run.overrides), _inputs=run.inputs,
                          _data_status=self.data_status,
                          cache_dir=None if run.overrides else self.cache_path(STEP_CACHE))
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
            run.reused.extend(n for n in ctx.reused if n not in run.reused)
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


    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

