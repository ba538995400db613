"""``python main.py`` as a user starts it, for tests that need the real server and its port.

Usage::

    with running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": url}) as base_url:
        httpx.get(base_url + "/")

The child gets a clean environment (no developer keys, nothing of pytest's or NiceGUI's test
harness), its own data dir (``folder/data``) and a log file (``folder/server-<port>.log``),
which must hold no traceback when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_app(folder: Path, env_extra: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "NICEGUI_", "IMGEDIT_", "OPENAI_"))
    }
    env.update(env_extra or {})
    log_path = folder / f"server-{port}.log"
    command = [
        sys.executable,
        "main.py",
        "--port",
        str(port),
        "--no-show",
        "--data-dir",
        str(folder / "data"),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        try:
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited: {log_path.read_text()}")
                try:
                    if httpx.get(url + "/", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("server did not answer within 60 s")
                time.sleep(0.2)  # polling a subprocess with a deadline
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()
