"""The job registry: queueing, stages, cancellation, failures, progress and ETA (imgedit.jobs).

Work coroutines here are driven step by step by the test through a command queue, so every
stage and progress report happens exactly when the test says, and time is a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from imgedit import jobs
from imgedit.errors import InvalidRequest, NotFound
from imgedit.eta import MAX_SHOWN_BEFORE_DONE, DurationModel
from imgedit.jobs import JobContext, JobRegistry, JobSnapshot, JobSpec, JobStage
from imgedit.models import ImageId, JobKind, Quality

PRIORS = {Quality.LOW: 4.0, Quality.MEDIUM: 8.0, Quality.HIGH: 16.0}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class Scripted:
    """A work coroutine that does exactly what the test sends it, one command at a time."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.runs = 0
        self.cancelled = False
        self._commands: asyncio.Queue[tuple[str, Any, asyncio.Event]] = asyncio.Queue()

    async def __call__(self, ctx: JobContext) -> ImageId | None:
        self.runs += 1
        self.started.set()
        try:
            while True:
                command, argument, ack = await self._commands.get()
                try:
                    if command == "stage":
                        ctx.stage(argument)
                    elif command == "progress":
                        ctx.progress(argument)
                    elif command == "raise":
                        raise argument
                    elif command == "return":
                        return argument  # type: ignore[no-any-return]
                finally:
                    ack.set()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def send(self, command: str, argument: Any = None) -> None:
        ack = asyncio.Event()
        self._commands.put_nowait((command, argument, ack))
        await ack.wait()

    async def stage(self, stage: JobStage) -> None:
        await self.send("stage", stage)

    async def progress(self, fraction: float) -> None:
        await self.send("progress", fraction)

    async def finish(self, result: ImageId | None = None) -> None:
        await self.send("return", result)

    async def fail(self, error: BaseException) -> None:
        await self.send("raise", error)


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Let the event loop run until ``condition`` holds; fail after ``within`` real seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0)


def spec(quality: Quality = Quality.LOW, provider: str = "local", kind: JobKind = JobKind.EDIT) -> JobSpec:
    return JobSpec(kind=kind, prompt="sepia", quality=quality, provider=provider)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def durations() -> DurationModel:
    return DurationModel(PRIORS)


@pytest.fixture
async def make_registry(clock: FakeClock, wall: FakeClock, durations: DurationModel):  # type: ignore[no-untyped-def]
    made: list[JobRegistry] = []

    def make(max_concurrent: int = 2) -> JobRegistry:
        registry = JobRegistry(
            max_concurrent=max_concurrent, durations=durations, clock=clock.now, wall_clock=wall.now
        )
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.shutdown()


async def start_running(registry: JobRegistry, work: Scripted, job_spec: JobSpec | None = None) -> str:
    job_id = registry.submit(job_spec or spec(), work)
    await asyncio.wait_for(work.started.wait(), 5)
    return job_id


async def running_in(registry: JobRegistry, work: Scripted, stage: JobStage) -> str:
    """A job that has reached ``stage`` (any stage but QUEUED)."""
    job_id = await start_running(registry, work)
    if stage is not JobStage.INITIALIZING:
        for step in (JobStage.PROCESSING, JobStage.FINALIZING):
            await work.stage(step)
            if step is stage:
                break
    assert registry.snapshot(job_id).stage is stage
    return job_id


# -- queueing ------------------------------------------------------------------------------


async def test_only_max_concurrent_jobs_run_and_the_rest_wait_in_submission_order(make_registry) -> None:
    registry = make_registry(max_concurrent=2)
    works = [Scripted() for _ in range(5)]
    ids = [registry.submit(spec(), work) for work in works]

    await wait_until(lambda: works[0].started.is_set() and works[1].started.is_set())
    snapshots = [registry.snapshot(job_id) for job_id in ids]
    assert [s.stage for s in snapshots] == [JobStage.INITIALIZING] * 2 + [JobStage.QUEUED] * 3
    assert [s.queue_position for s in snapshots] == [None, None, 1, 2, 3]
    assert [w.runs for w in works] == [1, 1, 0, 0, 0]
    assert [s.id for s in registry.snapshots()] == ids  # oldest first

    await works[0].finish()
    assert (await registry.wait(ids[0])).stage is JobStage.COMPLETED
    await wait_until(works[2].started.is_set)

    snapshots = [registry.snapshot(job_id) for job_id in ids]
    assert [s.stage for s in snapshots[1:3]] == [JobStage.INITIALIZING] * 2
    assert [s.queue_position for s in snapshots] == [None, None, None, 1, 2]
    assert [w.runs for w in works] == [1, 1, 1, 0, 0]


async def test_a_queued_job_shows_a_zero_progress_and_no_start_time(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    await start_running(registry, Scripted())
    queued = registry.submit(spec(), Scripted())

    snapshot = registry.snapshot(queued)
    assert snapshot.stage is JobStage.QUEUED
    assert snapshot.progress == 0.0
    assert snapshot.elapsed_s == 0.0
    assert snapshot.started_at is None


async def test_a_job_can_be_looked_at_right_after_submitting(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    job_id = registry.submit(spec(), Scripted())  # no chance to start yet

    snapshot = registry.snapshot(job_id)
    assert snapshot.stage is JobStage.QUEUED
    assert snapshot.eta_s == pytest.approx(PRIORS[Quality.LOW])
    assert [s.id for s in registry.snapshots()] == [job_id]


async def test_the_eta_of_a_queued_job_includes_its_wait(make_registry, clock: FakeClock) -> None:
    registry = make_registry(max_concurrent=1)
    await start_running(registry, Scripted(), spec(Quality.LOW))  # 4 s
    second = registry.submit(spec(Quality.MEDIUM), Scripted())  # waits 4 s, runs 8 s
    third = registry.submit(spec(Quality.HIGH), Scripted())  # waits 4 + 8 s, runs 16 s

    assert registry.snapshot(second).queue_position == 1
    assert registry.snapshot(second).eta_s == pytest.approx(4.0 + 8.0)
    assert registry.snapshot(third).queue_position == 2
    assert registry.snapshot(third).eta_s == pytest.approx(4.0 + 8.0 + 16.0)
    by_id = {s.id: s for s in registry.snapshots()}
    assert by_id[third].eta_s == pytest.approx(28.0)

    clock.advance(3.0)  # the running job is 3 s in: the queue moves 3 s closer
    assert registry.snapshot(third).eta_s == pytest.approx(25.0)


async def test_the_queue_wait_uses_every_free_slot(make_registry) -> None:
    registry = make_registry(max_concurrent=2)
    await start_running(registry, Scripted(), spec(Quality.HIGH))  # busy for 16 s
    await start_running(registry, Scripted(), spec(Quality.LOW))  # busy for 4 s
    queued = registry.submit(spec(Quality.LOW), Scripted())

    # It takes the slot that frees first (after 4 s), not the one busy for 16 s.
    assert registry.snapshot(queued).eta_s == pytest.approx(4.0 + 4.0)


# -- cancelling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage", [JobStage.INITIALIZING, JobStage.PROCESSING, JobStage.FINALIZING], ids=lambda s: s.value
)
async def test_a_running_job_can_be_cancelled_in_any_stage(make_registry, stage: JobStage) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, stage)

    assert registry.cancel(job_id) is True
    final = await registry.wait(job_id)

    assert final.stage is JobStage.CANCELLED
    assert final.is_finished
    assert final.eta_s is None
    assert final.result_image_id is None
    assert final.progress < 1.0
    assert work.cancelled
    assert registry.snapshot(job_id).stage is JobStage.CANCELLED


async def test_a_queued_job_can_be_cancelled_and_its_work_never_runs(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    first = Scripted()
    first_id = await start_running(registry, first)
    cancelled, last = Scripted(), Scripted()
    cancelled_id = registry.submit(spec(), cancelled)
    last_id = registry.submit(spec(), last)
    await wait_until(lambda: registry.snapshot(last_id).queue_position == 2)

    assert registry.cancel(cancelled_id) is True
    assert (await registry.wait(cancelled_id)).stage is JobStage.CANCELLED
    assert registry.snapshot(last_id).queue_position == 1  # moved up

    await first.finish()
    await registry.wait(first_id)
    await wait_until(last.started.is_set)
    assert registry.snapshot(last_id).stage is JobStage.INITIALIZING
    assert cancelled.runs == 0
    assert registry.snapshot(cancelled_id).stage is JobStage.CANCELLED


async def test_a_job_cancelled_before_it_ever_ran_is_cancelled_and_frees_its_slot(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    never, after = Scripted(), Scripted()
    never_id = registry.submit(spec(), never)
    after_id = registry.submit(spec(), after)

    assert registry.cancel(never_id) is True  # before the event loop ever ran the job
    assert (await registry.wait(never_id)).stage is JobStage.CANCELLED
    await wait_until(after.started.is_set)
    assert registry.snapshot(after_id).stage is JobStage.INITIALIZING
    assert never.runs == 0


async def test_cancelling_a_running_job_lets_the_next_queued_one_start(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    running = Scripted()
    running_id = await running_in(registry, running, JobStage.PROCESSING)
    waiting = Scripted()
    waiting_id = registry.submit(spec(), waiting)
    assert registry.snapshot(waiting_id).stage is JobStage.QUEUED

    registry.cancel(running_id)
    await wait_until(waiting.started.is_set)

    assert registry.snapshot(running_id).stage is JobStage.CANCELLED
    assert registry.snapshot(waiting_id).stage is JobStage.INITIALIZING
    assert registry.snapshot(waiting_id).queue_position is None


async def test_cancelling_a_finished_job_changes_nothing(make_registry) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await start_running(registry, work)
    await work.finish(ImageId("a" * 32))
    await registry.wait(job_id)

    assert registry.cancel(job_id) is False
    assert registry.snapshot(job_id).stage is JobStage.COMPLETED
    assert registry.snapshot(job_id).result_image_id == "a" * 32


async def test_cancelling_twice_reports_false_the_second_time(make_registry) -> None:
    registry = make_registry()
    job_id = await start_running(registry, Scripted())
    assert registry.cancel(job_id) is True
    await registry.wait(job_id)
    assert registry.cancel(job_id) is False


async def test_cancelling_an_unknown_job_is_not_found(make_registry) -> None:
    registry = make_registry()
    with pytest.raises(NotFound):
        registry.cancel("0" * 32)


async def test_shutdown_cancels_every_job(make_registry) -> None:
    registry = make_registry(max_concurrent=2)
    works = [Scripted() for _ in range(4)]
    first = await running_in(registry, works[0], JobStage.PROCESSING)
    second = await start_running(registry, works[1])
    queued = [registry.submit(spec(), work) for work in works[2:]]

    await registry.shutdown()

    assert [registry.snapshot(i).stage for i in (first, second, *queued)] == [JobStage.CANCELLED] * 4
    assert works[0].cancelled and works[1].cancelled
    assert [w.runs for w in works[2:]] == [0, 0]


async def test_shutdown_right_after_submitting_cancels_the_unstarted_jobs(make_registry) -> None:
    registry = make_registry(max_concurrent=1)
    ids = [registry.submit(spec(), Scripted()) for _ in range(2)]

    await registry.shutdown()

    assert [registry.snapshot(i).stage for i in ids] == [JobStage.CANCELLED] * 2


# -- failures and retries ------------------------------------------------------------------


async def test_a_user_error_fails_the_job_with_its_message(make_registry, caplog) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)

    await work.fail(InvalidRequest("nope"))
    final = await registry.wait(job_id)

    assert final.stage is JobStage.FAILED
    assert final.error == "nope"
    assert final.eta_s is None
    assert final.progress < 1.0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_unexpected_error_fails_the_job_with_a_generic_message_and_logs_it(
    make_registry, caplog
) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await start_running(registry, work)

    with caplog.at_level(logging.ERROR, logger="imgedit.jobs"):
        await work.fail(RuntimeError("secret internals"))
        final = await registry.wait(job_id)

    assert final.stage is JobStage.FAILED
    assert final.error == jobs.GENERIC_FAILURE
    assert "secret internals" not in (final.error or "")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert "secret internals" in caplog.text  # the traceback is in the log
    caplog.clear()


async def test_retrying_a_failed_job_runs_the_same_work_as_a_new_attempt(make_registry) -> None:
    registry = make_registry()
    calls: list[tuple[str, int]] = []

    async def work(ctx: JobContext) -> ImageId:
        calls.append((ctx.job_id, len(calls) + 1))
        if len(calls) == 1:
            raise InvalidRequest("the first time fails")
        return ImageId("b" * 32)

    old_id = registry.submit(spec(Quality.HIGH), work)
    assert (await registry.wait(old_id)).stage is JobStage.FAILED

    new_id = registry.retry(old_id)
    final = await registry.wait(new_id)

    assert new_id != old_id
    assert final.stage is JobStage.COMPLETED
    assert final.attempt == 2
    assert final.spec == spec(Quality.HIGH)
    assert final.result_image_id == "b" * 32
    assert [job_id for job_id, _ in calls] == [old_id, new_id]
    with pytest.raises(NotFound):
        registry.snapshot(old_id)
    assert [s.id for s in registry.snapshots()] == [new_id]


async def test_a_running_job_cannot_be_retried(make_registry) -> None:
    registry = make_registry()
    job_id = await start_running(registry, Scripted())
    with pytest.raises(ValueError, match="retried"):
        registry.retry(job_id)
    assert registry.snapshot(job_id).stage is JobStage.INITIALIZING


# -- progress ------------------------------------------------------------------------------


async def test_reported_progress_never_goes_backwards(make_registry) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)

    await work.progress(0.5)
    half = registry.snapshot(job_id)
    await work.progress(0.3)
    later = registry.snapshot(job_id)

    assert half.progress_source == "reported"
    assert 0.0 < half.progress < 1.0
    assert later.progress >= half.progress


async def test_reported_completion_is_not_shown_as_done_before_the_job_completes(make_registry) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)

    await work.progress(1.0)
    processing = registry.snapshot(job_id)
    await work.stage(JobStage.FINALIZING)
    finalizing = registry.snapshot(job_id)

    assert processing.progress < 1.0
    assert processing.progress <= MAX_SHOWN_BEFORE_DONE
    assert processing.percent < 100
    assert processing.progress <= finalizing.progress < 1.0

    await work.finish()
    final = await registry.wait(job_id)
    assert final.stage is JobStage.COMPLETED
    assert final.progress == 1.0
    assert final.percent == 100


async def test_progress_reported_out_of_range_is_clamped(make_registry) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)

    await work.progress(-3.0)
    assert 0.0 <= registry.snapshot(job_id).progress < 0.1
    await work.progress(7.0)
    assert registry.snapshot(job_id).progress < 1.0


async def test_estimated_progress_rises_with_time_and_stays_short_of_done(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)  # expected 4 s

    shown = [registry.snapshot(job_id).progress]
    for step in (1.0, 1.0, 1.0, 1.0, 2.0, 10.0, 1000.0):
        clock.advance(step)
        shown.append(registry.snapshot(job_id).progress)

    assert registry.snapshot(job_id).progress_source == "estimated"
    assert shown[0] == pytest.approx(0.0)
    assert shown[2] == pytest.approx(0.5)  # halfway through the expected time
    assert all(b > a for a, b in itertools.pairwise(shown[:6]))
    assert all(b >= a for a, b in itertools.pairwise(shown))
    assert max(shown) < 0.96


async def test_a_low_report_after_a_higher_estimate_does_not_lower_the_bar(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)

    clock.advance(3.2)  # 80 % of the expected 4 s
    estimated = registry.snapshot(job_id)
    await work.progress(0.1)  # the provider says it has only just begun
    reported = registry.snapshot(job_id)

    assert estimated.progress_source == "estimated"
    assert estimated.progress == pytest.approx(0.8)
    assert reported.progress_source == "reported"
    assert reported.progress >= estimated.progress


# -- ETA -----------------------------------------------------------------------------------


async def test_the_eta_counts_down_with_the_expected_duration(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)  # expected 4 s

    start = registry.snapshot(job_id)
    clock.advance(2.0)
    halfway = registry.snapshot(job_id)

    assert start.eta_s == pytest.approx(4.0)
    assert start.expected_s == pytest.approx(4.0)
    assert halfway.eta_s == pytest.approx(2.0)
    assert halfway.elapsed_s == pytest.approx(2.0)


async def test_with_reported_progress_the_eta_follows_the_measured_rate(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await running_in(registry, work, JobStage.PROCESSING)  # expected 4 s

    clock.advance(10.0)
    estimated = registry.snapshot(job_id)
    await work.progress(0.5)
    reported = registry.snapshot(job_id)

    assert estimated.eta_s == pytest.approx(0.0)  # the prior alone has run out
    assert reported.eta_s is not None
    assert reported.eta_s > 4.0  # half done in 10 s: several more seconds, not "any moment"


async def test_there_is_no_eta_once_finished(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await start_running(registry, work)
    clock.advance(1.5)
    await work.finish()
    final = await registry.wait(job_id)

    assert final.eta_s is None
    assert final.elapsed_s == pytest.approx(1.5)
    clock.advance(100.0)
    assert registry.snapshot(job_id).elapsed_s == pytest.approx(1.5)  # the clock stopped


async def test_wall_clock_times_are_recorded(make_registry, wall) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = registry.submit(spec(), work)
    created = wall.now()
    wall.advance(5.0)
    await work.started.wait()
    wall.advance(7.0)
    await work.finish()
    final = await registry.wait(job_id)

    assert final.created_at == created
    assert final.started_at == created + 5.0
    assert final.finished_at == created + 12.0


# -- learned durations ---------------------------------------------------------------------


async def test_completed_jobs_teach_the_expected_duration(make_registry, clock, durations) -> None:
    registry = make_registry()
    prior = durations.expected("local", JobKind.EDIT, Quality.LOW)
    work = Scripted()
    job_id = await start_running(registry, work)
    clock.advance(20.0)
    await work.finish()
    final = await registry.wait(job_id)

    learned = durations.expected("local", JobKind.EDIT, Quality.LOW)
    assert final.expected_s == pytest.approx(20.0)  # a completed job shows what it really took
    assert prior < learned <= 20.0
    assert durations.expected("local", JobKind.EDIT, Quality.HIGH) == PRIORS[Quality.HIGH]

    nxt = registry.submit(spec(), Scripted())
    assert registry.snapshot(nxt).expected_s == pytest.approx(learned)
    assert registry.snapshot(nxt).eta_s == pytest.approx(learned)


async def test_repeated_jobs_converge_on_the_measured_duration(make_registry, clock, durations) -> None:
    registry = make_registry()
    for _ in range(3):
        work = Scripted()
        job_id = await start_running(registry, work)
        clock.advance(20.0)
        await work.finish()
        await registry.wait(job_id)

    assert durations.expected("local", JobKind.EDIT, Quality.LOW) == pytest.approx(20.0)


async def test_failed_and_cancelled_jobs_do_not_teach_durations(make_registry, clock, durations) -> None:
    registry = make_registry()
    failing = Scripted()
    failed_id = await start_running(registry, failing)
    clock.advance(100.0)
    await failing.fail(InvalidRequest("nope"))
    await registry.wait(failed_id)

    cancelled_id = await start_running(registry, Scripted())
    clock.advance(100.0)
    registry.cancel(cancelled_id)
    await registry.wait(cancelled_id)

    assert durations.expected("local", JobKind.EDIT, Quality.LOW) == PRIORS[Quality.LOW]


# -- change tracking and listeners -----------------------------------------------------------


async def test_version_changes_with_what_a_user_sees_and_not_with_reads(make_registry, clock) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await start_running(registry, work)

    before = registry.version
    registry.snapshot(job_id)
    registry.snapshots()
    clock.advance(1.0)
    registry.snapshot(job_id)
    assert registry.version == before

    await work.stage(JobStage.PROCESSING)
    after_stage = registry.version
    assert after_stage != before

    await work.progress(0.4)
    after_progress = registry.version
    assert after_progress != after_stage

    registry.snapshots()
    assert registry.version == after_progress

    await work.finish()
    await registry.wait(job_id)
    assert registry.version != after_progress


async def test_finish_listeners_get_the_final_snapshot(make_registry) -> None:
    registry = make_registry()
    seen: list[JobSnapshot] = []
    registry.on_finish(seen.append)
    work = Scripted()
    job_id = await start_running(registry, work)
    await work.finish(ImageId("c" * 32))
    await registry.wait(job_id)

    assert len(seen) == 1
    assert seen[0].id == job_id
    assert seen[0].stage is JobStage.COMPLETED
    assert seen[0].progress == 1.0
    assert seen[0].result_image_id == "c" * 32


async def test_a_failing_listener_does_not_break_the_registry(make_registry, caplog) -> None:
    registry = make_registry(max_concurrent=1)

    def broken(snapshot: JobSnapshot) -> None:
        raise RuntimeError("listener bug")

    seen: list[JobStage] = []
    registry.on_finish(broken)
    registry.on_finish(lambda snapshot: seen.append(snapshot.stage))

    first, second = Scripted(), Scripted()
    first_id = await start_running(registry, first)
    second_id = registry.submit(spec(), second)
    await first.finish()
    final = await registry.wait(first_id)

    assert final.stage is JobStage.COMPLETED
    assert seen == [JobStage.COMPLETED]  # the next listener still ran
    await wait_until(second.started.is_set)  # and the queue moved on
    await second.fail(InvalidRequest("nope"))
    assert (await registry.wait(second_id)).stage is JobStage.FAILED
    assert seen == [JobStage.COMPLETED, JobStage.FAILED]
    assert "listener" in caplog.text
    caplog.clear()


async def test_dismissing_forgets_a_finished_job_but_not_a_running_one(make_registry) -> None:
    registry = make_registry()
    work = Scripted()
    job_id = await start_running(registry, work)
    with pytest.raises(ValueError):
        registry.dismiss(job_id)

    await work.finish()
    await registry.wait(job_id)
    registry.dismiss(job_id)
    with pytest.raises(NotFound):
        registry.snapshot(job_id)
