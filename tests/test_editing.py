"""Edits and generations as background jobs, end to end with a fake provider (imgedit.editing)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from imgedit.editing import Studio
from imgedit.errors import InvalidRequest, NotFound, ProviderFailed
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobStage
from imgedit.models import ImageOrigin, ImageRecord, JobKind, Quality
from imgedit.providers import ProviderRegistry
from imgedit.providers.base import Capabilities, ProgressSink, Provider, ProviderRequest, ProviderResult
from imgedit.storage import ImageStore


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class FakeProvider:
    """A provider that inverts the source (or paints a solid image) once the test releases it."""

    def __init__(
        self,
        name: str = "fake",
        label: str = "Fake Studio",
        *,
        generate: bool = True,
        output: bytes | None = None,
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self.label = label
        self.capabilities = Capabilities(edit=True, generate=generate, real_progress=True)
        self.release = asyncio.Event()
        self.working = asyncio.Event()
        self.requests: list[ProviderRequest] = []
        self.cancelled = False
        self._output = output
        self._error = error

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return {Quality.LOW: 1.0, Quality.MEDIUM: 3.0, Quality.HIGH: 9.0}[quality]

    def describe(self, kind: JobKind) -> str:
        return "Inverts the source."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        assert request.image is not None
        with Image.open(io.BytesIO(request.image)) as source:
            result = ImageChops.invert(source.convert("RGB"))
        return await self._work(request, sink, result)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self._work(request, sink, Image.new("RGB", request.size or (64, 64), "purple"))

    async def _work(
        self, request: ProviderRequest, sink: ProgressSink, result: Image.Image
    ) -> ProviderResult:
        self.requests.append(request)
        sink.progress(0.25, "Painting")
        self.working.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self._error is not None:
            raise self._error
        sink.progress(1.0, "Done painting")
        return ProviderResult(image=self._output if self._output is not None else png(result))


class Setup:
    def __init__(self, tmp_path: Path, providers: list[FakeProvider]) -> None:
        self.data_dir = tmp_path
        self.store = ImageStore(tmp_path)
        self.store.open()
        self.durations = DurationModel({q: 2.0 for q in Quality})
        self.registry = JobRegistry(max_concurrent=2, durations=self.durations)
        self.providers = ProviderRegistry(providers)
        self.studio = Studio(
            store=self.store, registry=self.registry, providers=self.providers, durations=self.durations
        )

    def image_files(self) -> list[str]:
        return sorted(p.name for p in (self.data_dir / "images").iterdir())

    def thumb_files(self) -> list[str]:
        return sorted(p.name for p in (self.data_dir / "thumbs").iterdir())

    async def close(self) -> None:
        await self.registry.shutdown()
        self.store.close()


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def env(tmp_path: Path, fake: FakeProvider) -> AsyncIterator[Setup]:
    setup = Setup(tmp_path, [fake])
    yield setup
    await setup.close()


async def add_source(store: ImageStore) -> ImageRecord:
    image = Image.new("RGB", (120, 80), (200, 30, 30))
    image.paste(Image.new("RGB", (60, 80), (10, 10, 240)), (60, 0))
    return await store.add(png(image), origin=ImageOrigin.UPLOAD, name="source.png")


@pytest.fixture
async def source(env: Setup) -> ImageRecord:
    return await add_source(env.store)


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0)


async def watch_stages(env: Setup, job_id: str, first: JobStage) -> list[JobStage]:
    """Every stage a viewer polling the registry would have seen, in order, from ``first`` on."""
    stages = [first]
    while not stages[-1].is_finished:
        await asyncio.sleep(0)
        stage = env.registry.snapshot(job_id).stage
        if stage is not stages[-1]:
            stages.append(stage)
    return stages


def test_the_fake_provider_implements_the_real_contract(fake: FakeProvider) -> None:
    assert isinstance(fake, Provider)


async def test_submitting_an_edit_returns_before_the_work_is_done(
    env: Setup, fake: FakeProvider, source
) -> None:
    job_id = env.studio.submit_edit(source.id, "invert it", Quality.MEDIUM, "fake")

    snapshot = env.registry.snapshot(job_id)
    assert snapshot.stage in (JobStage.QUEUED, JobStage.INITIALIZING)
    assert not snapshot.is_finished
    assert snapshot.spec.source_image_id == source.id
    assert snapshot.spec.prompt == "invert it"
    assert snapshot.expected_s == pytest.approx(3.0)  # the provider's prior for MEDIUM
    assert fake.requests == []
    assert len(env.store) == 1

    fake.release.set()
    assert (await env.registry.wait(job_id)).stage is JobStage.COMPLETED


async def test_an_edit_walks_the_stages_and_adds_a_new_image(env: Setup, fake: FakeProvider, source) -> None:
    original_bytes = await env.store.read_bytes(source.id)
    job_id = env.studio.submit_edit(source.id, "  invert   the colours ", Quality.HIGH, "fake")
    watcher = asyncio.create_task(watch_stages(env, job_id, env.registry.snapshot(job_id).stage))

    await asyncio.wait_for(fake.working.wait(), 5)
    processing = env.registry.snapshot(job_id)
    assert processing.stage is JobStage.PROCESSING
    assert processing.progress_source == "reported"
    assert processing.message == "Painting"
    assert 0.0 < processing.progress < 0.5
    assert len(env.store) == 1  # nothing added while it works

    fake.release.set()
    final = await env.registry.wait(job_id)
    stages = await watcher

    assert stages == [
        JobStage.QUEUED,
        JobStage.INITIALIZING,
        JobStage.PROCESSING,
        JobStage.FINALIZING,
        JobStage.COMPLETED,
    ]
    assert final.progress == 1.0
    assert final.error is None
    assert final.result_image_id is not None

    result = env.store.get(final.result_image_id)
    assert result.id != source.id
    assert result.parent_id == source.id
    assert result.prompt == "invert the colours"
    assert result.origin is ImageOrigin.EDIT
    assert (result.provider, result.quality) == ("fake", Quality.HIGH)
    assert (result.width, result.height) == (120, 80)
    assert [r.id for r in env.store.list()] == [result.id, source.id]

    [request] = fake.requests
    assert request.kind is JobKind.EDIT
    assert request.image == original_bytes
    with Image.open(env.store.path_of(result)) as stored:
        assert stored.convert("RGB").getpixel((10, 10)) == (55, 225, 225)  # the inverted source
    assert env.store.get(source.id) == source
    assert await env.store.read_bytes(source.id) == original_bytes
    assert env.store.thumb_path_of(result).exists()


async def test_an_empty_prompt_is_refused_and_nothing_is_queued(env: Setup, source) -> None:
    version = env.registry.version
    for prompt in ("", "   ", "\n\t"):
        with pytest.raises(InvalidRequest):
            env.studio.submit_edit(source.id, prompt, Quality.LOW, "fake")
        with pytest.raises(InvalidRequest):
            env.studio.submit_generate(prompt, Quality.LOW, "fake")
    assert env.registry.snapshots() == []
    assert env.registry.version == version


async def test_an_overlong_prompt_is_refused(env: Setup, source) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        env.studio.submit_edit(source.id, "x" * 5000, Quality.LOW, "fake")
    assert env.registry.snapshots() == []


@pytest.mark.parametrize("image_id", ["0" * 32, "../etc/passwd", "abc"])
async def test_editing_an_unknown_image_is_not_found(env: Setup, source, image_id: str) -> None:
    with pytest.raises(NotFound):
        env.studio.submit_edit(image_id, "invert", Quality.LOW, "fake")
    assert env.registry.snapshots() == []


async def test_an_unknown_provider_is_refused(env: Setup, source) -> None:
    with pytest.raises(InvalidRequest, match="nonexistent"):
        env.studio.submit_edit(source.id, "invert", Quality.LOW, "nonexistent")
    assert env.registry.snapshots() == []


async def test_cancelling_while_the_provider_works_adds_nothing(
    env: Setup, fake: FakeProvider, source
) -> None:
    files_before, thumbs_before = env.image_files(), env.thumb_files()
    job_id = env.studio.submit_edit(source.id, "invert", Quality.LOW, "fake")
    await asyncio.wait_for(fake.working.wait(), 5)
    assert env.registry.snapshot(job_id).stage is JobStage.PROCESSING

    assert env.registry.cancel(job_id) is True
    final = await env.registry.wait(job_id)

    assert final.stage is JobStage.CANCELLED
    assert final.result_image_id is None
    assert fake.cancelled
    assert [r.id for r in env.store.list()] == [source.id]
    assert env.image_files() == files_before
    assert env.thumb_files() == thumbs_before


async def test_a_provider_returning_garbage_fails_the_job_and_leaves_no_file(tmp_path: Path) -> None:
    garbage = FakeProvider("junk", "Junk Engine", output=b"\x89PNG but not really")
    setup = Setup(tmp_path, [garbage])
    try:
        picture = (await add_source(setup.store)).id
        files_before = setup.image_files()
        garbage.release.set()
        job_id = setup.studio.submit_edit(picture, "invert", Quality.LOW, "junk")
        final = await setup.registry.wait(job_id)

        assert final.stage is JobStage.FAILED
        assert final.error is not None
        assert "Junk Engine" in final.error
        assert "returned something that is not a usable image" in final.error
        assert final.result_image_id is None
        assert setup.image_files() == files_before
        assert len(setup.thumb_files()) == 1
        assert len(setup.store) == 1
    finally:
        await setup.close()


async def test_a_provider_error_fails_the_job_with_its_message(tmp_path: Path) -> None:
    broken = FakeProvider("flaky", "Flaky Cloud", error=ProviderFailed("Flaky Cloud timed out; try again."))
    setup = Setup(tmp_path, [broken])
    try:
        picture = (await add_source(setup.store)).id
        broken.release.set()
        final = await setup.registry.wait(setup.studio.submit_edit(picture, "invert", Quality.LOW, "flaky"))

        assert final.stage is JobStage.FAILED
        assert final.error == "Flaky Cloud timed out; try again."
        assert len(setup.store) == 1
    finally:
        await setup.close()


async def test_generate_adds_a_new_image_from_the_prompt(env: Setup, fake: FakeProvider) -> None:
    job_id = env.studio.submit_generate("a purple square", Quality.MEDIUM, "fake", size=(96, 48))
    assert not env.registry.snapshot(job_id).is_finished

    fake.release.set()
    final = await env.registry.wait(job_id)

    assert final.stage is JobStage.COMPLETED
    assert final.result_image_id is not None
    record = env.store.get(final.result_image_id)
    assert record.origin is ImageOrigin.GENERATE
    assert record.parent_id is None
    assert record.prompt == "a purple square"
    assert (record.width, record.height) == (96, 48)
    [request] = fake.requests
    assert (request.kind, request.image, request.size) == (JobKind.GENERATE, None, (96, 48))
    assert env.store.path_of(record).exists()


async def test_a_provider_that_cannot_generate_is_refused_for_generation(tmp_path: Path) -> None:
    editor = FakeProvider("editor", "Edit Only", generate=False)
    setup = Setup(tmp_path, [editor])
    try:
        with pytest.raises(InvalidRequest, match="Edit Only"):
            setup.studio.submit_generate("a cat", Quality.LOW, "editor")
        assert setup.registry.snapshots() == []
        assert editor.requests == []
    finally:
        await setup.close()


async def test_edits_use_the_provider_prior_and_then_learn(env: Setup, fake: FakeProvider, source) -> None:
    assert env.studio.expected_seconds("fake", JobKind.EDIT, Quality.HIGH) == pytest.approx(9.0)
    fake.release.set()
    final = await env.registry.wait(env.studio.submit_edit(source.id, "invert", Quality.HIGH, "fake"))
    assert final.stage is JobStage.COMPLETED
    # The real job took far less than 9 s, and the expectation moved toward it.
    assert env.studio.expected_seconds("fake", JobKind.EDIT, Quality.HIGH) < 9.0
