"""Peak memory while a zip of N gallery images is sent (``imgedit.ui.archive``): it should stay
flat, whatever the archive's size.

A real ImageStore (real files, real SQLite) gets N images of incompressible pixels; then the
zip is made twice, and the growth of this process's peak RSS (VmHWM, reset through
``/proc/self/clear_refs``, so Linux only) is measured for each:

1. ``ZipStream.chunks()`` consumed in process (the archive's own cost);
2. the same stream served by uvicorn (``StreamingResponse``, as the route serves it) on
   loopback and fetched by ``curl`` in another process, so the client's buffers do not count.

The archive is checked afterwards (size, member count; ``unzip -t`` on the curl copy).

Usage: ``python bench/zip_memory.py [--images 2000] [--side 256]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import StreamingResponse  # noqa: E402
from PIL import Image  # noqa: E402

from imgedit.models import ImageId, ImageOrigin  # noqa: E402
from imgedit.storage import ImageStore  # noqa: E402
from imgedit.ui.archive import ZipStream  # noqa: E402


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> int:
    """Reset VmHWM to the current RSS; returns that RSS in KiB."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return status_kib("VmRSS")


def noise_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


async def fill(store: ImageStore, count: int, side: int) -> list[ImageId]:
    pictures = [noise_png(side) for _ in range(8)]
    ids = []
    for i in range(count):
        record = await store.add(
            pictures[i % len(pictures)], origin=ImageOrigin.UPLOAD, name=f"photo {i % 50}"
        )
        ids.append(record.id)
    return ids


async def in_process(store: ImageStore, ids: list[ImageId]) -> tuple[int, int, int]:
    base = reset_peak()
    stream = ZipStream(store, ids)
    size = 0
    async for chunk in stream.chunks():
        size += len(chunk)
    return size, stream.included, status_kib("VmHWM") - base


async def over_http(store: ImageStore, ids: list[ImageId], folder: Path) -> tuple[int, int]:
    web = FastAPI()

    @web.get("/zip")
    async def zip_route() -> StreamingResponse:
        return StreamingResponse(ZipStream(store, ids).chunks(), media_type="application/zip")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.05)
    target = folder / "fetched.zip"
    base = reset_peak()
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", str(target), f"http://127.0.0.1:{port}/zip"
    )
    assert await curl.wait() == 0
    grown = status_kib("VmHWM") - base
    server.should_exit = True
    await task
    return target.stat().st_size, grown


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=256, help="pixels a side (noise: ~3 bytes a pixel)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = ImageStore(folder / "data", fsync=lambda fd: None)  # durability is not measured here
        store.open()
        started = time.perf_counter()
        ids = await fill(store, args.images, args.side)
        print(
            f"{args.images} images of {args.side}x{args.side} stored in {time.perf_counter() - started:.0f} s"
        )
        print(f"RSS before: {status_kib('VmRSS') / 1024:.0f} MiB")

        size, included, grown = await in_process(store, ids)
        print(
            f"in process: {size / 2**20:.0f} MiB zip of {included} images; peak RSS grew {grown / 1024:.1f} MiB"
        )

        http_size, http_grown = await over_http(store, ids, folder)
        unzip = ["unzip", "-tq", str(folder / "fetched.zip")]
        check = await asyncio.to_thread(subprocess.run, unzip, capture_output=True, text=True)
        print(
            f"over HTTP (uvicorn + curl): {http_size / 2**20:.0f} MiB zip; peak RSS grew "
            f"{http_grown / 1024:.1f} MiB; unzip -t: {check.stdout.strip() or check.stderr.strip()}"
        )
        store.close()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
