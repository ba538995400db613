"""Benchmark P2: the event loop's lag while 8 local edits of 12-megapixel photos run at once.

Builds the real services (store on a temp data dir, job registry, local engine) the way main.py
does, with ``--max-concurrent`` as large as the number of jobs, stores the photos, then starts a
probe that asks the loop to wake it every 10 ms and records how late each wake-up is, and submits
all the edits at once. Reports lag p50 / p99 / max and the wall time.

The photos are photo-like (soft shapes, detail and grain, so they neither compress nor filter
trivially), ``--width`` × ``--height`` (4000 × 3000 = 12 MP), encoded as a camera would (JPEG,
or PNG with ``--format png``).

``--part`` measures one part of a job alone, to see where lag comes from:
  jobs     the whole job through the registry: read, local engine, store (normalize + thumbnail)
  engine   only the local engine's edit (decode, operations, PNG encode), called directly
  storage  only ``store.add`` of the engine's results (normalize, thumbnail, files, row)

``--pool default`` puts image work back into the loop's default executor, which disk and database
calls share (the state before the cpu pool), for a before figure. ``--pool process`` (with
``--part engine`` only) runs the engine's work in a process pool of as many processes as the cpu
pool has threads, without progress or cancellation: what processes would buy the loop.

``--diagnose MS`` runs the loop in asyncio's debug mode and logs each callback that held it longer
than MS (debug mode costs time itself; use it to find culprits, not for the figures).

    python bench/loop_lag.py [--jobs 8] [--runs 3] [--part jobs|engine|storage] [--pool cpu|default]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgedit import cpu  # noqa: E402
from imgedit.config import Settings  # noqa: E402
from imgedit.jobs import JobStage  # noqa: E402
from imgedit.models import ImageOrigin, JobKind, Quality  # noqa: E402
from imgedit.providers import local  # noqa: E402
from imgedit.providers.base import ProviderRequest  # noqa: E402
from imgedit.providers.local_parse import parse_prompt  # noqa: E402
from imgedit.services import Services, build_services  # noqa: E402

PROBE_INTERVAL = 0.010
POOLS = {
    "cpu": "cpu pool (threads)",
    "default": "default executor (threads)",
    "process": "process pool (processes)",
}
CONTROL = """
import asyncio, sys, threading, time
lags = []
async def main():
    gone = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), gone.set()), daemon=True).start()
    loop = asyncio.get_running_loop()
    while not gone.is_set():
        asked = loop.time()
        await asyncio.sleep(0.010)
        lags.append(max(0.0, loop.time() - asked - 0.010) * 1000)
asyncio.run(main())
lags.sort()
print(lags[len(lags) // 2], lags[int(len(lags) * 0.99)], lags[-1])
"""
"""The same probe in a process of its own, with no image work: its lag is the machine's (other
processes, the OS), not this process's; the difference is what our threads cost the loop."""
PROMPT = "warmer and sharpen and add a vignette"


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """A deterministic photo-like RGB image: large soft shapes, finer detail and sensor grain."""
    rng = random.Random(seed)

    def blobs(cols: int, rows: int) -> Image.Image:
        small = Image.frombytes("RGB", (cols, rows), rng.randbytes(cols * rows * 3))
        return small.resize((width, height), Image.Resampling.BICUBIC)

    image = Image.blend(blobs(8, 6), blobs(max(2, width // 50), max(2, height // 50)), 0.35)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    grain = noise.point(lambda v: 128 + (v - 128) // 10).convert("RGB")
    return ImageChops.add(image, grain, scale=1.0, offset=-128)


def encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    if format == "jpeg":
        image.save(buffer, "JPEG", quality=90)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


class NullSink:
    """A progress sink that keeps nothing (the engine part alone has no job to report to)."""

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


class _DefaultPool(ThreadPoolExecutor):
    """The state before the cpu pool: image work in the one default executor that to_thread uses.

    Code already in one of its threads (storage's write, which hands its Pillow work to the cpu
    pool and waits) runs the work inline, as it did then; waiting on the same pool would deadlock.
    """

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not threading.current_thread().name.startswith("asyncio"):
            return super().submit(fn, *args, **kwargs)
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            done.set_exception(exc)
        return done


def use_default_pool() -> None:
    shared = _DefaultPool(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="asyncio")
    asyncio.get_running_loop().set_default_executor(shared)
    cpu._pool = shared


def edit_in_process(source: bytes, quality: Quality) -> bytes:
    """The local engine's edit work in a worker process (no progress, no stop)."""
    png, _notes = local._edit_work(source, parse_prompt(PROMPT), quality, lambda _f, _m: None, lambda: False)
    return png


def make_services(folder: str, jobs: int) -> Services:
    return build_services(Settings(data_dir=Path(folder), samples=False, show=False, max_concurrent=jobs))


async def probe(lags: list[float], stop: asyncio.Event, busy: list[float] | None = None) -> None:
    """Record how late each 10 ms wake-up is; ``busy``: the loop thread's own CPU time in each
    interval (lag with little of it was waiting for the GIL or a core, not work on the loop)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked, cpu_before = loop.time(), time.thread_time()
        await asyncio.sleep(PROBE_INTERVAL)
        lags.append(max(0.0, loop.time() - asked - PROBE_INTERVAL))
        if busy is not None:
            busy.append(time.thread_time() - cpu_before)


async def one_run(
    args: argparse.Namespace, source: bytes
) -> tuple[list[float], list[float], float, list[float]]:
    quality = Quality(args.quality)
    with tempfile.TemporaryDirectory() as folder:
        services = make_services(folder, args.jobs)
        try:
            records = [
                await services.store.add(source, origin=ImageOrigin.UPLOAD, name=f"photo {i}.{args.format}")
                for i in range(args.jobs)
            ]
            provider = services.providers.get("local")
            request = ProviderRequest(kind=JobKind.EDIT, prompt=PROMPT, quality=quality, image=source)
            results: list[bytes] = []
            if args.part == "storage":  # the engine's results, made before the clock starts
                results = [(await provider.edit(request, NullSink())).image] * args.jobs
            lags: list[float] = []
            busy: list[float] = []
            stop = asyncio.Event()
            watcher = asyncio.create_task(probe(lags, stop, busy))
            control = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CONTROL, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            await asyncio.sleep(0.05)  # a few idle samples first, so an empty run still has some
            started = time.perf_counter()
            if args.part == "jobs":
                ids = [services.studio.submit_edit(r.id, PROMPT, quality, "local") for r in records]
                finals = [await services.registry.wait(i) for i in ids]
                outcomes = Counter(f.stage for f in finals)
                if outcomes != {JobStage.COMPLETED: args.jobs}:
                    raise SystemExit(f"FAIL: {dict(outcomes)}: {[f.error for f in finals if f.error]}")
            elif args.part == "engine" and args.pool == "process":
                loop = asyncio.get_running_loop()
                with ProcessPoolExecutor(
                    cpu.WORKERS, mp_context=multiprocessing.get_context("forkserver")
                ) as pool:
                    calls = (
                        loop.run_in_executor(pool, edit_in_process, source, quality) for _ in range(args.jobs)
                    )
                    await asyncio.gather(*calls)
            elif args.part == "engine":
                await asyncio.gather(*(provider.edit(request, NullSink()) for _ in range(args.jobs)))
            else:
                await asyncio.gather(*(services.store.add(png, origin=ImageOrigin.EDIT) for png in results))
            wall = time.perf_counter() - started
            stop.set()
            await watcher
            out, _err = await control.communicate(b"")
            control_ms = [float(v) for v in out.split()]
        finally:
            await services.close()
    return lags, busy, wall, control_ms


def report(
    label: str, lags: list[float], busy: list[float], wall: float, control: list[float]
) -> dict[str, Any]:
    lags_ms = sorted(lag * 1000 for lag in lags)
    p = statistics.quantiles(lags_ms, n=100)
    print(
        f"{label}: wall {wall:.2f} s; event-loop lag ({len(lags_ms)} samples of 10 ms): "
        f"p50 {p[49]:.1f} ms, p99 {p[98]:.1f} ms, max {lags_ms[-1]:.1f} ms; "
        f"loop thread CPU {sum(busy) / wall:.0%} of the wall time",
        flush=True,
    )
    worst = sorted(zip(lags, busy, strict=True), reverse=True)[:5]
    print(
        "  worst wake-ups (late ms / loop-thread CPU ms in that interval): "
        + ", ".join(f"{lag * 1000:.0f}/{cpu_s * 1000:.0f}" for lag, cpu_s in worst)
    )
    print(
        f"  control probe in an idle process meanwhile: p50 {control[0]:.1f} ms, p99 {control[1]:.1f} ms, "
        f"max {control[2]:.1f} ms"
    )
    return {"p50": p[49], "p99": p[98], "max": lags_ms[-1], "wall": wall, "control p99": control[1]}


async def run(args: argparse.Namespace) -> None:
    if args.pool == "process" and args.part != "engine":
        raise SystemExit("--pool process measures the engine part alone: add --part engine")
    if args.pool == "default":
        use_default_pool()
    if args.diagnose:  # asyncio logs every callback that holds the loop longer than this
        logging.basicConfig(level=logging.WARNING, format="%(relativeCreated)8.0f ms  %(message)s")
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = args.diagnose / 1000
    source = encoded(photo(args.width, args.height), args.format)
    workers = cpu.WORKERS if args.pool == "process" else cpu.executor()._max_workers
    print(
        f"{args.jobs} local edits ({args.part}) of {args.width}x{args.height} {args.format.upper()} "
        f"({len(source) / 2**20:.1f} MB), quality {args.quality}, prompt “{PROMPT}”, "
        f"image work in the {POOLS[args.pool]} ({workers}), {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []
    for number in range(args.runs):
        lags, busy, wall, control = await one_run(args, source)
        rows.append(report(f"run {number + 1}", lags, busy, wall, control))
    if args.runs > 1:
        print(
            "median of runs: "
            + ", ".join(f"{key} {statistics.median(r[key] for r in rows):.2f}" for key in rows[0])
            + " (ms; wall in s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--quality", choices=[q.value for q in Quality], default=Quality.HIGH.value)
    parser.add_argument("--part", choices=("jobs", "engine", "storage"), default="jobs")
    parser.add_argument("--pool", choices=("cpu", "default", "process"), default="cpu")
    parser.add_argument(
        "--diagnose",
        type=float,
        default=0,
        metavar="MS",
        help="log loop callbacks that run longer (debug mode)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
