"""Image work runs in the cpu pool (``imgedit.cpu``), apart from the default executor that disk and
database calls use: a real local job's Pillow work is seen on a cpu-pool thread; with that pool
busy, an ``asyncio.to_thread`` disk call still completes; a local edit cancelled while it waits
for the pool never runs. Orderings are asserted with events, never with time. And the store's
image work in one decode (``imaging.normalize_with_thumbnail``) gives what the two calls give."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from imgedit import cpu, imaging
from imgedit.config import Settings
from imgedit.jobs import JobStage
from imgedit.models import ImageOrigin, JobKind, Quality
from imgedit.providers import local_ops
from imgedit.providers.base import ProviderRequest
from imgedit.providers.local import LocalProvider
from imgedit.services import Services, build_services

HANG_GUARD = 60.0
"""Only so a regression fails instead of hanging the suite; never what a test measures."""


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """Not flat colour: a gradient with a blurred pattern on it, so every filter has work to do."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    pattern = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 64).convert("RGB")
    return Image.blend(image, pattern, 0.5)


class NullSink:
    def progress(self, fraction: float, message: str | None = None, **_kw: Any) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = build_services(Settings(data_dir=tmp_path / "data", samples=False, show=False, max_concurrent=4))
    yield built
    await built.close()


class BusyPool:
    """Every cpu-pool thread busy with real Pillow work (blurring a photo, over and over) until
    ``release``; ``running`` is set once all of them are at it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._started = 0
        self._lock = threading.Lock()
        self.running = threading.Event()
        self.blurs: Future[int] | None = None
        self.futures: list[Future[int]] = []

    def _blur_until_released(self) -> int:
        image, rounds = photo(600, 400), 0
        while rounds == 0 or not self.release.is_set():
            image = image.filter(ImageFilter.GaussianBlur(2))
            rounds += 1
            if rounds == 1:
                with self._lock:
                    self._started += 1
                    if self._started == cpu.WORKERS:
                        self.running.set()
        return rounds

    async def __aenter__(self) -> BusyPool:
        self.futures = [cpu.submit(self._blur_until_released) for _ in range(cpu.WORKERS)]
        # Waiting on a threading.Event is itself a blocking call: it goes to the default executor.
        assert await asyncio.wait_for(asyncio.to_thread(self.running.wait, HANG_GUARD), HANG_GUARD)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release.set()
        for future in self.futures:
            assert await asyncio.wrap_future(future) > 0


@pytest.fixture
def pillow_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the threads the local engine's operations ran in (the real ones still run)."""
    names: list[str] = []
    real = local_ops.apply_operations

    def recording(*args: Any, **kwargs: Any) -> Image.Image:
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(local_ops, "apply_operations", recording)  # read at each edit
    yield names


async def test_a_real_local_job_does_its_pillow_work_in_the_cpu_pool(
    services: Services, pillow_threads: list[str]
) -> None:
    source = await services.store.add(png_bytes(photo(800, 600)), origin=ImageOrigin.UPLOAD, name="photo.png")
    job_id = services.studio.submit_edit(source.id, "sharpen and add a vignette", Quality.MEDIUM, "local")
    final = await services.registry.wait(job_id)

    assert final.stage is JobStage.COMPLETED, final.error
    assert final.result_image_id in services.store
    assert len(pillow_threads) == 1
    assert pillow_threads[0].startswith(f"{cpu.THREAD_NAME_PREFIX}_"), pillow_threads
    # The pool is its own, not the executor that asyncio.to_thread hands disk calls to.
    default_thread = await asyncio.to_thread(lambda: threading.current_thread().name)
    assert not default_thread.startswith(cpu.THREAD_NAME_PREFIX)


async def test_a_disk_call_does_not_wait_for_busy_image_work(tmp_path: Path) -> None:
    # A default executor no larger than the cpu pool: were image work sent there, BusyPool alone
    # would fill it and the disk call below would wait for the release that comes after it.
    default = ThreadPoolExecutor(max_workers=cpu.WORKERS, thread_name_prefix="default-io")
    asyncio.get_running_loop().set_default_executor(default)
    target = tmp_path / "note.txt"
    async with BusyPool() as busy:
        # Every image thread is busy and stays busy until released; the disk call still gets through.
        await asyncio.wait_for(asyncio.to_thread(target.write_bytes, b"written meanwhile"), HANG_GUARD)
        data = await asyncio.wait_for(asyncio.to_thread(target.read_bytes), HANG_GUARD)
        assert not busy.release.is_set()
        assert not any(future.done() for future in busy.futures)
    assert data == b"written meanwhile"
    assert all(future.done() for future in busy.futures)


async def test_a_local_edit_waits_for_the_busy_pool_and_then_runs(pillow_threads: list[str]) -> None:
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt="sharpen", quality=Quality.LOW, image=png_bytes(photo(300, 200))
    )
    async with BusyPool() as busy:
        edit = asyncio.create_task(LocalProvider().edit(request, NullSink()))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not edit.done()
        assert pillow_threads == []  # queued behind the busy pool, not started in another one
        busy.release.set()
        result = await asyncio.wait_for(edit, HANG_GUARD)
    assert result.image.startswith(b"\x89PNG")
    assert len(pillow_threads) == 1 and pillow_threads[0].startswith(cpu.THREAD_NAME_PREFIX)


async def test_a_local_edit_cancelled_while_queued_never_runs_and_does_not_wait(
    pillow_threads: list[str],
) -> None:
    request = ProviderRequest(
        kind=JobKind.EDIT, prompt="sharpen", quality=Quality.LOW, image=png_bytes(photo(300, 200))
    )
    async with BusyPool() as busy:
        edit = asyncio.create_task(LocalProvider().edit(request, NullSink()))
        await asyncio.sleep(0)  # the edit parses its prompt and queues its work in the pool
        edit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(edit, HANG_GUARD)
        # Cancelled while every image thread was still busy: it did not wait for one to free up.
        assert not any(future.done() for future in busy.futures)
    # The pool has worked through its queue since; the cancelled edit was dropped from it.
    await asyncio.wrap_future(cpu.submit(lambda: None))
    assert pillow_threads == []


def _rotated_jpeg() -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    photo(300, 200).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    photo(300, 200).convert("P").save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [png_bytes(photo(900, 600)), _rotated_jpeg(), _gif()],
    ids=["png kept", "jpeg turned", "gif converted"],
)
def test_one_decode_gives_what_normalize_and_thumbnail_give(data: bytes) -> None:
    normalized, thumb = imaging.normalize_with_thumbnail(data, "photo")

    assert normalized == imaging.normalize(data, "photo")
    separate = Image.open(io.BytesIO(imaging.thumbnail(normalized.data)))
    together = Image.open(io.BytesIO(thumb))
    assert together.format == "WEBP"
    assert together.size == separate.size
    assert max(together.size) == min(imaging.THUMB_SIDE, max(normalized.width, normalized.height))
    # The same picture: the two thumbnails differ by resampling noise at most.
    difference = ImageChops.difference(together.convert("RGB"), separate.convert("RGB"))
    assert max(high for _low, high in difference.getextrema()) < 48
    assert ImageStat.Stat(difference).mean[0] < 3
