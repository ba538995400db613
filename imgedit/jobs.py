"""The process-wide job registry: runs background work, owns its stage, progress and ETA.

It knows nothing of images, providers or browsers: it runs ``work(context)`` coroutines, at most
``max_concurrent`` at a time, in submission order, and hands out frozen ``JobSnapshot`` values.
The outcome of a job is mapped to its final stage in one place (``_final_stage``):
``CancelledError`` → CANCELLED, ``ImgEditError`` → FAILED with its message, anything else →
FAILED with a generic message and the traceback in the log. Must not import nicegui.

Usage::

    registry = JobRegistry(max_concurrent=4, durations=DurationModel(priors))
    job_id = registry.submit(spec, work)      # returns at once
    registry.snapshot(job_id).progress         # 0..1, never backwards, 1.0 only when COMPLETED
    registry.cancel(job_id)
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from imgedit.errors import ImgEditError, NotFound
from imgedit.eta import MAX_SHOWN_BEFORE_DONE, DurationModel, eased_progress, remaining_seconds
from imgedit.models import ImageId, JobId, JobKind, Quality, new_job_id

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong inside imgedit; the details are in the server log."
KEEP_FINISHED = 200
"""Finished jobs kept for clients that have not seen the outcome yet; older ones are forgotten."""

# Where each stage sits on the overall bar: reported provider progress fills PROCESSING.
_PROCESSING_START = 0.05
_PROCESSING_END = 0.95


class JobStage(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Waiting for a free slot."""
    INITIALIZING = "initializing"
    """Loading the source and preparing the provider call."""
    PROCESSING = "processing"
    """The provider is working; progress comes from it where it can tell."""
    FINALIZING = "finalizing"
    """Saving the result and its thumbnail."""
    COMPLETED = "completed"
    """Done; the result is in the gallery."""
    FAILED = "failed"
    """Stopped by an error; the message says what to do."""
    CANCELLED = "cancelled"
    """Stopped on request; nothing was added."""
    INTERRUPTED = "interrupted"
    """Found unfinished when the app started (the process stopped while it ran)."""

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    @property
    def is_running(self) -> bool:
        return self in _RUNNING


_FINISHED = frozenset({JobStage.COMPLETED, JobStage.FAILED, JobStage.CANCELLED, JobStage.INTERRUPTED})
_RUNNING = frozenset({JobStage.INITIALIZING, JobStage.PROCESSING, JobStage.FINALIZING})


@dataclass(frozen=True, kw_only=True, slots=True)
class JobSpec:
    """What to do: the plain data a job is created from (and will be persisted as)."""

    kind: JobKind
    prompt: str
    quality: Quality
    provider: str
    source_image_id: ImageId | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class JobSnapshot:
    """A read-only view of one job at one moment. Unknown values are ``None``, never 0."""

    id: JobId
    spec: JobSpec
    stage: JobStage
    progress: float
    """Shown fraction 0..1: never goes backwards, 1.0 only once COMPLETED."""
    progress_source: Literal["reported", "estimated"]
    elapsed_s: float
    """Seconds since the job left the queue (0 while queued)."""
    eta_s: float | None
    """Seconds until it is expected to finish, queue wait included; None once finished."""
    expected_s: float
    """Expected running time in seconds when the job was queued (prior or learned mean);
    the actual running time once COMPLETED."""
    message: str
    error: str | None
    result_image_id: ImageId | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue_position: int | None
    attempt: int
    preview_version: int
    milestone: float | None = None
    """The furthest milestone a provider passed (e.g. a partial image), on the whole job's bar."""

    @property
    def is_finished(self) -> bool:
        return self.stage.is_finished

    @property
    def percent(self) -> int:
        return int(self.progress * 100)


Work = Callable[["JobContext"], Awaitable[ImageId | None]]


@dataclass(slots=True, eq=False)
class _JobRecord:
    id: JobId
    spec: JobSpec
    work: Work
    attempt: int
    expected: float
    created_wall: float
    turn: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stage: JobStage = JobStage.QUEUED
    message: str = ""
    error: str | None = None
    result: ImageId | None = None
    started_mono: float | None = None
    started_wall: float | None = None
    finished_mono: float | None = None
    finished_wall: float | None = None
    reported: float | None = None
    milestone: float | None = None
    provider_eta: float | None = None
    provider_eta_at: float = 0.0
    floor: float = 0.0
    preview: bytes | None = None
    preview_version: int = 0
    holds_slot: bool = False
    task: asyncio.Task[None] | None = None
    heard_mono: float = 0.0
    """When the job last said anything (stage, progress, message, preview): the watchdog's clock."""
    stalled: str | None = None
    """Why the watchdog stopped the job, if it did."""


class JobContext:
    """What running work sees of its job: stage changes and progress. Also a provider's ProgressSink."""

    def __init__(self, registry: JobRegistry, record: _JobRecord) -> None:
        self._registry = registry
        self._record = record

    @property
    def job_id(self) -> JobId:
        return self._record.id

    @property
    def spec(self) -> JobSpec:
        return self._record.spec

    def stage(self, stage: JobStage, message: str = "") -> None:
        if not stage.is_running:
            raise ValueError(f"work may only enter running stages, not {stage}")
        self._registry._set_stage(self._record, stage, message)

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        self._registry._set_progress(self._record, fraction, message, eta_s=eta_s, exact=exact)

    def preview(self, image: bytes) -> None:
        self._registry._set_preview(self._record, image)

    def message(self, text: str) -> None:
        self._registry._touch(self._record, message=text)


class JobRegistry:
    """Runs jobs in the background, in order, ``max_concurrent`` at a time."""

    def __init__(
        self,
        *,
        max_concurrent: int,
        durations: DurationModel,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        redact: Callable[[str], str] = str,
        stall_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """``redact`` cleans every message and error before it is kept (secrets never reach a
        card); a running job that says nothing for ``stall_timeout`` seconds is failed."""
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if stall_timeout is not None and not (0 < stall_timeout < float("inf")):
            raise ValueError("stall_timeout must be a positive number of seconds")
        self._redact = redact
        self._stall_timeout = stall_timeout
        self._sleep = sleep
        self._watchdog: asyncio.Task[None] | None = None
        self._limit = max_concurrent
        self._durations = durations
        self._clock = clock
        self._wall = wall_clock
        self._jobs: dict[JobId, _JobRecord] = {}
        self._queue: deque[JobId] = deque()
        self._running = 0
        self._finish_listeners: list[Callable[[JobSnapshot], None]] = []
        self.version = 0
        """Bumped on every change a user could see other than the passing of time."""

    # -- submitting and controlling -------------------------------------------------------

    @property
    def max_concurrent(self) -> int:
        return self._limit

    def submit(self, spec: JobSpec, work: Work, *, attempt: int = 1) -> JobId:
        """Queue ``work`` and return its id at once; it starts when a slot is free."""
        expected = self._durations.expected(spec.provider, spec.kind, spec.quality)
        record = _JobRecord(
            id=new_job_id(),
            spec=spec,
            work=work,
            attempt=attempt,
            expected=expected,
            created_wall=self._wall(),
        )
        self._jobs[record.id] = record
        self._queue.append(record.id)
        record.task = asyncio.get_running_loop().create_task(self._run(record), name=f"job-{record.id}")
        record.task.add_done_callback(lambda _task: self._finish_unstarted(record))
        log.info(
            "job %s submitted: %s, %s quality, via %s (attempt %d)",
            record.id,
            spec.kind.value,
            spec.quality.value,
            spec.provider,
            attempt,
        )
        self._start_watchdog()
        self._pump()
        self._bump()
        return record.id

    def cancel(self, job_id: JobId) -> bool:
        """Stop a job in any stage. False if it had already finished."""
        record = self._record(job_id)
        if record.stage.is_finished or record.task is None:
            return False
        record.task.cancel()
        return True

    def retry(self, job_id: JobId) -> JobId:
        """Run a failed or cancelled job again as a new attempt; the old one is dismissed."""
        record = self._record(job_id)
        if record.stage not in {JobStage.FAILED, JobStage.CANCELLED, JobStage.INTERRUPTED}:
            raise ValueError(f"only failed or cancelled jobs can be retried, not {record.stage}")
        self.dismiss(job_id)
        return self.submit(record.spec, record.work, attempt=record.attempt + 1)

    def dismiss(self, job_id: JobId) -> None:
        """Forget a finished job (its card goes away everywhere)."""
        record = self._record(job_id)
        if not record.stage.is_finished:
            raise ValueError("cancel a job before dismissing it")
        del self._jobs[job_id]
        self._bump()

    def on_finish(self, listener: Callable[[JobSnapshot], None]) -> None:
        """Call ``listener`` with the final snapshot of every job that finishes."""
        self._finish_listeners.append(listener)

    async def wait(self, job_id: JobId) -> JobSnapshot:
        """The final snapshot of a job, once it has finished."""
        record = self._record(job_id)
        await record.done.wait()
        return self._snapshot(record, self._clock())

    async def shutdown(self) -> None:
        """Cancel every job and wait for the tasks to end."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        tasks = [r.task for r in self._jobs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the watchdog ------------------------------------------------------------------------

    def check_stalled(self) -> list[JobId]:
        """Fail every running job that has said nothing for ``stall_timeout`` seconds; their ids."""
        if self._stall_timeout is None:
            return []
        now, stopped = self._clock(), []
        for record in self._jobs.values():
            silent = now - record.heard_mono
            if record.stage.is_running and record.stalled is None and silent >= self._stall_timeout:
                provider = record.spec.provider
                record.stalled = (
                    f"Stopped: no word from {provider} for {_duration(silent)} "
                    f"(the limit is {_duration(self._stall_timeout)}). Try again, or check that it still runs."
                )
                if record.task is not None:
                    record.task.cancel()
                stopped.append(record.id)
        return stopped

    def _start_watchdog(self) -> None:
        if self._stall_timeout is None or (self._watchdog is not None and not self._watchdog.done()):
            return
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="job-watchdog")

    async def _watch(self) -> None:
        assert self._stall_timeout is not None
        interval = min(self._stall_timeout / 4, 5.0)
        while any(not r.stage.is_finished for r in self._jobs.values()):
            await self._sleep(interval)
            self.check_stalled()

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self, job_id: JobId) -> JobSnapshot:
        record, now = self._record(job_id), self._clock()
        wait = self._queue_waits(now).get(job_id) if record.stage is JobStage.QUEUED else None
        return self._snapshot(record, now, wait)

    def snapshots(self) -> list[JobSnapshot]:
        """All known jobs, oldest first, with queue waits included in the ETAs."""
        now = self._clock()
        waits = self._queue_waits(now)
        return [self._snapshot(r, now, waits.get(r.id)) for r in self._jobs.values()]

    def preview(self, job_id: JobId) -> bytes | None:
        return self._record(job_id).preview

    # -- the run of one job ----------------------------------------------------------------

    async def _run(self, record: _JobRecord) -> None:
        error: BaseException | None = None
        try:
            await record.turn.wait()
            record.started_mono = record.heard_mono = self._clock()
            record.started_wall = self._wall()
            self._set_stage(record, JobStage.INITIALIZING, "Starting")
            record.result = await record.work(JobContext(self, record))
        except BaseException as exc:
            error = exc
        self._finish(record, error)
        # A cancelled job ends quietly: the task itself completes instead of re-raising, so
        # shutdown and the tests see one outcome in one place, the stage.
        if error is not None and not isinstance(error, Exception | asyncio.CancelledError):
            raise error  # KeyboardInterrupt, SystemExit: not ours to swallow

    def _finish(self, record: _JobRecord, error: BaseException | None) -> None:
        if record.id in self._queue:
            self._queue.remove(record.id)
        if record.holds_slot:
            record.holds_slot = False
            self._running -= 1
        record.stage, error_text = _final_stage(record, error)
        record.error = None if error_text is None else self._redact(error_text)
        record.finished_mono = self._clock()
        record.finished_wall = self._wall()
        if record.stage is JobStage.COMPLETED:
            record.floor = 1.0
            record.message = "Done"
            if record.started_mono is not None:
                duration = record.finished_mono - record.started_mono
                spec = record.spec
                self._durations.record(spec.provider, spec.kind, spec.quality, duration)
        elif record.stage is JobStage.CANCELLED:
            record.message = "Cancelled"
        record.preview = None
        record.done.set()
        log.info(
            "job %s %s after %s: %s via %s%s",
            record.id,
            record.stage.value,
            _duration(self._elapsed(record, record.finished_mono)),
            record.spec.kind.value,
            record.spec.provider,
            f" ({record.error})" if record.error else "",
        )
        self._forget_old_finished()
        self._pump()
        self._bump()
        snapshot = self._snapshot(record, record.finished_mono)
        for listener in self._finish_listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("a job finish listener failed")

    def _finish_unstarted(self, record: _JobRecord) -> None:
        # A task cancelled before its first step never enters ``_run``'s try block (the
        # CancelledError is thrown into the unstarted coroutine), so nothing else would finish it.
        if not record.done.is_set():
            self._finish(record, asyncio.CancelledError())

    def _pump(self) -> None:
        while self._running < self._limit and self._queue:
            record = self._jobs[self._queue.popleft()]
            record.holds_slot = True
            self._running += 1
            record.turn.set()

    def _forget_old_finished(self) -> None:
        finished = [r for r in self._jobs.values() if r.stage.is_finished]
        for record in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[record.id]

    # -- updates from running work (through JobContext) -------------------------------------

    def _set_stage(self, record: _JobRecord, stage: JobStage, message: str) -> None:
        if record.stage.is_finished:
            return
        record.stage = stage
        record.message = self._redact(message)
        record.heard_mono = self._clock()
        self._bump()

    def _set_progress(
        self, record: _JobRecord, fraction: float, message: str | None, *, eta_s: float | None, exact: bool
    ) -> None:
        if record.stage.is_finished:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        if exact:
            record.reported = max(record.reported or 0.0, fraction)
        else:
            record.milestone = max(record.milestone or 0.0, fraction)
        if eta_s is not None and 0 <= eta_s < float("inf"):
            record.provider_eta, record.provider_eta_at = float(eta_s), self._clock()
        if message is not None:
            record.message = self._redact(message)
        record.heard_mono = self._clock()
        self._bump()

    def _set_preview(self, record: _JobRecord, image: bytes) -> None:
        if record.stage.is_finished:
            return
        record.preview = image
        record.preview_version += 1
        record.heard_mono = self._clock()
        self._bump()

    def _touch(self, record: _JobRecord, *, message: str) -> None:
        if not record.stage.is_finished:
            record.message = self._redact(message)
            record.heard_mono = self._clock()
            self._bump()

    def _bump(self) -> None:
        self.version += 1

    def _record(self, job_id: JobId) -> _JobRecord:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(f"There is no job {job_id}.") from None

    # -- progress and ETA --------------------------------------------------------------------

    def _queue_waits(self, now: float) -> dict[JobId, float]:
        """Seconds each queued job is expected to wait, simulating the slots in order."""
        if not self._queue:
            return {}
        free_at = [
            self._remaining(r, now) for r in self._jobs.values() if r.holds_slot and not r.stage.is_finished
        ]
        free_at += [0.0] * max(0, self._limit - len(free_at))
        heapq.heapify(free_at)
        waits: dict[JobId, float] = {}
        for job_id in self._queue:
            start = heapq.heappop(free_at)
            waits[job_id] = start
            heapq.heappush(free_at, start + self._jobs[job_id].expected)
        return waits

    def _elapsed(self, record: _JobRecord, now: float) -> float:
        if record.started_mono is None:
            return 0.0
        end = record.finished_mono if record.finished_mono is not None else now
        return max(0.0, end - record.started_mono)

    def _overall_reported(self, record: _JobRecord) -> float | None:
        return _overall(record.reported)

    def _remaining(self, record: _JobRecord, now: float) -> float:
        if record.provider_eta is not None:
            # The provider's own estimate (e.g. SD WebUI's eta_relative), counted down since it came.
            return max(record.provider_eta - (now - record.provider_eta_at), 0.0)
        known = record.reported if record.reported is not None else record.milestone
        return remaining_seconds(self._elapsed(record, now), record.expected, _overall(known))

    def _snapshot(self, record: _JobRecord, now: float, wait: float | None = None) -> JobSnapshot:
        elapsed = self._elapsed(record, now)
        reported = self._overall_reported(record)
        source: Literal["reported", "estimated"] = "reported" if reported is not None else "estimated"
        eta: float | None
        if record.stage.is_finished:
            progress = 1.0 if record.stage is JobStage.COMPLETED else record.floor
            eta = None
            expected = elapsed if record.stage is JobStage.COMPLETED else record.expected
        elif record.stage is JobStage.QUEUED:
            progress = 0.0
            eta = (wait or 0.0) + record.expected
            expected = record.expected
        else:
            if reported is not None:
                computed = reported
            else:
                # Milestones (e.g. partial images) are floors under the estimate, not a replacement.
                computed = max(eased_progress(elapsed, record.expected), _overall(record.milestone) or 0.0)
            if record.stage is JobStage.FINALIZING:
                computed = max(computed, _PROCESSING_END)
            progress = min(max(record.floor, computed), MAX_SHOWN_BEFORE_DONE)
            record.floor = progress
            eta = self._remaining(record, now)
            expected = record.expected
        # A job handed a slot but not yet started is still QUEUED, though no longer in the queue.
        position = self._queue.index(record.id) + 1 if record.id in self._queue else None
        return JobSnapshot(
            id=record.id,
            spec=record.spec,
            stage=record.stage,
            progress=progress,
            progress_source=source,
            elapsed_s=elapsed,
            eta_s=eta,
            expected_s=expected,
            message=record.message,
            error=record.error,
            result_image_id=record.result,
            created_at=record.created_wall,
            started_at=record.started_wall,
            finished_at=record.finished_wall,
            queue_position=position,
            attempt=record.attempt,
            preview_version=record.preview_version,
            milestone=_overall(record.milestone),
        )


def _overall(fraction: float | None) -> float | None:
    """A provider's fraction of its own work, placed on the whole job's bar (PROCESSING span)."""
    if fraction is None:
        return None
    return _PROCESSING_START + (_PROCESSING_END - _PROCESSING_START) * fraction


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _final_stage(record: _JobRecord, error: BaseException | None) -> tuple[JobStage, str | None]:
    """The one place where an outcome becomes a final stage and a user-facing message."""
    if error is None:
        return JobStage.COMPLETED, None
    if isinstance(error, asyncio.CancelledError) and record.stalled is not None:
        return JobStage.FAILED, record.stalled
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return JobStage.CANCELLED, None
    if isinstance(error, ImgEditError):
        return JobStage.FAILED, str(error) or type(error).__name__
    log.error("job %s failed unexpectedly", record.id, exc_info=error)
    return JobStage.FAILED, GENERIC_FAILURE
