"""Worker processes a run forks to use the machine's other CPUs (print sheets, their reliefs,
the sheets' subset fonts): how many it may use (:func:`worker_count`) and how each starts
(:func:`forked_worker_setup`)."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: Environment variable: most worker processes a run forks (default: the CPUs this process may
#: use; ``1`` does everything in the process itself).
WORKERS_ENV = "KAIZHOU_GIS_WORKERS"


def worker_count() -> int:
    """How many worker processes a run may fork: ``$KAIZHOU_GIS_WORKERS`` or the usable CPUs; 1
    (none: everything in this process) outside the main thread or in a daemon process (a web
    request, a dask worker), where forking is not safe or not allowed."""
    import multiprocessing
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            multiprocessing.current_process().daemon or not hasattr(os, "fork"):
        return 1
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("%s=%r is not a whole number; using the CPU count", WORKERS_ENV, env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def forked_worker_setup() -> None:
    """First thing in a worker process forked by a run: it lets go of the run's locks
    (:func:`kaizhou_gis.outputs.files.release_inherited_locks`), leaves Ctrl-C to the run (which
    stops its pools; no traceback from the worker), and ends when the run's process is gone (a
    run killed with SIGKILL leaves no worker behind)."""
    import signal
    import threading
    import time

    from kaizhou_gis.outputs.files import release_inherited_locks

    release_inherited_locks()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="kz-parent-watch", daemon=True).start()
