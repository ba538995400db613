"""Benchmark: how long the event loop stalls while an SD WebUI job moves large images.

An img2img edit with a ~30 MB PNG source (40 MB of base64 in the request) whose answer is a
~30 MB PNG (40 MB of base64 to decode), sent by the real ``SdWebUiProvider`` to the fake A1111
server (``tests.fake_sdwebui``) running in a *separate process*, so that only the client's own
work competes for its GIL. A ticker task sleeps 1 ms in a loop and records the longest gap
between its wake-ups: that is the longest time the UI (every NiceGUI client) could not be served.

    python bench/sd_payload.py [--runs 3] [--mb 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgedit.models import JobKind, Quality  # noqa: E402
from imgedit.providers.base import ProviderRequest  # noqa: E402
from imgedit.providers.sdwebui import SdWebUiProvider  # noqa: E402

SERVER = """
import sys, uvicorn
sys.path.insert(0, {root!r})
from tests.fake_sdwebui import FakeWebUI
fake = FakeWebUI(step_seconds=0.001)
fake.result_image = open({image!r}, "rb").read()
uvicorn.run(fake.app(), host="127.0.0.1", port={port}, log_level="warning")
"""


class NullSink:
    def progress(self, fraction: float, message: str | None = None, **_: object) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


def noise_png(megabytes: int) -> bytes:
    """A PNG of about ``megabytes`` MB: noise does not compress."""
    side = int((megabytes * 2**20 / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), random.Random(1).randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fake_server(image: bytes) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.png"
        path.write_bytes(image)
        port = free_port()
        code = SERVER.format(root=str(ROOT), image=str(path), port=port)
        process = subprocess.Popen([sys.executable, "-c", code])
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/sdapi/v1/progress", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the fake server did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


async def one_edit(url: str, source: bytes) -> tuple[float, float]:
    """(longest loop stall, wall time) in seconds for one edit."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            worst = max(worst, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
        provider = SdWebUiProvider(client=client, urls=[url])
        request = ProviderRequest(kind=JobKind.EDIT, prompt="a harbour", quality=Quality.LOW, image=source)
        result = await provider.edit(request, NullSink())
    wall = time.perf_counter() - started
    done.set()
    await ticking
    assert result.image == source, "the answer did not survive the round trip"
    return worst, wall


async def main(runs: int, megabytes: int) -> None:
    source = noise_png(megabytes)
    print(f"source and answer: {len(source) / 2**20:.1f} MB PNG, {len(source) * 4 / 3 / 2**20:.1f} MB base64")
    with fake_server(source) as url:
        stalls = []
        for run in range(1, runs + 1):
            worst, wall = await one_edit(url, source)
            stalls.append(worst)
            print(f"run {run}: longest loop stall {worst * 1000:6.1f} ms   (edit took {wall:.2f} s)")
    print(f"median longest stall over {runs} runs: {statistics.median(stalls) * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=30, help="size of the source and answer PNGs")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.mb))
