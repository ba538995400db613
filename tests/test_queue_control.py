"""Queue control through the registry (issue 7): move to the front and reorder, pause and resume,
cancel all queued, change the concurrency at run time, per-provider capacity, and positions for
thousands of queued jobs computed in one pass."""

from __future__ import annotations

import asyncio

from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobStage
from imgedit.jobs.scheduler import Scheduler
from imgedit.models import JobId
from imgedit.ui import format as fmt
from tests.test_jobs import PRIORS, Scripted, spec, wait_until


def make(limit: int = 1, capacity: dict[str, int] | None = None) -> JobRegistry:
    return JobRegistry(
        max_concurrent=limit, durations=DurationModel(PRIORS), capacity_of=(capacity or {}).get
    )


def order(registry: JobRegistry) -> list[str]:
    """Queued jobs by position, as every client's tray shows them."""
    queued = [s for s in registry.snapshots() if s.queue_position is not None]
    return [s.id for s in sorted(queued, key=lambda s: s.queue_position or 0)]


async def test_move_to_front_and_reorder_change_what_starts_next() -> None:
    registry = make(limit=1)
    works = [Scripted() for _ in range(4)]
    try:
        ids = [registry.submit(spec(), w) for w in works]
        await asyncio.wait_for(works[0].started.wait(), 5)
        assert order(registry) == ids[1:]
        registry.move_to_front(ids[3])
        registry.move(ids[1], 2)
        assert order(registry) == [ids[3], ids[2], ids[1]]
        await works[0].finish()
        await asyncio.wait_for(works[3].started.wait(), 5)
        assert not works[1].started.is_set() and not works[2].started.is_set()
    finally:
        await registry.shutdown()


async def test_pause_lets_running_jobs_finish_and_starts_nothing_new_until_resumed() -> None:
    registry = make(limit=1)
    first, second = Scripted(), Scripted()
    try:
        a = registry.submit(spec(), first)
        await asyncio.wait_for(first.started.wait(), 5)
        b = registry.submit(spec(), second)
        version = registry.version
        registry.pause()
        assert registry.paused and registry.version > version
        await first.finish()
        await registry.wait(a)
        await asyncio.sleep(0)
        held = registry.snapshot(b)
        assert held.stage is JobStage.QUEUED and not second.started.is_set()
        assert held.paused and held.eta_s is None, "no time is promised while the queue is paused"
        assert fmt.stage_label(held) == "Paused (position 1)" and fmt.card_eta_text(held) == ""
        registry.resume()
        await asyncio.wait_for(second.started.wait(), 5)
    finally:
        await registry.shutdown()


async def test_cancel_all_queued_leaves_the_running_job_alone() -> None:
    registry = make(limit=1)
    works = [Scripted() for _ in range(4)]
    try:
        ids = [registry.submit(spec(), w) for w in works]
        await asyncio.wait_for(works[0].started.wait(), 5)
        assert registry.cancel_queued() == 3
        finals = [await registry.wait(j) for j in ids[1:]]
        assert [f.stage for f in finals] == [JobStage.CANCELLED] * 3
        assert registry.snapshot(ids[0]).stage is JobStage.INITIALIZING
        assert not any(w.started.is_set() for w in works[1:])
    finally:
        await registry.shutdown()


async def test_raising_the_concurrency_starts_more_at_once_and_lowering_it_waits() -> None:
    registry = make(limit=1)
    works = [Scripted() for _ in range(4)]
    try:
        for w in works:
            registry.submit(spec(), w)
        await asyncio.wait_for(works[0].started.wait(), 5)
        registry.set_max_concurrent(3)
        await asyncio.wait_for(asyncio.gather(works[1].started.wait(), works[2].started.wait()), 5)
        assert not works[3].started.is_set()
        registry.set_max_concurrent(1)
        await works[0].finish()
        await works[1].finish()
        await asyncio.sleep(0)
        assert not works[3].started.is_set(), "two still run where one is allowed now: nothing new starts"
        await works[2].finish()
        await asyncio.wait_for(works[3].started.wait(), 5)
    finally:
        await registry.shutdown()


async def test_a_job_waiting_for_its_provider_holds_no_slot_and_a_local_job_goes_first() -> None:
    registry = make(limit=2, capacity={"sdwebui": 1})
    sd_one, sd_two, local = Scripted(), Scripted(), Scripted()
    try:
        registry.submit(spec(provider="sdwebui"), sd_one)
        waiting = registry.submit(spec(provider="sdwebui"), sd_two)
        registry.submit(spec(provider="local"), local)
        await asyncio.wait_for(asyncio.gather(sd_one.started.wait(), local.started.wait()), 5)
        shown = registry.snapshot(waiting)
        assert shown.stage is JobStage.QUEUED and not sd_two.started.is_set()
        assert next(s for s in registry.snapshots() if s.id == waiting).waiting_for_provider
        await sd_one.finish()
        await asyncio.wait_for(sd_two.started.wait(), 5)
    finally:
        await registry.shutdown()


def test_positions_of_thousands_of_queued_jobs_come_from_one_pass() -> None:
    scheduler = Scheduler(limit=1)
    ids = [JobId(f"{i:032x}") for i in range(5000)]
    for job_id in ids:
        scheduler.add(job_id, "local")
    scheduler.start_ready()
    positions = scheduler.positions()
    assert positions[ids[1]] == 1 and positions[ids[-1]] == 4999 and ids[0] not in positions


async def test_moves_are_seen_by_every_reader_through_the_version() -> None:
    registry = make(limit=1)
    works = [Scripted() for _ in range(3)]
    try:
        ids = [registry.submit(spec(), w) for w in works]
        await wait_until(lambda: works[0].started.is_set())
        seen = registry.version
        registry.move_to_front(ids[2])
        assert registry.version > seen
    finally:
        await registry.shutdown()
