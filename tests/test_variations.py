"""Variations: one job makes n results (siblings), each landing in the gallery as it arrives.

Real parts: the local engine, a real SQLite file and image files, the real job registry. The
"stepping" provider below is a provider plug-in whose calls the test lets through one at a
time, to see each result land before the job ends.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from imgedit.database import MIGRATIONS, Database
from imgedit.editing import Studio
from imgedit.errors import InvalidRequest
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobStage
from imgedit.jobs.journal import JobJournal
from imgedit.models import ImageOrigin, JobKind, Quality
from imgedit.providers import ProviderRegistry
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from imgedit.providers.local import LocalProvider
from imgedit.storage import ImageStore
from tests.fakes import eventually


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


class SteppingProvider:
    """Makes a solid image per result, coloured by its seed; each call waits for the test's
    ``step`` (one call per variation unless ``per_request`` > 1)."""

    name = "stepping"
    label = "Stepping engine"

    def __init__(self, per_request: int = 1, *, short: bool = False, seeds: bool = True) -> None:
        self.capabilities = Capabilities(
            edit=True, generate=True, real_progress=True, variations=per_request, seeds=seeds
        )
        self.requests: list[ProviderRequest] = []
        self.steps: asyncio.Queue[None] = asyncio.Queue()
        self.waiting = asyncio.Event()
        self.short = short

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 2.0

    def describe(self, kind: JobKind) -> str:
        return "Waits for the test."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self.generate(request, sink)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        self.requests.append(request)
        sink.progress(0.5, "Half way")
        self.waiting.set()
        await self.steps.get()
        self.waiting.clear()
        seed = request.seed or 0
        images = [png(((seed + i) * 40 % 256, 100, 200)) for i in range(request.count)]
        if self.short:
            images = images[:-1]
        return ProviderResult(image=images[0], more=tuple(images[1:]))


class Setup:
    def __init__(self, data_dir: Path, providers: list[object]) -> None:
        self.data_dir = data_dir
        self.store = ImageStore(data_dir)
        self.store.open()
        self.durations = DurationModel({q: 2.0 for q in Quality})
        self.journal = JobJournal(self.store.db)
        self.registry = JobRegistry(max_concurrent=2, durations=self.durations, journal=self.journal)
        self.studio = Studio(
            store=self.store,
            registry=self.registry,
            providers=ProviderRegistry(providers),  # type: ignore[arg-type]
            durations=self.durations,
        )

    async def close(self) -> None:
        await self.registry.shutdown()
        self.journal.close()
        self.store.close()


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Setup]:
    setup = Setup(tmp_path / "data", [LocalProvider()])
    yield setup
    await setup.close()


def pixels(store: ImageStore, image_id: str) -> bytes:
    with Image.open(store.path_of(store.get(image_id))) as image:
        return image.convert("RGB").tobytes()


async def test_three_variations_of_an_edit_are_three_siblings_of_one_parent(local: Setup) -> None:
    source = await local.store.add(png((120, 130, 140), (90, 60)), origin=ImageOrigin.UPLOAD, name="grey.png")
    job = local.studio.submit_edit(source.id, "sepia and a vignette", Quality.LOW, "local", variations=3)
    final = await local.registry.wait(job)

    assert final.stage is JobStage.COMPLETED, final.error
    results = local.store.results_of(job)
    assert [r.job_slot for r in results] == [0, 1, 2]
    assert {r.parent_id for r in results} == {source.id}
    assert final.result_image_ids == tuple(r.id for r in results)
    assert final.result_image_id == results[0].id
    # All three are in the gallery, next to each other, the first variation first.
    shown = [r.id for r in local.store.list()]
    first = shown.index(results[0].id)
    assert shown[first : first + 3] == [r.id for r in results]
    # Variants, not copies: a seeded local edit differs per seed.
    assert len({pixels(local.store, r.id) for r in results}) == 3
    # The seed each came from is recorded: the job's seed, then + 1, + 2.
    assert final.spec.seed is not None and final.spec.variations == 3


async def test_generated_variations_differ_and_one_stays_one(local: Setup) -> None:
    many = local.studio.submit_generate(
        "a red circle on a blue background", Quality.LOW, "local", variations=4
    )
    one = local.studio.submit_generate("a red circle on a blue background", Quality.LOW, "local")
    assert (await local.registry.wait(many)).stage is JobStage.COMPLETED
    assert (await local.registry.wait(one)).stage is JobStage.COMPLETED
    made = local.store.results_of(many)
    assert len(made) == 4 and len({pixels(local.store, r.id) for r in made}) == 4
    assert len(local.store.results_of(one)) == 1
    assert len(local.store.list()) == 5


@pytest.mark.parametrize("count", [0, 5, -1])
async def test_out_of_range_variations_are_refused_with_a_message(local: Setup, count: int) -> None:
    with pytest.raises(InvalidRequest, match="from 1 to 4"):
        local.studio.submit_generate("a sun", Quality.LOW, "local", variations=count)
    assert local.registry.snapshots() == []


async def test_each_variation_lands_in_the_gallery_before_the_job_ends(tmp_path: Path) -> None:
    provider = SteppingProvider()
    setup = Setup(tmp_path / "data", [provider])
    try:
        job = setup.studio.submit_generate("anything", Quality.LOW, "stepping", variations=3)
        for landed in (1, 2):
            await eventually(provider.waiting.is_set, message="the provider to be asked")
            assert setup.registry.snapshot(job).message == f"Variation {landed} of 3 · Half way"
            provider.steps.put_nowait(None)
            await eventually(lambda n=landed: len(setup.registry.snapshot(job).result_image_ids) == n)
            snap = setup.registry.snapshot(job)
            assert not snap.is_finished
            # In the gallery already, the first variation first.
            assert [r.id for r in setup.store.list()] == list(snap.result_image_ids)
        await eventually(provider.waiting.is_set)
        provider.steps.put_nowait(None)
        final = await setup.registry.wait(job)
        assert final.stage is JobStage.COMPLETED
        assert len(final.result_image_ids) == 3
        # One request per variation, seeds s, s + 1, s + 2.
        seeds = [r.seed for r in provider.requests]
        assert seeds[0] is not None and seeds == [seeds[0], seeds[0] + 1, seeds[0] + 2]
        assert [r.count for r in provider.requests] == [1, 1, 1]
    finally:
        await setup.close()


async def test_a_provider_that_batches_is_asked_once_for_all(tmp_path: Path) -> None:
    provider = SteppingProvider(per_request=4)
    setup = Setup(tmp_path / "data", [provider])
    try:
        job = setup.studio.submit_generate("anything", Quality.LOW, "stepping", variations=3)
        await eventually(provider.waiting.is_set)
        assert setup.registry.snapshot(job).message == "3 variations · Half way"
        provider.steps.put_nowait(None)
        final = await setup.registry.wait(job)
        assert final.stage is JobStage.COMPLETED
        assert [r.count for r in provider.requests] == [3]
        assert len({pixels(setup.store, i) for i in final.result_image_ids}) == 3
    finally:
        await setup.close()


async def test_variations_on_a_provider_without_seeds_carry_no_seed(tmp_path: Path) -> None:
    """OpenAI takes no seed: its variations are n draws, and no invented seed is shown for them."""
    provider = SteppingProvider(per_request=4, seeds=False)
    setup = Setup(tmp_path / "data", [provider])
    try:
        job = setup.studio.submit_generate("anything", Quality.LOW, "stepping", variations=2)
        assert setup.registry.snapshot(job).spec.seed is None
        await eventually(provider.waiting.is_set)
        provider.steps.put_nowait(None)
        assert (await setup.registry.wait(job)).stage is JobStage.COMPLETED
        assert [(r.count, r.seed) for r in provider.requests] == [(2, None)]
    finally:
        await setup.close()


async def test_a_provider_that_returns_fewer_than_asked_fails_the_job_with_a_message(tmp_path: Path) -> None:
    provider = SteppingProvider(per_request=4, short=True)
    setup = Setup(tmp_path / "data", [provider])
    try:
        job = setup.studio.submit_generate("anything", Quality.LOW, "stepping", variations=3)
        await eventually(provider.waiting.is_set)
        provider.steps.put_nowait(None)
        final = await setup.registry.wait(job)
        assert final.stage is JobStage.FAILED
        assert final.error == "Stepping engine returned 2 images of the 3 asked for."
        assert setup.store.list() == []
    finally:
        await setup.close()


async def test_a_resumed_job_makes_only_the_variations_it_had_not_stored(tmp_path: Path) -> None:
    provider = SteppingProvider()
    setup = Setup(tmp_path / "data", [provider])
    try:
        from imgedit.jobs.model import JobSpec

        spec = JobSpec(
            kind=JobKind.GENERATE, prompt="x", quality=Quality.LOW, provider="stepping", seed=10, variations=3
        )
        # As after a crash: slots 0 and 2 were stored before the process died.
        kept = [
            await setup.store.add(
                png((1, 2, 3)), origin=ImageOrigin.GENERATE, job_id="job-resumed", job_slot=s
            )
            for s in (0, 2)
        ]
        job = setup.registry.submit(spec, job_id="job-resumed")  # type: ignore[arg-type]
        await eventually(provider.waiting.is_set)
        provider.steps.put_nowait(None)
        final = await setup.registry.wait(job)
        assert final.stage is JobStage.COMPLETED
        assert [r.seed for r in provider.requests] == [11]  # slot 1 only
        results = setup.store.results_of(job)
        assert [r.job_slot for r in results] == [0, 1, 2]
        assert results[0].id == kept[0].id and results[2].id == kept[1].id
    finally:
        await setup.close()


async def test_variations_survive_a_restart_in_the_journal_and_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    setup = Setup(data, [LocalProvider()])
    job = setup.studio.submit_generate("stripes", Quality.LOW, "local", variations=2)
    await setup.registry.wait(job)
    await setup.close()

    store = ImageStore(data)
    store.open()
    try:
        assert [r.job_slot for r in store.results_of(job)] == [0, 1]
        assert store.made_by(job, 1) is not None
        row = store.db.query("SELECT variations FROM jobs WHERE id = ?", (job,))[0]
        assert row["variations"] == 2
    finally:
        store.close()


def test_an_older_database_keeps_its_results_as_first_variations(tmp_path: Path) -> None:
    path = tmp_path / "data" / "imgedit.sqlite3"
    old = Database(path, migrations=MIGRATIONS[:7])
    old.open()
    old.execute(
        "INSERT INTO images (id, created_at, origin, width, height, format, job_id) "
        "VALUES ('img-old', 1.0, 'edit', 4, 4, 'PNG', 'job-old')"
    )
    old.close()
    store = ImageStore(tmp_path / "data")
    store.open()
    try:
        row = store.db.query("SELECT job_slot FROM images WHERE id = 'img-old'")[0]
        assert row["job_slot"] == 0
        # Two rows of one job in one slot are still refused; another slot is allowed.
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute(
                "INSERT INTO images (id, created_at, origin, width, height, format, job_id, job_slot) "
                "VALUES ('img-dup', 1.0, 'edit', 4, 4, 'PNG', 'job-old', 0)"
            )
        store.db.execute(
            "INSERT INTO images (id, created_at, origin, width, height, format, job_id, job_slot) "
            "VALUES ('img-two', 1.0, 'edit', 4, 4, 'PNG', 'job-old', 1)"
        )
    finally:
        store.close()


async def test_cancelling_between_variations_keeps_those_made_and_asks_for_no_more(tmp_path: Path) -> None:
    provider = SteppingProvider()
    setup = Setup(tmp_path / "data", [provider])
    try:
        job = setup.studio.submit_generate("anything", Quality.LOW, "stepping", variations=3)
        await eventually(provider.waiting.is_set)
        provider.steps.put_nowait(None)
        await eventually(lambda: len(setup.registry.snapshot(job).result_image_ids) == 1)
        await eventually(provider.waiting.is_set, message="the second variation to start")
        assert setup.registry.cancel(job)
        final = await setup.registry.wait(job)
        assert final.stage is JobStage.CANCELLED
        assert len(final.result_image_ids) == 1, "the first variation stays in the gallery"
        assert [r.id for r in setup.store.list()] == list(final.result_image_ids)
        assert len(provider.requests) == 2, "nothing asked for after the cancel"
    finally:
        await setup.close()
