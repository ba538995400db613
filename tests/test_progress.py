"""Honest progress and ETA on a fake clock, for each provider's way of reporting (imgedit.jobs.progress).

- OpenAI: a 0 % milestone first, then partial images as milestones, no ETA of its own;
- SD WebUI: exact step fractions with its own ETA;
- the local engine: exact fractions, often, no ETA;
- retries inside a job, queued jobs, and a job waiting for its provider's capacity.

The bar and the ETA must tell the same story: the ETA counts down at the pace the bar implies,
an overrun says so ("a little longer") instead of counting up, and a card whose state did not
change sends the browser nothing new.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from imgedit.eta import DurationModel
from imgedit.jobs import JobContext, JobRegistry, JobSnapshot, JobSpec, JobStage, progress
from imgedit.models import JobId, JobKind, Quality
from imgedit.ui import format as fmt
from imgedit.ui.job_card import card_attributes
from tests.test_jobs import FakeClock, wait_until

PRIORS = {Quality.LOW: 4.0, Quality.MEDIUM: 8.0, Quality.HIGH: 16.0}
OPENAI_SECONDS = 12.9  # the OpenAI prior for a low-quality generation


class Env:
    def __init__(self, *, max_concurrent: int = 2, capacity: dict[str, int] | None = None) -> None:
        self.clock = FakeClock(1000.0)
        self.wall = FakeClock(1_700_000_000.0)
        self.durations = DurationModel(PRIORS)
        self.durations.set_prior("openai", JobKind.GENERATE, Quality.LOW, OPENAI_SECONDS)
        limits = capacity or {}
        self.registry = JobRegistry(
            max_concurrent=max_concurrent,
            durations=self.durations,
            clock=self.clock.now,
            wall_clock=self.wall.now,
            capacity_of=limits.get,
        )
        self._releases: list[asyncio.Event] = []

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.wall.advance(seconds)

    def submit(
        self, provider: str = "local", quality: Quality = Quality.LOW
    ) -> tuple[JobId, dict[str, JobContext]]:
        holder: dict[str, JobContext] = {}
        release = asyncio.Event()
        self._releases.append(release)

        async def work(ctx: JobContext) -> None:
            holder["ctx"] = ctx
            await release.wait()
            return None

        kind = JobKind.GENERATE if provider == "openai" else JobKind.EDIT
        spec = JobSpec(kind=kind, prompt="x", quality=quality, provider=provider)
        return self.registry.submit(spec, work), holder

    async def running(
        self, provider: str = "local", quality: Quality = Quality.LOW
    ) -> tuple[JobId, JobContext]:
        job_id, holder = self.submit(provider, quality)
        await wait_until(lambda: "ctx" in holder)
        ctx = holder["ctx"]
        ctx.stage(JobStage.PROCESSING, "Working")
        return job_id, ctx

    def snap(self, job_id: JobId) -> JobSnapshot:
        return self.registry.snapshot(job_id)

    async def close(self) -> None:
        for release in self._releases:
            release.set()
        await self.registry.shutdown()


@pytest.fixture
async def env():  # type: ignore[no-untyped-def]
    made = Env()
    yield made
    await made.close()


def deadline(snapshot: JobSnapshot) -> float:
    """The wall time the card counts down to."""
    assert snapshot.started_at is not None and snapshot.eta_s is not None
    return snapshot.started_at + snapshot.elapsed_s + snapshot.eta_s


def implied_left(snapshot: JobSnapshot) -> float:
    """What the bar's pace says is left: elapsed × (1 − p) / p."""
    return snapshot.elapsed_s * (1 - snapshot.progress) / snapshot.progress


# -- OpenAI: a 0 % milestone first, partial images later ------------------------------------


async def test_openai_milestone_zero_eta_counts_down_with_the_bar(env: Env) -> None:
    job_id, ctx = await env.running("openai")
    ctx.progress(0.0, "Sending to OpenAI", exact=False)  # what the provider always says first

    seen = {}
    for t in (5.0, 10.0, 20.0, 40.0):
        env.advance(t - ((seen and max(seen)) or 0.0))
        seen[t] = env.snap(job_id)

    # Before the overrun the ETA is what the bar's pace implies, and it only ever goes down.
    for t in (5.0, 10.0):
        assert seen[t].eta_s == pytest.approx(implied_left(seen[t]), rel=0.05)
    etas = [seen[t].eta_s for t in sorted(seen)]
    assert all(a is not None and b is not None and b <= a for a, b in itertools.pairwise(etas))
    # The deadline the browser counts down to does not move while nothing happens.
    assert deadline(seen[5.0]) == pytest.approx(deadline(seen[10.0]))
    # An overrun says so instead of counting up or claiming "almost done".
    for t in (20.0, 40.0):
        assert seen[t].eta_s == 0.0
        assert fmt.card_eta_text(seen[t]) == "a little longer"
    assert [fmt.card_eta_text(seen[t]) for t in (5.0, 10.0)] == ["≈0:07 left", "≈0:02 left"]


async def test_openai_partial_images_revise_the_pace_and_the_eta_still_counts_down(env: Env) -> None:
    job_id, ctx = await env.running("openai")
    ctx.progress(0.0, "Sending to OpenAI", exact=False)
    env.advance(3.0)
    ctx.progress(1 / 3, "Partial image 1 of 2", exact=False)  # faster than the prior said
    at_partial = env.snap(job_id)
    env.advance(1.0)
    later = env.snap(job_id)

    assert at_partial.progress >= progress.overall(1 / 3)  # type: ignore[operator]
    assert at_partial.eta_s is not None and at_partial.eta_s < OPENAI_SECONDS - 3.0
    assert later.eta_s == pytest.approx(at_partial.eta_s - 1.0)
    assert later.progress >= at_partial.progress
    assert deadline(later) == pytest.approx(deadline(at_partial))


async def test_a_card_that_did_not_change_sends_nothing_new_on_a_tick(env: Env) -> None:
    job_id, ctx = await env.running("openai")
    ctx.progress(0.0, "Sending to OpenAI", exact=False)
    env.advance(1.0)
    first = card_attributes(env.snap(job_id), now=env.wall.now())
    for _ in range(30):  # through the overrun too
        env.advance(1.0)
        assert card_attributes(env.snap(job_id), now=env.wall.now()) == first


# -- SD WebUI: exact steps with its own ETA; the local engine: exact fractions ---------------


async def test_sdwebui_reports_with_its_own_eta_and_the_deadline_holds_between_reports(env: Env) -> None:
    job_id, ctx = await env.running("sdwebui", Quality.MEDIUM)
    env.advance(2.0)
    ctx.progress(0.25, "Step 6 of 24", eta_s=6.0)
    first = env.snap(job_id)
    env.advance(2.0)
    second = env.snap(job_id)

    assert first.progress_source == "reported"
    assert first.progress == pytest.approx(progress.overall(0.25))
    assert first.eta_s == pytest.approx(6.0)
    assert second.eta_s == pytest.approx(4.0)
    assert deadline(second) == pytest.approx(deadline(first))
    assert fmt.card_eta_text(second) == "≈0:04 left"


async def test_local_exact_progress_without_an_eta_counts_down_between_reports(env: Env) -> None:
    job_id, ctx = await env.running("local", Quality.LOW)  # prior 4 s
    env.advance(1.0)
    ctx.progress(0.5, "Band 4 of 8")
    first = env.snap(job_id)
    etas = []
    for _ in range(3):
        env.advance(0.5)
        etas.append(env.snap(job_id).eta_s)

    assert first.eta_s is not None and 0 < first.eta_s < 4.0
    assert etas == sorted(etas, reverse=True)  # never counts up while waiting for the next report
    assert etas[0] == pytest.approx(first.eta_s - 0.5)


@pytest.mark.parametrize("fraction", [0.0, 0.26, 0.45])
async def test_almost_done_is_never_said_far_from_the_end(env: Env, fraction: float) -> None:
    job_id, ctx = await env.running("local", Quality.LOW)
    env.advance(30.0)  # long past the prior
    ctx.progress(fraction, "Working")
    env.advance(60.0)
    snapshot = env.snap(job_id)
    assert "almost" not in fmt.card_eta_text(snapshot)


async def test_a_provider_saying_done_before_the_job_is_done_does_not_read_done(env: Env) -> None:
    job_id, ctx = await env.running("local")
    ctx.progress(1.0, "Done")
    snapshot = env.snap(job_id)
    assert snapshot.stage is JobStage.PROCESSING
    assert snapshot.message != "Done"


# -- retries inside a job ------------------------------------------------------------------


async def test_each_attempt_starts_its_own_progress(env: Env) -> None:
    job_id, ctx = await env.running("sdwebui", Quality.MEDIUM)  # prior 8 s
    env.advance(6.0)
    ctx.progress(0.8, "Step 16 of 20", eta_s=1.5)
    before = env.snap(job_id)
    env.advance(10.0)  # the attempt failed; the retry waited
    ctx.new_attempt(2, 3)
    started = env.snap(job_id)
    ctx.progress(0.05, "Step 1 of 20")
    step1 = env.snap(job_id)
    env.advance(4.0)
    ctx.progress(0.5, "Step 10 of 20")
    step10 = env.snap(job_id)

    assert "Attempt 2 of 3" in step1.message and "Step 1 of 20" in step1.message
    assert started.progress >= before.progress  # the bar may hold, never go back
    assert step1.progress > before.progress  # ...but it follows the new attempt, not frozen
    assert step10.progress > step1.progress
    assert step10.progress < progress.PROCESSING_END
    # The ETA is the new attempt's: a fresh expected duration, not the old attempt's 1.5 s.
    assert started.eta_s == pytest.approx(8.0)
    assert step10.eta_s is not None and step10.eta_s > 2.0


async def test_a_new_attempt_forgets_milestones_and_the_old_provider_eta(env: Env) -> None:
    job_id, ctx = await env.running("openai")
    env.advance(2.0)
    ctx.progress(2 / 3, "Partial image 2 of 2", exact=False)
    env.advance(1.0)
    ctx.new_attempt(2, 3)
    snapshot = env.snap(job_id)
    env.advance(5.0)
    later = env.snap(job_id)
    assert snapshot.milestone is None
    assert snapshot.eta_s == pytest.approx(OPENAI_SECONDS)
    assert later.eta_s == pytest.approx(OPENAI_SECONDS - 5.0)


# -- queued jobs ---------------------------------------------------------------------------


async def test_a_job_that_starts_at_once_never_shows_a_queued_card() -> None:
    env = Env(max_concurrent=1)
    try:
        job_id, _ = env.submit()  # the event loop has not run it yet
        snapshot = env.snap(job_id)
        assert fmt.stage_label(snapshot) == "Starting"
        assert fmt.card_eta_text(snapshot) == "≈0:04 left"
        assert fmt.elapsed_text(snapshot) == "0:00"
        assert card_attributes(snapshot, now=env.wall.now())["data-stage"] == "starting"
    finally:
        await env.close()


async def test_a_queued_card_never_says_almost_done() -> None:
    env = Env(max_concurrent=1)
    env.durations.set_prior("local", JobKind.EDIT, Quality.LOW, 0.3)
    try:
        await env.running()
        env.advance(10.0)  # the running one is overdue
        queued, _ = env.submit()
        snapshot = env.snap(queued)
        assert fmt.stage_label(snapshot) == "Queued (position 1)"
        assert "almost" not in fmt.card_eta_text(snapshot)
    finally:
        await env.close()


async def test_a_job_waiting_only_for_its_provider_shows_no_invented_progress_or_eta() -> None:
    env = Env(max_concurrent=4, capacity={"sdwebui": 1})
    try:
        await env.running("sdwebui")
        waiting, _ = env.submit("sdwebui")
        local_id, _ = env.submit("local")
        env.advance(30.0)
        snapshot = env.snap(waiting)
        assert snapshot.waiting_for_provider
        assert fmt.stage_label(snapshot) == "Waiting for a free server"
        assert snapshot.progress == 0.0
        assert snapshot.eta_s is None
        assert fmt.card_eta_text(snapshot) == ""
        assert env.snap(local_id).stage is not JobStage.QUEUED or env.snap(local_id).queue_position is None
    finally:
        await env.close()


def test_queue_waits_account_for_each_providers_capacity() -> None:
    from imgedit.jobs.model import JobRecord

    async def nothing(_ctx: JobContext) -> None:
        return None

    made_ids = iter(range(100))

    def record(provider: str, expected: float, started: float | None = None) -> JobRecord:
        spec = JobSpec(kind=JobKind.EDIT, prompt="x", quality=Quality.LOW, provider=provider)
        made = JobRecord(
            id=JobId(f"{provider}-{next(made_ids)}"),
            spec=spec,
            work=nothing,
            attempt=1,
            expected=expected,
            created_wall=0.0,
        )
        if started is not None:
            made.started_mono = started
            made.stage = JobStage.PROCESSING
        return made

    running = [record("sdwebui", 10.0, started=0.0)]
    sd_next, local_next, sd_last = record("sdwebui", 10.0), record("local", 2.0), record("sdwebui", 10.0)
    capacity = {"sdwebui": 1}
    waits = progress.queue_waits(running, [sd_next, local_next, sd_last], 2, 0.0, capacity_of=capacity.get)

    assert waits[sd_next.id] == pytest.approx(10.0)  # one server: after the running one
    assert waits[local_next.id] == pytest.approx(0.0)  # not held behind the busy server
    assert waits[sd_last.id] == pytest.approx(20.0)
    # Without a capacity the same queue would have started the second SD job at once.
    assert progress.queue_waits(running, [sd_next], 2, 0.0)[sd_next.id] == pytest.approx(0.0)
