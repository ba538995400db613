"""The job registry: runs background work and owns each job's stage, progress and ETA.

It knows nothing of images, providers or browsers: it runs ``work(context)`` coroutines in the
order the scheduler decides, and hands out frozen ``JobSnapshot`` values. The outcome of a job
is mapped to its final stage in one place (``_final_stage``): ``CancelledError`` → CANCELLED
(FAILED with the reason when the watchdog stopped it), ``ImgEditError`` → FAILED with its
message, anything else → FAILED with a generic message and the traceback in the log. Every
message and error passes through ``redact`` before it is kept. Must not import nicegui.

Usage::

    registry = JobRegistry(max_concurrent=4, durations=DurationModel(priors))
    job_id = registry.submit(spec, work)      # returns at once
    registry.snapshot(job_id).progress         # 0..1, never backwards, 1.0 only when COMPLETED
    registry.cancel(job_id); registry.pause(); registry.move_to_front(other_id)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace

from imgedit.errors import (
    ImgEditError,
    InvalidRequest,
    NotFound,
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    StorageFailed,
)
from imgedit.eta import DurationModel, remaining_seconds
from imgedit.jobs import progress
from imgedit.jobs.journal import JobJournal
from imgedit.jobs.model import (
    GENERIC_FAILURE,
    Failure,
    FailureKind,
    JobRecord,
    JobSnapshot,
    JobSpec,
    JobStage,
    Work,
)
from imgedit.jobs.scheduler import Scheduler
from imgedit.models import ImageId, JobId, JobKind, new_job_id

log = logging.getLogger("imgedit.jobs")
PAUSED_SETTING = "queue_paused"
_RUNNING = (JobStage.INITIALIZING, JobStage.PROCESSING, JobStage.FINALIZING)
_QUEUED = JobStage.QUEUED
_NO_POSITIONS: dict[JobId, int] = {}
KEEP_FINISHED = 200
"""Finished jobs kept for clients that have not seen the outcome yet; older ones are forgotten."""
MAX_CODE_CHARS = 100
"""A server's error code longer than this is cut (it is a name, e.g. ``insufficient_quota``)."""


class JobContext:
    """What running work sees of its job: stage changes and progress. Also a provider's ProgressSink.

    A retry inside the job (``new_attempt``) starts the provider's progress afresh: from then on
    its fractions fill what is left of the bar above where it stood, its messages say which
    attempt this is, and its pace is measured from the attempt's own start."""

    def __init__(self, registry: JobRegistry, record: JobRecord) -> None:
        self._registry = registry
        self._record = record
        self._attempt = 1
        self._attempts: int | None = None
        self._attempt_base = 0.0
        """Where the bar stood (in the provider's own 0..1) when this attempt began."""
        self._attempt_started = 0.0

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
        if self._attempt > 1:
            fraction = min(max(float(fraction), 0.0), 1.0)
            if eta_s is None and fraction > 0:
                spent = self._registry._clock() - self._attempt_started
                eta_s = remaining_seconds(spent, self._record.expected, progress.overall(fraction))
            fraction = self._attempt_base + (1.0 - self._attempt_base) * fraction
            message = None if message is None else self._in_attempt(message)
        self._registry._set_progress(self._record, fraction, message, eta_s=eta_s, exact=exact)

    def new_attempt(self, number: int, of: int | None = None, message: str = "") -> None:
        """Attempt ``number`` (of ``of``) of the provider call begins: the previous attempt's
        reported progress, milestones and ETA no longer count."""
        self._attempt, self._attempts = number, of
        self._attempt_started = self._registry._clock()
        shown = self._registry._new_attempt(self._record, self._in_attempt(message))
        self._attempt_base = progress.provider_fraction(shown)

    def _in_attempt(self, message: str) -> str:
        label = f"Attempt {self._attempt}" + (f" of {self._attempts}" if self._attempts else "")
        return f"{label} · {message}" if message else label

    def preview(self, image: bytes) -> None:
        self._registry._set_preview(self._record, image)

    def landed(self, slot: int, image_id: ImageId) -> None:
        """Variation ``slot``'s result is in the gallery (before the job ends, when there are
        several): the card fills that slot."""
        self._registry._set_landed(self._record, slot, image_id)

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
        capacity_of: Callable[[str], int | None] = lambda _provider: None,
        journal: JobJournal | None = None,
    ) -> None:
        """``redact`` cleans every message and error before it is kept (secrets never reach a
        card); a running job that says nothing for ``stall_timeout`` seconds is failed;
        ``capacity_of(provider)`` is how many of its jobs may run at once (None: no limit)."""
        self._scheduler = Scheduler(limit=max_concurrent, capacity_of=capacity_of)
        self._journal = journal
        self._closing = False
        self._next_order = journal.next_order() if journal is not None else 0.0
        if stall_timeout is not None and not (0 < stall_timeout < float("inf")):
            raise ValueError("stall_timeout must be a positive number of seconds")
        self._redact = redact
        self._stall_timeout = stall_timeout
        self._sleep = sleep
        self._watchdog: asyncio.Task[None] | None = None
        self._durations = durations
        self._clock = clock
        self._wall = wall_clock
        self._jobs: dict[JobId, JobRecord] = {}
        self._handlers: dict[JobKind, Work] = {}
        self._finish_listeners: list[Callable[[JobSnapshot], None]] = []
        self.version = 0
        """Bumped on every change a user could see other than the passing of time."""

    # -- submitting and controlling -------------------------------------------------------

    @property
    def max_concurrent(self) -> int:
        return self._scheduler.limit

    @property
    def paused(self) -> bool:
        """Paused, nothing new starts; running jobs finish."""
        return self._scheduler.paused

    def pause(self) -> None:
        self._scheduler.paused = True
        if self._journal is not None:
            self._journal.save_setting(PAUSED_SETTING, "1")
        self._bump()

    def resume(self) -> None:
        self._scheduler.paused = False
        if self._journal is not None:
            self._journal.save_setting(PAUSED_SETTING, "0")
        self._pump()
        self._bump()

    def set_max_concurrent(self, limit: int) -> None:
        """Change the number of slots now: more start at once, or fewer once running ones end."""
        self._scheduler.set_limit(limit)
        self._pump()
        self._bump()

    def move_to_front(self, job_id: JobId) -> None:
        self.move(job_id, 0)

    def move(self, job_id: JobId, index: int) -> None:
        """Put a queued job at ``index`` of the queue (0 = next to start)."""
        self._record(job_id)
        self._scheduler.move(job_id, index)
        queued = self._scheduler.queued
        for position, queued_id in enumerate(queued):
            self._jobs[queued_id].order = position
        if self._journal is not None:
            self._journal.save_order(queued)
        self._bump()

    def cancel_queued(self) -> int:
        """Cancel every job still waiting in the queue; running jobs go on. How many."""
        queued = [self._jobs[j] for j in self._scheduler.queued]
        for record in queued:
            self.cancel(record.id)
        return len(queued)

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished job of the batch ``batch_id``; how many."""
        if not batch_id:
            return 0
        records = [r for r in self._jobs.values() if r.spec.batch == batch_id and not r.stage.is_finished]
        return sum(self.cancel(record.id) for record in records)

    def handle(self, kind: JobKind, work: Work) -> None:
        """Run every job of ``kind`` with ``work`` (it reads what to do from ``context.spec``), so
        a job is re-run from its spec alone: retried, or resumed after a restart."""
        self._handlers[kind] = work

    def submit(
        self,
        spec: JobSpec,
        work: Work | None = None,
        *,
        attempt: int = 1,
        job_id: JobId | None = None,
        created_wall: float | None = None,
        retry_of: JobId | None = None,
    ) -> JobId:
        """Queue a job and return its id at once; it starts when the scheduler lets it.

        It runs ``work`` if given (tests), else the handler for its kind."""
        if work is None:
            try:
                work = self._handlers[spec.kind]
            except KeyError:
                raise ValueError(f"no handler for {spec.kind} jobs") from None
        expected = self._expected(spec)
        record = JobRecord(
            id=job_id or new_job_id(),
            spec=spec,
            work=work,
            attempt=attempt,
            expected=expected,
            created_wall=self._wall() if created_wall is None else created_wall,
            order=self._take_order(),
            retry_of=retry_of,
        )
        self._jobs[record.id] = record
        self._scheduler.add(record.id, spec.provider)
        self._save(record)
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

    def retry(self, job_id: JobId, *, started_by: str | None = None) -> JobId:
        """Run a failed or cancelled job again as a new attempt; the old one is dismissed.
        ``started_by`` names who retried it (the original starter's name is kept if None)."""
        record = self._record(job_id)
        if record.stage not in {JobStage.FAILED, JobStage.CANCELLED, JobStage.INTERRUPTED}:
            raise ValueError(f"only failed or cancelled jobs can be retried, not {record.stage}")
        self.dismiss(job_id)
        spec = record.spec if started_by is None else replace(record.spec, started_by=started_by)
        return self.submit(spec, record.work, attempt=record.attempt + 1, retry_of=job_id)

    def restore_interrupted(
        self, spec: JobSpec, *, job_id: JobId, attempt: int, created_wall: float, message: str
    ) -> None:
        """Show a job found unfinished at start-up (not resumed) as INTERRUPTED: Retry or Dismiss."""
        work = self._handlers.get(spec.kind)
        if work is None:
            raise ValueError(f"no handler for {spec.kind} jobs")
        now = self._clock()
        record = JobRecord(
            id=job_id,
            spec=spec,
            work=work,
            attempt=attempt,
            expected=self._expected(spec),
            created_wall=created_wall,
            stage=JobStage.INTERRUPTED,
            message=message,
            error=message,
            finished_mono=now,
            finished_wall=self._wall(),
        )
        record.done.set()
        self._jobs[record.id] = record
        self._bump()

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
        """Stop every job and wait for the tasks to end.

        The journal keeps them as they were (queued or running), not as cancelled: the next
        start resumes them."""
        self._closing = True
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
        if record.stage is not JobStage.QUEUED:
            return self._snapshot(record, now)
        waits, positions = self._queue_waits(now), self._scheduler.positions()
        return self._snapshot(
            record, now, waits.get(job_id), positions, self._scheduler.waiting_for_provider()
        )

    def snapshots(self) -> list[JobSnapshot]:
        """All known jobs, oldest first, with queue waits included in the ETAs. Linear in jobs.

        Every tab calls this on each tick where the version moved, so it stays lean: the queue
        simulation runs only when something is queued."""
        now = self._clock()
        snapshot = self._snapshot
        if not self._scheduler.queued:
            # Queued-stage jobs here were handed a slot and start now (no position: wait 0).
            return [snapshot(r, now, None, _NO_POSITIONS) for r in self._jobs.values()]
        waits, positions = self._queue_waits(now), self._scheduler.positions()
        blocked = self._scheduler.waiting_for_provider()
        return [snapshot(r, now, waits.get(r.id), positions, blocked) for r in self._jobs.values()]

    def preview(self, job_id: JobId) -> bytes | None:
        return self._record(job_id).preview

    # -- the run of one job ----------------------------------------------------------------

    async def _run(self, record: JobRecord) -> None:
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

    def _finish(self, record: JobRecord, error: BaseException | None) -> None:
        self._scheduler.release(record.id)
        record.stage, error_text, failure = _final_stage(record, error)
        record.error = None if error_text is None else self._redact(error_text)
        if failure is not None and failure.code is not None:
            # The server's own words: kept as data, cleaned and bounded like any message.
            failure = replace(failure, code=self._redact(failure.code)[:MAX_CODE_CHARS] or None)
        record.failure = failure
        record.finished_mono = self._clock()
        record.finished_wall = self._wall()
        if record.stage is JobStage.COMPLETED:
            record.floor = 1.0
            record.message = "Done"
            if record.started_mono is not None:
                spec = record.spec
                # Learned per result: a job of n variations teaches what one result takes.
                duration = (record.finished_mono - record.started_mono) / max(1, spec.variations)
                self._durations.record(
                    spec.provider, spec.kind, spec.quality, duration, model=spec.model, size=spec.size
                )
        elif record.stage is JobStage.CANCELLED:
            record.message = "Cancelled"
        record.preview = None
        record.done.set()
        self._save(record)
        log.info(
            "job %s %s after %s: %s via %s%s",
            record.id,
            record.stage.value,
            _duration(progress.elapsed(record, record.finished_mono)),
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

    def _finish_unstarted(self, record: JobRecord) -> None:
        # A task cancelled before its first step never enters ``_run``'s try block (the
        # CancelledError is thrown into the unstarted coroutine), so nothing else would finish it.
        if not record.done.is_set():
            self._finish(record, asyncio.CancelledError())

    def _pump(self) -> None:
        for job_id in self._scheduler.start_ready():
            self._jobs[job_id].turn.set()

    def _forget_old_finished(self) -> None:
        finished = [r for r in self._jobs.values() if r.stage.is_finished]
        for record in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[record.id]

    # -- updates from running work (through JobContext) -------------------------------------

    def _set_stage(self, record: JobRecord, stage: JobStage, message: str) -> None:
        if record.stage.is_finished:
            return
        record.stage = stage
        record.message = self._redact(message)
        record.heard_mono = self._clock()
        self._save(record)
        self._bump()

    def _set_progress(
        self, record: JobRecord, fraction: float, message: str | None, *, eta_s: float | None, exact: bool
    ) -> None:
        if record.stage.is_finished:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = self._clock()
        if exact:
            record.reported = max(record.reported or 0.0, fraction)
        else:
            record.milestone = max(record.milestone or 0.0, fraction)
        # The projection is revised only here, when the provider says something: between
        # reports it stands still and the ETA counts down (it never counts up on its own).
        if eta_s is not None and 0 <= eta_s < float("inf"):
            record.provider_eta, record.provider_eta_at = float(eta_s), now
        elif (paced := progress.paced_remaining(record, now)) is not None:
            record.provider_eta, record.provider_eta_at = paced, now
        if message is not None:
            # "Done" belongs to a completed job; a provider done with its part is not.
            done = message.strip().rstrip(".!").lower() == "done"
            record.message = "Finishing" if done else self._redact(message)
        record.heard_mono = now
        self._bump()

    def _new_attempt(self, record: JobRecord, message: str) -> float:
        """Forget the previous attempt's progress; the new one is expected to take the whole
        expected time again. Returns the bar where it stands (it holds, never goes back)."""
        if record.stage.is_finished:
            return record.floor
        now = self._clock()
        record.floor = progress.shown(record, now).progress
        record.reported = record.milestone = None
        record.provider_eta, record.provider_eta_at = record.expected, now
        record.message = self._redact(message)
        record.heard_mono = now
        self._bump()
        return record.floor

    def _set_preview(self, record: JobRecord, image: bytes) -> None:
        if record.stage.is_finished:
            return
        record.preview = image
        record.preview_version += 1
        record.heard_mono = self._clock()
        self._bump()

    def _expected(self, spec: JobSpec) -> float:
        """Seconds the job is expected to run: one result's learned time per variation."""
        one = self._durations.expected(
            spec.provider, spec.kind, spec.quality, model=spec.model, size=spec.size
        )
        return one * max(1, spec.variations)

    def _set_landed(self, record: JobRecord, slot: int, image_id: ImageId) -> None:
        record.results[slot] = image_id
        record.heard_mono = self._clock()
        self._bump()

    def _touch(self, record: JobRecord, *, message: str) -> None:
        if not record.stage.is_finished:
            record.message = self._redact(message)
            record.heard_mono = self._clock()
            self._bump()

    def _bump(self) -> None:
        self.version += 1

    def _save(self, record: JobRecord) -> None:
        if self._journal is not None and not self._closing:
            self._journal.save(record)

    def _take_order(self) -> float:
        self._next_order += 1
        return self._next_order

    def _record(self, job_id: JobId) -> JobRecord:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(f"There is no job {job_id}.") from None

    # -- progress and ETA --------------------------------------------------------------------

    def _queue_waits(self, now: float) -> dict[JobId, float]:
        queued = [self._jobs[j] for j in self._scheduler.queued]
        running = [
            r for r in self._jobs.values() if self._scheduler.holds_slot(r.id) and not r.stage.is_finished
        ]
        return progress.queue_waits(
            running, queued, self._scheduler.limit, now, capacity_of=self._scheduler.capacity_of
        )

    def _snapshot(
        self,
        record: JobRecord,
        now: float,
        wait: float | None = None,
        positions: dict[JobId, int] | None = None,
        blocked: set[JobId] | None = None,
    ) -> JobSnapshot:
        stage = record.stage
        waiting_for_provider = held = False
        position = None
        if stage is _QUEUED:
            waiting_for_provider = blocked is not None and record.id in blocked
            position = None if positions is None else positions.get(record.id)
            held = position is not None and self._scheduler.paused
            if held:
                wait = None  # the queue is paused: it starts when someone resumes it, not at a time
            elif waiting_for_provider:
                wait = None  # a busy server (maybe another user's job): no invented wait
            elif position is None:
                wait = 0.0  # handed a slot, starting now
        view = progress.shown(record, now, wait)
        if stage in _RUNNING:
            record.floor = view.progress
        milestone = record.milestone
        # The frozen dataclass's own __init__ (keyword arguments, ``object.__setattr__`` per
        # field) took ~11 µs a snapshot, the largest part of a tick where a hundred jobs moved;
        # its slots written directly take ~4 µs and make the same immutable value.
        snap = _new_snapshot(JobSnapshot)
        _set_id(snap, record.id)
        _set_spec(snap, record.spec)
        _set_stage(snap, stage)
        _set_progress(snap, view.progress)
        _set_progress_source(snap, view.source)
        _set_elapsed_s(snap, view.elapsed_s)
        _set_eta_s(snap, view.eta_s)
        _set_expected_s(snap, view.expected_s)
        _set_message(snap, record.message)
        _set_error(snap, record.error)
        _set_result_image_id(snap, record.result)
        _set_created_at(snap, record.created_wall)
        _set_started_at(snap, record.started_wall)
        _set_finished_at(snap, record.finished_wall)
        # A job handed a slot but not yet started is still QUEUED, though no longer in the queue.
        _set_queue_position(snap, position)
        _set_attempt(snap, record.attempt)
        _set_preview_version(snap, record.preview_version)
        _set_milestone(snap, None if milestone is None else progress.overall(milestone))
        _set_waiting_for_provider(snap, waiting_for_provider)
        _set_paused(snap, held)
        _set_failure(snap, record.failure)
        results = record.results
        _set_result_image_ids(
            snap,
            tuple(results[slot] for slot in sorted(results))
            if results
            else (() if record.result is None else (record.result,)),
        )
        return snap


_new_snapshot = object.__new__
_SNAPSHOT_FIELDS = (
    "id",
    "spec",
    "stage",
    "progress",
    "progress_source",
    "elapsed_s",
    "eta_s",
    "expected_s",
    "message",
    "error",
    "result_image_id",
    "created_at",
    "started_at",
    "finished_at",
    "queue_position",
    "attempt",
    "preview_version",
    "milestone",
    "waiting_for_provider",
    "paused",
    "failure",
    "result_image_ids",
)
if set(_SNAPSHOT_FIELDS) != {field.name for field in fields(JobSnapshot)}:
    raise ImportError("JobRegistry._snapshot must set every JobSnapshot field")
(
    _set_id,
    _set_spec,
    _set_stage,
    _set_progress,
    _set_progress_source,
    _set_elapsed_s,
    _set_eta_s,
    _set_expected_s,
    _set_message,
    _set_error,
    _set_result_image_id,
    _set_created_at,
    _set_started_at,
    _set_finished_at,
    _set_queue_position,
    _set_attempt,
    _set_preview_version,
    _set_milestone,
    _set_waiting_for_provider,
    _set_paused,
    _set_failure,
    _set_result_image_ids,
) = (getattr(JobSnapshot, name).__set__ for name in _SNAPSHOT_FIELDS)
"""Each ``JobSnapshot`` field's slot setter (module globals: the cheapest lookup), for
``JobRegistry._snapshot``."""


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _final_stage(
    record: JobRecord, error: BaseException | None
) -> tuple[JobStage, str | None, Failure | None]:
    """The one place where an outcome becomes a final stage, a user-facing message and, for a
    failure, its structure."""
    if error is None:
        return JobStage.COMPLETED, None, None
    provider = record.spec.provider
    if isinstance(error, asyncio.CancelledError) and record.stalled is not None:
        return JobStage.FAILED, record.stalled, Failure(kind=FailureKind.STALLED, provider=provider)
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return JobStage.CANCELLED, None, None
    if isinstance(error, ImgEditError):
        return JobStage.FAILED, str(error) or type(error).__name__, failure_of(error, provider)
    log.error("job %s failed unexpectedly", record.id, exc_info=error)
    return JobStage.FAILED, GENERIC_FAILURE, Failure(kind=FailureKind.INTERNAL)


def failure_of(error: ImgEditError, provider: str) -> Failure:
    """The structure of an imgedit error: its kind from the class, the rest from the error."""
    if isinstance(error, ProviderError):
        if isinstance(error, ProviderRateLimited):
            kind = FailureKind.RATE_LIMITED
        elif isinstance(error, ProviderUnavailable):
            kind = FailureKind.UNREACHABLE
        elif isinstance(error, ProviderAuthFailed):
            kind = FailureKind.SIGN_IN
        elif isinstance(error, ProviderRejected):
            kind = FailureKind.REFUSED
        else:
            kind = FailureKind.PROVIDER_BROKE
        return Failure(kind=kind, provider=error.provider or provider, status=error.status, code=error.code)
    if isinstance(error, StorageFailed):
        return Failure(kind=FailureKind.STORAGE)
    if isinstance(error, InvalidRequest | NotFound):
        return Failure(kind=FailureKind.INPUT)
    return Failure(kind=FailureKind.INTERNAL)
