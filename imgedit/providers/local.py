"""The offline provider: Pillow edits and procedural drawings, run off the event loop.

Owns ``LocalProvider``: parses the prompt up front, then decodes, works and encodes in the image
pool (``imgedit.cpu``), forwarding throttled progress to the sink on the loop thread and stopping
the work when the job is cancelled. Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from PIL import Image, ImageOps, UnidentifiedImageError

from imgedit import cpu
from imgedit.errors import InvalidRequest
from imgedit.imaging import open_image
from imgedit.models import JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult

if TYPE_CHECKING:  # the engine's modules load with its first job, not at start-up (P6)
    from imgedit.providers.local_ops import ProgressFn, StopFn
    from imgedit.providers.local_parse import Operation

T = TypeVar("T")

# Seconds for a 3-operation edit of a 1024x768 photo / a default-size drawing, rounded up
# generously from measurements so the first ETA errs on the long side.
_PRIORS: dict[tuple[JobKind, Quality], float] = {
    (JobKind.EDIT, Quality.LOW): 0.5,
    (JobKind.EDIT, Quality.MEDIUM): 1.0,
    (JobKind.EDIT, Quality.HIGH): 2.0,
    (JobKind.GENERATE, Quality.LOW): 0.3,
    (JobKind.GENERATE, Quality.MEDIUM): 0.5,
    (JobKind.GENERATE, Quality.HIGH): 1.0,
}
DEFAULT_SIZES: dict[Quality, tuple[int, int]] = {
    Quality.LOW: (512, 512),
    Quality.MEDIUM: (768, 768),
    Quality.HIGH: (1024, 1024),
}
MAX_GENERATE_SIDE = 4096
PROGRESS_INTERVAL = 0.05  # at most ~20 updates a second reach the sink


class _Relay:
    """Carries progress from the worker thread to the sink, on the loop thread, throttled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ProgressSink, stopped: threading.Event) -> None:
        self._loop, self._sink, self._stopped = loop, sink, stopped
        self._last = -float("inf")

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if self._stopped.is_set() or (fraction < 1.0 and now - self._last < PROGRESS_INTERVAL):
            return
        self._last = now
        with contextlib.suppress(RuntimeError):  # the loop is closing; nobody is listening any more
            self._loop.call_soon_threadsafe(self._deliver, fraction, message)

    def _deliver(self, fraction: float, message: str) -> None:
        if not self._stopped.is_set():
            self._sink.progress(fraction, message)


def _scaled(report: ProgressFn, start: float, end: float) -> ProgressFn:
    return lambda fraction, message: report(start + (end - start) * fraction, message)


def decode_source(data: bytes, quality: Quality | None) -> Image.Image:
    """The source, upright; at most the quality's working size where the format can decode
    smaller for free (JPEG), or at its full size with ``quality`` None (a region edit: the mask
    has the source's own size). ``InvalidRequest`` for bytes that are not a readable image."""
    try:
        image = open_image(data)
        if quality is not None:
            from imgedit.providers.local_ops import QUALITY_SPECS

            # JPEG can decode at 1/2, 1/4, 1/8 scale for free; no point decoding pixels we then discard.
            side = QUALITY_SPECS[quality].max_side
            image.draft("RGB", (side, side))
        image.load()
        return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise InvalidRequest(f"The source image could not be read: it is too large ({exc}).") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(f"The source image could not be read: {exc}") from exc


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)  # level 6 costs ~3x the time for ~20% fewer bytes
    return buffer.getvalue()


def _edit_work(
    data: bytes, ops: list[Operation], quality: Quality, report: ProgressFn, stop: StopFn
) -> tuple[bytes, list[str]]:
    """The edited PNG and what the user should hear about it (e.g. that it was scaled down)."""
    from imgedit.providers.local_ops import OperationCancelled, apply_operations

    report(0.0, "Reading image")
    source = decode_source(data, quality)
    if stop():
        raise OperationCancelled
    notes: list[str] = []
    result = apply_operations(
        source,
        ops,
        quality=quality,
        on_progress=_scaled(report, 0.05, 0.9),
        should_stop=stop,
        on_note=notes.append,
    )
    report(0.9, "Saving PNG")
    png = _encode_png(result)
    report(1.0, "Done")
    return png, notes


def _generate_work(
    prompt: str, size: tuple[int, int], quality: Quality, seed: int | None, report: ProgressFn, stop: StopFn
) -> bytes:
    from imgedit.providers.local_draw import draw_from_prompt

    image = draw_from_prompt(
        prompt, size, quality=quality, on_progress=_scaled(report, 0.0, 0.9), should_stop=stop, seed=seed
    )
    report(0.9, "Saving PNG")
    png = _encode_png(image)
    report(1.0, "Done")
    return png


class LocalProvider:
    """Edits and generates on this machine with Pillow; no network, no model."""

    name = "local"
    label = "Local engine (offline)"
    capabilities = Capabilities(
        edit=True, generate=True, real_progress=True, offline=True, mask=True, seeds=True
    )

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return _PRIORS[(kind, quality)]

    def describe(self, kind: JobKind) -> str:
        if kind is JobKind.EDIT:
            from imgedit.providers.local_parse import understood_phrases

            return "Understands: " + ", ".join(understood_phrases()) + ". Combine them with “and”."
        return (
            "Draws from colours (red, teal, sunset, ocean, …) and shapes (circles, stars, stripes, waves, "
            "mountains, sun, moon, grid, dots) named in the prompt."
        )

    def suggestions(self, kind: JobKind) -> list[str]:
        """Phrases the dialog offers as chips that add to the prompt (``local_suggest``)."""
        from imgedit.providers.local_suggest import suggestions

        return suggestions(kind)

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        from imgedit.providers.local_parse import parse_prompt, vary

        ops = parse_prompt(request.prompt)  # before any work, so a prompt it cannot do fails at once
        if request.seed is not None:  # one of n variations, or "Run again": the seed's own amounts
            ops = vary(ops, request.seed)
        if request.image is None:
            raise InvalidRequest("An edit needs a source image.")
        data, quality, mask = request.image, request.quality, request.mask
        if mask is not None:  # a region edit: the operations inside the selected area only
            from imgedit.providers.local_region import area_edit_work, check_area_operations

            check_area_operations(ops)  # rotate, crop…: refused before any work
            png, notes = await _run_in_thread(
                lambda report, stop: area_edit_work(data, mask, ops, quality, report, stop), sink
            )
        else:
            png, notes = await _run_in_thread(
                lambda report, stop: _edit_work(data, ops, quality, report, stop), sink
            )
        metadata = {"operations": ", ".join(op.label for op in ops)}
        if notes:
            metadata["note"] = " ".join(notes)
        return ProviderResult(image=png, format="PNG", metadata=metadata)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        width, height = request.size or DEFAULT_SIZES[request.quality]
        if width < 1 or height < 1:
            raise InvalidRequest(f"The image size {width}x{height} is not possible.")
        size = (min(width, MAX_GENERATE_SIDE), min(height, MAX_GENERATE_SIDE))
        prompt, quality, seed = request.prompt, request.quality, request.seed
        png = await _run_in_thread(
            lambda report, stop: _generate_work(prompt, size, quality, seed, report, stop), sink
        )
        return ProviderResult(image=png, format="PNG", metadata={"size": f"{size[0]}x{size[1]}"})


async def _run_in_thread(work: Callable[[ProgressFn, StopFn], T], sink: ProgressSink) -> T:
    """Run ``work(report, should_stop)`` in the image pool; on cancellation stop it, wait, re-raise.

    A call still queued behind other image work is simply dropped; one already running is told
    to stop and waited for, so no CPU is burned and nothing is produced after the cancel.
    """
    stopped = threading.Event()
    relay = _Relay(asyncio.get_running_loop(), sink, stopped)
    call = cpu.submit(work, relay, stopped.is_set)
    done = asyncio.wrap_future(call)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        stopped.set()
        if call.cancel():  # it never started
            raise
        # asyncio.wait does not cancel ``done`` if we are cancelled again meanwhile.
        while not done.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({done})
        if not done.cancelled():
            done.exception()  # retrieved so it is not logged as "never retrieved"; cancelled wins
        raise
