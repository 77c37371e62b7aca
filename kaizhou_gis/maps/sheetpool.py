"""Drawing many print sheets: the DEM read once, sheets drawn in worker processes
(:class:`SheetPool`)."""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from kaizhou_gis.forked import WORKERS_ENV, forked_worker_setup, worker_count
from kaizhou_gis.maps import sheet
from kaizhou_gis.outputs.files import ScratchFile, _scratch_dir

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# drawing many sheets: the DEM read once, sheets drawn in worker processes

#: re-exported: the variable that sets how many workers a run forks (tests and callers name it here)
__all__ = ["WORKERS_ENV", "DemArray", "SheetPool", "sheet_workers"]


@dataclass
class DemArray:
    """A DEM band held in memory with what :func:`kaizhou_gis.maps.sheetrelief.sheet_hillshade` reads of a dataset."""

    values: np.ndarray
    transform: object
    crs: object
    nodata: float | None

    def read(self, band: int = 1, masked: bool = False) -> np.ndarray:
        return self.values


_WORKER_DEM: DemArray | None = None
_WORKER_SCRATCH: str | None = None  # the run's scratch folder, where a worker leaves its files


def _init_worker(dem: DemArray | None, scratch: str | None = None) -> None:
    global _WORKER_DEM, _WORKER_SCRATCH
    forked_worker_setup()
    _WORKER_DEM, _WORKER_SCRATCH = dem, scratch


def _render_in_worker(specs, text, kwargs) -> dict[str, bytes] | dict[str, ScratchFile]:
    """A sheet drawn in a worker: its files left in the run's scratch folder (only their names
    go back to the run, :class:`ScratchFile`), or its bytes where there is no such folder."""
    out = sheet.render_sheet(specs, text, dem=_WORKER_DEM, **kwargs)
    if _WORKER_SCRATCH is None:
        return out
    kept: dict[str, ScratchFile] = {}
    try:
        for fmt, data in out.items():
            kept[fmt] = ScratchFile.of(data, _WORKER_SCRATCH, owned=False)
    except OSError:  # the folder is gone or full: the bytes go back instead, no file left
        for f in kept.values():
            f.discard()
        return out
    return kept


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def sheet_workers() -> int:
    """How many worker processes draw sheets (:func:`kaizhou_gis.forked.worker_count`)."""
    return worker_count()


class SheetPool:
    """Draws print sheets, in ``workers`` forked processes when more than one, with the DEM read
    once (every sheet reads the same full band, so the bytes are those of :func:`render_sheet`
    on the open dataset) and the subset font of the sheets made once (see :meth:`submit`).
    Results come back as futures; callers keep their own order, so the
    output does not depend on which sheet finishes first.

    Use as a context manager: ``with SheetPool(ctx, workers=2) as pool: fut = pool.submit(...)``.
    """

    def __init__(self, ctx, *, workers: int | None = None, reliefs=None):
        self.workers = sheet_workers() if workers is None else max(1, int(workers))
        #: reliefs made ahead (:class:`kaizhou_gis.maps.reliefs.ReliefPrefetch`), or None
        self.reliefs = reliefs
        with ctx.layers.open_dem() as ds:
            self.dem = DemArray(ds.read(1, masked=False), ds.transform, ds.crs, ds.nodata)
        self._ex = None
        self._started = False
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            scratch = _scratch_dir()  # this run's, locked while it lives: the workers' files wait there
            self._ex = ProcessPoolExecutor(max_workers=self.workers,
                                           mp_context=multiprocessing.get_context("fork"),
                                           initializer=_init_worker,
                                           initargs=(self.dem, None if scratch is None else str(scratch)))

    def submit(self, specs, text, **kwargs):
        if self.reliefs is not None and kwargs.get("relief") is None:
            relief = self.reliefs.take(kwargs)  # made ahead for exactly these arguments
            if relief is not None:
                kwargs["relief"] = relief
        fut = self._submit(specs, text, kwargs)
        path = getattr(kwargs.get("relief"), "path", None)
        if path is not None:  # the relief's file is read by the sheet: removed once it is drawn
            fut.add_done_callback(lambda _f, p=path: _remove(p))
        return fut

    def _submit(self, specs, text, kwargs: dict):
        from concurrent.futures import Future

        if self._ex is not None:
            if not self._started and kwargs.get("font_chars") is not None:
                # the subset font is made (and read) here, once, before the workers are
                # forked: they inherit it (a worker given other characters makes its own)
                sheet.preload_fonts(kwargs["font_chars"])
            self._started = True
            return self._ex.submit(_render_in_worker, specs, text, kwargs)
        fut: Future = Future()
        try:
            fut.set_result(sheet.render_sheet(specs, text, dem=self.dem, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(e)
        return fut

    def close(self, *, cancel: bool = False) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=cancel)
            self._ex = None

    def __del__(self) -> None:  # a step that failed half-way leaves no worker behind
        try:
            self.close(cancel=True)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass

    def __enter__(self) -> SheetPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
