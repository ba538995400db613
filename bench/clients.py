"""Benchmark (issue 9, P7): 200 jobs from 5 clients through the gallery, against the engine alone.

The app: the real ``main.py`` (services, registry, journal, storage, gallery pages and their
1-second tick) in NiceGUI's in-process user simulation, with 5 simulated clients (browser tabs)
that each open the gallery and submit 40 New image jobs through the dialog (New image, type a
prompt, Generate; the dialog's defaults: local engine, medium quality, 1024×1024), interleaved,
as fast as they can. Per job it records, from the Generate click:

- to its loading card present in the submitting client's gallery, and
- to its result image's card present there,

where "present" is the moment the client's outbox sends the update carrying that card to the
browser (the server's part done; the browser's own render is P5's business). Every job must end
COMPLETED with exactly one result image, shown in the submitting client (lost: any that does not).

The baselines: the same 200 generations (same prompts, quality, size) with the same concurrency
the registry uses (``--max-concurrent``, 4), with no UI, no registry:

- engine: ``LocalProvider.generate`` called directly, the result bytes dropped;
- engine + storage: the same, each result then stored with ``ImageStore.add`` (PNG check,
  thumbnail, fsynced files, SQLite row) in a temp data dir, inside the concurrency slot as in a job.

Overhead = wall_app / wall_engine - 1, where wall_app runs from the first Generate click to the
last result card present in its client.

What the simulation leaves out: the websocket and socket.io framing (updates are serialised by
the outbox but go to no socket), the browsers' own work, and ``ui.notify`` (replaced by the
simulation's recorder).

    python bench/clients.py [--clients 5] [--per-client 40] [--quality medium] [--runs 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# NiceGUI's user simulation resets its globals the way it does under pytest only when it
# believes it runs there; it checks this variable (as bench/tick.py does).
os.environ.setdefault("PYTEST_CURRENT_TEST", "bench/clients.py")

from imgedit.models import ImageOrigin, JobKind, Quality  # noqa: E402
from imgedit.providers.base import ProviderRequest  # noqa: E402
from imgedit.providers.local import LocalProvider  # noqa: E402
from imgedit.storage import ImageStore  # noqa: E402

SIZE = (1024, 1024)
"""The New image dialog's default size (Square · 1024×1024)."""
MAX_CONCURRENT = 4
"""--max-concurrent's default: the registry's slots, and the baselines' concurrency."""
SHAPES = ("waves", "circles", "stars", "stripes", "mountains", "dots", "grid", "sun and moon")


def prompts(clients: int, per_client: int) -> list[list[str]]:
    """Distinct prompts per client, so every job is told apart by its prompt."""
    return [
        [f"{SHAPES[(c + i) % len(SHAPES)]} in sunset colours {c}-{i}" for i in range(per_client)]
        for c in range(clients)
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- the baselines ------------------------------------------------------------------------------


class _NoSink:
    def progress(self, *args: Any, **kwargs: Any) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


async def engine_alone(all_prompts: list[str], quality: Quality, *, storage: bool) -> tuple[float, float]:
    """Wall time and process CPU time of the 200 generations (and their storing)."""
    provider = LocalProvider()
    slots = asyncio.Semaphore(MAX_CONCURRENT)
    warm = ProviderRequest(kind=JobKind.GENERATE, prompt="waves", quality=quality, size=SIZE)
    await provider.generate(warm, _NoSink())  # fonts, imports: paid once, not timed
    with tempfile.TemporaryDirectory(prefix="imgedit-p7-engine-") as folder:
        store = ImageStore(Path(folder)) if storage else None
        if store is not None:
            store.open()

        async def one(prompt: str) -> None:
            async with slots:
                request = ProviderRequest(kind=JobKind.GENERATE, prompt=prompt, quality=quality, size=SIZE)
                result = await provider.generate(request, _NoSink())
                if store is not None:
                    await store.add(
                        result.image,
                        origin=ImageOrigin.GENERATE,
                        prompt=prompt,
                        provider="local",
                        quality=quality,
                    )

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(p) for p in all_prompts))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        if store is not None:
            assert len(store) == len(all_prompts)
            store.close()
    return wall, cpu


# -- the app ------------------------------------------------------------------------------------


@dataclass
class AppFigures:
    wall: float
    """First Generate click to the last result card present in its client."""
    wall_done: float
    """First Generate click to the last job COMPLETED in the registry."""
    to_loading: list[float] = field(default_factory=list)
    to_result: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    loop_lag_ms: list[float] = field(default_factory=list)
    cpu: float = 0.0
    """Process CPU seconds from the first click to the last result card."""
    loop_cpu: float = 0.0
    """Of which the event loop's thread (pages, ticks, registry, the simulated clicks)."""


class Seen:
    """When each client's outbox first sent a loading card (by job) and an image card (by image)."""

    def __init__(self) -> None:
        self.loading: dict[tuple[int, str], float] = {}
        self.image: dict[tuple[int, str], float] = {}
        self.more = asyncio.Event()
        """Set whenever an image card is seen for the first time."""

    def watch(self, client: Any, number: int) -> None:
        original = client.outbox._emit

        async def emit(message: Any) -> None:
            _, kind, data = message
            if kind == "update":
                now = time.perf_counter()
                for element_id, value in data.items():
                    element = client.elements.get(element_id) if value is not None else None
                    markers = getattr(element, "_markers", None)
                    if not markers:
                        continue
                    if "loading-card" in markers:
                        job = next(m[4:] for m in markers if m.startswith("job-"))
                        self.loading.setdefault((number, job), now)
                    elif "image-card" in markers:
                        image = next(m[6:] for m in markers if m.startswith("image-") and m != "image-card")
                        if (number, image) not in self.image:
                            self.image[(number, image)] = now
                            self.more.set()
            await original(message)

        client.outbox._emit = emit


async def probe_loop(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(0.01)
        lags.append(max(0.0, loop.time() - asked - 0.01) * 1000)


async def through_the_app(
    client_prompts: list[list[str]], quality: Quality, profiler: cProfile.Profile | None
) -> AppFigures:
    import httpx
    from nicegui import core
    from nicegui.testing.user import User
    from nicegui.testing.user_simulation import user_simulation

    with tempfile.TemporaryDirectory(prefix="imgedit-p7-app-") as folder:
        for name in [n for n in os.environ if n.startswith(("IMGEDIT_", "OPENAI_"))]:
            del os.environ[name]
        os.environ["IMGEDIT_DATA_DIR"] = str(Path(folder) / "data")
        os.environ["IMGEDIT_NO_SHOW"] = "1"
        async with user_simulation(main_file=ROOT / "main.py") as first:
            users = [first] + [
                User(httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test"))
                for _ in client_prompts[1:]
            ]
            seen = Seen()
            for number, user in enumerate(users):
                await user.open("/")
                seen.watch(user.client, number)
            services = sys.modules["imgedit.ui"].services
            finished: dict[str, float] = {}
            services.registry.on_finish(lambda s: finished.setdefault(s.id, time.perf_counter()))
            before = {r.id for r in services.store.list()}
            # The job id each click made, as the dialog's submit returns it: looked up from all
            # snapshots instead, the bench would charge the app O(jobs) per click.
            made_ids: list[str] = []
            submit_generate = services.studio.submit_generate

            def recording_submit(*args: Any, **kwargs: Any) -> str:
                job_id = submit_generate(*args, **kwargs)
                made_ids.append(job_id)
                return str(job_id)

            services.studio.submit_generate = recording_submit
            submitted: dict[str, tuple[int, float]] = {}  # job -> (client, click time)
            lags: list[float] = []
            stop = asyncio.Event()
            prober = asyncio.create_task(probe_loop(lags, stop))

            async def client(number: int) -> None:
                user = users[number]
                # Found once: the page builds its dialog once and refills it on each open. (A
                # find walks every element of the page, which the app would be charged for.)
                new_image = user.find(marker="new-image")
                field = user.find(marker="prompt")
                start = user.find(marker="start")
                choose = next(iter(user.find(marker="quality").elements))
                for prompt in client_prompts[number]:
                    new_image.click()
                    if quality is not Quality.MEDIUM:
                        choose.set_value(quality.value)
                    field.type(prompt)
                    clicked = time.perf_counter()
                    start.click()
                    submitted[made_ids.pop()] = (number, clicked)
                    await asyncio.sleep(0)  # the clients interleave, as their clicks would

            if profiler is not None:
                profiler.enable()
            cpu, loop_cpu = time.process_time(), time.thread_time()
            await asyncio.gather(*(client(n) for n in range(len(users))))
            first_click = min(t for _, t in submitted.values())
            finals = [await services.registry.wait(job) for job in submitted]
            result_of = {f.id: f.result_image_id for f in finals}

            def all_shown() -> bool:
                return all(
                    (number, result_of[job]) in seen.image
                    for job, (number, _) in submitted.items()
                    if result_of[job] is not None
                )

            deadline = time.perf_counter() + 30
            while not all_shown() and time.perf_counter() < deadline:
                seen.more.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(seen.more.wait(), timeout=1.0)
            cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
            if profiler is not None:
                profiler.disable()
            stop.set()
            await prober

            figures = AppFigures(
                wall=0.0,
                wall_done=max(finished.values()) - first_click,
                outcomes=Counter(f.stage.value for f in finals),
                loop_lag_ms=lags,
                cpu=cpu,
                loop_cpu=loop_cpu,
            )
            made = Counter(r.job_id for r in services.store.list() if r.id not in before)
            last = first_click
            for job, (number, clicked) in submitted.items():
                loading = seen.loading.get((number, job))
                result = seen.image.get((number, result_of[job] or ""))
                if loading is None or result is None or made[job] != 1:
                    figures.lost.append(job)
                    continue
                figures.to_loading.append((loading - clicked) * 1000)
                figures.to_result.append(result - clicked)
                last = max(last, result)
            figures.wall = last - first_click
    return figures


# -- the report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--quality", choices=[q.value for q in Quality], default=Quality.MEDIUM.value)
    parser.add_argument("--runs", type=int, default=1, help="rounds of engine, engine + storage, app")
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop during the app run")
    args = parser.parse_args()
    quality = Quality(args.quality)
    client_prompts = prompts(args.clients, args.per_client)
    everything = [p for ps in client_prompts for p in ps]
    total = len(everything)
    profiler = cProfile.Profile() if args.profile else None

    engine, stored, apps = [], [], []
    for _ in range(args.runs):
        engine.append(asyncio.run(engine_alone(everything, quality, storage=False)))
        stored.append(asyncio.run(engine_alone(everything, quality, storage=True)))
        apps.append(asyncio.run(through_the_app(client_prompts, quality, profiler)))

    print(
        f"P7: {total} jobs from {args.clients} clients (NiceGUI user simulation), local engine, "
        f"{quality.value} quality, {SIZE[0]}x{SIZE[1]}, {MAX_CONCURRENT} at once; {args.runs} run(s)"
    )
    for number, app in enumerate(apps, 1):
        (wall_engine, cpu_engine), (wall_stored, cpu_stored) = engine[number - 1], stored[number - 1]
        lag = sorted(app.loop_lag_ms)
        print(f"run {number}:")
        print(f"  outcomes {dict(app.outcomes)}; lost: {len(app.lost)}")
        if app.to_loading:
            print(
                f"  submit -> loading card present: p50 {statistics.median(app.to_loading):.2f} ms, "
                f"p99 {percentile(app.to_loading, 0.99):.2f} ms, max {max(app.to_loading):.2f} ms"
            )
            print(
                f"  submit -> result card present:  p50 {statistics.median(app.to_result):.2f} s, "
                f"p99 {percentile(app.to_result, 0.99):.2f} s, max {max(app.to_result):.2f} s"
            )
        print(
            f"  wall: engine alone {wall_engine:.2f} s ({total / wall_engine:.1f} jobs/s); "
            f"engine + storage {wall_stored:.2f} s; app to last job completed {app.wall_done:.2f} s; "
            f"app to last result card {app.wall:.2f} s ({total / app.wall:.1f} jobs/s)"
        )
        print(
            f"  overhead vs engine alone: {app.wall / wall_engine - 1:+.1%} "
            f"(to last completion {app.wall_done / wall_engine - 1:+.1%}; "
            f"storage alone accounts for {wall_stored / wall_engine - 1:+.1%})"
        )
        print(
            f"  CPU seconds: engine alone {cpu_engine:.1f}, engine + storage {cpu_stored:.1f}, "
            f"app {app.cpu:.1f} (of which the event loop's thread {app.loop_cpu:.1f}); "
            f"CPU overhead {app.cpu / cpu_engine - 1:+.1%} (steadier than walls on a shared machine)"
        )
        if lag:
            print(
                f"  event-loop lag meanwhile (10 ms probe): p50 {statistics.median(lag):.1f} ms, "
                f"p99 {percentile(lag, 0.99):.1f} ms, max {lag[-1]:.1f} ms"
            )
    if args.runs > 1:
        walls = [a.wall / e[0] - 1 for a, e in zip(apps, engine, strict=True)]
        print(f"overhead over {args.runs} runs: median {statistics.median(walls):+.1%}")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    if any(a.lost for a in apps):
        raise SystemExit("FAIL: a job was lost or ran twice")


if __name__ == "__main__":
    main()
