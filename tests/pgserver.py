"""A throwaway PostgreSQL + PostGIS cluster for the database tests.

    python3 tests/pgserver.py start DIR   # prints `export KAIZHOU_TEST_PG_DSN=...`
    python3 tests/pgserver.py stop DIR

``.ci/run`` starts one before the tests and stops it at the end; the tests also start one
themselves (in a temp folder) when KAIZHOU_TEST_PG_DSN is not set, and are skipped with the
reason when that is impossible (no PostgreSQL server binaries or no PostGIS). The cluster listens
on 127.0.0.1 on a free port with password (SCRAM) authentication, so the tests can check wrong
credentials. PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres``
system user (or ``nobody``).
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path


class Unavailable(RuntimeError):
    """The server cannot be started here; the message says why."""


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise Unavailable("no PostgreSQL server binaries (initdb); on Debian: apt-get install postgresql "
                      "postgresql-<version>-postgis-3")


def _has_postgis(bindir: Path) -> bool:
    version = bindir.parent.name
    return any(Path(d).exists() for d in (f"/usr/share/postgresql/{version}/extension/postgis.control",
                                          str(bindir.parent / "share/extension/postgis.control")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _owner() -> tuple[str | None, int | None, int | None]:
    if os.geteuid() != 0:
        return None, None, None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise Unavailable("running as root and no 'postgres' or 'nobody' user to own the cluster")


def _run(cmd: list[str], user: str | None, **kw) -> subprocess.CompletedProcess:
    if user is not None:
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def start(base: str | Path) -> str:
    """Start a cluster under ``base``; return the superuser DSN (password inside, test-only)."""
    bindir = _bindir()
    if not _has_postgis(bindir):
        raise Unavailable(f"PostGIS is not installed for PostgreSQL {bindir.parent.name}; on Debian: "
                          f"apt-get install postgresql-{bindir.parent.name}-postgis-3")
    user, uid, gid = _owner()
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    data, sock = base / "data", base / "sock"
    sock.mkdir(exist_ok=True)
    password = secrets.token_hex(12)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if uid is not None:
        for p in (base, sock, pwfile):
            os.chown(p, uid, gid)
    r = _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
              "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
              f"--pwfile={pwfile}"], user)
    if r.returncode:
        raise Unavailable(f"initdb failed: {r.stderr.strip()[-400:]}")
    pwfile.unlink()
    port = _free_port()
    opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off")
    r = _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w",
              "-t", "60", "start"], user)
    if r.returncode:
        log = (base / "log").read_text(errors="replace")[-600:] if (base / "log").exists() else ""
        raise Unavailable(f"pg_ctl start failed: {r.stderr.strip()[-300:]} {log}")
    (base / "port").write_text(str(port))
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"


def stop(base: str | Path) -> None:
    base = Path(base)
    data = base / "data"
    if not (data / "postmaster.pid").exists():
        return
    user, _, _ = _owner()
    _run([str(_bindir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: pgserver.py start|stop DIR")
    if sys.argv[1] == "start":
        try:
            print(f"export KAIZHOU_TEST_PG_DSN='{start(sys.argv[2])}'")
        except Unavailable as e:
            print(f"echo 'PostgreSQL test server not started: {e}' >&2")
    else:
        stop(sys.argv[2])
