"""Run the web workbench on a free loopback port in a background thread (for tests)."""
from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator

from kaizhou_gis.web.app import create_app
from kaizhou_gis.web.workbench import Workbench


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(wb: Workbench) -> Iterator[str]:
    """Serve ``wb`` on 127.0.0.1:<free port>; yields the base URL; stops the server after."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(wb), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("the workbench server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=15)
        wb.close()


def raw_get(base: str, path: str, *, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A request with the path sent exactly as given (no client-side normalisation of /../)."""
    host = base.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=120)
    conn.putrequest(method, path, skip_accept_encoding=True,
                    skip_host=any(k.lower() == "host" for k in (headers or {})))
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def wait_done(wb: Workbench, key: str | None = None, timeout: float = 600) -> None:
    run = wb.get_run(key) if key else wb.base
    assert run is not None and run.done.wait(timeout), "run did not finish"
