"""Atomic files and output folders: every file kaizhou-gis writes goes through
:func:`atomic_path`.

A file is first written to a temporary file outside its target folder (this process's scratch
folder in the system temp) and then put over the target atomically, so an interrupted run never
leaves a half-written file: a reader sees the previous complete file or the new complete one, and
a killed run leaves no partial file in the output folder. :func:`output_folder` checks an output
folder before any analysis and locks it for one run.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Timestamp written inside GeoPackages and XLSX files (so reruns give identical bytes).
FIXED_DATE = "2024-01-01T00:00:00Z"

#: Name of the lock file in an output folder: one run at a time writes into a folder.
LOCK_NAME = ".kaizhou-gis.lock"
#: Pattern of the temporary files written beside a target when nothing better is possible.
_TEMP_GLOB = ".*.tmp*"

_UMASK = os.umask(0o022)
os.umask(_UMASK)

_scratch: dict[str, Any] = {}  # this process's scratch folder in the system temp (and its lock fd)
_held_locks: dict[str, list[int]] = {}  # real path of an output folder -> [lock fd, depth]


def release_inherited_locks() -> None:
    """In a process forked from a run: close the lock files it inherited (the output folders'
    and the scratch folder's) and forget them. The locks stay with the run that took them; a
    child that outlived a killed run would otherwise keep ``--out`` locked and its scratch folder
    from being swept."""
    fds = [entry[0] for entry in _held_locks.values()]
    if "fd" in _scratch:
        fds.append(_scratch["fd"])
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_locks.clear()
    _scratch.clear()


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


class ScratchFile:
    """A finished file (a print sheet's PDF or PNG) waiting in a run's scratch folder
    (:func:`_scratch_dir`) until :func:`kaizhou_gis.outputs.write_products` puts it in place
    (:meth:`move_to`: one rename where the scratch folder and ``--out`` share a filesystem).

    Why: a district's sheets are drawn in worker processes while the main process builds the
    HTML pages; each worker writes its sheet's files here (:meth:`of`, into the run's own scratch
    folder, named by the run) and sends back only their names, so the bytes are neither sent
    through a pipe nor held in memory (at 10x, 400 sheets of some 5 MB each). ``bytes(obj)``
    reads the data. A file never written is removed when its object is dropped (in the process
    that received it; the worker that wrote it hands it over)."""

    def __init__(self, path: str | Path, size: int, *, owned: bool = True):
        self.path = Path(path)
        self.size = int(size)
        self._drop = weakref.finalize(self, _unlink_quietly, str(self.path)) if owned else None

    @classmethod
    def of(cls, data: bytes, folder: str | Path | None = None, *, owned: bool = True) -> ScratchFile:
        """``data`` written to a new file in ``folder`` (default: this process's scratch folder).
        ``owned=False`` in a worker that hands the file to the process that sent the work."""
        folder = folder if folder is not None else _scratch_dir()
        if folder is None:
            raise OSError("no scratch folder: the system temp folder cannot be used")
        fd, name = tempfile.mkstemp(prefix="file-", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:  # disk full, interrupted: no half file left behind
            _unlink_quietly(name)
            raise
        return cls(name, len(data), owned=owned)

    def __reduce__(self):  # unpickled in the receiving process, which then owns the file
        return (ScratchFile, (str(self.path), self.size))

    def __copy__(self) -> ScratchFile:  # one owner of one file: a copy is the same object
        return self

    def __deepcopy__(self, memo) -> ScratchFile:
        return self

    def discard(self) -> None:
        """Remove the file now (a worker's files when its sheet is sent back as bytes after all)."""
        _unlink_quietly(str(self.path))
        if self._drop is not None:
            self._drop.detach()

    def blocks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The data, a block at a time."""
        with open(self.path, "rb") as fh:
            while block := fh.read(size):
                yield block

    def __bytes__(self) -> bytes:
        return self.path.read_bytes()

    def move_to(self, target: str | Path) -> Path:
        """Put the file at ``target`` atomically (as :func:`atomic_path` does), with the mode a
        new file gets; afterwards this object reads it there."""
        target = Path(target)
        if self._drop is None or not self._drop.alive:  # already placed: copied from there
            with atomic_path(target) as tmp:
                shutil.copyfile(self.path, tmp)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o666 & ~_UMASK)
        _move_into_place(self.path, target)
        # another filesystem: the bytes were copied into place and the scratch file stays
        _unlink_quietly(str(self.path))
        self._drop.detach()
        self.path = target
        return target


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


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
