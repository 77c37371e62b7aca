"""Writers by file kind (GeoPackage, JSON, text, HTML, bytes, GeoTIFF) and
:func:`write_products`, which picks the writer by a product's extension and adds the data status."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import tempfile
import weakref
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from zlib_ng import zlib_ng

from kaizhou_gis.outputs.files import FIXED_DATE, ScratchFile, atomic_path
from kaizhou_gis.outputs.tables import FORMULA_ABOUT_ROW, FORMULA_NOTE_EN, FORMULA_NOTE_ZH, write_csv, write_xlsx

log = logging.getLogger(__name__)

_FOLIUM_ID = re.compile(r"(?<=_)[0-9a-f]{32}(?![0-9a-f])")


class StableIds:
    """Replaces the random 32-hex element ids of a rendered folium page (``map_3f2a...``) by
    sequential ones in order of first appearance (:meth:`sub`, called on the page's pieces in
    order), so the same map gives the same bytes."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def _repl(self, m: re.Match) -> str:
        return self.seen.setdefault(m.group(0), f"{len(self.seen) + 1:032x}")

    def sub(self, text: str) -> str:
        return _FOLIUM_ID.sub(self._repl, text)


def stable_element_ids(html: str) -> str:
    """:class:`StableIds` over a whole rendered page."""
    return StableIds().sub(html)


class PageSpool:
    """An unnamed scratch file (in this process's scratch folder of the system temp, removed by
    the system when it is closed or the process ends) that the compressed pages of a step are
    appended to, so that a district's hundreds of pages are not all held in memory until they
    are written (:class:`HtmlPage`)."""

    def __init__(self) -> None:
        from kaizhou_gis.outputs.files import _scratch_dir

        scratch = _scratch_dir()
        self._fh = tempfile.TemporaryFile(dir=scratch if scratch is not None else None)
        self._end = 0
        weakref.finalize(self, self._fh.close)  # closed with the last page that refers to it

    def append(self, data: bytes) -> tuple[int, int]:
        """Store ``data``; returns its (offset, length)."""
        off = self._end
        self._fh.seek(off)
        self._fh.write(data)
        self._end += len(data)
        return off, len(data)

    def read(self, offset: int, length: int) -> bytes:
        self._fh.flush()
        return os.pread(self._fh.fileno(), length, offset)

    def close(self) -> None:
        self._fh.close()


class HtmlPage:
    """A rendered HTML page held compressed (zlib format, by zlib-ng) until it is written, with its size.

    Made from the page's pieces in order (``(text, ids)``; :func:`kaizhou_gis.maps.mapassets.render_chunks`),
    each piece with ``ids`` true passed through :class:`StableIds`: the page is never one string
    in memory, only a few pieces at a time and the compressed bytes (about a fifth of the page;
    with a ``spool``, in its scratch file instead of memory). :func:`write_html` writes it piece
    by piece; ``str(page)`` gives the whole text (tests).
    """

    def __init__(self, pieces: Iterable[tuple[str, bool]], spool: PageSpool | None = None):
        ids = StableIds()
        comp = zlib_ng.compressobj(1)  # half zlib's time; read back by zlib (one format)
        blocks: list[bytes] = []
        held = size = 0

        def keep(out: bytes) -> None:
            nonlocal held
            if out:
                blocks.append(out)
                held += len(out)
                if spool is not None and held >= 1 << 20:
                    self._parts.append(spool.append(b"".join(blocks)))
                    blocks.clear()
                    held = 0

        self._spool = spool
        self._parts: list[Any] = []  # (offset, length) in the spool, or bytes
        for text, has_ids in pieces:
            data = (ids.sub(text) if has_ids else text).encode("utf-8")
            size += len(data)
            keep(comp.compress(data))
        blocks.append(comp.flush())
        rest = b"".join(blocks)
        self._parts.append(spool.append(rest) if spool is not None else rest)
        #: the page's size in bytes (UTF-8)
        self.size = size

    @property
    def stored_bytes(self) -> int:
        """The compressed size (in memory, or in the spool)."""
        return sum(p[1] if isinstance(p, tuple) else len(p) for p in self._parts)

    @property
    def memory_bytes(self) -> int:
        """What the page holds in memory (0 when it is in a spool)."""
        return sum(len(p) for p in self._parts if isinstance(p, bytes))

    def _compressed(self) -> Iterator[bytes]:
        for p in self._parts:
            if isinstance(p, bytes):
                yield p
                continue
            assert self._spool is not None
            off, n = p
            for i in range(0, n, 1 << 20):
                yield self._spool.read(off + i, min(1 << 20, n - i))

    def chunks(self) -> Iterator[bytes]:
        """The page's UTF-8 bytes, a block at a time (about 10 MB at most)."""
        d = zlib.decompressobj()
        for block in self._compressed():
            data = memoryview(block)
            for i in range(0, len(data), 1 << 20):
                out = d.decompress(data[i:i + (1 << 20)])
                if out:
                    yield out
        rest = d.flush()
        if rest:
            yield rest

    def write_to(self, fh: BinaryIO) -> None:
        for block in self.chunks():
            fh.write(block)

    def __str__(self) -> str:
        return b"".join(self.chunks()).decode("utf-8")

    def __contains__(self, text: str) -> bool:
        return text in str(self)


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
    """An HTML page: text, an :class:`HtmlPage` (written piece by piece), or a folium/branca
    object rendered to a standalone page."""
    if isinstance(obj, HtmlPage):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            obj.write_to(fh)
        return Path(path)
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
        if isinstance(obj, ScratchFile):
            return obj.move_to(path)
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
