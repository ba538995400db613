"""The Stable Diffusion WebUI provider (AUTOMATIC1111 / Forge API): img2img edits, txt2img generation.

Owns ``SdWebUiProvider``: builds the A1111 JSON, runs one job per server through
``ServerPool``, polls ``/sdapi/v1/progress`` for real progress and live previews while the
request is in flight, and interrupts the server's job when ours is cancelled. HTTP outcomes
become ``imgedit.errors`` through ``imgedit.providers.http``. Credentials (``auth=`` or
``user:pass@`` in a URL) travel only in request headers, never in labels, messages or reprs.
Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from imgedit.errors import (
    InvalidRequest,
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.models import JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from imgedit.providers.http import (
    decode_image,
    json_body,
    json_with_base64,
    never_arrived,
    parse_json,
    read_chunks,
    send,
    went_unanswered,
)
from imgedit.providers.sdwebui_pool import Server, ServerPool

log = logging.getLogger(__name__)

NAME = "Stable Diffusion WebUI"


@dataclass(frozen=True, slots=True)
class QualitySpec:
    steps: int
    side: int
    """Longest side of the working size, in pixels."""


QUALITY_SPECS: dict[Quality, QualitySpec] = {
    Quality.LOW: QualitySpec(steps=12, side=512),
    Quality.MEDIUM: QualitySpec(steps=24, side=768),
    Quality.HIGH: QualitySpec(steps=40, side=1024),
}
SECONDS_PER_STEP = 0.25
OVERHEAD_SECONDS = 3.0  # model warm-up, VAE decode, PNG encode and the transfer both ways
CFG_SCALE = 7
SAMPLER = "Euler a"
MIN_SIDE = 64
PROBE_TIMEOUT = httpx.Timeout(10.0)
"""Progress reads answer at once on a healthy server; a hung one must not hold a job for minutes."""
INTERRUPT_TIMEOUT = httpx.Timeout(5.0)


def working_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``side``, both sides multiples of 8 (SD's latent grid)."""
    scale = side / max(size)

    def on_grid(value: int) -> int:
        return max(MIN_SIDE, round(value * scale / 8) * 8)

    return on_grid(size[0]), on_grid(size[1])


def _server_label(server: Server) -> str:
    return f"{NAME} at {server.url}"


@dataclass(slots=True)
class _Watch:
    """What the progress poller has seen of one job."""

    baseline: str | None
    """The server's job_timestamp before we sent: progress under it belongs to someone else."""
    ours: str | None = None
    fraction: float = 0.0
    preview: str | None = None
    waiting_said: bool = False


def _timestamp(body: Any) -> str | None:
    state = body.get("state") if isinstance(body, dict) else None
    value = state.get("job_timestamp") if isinstance(state, dict) else None
    return str(value) if value is not None else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class SdWebUiProvider:
    """Stable Diffusion through one or more AUTOMATIC1111 / Forge servers started with ``--api``."""

    name = "sdwebui"
    capabilities = Capabilities(
        edit=True, generate=True, stream_previews=True, real_progress=True, cancel_remote=True
    )

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        urls: Sequence[str],
        auth: tuple[str, str] | None = None,
        poll_interval: float = 0.75,
        denoising_strength: float = 0.55,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("SdWebUiProvider needs at least one server URL")
        self._client = client
        self._pool = ServerPool([Server.from_url(url, auth) for url in urls], clock=clock)
        self._poll_interval = poll_interval
        self._denoising = denoising_strength
        count = len(self._pool.servers)
        self.label = NAME if count == 1 else f"{NAME} · {count} servers"

    def __repr__(self) -> str:
        return f"SdWebUiProvider(urls={[s.url for s in self._pool.servers]!r})"

    @property
    def capacity(self) -> int:
        """One job per server: a server's progress and interrupt are global. The job scheduler
        starts no more than this, so a job waiting for a free server holds no global slot."""
        return len(self._pool.servers)

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        # img2img often runs only steps × denoising; the full count keeps the first ETA on the long side.
        return QUALITY_SPECS[quality].steps * SECONDS_PER_STEP + OVERHEAD_SECONDS

    def describe(self, kind: JobKind) -> str:
        if kind is JobKind.EDIT:
            return (
                "Describe the picture you want, not the change: subject, style, light, e.g. "
                "“a watercolour painting of a harbour at dusk”. The layout of the source is kept."
            )
        return "Describe the scene, style and mood in words or comma-separated tags, e.g. “a fox in snow, oil painting”."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        if request.image is None:
            raise InvalidRequest("An edit needs a source image.")
        spec = QUALITY_SPECS[request.quality]
        try:
            with Image.open(io.BytesIO(request.image)) as probe:  # reads the header, not the pixels
                source_size = probe.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise InvalidRequest(f"The source image could not be read: {exc}") from exc
        payload = self._payload(request, spec, working_size(source_size, spec.side))
        payload["denoising_strength"] = self._denoising
        return await self._run("/sdapi/v1/img2img", payload, sink, request.image)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        spec = QUALITY_SPECS[request.quality]
        size = request.size or (spec.side, spec.side)
        if size[0] < 1 or size[1] < 1:
            raise InvalidRequest(f"The image size {size[0]}x{size[1]} is not possible.")
        payload = self._payload(request, spec, working_size(size, spec.side))
        return await self._run("/sdapi/v1/txt2img", payload, sink)

    def _payload(self, request: ProviderRequest, spec: QualitySpec, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "prompt": request.prompt,
            "negative_prompt": "",
            "steps": spec.steps,
            "width": size[0],
            "height": size[1],
            "cfg_scale": CFG_SCALE,
            "sampler_name": SAMPLER,
            "seed": -1 if request.seed is None else request.seed,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }

    # -- one job on one server ---------------------------------------------------------------

    async def _run(
        self, path: str, payload: dict[str, Any], sink: ProgressSink, image: bytes | None = None
    ) -> ProviderResult:
        # Built once, in a worker thread: a 30 MB source is 40 MB of JSON.
        if image is None:
            content = [json.dumps(payload).encode()]
        else:
            content = await asyncio.to_thread(json_with_base64, payload, "init_images", image)
        failed: dict[Server, ProviderError] = {}
        while True:
            server = await self._pool.acquire(
                failed, on_wait=lambda: sink.progress(0.0, "Waiting for a free server", exact=False)
            )
            if server is None:
                errors = list(failed.values())
                reasons = "; ".join(str(error) for error in errors)
                raise ProviderUnavailable(f"No {NAME} server answers: {reasons}") from errors[-1]
            try:
                try:
                    baseline = await self._read_progress(server)
                except ProviderUnavailable as exc:
                    # Nothing was sent yet, so another server can take the job without a double run.
                    if not isinstance(exc, ProviderRateLimited):
                        self._pool.mark_down(server)
                    failed[server] = exc
                    continue
                self._pool.mark_up(server)
                watch = _Watch(_timestamp(baseline))
                return await self._work(server, path, payload, content, watch, sink)
            finally:
                self._pool.release(server)

    async def _work(
        self,
        server: Server,
        path: str,
        payload: Mapping[str, Any],
        content: list[bytes],
        watch: _Watch,
        sink: ProgressSink,
    ) -> ProviderResult:
        label = _server_label(server)
        # Sent in parts and read in chunks: joining 40 MB on the loop would stall it.
        length = str(sum(map(len, content)))
        headers = {**server.headers, "Content-Type": "application/json", "Content-Length": length}
        request = self._client.build_request(
            "POST", server.url + path, content=_parts(content), headers=headers
        )
        poller = asyncio.create_task(self._poll(server, watch, sink))
        try:
            response = await send(self._client, request, label, stream=True)
            answer = await read_chunks(response, label)
        except asyncio.CancelledError:
            poller.cancel()
            await _uncancellable(self._interrupt_if_ours(server, watch))
            raise
        except ProviderError as exc:
            poller.cancel()
            if went_unanswered(exc):
                # A1111 renders on after the client gives up: stop it before a retry sends it again.
                # A slow answer is a busy server, not a dead one, so it is not rested.
                await _uncancellable(self._interrupt_if_ours(server, watch))
            elif never_arrived(exc):
                self._pool.mark_down(server)
            raise
        finally:
            poller.cancel()
            await asyncio.wait({poller})
        image, body = await asyncio.to_thread(_read_answer, answer, label)
        sink.progress(1.0, "Done")
        return ProviderResult(image=image, format="PNG", metadata=_metadata(body, payload, server))

    async def _read_progress(self, server: Server, limit: httpx.Timeout = PROBE_TIMEOUT) -> Any:
        """The server's global progress; also the health probe before a job is sent."""
        request = self._client.build_request(
            "GET",
            server.url + "/sdapi/v1/progress",
            params={"skip_current_image": "false"},
            headers=server.headers,
            timeout=limit,
        )
        label = _server_label(server)
        try:
            response = await send(self._client, request, label)
        except ProviderRejected as exc:
            if isinstance(exc, ProviderAuthFailed):
                raise
            raise ProviderRejected(f"{exc} Is the WebUI started with --api?") from exc
        return json_body(response, label)

    async def _poll(self, server: Server, watch: _Watch, sink: ProgressSink) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                body = await self._read_progress(server)
                self._report(body, watch, sink)
            except (ProviderError, TypeError, ValueError, AttributeError) as exc:
                # The POST's answer decides the job; a missed progress reading only costs a tick.
                log.debug("Progress poll of %s failed: %s", server.url, exc)

    def _report(self, body: Any, watch: _Watch, sink: ProgressSink) -> None:
        stamp = _timestamp(body)
        if watch.ours is None:
            if stamp is None or stamp == watch.baseline:
                if not watch.waiting_said and (_number(body.get("progress")) or 0.0) > 0:
                    watch.waiting_said = True
                    sink.progress(0.0, "Waiting for another job on the server", exact=False)
                return
            watch.ours = stamp
        elif stamp != watch.ours:
            return  # ours finished and someone else's began while our answer is on its way
        state = body["state"]
        if not state.get("job_count"):
            return  # idle again: ours is done, the answer is on its way
        watch.fraction = max(watch.fraction, min(_number(body.get("progress")) or 0.0, 1.0))
        step, steps = _number(state.get("sampling_step")), _number(state.get("sampling_steps"))
        if steps:
            message: str | None = f"Step {int(step or 0)} of {int(steps)}"
        else:
            text = body.get("textinfo") or state.get("job")
            message = str(text) if text else None
        eta = _number(body.get("eta_relative"))
        sink.progress(watch.fraction, message, eta_s=eta if eta is not None and eta >= 0 else None)
        current = body.get("current_image")
        if isinstance(current, str) and current and current != watch.preview:
            watch.preview = current
            sink.preview(decode_image(current, "The preview"))

    async def _interrupt_if_ours(self, server: Server, watch: _Watch) -> None:
        """Stop the server's job if it is ours; a job we did not start is never interrupted.

        Ours is the job the server reports running under our stamp, or, before the poller saw
        one, under any stamp newer than the one before we sent.
        """
        try:
            body = await self._read_progress(server, INTERRUPT_TIMEOUT)
            stamp = _timestamp(body)
            state = body.get("state") if isinstance(body, dict) else None
            running = isinstance(state, dict) and bool(state.get("job_count"))
            if not running or stamp is None or stamp != (watch.ours or stamp) or stamp == watch.baseline:
                return
            request = self._client.build_request(
                "POST", server.url + "/sdapi/v1/interrupt", headers=server.headers, timeout=INTERRUPT_TIMEOUT
            )
            await send(self._client, request, _server_label(server))
            log.info("Interrupted our job %s on %s", stamp, server.url)
        except ProviderError as exc:
            log.info("Could not interrupt our job on %s: %s", server.url, exc)


async def _parts(content: list[bytes]) -> AsyncIterator[bytes]:
    for part in content:
        yield part


def _read_answer(chunks: list[bytes], label: str) -> tuple[bytes, Any]:
    """The image and the rest of an img2img / txt2img answer; slow for large images, so run off the loop."""
    body = parse_json(b"".join(chunks), label)
    images = body.get("images") if isinstance(body, dict) else None
    return decode_image(images[0] if isinstance(images, list) and images else None, label), body


def _metadata(body: Any, payload: Mapping[str, Any], server: Server) -> dict[str, str]:
    metadata = {
        "size": f"{payload['width']}x{payload['height']}",
        "steps": str(payload["steps"]),
        "server": server.url,
    }
    try:
        info = json.loads(body.get("info") or "{}")
    except (TypeError, ValueError):
        info = None
    if isinstance(info, dict):
        for key in ("seed", "sampler_name", "sd_model_name"):
            if info.get(key) is not None:
                metadata[key.removeprefix("sd_")] = str(info[key])
    return metadata


async def _uncancellable(work: Awaitable[None]) -> None:
    """Run ``work`` to the end even if the caller is cancelled again meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
    task.result()
