"""The files a workbench run offers for download (township map, print sheet, field files, tables,
report, a ZIP of all outputs), written on demand under ``<cache>/runs/<key>/`` and nowhere else:
:meth:`RunFiles.cache_path` refuses any path that would leave the cache folder."""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from kaizhou_gis.errors import OptionError
from kaizhou_gis.pipeline import Context
from kaizhou_gis.web.runs import Run, _run_ctx
from kaizhou_gis.web.townships import TABLES, township_tables

if TYPE_CHECKING:
    from kaizhou_gis.plan import Plan

_CODE_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")


class RunFiles:
    """The download methods of :class:`kaizhou_gis.web.workbench.Workbench` (which sets the
    attributes below)."""

    cache_root: Path
    plan: Plan | None
    error: str | None
    data_status: dict | None
    townships: list[dict]

    def township(self, code: str) -> dict | None:
        return next((t for t in self.townships if t["code"] == str(code)), None)

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
                with ctx.layers.open_dem() as dem:
                    bg = maps.make_background(dem, maps._bounds_of(tw_work.loc[[code]].to_crs(4326), 0.06),
                                              width_px=int(cfg["hillshade_township_px"]),
                                              inside=tw_work.loc[[code]].geometry, basemap="offline",
                                              **maps.hillshade_sun(cfg))
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
                with ctx.layers.open_dem() as dem:
                    bg = maps.make_background(dem, maps._bounds_of(ctx.layers.boundary.to_crs(4326)),
                                              width_px=int(ctx.plan["maps.hillshade_district_px"]),
                                              inside=ctx.layers.boundary.geometry, basemap="offline",
                                              **maps.hillshade_sun(ctx.plan.section("maps")))
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
                tables = _township_tables(run, code)
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
                tables = _township_tables(run, code)
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



def _township_tables(run: Run, code: str) -> dict[str, pd.DataFrame | str]:
    ctx = _run_ctx(run)
    return township_tables(ctx.results, ctx.layers.villages, run.failures, code)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

