"""The job journal and resume (issue 7), in process on a real data dir: each stage reaches the
``jobs`` table; a second start on the same data dir (as after a crash) brings every unfinished
job back in queue order, runs none twice and never stores a result twice."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from imgedit.config import Settings
from imgedit.jobs import JobStage
from imgedit.models import ImageOrigin, JobId, JobKind, Quality
from imgedit.services import Services, build_services
from tests.fakes import GatedProvider


def jobs_table(data_dir: Path) -> dict[str, tuple[str, float, str | None]]:
    """id → (stage, queue_order, result_image_id), read with a connection of its own."""
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        rows = db.execute("SELECT id, stage, queue_order, result_image_id FROM jobs").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def images_by_job(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        return [r[0] for r in db.execute("SELECT job_id FROM images WHERE job_id IS NOT NULL")]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Services]]:
    """Start the services on one data dir, as ``python main.py`` does; several times if asked."""
    started: list[Services] = []

    def make(**settings: object) -> Services:
        services = build_services(
            Settings(data_dir=tmp_path / "data", samples=False, show=False, max_concurrent=1, **settings)  # type: ignore[arg-type]
        )
        gated = GatedProvider()
        services.providers.add(gated)
        started.append(services)
        services.start()
        return services

    yield make
    for services in started:
        await services.close()


def gated(services: Services) -> GatedProvider:
    provider = services.providers.get("gated")
    assert isinstance(provider, GatedProvider)
    return provider


async def test_every_stage_reaches_the_journal(start: Callable[..., Services], tmp_path: Path) -> None:
    services = start()
    job_id = services.studio.submit_generate("a red circle", Quality.LOW, "local", (32, 32))
    final = await services.registry.wait(job_id)
    await services.journal.flush()
    stage, _order, result = jobs_table(tmp_path / "data")[job_id]
    assert stage == "completed" and result == final.result_image_id
    assert images_by_job(tmp_path / "data") == [job_id]

    failing = services.studio.submit_generate("a red circle", Quality.LOW, "gated")
    services.registry.cancel(failing)
    await services.registry.wait(failing)
    await services.journal.flush()
    assert jobs_table(tmp_path / "data")[failing][0] == "cancelled"


async def test_a_restart_resumes_running_and_queued_jobs_in_order_and_none_twice(
    start: Callable[..., Services], tmp_path: Path
) -> None:
    first = start()
    ids = [first.studio.submit_generate(f"dots {i}", Quality.LOW, "gated") for i in range(3)]
    await asyncio.wait_for(gated(first).started.wait(), 5)
    first.registry.move_to_front(ids[2])  # the queue is now: 2, 1 (0 is running)
    await first.journal.flush()
    assert {jobs_table(tmp_path / "data")[j][0] for j in ids} == {"queued", "processing"}

    # The process stops here; what it does on the way out must not mark the jobs as finished.
    await first.registry.shutdown()
    await first.journal.flush()
    assert {jobs_table(tmp_path / "data")[j][0] for j in ids} == {"queued", "processing"}
    second = start()
    snapshots = {s.id: s for s in second.registry.snapshots()}
    assert set(snapshots) == set(ids), "every job is back, under its own id"
    assert snapshots[ids[0]].stage is not JobStage.QUEUED or snapshots[ids[0]].queue_position is None
    assert snapshots[ids[2]].queue_position == 1 and snapshots[ids[1]].queue_position == 2
    gated(second).gate.set()
    finals = [await second.registry.wait(j) for j in ids]
    assert [f.stage for f in finals] == [JobStage.COMPLETED] * 3
    assert gated(second).calls == 3
    assert sorted(images_by_job(tmp_path / "data")) == sorted(ids), "one image per job"


async def test_a_resumed_job_whose_result_was_already_stored_does_not_run_again(
    start: Callable[..., Services], tmp_path: Path
) -> None:
    first = start()
    job_id = first.studio.submit_generate("stars", Quality.LOW, "gated")
    await asyncio.wait_for(gated(first).started.wait(), 5)
    # The result reached the gallery, then the process died before the journal said "completed".
    record = await first.store.add(_png(), origin=ImageOrigin.GENERATE, prompt="stars", job_id=JobId(job_id))
    await first.registry.shutdown()
    await first.journal.flush()

    second = start()
    final = await second.registry.wait(JobId(job_id))
    assert final.stage is JobStage.COMPLETED and final.result_image_id == record.id
    assert gated(second).calls == 0, "the provider was not asked again"
    assert images_by_job(tmp_path / "data") == [job_id]


async def test_with_no_resume_unfinished_jobs_are_interrupted_and_can_be_retried(
    start: Callable[..., Services], tmp_path: Path
) -> None:
    first = start()
    job_id = first.studio.submit_generate("waves", Quality.LOW, "gated")
    await asyncio.wait_for(gated(first).started.wait(), 5)
    await first.registry.shutdown()
    await first.journal.flush()

    second = start(resume=False)
    snapshot = second.registry.snapshot(JobId(job_id))
    assert snapshot.stage is JobStage.INTERRUPTED and "Interrupted" in (snapshot.error or "")
    await second.journal.flush()
    assert jobs_table(tmp_path / "data")[job_id][0] == "interrupted"
    assert gated(second).calls == 0

    again = second.registry.retry(JobId(job_id))
    gated(second).gate.set()
    assert (await second.registry.wait(again)).stage is JobStage.COMPLETED
    await second.journal.flush()  # as a real stop does: the completion is written before the restart
    third = start()
    assert third.registry.snapshots() == [], "nothing is left to resume"


async def test_a_paused_queue_stays_paused_after_a_restart(start: Callable[..., Services]) -> None:
    first = start()
    first.registry.pause()
    job_id = first.studio.submit_generate("grid", Quality.LOW, "local", (16, 16))
    await asyncio.sleep(0)
    assert first.registry.snapshot(job_id).stage is JobStage.QUEUED
    await first.registry.shutdown()
    await first.journal.flush()

    second = start()
    assert second.registry.paused
    assert second.registry.snapshot(JobId(job_id)).stage is JobStage.QUEUED
    second.registry.resume()
    assert (await second.registry.wait(JobId(job_id))).stage is JobStage.COMPLETED


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_learned_durations_survive_a_restart(start: Callable[..., Services]) -> None:
    first = start()
    prior = first.studio.durations.expected("local", JobKind.GENERATE, Quality.LOW)
    job_id = first.studio.submit_generate("a blue star", Quality.LOW, "local", (40, 40))
    final = await first.registry.wait(job_id)
    learned = first.studio.durations.expected("local", JobKind.GENERATE, Quality.LOW)
    assert learned != prior and learned == pytest.approx(final.expected_s, rel=0.01)
    await first.registry.shutdown()
    await first.journal.flush()

    second = start()
    assert second.studio.durations.expected("local", JobKind.GENERATE, Quality.LOW) == pytest.approx(learned)


async def test_a_jobs_variant_survives_a_restart(start: Callable[..., Services]) -> None:
    """The provider's variant (a ComfyUI workflow) is part of the spec the journal keeps."""
    from imgedit.jobs.model import JobSpec
    from imgedit.models import JobKind

    first = start()
    spec = JobSpec(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW, provider="gated", variant="soft")
    job_id = first.registry.submit(spec)
    await first.journal.flush()
    await first.close()

    second = start()
    (resumed,) = [s for s in second.registry.snapshots() if s.id == job_id]
    assert resumed.spec.variant == "soft"
