"""The print sheets' reliefs made ahead, while the steps before the maps run.

The shaded relief of a sheet (:func:`kaizhou_gis.maps.sheetrelief.relief_flate`) depends only on
the DEM, the frame (from the area's bounds), the highlighted area and the plan's print settings:
none of it waits for an analysis. The analyses before the maps (access, relocation) run in one
process and leave the other CPUs idle; :class:`ReliefPrefetch` uses them. Started by
:func:`kaizhou_gis.maps.step.prepare` before the first step of a run, it shades the district's
sheet and every township's sheet in one forked worker process, in the order the maps step draws
them, and keeps each relief compressed as the PDF holds it in a file of this process's scratch
folder (so a district's hundreds of reliefs do not sit in memory). The maps step's
:class:`~kaizhou_gis.maps.sheetpool.SheetPool` then gives each sheet its relief
(:meth:`ReliefPrefetch.take`); a sheet whose relief is not ready yet waits for it if it is being
made and makes it itself if it was not started. A relief is taken only for exactly the arguments
it was made for (the key of :func:`relief_key`), so a sheet's bytes are the same with or without
this.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The arguments of :func:`kaizhou_gis.maps.sheet.render_sheet` a sheet's relief depends on.
RELIEF_ARGS = ("bounds_xy", "work_crs", "hillshade_dpi", "azimuth_deg", "altitude_deg")

_WORKER_DEM: Any = None


def relief_key(kwargs: dict) -> str:
    """A key of what a sheet's relief is made from: the :data:`RELIEF_ARGS` of its
    ``render_sheet`` arguments and its highlighted area (the geometry's WKB)."""
    h = hashlib.sha256()
    for name in RELIEF_ARGS:
        h.update(repr(kwargs.get(name)).encode() + b"\0")
    hl = kwargs.get("highlight")
    h.update(b"-" if hl is None else hl.wkb)
    return h.hexdigest()


def _make(kwargs: dict, path: str):
    """In the worker: the relief of ``kwargs`` written to ``path``; its FlateGrey naming the file."""
    from kaizhou_gis.maps.pdfwriter import FlateGrey
    from kaizhou_gis.maps.sheetrelief import relief_flate

    flat = relief_flate(_WORKER_DEM, kwargs["bounds_xy"], kwargs["work_crs"], kwargs.get("highlight"),
                        hillshade_dpi=kwargs["hillshade_dpi"], azimuth_deg=kwargs["azimuth_deg"],
                        altitude_deg=kwargs["altitude_deg"])
    if flat is None:
        return None
    with open(path, "wb") as fh:
        fh.write(flat.stream())
    return FlateGrey(flat.width, flat.height, flat.zlib_level, path=path)


class ReliefPrefetch:
    """Reliefs of the sheets ``jobs`` (``render_sheet`` arguments, each with its ``highlight``)
    made in one forked worker process that holds ``dem`` (a
    :class:`~kaizhou_gis.maps.sheetpool.DemArray`), in the order given."""

    def __init__(self, dem, jobs: list[dict]):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from kaizhou_gis.outputs.files import _scratch_dir

        global _WORKER_DEM

        scratch = _scratch_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="reliefs-", dir=scratch))
        self.taken = self.made_here = 0
        self._futures: dict[str, Future] = {}
        self._ex: Any = ProcessPoolExecutor(max_workers=1,
                                            mp_context=multiprocessing.get_context("fork"))
        # the worker is forked at the first submit and inherits the DEM through this module's
        # global; this process lets go of it then (not kept as the pool's initargs: at 100x the
        # band is some 350 MB that the analyses running meanwhile would have beside them)
        _WORKER_DEM = dem
        try:
            for i, kw in enumerate(jobs):
                key = relief_key(kw)
                if key not in self._futures:
                    self._futures[key] = self._ex.submit(_make, kw, str(self.folder / f"{i}.flate"))
        finally:
            _WORKER_DEM = None

    def __len__(self) -> int:
        return len(self._futures)

    def take(self, kwargs: dict):
        """The relief made for these ``render_sheet`` arguments (a FlateGrey naming its file;
        waits while it is being made), or None: not asked for, not started yet (then it is not
        made here any more: the sheet makes it), no DEM under the frame, or it failed (logged;
        the sheet makes it again and reports the error if it has one)."""
        fut = self._futures.pop(relief_key(kwargs), None)
        if fut is None:
            return None
        if fut.cancel():
            self.made_here += 1
            return None
        try:
            flat = fut.result()
        except Exception as e:  # noqa: BLE001 - the sheet shades it itself
            log.warning("a print sheet's relief made ahead failed (%s: %s); the sheet shades it",
                        type(e).__name__, e)
            return None
        self.taken += 1
        return flat

    def close(self) -> None:
        """Stop the worker (reliefs not started are dropped) and remove the files."""
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None
        self._futures.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass


def available() -> bool:
    """Whether reliefs can be made ahead here: more than one CPU for the sheets
    (:func:`~kaizhou_gis.maps.sheetpool.sheet_workers`) and a fork-able process."""
    from kaizhou_gis.maps.sheetpool import sheet_workers

    return hasattr(os, "fork") and sheet_workers() > 1
