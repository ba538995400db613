"""The Stable Diffusion WebUI provider (AUTOMATIC1111 / Forge API): img2img edits, txt2img generation.

Owns ``SdWebUiProvider``: builds the A1111 JSON, runs one job per server through
``ServerPool``, follows the job while the request is in flight and stops it when ours is
cancelled. HTTP outcomes become ``imgedit.errors`` through ``imgedit.providers.http``.
Credentials (``auth=`` or ``user:pass@`` in a URL) travel only in request headers, never in
labels, messages or reprs. Must not import nicegui.

Whose job is it? A server's ``/sdapi/v1/progress`` and ``/sdapi/v1/interrupt`` are global, and
its ``job_timestamp`` has one-second resolution, so a stamp cannot tell two jobs begun in the
same second apart. Each request therefore carries ``force_task_id`` (``imgedit-<uuid>``), and
``/internal/progress`` says whether that task is queued, active or completed (A1111 marks it
completed before it encodes the answer, when the next client's job may already run). The
interrupt is sent only right after that endpoint reported our task active; a task cancelled
while still queued is watched and interrupted the moment it becomes active. The step numbers
come from ``/sdapi/v1/progress`` read between two "active" readings, so they are ours too.

Servers started with ``--nowebui`` (A1111 and Forge) have no ``/internal/progress`` (404): there
the job is followed by stamp, a stamp unchanged since before sending is unknown (never taken for
someone else's, never interrupted), and the answer's ``info.job_timestamp`` says afterwards which
stamp was ours.

The Advanced settings are A1111's own fields: ``negative_prompt``, ``seed`` (-1, a random one,
when none is given), ``steps`` (the quality's unless given), ``cfg_scale`` (``CFG_SCALE`` unless
given) and, for img2img, ``denoising_strength`` (the provider's unless given). img2img samples
``img2img_steps(steps, strength)`` of them; the step numbers shown are the server's own.

A region edit (``ProviderRequest.mask``) is img2img's inpainting: the ``mask`` is SD's own form
(white where the picture changes), blurred at its edge by ``mask_blur`` pixels of the source,
over the whole picture (``inpaint_full_res`` false: A1111's API defaults to "only masked") with
the original content under the mask as the start (``inpainting_fill`` 1). A1111 pastes the
original back outside the (blurred) mask, so the rest of the picture stays as it was.

Variations are one job with ``batch_size`` = the count (``n_iter`` 1): A1111 samples them
together, seeds ``seed``, ``seed + 1``, ... (``info.all_seeds``), and answers them in order in
``images``. No grid comes first: the API sets ``do_not_save_grid`` from ``save_images``, false
here (``process_images`` prepends one only with ``return_grid`` and a grid to save); what
extensions append (ControlNet's detected maps) comes after the batch, so the first ``count``
images are the results. The progress of a batch is the progress of its one sampling run.

A job interrupted by someone else still answers 200 with a half-finished image; A1111 keeps
``state.interrupted`` until the next job begins, so the state read after the answer (or while our
task was active) tells, and such a result fails (retryable) instead of being kept.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from imgedit import cpu
from imgedit.errors import (
    InvalidRequest,
    ProviderAuthFailed,
    ProviderError,
    ProviderFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.models import JobKind, Quality
from imgedit.providers.base import (
    ADVANCED,
    Capabilities,
    ProgressSink,
    ProviderRequest,
    ProviderResult,
    ServerHealth,
    fewer_results,
)
from imgedit.providers.common import finite_number, named_errors, pool_health, uncancellable
from imgedit.providers.http import (
    MAX_MESSAGE,
    decode_image,
    error_from_response,
    json_body,
    json_with_base64,
    never_arrived,
    off_loop,
    parse_json,
    parse_retry_after,
    read_chunks,
    send,
    went_unanswered,
)
from imgedit.providers.pool import Server, ServerPool
from imgedit.providers.region import checked_mask

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
MAX_BATCH = 4
"""Variations one job asks for at most (``batch_size``): a batch of 4 at 1024 px still fits a
consumer GPU's memory."""
PROBE_TIMEOUT = httpx.Timeout(10.0)
"""Progress reads answer at once on a healthy server; a hung one must not hold a job for minutes."""
INTERRUPT_TIMEOUT = httpx.Timeout(5.0)
HEALTH_TIMEOUT = httpx.Timeout(4.0)
"""The status line's probe: a server slower than this to say how it is counts as down."""
TASK_PREFIX = "imgedit-"
QUEUED_WATCH_SECONDS = 30 * 60.0
"""How long a task cancelled while queued behind other jobs is watched, to stop it when it starts."""
UNSEEN_WATCH_SECONDS = 10.0
"""How long a cancelled request that was sent whole may take to show up in the server's queue
(the server reads and checks the body first: 40 MB take a while)."""
DETERMINISTIC_500 = frozenset({"HTTPException", "NansException", "OutOfMemoryError"})
"""A1111's 500 ``error`` types that fail the same way every time: an image it cannot decode (its
own HTTPException), NaNs in the UNet or VAE, CUDA out of memory. Retrying them wastes a turn."""
_QUEUE_PLACE = re.compile(r"In queue: (\d+)/(\d+)")


def working_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``side``, both sides multiples of 8 (SD's latent grid)."""
    scale = side / max(size)

    def on_grid(value: int) -> int:
        return max(MIN_SIDE, round(value * scale / 8) * 8)

    return on_grid(size[0]), on_grid(size[1])


def inpainting(mask: bytes, size: tuple[int, int]) -> dict[str, Any]:
    """img2img's inpainting fields for a kept-form ``mask`` of a source of ``size``: slow for a
    large source (the mask is decoded and encoded again), so run off the loop."""
    from imgedit import masks  # Pillow's filters: loaded by the first region edit

    return {
        "mask": base64.b64encode(masks.white_on_black(mask)).decode("ascii"),
        "mask_blur": max(1, round(masks.feather_radius(size))),
        "inpainting_fill": 1,  # "original": the source under the mask is where sampling starts
        "inpaint_full_res": False,  # the whole picture, not a crop around the mask
        "inpaint_full_res_padding": 0,
        "inpainting_mask_invert": 0,  # white is what changes
    }


def _server_label(server: Server) -> str:
    return f"{NAME} at {server.url}"


@dataclass(slots=True)
class _Watch:
    """What is known of one job of ours on one server."""

    task_id: str
    baseline: str | None
    """The server's job_timestamp before we sent (only servers without task ids need it)."""
    sent: bool = False
    """The whole request went out: the server may queue it even if we stop listening."""
    done: bool = False
    """The server reported our task completed: the answer is on its way."""
    ours: str | None = None
    """The job_timestamp of our job, once a reading known to be ours carried it."""
    unconfirmed: Any = None
    """A state read right after our task was reported active; ours if the next reading says so too."""
    fraction: float = 0.0
    step_message: str | None = None
    said: str | None = None
    """The last waiting message reported, so each is said once."""
    preview_id: int = -1
    preview: str | bytes | None = None
    """The last preview shown by a server without task ids (it sends the same one again)."""
    stopped_at: tuple[int, int] | None = None
    """(0-based last step, steps) when a reading of our job showed it interrupted."""


def _report(watch: _Watch, sink: ProgressSink, progress: object, eta: object) -> None:
    """One progress reading to the sink: the fraction never goes back, an ETA only if sane."""
    watch.fraction = max(watch.fraction, min(finite_number(progress) or 0.0, 1.0))
    seconds = finite_number(eta)
    sink.progress(
        watch.fraction,
        watch.step_message or "Starting",
        eta_s=seconds if seconds is not None and seconds >= 0 else None,
    )


def _state(body: Any) -> dict[str, Any]:
    state = body.get("state") if isinstance(body, dict) else None
    return state if isinstance(state, dict) else {}


def _timestamp(body: Any) -> str | None:
    value = _state(body).get("job_timestamp")
    return str(value) if value is not None else None


def _running(body: Any) -> bool:
    return bool(_state(body).get("job_count"))


def _steps(state: Mapping[str, Any]) -> tuple[int, int] | None:
    """(steps done, steps) of the job a state describes, when it is known.

    ``sampling_step`` is the 0-based index of the last finished step. ``begin()`` resets it to 0
    but leaves ``sampling_steps`` at the previous job's total until sampling starts, so a 0 says
    nothing yet; from 1 on both belong to this job.
    """
    step, steps = finite_number(state.get("sampling_step")), finite_number(state.get("sampling_steps"))
    if step is None or not steps or step < 1 or step >= steps:
        return None
    return int(step) + 1, int(steps)


def img2img_steps(steps: int, denoising: float) -> int:
    """How many steps img2img samples for ``steps`` at ``denoising`` (A1111's
    ``setup_img2img_steps`` without ``img2img_fix_steps``: ``int(min(d, 0.999) × steps)`` is the
    last 0-based step, so one more than that are run)."""
    return int(min(denoising, 0.999) * steps) + 1


def _raw_steps(state: Mapping[str, Any]) -> tuple[int, int] | None:
    """(0-based last step, steps) as the state says them, whatever job they belong to."""
    step, steps = finite_number(state.get("sampling_step")), finite_number(state.get("sampling_steps"))
    return (int(step), int(steps)) if step is not None and steps else None


def _unfinished(steps: tuple[int, int] | None) -> str | None:
    """Where an interrupted job stopped, if it stopped before its last step (a job stopped while
    its image was decoded is whole)."""
    if steps is None:
        return None
    step, total = steps
    if step < 1:
        return "as it began"  # sampling_steps may still be the previous job's: no total
    return f"after step {step + 1} of {total}" if step + 1 < total else None


def _queue_message(textinfo: object) -> str:
    place = _QUEUE_PLACE.search(textinfo) if isinstance(textinfo, str) else None
    if place is None:
        return "Waiting for another job on the server"
    return f"Waiting for another job on the server ({place[1]} of {place[2]} in its queue)"


def _fastapi_detail(detail: list[Any]) -> str:
    """FastAPI's 422 ``detail`` (a list of ``{loc, msg}``) as one line: ``steps: must be > 0``."""
    parts = []
    for problem in detail:
        if not isinstance(problem, dict):
            continue
        loc = [str(p) for p in problem.get("loc") or [] if p != "body"]
        message = str(problem.get("msg") or "invalid")
        parts.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(parts)


def _sd_error(response: httpx.Response, label: str) -> ProviderError:
    """``_error_of`` with the provider's name and the answer's status kept on the error."""
    error = _error_of(response, label)
    error.provider, error.status = SdWebUiProvider.name, response.status_code
    return error


def _error_of(response: httpx.Response, label: str) -> ProviderError:
    """A failed answer, as A1111 and Forge mean it.

    Their exception middleware answers ``{"error": type, "detail", "body", "errors"}`` (Forge:
    ``"message"`` instead of ``"errors"``) with the exception's status, 500 for most: those in
    ``DETERMINISTIC_500`` are not retried. FastAPI's 422 lists its problems in ``detail``.
    """
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_from_response(response, label)
    status = response.status_code
    if status == 422 and isinstance(body.get("detail"), list):
        first = next((p for p in body["detail"] if isinstance(p, dict)), {})
        kind = first.get("type") if isinstance(first.get("type"), str) else None
        message = _fastapi_detail(body["detail"])
        return ProviderRejected(f"{label} refused the request (422): {message}", code=kind)
    kind, text = body.get("error"), body.get("errors") or body.get("message")
    if status < 500 or not isinstance(kind, str):
        return error_from_response(response, label)
    detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
    said = detail or (str(text) if text else "")
    message = f"{kind}: {said}" if said and kind != "HTTPException" else said or kind
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    error = ProviderFailed(
        f"{label} had a server error ({status}): {message}", retry_after=retry_after, code=kind
    )
    if kind in DETERMINISTIC_500 or "out of memory" in message.lower():
        # torch before 1.13 said "CUDA out of memory" in a RuntimeError: the same wall.
        error.retryable = False
    return error


class SdWebUiProvider:
    """Stable Diffusion through one or more AUTOMATIC1111 / Forge servers started with ``--api``."""

    name = "sdwebui"
    capabilities = Capabilities(
        edit=True,
        generate=True,
        mask=True,
        stream_previews=True,
        real_progress=True,
        cancel_remote=True,
        advanced=frozenset(ADVANCED),
        variations=MAX_BATCH,
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
        self._clock = clock
        self._background: set[asyncio.Future[None]] = set()
        """Watches of cancelled tasks still queued on a server, held until they end."""
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

    async def health(self) -> list[ServerHealth]:
        """Each server: busy with an imgedit job, busy with someone else's (its state says a job
        runs), up, or down (no answer, refused, or not an API server). Asks for no preview."""

        async def others_work(server: Server) -> str | None:
            body = await self._read_state(server, HEALTH_TIMEOUT)
            return "running another client's job" if _running(body) else None

        return await pool_health(self._pool.servers, _server_label, others_work)

    async def aclose(self) -> None:
        """Stop watching tasks cancelled while queued (the server is left as it is)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        steps = QUALITY_SPECS[quality].steps
        if kind is JobKind.EDIT:
            steps = img2img_steps(steps, self._denoising)
        return steps * SECONDS_PER_STEP + OVERHEAD_SECONDS

    def describe(self, kind: JobKind) -> str:
        if kind is JobKind.EDIT:
            return (
                "Describe the picture you want, not the change: subject, style, light, e.g. "
                "“a watercolour painting of a harbour at dusk”. The layout of the source is kept."
            )
        return "Describe the scene, style and mood in words or comma-separated tags, e.g. “a fox in snow, oil painting”."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        with named_errors(self.name):
            return await self._edit(request, sink)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        with named_errors(self.name):
            return await self._generate(request, sink)

    async def _edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        if request.image is None:
            raise InvalidRequest("An edit needs a source image.")
        _check_count(request.count)
        spec = QUALITY_SPECS[request.quality]
        try:
            with Image.open(io.BytesIO(request.image)) as probe:  # reads the header, not the pixels
                source_size = probe.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise InvalidRequest(f"The source image could not be read: {exc}") from exc
        payload = self._payload(request, spec, working_size(source_size, spec.side))
        payload["denoising_strength"] = (
            self._denoising if request.strength is None else float(request.strength)
        )
        if request.mask is not None:
            checked_mask(request.image, request.mask)
            payload |= await cpu.run(inpainting, request.mask, source_size)
        return await self._run("/sdapi/v1/img2img", payload, sink, request.image)

    async def _generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        _check_count(request.count)
        spec = QUALITY_SPECS[request.quality]
        size = request.size or (spec.side, spec.side)
        if size[0] < 1 or size[1] < 1:
            raise InvalidRequest(f"The image size {size[0]}x{size[1]} is not possible.")
        payload = self._payload(request, spec, working_size(size, spec.side))
        return await self._run("/sdapi/v1/txt2img", payload, sink)

    def _payload(self, request: ProviderRequest, spec: QualitySpec, size: tuple[int, int]) -> dict[str, Any]:
        """txt2img's and img2img's common fields; the Advanced settings given (``steps``,
        ``guidance``, ``seed``, ``negative_prompt``) replace the quality's and the defaults."""
        return {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "steps": spec.steps if request.steps is None else int(request.steps),
            "width": size[0],
            "height": size[1],
            "cfg_scale": CFG_SCALE if request.guidance is None else float(request.guidance),
            "sampler_name": SAMPLER,
            "seed": -1 if request.seed is None else int(request.seed),
            "batch_size": request.count,  # one sampling run for every variation
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }

    # -- one job on one server ---------------------------------------------------------------

    async def _run(
        self, path: str, payload: dict[str, Any], sink: ProgressSink, image: bytes | None = None
    ) -> ProviderResult:
        task_id = f"{TASK_PREFIX}{uuid.uuid4().hex}"
        payload = {**payload, "force_task_id": task_id}
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
                    baseline = await self._read_state(server)
                except ProviderUnavailable as exc:
                    # Nothing was sent yet, so another server can take the job without a double run.
                    if not isinstance(exc, ProviderRateLimited):
                        self._pool.mark_down(server)
                    failed[server] = exc
                    continue
                self._pool.mark_up(server)
                watch = _Watch(task_id, _timestamp(baseline))
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
            "POST", server.url + path, content=_parts(content, watch), headers=headers
        )
        poller = asyncio.create_task(self._poll(server, watch, sink))
        try:
            response = await send(self._client, request, label, stream=True, errors=_sd_error)
            answer = await read_chunks(response, label)
        except asyncio.CancelledError:
            poller.cancel()
            await uncancellable(self._stop(server, watch))
            raise
        except ProviderError as exc:
            poller.cancel()
            if went_unanswered(exc):
                # A1111 renders on after the client gives up: stop it before a retry sends it again.
                # A slow answer is a busy server, not a dead one, so it is not rested.
                await uncancellable(self._stop(server, watch))
            elif never_arrived(exc):
                self._pool.mark_down(server)
            raise
        finally:
            poller.cancel()
            await asyncio.wait({poller})
        images, body = await asyncio.to_thread(_read_answer, answer, label, int(payload["batch_size"]))
        await self._check_whole(server, watch, body, label)
        sink.progress(1.0, "Done")
        first, *more = images
        return ProviderResult(
            image=first, format="PNG", metadata=_metadata(body, payload, server), more=tuple(more)
        )

    # -- reading the server ------------------------------------------------------------------

    async def _read_state(
        self, server: Server, limit: httpx.Timeout = PROBE_TIMEOUT, *, preview: bool = False
    ) -> Any:
        """The server's global state (``/sdapi/v1/progress``); also the health probe before a job
        is sent. The preview is asked for only when wanted: encoding it costs the server."""
        request = self._client.build_request(
            "GET",
            server.url + "/sdapi/v1/progress",
            params={"skip_current_image": "false" if preview else "true"},
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

    async def _read_task(
        self, server: Server, watch: _Watch, limit: httpx.Timeout = PROBE_TIMEOUT, *, preview: bool = False
    ) -> dict[str, Any] | None:
        """Our task as ``/internal/progress`` sees it; ``None`` on a server without that endpoint."""
        if server.task_api is False:
            return None
        request = self._client.build_request(
            "POST",
            server.url + "/internal/progress",
            json={"id_task": watch.task_id, "id_live_preview": watch.preview_id, "live_preview": preview},
            headers=server.headers,
            timeout=limit,
        )
        try:
            response = await send(self._client, request, _server_label(server))
        except ProviderRejected as exc:
            # 404: started with --nowebui (A1111 and Forge add the route only with their web UI).
            log.info("%s has no task progress (%s); following jobs by timestamp", server.url, exc)
            server.task_api = False
            return None
        body = json_body(response, _server_label(server))
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise ProviderFailed(f"{_server_label(server)} sent a task progress without 'active'.")
        server.task_api = True
        return body

    # -- following the job -------------------------------------------------------------------

    async def _poll(self, server: Server, watch: _Watch, sink: ProgressSink) -> None:
        while not watch.done:
            await asyncio.sleep(self._poll_interval)
            try:
                task = await self._read_task(server, watch, preview=True)
                if task is not None:
                    await self._follow_task(server, task, watch, sink)
                else:
                    await self._follow_stamp(await self._read_state(server, preview=True), watch, sink)
            except (ProviderError, TypeError, ValueError, AttributeError) as exc:
                # The POST's answer decides the job; a missed progress reading only costs a tick.
                log.debug("Progress poll of %s failed: %s", server.url, exc)

    async def _follow_task(
        self, server: Server, task: dict[str, Any], watch: _Watch, sink: ProgressSink
    ) -> None:
        if task.get("completed"):
            watch.done = True  # the answer is on its way; whatever runs now is someone else's
            return
        if not task["active"]:
            watch.unconfirmed = None
            if task.get("queued"):
                self._say(_queue_message(task.get("textinfo")), watch, sink)
            return
        if watch.unconfirmed is not None:
            # Our task was active before and after that reading: it described our job.
            self._take_state(watch.unconfirmed, watch)
        _report(watch, sink, task.get("progress"), task.get("eta"))
        live = task.get("live_preview")  # a memoryview when longer than http.LONG_STRING
        if isinstance(live, str | memoryview) and len(live):
            sink.preview(await off_loop(len(live), decode_image, live, "The preview"))
            preview_id = finite_number(task.get("id_live_preview"))
            watch.preview_id = int(preview_id) if preview_id is not None else watch.preview_id
        watch.unconfirmed = await self._read_state(server)

    def _take_state(self, body: Any, watch: _Watch) -> None:
        state = _state(body)
        watch.ours = _timestamp(body) or watch.ours
        steps = _steps(state)
        if steps is not None:
            watch.step_message = f"Step {steps[0]} of {steps[1]}"
        if state.get("interrupted") and _running(body):
            watch.stopped_at = _raw_steps(state)

    async def _follow_stamp(self, body: Any, watch: _Watch, sink: ProgressSink) -> None:
        """Without task ids: a job under a stamp newer than the one before we sent is ours; one
        under the same stamp may be ours (begun in the same second) or not: unknown."""
        if not _running(body):
            return
        stamp = _timestamp(body)
        if watch.ours is None:
            if stamp is None or stamp == watch.baseline:
                self._say("Waiting for the server", watch, sink)
                return
            watch.ours = stamp
        elif stamp != watch.ours:
            return  # ours finished and someone else's began while our answer is on its way
        self._take_state(body, watch)
        _report(watch, sink, body.get("progress"), body.get("eta_relative"))
        current = body.get("current_image")  # a memoryview when longer than http.LONG_STRING
        if isinstance(current, memoryview):
            current = current.tobytes()
        if isinstance(current, str | bytes) and current and current != watch.preview:
            watch.preview = current
            sink.preview(await off_loop(len(current), decode_image, current, "The preview"))

    @staticmethod
    def _say(message: str, watch: _Watch, sink: ProgressSink) -> None:
        if message != watch.said:
            watch.said = message
            sink.progress(0.0, message, exact=False)

    async def _check_whole(self, server: Server, watch: _Watch, body: Any, label: str) -> None:
        """Fail a 200 answer whose job someone else interrupted: its image is half-finished.

        A1111 keeps ``state.interrupted`` from the interrupt until the next job begins, so a state
        still under our stamp with no job running tells; ``info.job_timestamp`` names our stamp.
        """
        try:
            info = json.loads(body.get("info") or "{}")
        except (TypeError, ValueError, AttributeError):
            info = None
        stamp = info.get("job_timestamp") if isinstance(info, dict) else None
        if watch.ours is not None and stamp is not None and str(stamp) != watch.ours:
            log.info(
                "The progress followed on %s was not our job's (%s, ours %s)", server.url, watch.ours, stamp
            )
            watch.stopped_at = None
        stopped = _unfinished(watch.stopped_at)
        if stopped is None and stamp is not None:
            try:
                after = await self._read_state(server, INTERRUPT_TIMEOUT)
            except ProviderError as exc:
                log.debug("Could not read %s after the answer: %s", server.url, exc)
                after = None
            state = _state(after)
            if _timestamp(after) == str(stamp) and not _running(after) and state.get("interrupted"):
                stopped = _unfinished(_raw_steps(state))
        if stopped is not None:
            raise ProviderFailed(
                f"{label} interrupted this job {stopped} (someone else stopped it on the server); "
                "the half-finished image was not kept."
            )

    # -- stopping our job --------------------------------------------------------------------

    async def _stop(self, server: Server, watch: _Watch) -> None:
        """Interrupt our job on the server after a cancel or a timeout; never someone else's."""
        try:
            task = await self._read_task(server, watch, INTERRUPT_TIMEOUT)
            if task is None:
                await self._stop_by_stamp(server, watch)
            elif task["active"]:
                await self._interrupt(server, watch)
            elif not task.get("completed") and (task.get("queued") or watch.sent):
                # Still waiting behind other jobs (or not yet queued): stop it when it starts.
                self._keep(self._stop_when_started(server, watch, queued=bool(task.get("queued"))))
        except ProviderError as exc:
            log.info("Could not interrupt our job on %s: %s", server.url, exc)

    async def _stop_when_started(self, server: Server, watch: _Watch, *, queued: bool) -> None:
        started = self._clock()
        while True:
            waited = self._clock() - started
            if waited > QUEUED_WATCH_SECONDS or (not queued and waited > UNSEEN_WATCH_SECONDS):
                log.info("Gave up watching cancelled task %s on %s", watch.task_id, server.url)
                return
            await asyncio.sleep(self._poll_interval)
            try:
                task = await self._read_task(server, watch, INTERRUPT_TIMEOUT)
                if task is None or task.get("completed"):
                    return
                if task["active"]:
                    await self._interrupt(server, watch)
                    return
            except ProviderError as exc:
                log.debug("Watching cancelled task on %s: %s", server.url, exc)
                continue
            queued = queued or bool(task.get("queued"))

    async def _stop_by_stamp(self, server: Server, watch: _Watch) -> None:
        """Without task ids: interrupt only a running job under a stamp we took for ours, read
        just before; an unchanged stamp may be ours or not, so it is left alone."""
        body = await self._read_state(server, INTERRUPT_TIMEOUT)
        stamp = _timestamp(body)
        if not _running(body) or stamp is None or stamp == watch.baseline:
            return
        if watch.ours is not None and stamp != watch.ours:
            return
        await self._interrupt(server, watch)

    async def _interrupt(self, server: Server, watch: _Watch) -> None:
        request = self._client.build_request(
            "POST", server.url + "/sdapi/v1/interrupt", headers=server.headers, timeout=INTERRUPT_TIMEOUT
        )
        await send(self._client, request, _server_label(server))
        log.info("Interrupted our job %s on %s", watch.task_id, server.url)

    def _keep(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _parts(content: list[bytes], watch: _Watch) -> AsyncIterator[bytes]:
    for part in content:
        yield part
    watch.sent = True


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_BATCH:
        raise InvalidRequest(f"{NAME} makes 1 to {MAX_BATCH} images at once, not {count}.")


def _read_answer(chunks: list[bytes], label: str, count: int = 1) -> tuple[list[bytes], Any]:
    """The first ``count`` images and the rest of an img2img / txt2img answer (what follows them,
    e.g. an extension's extra images, is not ours); slow for large images, so run off the loop."""
    body = parse_json(b"".join(chunks), label)
    images = body.get("images") if isinstance(body, dict) else None
    if not isinstance(images, list) or not images:
        return [decode_image(None, label)], body  # says the answer holds no image
    if len(images) < count:
        raise ProviderFailed(fewer_results(label, len(images), count))
    return [decode_image(image, label) for image in images[:count]], body


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
        seeds = info.get("all_seeds")
        count = int(payload.get("batch_size", 1))
        if count > 1 and isinstance(seeds, list) and len(seeds) >= count:
            # Result i's seed, in order: "1234,1235,1236" (one metadata for all the results).
            metadata["seeds"] = ",".join(str(seed) for seed in seeds[:count])
    return metadata
