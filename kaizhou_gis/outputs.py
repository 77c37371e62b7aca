"""Every file kaizhou-gis writes goes through here, atomically.

A file is first written to a temporary file outside its target folder (this process's scratch
folder in the system temp) and then put over the target atomically (see :func:`atomic_path`), so an
interrupted run never leaves a half-written file: a reader sees the previous complete file or the
new complete one, and a killed run leaves no partial file in the output folder.
:func:`output_folder` checks an output folder before any analysis and locks it for one run.

:func:`write_products` takes ``{relative path: object}`` and picks the writer by the file's
extension: ``.csv`` (UTF-8 with BOM so Excel shows Chinese), ``.xlsx``, ``.gpkg`` (one
GeoDataFrame or ``{layer name: GeoDataFrame}``), ``.json``, ``.html`` (text or a folium map),
``.md``/``.txt``, ``.png`` (bytes).

Same inputs give the same bytes: GeoPackages are stamped with :data:`FIXED_DATE` (GDAL would
write the current time), XLSX files carry :data:`FIXED_DATE` as created/modified time and in their
zip entries, and the random element ids folium puts in a map page are replaced by sequential ones
(:func:`stable_element_ids`). The file system's modification time says when a file was written.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Timestamp written inside GeoPackages and XLSX files (so reruns give identical bytes).
FIXED_DATE = "2024-01-01T00:00:00Z"
_FOLIUM_ID = re.compile(r"(?<=_)[0-9a-f]{32}(?![0-9a-f])")

#: Header styles for tables: English snake_case, Chinese labels, or both ("elevation_m 海拔(米)").
HEADER_STYLES = ("en", "zh", "both")


#: Name of the lock file in an output folder: one run at a time writes into a folder.
LOCK_NAME = ".kaizhou-gis.lock"
#: Pattern of the temporary files written beside a target when nothing better is possible.
_TEMP_GLOB = ".*.tmp*"

_UMASK = os.umask(0o022)
os.umask(_UMASK)

_scratch: dict[str, Any] = {}  # this process's scratch folder in the system temp (and its lock fd)
_held_locks: dict[str, list[int]] = {}  # real path of an output folder -> [lock fd, depth]


def _shared_temp() -> Path:
    return Path(tempfile.gettempdir()) / "kaizhou-gis"


def _scratch_dir() -> Path | None:
    """This process's own folder in the system temp, locked while the process lives.

    Temporary files are written here, outside ``--out``. A process killed with SIGKILL cannot
    clean up, but its lock dies with it: the next run removes every scratch folder whose lock it
    can take, whatever its age. None when the system temp folder cannot be used.
    """
    if _scratch.get("pid") == os.getpid():
        return _scratch["dir"]
    shared = _shared_temp()
    try:
        shared.mkdir(exist_ok=True)
        _sweep_dead_scratch(shared)
        d = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=shared))
        # lock first, then give the lock its name: a sweeper never sees it unlocked
        fd = os.open(d / ".lock.new", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(d / ".lock.new", d / ".lock")
    except OSError:
        log.debug("system temp folder unusable for scratch files", exc_info=True)
        return None
    _scratch.update(pid=os.getpid(), dir=d, fd=fd)
    return d


def _sweep_dead_scratch(shared: Path) -> list[Path]:
    """Remove the scratch folders of processes that died (their lock is free)."""
    removed = []
    for d in shared.glob("run-*"):
        lock = d / ".lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            # a folder without its lock: being created right now, or left half-made; only old ones go
            with contextlib.suppress(OSError):
                if d.is_dir() and time.time() - d.stat().st_mtime > 3600:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live run
        try:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        finally:
            os.close(fd)
    # temp files of versions that wrote straight into the shared folder: after a day
    for p in shared.glob(_TEMP_GLOB):
        with contextlib.suppress(OSError):
            if p.is_file() and time.time() - p.stat().st_mtime > 86400:
                p.unlink()
                removed.append(p)
    return removed


def _temp_dir_for(folder: Path) -> Path:
    """Where a writer puts the temporary file for a target in ``folder``: outside ``folder``.

    This process's scratch folder in the system temp; ``folder`` itself (hidden ``.name.*.tmp``
    files, removed by the next run into it) only when the system temp folder cannot be used.
    """
    return _scratch_dir() or folder


def _move_into_place(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` at ``path`` atomically, leaving no named partial file behind.

    Same filesystem: one rename. Another filesystem (``--out`` on a tmpfs, a USB disk, a network
    share): the bytes go into an unnamed file in the target folder (``O_TMPFILE``, which vanishes
    if the process dies while copying), which is then given a hidden name and renamed over the
    target in two consecutive system calls. Where unnamed files are unsupported, a hidden named
    temp beside the target is used (a killed run's one is removed by the next run into the folder).
    """
    if tmp.parent == path.parent:
        os.replace(tmp, path)
        return
    try:
        same = os.stat(tmp).st_dev == os.stat(path.parent).st_dev
    except OSError:
        same = False
    if same:
        try:
            os.replace(tmp, path)
            return
        except OSError as e:  # one filesystem mounted at two points: rename(2) refuses
            if e.errno != errno.EXDEV:
                raise
    near = path.parent / f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp{path.suffix}"
    mode = 0o666 & ~_UMASK
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, mode)
    except (OSError, AttributeError):
        fd = None
    try:
        if fd is not None:
            with open(tmp, "rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(fd)
            try:
                os.link(f"/proc/self/fd/{fd}", near, follow_symlinks=True)
            except OSError:
                os.close(fd)
                fd = None
                shutil.copyfile(tmp, near)
        else:
            shutil.copyfile(tmp, near)
        os.chmod(near, mode)
        os.replace(near, path)
    finally:
        if fd is not None:
            os.close(fd)
        if near.exists():
            near.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success put the file at ``path`` atomically.

    The temporary file lives outside the target's folder (see :func:`_temp_dir_for`); on any
    exception it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (suffix or path.suffix),
                                    dir=_temp_dir_for(path.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers (GDAL especially) want to create the file themselves
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        _move_into_place(tmp, path)
    finally:
        for leftover in (tmp, *tmp.parent.glob(tmp.name + "-*")):  # e.g. SQLite journals
            if leftover.exists():
                leftover.unlink()


def check_out_dir(out_dir: str | Path, *, option: str = "--out") -> Path:
    """Make sure ``out_dir`` is (or can become) a writable folder, before any analysis.

    Raises :class:`~kaizhou_gis.errors.OptionError` naming the path and the reason: a file, a
    path under a file, a folder that cannot be created or written (read-only, no permission).
    Creates the folder when it is missing.
    """
    from kaizhou_gis.errors import OptionError

    out = Path(out_dir)
    fix = f"choose another {option} folder (it is created if missing)."
    if out.exists() and not out.is_dir():
        raise OptionError(f"{option} {out}: is a file, not a folder; {fix}")
    anc = out
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise OptionError(f"{option} {out}: {anc} is a file, so no folder can be made under it; {fix}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"{option} {out}: the folder cannot be created "
                          f"({e.strerror or e}); {fix}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".kaizhou-gis-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = ("read-only filesystem" if e.errno == errno.EROFS else
               "no permission to write" if e.errno in (errno.EACCES, errno.EPERM) else
               e.strerror or str(e))
        raise OptionError(f"{option} {out}: cannot write into the folder ({why}); {fix}") from None
    with contextlib.suppress(OSError):
        free_mb = shutil.disk_usage(out).free / 2**20
        if free_mb < MIN_FREE_MB:
            log.warning("%s %s: only %.0f MB free on its disk; a full run writes about %d MB.",
                        option, out, free_mb, MIN_FREE_MB)
    return out


#: A full run on a district's layers writes some tens of MB; warn below this much free space.
MIN_FREE_MB = 200


@contextlib.contextmanager
def output_folder(out_dir: str | Path, *, option: str = "--out") -> Iterator[Path]:
    """Check ``out_dir`` (:func:`check_out_dir`), lock it for this run, clean a killed run's temps.

    One run at a time writes into a folder: a second run into the same folder while one holds it
    is refused with an :class:`~kaizhou_gis.errors.OptionError` naming the other process. The
    lock (``.kaizhou-gis.lock`` in the folder) is released when the block ends or the process
    dies. Nested use in one process is allowed.
    """
    from kaizhou_gis.errors import OptionError

    out = check_out_dir(out_dir, option=option)
    key = os.path.realpath(out)
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield out
        finally:
            _held_locks[key][1] -= 1
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise OptionError(f"{option} {out}: another kaizhou-gis run (process {other}) is writing "
                          f"into this folder; wait for it to finish or choose another {option} "
                          f"folder.") from None
    except OSError as e:  # a filesystem without locks (some network shares): go on unlocked
        log.warning("%s %s: cannot lock the folder (%s); make sure no other run writes into it.",
                    option, out, e.strerror or e)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held_locks[key] = [fd, 1]
        clean_stale_temp(out)
        yield out
    finally:
        _held_locks.pop(key, None)
        os.close(fd)


def clean_stale_temp(out_dir: str | Path) -> list[Path]:
    """Remove temporary files that killed earlier runs left (``.<name>.*.tmp.<ext>``), whatever their age.

    In ``out_dir`` only when no other run holds the folder (see :func:`output_folder`); in the
    system temp folder the scratch folders of dead processes. A process killed with SIGKILL
    cannot clean up; the next run calls this before writing.
    """
    out_dir = Path(out_dir)
    removed: list[Path] = []
    if out_dir.is_dir():
        key = os.path.realpath(out_dir)
        fd = None
        if key not in _held_locks and (out_dir / LOCK_NAME).exists():
            fd = os.open(out_dir / LOCK_NAME, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another live run writes here: its temps are not stale
                os.close(fd)
                return removed
            except OSError:  # no locks on this filesystem: clean as before
                pass
        try:
            for p in out_dir.rglob(_TEMP_GLOB):
                if p.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                        removed.append(p)
        finally:
            if fd is not None:
                os.close(fd)
    shared = _shared_temp()
    if shared.is_dir():
        removed += _sweep_dead_scratch(shared)
    if removed:
        log.info("removed %d stale temporary file(s) of an interrupted run", len(removed))
    return removed


#: First characters that make Excel, WPS or LibreOffice read a cell as a formula (OWASP "CSV
#: injection"): a text cell starting with one of them gets a leading apostrophe.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

#: The note every table's About text carries about such cells (Chinese and English).
FORMULA_NOTE_ZH = ("以 = + - @ 或制表符/回车开头的文字单元格前加了一个撇号 '，"
                   "防止表格软件把它当作公式执行；数值（包括负数）不受影响。")
FORMULA_NOTE_EN = ("Text cells that start with =, +, -, @, a tab or a carriage return are written "
                   "with a leading apostrophe (') so that no spreadsheet runs them as a formula; "
                   "numbers, negative ones included, stay numbers.")


_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

#: The row of the 说明/About sheet (and the lines of a CSV folder's README.txt) with that note.
FORMULA_ABOUT_ROW = ("spreadsheet safety / 防公式注入", FORMULA_NOTE_ZH, FORMULA_NOTE_EN)


def cell_safe(value: Any) -> Any:
    """``value`` made safe for a spreadsheet cell: text that could start a formula gets a ``'``.

    Only text is changed; numbers (negative ones too), booleans, dates and missing values are
    returned as they are. Every CSV and XLSX cell the tool writes goes through here.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _labels(df: pd.DataFrame, header: str) -> list[str]:
    labels = df.attrs.get("labels_zh", {}) or {}
    cols = [c for c in df.columns if c != "geometry"]
    if header == "zh":
        out = [labels.get(c, c) for c in cols]
    elif header == "both":
        out = [f"{c} {labels[c]}" if c in labels else c for c in cols]
    else:
        out = cols
    return [cell_safe(str(c)) for c in out]


#: Columns that hold identifiers (codes): written as text, never as numbers (a 12-digit village
#: code shown as 5.00154E+11 or losing a leading zero is a different code).
CODE_COLUMN = re.compile(r"(^|_)(code|codes|id|ids)$")


def is_code_column(name: Any) -> bool:
    return bool(CODE_COLUMN.search(str(name)))


def _code_text(v: Any) -> Any:
    """A code as text: 500154118.0 → "500154118"; missing stays missing."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    return v if isinstance(v, str) else str(v)


def translate_values(df: pd.DataFrame, header: str) -> pd.DataFrame:
    """Categorical values in Chinese for ``header`` "zh" (中文) or "both" (中文 English).

    Booleans become 是/否 (是 yes / 否 no with "both"); columns listed in ``df.attrs["values_zh"]``
    (``{column: {value: 中文}}``) are mapped; other values stay as they are.
    """
    if header not in ("zh", "both"):
        return df
    maps = df.attrs.get("values_zh", {}) or {}
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col) or (col.dtype == object and col.map(
                lambda v: isinstance(v, (bool, np.bool_)) or v is None or v is pd.NA
                or (isinstance(v, float) and math.isnan(v))).all() and col.map(
                lambda v: isinstance(v, (bool, np.bool_))).any()):
            table = {True: "是", False: "否"} if header == "zh" else {True: "是 yes", False: "否 no"}
            out[c] = col.map(lambda v, table=table: table.get(bool(v)) if isinstance(v, (bool, np.bool_)) else v)
        elif c in maps:
            m = maps[c]
            out[c] = col.map(lambda v, m=m: (m.get(v, v) if header == "zh" else
                                              (f"{m[v]} {v}" if v in m else v))
                             if isinstance(v, str) else v)
    return out


def _plain_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table as written to CSV/XLSX: no geometry, lists joined, text cells formula-safe."""
    df = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) \
                or pd.api.types.is_datetime64_any_dtype(col):
            continue
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        df[c] = col.map(lambda v: cell_safe("; ".join(map(str, v)))
                        if isinstance(v, (list, tuple, set)) else cell_safe(v))
    return df


def write_csv(df: pd.DataFrame, path: str | Path, *, header: str = "en") -> Path:
    """CSV in UTF-8 with BOM (Excel opens Chinese text correctly); geometry is left out.

    With ``header`` "zh"/"both" categorical values are in Chinese too (:func:`translate_values`).
    """
    table = _plain_table(translate_values(df, header))
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8-sig", header=_labels(df, header))
    return Path(path)


def write_xlsx(df: pd.DataFrame | dict[str, pd.DataFrame], path: str | Path, *,
               header: str = "en") -> Path:
    """XLSX workbook: one sheet per table (``{sheet: df}``) or one sheet "data"."""
    sheets = df if isinstance(df, dict) else {"data": df}
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for name, table in sheets.items():
                plain = _plain_table(translate_values(table, header))
                codes = [is_code_column(c) for c in plain.columns]
                for c, is_code in zip(list(plain.columns), codes):
                    if is_code:
                        plain[c] = plain[c].map(_code_text).astype(object)
                kinds = [_column_kind(plain[c], c) for c in plain.columns]
                plain.columns = _labels(table, header)
                plain.to_excel(xw, sheet_name=str(name)[:31], index=False)
                ws = xw.sheets[str(name)[:31]]
                _format_sheet(ws, plain, kinds)
            for ws in xw.book.worksheets:
                _no_formula_cells(ws)
        _fix_xlsx_times(tmp)
    return Path(path)


#: Number formats by column kind (Excel codes): codes and text as text, years without a
#: thousands separator, counts with one, decimals with up to two places.
NUMBER_FORMATS = {"code": "@", "year": "0", "int": "#,##0", "float": "#,##0.0#", "pct": "0.0"}


def _column_kind(col: pd.Series, name: Any) -> str:
    n = str(name)
    if is_code_column(n):
        return "code"
    if pd.api.types.is_bool_dtype(col):
        return "text"
    if pd.api.types.is_numeric_dtype(col):
        if n == "year" or n.endswith("_year") or n.startswith("year_"):
            return "year"
        if n.endswith("_pct"):
            return "pct"
        if pd.api.types.is_integer_dtype(col):
            return "int"
        vals = col.dropna()
        return "int" if len(vals) and (vals == vals.round()).all() and n.endswith(
            ("households", "population", "people", "settlements")) else "float"
    return "text"


def _display_width(v: Any) -> int:
    """Columns a value needs: Chinese (wide) characters count twice."""
    import unicodedata

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return 0
    if isinstance(v, float):
        v = f"{v:,.2f}"
    elif isinstance(v, (int, np.integer)):
        v = f"{v:,}"
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(v))


def _format_sheet(ws, plain: pd.DataFrame, kinds: list[str]) -> None:
    """Frozen header, autofilter, column widths, number formats and text-typed codes."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    ws.freeze_panes = "A2"
    n_rows, n_cols = len(plain), len(plain.columns)
    if n_cols:
        ws.auto_filter.ref = f"A1:{get_column_letter(n_cols)}{max(n_rows + 1, 1)}"
    sample = plain.head(2000)
    for j, (label, kind) in enumerate(zip(plain.columns, kinds), start=1):
        letter = get_column_letter(j)
        width = max([_display_width(label) + 3] + [_display_width(v) for v in sample.iloc[:, j - 1].tolist()])
        ws.column_dimensions[letter].width = float(min(max(width + 2, 8), 60))
        head = ws.cell(row=1, column=j)
        head.font = Font(bold=True)
        head.alignment = Alignment(vertical="top", wrap_text=True)
        fmt = NUMBER_FORMATS.get(kind)
        if fmt is None:
            continue
        for (cell,) in ws.iter_rows(min_row=2, max_row=n_rows + 1, min_col=j, max_col=j):
            if kind == "code" and cell.value is not None and not isinstance(cell.value, str):
                cell.value = _code_text(cell.value)
            if kind == "code":
                cell.data_type = "s" if cell.value is not None else cell.data_type
            cell.number_format = fmt


def _no_formula_cells(ws) -> None:
    """Every cell of a sheet as a value: text is formula-safe and stored as a string cell.

    openpyxl turns any text starting with ``=`` into a formula cell (data_type ``f``); this pass
    makes sure no sheet of the workbook, whoever filled it, keeps one.
    """
    for row in ws.iter_rows():
        for cell in row:
            v = cell.value
            if isinstance(v, str) and (cell.data_type == "f" or v.startswith(FORMULA_TRIGGERS)):
                cell.value = cell_safe(v)
                cell.data_type = "s"


def _fix_xlsx_times(path: Path) -> None:
    """Give an XLSX (a zip) fixed entry times and created/modified properties."""
    stamp = FIXED_DATE
    with zipfile.ZipFile(path) as z:
        entries = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                              lambda m: m.group(1) + stamp.encode() + m.group(3), data)
            zi = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = info.compress_type
            zi.external_attr = info.external_attr
            z.writestr(zi, data)


def stable_element_ids(html: str) -> str:
    """Replace the random 32-hex element ids of a rendered folium page (``map_3f2a...``) by
    sequential ones in order of first appearance, so the same map gives the same bytes."""
    seen: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        return seen.setdefault(m.group(0), f"{len(seen) + 1:032x}")
    return _FOLIUM_ID.sub(repl, html)


def _gpkg_ready(gdf):
    gdf = gdf.copy()
    for c in gdf.columns:
        if c == gdf.geometry.name:
            continue
        if gdf[c].dtype == object:
            gdf[c] = gdf[c].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple, set))
                                else (None if v is None or (isinstance(v, float) and math.isnan(v)) else v))
    return gdf


def write_gpkg(layers, path: str | Path) -> Path:
    """GeoPackage with one layer (a GeoDataFrame, named after the file) or several (a dict)."""
    path = Path(path)
    if not isinstance(layers, dict):
        layers = {path.stem: layers}
    old = os.environ.get("OGR_CURRENT_DATE")
    os.environ["OGR_CURRENT_DATE"] = old or FIXED_DATE  # GDAL stamps each table with it
    try:
        with atomic_path(path) as tmp:
            for name, gdf in layers.items():
                _gpkg_ready(gdf).to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
    finally:
        if old is None:
            os.environ.pop("OGR_CURRENT_DATE", None)
    return path


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return None if not np.isfinite(o) else float(o)
        if isinstance(o, np.bool_):
            return bool(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (set, tuple)):
            return list(o)
        if isinstance(o, (Path,)):
            return str(o)
        if isinstance(o, (_dt.date, _dt.datetime, pd.Timestamp)):
            return o.isoformat()
        if isinstance(o, (pd.DataFrame,)):
            return json.loads(o.to_json(orient="records", force_ascii=False))
        if isinstance(o, pd.Series):
            return o.tolist()
        return super().default(o)


def _nan_to_none(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


def to_json_text(obj: Any) -> str:
    """JSON text as written by :func:`write_json` (NaN becomes null, numpy types become Python)."""
    return json.dumps(_nan_to_none(obj), cls=_Encoder, ensure_ascii=False, indent=2)


def write_json(obj: Any, path: str | Path) -> Path:
    return write_text(to_json_text(obj) + "\n", path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(data: bytes, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_html(obj: Any, path: str | Path) -> Path:
    """An HTML page: text, or a folium/branca object rendered to a standalone page."""
    if not isinstance(obj, str):
        obj = stable_element_ids(obj.get_root().render())
    return write_text(obj, path)


def write_product(out_dir: str | Path, relpath: str, obj: Any, *, header: str = "en") -> Path:
    """Write one product under ``out_dir`` choosing the writer by extension."""
    path = Path(out_dir) / relpath
    ext = path.suffix.lower()
    if ext == ".csv":
        return write_csv(obj, path, header=header)
    if ext == ".xlsx":
        return write_xlsx(obj, path, header=header)
    if ext == ".gpkg":
        return write_gpkg(obj, path)
    if ext == ".json":
        return write_json(obj, path)
    if ext in (".html", ".htm"):
        return write_html(obj, path)
    if ext in (".md", ".txt"):
        return write_text(obj, path)
    if ext in (".png", ".jpg", ".pdf", ".tif", ".kmz", ".kml", ".gpx"):
        if isinstance(obj, (bytes, bytearray)):
            return write_bytes(bytes(obj), path)
        if isinstance(obj, (str, Path)) and Path(obj).exists():  # a finished temp file to move in
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(Path(obj).read_bytes())
            return path
    raise TypeError(f"no writer for {relpath} ({type(obj).__name__})")


def with_status(relpath: str, obj: Any, status: dict | None) -> Any:
    """``obj`` with the data status added: ``data_status`` in a JSON object, a 说明/About sheet
    in an XLSX workbook (see :mod:`kaizhou_gis.provenance`). Other products are returned as is."""
    if status is None:
        return obj
    from kaizhou_gis import provenance

    ext = Path(relpath).suffix.lower()
    if ext == ".json" and isinstance(obj, dict) and "data_status" not in obj:
        return {"data_status": status, **obj}
    if ext == ".xlsx":
        sheets = dict(obj) if isinstance(obj, dict) else {"data": obj}
        if not any(str(k).startswith(ABOUT_SHEET) for k in sheets):
            sheets[ABOUT_SHEET] = provenance.about_table(status, title=relpath,
                                                         extra=[FORMULA_ABOUT_ROW])
        return sheets
    return obj


#: Name of the sheet every XLSX workbook carries with the data status.
ABOUT_SHEET = "说明 About"


def write_products(out_dir: str | Path, files: dict[str, Any], *, header: str = "en",
                   status: dict | None = None) -> list[Path]:
    """Write every product of a step; returns the paths written, in order.

    With ``status`` (:func:`kaizhou_gis.provenance.data_status`) every JSON object gets a
    ``data_status`` field, every XLSX workbook a 说明/About sheet, and every folder that receives
    CSV files a README.txt saying what the data is and listing the folder's CSV tables.
    """
    written = []
    for rel, obj in files.items():
        written.append(write_product(out_dir, rel, with_status(rel, obj, status), header=header))
        log.debug("wrote %s", written[-1])
    if status is not None:
        from kaizhou_gis import provenance

        folders = sorted({p.parent for p in written if p.suffix.lower() == ".csv"})
        for folder in folders:
            csvs = sorted(p.name for p in folder.glob("*.csv"))
            text = provenance.readme_text(status, csvs, title=f"kaizhou-gis: {folder.name}/")
            text += f"\n{FORMULA_NOTE_ZH}\n{FORMULA_NOTE_EN}\n"
            written.append(write_text(text, folder / "README.txt"))
    return written


def write_geotiff(array: np.ndarray, path: str | Path, *, transform, crs, nodata=None,
                  tags: dict | None = None) -> Path:
    """Single-band GeoTIFF (deflate, tiled), written atomically."""
    import rasterio

    profile = dict(driver="GTiff", height=array.shape[0], width=array.shape[1], count=1,
                   dtype=array.dtype, crs=crs, transform=transform, nodata=nodata,
                   compress="deflate", predictor=2, tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as ds:
            ds.write(array, 1)
            if tags:
                ds.update_tags(**tags)
    return Path(path)
