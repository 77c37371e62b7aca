"""Running the districts on dask.distributed: one task per district, progress, lost workers."""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kaizhou_gis.batch.manifest import District, read_manifest
from kaizhou_gis.batch.rollup import _boundary_wgs84, rollup_row
from kaizhou_gis.batch.write import write_rollup
from kaizhou_gis.errors import KaizhouGISError, OptionError


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
    from kaizhou_gis.layers import check_layers
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
        layers = report.layers  # what load_layers would read again (`run` does the same)
        assert layers is not None  # an ok report holds its layers
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
    _start_workers_from_fork_server()
    n = workers or max(1, (os.cpu_count() or 1))
    kw: dict[str, Any] = {"n_workers": n, "threads_per_worker": threads_per_worker,
                          "processes": True,
                          "dashboard_address": ":0" if dashboard else None,
                          "silence_logs": logging.CRITICAL if quiet else logging.WARNING}
    if memory_limit:
        kw["memory_limit"] = memory_limit
    cluster = LocalCluster(**kw)
    return Client(cluster), cluster


def import_steps() -> list[str]:
    """Import the module of every step of the pipeline (what a district run needs); returns the
    step names. For :mod:`kaizhou_gis.batch.preload`."""
    from kaizhou_gis.pipeline import available_steps

    return available_steps()


#: The module the fork server of the local workers imports (:func:`_start_workers_from_fork_server`).
PRELOAD_MODULE = "kaizhou_gis.batch.preload"
#: dask's setting of how a nanny starts its worker process, and the environment variable that sets it.
START_METHOD_KEY = "distributed.worker.multiprocessing-method"
START_METHOD_ENV = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"


def _start_workers_from_fork_server() -> bool:
    """Start the local cluster's worker processes from a fork server that has imported the
    pipeline (:mod:`kaizhou_gis.batch.preload`) once, instead of dask's default ``spawn`` (a
    fresh interpreter per worker that imports dask, GeoPandas, matplotlib and every step again,
    about 3 CPU-s each, again for a worker that replaces a killed one). True when set.

    Left as it is when the user chose a start method (``DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD``
    or a dask config file setting another than ``spawn``) or the platform has no fork server
    (Windows). Process-wide and lasting: the nannies read the setting each time they start a
    worker, also after this call."""
    import multiprocessing

    import dask
    from distributed.utils import get_mp_context

    if os.environ.get(START_METHOD_ENV) or dask.config.get(START_METHOD_KEY) != "spawn" \
            or "forkserver" not in multiprocessing.get_all_start_methods():
        return dask.config.get(START_METHOD_KEY) == "forkserver"
    import multiprocessing.forkserver

    dask.config.set({START_METHOD_KEY: "forkserver"})
    ctx = get_mp_context()  # sets dask's preload list (distributed and its packages), once
    # (CPython keeps the list on the module's fork server; without it, distributed alone)
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    preload = list(getattr(server, "_preload_modules", None) or ["distributed"])
    if PRELOAD_MODULE not in preload:
        ctx.set_forkserver_preload([*preload, PRELOAD_MODULE])
    return True


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
