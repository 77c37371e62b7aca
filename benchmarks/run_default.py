"""Time the full ``kaizhou-gis run`` step by step, and write the table to ``benchmarks/results/``.

Usage::

    python benchmarks/run_default.py                     # shipped layers in layers/ (scale 1)
    python benchmarks/run_default.py --scale 10          # build a synthetic district 10x larger, run it
    python benchmarks/run_default.py --scale 1 --scale 3 --scale 10   # several, with the exponent fit
    python benchmarks/run_default.py --scale 100 --no-prints   # full run without the township print sheets
    python benchmarks/run_default.py --tracemalloc       # also Python peak memory per step (slower)
    python benchmarks/run_default.py --no-save           # print only
    python benchmarks/run_default.py --scale 10 --rebuild   # build the layers again even if cached

For each scale it prints and saves ``benchmarks/results/<date>-<scale>.md`` and ``.json``: the
build of the synthetic layers (``demo-layers --scale K``, wall and peak RSS of that process), and
per step of the run: wall seconds, CPU seconds (this process and its worker processes, so a
machine shared with other jobs can be told from a slow step), peak RSS of the process after the
step, and the largest worker process. The machine is described (CPUs, memory, load average before
and after: a wall time measured at load 15 on 2 cores is not the tool's speed).

Built layers are cached: ``demo-layers --scale K`` writes into ``<build cache>/scale-K-<key>/``
(default: ``kaizhou-gis-bench`` in the temporary folder, ``--build-cache`` to change), where the
key is a hash of the source files of every package module the build imports, the seed and the
versions of the libraries that shape the data (numpy, scipy, shapely, pyproj, GDAL). A later
benchmark of the same scale and code takes that folder instead of building again; the table then
says ``build: reused`` with the figures of the build that made it (``--rebuild`` forces a new one).

``--no-prints`` asks the maps step to leave out the per-township print sheets (PDF and PNG), as
the issue's 100x row ("full run without per-township prints") wants; the table says whether the
sheets were in fact left out (``prints: skipped``) or drawn (a maps step that does not know the
option draws them).

With results for several scales (given together or saved earlier, the newest per scale) it fits
the growth exponent b of ``cost ~ size^b`` (size = settlements) for wall, CPU and peak RSS, total
and per step, by least squares on the logs, and prints it. Each scale runs in its own process, so
one scale's memory does not count in the next one's peak. This script is a thin driver: it uses
the pipeline's own ``run_steps`` exactly as ``kaizhou-gis run`` does.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _rss_mb(who=resource.RUSAGE_SELF) -> float:
    """Peak resident set size (MB) of this process, or of its largest finished child process."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def machine_info() -> dict:
    """What the figures were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split()
        info["memory_gb"] = round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    info["load_avg_before"] = [round(x, 2) for x in os.getloadavg()]
    libs = {}
    for name in ("numpy", "shapely", "geopandas", "rasterio", "pyproj", "matplotlib", "folium",
                 "scipy", "networkx"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            pass
    info["libraries"] = libs
    return info


def benchmark(layers_path: Path | None, out_dir: Path, *, steps: list[str] | None = None,
              track_memory: bool = False, prints: bool = True) -> dict:
    """Run the pipeline once in this process and return the timings per phase.

    ``prints=False`` passes the ``prints`` option (False) to the steps: the maps step then leaves
    out the per-township print sheets, if it knows the option.
    """
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.pipeline import Context, available_steps, run_steps
    from kaizhou_gis.plan import load_plan

    rows = []
    t0, c0 = time.perf_counter(), _cpu_s()
    plan = load_plan()
    layers = load_layers(layers_path, plan=plan)
    with layers.open_dem() as dem:
        dem_cells = int(dem.width) * int(dem.height)
    rows.append({"step": "load layers", "status": "ok", "seconds": time.perf_counter() - t0,
                 "cpu_s": _cpu_s() - c0, "rss_mb": _rss_mb(), "workers_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
                 "py_peak_mb": None, "note": ""})
    size = {"villages": len(layers.villages), "settlements": len(layers.settlements),
            "roads": len(layers.roads), "townships": len(layers.townships), "dem_cells": dem_cells}
    print(f"  load layers {rows[0]['seconds']:8.2f} s wall {rows[0]['cpu_s']:8.2f} s CPU peak RSS "
          f"{rows[0]['rss_mb']:6.0f} MB ({size['settlements']:,} settlements, {dem_cells:,} DEM cells)",
          file=sys.stderr, flush=True)
    options = {"header": "en", "township": None}
    if not prints:
        options["prints"] = False
    ctx = Context(layers=layers, plan=plan, options=options)
    names = steps or available_steps()
    mark = {"cpu": _cpu_s()}

    def done(oc):
        cpu = _cpu_s()
        rows.append({"step": oc.name, "status": oc.status, "seconds": oc.seconds,
                     "cpu_s": cpu - mark["cpu"], "rss_mb": _rss_mb(),
                     "workers_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
                     "py_peak_mb": oc.peak_mb if track_memory else None,
                     "note": (oc.message.splitlines() or [""])[0][:70] if oc.status != "ok"
                     else f"{len(oc.paths)} files"})
        mark["cpu"] = cpu
        print(f"  {oc.name:<11} {oc.status:<7} {oc.seconds:8.2f} s wall {rows[-1]['cpu_s']:8.2f} s CPU "
              f"peak RSS {rows[-1]['rss_mb']:6.0f} MB (workers {rows[-1]['workers_rss_mb']:.0f} MB)",
              file=sys.stderr, flush=True)

    run_steps(ctx, names, out_dir, on_done=done, track_memory=track_memory)
    sheets = [p for p in (out_dir / "maps" / "townships").glob("*") if p.suffix in (".pdf", ".png")] \
        if (out_dir / "maps" / "townships").is_dir() else []
    return {"layers": str(layers.source), "size": size, "total_seconds": time.perf_counter() - t0,
            "total_cpu_s": _cpu_s() - c0, "peak_rss_mb": _rss_mb(),
            "workers_peak_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN), "steps": rows,
            "prints_requested": prints, "township_sheet_files": len(sheets)}


# --------------------------------------------------------------------------------------------
# building (and caching) the synthetic layers
# --------------------------------------------------------------------------------------------

#: Default folder of the cached ``demo-layers --scale K`` builds.
BUILD_CACHE = Path(tempfile.gettempdir()) / "kaizhou-gis-bench"
#: Libraries whose versions can change the built bytes (part of the cache key).
BUILD_LIBS = ("numpy", "scipy", "shapely", "pyproj", "pyogrio", "rasterio", "geopandas", "pandas")


def build_key(scale: int, seed: int | None = None) -> str:
    """Hash of what decides the built layers: the source of every package module the build
    imports (found by importing it in a fresh process), the seed, the scale, library versions."""
    code = ("import sys, json\nimport kaizhou_gis.demo, kaizhou_gis.demo.build\n"
            "mods = sorted((n, m.__file__) for n, m in sys.modules.items()\n"
            "              if n.split('.')[0] == 'kaizhou_gis' and getattr(m, '__file__', None))\n"
            "print(json.dumps(mods))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    h = hashlib.sha256()
    for name, path in json.loads(out.stdout):
        h.update(name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    from importlib.metadata import PackageNotFoundError, version

    for lib in BUILD_LIBS:
        try:
            h.update(f"{lib}={version(lib)}".encode())
        except PackageNotFoundError:
            h.update(f"{lib}=-".encode())
    try:
        import rasterio
        h.update(f"gdal={rasterio.__gdal_version__}".encode())
    except ImportError:
        pass
    h.update(f"scale={scale} seed={seed}".encode())
    return h.hexdigest()[:16]


def build_layers(scale: int, dest: Path) -> dict:
    """``demo-layers --scale K`` in its own process: wall seconds and that process's peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kaizhou_gis", "demo-layers", "--scale", str(scale),
                             "--out", str(dest)], stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"demo-layers --scale {scale} failed (exit {proc.returncode})")
    peak = ru.ru_maxrss / 2**20 if sys.platform == "darwin" else ru.ru_maxrss / 2**10
    return {"seconds": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": peak}


def cached_build(scale: int, cache: Path, *, rebuild: bool = False) -> tuple[Path, dict]:
    """The layers of ``demo-layers --scale K`` for this code: a cached folder, or a new build.

    Returns the folder and the build's figures (``reused`` True when the folder was cached; its
    figures are then those of the build that made it). A build is written next to its final
    place and renamed into it when complete (``build.json`` written last), so an interrupted or
    concurrent build never leaves a half folder to be reused.
    """
    key = build_key(scale)
    dest = cache / f"scale-{scale}-{key}"
    meta = dest / "build.json"
    if meta.is_file() and not rebuild:
        try:
            done = json.loads(meta.read_text(encoding="utf-8"))
            if all((dest / n).is_file() for n in ("kaizhou.gpkg", "dem.tif")):
                return dest, {**done["build"], "reused": True, "folder": str(dest)}
        except (OSError, ValueError, KeyError):
            pass
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".scale-{scale}-", dir=cache))
    try:
        build = build_layers(scale, tmp)
        build["date"] = _dt.datetime.now().isoformat(timespec="seconds")
        build["key"] = key
        (tmp / "build.json").write_text(json.dumps({"build": build}, indent=1) + "\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another benchmark finished the same build first: use ours from tmp
            return tmp, {**build, "reused": False, "folder": str(tmp)}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, {**build, "reused": False, "folder": str(dest)}


def run_scale(scale: int, *, layers: Path | None, steps: list[str] | None, track_memory: bool,
              keep_out: Path | None, prints: bool = True, cache: Path = BUILD_CACHE) -> dict:
    """Build (scale > 1; or reuse the cached build) and run one scale in this process."""
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="kaizhou-bench-") as tmp:
        build = None
        if scale > 1:
            layers, build = cached_build(scale, cache)
            print(f"scale-{scale} layers: {layers} (its build: {build['seconds']:.1f} s wall, "
                  f"{build['cpu_s']:.1f} s CPU, peak RSS {build['peak_rss_mb']:.0f} MB)", file=sys.stderr)
        out = keep_out or Path(tmp) / "out"
        result = benchmark(layers, out, steps=steps, track_memory=track_memory, prints=prints)
    info["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    result.update({"scale": scale, "date": _dt.date.today().isoformat(), "machine": info,
                   "build": build, "steps_run": steps or "all"})
    if layers is None or scale == 1:
        result["layers"] = "shipped layers (layers/)" if layers is None else str(layers)
    else:
        result["layers"] = f"demo-layers --scale {scale} (synthetic)"
    return result


def run_scale_in_child(scale: int, args) -> dict:
    """:func:`run_scale` in a fresh process (its own peak RSS)."""
    with tempfile.TemporaryDirectory(prefix="kaizhou-bench-") as tmp:
        dest = Path(tmp) / "r.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--scale", str(scale), "--no-save",
               "--quiet", "--json", str(dest)]
        if args.steps:
            cmd += ["--steps", args.steps]
        if args.tracemalloc:
            cmd.append("--tracemalloc")
        if args.layers:
            cmd += ["--layers", str(args.layers)]
        if args.no_prints:
            cmd.append("--no-prints")
        if args.out:
            cmd += ["--out", str(args.out)]
        cmd += ["--build-cache", str(args.build_cache)]  # the parent built or found the layers
        subprocess.run(cmd, check=True)
        return json.loads(dest.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# growth exponent
# --------------------------------------------------------------------------------------------

def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x): b in y ~ x^b (None with fewer than 2 sizes)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def growth(results: list[dict]) -> dict:
    """Exponents of wall, CPU and peak RSS over the scales in ``results`` (size = settlements)."""
    results = sorted(results, key=lambda r: r["scale"])
    xs = [r["size"]["settlements"] for r in results]
    out = {"scales": [r["scale"] for r in results], "settlements": xs,
           "total": {"wall": fit_exponent(xs, [r["total_seconds"] for r in results]),
                     "cpu": fit_exponent(xs, [r.get("total_cpu_s") for r in results]),
                     "peak_rss": fit_exponent(xs, [r["peak_rss_mb"] for r in results])},
           "build": {"wall": fit_exponent([x for x, r in zip(xs, results) if r.get("build")],
                                          [r["build"]["seconds"] for r in results if r.get("build")])},
           "steps": {}}
    names = [s["step"] for s in results[-1]["steps"]]
    for name in names:
        per = [next((s for s in r["steps"] if s["step"] == name), None) for r in results]
        if any(p is None for p in per):
            continue
        out["steps"][name] = {"wall": fit_exponent(xs, [p["seconds"] for p in per]),
                              "cpu": fit_exponent(xs, [p.get("cpu_s") for p in per])}
    return out


def saved_results(prints: bool = True) -> dict[int, dict]:
    """The newest saved result per scale in ``benchmarks/results`` (full runs, with or without
    the township print sheets as ``prints`` says: only like runs are fitted together)."""
    newest: dict[int, dict] = {}
    for f in sorted(RESULTS.glob("*.json")):  # date-first names: later files are newer
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(r, dict) and "scale" in r and "steps" in r and r.get("steps_run") == "all"
                and r.get("prints_requested", True) == prints):
            newest[int(r["scale"])] = r
    return newest


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------

def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def format_table(result: dict) -> str:
    """One scale's figures as a Markdown table."""
    m = result["machine"]
    sz = result["size"]
    lines = [f"## scale {result['scale']}: {result['layers']}", "",
             f"{result['date']} · {m.get('cpu_model', m['machine'])} · {m.get('cpus_usable', m['cpus'])} "
             f"CPUs usable · {m.get('memory_gb', '?')} GB · Python {m['python']} · load average "
             f"before {m['load_avg_before'][0]:.1f}, after {m.get('load_avg_after', ['?'])[0]}", "",
             f"{sz['settlements']:,} settlements, {sz['villages']:,} villages, {sz['roads']:,} roads, "
             f"{sz['townships']} townships, {sz['dem_cells']:,} DEM cells", ""]
    if result.get("build"):
        b = result["build"]
        how = (f"reused (cached build of {b.get('date', '?')}, key {b.get('key', '?')}; its figures)"
               if b.get("reused") else "built for this run")
        lines += [f"build (demo-layers --scale {result['scale']}): {how}: {b['seconds']:.1f} s wall, "
                  f"{b['cpu_s']:.1f} s CPU, peak RSS {b['peak_rss_mb']:.0f} MB", ""]
    ran_maps = any(r["step"] == "maps" for r in result["steps"])
    if ran_maps and not result.get("prints_requested", True):
        n = result.get("township_sheet_files", 0)
        lines += [("prints: skipped (no per-township PDF/PNG sheets)" if n == 0 else
                   f"prints: DRAWN ({n} township sheet files) although --no-prints asked to skip "
                   f"them: this version's maps step does not know the option"), ""]
    lines += ["| step | status | wall s | CPU s | peak RSS MB | workers' peak RSS MB | py peak MB | note |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result["steps"]:
        lines.append(f"| {r['step']} | {r['status']} | {r['seconds']:.2f} | {_f(r.get('cpu_s'), '.2f')} | "
                     f"{r['rss_mb']:.0f} | {_f(r.get('workers_rss_mb') or None, '.0f')} | "
                     f"{_f(r['py_peak_mb'], '.1f')} | {r['note']} |")
    lines.append(f"| **total** | | **{result['total_seconds']:.2f}** | {_f(result.get('total_cpu_s'), '.2f')} | "
                 f"**{result['peak_rss_mb']:.0f}** | {_f(result.get('workers_peak_rss_mb') or None, '.0f')} | | |")
    return "\n".join(lines)


def format_growth(g: dict) -> str:
    lines = [f"## growth over scales {', '.join(map(str, g['scales']))} "
             f"(settlements {', '.join(f'{x:,}' for x in g['settlements'])}): cost ~ size^b", "",
             "| | b wall | b CPU | b peak RSS |", "|---|---:|---:|---:|",
             f"| total run | {_f(g['total']['wall'], '.2f')} | {_f(g['total']['cpu'], '.2f')} | "
             f"{_f(g['total']['peak_rss'], '.2f')} |",
             f"| build (demo-layers) | {_f(g['build']['wall'], '.2f')} | | |"]
    for name, e in g["steps"].items():
        lines.append(f"| {name} | {_f(e['wall'], '.2f')} | {_f(e['cpu'], '.2f')} | |")
    return "\n".join(lines)


def save(result: dict, text: str) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tail = "" if result.get("prints_requested", True) else "-noprints"
    stem = RESULTS / f"{result['date']}-{result['scale']}{tail}"
    stem.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    return [stem.with_suffix(".md"), stem.with_suffix(".json")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=Path, default=None,
                    help="layers to run on at scale 1 (default: the shipped layers in layers/)")
    ap.add_argument("--scale", type=int, action="append", default=None,
                    help="build a synthetic district K times larger with demo-layers and run it "
                         "(repeat for several scales; 1 = the shipped layers)")
    ap.add_argument("--steps", default=None, help="comma-separated steps (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="keep the outputs in this folder (one scale)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also measure Python peak memory per step (slows the run down)")
    ap.add_argument("--json", type=Path, default=None, help="also save the figures as JSON here")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    ap.add_argument("--no-prints", action="store_true",
                    help="leave out the per-township print sheets (PDF, PNG) of the maps step")
    ap.add_argument("--build-cache", type=Path, default=BUILD_CACHE,
                    help=f"folder of the cached synthetic layer builds (default {BUILD_CACHE})")
    ap.add_argument("--rebuild", action="store_true",
                    help="build the synthetic layers again even if a cached build of this code exists")
    ap.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    scales = args.scale or [1]
    steps = args.steps.split(",") if args.steps else None

    results = []
    for k in scales:
        build = None
        if k > 1:  # built (or found in the cache) by this process, measured by the one that runs
            build = cached_build(k, args.build_cache, rebuild=args.rebuild)[1]
        if len(scales) == 1 and (build is None or build["reused"]):
            r = run_scale(k, layers=args.layers if k == 1 else None, steps=steps,
                          track_memory=args.tracemalloc, keep_out=args.out,
                          prints=not args.no_prints, cache=args.build_cache)
        else:  # a fresh process: the build's memory must not count as a worker's of the run
            r = run_scale_in_child(k, args)
        if build is not None:
            r["build"] = build
        results.append(r)
        if args.json and len(scales) == 1:
            args.json.write_text(json.dumps(r, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if args.quiet:
            continue
        text = format_table(r)
        print(text + "\n")
        if not args.no_save:
            for p in save(r, text):
                print(f"wrote {p.relative_to(HERE.parent)}", file=sys.stderr)
    if not args.quiet and steps is None:
        pool = saved_results(prints=not args.no_prints) if not args.no_save else {}
        pool.update({r["scale"]: r for r in results})
        if len(pool) >= 2:
            g = growth(list(pool.values()))
            text = format_growth(g)
            print(text)
            if not args.no_save:
                RESULTS.mkdir(parents=True, exist_ok=True)
                f = RESULTS / f"{results[-1]['date']}-growth{'-noprints' if args.no_prints else ''}.md"
                f.write_text(text + "\n", encoding="utf-8")
                print(f"wrote {f.relative_to(HERE.parent)}", file=sys.stderr)
    return 0 if all(s["status"] == "ok" for r in results for s in r["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
