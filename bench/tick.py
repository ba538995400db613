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

The garbage collector is first set up as the real server does once started (the start-up heap
frozen, young collections rarer: imgedit/ui/heap.py; ``--no-freeze`` to compare).

    python bench/tick.py [--cards 100] [--ticks 50] [--profile SCENARIO] [--no-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
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
    cards: int, ticks: int, profile: str | None = None, *, freeze: bool = True
) -> tuple[dict[str, tuple[float, float, float, float]], dict[str, tuple[int, int, float, float]]]:
    from nicegui import ui
    from nicegui.testing.user_simulation import user_simulation

    results: dict[str, tuple[float, float, float, float]] = {}
    garbage: dict[str, tuple[int, int, float, float]] = {}
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

            if freeze:
                from imgedit.ui import heap

                heap.after_startup()  # what the real server does once start-up is done
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
                collections.clear()
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
                    pstats.Stats(profiler).sort_stats(os.environ.get("TICK_SORT", "cumulative")).print_stats(
                        45
                    )
                results[name] = (
                    statistics.median(cpu) * 1000,
                    max(cpu) * 1000,
                    statistics.mean(sizes),
                    statistics.mean(counts),
                )
                full = [ms for generation, ms in collections if generation == 2]
                longest = max((ms for _generation, ms in collections), default=0.0)
                garbage[name] = (len(collections), len(full), max(full, default=0.0), longest)

            # Garbage collections during the measured ticks (and the set-up between them): how
            # many, how many full ones, and the longest full one.
            collections: list[tuple[int, float]] = []
            started: list[float] = []

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    started[:] = [time.process_time()]
                elif started:
                    collections.append((info["generation"], (time.process_time() - started[0]) * 1000))

            gc.callbacks.append(on_gc)

            measure("idle", lambda n: None)
            measure("reporting", lambda n: [c.progress((n + 1) / (ticks + 2)) for c in contexts])
            stages = [jobs_mod.JobStage.PROCESSING, jobs_mod.JobStage.FINALIZING]
            measure("stage", lambda n: [c.stage(stages[n % 2], "step") for c in contexts])
            release.set()
            gc.callbacks.remove(on_gc)
    return results, garbage


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument(
        "--profile", choices=["idle", "reporting", "stage"], help="print cProfile of a scenario"
    )
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="leave the garbage collector as Python sets it (imgedit/ui/heap.py)",
    )
    args = parser.parse_args()
    results, garbage = asyncio.run(run(args.cards, args.ticks, args.profile, freeze=not args.no_freeze))
    print(f"{args.cards} live loading cards, {args.ticks} ticks per scenario")
    print(f"{'scenario':<10} {'CPU median ms':>14} {'CPU max ms':>11} {'bytes/tick':>11} {'msgs/tick':>10}")
    for name, (median, worst, size, count) in results.items():
        print(f"{name:<10} {median:>14.2f} {worst:>11.2f} {size:>11.0f} {count:>10.1f}")
    heap = "frozen" if not args.no_freeze else "not frozen"
    print(f"garbage collections during the ticks (start-up heap {heap}):")
    for name, (count, full, longest_full, longest) in garbage.items():
        print(
            f"{name:<10} {count:>4} collections (longest {longest:.1f} ms), {full} full"
            f" (longest {longest_full:.1f} ms)"
        )


if __name__ == "__main__":
    main()
