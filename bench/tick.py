"""Benchmark: the cost of the 1-second gallery tick with 100 live loading cards.

Runs the real app (main.py) in NiceGUI's in-process user simulation, submits 100 jobs whose
work never finishes, opens the gallery, then calls the page's own ui.timer callback and
measures per tick:
  - server CPU: time.process_time() around the tick plus the serialisation the outbox would do
    (the element updates and the other messages, e.g. run_javascript, it queued);
  - bytes sent: that JSON, uncompressed (the websocket deflates it further);
  - socket messages per tick (NiceGUI sends all element updates of one tick as one message).

Scenarios:
  idle       nothing changed on the server (estimated progress; the browser advances it)
  reporting  every job reported new progress since the last tick (the worst case)
  stage      every job changed stage since the last tick

    python bench/tick.py [--cards 100] [--ticks 50]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# NiceGUI's user simulation resets its globals the way it does under pytest only when it
# believes it runs there; it checks this variable.
os.environ.setdefault("PYTEST_CURRENT_TEST", "bench/tick.py")


async def run(
    cards: int, ticks: int, profile: str | None = None
) -> dict[str, tuple[float, float, float, float]]:
    from nicegui import ui
    from nicegui.testing.user_simulation import user_simulation

    results: dict[str, tuple[float, float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IMGEDIT_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["IMGEDIT_MAX_CONCURRENT"] = str(cards)
        async with user_simulation(main_file=ROOT / "main.py") as user:
            services = sys.modules["imgedit.ui"].services
            jobs_mod = sys.modules["imgedit.jobs"]
            models = sys.modules["imgedit.models"]
            release, all_running = asyncio.Event(), asyncio.Event()
            contexts = []

            async def never_done(ctx):  # type: ignore[no-untyped-def]
                ctx.stage(jobs_mod.JobStage.PROCESSING, "Working")
                contexts.append(ctx)
                if len(contexts) == cards:
                    all_running.set()
                await release.wait()
                return None

            source = services.store.list()[0].id
            for i in range(cards):
                spec = jobs_mod.JobSpec(
                    kind=models.JobKind.EDIT,
                    prompt=f"job {i}",
                    quality=models.Quality.MEDIUM,
                    provider="local",
                    source_image_id=source,
                )
                services.registry.submit(spec, never_done)
            await all_running.wait()

            await user.open("/")
            client = user.client
            timer = next(iter(user.find(ui.timer).elements))
            timer.callback()  # first sync builds the cards; not measured

            def measure(name: str, before_tick) -> None:  # type: ignore[no-untyped-def]
                cpu, sizes, counts = [], [], []
                profiler = cProfile.Profile() if name == profile else None
                for n in range(ticks):
                    before_tick(n)
                    client.outbox.updates.clear()
                    client.outbox.messages.clear()
                    if profiler is not None:
                        profiler.enable()
                    start = time.process_time()
                    timer.callback()
                    payload = {str(eid): el._to_dict() for eid, el in client.outbox.updates.items()}
                    data = [orjson.dumps(payload)] if payload else []
                    data += [orjson.dumps(message[2]) for message in client.outbox.messages]
                    cpu.append(time.process_time() - start)
                    if profiler is not None:
                        profiler.disable()
                    sizes.append(sum(len(d) for d in data))
                    counts.append(len(data))
                if profiler is not None:
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
                results[name] = (
                    statistics.median(cpu) * 1000,
                    max(cpu) * 1000,
                    statistics.mean(sizes),
                    statistics.mean(counts),
                )

            measure("idle", lambda n: None)
            measure("reporting", lambda n: [c.progress((n + 1) / (ticks + 2)) for c in contexts])
            stages = [jobs_mod.JobStage.PROCESSING, jobs_mod.JobStage.FINALIZING]
            measure("stage", lambda n: [c.stage(stages[n % 2], "step") for c in contexts])
            release.set()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument(
        "--profile", choices=["idle", "reporting", "stage"], help="print cProfile of a scenario"
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.cards, args.ticks, args.profile))
    print(f"{args.cards} live loading cards, {args.ticks} ticks per scenario")
    print(f"{'scenario':<10} {'CPU median ms':>14} {'CPU max ms':>11} {'bytes/tick':>11} {'msgs/tick':>10}")
    for name, (median, worst, size, count) in results.items():
        print(f"{name:<10} {median:>14.2f} {worst:>11.2f} {size:>11.0f} {count:>10.1f}")


if __name__ == "__main__":
    main()
