"""The result tables a run writes to a database or a File Geodatabase: names, columns, kinds, run manifest."""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from kaizhou_gis.dbio.connect import NATURAL_KEYS


@dataclass
class ResultTable:
    """One result table: its name in the database / .gdb, the frame and where it comes from."""

    name: str
    frame: pd.DataFrame
    product: str     # e.g. "relocation/settlements.gpkg" or "access/access.gpkg:villages"
    step: str
    title: str
    labels_zh: dict[str, str] = field(default_factory=dict)


def _table_name(rel: str, layer: str | None = None) -> str:
    p = Path(rel)
    folder = p.parent.name or "report"
    stem = p.stem
    if layer is None:
        base = f"{folder}_{stem}" if folder != stem else stem
    elif layer == stem or stem == folder:
        base = f"{folder}_{layer}"
    elif layer.startswith(folder + "_"):
        base = layer
    else:
        base = f"{folder}_{stem}_{layer}"
    return re.sub(r"[^a-z0-9_]", "_", base.lower())[:55]


def _scorecard_table(sc: dict) -> pd.DataFrame:
    """The access scorecard (district, before/after the works) as measure rows."""
    rows = []
    before, after = sc.get("before") or {}, sc.get("after") or {}
    for k, v in before.items():
        if k == "per_township":
            continue
        if isinstance(v, dict):
            for k2, v2 in v.items():
                rows.append({"measure": f"{k}.{k2}", "before": v2, "after": (after.get(k) or {}).get(k2)})
        else:
            rows.append({"measure": k, "before": v, "after": after.get(k)})
    df = pd.DataFrame(rows, columns=["measure", "before", "after"])

    def number(v):
        if isinstance(v, (bool, np.bool_)):
            return float(v)
        return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else None

    def text(v):
        return None if v is None or number(v) is not None else (
            json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v))

    for c in ("before", "after"):  # numbers as numbers; anything else (notes) as text
        df[f"{c}_text"] = df[c].map(text)
        df[c] = df[c].map(number).astype(float)
    df.attrs["labels_zh"] = {"measure": "指标", "before": "工程前", "after": "工程后",
                             "before_text": "工程前（文字）", "after_text": "工程后（文字）"}
    return df


def result_tables(ctx, outcomes) -> list[ResultTable]:
    """Every table the successful steps of a run wrote (CSV, GeoPackage layers, XLSX-only sheets,
    the access and plan scorecards), one per name; a GeoPackage layer replaces the CSV of the same
    table (same rows, plus the geometry)."""
    from kaizhou_gis.pipeline import STEPS

    titles = {s.name: s.title for s in STEPS}
    out: dict[str, ResultTable] = {}

    def add(name, frame, rel, step, replace=False):
        if not isinstance(frame, pd.DataFrame):
            return
        if name in out and not replace:
            return
        out[name] = ResultTable(name, frame, rel, step, titles.get(step, step),
                                dict(frame.attrs.get("labels_zh", {}) or {}))

    for oc in outcomes:
        if oc.status != "ok" or oc.name not in ctx.results:
            continue
        res = ctx.results[oc.name]
        for rel, obj in res.files.items():
            ext = Path(rel).suffix.lower()
            if ext == ".csv":
                add(_table_name(rel), obj, rel, oc.name)
            elif ext == ".gpkg":
                layers = obj if isinstance(obj, dict) else {Path(rel).stem: obj}
                for lname, gdf in layers.items():
                    name = _table_name(rel, lname if isinstance(obj, dict) else None)
                    add(name, gdf, f"{rel}:{lname}" if isinstance(obj, dict) else rel, oc.name,
                        replace=True)
        for rel, obj in res.files.items():
            if Path(rel).suffix.lower() == ".xlsx" and isinstance(obj, dict):
                for sheet, frame in obj.items():
                    add(_table_name(str(Path(rel).parent / sheet)), frame, f"{rel}:{sheet}", oc.name)
            elif rel == "access/scorecard.json" and isinstance(obj, dict):
                add("access_scorecard", _scorecard_table(obj), rel, oc.name)
            elif rel == "report.json" and isinstance(obj, dict):
                ind = pd.DataFrame(obj.get("indicators") or [])
                if len(ind):
                    ind.attrs["labels_zh"] = {"id": "序号", "name_zh": "指标", "name_en": "指标（英文）",
                                              "unit": "单位", "status": "状态"}
                    add("report_indicators", ind, f"{rel}:indicators", oc.name)
                tw = getattr(ctx.results[oc.name].data, "townships", None)
                if isinstance(tw, pd.DataFrame):
                    add("report_townships", tw, f"{rel}:townships", oc.name)
    return list(out.values())


def _plain_value(v):
    if v is None:
        return None
    if isinstance(v, (list, tuple, set)):
        return "; ".join(map(str, v))
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _column_kind(s: pd.Series) -> str:
    """bool, int, float, time or text, as the CSV would show it."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "int"
    if pd.api.types.is_float_dtype(s.dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "time"
    vals = [v for v in s.tolist() if _plain_value(v) is not None]
    if vals and all(isinstance(v, (bool, np.bool_)) for v in vals):
        return "bool"
    if vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in vals):
        return "int"
    if vals and all(isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, (bool, np.bool_)) for v in vals):
        return "float"
    return "text"


_PG_TYPES = {"bool": "boolean", "int": "bigint", "float": "double precision",
             "time": "timestamptz", "text": "text"}


def _frame_columns(rt: ResultTable):
    """(columns, geometry column name or None) of a result table."""
    df = rt.frame
    gname = df.geometry.name if isinstance(df, gpd.GeoDataFrame) and df.geometry.name in df.columns else None
    cols = [c for c in df.columns if c != gname and str(c) != "geometry"]
    return cols, gname


def _primary_key_for(df: pd.DataFrame, cols: list[str]) -> str:
    for k in NATURAL_KEYS:
        if k in cols:
            s = df[k]
            if len(s) and s.notna().all() and s.astype(str).is_unique:
                return k
    return "row_no"


def _geometry_type(gs: gpd.GeoSeries) -> str:
    types = set(gs.dropna().geom_type.unique()) - {None}
    return types.pop() if len(types) == 1 else "Geometry"


def _comment_column(col: str, labels: dict[str, str]) -> str:
    zh = labels.get(col)
    return f"{zh} / {col}" if zh else col


def status_text(status: dict) -> str:
    """The run's data status in one bilingual line (:mod:`kaizhou_gis.provenance` wording)."""
    if not status.get("synthetic"):
        return "无合成数据 / no synthesized input"
    return f"{status['label_zh']} / {status['label_en']}"


def run_manifest(ctx, outcomes, *, started: _dt.datetime, out_dir: str | Path | None = None,
                 command: str | None = None) -> dict:
    """What the ``runs`` table records about a run: the inputs record and data status of
    :mod:`kaizhou_gis.manifest` / :mod:`kaizhou_gis.provenance`, and this run's entries of
    ``<out>/manifest.json`` (files with their hashes)."""
    from kaizhou_gis import __version__, manifest

    inputs = ctx.inputs
    status = ctx.data_status
    steps = {o.name: o.status for o in outcomes}
    entries = {}
    if out_dir is not None:
        recorded = manifest.read_manifest(out_dir).get("steps", {})
        entries = {k: v for k, v in recorded.items() if k.split("@")[0] in steps or k in steps}
    params = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
              for k, v in sorted(ctx.options.items()) if k not in ("tianditu_key",)}
    return {
        "started_at": started, "tool_version": __version__,
        "command": command or manifest.command_line(),
        "layers": str(ctx.layers.source), "plan_name": inputs["plan"]["name"],
        "plan_file": inputs["plan"]["path"], "plan_sha256": inputs["plan"]["file_sha256"],
        "parameters": params | {"overrides": inputs["plan"]["overrides"]},
        "inputs": inputs, "steps": steps,
        "data_status": status_text(status), "synthesized_layers": list(status["synthetic_layers"]),
        "status": status, "step_entries": entries,
        "notes": [str(n) for n in (ctx.layers.notes or [])],
    }
