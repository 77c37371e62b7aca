"""Command-line interface (thin: parses options, calls the pipeline, prints, maps errors to exit codes).

Exit codes: 0 success; 1 a step of the run failed (the other steps' outputs are complete);
2 bad input (layers, plan file, options), with the message and no traceback.
"""
from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path

import click

from kaizhou_gis import __version__
from kaizhou_gis.errors import KaizhouGISError, OptionError
from kaizhou_gis.pipeline import OPTION_DEFAULTS  # the registry only (no step is imported)

log = logging.getLogger("kaizhou_gis")


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(logging.CRITICAL, level)),
                        format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn the library's errors into exit code 2 with the message, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KaizhouGISError as e:
            _fail(str(e))
        except KeyboardInterrupt:
            _fail("interrupted; files already written are complete, none is half-written.", 130)
    return wrapper


class _LayersSource(click.ParamType):
    """A path, or a postgresql:// URL kept as text (a Path would fold its '//')."""

    name = "PATH|URL"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, Path):
            return value
        if not str(value).startswith("postgres"):  # no URL: parse without importing dbio
            return Path(value)  # (and GeoPandas with it: a command that stops early stays quick)
        from kaizhou_gis.dbio import is_db_url

        return str(value) if is_db_url(value) else Path(value)


def layer_options(fn):
    """Options every command that reads layers shares."""
    opts = [
        click.option("--layers", "layers_path", type=_LayersSource(), default=None,
                     help="GeoPackage, File Geodatabase (.gdb), folder of per-layer files, TOML "
                          "mapping, or postgresql://USER@HOST:PORT/DB?schema=S&dem=DEM.tif "
                          "(password from PGPASSWORD or ~/.pgpass; default: the shipped Kaizhou "
                          "layers in layers/ of the repository, or in ./layers when the package "
                          "is installed elsewhere)."),
        click.option("--plan", "plan_path", type=click.Path(path_type=Path), default=None,
                     help="Plan file (TOML; default: the shipped Kaizhou plan)."),
        click.option("--crs", default=None,
                     help="CRS of input layers that declare none, e.g. EPSG:4490."),
        click.option("--encoding", default=None,
                     help="Text encoding of Shapefile .dbf files without a .cpg (e.g. GBK)."),
        click.option("--coords", type=click.Choice(["wgs84", "gcj02"]), default="wgs84",
                     show_default=True,
                     help="gcj02: input coordinates are GCJ-02 (Gaode/AMap); convert to WGS84 first."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def out_option(fn):
    fn = click.option("--out-db", "out_db", default=None, metavar="URL",
                      help="Also write the result tables into PostGIS: "
                           "postgresql://USER@HOST:PORT/DB?schema=S (one transaction per run; "
                           "password from PGPASSWORD or ~/.pgpass).")(fn)
    fn = click.option("--format", "formats", type=click.Choice(["gdb"]), multiple=True,
                      help="gdb: also write the result tables into <out>/results.gdb "
                           "(ArcGIS File Geodatabase).")(fn)
    fn = click.option("--header", type=click.Choice(["en", "zh", "both"]), default="en",
                      show_default=True,
                      help="Table headers: English snake_case, Chinese labels, or both.")(fn)
    return click.option("--out", "out_dir", type=click.Path(path_type=Path),
                        default=Path("outputs"), show_default=True,
                        help="Output folder.")(fn)


def _load(layers_path, plan_path, crs, encoding, coords, overrides=None):
    from kaizhou_gis.layers import load_layers
    from kaizhou_gis.plan import load_plan

    plan = load_plan(plan_path, overrides=overrides)
    layers = load_layers(layers_path, plan=plan, crs=crs, encoding=encoding, coords=coords)
    return layers, plan


def _echo_status(status: dict) -> None:
    """The data status (synthetic banner, estimated columns) on the console, in both languages."""
    from kaizhou_gis.provenance import banner_text, estimate_lines

    text = banner_text(status)
    if text:
        click.secho(text, fg="yellow", bold=True)
    for line in estimate_lines(status):
        click.secho(f"  estimated / 估算: {line}", fg="yellow")


def _run(steps, *, layers_path, plan_path, crs, encoding, coords, out_dir, header,
         options=None, overrides=None, title="kaizhou-gis run", show_notes=True, out_db=None,
         formats=(), loaded=None):
    from kaizhou_gis import outputs

    # --out is checked and locked before any work: a file, a read-only folder or another run
    # writing into it is exit 2 at once, not after the analysis
    with outputs.output_folder(out_dir):
        return _run_locked(steps, layers_path=layers_path, plan_path=plan_path, crs=crs,
                           encoding=encoding, coords=coords, out_dir=out_dir, header=header,
                           options=options, overrides=overrides, title=title,
                           show_notes=show_notes, out_db=out_db, formats=formats, loaded=loaded)


def _run_locked(steps, *, layers_path, plan_path, crs, encoding, coords, out_dir, header,
                options=None, overrides=None, title="kaizhou-gis run", show_notes=True,
                out_db=None, formats=(), loaded=None):
    """``loaded``: (layers, plan) already read and checked by the caller (``run`` checks them
    first to print the layer table), so they are not read a second time."""
    import datetime as dt

    from kaizhou_gis.pipeline import Context, resolve_township, run_steps

    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    if out_db:  # before any work: the server answers, PostGIS, schema, rights
        from kaizhou_gis.dbio import check_writable
        click.echo(f"  results database: {check_writable(out_db).describe()} (reachable, writable)")
    if "gdb" in formats:
        from kaizhou_gis.dbio import gdb_writable
        ok, why = gdb_writable()
        if not ok:
            raise OptionError(f"--format gdb: {why}.")
    click.echo(f"{title}: loading layers and plan ...")
    layers, plan = loaded or _load(layers_path, plan_path, crs, encoding, coords, overrides)
    opts = dict(options or {})
    opts["township"] = resolve_township(layers, opts.get("township"))
    opts["header"] = header
    ctx = Context(layers=layers, plan=plan, options=opts, overrides=dict(overrides or {}),
                  cache_dir=Path(out_dir) / ".cache")
    click.echo(f"  layers: {layers.source}  plan: {plan.path}")
    if show_notes and layers.notes:  # `run` printed them with the layer table already
        click.echo(f"  notes on the layers ({len(layers.notes)}):")
        for note in layers.notes:
            click.secho(f"    - {note}", fg="yellow" if note.startswith("warning") else None)
    _echo_status(ctx.data_status)
    n = len(steps)
    counter = {"i": 0}

    def on_start(name, step_title):
        counter["i"] += 1
        click.echo(f"[{counter['i']}/{n}] {step_title} ...", nl=False)

    def on_done(oc):
        if oc.status == "ok":
            click.secho(f" done in {oc.seconds:.1f} s ({len(oc.paths)} files)", fg="green")
            for line in oc.summary.get("headline", []):
                click.echo(f"      {line}")
        elif oc.status == "skipped":
            click.secho(f" skipped: {oc.message}", fg="yellow")
        else:
            click.secho(" FAILED", fg="red")
            for line in oc.message.splitlines():
                click.secho(f"      {line}", fg="red", err=True)

    outcomes = run_steps(ctx, steps, out_dir, on_start=on_start, on_done=on_done,
                         command=_command_line())
    if out_db or "gdb" in formats:
        _write_tables(ctx, outcomes, out_dir, out_db=out_db, formats=formats, started=started)
    failed = [o for o in outcomes if o.status == "failed"]
    click.echo(f"Finished in {time.perf_counter() - t0:.1f} s. Outputs in {Path(out_dir).resolve()}:")
    for o in outcomes:
        for p in o.paths[:6]:
            click.echo(f"  {p}")
        if len(o.paths) > 6:
            click.echo(f"  ... and {len(o.paths) - 6} more files of step '{o.name}'")
    _echo_status(ctx.data_status)
    if failed:
        _fail(f"{len(failed)} step(s) failed: {', '.join(o.name for o in failed)}; the outputs of "
              f"the other steps are complete.", code=1)
    return outcomes


def _write_tables(ctx, outcomes, out_dir, *, out_db, formats, started) -> None:
    """The result tables into PostGIS (--out-db) and/or results.gdb (--format gdb)."""
    from kaizhou_gis import dbio

    done = dbio.write_run_tables(ctx, outcomes, out_dir, out_db=out_db, formats=formats,
                                 started=started)
    if "gdb" in done:
        click.echo(f"File Geodatabase: {done['gdb']} ({done['n_tables']} tables)")
    if "postgis" in done:
        res = done["postgis"]
        click.echo(f"PostGIS: run {res['run_id']} written to {res['target']}: {len(res['tables'])} "
                   f"tables, {sum(res['rows'].values()):,} rows, one transaction")


class _Main(click.Group):
    """The command group; keeps the arguments as typed for the manifest's command line."""

    def parse_args(self, ctx, args):
        ctx.meta["kaizhou_argv"] = list(args)
        return super().parse_args(ctx, args)


def _command_line() -> str:
    from kaizhou_gis.manifest import command_line

    c = click.get_current_context(silent=True)
    argv = c.find_root().meta.get("kaizhou_argv") if c is not None else None
    return command_line(argv)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kaizhou-gis")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
def main(verbose: int, quiet: int) -> None:
    """kaizhou-gis: relocation candidates, road access, industry projects and offline maps for a
    district poverty-alleviation plan (default: Kaizhou District, Chongqing)."""
    _setup_logging(verbose, quiet)


@main.command()
@layer_options
@handle_errors
def validate(layers_path, plan_path, crs, encoding, coords):
    """Check the layers and the plan file; print a per-layer summary (exit 2 on problems)."""
    from kaizhou_gis.layers import check_layers
    from kaizhou_gis.plan import load_plan

    plan = load_plan(plan_path)
    report = check_layers(layers_path, plan=plan, crs=crs, encoding=encoding, coords=coords)
    click.echo(report.format())
    if not report.ok:
        _fail(report.problem_text())
    click.secho(f"OK: layers and plan '{plan.name}' ({plan.path}) are valid.", fg="green")


_no_prints = click.option(
    "--no-prints", "no_prints", is_flag=True, default=False,
    help="Leave out the A3 print sheets of the townships (maps/townships/*.pdf, *.png); the HTML "
         "maps and the district sheet are made as usual. For very large districts.")

_field_coords = click.option(
    "--field-coords", type=click.Choice(["wgs84", "gcj02"]), default=OPTION_DEFAULTS["field_coords"],
    show_default=True,
    help="Coordinates of the field files (field/*.kmz, *.gpx): wgs84 (GPS, Google Earth, Ovi) or "
         "gcj02 (apps on Gaode/AMap, Tencent and other Chinese base maps).")


@main.command()
@layer_options
@out_option
@_field_coords
@_no_prints
@handle_errors
def run(layers_path, plan_path, crs, encoding, coords, out_dir, header, formats, out_db,
        field_coords, no_prints):
    """The main job: validate, then every analysis, the maps and the report."""
    from kaizhou_gis import outputs
    from kaizhou_gis.layers import check_layers
    from kaizhou_gis.pipeline import installed_steps
    from kaizhou_gis.plan import load_plan

    with outputs.output_folder(out_dir):
        plan = load_plan(plan_path)
        report = check_layers(layers_path, plan=plan, crs=crs, encoding=encoding, coords=coords)
        click.echo(report.format())
        if not report.ok:
            _fail(report.problem_text())
        _run(installed_steps(), layers_path=layers_path, plan_path=plan_path, crs=crs,
             encoding=encoding, coords=coords, out_dir=out_dir, header=header,
             options={"field_coords": field_coords, **({"prints": False} if no_prints else {})},
             show_notes=False, out_db=out_db,
             formats=formats, loaded=(report.layers, plan))


def _step_command(name: str, help_text: str, extra=()):
    def command(layers_path, plan_path, crs, encoding, coords, out_dir, header, formats, out_db, **kw):
        if kw.get("basemap") == "tianditu" and not kw.get("tianditu_key"):
            raise OptionError("--basemap tianditu needs --tianditu-key K (a Tianditu API key from "
                              "console.tianditu.gov.cn); or use --basemap offline, osm or gaode.")
        overrides = {}
        if kw.get("threshold_m") is not None:
            from kaizhou_gis.layers.checks import option_number
            option_number("--threshold-m", kw["threshold_m"])
            overrides["relocation.threshold_m"] = float(kw.pop("threshold_m"))
        kw.pop("threshold_m", None)
        if kw.pop("no_prints", False):
            kw["prints"] = False
        _run([name], layers_path=layers_path, plan_path=plan_path, crs=crs, encoding=encoding,
             coords=coords, out_dir=out_dir, header=header, options=kw, overrides=overrides,
             title=f"kaizhou-gis {name}", out_db=out_db, formats=formats)

    command.__name__ = name
    command.__doc__ = help_text
    fn = handle_errors(command)
    for o in reversed(extra):
        fn = o(fn)
    fn = out_option(fn)
    fn = layer_options(fn)
    return main.command(name=name)(fn)


_township = click.option("--township", default=None,
                         help="Limit to one township: name (大进镇) or 9-digit code.")

_step_command("relocation", "Relocation candidates above the plan's threshold, sites, assignment, schedule.",
              [click.option("--threshold-m", type=float, default=None,
                            help="Elevation threshold in metres (default: the plan's, 800)."),
               _township, _field_coords])
_step_command("access", "Road access (通达/通畅), scorecard against the plan, works that close the gaps.",
              [_township])
_step_command("industry", "The plan's industry projects placed on their host villages.",
              [_township,
               click.option("--split", type=click.Choice(["none", "even"]), default=None,
                            help="Per-village scale where the plan gives only a total: none (keep the "
                                 "total on the project) or even (labelled as assumed). Default: the plan file's.")])
_step_command("maps", "Offline folium HTML maps for the district and each township, A3 print sheets (PDF, PNG).",
              [_township,
               click.option("--basemap", type=click.Choice(["offline", "osm", "tianditu", "gaode"]),
                            default=OPTION_DEFAULTS["basemap"], show_default=True,
                            help="Basemap shown first; offline = hillshade from the DEM."),
               click.option("--tianditu-key", default=None, help="Tianditu API key (tianditu basemap)."),
               _no_prints])
_step_command("report", "The plan scorecard: report.html, report.md, report.json.", [_township])


@main.command()
@layer_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 127.0.0.1 = this computer only, 0.0.0.0 = the network too.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Folder for what-if results and downloads (default: $KAIZHOU_GIS_CACHE, else "
                   "~/.cache/kaizhou-gis/web).")
@handle_errors
def serve(layers_path, plan_path, crs, encoding, coords, host, port, cache_dir):
    """A local web workbench: maps, tables, what-if, downloads (Chinese and English)."""
    from kaizhou_gis.web.app import serve as serve_app
    from kaizhou_gis.web.workbench import Workbench

    wb = Workbench(layers_path, plan_path, crs=crs, encoding=encoding, coords=coords,
                   cache_dir=cache_dir)
    if wb.error:
        click.secho(f"Error: {wb.error}", fg="red", err=True)
        click.echo("The workbench shows this message on every page; fix the input and press "
                   "Reload data (重新读取数据).")
    serve_app(wb, host, port, echo=click.echo)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("outputs/batch"),
              show_default=True, help="Output folder: DIR/<code>/ per district and the roll-up.")
@click.option("--workers", type=int, default=None,
              help="Worker processes of the local dask cluster (default: one per CPU core).")
@click.option("--memory-limit", default=None,
              help="Memory limit per local worker, e.g. 2GiB (dask's memory_limit; default: "
                   "system memory / workers).")
@click.option("--scheduler", default=None,
              help="Address of an existing dask scheduler (tcp://HOST:8786) instead of a local "
                   "cluster; start it with `dask scheduler` and `dask worker tcp://HOST:8786`.")
@click.option("--retries", type=int, default=1, show_default=True,
              help="Times dask reruns a district's task that raised outside the pipeline.")
@click.option("--force", is_flag=True, help="Rerun every district, also unchanged ones.")
@handle_errors
def batch(manifest, out_dir, workers, memory_limit, scheduler, retries, force):
    """Run many districts (a province) on dask.distributed; writes DIR/<code>/ and a roll-up."""
    from kaizhou_gis.batch import run_batch

    if workers is not None and workers < 1:
        raise OptionError(f"--workers {workers}: give 1 or more.")
    if scheduler and (workers is not None or memory_limit):
        raise OptionError("--scheduler uses the workers of that cluster; drop --workers and "
                          "--memory-limit (set them on `dask worker --nworkers N --memory-limit M`).")
    res = run_batch(manifest, out_dir, workers=workers, memory_limit=memory_limit,
                    scheduler=scheduler, retries=retries, force=force, echo=click.echo)
    click.echo(f"Finished in {res.seconds:.1f} s: {len(res.ran)} run, {len(res.skipped)} unchanged "
               f"(skipped), {len(res.failed)} failed. Roll-up:")
    for p in res.paths:
        click.echo(f"  {p}")
    if res.failed:
        lines = [f"  {r['code']} {r['name']}: {str(r['error']).splitlines()[0] if r['error'] else ''}"
                 for r in res.rows if r["status"] != "ok"]
        _fail(f"{len(res.failed)} of {len(res.rows)} district(s) failed (the others' outputs are "
              f"complete; see rollup.csv):\n" + "\n".join(lines), code=1)


@main.command("demo-layers")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("layers"),
              show_default=True, help="Folder for kaizhou.gpkg and dem.tif.")
@click.option("--seed", type=int, default=None, help="Random seed (default: the shipped layers' seed).")
@click.option("--scale", type=int, default=1, show_default=True,
              help="Build a synthetic district K times larger (benchmarks; no real parts).")
@click.option("--districts", type=int, default=None,
              help="Instead: N small synthetic test districts in DIR/<code>/ (layers, plan.toml, "
                   "README; codes 900001...; seeds SEED, SEED+1, ...) and DIR/batch.toml.")
@click.option("--townships", type=int, default=3, show_default=True,
              help="With --districts: townships per district.")
@click.option("--villages", type=int, default=12, show_default=True,
              help="With --districts: villages per district.")
@click.option("--area-km2", type=float, default=150.0, show_default=True,
              help="With --districts: area of each district.")
@handle_errors
def demo_layers(out_dir, seed, scale, districts, townships, villages, area_km2):
    """Rebuild the shipped Kaizhou default layers (real sources + labelled synthesized parts),
    or make synthetic test districts (--districts N)."""
    from kaizhou_gis import outputs
    from kaizhou_gis.demo import DEFAULT_SEED, build_demo_layers

    outputs.check_out_dir(out_dir)  # a file or a read-only folder: exit 2 before building
    t0 = time.perf_counter()
    if districts is not None:
        from kaizhou_gis.demo.synthetic import write_synthetic_districts
        if districts < 1:
            raise OptionError(f"--districts {districts}: give 1 or more.")
        if scale != 1:
            raise OptionError("--districts and --scale do not go together; use one.")
        paths = write_synthetic_districts(out_dir, districts,
                                          seed=DEFAULT_SEED if seed is None else seed,
                                          townships=townships, villages=villages,
                                          area_km2=area_km2)
    else:
        paths = build_demo_layers(out_dir, seed=seed, scale=scale)
    click.echo(f"Built in {time.perf_counter() - t0:.1f} s:")
    for p in paths:
        click.echo(f"  {p}")


@main.command("osm-roads")
@click.option("--osm", "osm_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True, help="OpenStreetMap extract (.osm.pbf, .osm), e.g. a province or country.")
@click.option("--boundary", "boundary_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              required=True, help="District boundary (GeoJSON, GeoPackage, Shapefile).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="GeoPackage to write (layer 'roads'), e.g. mylayers/roads.gpkg.")
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), default=None,
              help="Plan file (TOML; default: the shipped Kaizhou plan): work CRS, clip margin, "
                   "classes that carry no vehicle.")
@click.option("--crs", default=None, help="CRS of a boundary file that declares none, e.g. EPSG:4490.")
@handle_errors
def osm_roads(osm_path, boundary_path, out_path, plan_path, crs):
    """Build the roads layer of a district from a large OSM extract (clipped to the boundary
    plus layers.osm_clip_margin_m; footways, steps, ... left out; raw highway/surface/tracktype
    kept so `validate` classifies and counts them)."""
    from kaizhou_gis.layers import osm_roads_layer
    from kaizhou_gis.outputs import write_gpkg
    from kaizhou_gis.plan import load_plan

    if out_path.suffix.lower() != ".gpkg":
        raise OptionError(f"--out {out_path}: give a GeoPackage path ending in .gpkg.")
    t0 = time.perf_counter()
    roads, notes = osm_roads_layer(osm_path, boundary_path, plan=load_plan(plan_path), crs=crs)
    write_gpkg({"roads": roads}, out_path)
    for n in notes:
        click.echo(f"  - {n}")
    click.echo(f"{len(roads)} road(s), {roads.to_crs(roads.estimate_utm_crs()).length.sum() / 1000:.1f} km "
               f"-> {out_path} (layer 'roads') in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
