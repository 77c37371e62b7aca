"""Writing result tables into an ArcGIS File Geodatabase (GDAL's OpenFileGDB driver)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.dbio.tables import ResultTable, _column_kind, _frame_columns, _geometry_type, _plain_value
from kaizhou_gis.errors import OptionError


def gdb_writable() -> tuple[bool, str]:
    """Whether the GDAL in use can write a File Geodatabase (OpenFileGDB, GDAL >= 3.6)."""
    import pyogrio

    mode = pyogrio.list_drivers().get("OpenFileGDB", "")
    version = pyogrio.__gdal_version_string__
    ok = "w" in mode
    return ok, (f"GDAL {version}: OpenFileGDB " + ("can write" if ok else
                "cannot write (needs GDAL >= 3.6; upgrade pyogrio)"))


def _gdb_field_name(c: str) -> str:
    n = re.sub(r"\W", "_", str(c))
    if not re.match(r"^[A-Za-z]", n):
        n = "f_" + n
    return n[:64]


def write_gdb(tables: list[ResultTable], out_dir: str | Path) -> Path:
    """Write the result tables into ``out_dir/results.gdb``: built beside it in a hidden folder
    and moved in, so an interrupted run leaves the previous results.gdb whole."""
    import pyogrio

    ok, why = gdb_writable()
    if not ok:
        raise OptionError(f"--format gdb: {why}; write GeoPackage instead (the default outputs).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".results.*.tmp.gdb"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    target = out_dir / "results.gdb"
    tmp = out_dir / f".results.{secrets.token_hex(4)}.tmp.gdb"  # OpenFileGDB wants the .gdb
    # 64-bit integers (only where a value needs them) need ArcGIS Pro 3.2 or later
    big: dict[str, Any] = {"layer_options": {"TARGET_ARCGIS_VERSION": "ARCGIS_PRO_3_2_OR_LATER"}}
    try:
        for rt in tables:
            cols, gname = _frame_columns(rt)
            df = rt.frame
            plain = pd.DataFrame({"row_no": np.arange(1, len(df) + 1, dtype="int32")})
            for c in cols:
                kind = _column_kind(df[c])
                vals = [_plain_value(v) for v in df[c].tolist()]
                if kind == "bool":
                    plain[_gdb_field_name(c)] = pd.array([None if v is None else bool(v) for v in vals],
                                                         dtype="boolean")
                elif kind == "int":  # 32-bit when the values fit: every ArcGIS reads those
                    ints = pd.array([None if v is None else int(v) for v in vals], dtype="Int64")
                    fits = ints.dropna().size == 0 or (abs(ints.dropna()).max() < 2**31)
                    plain[_gdb_field_name(c)] = ints.astype("Int32") if fits else ints
                elif kind == "float":
                    plain[_gdb_field_name(c)] = pd.to_numeric(pd.Series(vals, dtype=object),
                                                              errors="coerce").astype(float)
                else:
                    plain[_gdb_field_name(c)] = pd.Series(
                        [None if v is None else str(v) for v in vals], dtype=object)
            if gname:
                frame = gpd.GeoDataFrame(plain, geometry=gpd.GeoSeries(df.geometry.values, crs=df.crs))
                gtype = _geometry_type(frame.geometry)
                kw: dict[str, Any] = {"geometry_type": gtype} if gtype != "Geometry" else {"geometry_type": "Unknown"}
                if any(str(frame[c].dtype) == "Int64" for c in plain.columns):
                    kw.update(big)
                pyogrio.write_dataframe(frame, tmp, layer=rt.name, driver="OpenFileGDB",
                                        promote_to_multi=False, **kw)
            else:
                kw = big if any(str(plain[c].dtype) == "Int64" for c in plain.columns) else {}
                pyogrio.write_dataframe(plain, tmp, layer=rt.name, driver="OpenFileGDB", **kw)
        old: Path | None = None
        if target.exists():
            old = out_dir / f".results.{secrets.token_hex(4)}.tmp.gdb"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
