"""Many districts at once: each district's full pipeline is one task on a dask.distributed cluster.

``kaizhou-gis batch MANIFEST.toml --out DIR`` reads a manifest of districts, submits one task per
district to a :class:`dask.distributed.Client` (a :class:`~dask.distributed.LocalCluster` of
``--workers`` processes by default, or an existing cluster at ``--scheduler tcp://HOST:8786``
started with ``dask scheduler`` / ``dask worker``), and writes

- ``DIR/<code>/``: the district's outputs, exactly the files and bytes ``kaizhou-gis run --layers
  L --plan P --out DIR/<code>`` writes;
- ``DIR/rollup.csv``, ``.xlsx``, ``.json``: one row per district (figures read from the district's
  own ``report.json``, so the roll-up and the district report agree), failed districts with their
  error;
- ``DIR/rollup.html`` (sortable table and charts) and ``DIR/rollup_map.html`` (district polygons
  coloured by the road-access gap, linking to each district's overview map), both offline;

A rerun skips a district whose outputs are current: the task loads the district's layers and plan,
and when ``DIR/<code>/manifest.json`` (:mod:`kaizhou_gis.manifest`) records every step with the
same input fingerprint and every recorded file is still there with its hash, it writes nothing.
So an interrupted batch resumes where it stopped (``--force`` reruns everything).

The manifest (TOML; paths relative to the manifest file)::

    [defaults]                    # optional, shared by every district
    plan = "plans/chongqing.toml"
    crs = "EPSG:4490"             # CRS of layers that declare none (as --crs)
    encoding = "GBK"              # .dbf without .cpg (as --encoding)
    coords = "wgs84"              # or gcj02
    header = "en"                 # en, zh or both
    field_coords = "wgs84"        # as --field-coords

    [[district]]
    code = "500154"               # folder name under --out; 6-digit district code
    name = "开州区"
    layers = "500154/"            # GeoPackage, folder or TOML mapping of layer files
    plan = "500154/plan.toml"     # overrides the default

A district's error (bad layer, plan error, a crash in a step) is caught on the worker and reported
in the roll-up; the others go on. A worker process that dies is replaced and its task rerun by
dask (``distributed.scheduler.allowed-failures`` times, then ``KilledWorker``, reported as
"worker lost: ..." by :func:`lost_worker_error`); ``--retries`` also reruns a task that raised
outside the pipeline's own handling.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import time
import tomllib
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from kaizhou_gis.errors import KaizhouGISError, OptionError
from kaizhou_gis.figures import pct

log = logging.getLogger(__name__)

#: Manifest keys a district (or ``[defaults]``) may set.
DISTRICT_KEYS = ("code", "name", "layers", "plan", "crs", "encoding", "coords", "header",
                 "field_coords")
DEFAULT_KEYS = ("layers", "plan", "crs", "encoding", "coords", "header", "field_coords")
#: Files of the batch itself in --out (not a district's).
ROLLUP_FILES = ("rollup.csv", "rollup.xlsx", "rollup.json", "rollup.html", "rollup_map.html")
_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


@dataclass
class District:
    """One district of the manifest, paths resolved."""

    code: str
    name: str = ""
    layers: str | None = None
    plan: str | None = None
    crs: str | None = None
    encoding: str | None = None
    coords: str = "wgs84"
    header: str = "en"
    field_coords: str = "wgs84"


def read_manifest(path: str | Path) -> list[District]:
    """The districts of a batch manifest; :class:`OptionError` naming every problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise OptionError(f"batch manifest {path} does not exist; pass a TOML file listing "
                          f"[[district]] tables (see README, section Province).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise OptionError(f"batch manifest {path} is not valid UTF-8 TOML: {e}; fix the syntax.") from None
    base = path.resolve().parent
    problems: list[str] = []
    for k in sorted(set(data) - {"defaults", "district"}):
        problems.append(f"{k}: unknown top-level key; use [defaults] and [[district]].")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a table.")
        defaults = {}
    for k in sorted(set(defaults) - set(DEFAULT_KEYS)):
        problems.append(f"defaults.{k}: unknown key; allowed: {', '.join(DEFAULT_KEYS)}.")
    items = data.get("district", [])
    if not isinstance(items, list) or not items:
        problems.append("no [[district]] tables; list at least one district.")
        items = []
    out: list[District] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"district[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table.")
            continue
        for k in sorted(set(item) - set(DISTRICT_KEYS)):
            problems.append(f"{where}.{k}: unknown key; allowed: {', '.join(DISTRICT_KEYS)}.")
        merged = {**{k: v for k, v in defaults.items() if k in DEFAULT_KEYS}, **item}
        code = str(merged.get("code", "")).strip()
        if not _CODE.match(code):
            problems.append(f"{where}.code: {code!r} is not a usable code (letters, digits, _ or -; "
                            f"it names the output folder).")
            continue
        where = f"district {code}"
        if code in seen:
            problems.append(f"{where}: listed twice (district[{seen[code]}] and district[{i}]); "
                            f"codes must be unique.")
            continue
        seen[code] = i
        if not merged.get("layers"):
            problems.append(f"{where}: no layers; give layers = \"path\" (GeoPackage, folder or "
                            f"TOML mapping).")
            continue
        for k in ("coords", "field_coords"):
            if merged.get(k, "wgs84") not in ("wgs84", "gcj02"):
                problems.append(f"{where}.{k}: {merged[k]!r}; use wgs84 or gcj02.")
        if merged.get("header", "en") not in ("en", "zh", "both"):
            problems.append(f"{where}.header: {merged['header']!r}; use en, zh or both.")

        def resolve(v):
            if v is None or str(v).strip() == "":
                return None
            p = Path(str(v)).expanduser()
            return str(p if p.is_absolute() else (base / p))
        out.append(District(code=code, name=str(merged.get("name", "")),
                            layers=resolve(merged.get("layers")), plan=resolve(merged.get("plan")),
                            crs=merged.get("crs"), encoding=merged.get("encoding"),
                            coords=str(merged.get("coords", "wgs84")),
                            header=str(merged.get("header", "en")),
                            field_coords=str(merged.get("field_coords", "wgs84"))))
    if problems:
        raise OptionError(f"batch manifest {path}: {len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    return out


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    except Exception:  # pragma: no cover (no resource module)
        return float("nan")


def run_district(d: District | dict, out_root: str, *, force: bool = False,
                 command: str | None = None) -> dict[str, Any]:
    """One district's full pipeline (what ``kaizhou-gis run`` does) into ``out_root/<code>``.

    Runs on a dask worker. Never raises for a district's own problems: the result says
    ``status = "failed"`` with the error; ``"ok"`` when every step succeeded. Without ``force``,
    a district whose outputs are current (its manifest records every step with the inputs'
    fingerprint and unchanged files) is not run again: ``run = "unchanged (skipped)"``.
    """
    if isinstance(d, dict):
        d = District(**d)
    from kaizhou_gis import manifest
    from kaizhou_gis.layers import check_layers, load_layers
    from kaizhou_gis.pipeline import Context, available_steps, run_steps
    from kaizhou_gis.plan import load_plan

    t0 = time.perf_counter()
    out_dir = Path(out_root) / d.code
    res: dict[str, Any] = {"code": d.code, "status": "failed", "error": "", "steps": {},
                           "pid": os.getpid(), "run": "ran", "data_status": ""}
    try:
        import socket
        res["host"] = socket.gethostname()
        plan = load_plan(d.plan)
        report = check_layers(d.layers, plan=plan, crs=d.crs, encoding=d.encoding, coords=d.coords)
        if not report.ok:
            raise KaizhouGISError(report.problem_text())
        layers = load_layers(d.layers, plan=plan, crs=d.crs, encoding=d.encoding, coords=d.coords)
        # the options `kaizhou-gis run` gives a district run (cli.run and cli._run)
        ctx = Context(layers=layers, plan=plan, overrides={},
                      options={"field_coords": d.field_coords, "township": None, "header": d.header})
        res["data_status"] = data_status_text(ctx.data_status)
        steps = available_steps()
        fp = ctx.inputs["fingerprint"]
        m = manifest.read_manifest(out_dir)
        if not force and all(manifest.is_step_current(out_dir, s, fp, township_code=None, manifest=m,
                                                      output_options=ctx.output_options)
                             for s in steps):
            res.update(status="ok", run="unchanged (skipped)")
        else:
            outcomes = run_steps(ctx, steps, out_dir, command=command)
            res["steps"] = {o.name: {"status": o.status, "seconds": round(o.seconds, 3),
                                     "message": o.message} for o in outcomes}
            failed = [o for o in outcomes if o.status == "failed"]
            if failed:
                res["error"] = "; ".join(f"step {o.name}: {o.message}" for o in failed)
            else:
                res["status"] = "ok"
    except KaizhouGISError as e:
        res["error"] = str(e)
    except Exception as e:  # a crash in one district must not stop the batch
        res["error"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()
    res["seconds"] = round(time.perf_counter() - t0, 3)
    res["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return res


def data_status_text(status: dict | None) -> str:
    """One bilingual cell from :func:`kaizhou_gis.provenance.data_status`."""
    from kaizhou_gis import provenance

    if not status:
        return ""
    if status.get("synthetic"):
        return (f"{status.get('short_zh') or provenance.SHORT_ZH} / "
                f"{status.get('short_en') or provenance.SHORT_EN}: "
                f"{', '.join(status.get('synthetic_layers') or [])}")
    return f"{provenance.REAL_ZH} / {provenance.REAL_EN}"


# --------------------------------------------------------------------------------------------
# roll-up
# --------------------------------------------------------------------------------------------
ROLLUP_COLUMNS = {
    "code": "代码", "name": "名称", "status": "状态", "error": "错误", "data_status": "数据性质",
    "settlements": "自然村数", "candidates": "搬迁对象自然村", "candidate_households": "搬迁户数",
    "candidate_people": "搬迁人数", "registered_poor": "其中建档立卡贫困人口",
    "relocation_target_people": "规划搬迁人数", "scheduled_people": "已排期人数",
    "schedule_vs_quota_pct": "排期占计划(%)",
    "village_tongda_before_pct": "行政村通达率-现状(%)",
    "village_tongda_after_pct": "行政村通达率-工程后(%)",
    "village_tongchang_before_pct": "行政村通畅率-现状(%)",
    "village_tongchang_after_pct": "行政村通畅率-工程后(%)",
    "settlement_tongda_before_pct": "集中居住自然村(≥30户或100人)通达率-现状(%)",
    "settlement_tongda_after_pct": "集中居住自然村通达率-工程后(%)",
    "settlement_tongchang_before_pct": "集中居住自然村通畅率-现状(%)",
    "settlement_tongchang_after_pct": "集中居住自然村通畅率-工程后(%)",
    "works": "建议工程数", "works_km": "工程里程(km)", "works_cost_yuan": "工程投资(元)",
    "industry_projects": "产业项目数", "industry_host_villages": "产业落地村数",
    "industry_unresolved": "未定位实施地", "gap_pct": "通畅缺口(百分点)",
    "seconds": "耗时(秒)", "peak_rss_mb": "峰值内存(MB)", "run": "本次运行",
}

COUNT_COLUMNS = ("settlements", "candidates", "candidate_households", "candidate_people",
                 "registered_poor", "relocation_target_people", "scheduled_people",
                 "works", "industry_projects", "industry_host_villages", "industry_unresolved")


def rollup_row(out_dir: Path) -> dict[str, Any]:
    """A district's roll-up figures, read from its own ``report.json`` and the access tables."""
    r = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    rel, acc, ind = r.get("relocation") or {}, r.get("access") or {}, r.get("industry") or {}
    row: dict[str, Any] = {"name": (r.get("district") or {}).get("name")}
    row["settlements"] = rel.get("settlements")
    row["candidates"] = rel.get("candidates")
    row["candidate_households"] = rel.get("candidate_households")
    row["candidate_people"] = rel.get("candidate_people")
    row["registered_poor"] = rel.get("candidate_poor_people")
    row["relocation_target_people"] = (rel.get("plan") or {}).get("people_target")
    sched = rel.get("schedule") or []
    if sched:
        row["scheduled_people"] = int(sum(int(s.get("people") or 0) for s in sched))
        quota = sum(int(s.get("plan_people") or 0) for s in sched)
        row["schedule_vs_quota_pct"] = pct(row["scheduled_people"], quota)
    card = {c.get("indicator"): c for c in acc.get("scorecard") or []}
    for k in ("village_tongchang", "settlement_tongda", "settlement_tongchang"):
        c = card.get(f"{k}_pct") or {}
        row[f"{k}_before_pct"] = c.get("before_pct")
        row[f"{k}_after_pct"] = c.get("after_pct")
    vfile = out_dir / "access" / "villages.csv"  # 通达 of villages: the scorecard has 通畅 only
    if vfile.is_file():
        v = pd.read_csv(vfile, encoding="utf-8-sig", dtype=str,
                        usecols=lambda c: c in ("tongda", "tongda_after"))
        for c, k in (("tongda", "village_tongda_before_pct"), ("tongda_after", "village_tongda_after_pct")):
            if c in v and len(v):
                row[k] = round(100.0 * float(v[c].str.lower().eq("true").mean()), 2)
    gaps = [(c.get("target_pct") or 0) - (c.get("before_pct") or 0) for c in card.values()
            if c.get("before_pct") is not None]
    row["gap_pct"] = round(max([0.0] + gaps), 2) if gaps else None
    w = acc.get("works") or {}
    row["works"], row["works_km"], row["works_cost_yuan"] = w.get("count"), w.get("km"), w.get("cost_yuan")
    row["industry_projects"] = ind.get("projects")
    row["industry_host_villages"] = ind.get("host_villages")
    row["industry_unresolved"] = ind.get("unresolved_names")
    return row


def _boundary_wgs84(d: District, out_dir: Path):
    """The district outline for the roll-up map, from its boundary layer (WGS84; read on the
    driver, it is small), or None when it cannot be read (the table still has the row)."""
    from kaizhou_gis.layers import _resolve
    import geopandas as gpd

    lp = Path(d.layers) if d.layers else None
    if lp is None:
        return None
    try:
        sources, _, _ = _resolve(lp, [])
        src = sources.get("boundary")
        if src is None:
            return None
        g = gpd.read_file(src.path, layer=src.layer) if src.layer else gpd.read_file(src.path)
        if g.crs is None:
            g = g.set_crs(d.crs or "EPSG:4326")
        if d.coords == "gcj02":
            from kaizhou_gis.terrain.coords import convert_gcj02_to_wgs84
            g = convert_gcj02_to_wgs84(g.to_crs("EPSG:4326"))
        return g.to_crs("EPSG:4326").geometry.union_all()
    except Exception as e:  # the map just lacks this outline; the table has the row
        log.debug("no outline for %s: %s", d.code, e)
        return None


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dashboard: str | None = None
    paths: list[Path] = field(default_factory=list)


def make_client(*, scheduler: str | None, workers: int | None, memory_limit: str | None,
                threads_per_worker: int = 1, dashboard: bool = True, quiet: bool = True):
    """A dask.distributed Client: to ``scheduler`` when given, else a new LocalCluster.

    ``quiet``: the local workers log only critical messages (dask's ``silence_logs``): a worker
    killed mid-district makes its peers and the restarted worker log connection tracebacks that
    say nothing the roll-up does not (the district's rerun or its "worker lost" error)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as e:
            raise OptionError(f"--scheduler {scheduler}: cannot connect ({e}); start one with "
                              f"`dask scheduler` and `dask worker {scheduler}`, or leave "
                              f"--scheduler out for a local cluster.") from None
    n = workers or max(1, (os.cpu_count() or 1))
    kw: dict[str, Any] = {"n_workers": n, "threads_per_worker": threads_per_worker,
                          "processes": True,
                          "dashboard_address": ":0" if dashboard else None,
                          "silence_logs": logging.CRITICAL if quiet else logging.WARNING}
    if memory_limit:
        kw["memory_limit"] = memory_limit
    cluster = LocalCluster(**kw)
    return Client(cluster), cluster


def run_batch(manifest: str | Path, out_dir: str | Path, *, workers: int | None = None,
              memory_limit: str | None = None, scheduler: str | None = None,
              retries: int = 1, force: bool = False,
              echo: Callable[[str], None] = print) -> BatchResult:
    """Run every district of ``manifest`` on dask.distributed; write the roll-up; see module doc."""
    from dask.distributed import as_completed

    t0 = time.perf_counter()
    quiet = not logging.getLogger("kaizhou_gis").isEnabledFor(logging.INFO)
    if quiet:
        logging.getLogger("distributed").setLevel(logging.ERROR)  # dask's own INFO chatter
    districts = read_manifest(manifest)
    out_root = Path(out_dir).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    res = BatchResult()
    results: dict[str, dict] = {}
    n = len(districts)
    from kaizhou_gis.manifest import command_line
    command = command_line()
    echo(f"kaizhou-gis batch: {n} district(s) in {manifest} -> {out_root}")
    done = 0
    client, cluster = make_client(scheduler=scheduler, workers=workers, memory_limit=memory_limit,
                                  quiet=quiet)
    try:
        info = client.scheduler_info()
        nworkers = len(info.get("workers", {}))
        where = scheduler or "a LocalCluster"
        echo(f"  dask: {nworkers} worker(s) on {where}")
        try:
            link = client.dashboard_link
        except Exception:  # no bokeh: no dashboard
            link = None
        if link and _dashboard_up(client):
            res.dashboard = link
            echo(f"  dask dashboard: {link}")
        futures = {}
        for d in districts:
            fut = client.submit(run_district, asdict(d), str(out_root), force=force,
                                command=f"{command}  # district {d.code}",
                                key=f"kaizhou-{d.code}", pure=False, retries=retries)
            futures[fut] = d
        for fut in as_completed(list(futures)):
            d = futures[fut]
            try:
                r = fut.result()
            except Exception as e:  # KilledWorker after the allowed failures, or lost
                r = {"code": d.code, "status": "failed", "run": "ran",
                     "error": lost_worker_error(d, e)}
            results[d.code] = r
            (res.skipped if r.get("run") == "unchanged (skipped)" else res.ran).append(d.code)
            done += 1
            echo(_progress_line(done, n, d, r))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    # roll-up rows in manifest order
    outlines = {}
    for d in districts:
        r = results[d.code]
        row: dict[str, Any] = {"code": d.code, "name": d.name, "status": r["status"],
                               "error": r.get("error", "") or ""}
        if r["status"] == "ok":
            try:
                fig = rollup_row(out_root / d.code)
                fig["name"] = d.name or fig.get("name")
                row.update(fig)
            except (OSError, ValueError, KeyError) as e:
                row.update(status="failed", error=f"outputs incomplete: {e}")
        row["data_status"] = r.get("data_status", "")
        row["seconds"], row["peak_rss_mb"] = r.get("seconds"), r.get("peak_rss_mb")
        row["run"] = r.get("run", "")
        res.rows.append(row)
        if row["status"] != "ok":
            res.failed.append(d.code)
        outlines[d.code] = _boundary_wgs84(d, out_root / d.code)
    res.paths = write_rollup(res.rows, outlines, out_root)
    res.seconds = time.perf_counter() - t0
    return res


def _dashboard_up(client) -> bool:
    try:
        return bool(client.scheduler_info().get("services", {}).get("dashboard"))
    except Exception:
        return False


def _progress_line(done: int, n: int, d: District, r: dict) -> str:
    width = 20
    k = int(round(width * done / n)) if n else width
    bar = "#" * k + "." * (width - k)
    head = f"[{bar}] {done}/{n} {d.code} {d.name}".rstrip()
    if r["status"] == "ok" and r.get("run") == "unchanged (skipped)":
        return f"{head}: unchanged, not rerun ({r.get('seconds', 0):.1f} s to check)"
    if r["status"] == "ok":
        return f"{head}: ok in {r.get('seconds', 0):.1f} s (worker pid {r.get('pid')})"
    first = str(r.get("error", "")).splitlines()[0] if r.get("error") else ""
    return f"{head}: FAILED: {first}"


def _allowed_failures() -> int:
    import dask
    return int(dask.config.get("distributed.scheduler.allowed-failures", 3))


def lost_worker_error(d: District, e: BaseException) -> str:
    """The roll-up's error for a district whose task did not return: its worker processes died
    (:class:`distributed.KilledWorker` once ``distributed.scheduler.allowed-failures`` reruns
    are used up), or the task was lost otherwise."""
    from distributed import KilledWorker

    if isinstance(e, KilledWorker):
        n = int(e.allowed_failures) + 1
        where = getattr(e.last_worker, "address", "?")
        return (f"worker lost: the worker process running district {d.code} died {n} time(s) "
                f"while running it (killed, out of memory or crashed; last on {where}), and dask "
                f"reruns a task at most distributed.scheduler.allowed-failures = "
                f"{int(e.allowed_failures)} time(s); rerun the batch to retry it (complete "
                f"districts are skipped), give the workers more memory (--memory-limit) or "
                f"raise that setting (DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES).")
    return (f"worker lost or task failed outside the pipeline: {type(e).__name__}: {e} (dask "
            f"reruns a task whose worker dies up to distributed.scheduler.allowed-failures = "
            f"{_allowed_failures()} time(s)); rerun the batch to retry it.")


# --------------------------------------------------------------------------------------------
# writing the roll-up
# --------------------------------------------------------------------------------------------
def rollup_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ROLLUP_COLUMNS:
        if c not in df:
            df[c] = None
    df = df[list(ROLLUP_COLUMNS)].copy()
    for c in COUNT_COLUMNS:  # whole numbers stay whole next to a failed district's empty cell
        df[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in df[c]], dtype="Int64")
    df.attrs["labels_zh"] = dict(ROLLUP_COLUMNS)
    return df


def write_rollup(rows: list[dict], outlines: dict, out_root: Path) -> list[Path]:
    from kaizhou_gis import outputs

    df = rollup_frame(rows)
    paths = [outputs.write_csv(df, out_root / "rollup.csv", header="both"),
             outputs.write_xlsx({"rollup": df}, out_root / "rollup.xlsx", header="both"),
             outputs.write_json({"districts": df.astype(object).where(df.notna(), None)
                                 .to_dict("records"),
                                 "labels_zh": ROLLUP_COLUMNS}, out_root / "rollup.json"),
             outputs.write_text(rollup_html(df), out_root / "rollup.html"),
             outputs.write_text(rollup_map_html(df, outlines), out_root / "rollup_map.html")]
    return paths


def _h(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return html.escape(f"{v:,.2f}".rstrip("0").rstrip("."))
    if isinstance(v, int) and not isinstance(v, bool):
        return html.escape(f"{v:,}")
    return html.escape(str(v))


_TABLE_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, i) {
  th.addEventListener('click', function () {
    var tb = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(tb.rows);
    var asc = th.getAttribute('data-dir') !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(function (o) { o.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[i].getAttribute('data-v'), y = b.cells[i].getAttribute('data-v');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y), 'zh');
      return asc ? c : -c;
    });
    rows.forEach(function (r) { tb.appendChild(r); });
  });
});
"""

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}th[data-dir=asc]:after{content:" ▲"}
th[data-dir=desc]:after{content:" ▼"}td.n{text-align:right}tr.failed td{background:#fde0dd}
.note{color:#555;font-size:13px}.chart{margin:1em 0}
"""


def _bar_chart(df: pd.DataFrame, col: str, title: str, unit: str) -> str:
    """An inline SVG bar chart of one column over the districts (no script, no CDN)."""
    vals = [(str(c), v) for c, v in zip(df["code"], df[col]) if v is not None and not pd.isna(v)]
    if not vals:
        return ""
    vmax = max(float(v) for _, v in vals) or 1.0
    bh, w, lw = 16, 360, 90
    h = bh * len(vals) + 24
    parts = [f'<svg width="{lw + w + 90}" height="{h}" '
             f'role="img" aria-label="{html.escape(title)}">']
    for i, (code, v) in enumerate(vals):
        y = 20 + i * bh
        bw = w * float(v) / vmax
        parts.append(f'<text x="{lw - 4}" y="{y + 11}" font-size="11" text-anchor="end">'
                     f'{html.escape(code)}</text><rect x="{lw}" y="{y + 2}" width="{bw:.1f}" '
                     f'height="{bh - 4}" fill="#4a7fb0"/><text x="{lw + bw + 4:.1f}" y="{y + 11}" '
                     f'font-size="11">{_h(v)} {html.escape(unit)}</text>')
    parts.append(f'<text x="0" y="12" font-size="12" font-weight="bold">{html.escape(title)}</text></svg>')
    return '<div class="chart">' + "".join(parts) + "</div>"


def rollup_html(df: pd.DataFrame) -> str:
    cols = list(ROLLUP_COLUMNS)
    head = "".join(f"<th>{html.escape(ROLLUP_COLUMNS[c])}<br>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (int, float)) and not isinstance(v, bool) and not pd.isna(v)
            dv = html.escape(str(v if num else ("" if v is None or (isinstance(v, float) and pd.isna(v)) else v)),
                             quote=True)
            text = _h(v)
            if c == "code" and r["status"] == "ok":
                text = (f'<a href="{html.escape(str(v), quote=True)}/report.html">{text}</a>')
            cells.append(f'<td data-v="{dv}"{" class=n" if num else ""}>{text}</td>')
        cls = ' class="failed"' if r["status"] != "ok" else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    n_ok = int((df["status"] == "ok").sum())
    n_syn = _n_synthetic(df)
    charts = "".join([
        _bar_chart(df, "candidate_people", "搬迁对象人数 / relocation candidates (people)", "人"),
        _bar_chart(df, "village_tongchang_before_pct", "行政村通畅率-现状 / villages 通畅 before (%)", "%"),
        _bar_chart(df, "works_km", "建议工程里程 / proposed works (km)", "km"),
        _bar_chart(df, "works_cost_yuan", "建议工程投资 / cost of works (yuan)", "元")])
    syn_note = (f"<p class=note><b>{n_syn} 个区县的数据为合成数据 / {n_syn} district(s) use "
                f"SYNTHESIZED data</b> (column 数据性质 data_status): their figures show how the "
                f"pipeline works, not facts about a place.</p>") if n_syn else ""
    return ("<!DOCTYPE html><html lang=zh><head><meta charset=utf-8>"
            "<title>区县汇总 / District roll-up</title>"
            f"<style>{_CSS}</style></head><body>"
            "<h1>区县汇总 / District roll-up</h1>"
            f"<p>{len(df)} 个区县 districts: {n_ok} ok, {len(df) - n_ok} failed. "
            "点击表头排序 / click a header to sort. Each figure is read from the district's "
            "own report.json. <a href=rollup_map.html>地图 / map</a></p>"
            f"{syn_note}"
            f'<table class=sortable><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            f"</tbody></table>{charts}<script>{_TABLE_JS}</script></body></html>\n")


def _n_synthetic(df: pd.DataFrame) -> int:
    from kaizhou_gis.provenance import SHORT_ZH
    return int(df["data_status"].astype(str).str.startswith(SHORT_ZH).sum())


def _gap_color(gap) -> str:
    if gap is None or pd.isna(gap):
        return "#bdbdbd"
    g = float(gap)
    for limit, color in ((0.0, "#1a9850"), (10.0, "#a6d96a"), (25.0, "#fee08b"), (50.0, "#fc8d59")):
        if g <= limit:
            return color
    return "#d73027"


def rollup_map_html(df: pd.DataFrame, outlines: dict) -> str:
    """District polygons coloured by the road-access gap, offline (inline SVG, no tiles, no CDN),
    each linking to its district's overview map."""
    import shapely

    geoms = {c: g for c, g in outlines.items() if g is not None and not g.is_empty}
    W, H, pad = 900, 640, 20
    if geoms:
        minx, miny, maxx, maxy = shapely.GeometryCollection(list(geoms.values())).bounds
    else:
        minx, miny, maxx, maxy = 0.0, 0.0, 1.0, 1.0
    kx = math.cos(math.radians((miny + maxy) / 2))
    sx = (W - 2 * pad) / max((maxx - minx) * kx, 1e-9)
    sy = (H - 2 * pad) / max(maxy - miny, 1e-9)
    s = min(sx, sy)

    def xy(x, y):
        return f"{pad + (x - minx) * kx * s:.1f},{H - pad - (y - miny) * s:.1f}"

    def path(g) -> str:
        polys = list(g.geoms) if hasattr(g, "geoms") else [g]
        d = []
        for p in polys:
            if p.geom_type != "Polygon":
                continue
            for ring in [p.exterior, *p.interiors]:
                pts = list(ring.coords)
                d.append("M" + " L".join(xy(x, y) for x, y in pts) + " Z")
        return " ".join(d)

    by = df.set_index("code")
    shapes, labels, missing = [], [], []
    for code, g in geoms.items():
        r = by.loc[code]
        gap = r["gap_pct"] if r["status"] == "ok" else None
        tip = (f"{code} {r['name'] or ''}: " + (f"gap {gap:g} points before works; "
                                                 f"{r['data_status']}" if gap is not None and not pd.isna(gap)
                                                 else f"FAILED: {str(r['error']).splitlines()[0] if r['error'] else ''}"))
        fill = _gap_color(gap) if r["status"] == "ok" else "#bdbdbd"
        shape = (f'<path d="{path(g)}" fill="{fill}" stroke="#333" stroke-width="1">'
                 f"<title>{html.escape(tip)}</title></path>")
        if r["status"] == "ok":
            shape = (f'<a href="{html.escape(str(code), quote=True)}/maps/overview.html">{shape}</a>')
        shapes.append(shape)
        c = g.representative_point()
        labels.append(f'<text x="{xy(c.x, c.y).split(",")[0]}" y="{xy(c.x, c.y).split(",")[1]}" '
                      f'font-size="11" text-anchor="middle" pointer-events="none">'
                      f"{html.escape(str(code))}</text>")
    for code in df["code"]:
        if code not in geoms:
            missing.append(str(code))
    legend = "".join(f'<span style="display:inline-block;width:14px;height:10px;background:{c};'
                     f'border:1px solid #333"></span> {html.escape(t)} &nbsp; '
                     for c, t in (("#1a9850", "0"), ("#a6d96a", "≤ 10"), ("#fee08b", "≤ 25"),
                                  ("#fc8d59", "≤ 50"), ("#d73027", "> 50"),
                                  ("#bdbdbd", "失败/无数据 failed or no data")))
    n_syn = _n_synthetic(df)
    syn = (f"<p><b>{n_syn} 个区县为合成数据 / {n_syn} district(s) use SYNTHESIZED data.</b></p>"
           if n_syn else "")
    miss = (f"<p class=note>无边界 / no outline: {html.escape(', '.join(missing))}</p>"
            if missing else "")
    return ("<!DOCTYPE html><html lang=zh><head><meta charset=utf-8>"
            "<title>区县汇总地图 / District roll-up map</title>"
            f"<style>{_CSS}</style></head><body>"
            "<h1>区县汇总地图 / District roll-up map</h1>"
            "<p>颜色 = 道路通达/通畅缺口（工程前，三项目标中最大的差距，百分点）/ colour = the largest "
            "gap, before the works, between a road-access target and its current share "
            "(percentage points). 点击区县打开其总览地图 / click a district for its overview map. "
            "<a href=rollup.html>表格 / table</a></p>"
            f"{syn}<p>{legend}</p>"
            f'<svg width="{W}" height="{H}" '
            f'style="border:1px solid #ccc;background:#f7fbff">{"".join(shapes)}{"".join(labels)}'
            f"</svg>{miss}</body></html>\n")
