"""Run an ASGI app as a real HTTP server on 127.0.0.1, in a background thread.

Provider tests talk to these servers over real sockets: the production provider code runs
unchanged, with only its base URL pointing here.

Usage::

    with serve(app) as base_url:
        ...  # e.g. httpx.get(base_url + '/sdapi/v1/progress')

``serve_elsewhere`` runs the app in a separate Python process instead: for measurements of this
process's event loop, which an in-process server's CPU work would disturb through the GIL.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, *, startup_timeout: float = 15.0) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, name=f"loopback-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"loopback server on port {port} did not start")
        time.sleep(0.01)  # polling the server thread's start flag, bounded by the deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serve_elsewhere(setup: str, app: str, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Serve the ASGI app the expression ``app`` gives, after running ``setup``, in a child process.

    Usage: ``serve_elsewhere("from tests.fake_sdwebui import FakeWebUI", "FakeWebUI().app()")``
    """
    port = free_port()
    code = (
        f"import sys, uvicorn\nsys.path.insert(0, {str(ROOT)!r})\n{setup}\n"
        f"uvicorn.run({app}, host='127.0.0.1', port={port}, log_level='warning')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server process on port {port} did not start")
            time.sleep(0.05)  # polling the child's port, bounded by the deadline
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
