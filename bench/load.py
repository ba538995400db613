"""Benchmark: 200 jobs submitted from 5 clients at once, and the event loop's lag meanwhile.

Builds the real services (store on a temp data dir, job registry, local engine) the way
main.py does, starts a probe that asks the loop to wake it every 10 ms and records how late
each wake-up is, then lets 5 submitters queue 40 local-engine generations each, interleaved.
Reports the lag percentiles, the wall time and throughput, and checks that every job is
accounted for exactly once.

    python bench/load.py [--clients 5] [--per-client 40] [--size 256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgedit.config import Settings  # noqa: E402
from imgedit.jobs import JobStage  # noqa: E402
from imgedit.models import Quality  # noqa: E402
from imgedit.services import build_services  # noqa: E402

PROBE_INTERVAL = 0.010


async def probe(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(PROBE_INTERVAL)
        lags.append(max(0.0, loop.time() - asked - PROBE_INTERVAL))


async def run(clients: int, per_client: int, side: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        services = build_services(Settings(data_dir=Path(folder), samples=False, show=False))
        lags: list[float] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(probe(lags, stop))
        started = time.perf_counter()

        async def client(number: int) -> list[str]:
            ids = []
            for i in range(per_client):
                ids.append(
                    services.studio.submit_generate(f"waves {number}-{i}", Quality.LOW, "local", (side, side))
                )
                await asyncio.sleep(0)
            return ids

        job_ids = [j for ids in await asyncio.gather(*(client(n) for n in range(clients))) for j in ids]
        finals = [await services.registry.wait(j) for j in job_ids]
        wall = time.perf_counter() - started
        stop.set()
        await watcher
        await services.close()

    total = clients * per_client
    outcomes = Counter(f.stage for f in finals)
    results = Counter(f.result_image_id for f in finals)
    lags_ms = sorted(lag * 1000 for lag in lags)
    p = statistics.quantiles(lags_ms, n=100)
    print(f"jobs: {total} from {clients} clients, local engine, {side}x{side} px, low quality")
    print(f"outcomes: {dict(outcomes)}; distinct results: {len(results)}")
    print(f"wall time: {wall:.2f} s, throughput: {total / wall:.1f} jobs/s")
    print(
        f"event-loop lag (10 ms probe, {len(lags_ms)} samples): p50 {p[49]:.1f} ms, "
        f"p99 {p[98]:.1f} ms, max {lags_ms[-1]:.1f} ms"
    )
    if outcomes != {JobStage.COMPLETED: total} or len(results) != total:
        raise SystemExit("FAIL: a job was lost or ran twice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.per_client, args.size))


if __name__ == "__main__":
    main()
