"""Benchmark P3: a local-engine job's wall time ÷ the same Pillow operations called directly.

One 12-megapixel photo-like JPEG (4000 × 3000, from bench/loop_lag.py) and one fixed edit prompt.
Each run, one at a time on a quiet loop, times:

  engine   the local engine's own work called directly, in this thread: decode (JPEG draft),
           ``apply_operations`` and the PNG encode (``local._edit_work``, what the job's worker runs)
  imaging  the store's image work on that PNG as two calls: ``imaging.normalize`` + ``thumbnail``
  one-decode  the same from one decode, ``imaging.normalize_with_thumbnail`` (what the store calls)
  store    ``store.add`` of that PNG: the image work above plus the files (fsync) and the row
  job      a real edit job through the registry (``Studio.submit_edit``), from submit until its
           image is stored: read the source, the engine in the cpu pool, progress, stages and the
           journal, ``store.add``

and prints the medians, the best runs (least disturbed on a shared machine) and two ratios:
job ÷ engine (P3 as stated: everything the job does beyond the engine's operations counts as
overhead, including the store's decode for validation, the thumbnail and the fsyncs), and
job ÷ (engine + store) (what the job machinery itself adds: thread hand-offs, progress, stages,
journal).

    python bench/local_overhead.py [--runs 5] [--quality high] [--format jpeg|png]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from loop_lag import PROMPT, encoded, make_services, photo  # noqa: E402

from imgedit import imaging  # noqa: E402
from imgedit.jobs import JobStage  # noqa: E402
from imgedit.models import ImageOrigin, Quality  # noqa: E402
from imgedit.providers import local  # noqa: E402
from imgedit.providers.local_parse import parse_prompt  # noqa: E402


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


async def timed_async(function: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await function()
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    quality = Quality(args.quality)
    source = encoded(photo(args.width, args.height), args.format)
    ops = parse_prompt(PROMPT)
    png, _notes = local._edit_work(source, ops, quality, lambda _f, _m: None, lambda: False)
    print(
        f"{args.width}x{args.height} {args.format.upper()} source ({len(source) / 2**20:.1f} MB), "
        f"quality {args.quality}, prompt “{PROMPT}” → PNG {imaging.size_of(png)[0]}x{imaging.size_of(png)[1]} "
        f"({len(png) / 2**20:.1f} MB); {args.runs} runs after a warm-up, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    times: dict[str, list[float]] = {"engine": [], "imaging": [], "one-decode": [], "store": [], "job": []}
    with tempfile.TemporaryDirectory() as folder:
        services = make_services(folder, 1)
        try:
            record = await services.store.add(source, origin=ImageOrigin.UPLOAD, name="photo")

            async def job() -> None:
                job_id = services.studio.submit_edit(record.id, PROMPT, quality, "local")
                final = await services.registry.wait(job_id)
                if final.stage is not JobStage.COMPLETED:
                    raise SystemExit(f"FAIL: the job ended {final.stage}: {final.error}")

            for number in range(args.runs + 1):  # the first is a warm-up (imports, caches, pool threads)
                engine = timed(
                    lambda: local._edit_work(source, ops, quality, lambda _f, _m: None, lambda: False)
                )
                image_work = timed(lambda: (imaging.normalize(png), imaging.thumbnail(png)))
                one_decode = timed(lambda: imaging.normalize_with_thumbnail(png))
                store = await timed_async(lambda: services.store.add(png, origin=ImageOrigin.EDIT))
                whole = await timed_async(job)
                if number:
                    for key, value in zip(times, (engine, image_work, one_decode, store, whole), strict=True):
                        times[key].append(value)
                    print(
                        f"run {number}: engine {engine:.2f} s, imaging {image_work:.2f} s, "
                        f"one-decode {one_decode:.2f} s, store {store:.2f} s, job {whole:.2f} s",
                        flush=True,
                    )
        finally:
            await services.close()
    median = {key: statistics.median(values) for key, values in times.items()}
    print("medians: " + ", ".join(f"{key} {value:.3f} s" for key, value in median.items()))
    print(
        f"P3 job ÷ engine: {median['job'] / median['engine']:.3f} (target ≤ 1.15); "
        f"job ÷ (engine + store): {median['job'] / (median['engine'] + median['store']):.3f}; "
        f"store's share of the job: {median['store'] / median['job']:.0%}"
    )
    best = {key: min(values) for key, values in times.items()}
    print(
        f"best runs (least disturbed by other processes): job ÷ engine {best['job'] / best['engine']:.3f}, "
        f"job ÷ (engine + store) {best['job'] / (best['engine'] + best['store']):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--quality", choices=[q.value for q in Quality], default=Quality.HIGH.value)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
