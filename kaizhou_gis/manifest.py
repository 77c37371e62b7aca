"""Fingerprints of a run's inputs and the manifest of an output folder (``<out>/manifest.json``).

One place answers "what was this file made from, and is it still current?":

* :func:`layer_fingerprints` — one SHA-256 per input layer, computed from the *loaded* content
  (rows hashed one by one and sorted, so the same layer with its rows in another order, or its
  integer counts stored as floats, has the same fingerprint; the DEM by its file bytes).
* :func:`plan_fingerprint` — SHA-256 of the plan's effective values (the file after overrides such
  as ``--threshold-m``); :func:`file_sha256` gives the plan file's own hash for the record.
* :func:`inputs_record` — everything a step's output depends on (layers, plan, overrides,
  step options) with one combined ``fingerprint``.
* :func:`read_manifest`, :func:`write_manifest`, :func:`record_step` — the manifest itself:
  per step the command line, time, scope (district or one township), inputs and the files written
  with their hashes; plus a short history of commands.
* :func:`store_cached`, :func:`load_cached` — the district results of the costly steps kept in
  ``<out>/.cache`` under a key of the inputs fingerprint and the code (:func:`code_fingerprint`),
  so a later ``--township`` command or the report reuses them instead of recomputing.
* :func:`is_step_current` — True when a step's recorded outputs were made from the given inputs
  (same fingerprint, same scope) and are still on disk unchanged.

The manifest is plain JSON, written atomically; nothing here needs the analysis modules.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MANIFEST_NAME = "manifest.json"
FORMAT = "kaizhou-gis manifest 1"
#: How many past commands the manifest's ``history`` keeps.
HISTORY = 50
#: Options that never enter a fingerprint or the manifest (secrets, display only).
_PRIVATE_OPTIONS = {"tianditu_key"}
_VECTOR_LAYERS = ("boundary", "townships", "township_seats", "villages", "settlements", "roads", "sites")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same text."""
    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, (np.bool_,)):
            return bool(o)
        if isinstance(o, (set, tuple)):
            return sorted(o) if isinstance(o, set) else list(o)
        if isinstance(o, (Path, _dt.date, _dt.datetime)):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=default)


def _canonical_value(v: Any) -> Any:
    """A cell as hashed: whole floats as ints (a count stored as 12.0 is 12), NaN/None as None."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return None
        if float(v).is_integer():
            return int(v)
        return float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def frame_fingerprint(df: pd.DataFrame | None) -> str | None:
    """SHA-256 of a (Geo)DataFrame's content, independent of row order, column order and of
    int-vs-float storage of whole numbers. Geometry is hashed as WKB (after normalising)."""
    if df is None:
        return None
    cols = sorted(str(c) for c in df.columns)
    geom_name = getattr(df, "_geometry_column_name", None) if hasattr(df, "geometry") else None
    parts: list[list[Any]] = []
    for c in cols:
        s = df[c]
        if c == geom_name:
            import shapely
            geoms = shapely.normalize(np.asarray(s.array, dtype=object))
            parts.append([None if g is None else shapely.to_wkb(g, hex=True, output_dimension=2)
                          for g in geoms])
        else:
            parts.append([_canonical_value(v) for v in s.tolist()])
    rows = sorted(_sha(canonical_json(list(r)).encode()) for r in zip(*parts)) if parts else []
    crs = getattr(df, "crs", None)
    head = canonical_json({"columns": cols, "rows": len(df),
                           "crs": crs.to_string() if crs is not None else None})
    return _sha((head + "\n" + "\n".join(rows)).encode())


def layer_fingerprints(layers) -> dict[str, str | None]:
    """``{layer name: sha256}`` for every loaded layer (vector content; the DEM's file bytes)."""
    out: dict[str, str | None] = {}
    for name in _VECTOR_LAYERS:
        df = getattr(layers, name, None)
        if df is not None:
            out[name] = frame_fingerprint(df)
    dem = getattr(layers, "dem_path", None)
    if dem:
        extra = getattr(layers, "dem_crs", None)
        tiles = getattr(layers, "dem_tiles", ()) or ()  # DEM tiles mosaicked on the fly
        try:
            if getattr(layers, "dem_window", None) is not None:
                base = dem_window_sha256(layers)
            else:
                base = (_sha("|".join(file_sha256(t) for t in tiles).encode()) if tiles
                        else file_sha256(dem))
        except OSError:  # no readable DEM: the steps that need it say so; fingerprint the name
            base = _sha(f"unreadable:{dem}".encode())
        out["dem"] = base if extra is None else _sha(f"{base}|{extra}".encode())
    return out


def dem_window_sha256(layers, rows_per_block: int = 1024) -> str:
    """SHA-256 of the district's window of the DEM (:attr:`Layers.dem_window`): its grid, CRS,
    data type, nodata and cells, read block by block. A district whose DEM is a window of a
    province-sized VRT or GeoTIFF is fingerprinted by what it reads, not by the whole file (a
    VRT's own bytes would miss a changed tile; a large GeoTIFF's would cost reading all of it)."""
    import rasterio
    from rasterio.windows import Window

    h = hashlib.sha256()
    try:
        with layers.open_dem() as ds:
            h.update(canonical_json({"transform": list(ds.transform)[:6],
                                     "crs": ds.crs.to_wkt() if ds.crs is not None else None,
                                     "dtype": ds.dtypes[0],
                                     "nodata": None if ds.nodata is None else repr(ds.nodata),
                                     "size": [ds.width, ds.height]}).encode())
            for r0 in range(0, ds.height, rows_per_block):
                n = min(rows_per_block, ds.height - r0)
                h.update(ds.read(1, window=Window(0, r0, ds.width, n)).tobytes())
    except rasterio.errors.RasterioError as e:
        raise OSError(str(e)) from None
    return h.hexdigest()


def plan_fingerprint(plan) -> str:
    """SHA-256 of the plan's effective values (file content after overrides)."""
    return _sha(canonical_json(plan.data).encode())


def public_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Step options as recorded: without the township (that is the scope) and without secrets."""
    return {k: v for k, v in sorted((options or {}).items())
            if k not in _PRIVATE_OPTIONS and k != "township" and v is not None}


def inputs_record(layers, plan, *, overrides: dict[str, Any] | None = None,
                  options: dict[str, Any] | None = None,
                  layer_fps: dict[str, str | None] | None = None) -> dict[str, Any]:
    """What a step's figures depend on, with one combined ``fingerprint``.

    ``options`` are the options that change figures (e.g. industry's ``split``); options that
    only change how files look (``header``, ``basemap``) belong in :func:`step_entry`'s
    ``output_options``.

    ``layer_fps`` may pass :func:`layer_fingerprints` already computed (they cost a hash of every
    row). The scope (``--township``) is not part of the inputs: a township run is a view of the
    district run with the same fingerprint.
    """
    lf = layer_fps if layer_fps is not None else layer_fingerprints(layers)
    plan_path = getattr(plan, "path", None)
    try:
        plan_file = file_sha256(plan_path) if plan_path else None
    except OSError:
        plan_file = None
    rec = {
        "layers": dict(sorted(lf.items())),
        "layers_source": str(getattr(layers, "source", "") or ""),
        "plan": {"path": str(plan_path) if plan_path else None, "file_sha256": plan_file,
                 "name": str(getattr(plan, "name", "") or ""),
                 "overrides": dict(sorted((overrides or {}).items())),
                 "fingerprint": plan_fingerprint(plan)},
        "options": public_options(options),
    }
    rec["fingerprint"] = combined_fingerprint(rec)
    return rec


def combined_fingerprint(rec: dict[str, Any]) -> str:
    """The one fingerprint of an inputs record (layers + effective plan + options)."""
    return _sha(canonical_json({"layers": rec["layers"], "plan": rec["plan"]["fingerprint"],
                                "options": rec.get("options", {})}).encode())


def command_line(argv: Iterable[str] | None = None) -> str:
    """The command as typed (``kaizhou-gis relocation --threshold-m 1000``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    special = set(" \t\n'\"\\$`!*?[]{}()<>|&;#~")
    quoted = [shlex.quote(a) if (not a or special & set(a)) else a for a in map(str, args)]
    return "kaizhou-gis " + " ".join(quoted) if args else "kaizhou-gis"


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def manifest_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / MANIFEST_NAME


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of ``out_dir``; an empty one when there is none or it cannot be read."""
    p = manifest_path(out_dir)
    empty: dict[str, Any] = {"format": FORMAT, "updated": None, "steps": {}, "history": []}
    if not p.is_file():
        return empty
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("steps"), dict):
        return empty
    m.setdefault("history", [])
    return m


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically."""
    from kaizhou_gis import outputs

    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["updated"] = now()
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False, default=str) + "\n"
    return outputs.write_text(text, manifest_path(out_dir))


def step_entry(step: str, *, inputs: dict[str, Any], scope: dict[str, Any] | None,
               files: Iterable[str | Path], out_dir: str | Path, command: str | None = None,
               time: str | None = None, reused: dict[str, str] | None = None,
               output_options: dict[str, Any] | None = None,
               data_status: dict[str, Any] | None = None) -> dict[str, Any]:
    """One step's manifest entry. ``files`` are paths (absolute or relative to ``out_dir``);
    each is recorded relative to ``out_dir`` with its SHA-256. ``reused`` names the district
    results taken from a cache (``{step: fingerprint}``) instead of computed. ``output_options``
    are options that change how files are written but not the figures (``--header``, ``--basemap``)."""
    out = Path(out_dir)
    recorded = {}
    for f in files:
        p = Path(f)
        full = p if p.is_absolute() else out / p
        try:
            rel = full.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:
            rel = str(p)
        recorded[rel] = file_sha256(full) if full.is_file() else None
    return {"step": step, "command": command or command_line(), "time": time or now(),
            "scope": scope or {"township_code": None, "township_name": None},
            "inputs": inputs, "fingerprint": inputs.get("fingerprint"),
            "output_options": public_options(output_options), "files": recorded,
            "reused": reused or {},
            **({"data_status": data_status} if data_status is not None else {})}


def record_step(out_dir: str | Path, entry: dict[str, Any], manifest: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Put a step's entry (from :func:`step_entry`) into the manifest and write it; returns it."""
    m = manifest if manifest is not None else read_manifest(out_dir)
    m.setdefault("steps", {})[entry["step"]] = entry
    write_manifest(out_dir, m)
    return m


def record_command(out_dir: str | Path, *, command: str, steps: dict[str, str],
                   scope: dict[str, Any] | None, fingerprint: str | None,
                   manifest: dict[str, Any] | None = None,
                   data_status: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append one command (``steps``: step → status) to the manifest's history and write it.

    ``data_status`` (:func:`kaizhou_gis.provenance.data_status` of the command's input) becomes
    the manifest's top-level ``data_status``, as in every JSON output."""
    m = manifest if manifest is not None else read_manifest(out_dir)
    if data_status is not None:
        m = {"data_status": data_status, **{k: v for k, v in m.items() if k != "data_status"}}
    hist = m.setdefault("history", [])
    hist.append({"command": command, "time": now(), "steps": steps, "scope": scope,
                 "fingerprint": fingerprint})
    del hist[:-HISTORY]
    write_manifest(out_dir, m)
    return m


def is_step_current(out_dir: str | Path, step: str, fingerprint: str, *,
                    township_code: str | None = None, manifest: dict[str, Any] | None = None,
                    check_files: bool = True, output_options: dict[str, Any] | None = None) -> bool:
    """True when ``out_dir`` holds ``step``'s outputs made from inputs with ``fingerprint`` for
    the given scope (None = the district), with the same ``output_options`` when given, and
    (``check_files``) every recorded file is still there with the recorded hash."""
    m = manifest if manifest is not None else read_manifest(out_dir)
    e = m.get("steps", {}).get(step)
    if not e or e.get("fingerprint") != fingerprint:
        return False
    if output_options is not None and e.get("output_options", {}) != public_options(output_options):
        return False
    if (e.get("scope") or {}).get("township_code") != township_code:
        return False
    if check_files:
        for rel, sha in (e.get("files") or {}).items():
            p = Path(out_dir) / rel
            if sha is None or not p.is_file() or file_sha256(p) != sha:
                return False
    return True


def stale_steps(out_dir: str | Path, fingerprint: str, *, township_code: str | None = None,
                manifest: dict[str, Any] | None = None) -> dict[str, str]:
    """``{step: why}`` for every step recorded in ``out_dir`` whose outputs do not match
    ``fingerprint``/scope (other inputs or parameters, another scope, or files changed since)."""
    m = manifest if manifest is not None else read_manifest(out_dir)
    out = {}
    for step, e in m.get("steps", {}).items():
        if e.get("fingerprint") != fingerprint:
            out[step] = describe_difference(e.get("inputs") or {}, None)
        elif (e.get("scope") or {}).get("township_code") != township_code:
            sc = (e.get("scope") or {})
            out[step] = ("scope: township " + str(sc.get("township_name") or sc.get("township_code"))
                         if sc.get("township_code") else "scope: district")
        elif not is_step_current(out_dir, step, fingerprint, township_code=township_code, manifest=m):
            out[step] = "files changed or missing since they were written"
    return out


def describe_difference(a: dict[str, Any], b: dict[str, Any] | None) -> str:
    """Short text of how inputs record ``a`` differs from ``b`` (or just ``a``'s overrides)."""
    if b is None:
        ov = (a.get("plan") or {}).get("overrides") or {}
        txt = ", ".join(f"{k} = {v}" for k, v in ov.items())
        return "made from other inputs" + (f" (overrides: {txt})" if txt else " (no overrides)")
    diffs = []
    la, lb = a.get("layers", {}), b.get("layers", {})
    changed = sorted(k for k in set(la) | set(lb) if la.get(k) != lb.get(k))
    if changed:
        diffs.append("layers " + ", ".join(changed))
    pa, pb = a.get("plan", {}), b.get("plan", {})
    if pa.get("overrides") != pb.get("overrides"):
        diffs.append(f"overrides {pa.get('overrides') or {}} vs {pb.get('overrides') or {}}")
    elif pa.get("fingerprint") != pb.get("fingerprint"):
        diffs.append("plan values")
    if a.get("options") != b.get("options"):
        diffs.append(f"options {a.get('options')} vs {b.get('options')}")
    return "; ".join(diffs) or "same inputs"


_CODE_FP: str | None = None


def code_fingerprint() -> str:
    """SHA-256 of the package's own files (code, shipped plan and data): results cached by one
    version are never reused by another."""
    global _CODE_FP
    if _CODE_FP is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".toml", ".csv", ".json") and "__pycache__" not in p.parts:
                h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
        _CODE_FP = h.hexdigest()
    return _CODE_FP


def cache_key(inputs: dict[str, Any]) -> str:
    """Key of a cached district result: the inputs fingerprint and the code fingerprint."""
    return _sha(f"{inputs['fingerprint']}|{code_fingerprint()}".encode())


_CACHE_INDEX = ".index.json"
_CACHE_LOCK = ".index.lock"
#: How many cached results of one step (different inputs) the cache keeps.
CACHE_KEEP = 3


def store_cached(cache_dir: str | Path, step: str, key: str, result: Any) -> Path | None:
    """Keep ``result`` (a step's district result) in ``cache_dir`` under ``key`` (the last
    :data:`CACHE_KEEP` keys per step are kept); the file's hash goes into the cache index, and
    :func:`load_cached` loads only a file with that hash."""
    import pickle

    from kaizhou_gis import outputs

    cache_dir = Path(cache_dir)
    try:
        data = pickle.dumps({"key": key, "step": step, "result": result},
                            protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # an unpicklable result is simply not cached
        import logging
        logging.getLogger(__name__).debug("not caching %s: %s", step, e)
        return None
    name = f"{step}-{key[:16]}.pickle"
    path = outputs.write_bytes(data, cache_dir / name)
    with _index_lock(cache_dir):  # runs in threads (the workbench) or processes sharing the folder
        idx = _read_index(cache_dir)
        entries = [e for e in idx.get(step, []) if isinstance(e, dict) and e.get("key") != key]
        entries.append({"key": key, "file": name, "sha256": _sha(data), "time": now()})
        for old in entries[:-CACHE_KEEP]:
            if old.get("file") != name:
                (cache_dir / str(old.get("file"))).unlink(missing_ok=True)
        idx[step] = entries[-CACHE_KEEP:]
        outputs.write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n", cache_dir / _CACHE_INDEX)
    return path


@contextlib.contextmanager
def _index_lock(cache_dir: Path):
    """Hold an exclusive lock on ``cache_dir``'s index while it is read, changed and written: two
    writers at once (threads of one process or several processes) would each write the index they
    read and drop the other's entry."""
    import fcntl

    fd = os.open(cache_dir / _CACHE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: one writer at a time is then up to the user
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_index(cache_dir: Path) -> dict[str, Any]:
    try:
        idx = json.loads((cache_dir / _CACHE_INDEX).read_text(encoding="utf-8"))
        return {k: v for k, v in idx.items() if isinstance(v, list)} if isinstance(idx, dict) else {}
    except (OSError, ValueError):
        return {}


def load_cached(cache_dir: str | Path, step: str, key: str) -> Any | None:
    """The result :func:`store_cached` kept for ``step`` under ``key``, or None (no cache, another
    key, or a file that is not the one this tool wrote)."""
    import pickle

    cache_dir = Path(cache_dir)
    entry = next((e for e in _read_index(cache_dir).get(step, [])
                  if isinstance(e, dict) and e.get("key") == key), None)
    if not entry or Path(str(entry.get("file"))).name != entry.get("file"):
        return None
    path = cache_dir / entry["file"]
    try:
        data = path.read_bytes()
    except OSError:  # gone (another writer dropped it) or unreadable: not cached
        return None
    if _sha(data) != entry.get("sha256"):
        return None
    try:
        obj = pickle.loads(data)
    except Exception:
        return None
    if not isinstance(obj, dict) or obj.get("key") != key or obj.get("step") != step:
        return None
    return obj["result"]
