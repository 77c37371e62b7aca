"""The print sheets' reliefs made ahead, while the steps before the maps run.

The shaded relief of a sheet (:func:`kaizhou_gis.maps.sheetrelief.relief_flate`) depends only on
the DEM, the frame (from the area's bounds), the highlighted area and the plan's print settings:
none of it waits for an analysis. The analyses before the maps (access, relocation) run in one
process and leave the other CPUs idle; :class:`ReliefPrefetch` uses one of them. Started by
:func:`kaizhou_gis.maps.step.prepare` before the first step of a run, it shades the district's
sheet and every township's sheet in one forked worker process, in the order the maps step draws
them, and writes each relief, compressed as the PDF holds it, to a file of this process's scratch
folder (in the system temp folder; a district's hundreds of reliefs are not held in memory, and
each file is removed once its sheet is drawn). The maps step's
:class:`~kaizhou_gis.maps.sheetpool.SheetPool` gives each sheet its relief
(:meth:`ReliefPrefetch.take`); once the sheets catch up with the worker, the reliefs it has not
started are dropped and the sheets shade their own. A relief is taken only for exactly the
arguments it was made for (the key of :func:`relief_key`), so a sheet's bytes are the same with
or without this. ``KAIZHOU_GIS_WORKERS=1`` (one process for everything) turns it off.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from concurrent.futures import CancelledError, Future
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
    :class:`~kaizhou_gis.maps.sheetpool.DemArray`), in the order given.

    The worker ends when its queue is done (and with it its copy of the DEM); it lets go of the
    run's locks, ignores Ctrl-C and ends if the run's process dies
    (:func:`kaizhou_gis.forked.forked_worker_setup`)."""

    def __init__(self, dem, jobs: list[dict]):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from kaizhou_gis.forked import forked_worker_setup
        from kaizhou_gis.outputs.files import _scratch_dir

        global _WORKER_DEM

        scratch = _scratch_dir()  # removed with its process (swept by the next run if killed)
        self.folder = Path(tempfile.mkdtemp(prefix="reliefs-", dir=scratch))
        self.taken = self.made_here = 0
        self._futures: dict[str, Future] = {}
        self._failed = False
        self._ex: Any = None
        self._manager: Any = None
        # the worker is forked at the first submit and inherits the DEM through this module's
        # global; this process lets go of it then (not kept as the pool's initargs: at 100x the
        # band is some 350 MB that the analyses running meanwhile would have beside them)
        _WORKER_DEM = dem
        try:
            self._ex = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                           initializer=forked_worker_setup)
            for i, kw in enumerate(jobs):
                key = relief_key(kw)
                if key not in self._futures:
                    self._futures[key] = self._ex.submit(_make, kw, str(self.folder / f"{i}.flate"))
            # the pool's thread that feeds the worker and collects its results (close() waits
            # for it: once the pool is shut down, shutdown(wait=True) no longer does)
            self._manager = getattr(self._ex, "_executor_manager_thread", None)
            self._ex.shutdown(wait=False)  # the worker ends when the queue is done
        except BaseException:
            self.close()
            raise
        finally:
            _WORKER_DEM = None

    def __len__(self) -> int:
        return len(self._futures)

    def take(self, kwargs: dict):
        """The relief made for these ``render_sheet`` arguments (a FlateGrey naming its file,
        which the caller removes when the sheet is drawn), or None: not asked for, not made yet,
        no DEM under the frame, or the worker failed (logged once). The first time a relief is
        not ready the sheets have caught up with the worker: the reliefs it has not started are
        dropped (each sheet then shades its own, in the sheet workers, side by side) and only
        the one it is making is waited for."""
        fut = self._futures.pop(relief_key(kwargs), None)
        if fut is None:
            return None
        if not fut.done():
            self.stop()
            if fut.cancel() or fut.cancelled():
                self.made_here += 1
                return None
        try:
            flat = fut.result()
        except CancelledError:
            self.made_here += 1
            return None
        except Exception as e:  # noqa: BLE001 - the sheet shades it itself
            if not self._failed:
                log.warning("the print sheets' reliefs made ahead failed (%s: %s); the sheets "
                            "shade their own", type(e).__name__, e)
            self._failed = True
            self.stop()
            return None
        self.taken += 1
        return flat

    def stop(self) -> None:
        """Drop the reliefs the worker has not started (it ends after the one it is making)."""
        if self._ex is not None:
            self._ex.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker, wait for it to end (after the relief it is making) and remove the
        files."""
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None
        if self._manager is not None:
            self._manager.join(timeout=600)
            self._manager = None
        self._futures.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass


def available() -> bool:
    """Whether reliefs can be made ahead here: a run that may fork a worker
    (:func:`kaizhou_gis.forked.worker_count`, which also says no where fork is missing)."""
    from kaizhou_gis.forked import worker_count

    return worker_count() > 1
