"""Writing one run's result tables to PostGIS and/or a File Geodatabase (the CLI's entry point)."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from kaizhou_gis.dbio.gdb import write_gdb
from kaizhou_gis.dbio.tables import result_tables, run_manifest
from kaizhou_gis.dbio.write import write_postgis
from kaizhou_gis.errors import DatabaseError


def write_run_tables(ctx, outcomes, out_dir: str | Path, *, out_db: str | None = None,
                     formats=(), started: _dt.datetime | None = None) -> dict:
    """After a run: its result tables into ``out_dir/results.gdb`` (``"gdb" in formats``) and
    into PostGIS (``out_db``). Returns ``{"n_tables", "gdb": path, "postgis": {...}}``."""
    started = started or _dt.datetime.now(_dt.UTC)
    tables = result_tables(ctx, outcomes)
    done: dict[str, Any] = {"n_tables": len(tables)}
    if "gdb" in formats:
        done["gdb"] = write_gdb(tables, out_dir)
    if out_db:
        manifest = run_manifest(ctx, outcomes, started=started, out_dir=out_dir)
        epsg = ctx.layers.crs.to_epsg() if ctx.layers.crs is not None else None
        try:
            done["postgis"] = write_postgis(out_db, tables, manifest, srid=int(epsg or 0))
        except DatabaseError as e:
            raise DatabaseError(f"{e} The file outputs in {Path(out_dir).resolve()} are "
                                f"complete.") from None
    return done
