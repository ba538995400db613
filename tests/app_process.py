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


class AppProcess:
    """One ``python main.py`` child: started, ready, then stopped, terminated or killed."""

    def __init__(
        self, folder: Path, env_extra: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = folder / "data"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "NICEGUI_", "IMGEDIT_", "OPENAI_"))
        }
        env.update(env_extra or {})
        self.log_path = folder / f"server-{self.port}.log"
        command = [
            sys.executable,
            "main.py",
            "--port",
            str(self.port),
            "--no-show",
            "--data-dir",
            str(self.data_dir),
            *args,
        ]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code in {200, 303}:  # 303: to /login
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer within {within} s")
            time.sleep(0.2)  # polling a subprocess with a deadline

    def stop(self) -> None:
        """A clean stop (SIGTERM), as a service manager or Ctrl+C would."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs, nothing is flushed."""
        self.process.kill()
        self.process.wait(timeout=15)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_app(
    folder: Path, env_extra: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[str]:
    app = AppProcess(folder, env_extra, args)
    try:
        app.wait_ready()
        yield app.url
    finally:
        app.stop()
    assert "Traceback" not in app.log, app.log
