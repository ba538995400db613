"""The ComfyUI provider (0.3.x API): runs a marked API-format workflow for edits and generations.

Owns ``ComfyUIProvider``. One job on one server (a pool of ``IMGEDIT_COMFYUI_URLS``, through
``pool.ServerPool``: one job per server, resting servers that stopped answering) goes:

1. ``GET /ws?clientId=<ours>`` first, with the ``supports_preview_metadata`` feature flag:
   ComfyUI sends a prompt's events only to the socket of the client id that submitted it, and
   replays nothing, so the socket must be open before the prompt is.
2. For an edit, ``POST /upload/image`` (multipart) and use the name it answers. A workflow
   with ``imgedit:mask`` gets the selected area uploaded the same way, as the PNG imgedit keeps
   (transparent where the edit applies: LoadImageMask's "alpha" channel makes that 1), or, for an
   edit with no area selected, a fully transparent one (the whole picture).
3. ``POST /prompt {prompt, client_id, prompt_id}`` with a prompt id we chose, so a job cancelled
   while its POST is in flight can still be found. A 400's ``error`` and ``node_errors`` become
   one readable ``ProviderRejected``.
4. Follow the socket: ``executing`` / ``execution_cached`` count nodes (milestones), the sampler's
   ``progress`` is the real progress, binary frames (type 1: format + image; type 4: a JSON
   header naming the prompt + image) are previews, ``executed`` names the output images,
   ``execution_error`` fails the job with ComfyUI's exception message, ``executing {node: null}``
   ends it. A dropped socket is reconnected with the same client id; since nothing is replayed,
   ``GET /queue`` and ``GET /history/{prompt_id}`` then say where the prompt is.
5. ``GET /view?filename&subfolder&type`` fetches the result.

A region edit runs on a workflow with ``imgedit:mask``: the one chosen, if it has the mark (else
it is refused, naming those that have it), or for the default choice the default edit workflow if
it has the mark, else the first that does (the shipped ``inpaint``). ``variants(kind, mask=True)``
lists those workflows; ``variants(kind)`` those for whole-image edits.

Variations (``ProviderRequest.count`` > 1): a workflow with ``imgedit:batch`` makes them in one
prompt (the shipped ones: EmptyLatentImage's ``batch_size``, a RepeatLatentBatch after the edit's
encode, a RepeatImageBatch of the inpaint's source, which its final composite needs as well), and
every image of its output node is fetched, in order. A workflow without the mark is run once per
variation, one prompt after another on the same server, with ``seed``, ``seed + 1``, ... in its
``imgedit:seed``; one without either mark is refused (its variations would all be the same).

Cancelling the job's coroutine stops only our prompt: ``POST /queue {"delete": [id]}`` while it
is pending, ``POST /interrupt {"prompt_id": id}`` while it runs (ComfyUI 0.3.6x interrupts only
that prompt; an interrupt for a prompt not running does nothing). ComfyUI clears the interrupt
flag when a prompt starts, so an interrupt sent as it starts can be lost: a background watch
reads ``/queue`` until the prompt is gone, re-sending the delete or interrupt, then confirms from
the history.

The websocket is aiohttp's client (``ClientSession.ws_connect``): aiohttp is installed with
NiceGUI, it is what ComfyUI's own server is built on, and it reads text and binary frames with
heartbeats; httpx (used for every HTTP call, through the app's shared client) has no websockets.
Credentials (``user:pass@`` in a URL, for a server behind a proxy) travel only in headers.
Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from imgedit import cpu
from imgedit.errors import (
    InvalidRequest,
    ProviderError,
    ProviderFailed,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.imaging import media_type, sniff_format
from imgedit.models import JobKind, Quality
from imgedit.providers.base import (
    Capabilities,
    ProgressSink,
    ProviderRequest,
    ProviderResult,
    ServerHealth,
    fewer_results,
)
from imgedit.providers.comfyui_workflow import (
    ADVANCED_MARKS,
    DEFAULT_NAMES,
    Workflow,
    WorkflowError,
    load_workflows,
)
from imgedit.providers.common import finite_number, named_errors, pool_health, uncancellable
from imgedit.providers.http import MAX_MESSAGE, error_from_response, json_body, never_arrived, off_loop, send
from imgedit.providers.pool import Server, ServerPool
from imgedit.providers.region import checked_mask, clear_mask, encoded_size

log = logging.getLogger(__name__)

NAME = "ComfyUI"
STEPS = {Quality.LOW: 12, Quality.MEDIUM: 20, Quality.HIGH: 30}
SIDE = {Quality.LOW: 512, Quality.MEDIUM: 640, Quality.HIGH: 768}
"""Longest side of a generated image by quality (an SD 1.5 checkpoint's comfortable range)."""
SECONDS_PER_STEP = 0.3
OVERHEAD_SECONDS = 4.0
SAMPLER_SHARE = 0.8
"""How much of the bar the sampler's steps fill; the other nodes share the rest."""
MIN_SIDE = 64
REQUEST_TIMEOUT = httpx.Timeout(30.0)
STOP_TIMEOUT = httpx.Timeout(5.0)
HEARTBEAT = 20.0
"""Seconds between websocket pings: a server that stops answering is noticed between events."""
RECONNECT_WINDOW = 120.0
"""How long a dropped socket is retried before the job fails (retryable)."""
QUIET_CHECK = 15.0
"""Seconds without any event after which ``/queue`` and the history are read (one small GET)."""
WATCH_SECONDS = 30 * 60.0
"""How long a cancelled prompt is watched (it may wait behind other prompts) to stop it."""
UNSEEN_SECONDS = 10.0
"""How long a cancelled prompt whose POST may still be in flight is looked for in the queue."""
PREVIEW = 1
PREVIEW_WITH_METADATA = 4
MAX_SEED = 2**63 - 1
MAX_BATCH = 4
"""Variations one job asks for at most."""
MASK_DEFAULT = "inpaint"
"""The shipped region-edit workflow: first among those taking a mask, after the default edit."""


def _label(server: Server) -> str:
    return f"{NAME} at {server.url}"


def _on_grid(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``side``, both sides multiples of 8 (the latent grid)."""
    scale = side / max(size)
    return tuple(max(MIN_SIDE, round(v * scale / 8) * 8) for v in size)  # type: ignore[return-value]


@dataclass(slots=True)
class _Job:
    """One prompt of ours on one server, and what its events said so far."""

    workflow: Workflow
    session: aiohttp.ClientSession
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    prompt_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ws: aiohttp.ClientWebSocketResponse | None = None
    posted: bool = False
    """The POST /prompt went out (at least in part): the server may hold the prompt."""
    finished: bool = False
    """The server reported the prompt's end (success, error or interrupt)."""
    started: bool = False
    total: int = 1
    done: set[str] = field(default_factory=set)
    current: str | None = None
    sampler: float = 0.0
    step: tuple[int, int] | None = None
    fraction: float = 0.0
    said: str | None = None
    images: list[dict[str, Any]] | None = None

    def again(self) -> _Job:
        """A fresh record for the next prompt of the same job, on the same socket and client id."""
        return _Job(workflow=self.workflow, session=self.session, client_id=self.client_id, ws=self.ws)


@dataclass(frozen=True, slots=True)
class _Share:
    """The sink of one of ``runs`` prompts run one after another: its part of the bar, and its
    messages saying which variation it is."""

    sink: ProgressSink
    index: int
    runs: int

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        said = f"Variation {self.index + 1} of {self.runs}: {message}" if message else message
        # The prompt's own ETA leaves out the prompts after it: the estimate between milestones
        # knows better.
        self.sink.progress((self.index + fraction) / self.runs, said, exact=exact)

    def preview(self, image: bytes) -> None:
        self.sink.preview(image)


class ComfyUIProvider:
    """Stable Diffusion (or anything a workflow does) through one or more ComfyUI servers."""

    name = "comfyui"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        urls: Sequence[str],
        workflows: Mapping[str, Workflow] | None = None,
        workflow_folder: Path | None = None,
        auth: tuple[str, str] | None = None,
        poll_interval: float = 0.5,
        reconnect_window: float = RECONNECT_WINDOW,
        quiet_check: float = QUIET_CHECK,
        denoise: float = 0.55,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``workflows`` (by name) wins over loading the shipped ones plus ``workflow_folder``'s;
        loading raises ``comfyui_workflow.WorkflowError`` for a workflow that cannot be used."""
        if not urls:
            raise ValueError("ComfyUIProvider needs at least one server URL")
        self._client = client
        self._pool = ServerPool([Server.from_url(url, auth) for url in urls], clock=clock)
        self._workflows = dict(workflows) if workflows is not None else load_workflows(workflow_folder)
        for kind in JobKind:
            if not self._names(kind):
                raise WorkflowError(
                    f"No ComfyUI workflow does {kind.value}s: a workflow named “{DEFAULT_NAMES[kind]}” "
                    f"replaced the shipped one with one of another kind."
                )
        self._poll_interval = poll_interval
        self._reconnect_window = reconnect_window
        self._quiet_check = quiet_check
        self._denoise = denoise
        self._clock = clock
        self._background: set[asyncio.Future[None]] = set()
        """Watches of cancelled prompts, held until they end."""
        self._said_unbatched: set[str] = set()
        """Workflows already logged as run once per variation (said once each)."""
        count = len(self._pool.servers)
        self.label = NAME if count == 1 else f"{NAME} · {count} servers"
        self.capabilities = Capabilities(
            edit=True,
            generate=True,
            mask=bool(self.workflows(JobKind.EDIT, mask=True)),
            stream_previews=True,
            real_progress=True,
            cancel_remote=True,
            advanced=self._default_advanced(),
            variations=MAX_BATCH,
        )

    def _default_advanced(self) -> frozenset[str]:
        """The Advanced settings the default workflows take (their marks): what the dialog offers.
        A workflow chosen instead that lacks a mark ignores that value (``_work`` logs it)."""
        defaults = [self.workflow(kind) for kind in JobKind]
        if self.workflows(JobKind.EDIT, mask=True):
            defaults.append(self.region_workflow())
        return frozenset[str]().union(*(workflow.advanced for workflow in defaults))

    def __repr__(self) -> str:
        return f"ComfyUIProvider(urls={[s.url for s in self._pool.servers]!r})"

    @property
    def capacity(self) -> int:
        """One job per server, as for SD WebUI: a waiting job holds no global slot."""
        return len(self._pool.servers)

    @property
    def stopping(self) -> int:
        """Cancelled prompts still being watched until the server lets go of them."""
        return len(self._background)

    async def settled(self) -> None:
        """Wait until every cancelled prompt's watch has ended (for shutdown and tests)."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def health(self) -> list[ServerHealth]:
        """Each server from its ``/queue``: busy with an imgedit job or with prompts of others
        (running or waiting), up when idle, down when it does not answer as ComfyUI would."""

        async def others_work(server: Server) -> str | None:
            running, pending = await self._read_queue(server)
            waiting = len(running) + len(pending)
            return f"{waiting} prompt(s) of others in its queue" if waiting else None

        return await pool_health(self._pool.servers, _label, others_work)

    async def aclose(self) -> None:
        """At shutdown: stop watching cancelled prompts (each one's first delete or interrupt
        went out when it was cancelled)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    variant_label = "Workflow"
    """What the dialog calls the choice among ``variants``."""

    def variants(self, kind: JobKind, *, mask: bool = False) -> list[str]:
        """The dialog's choices (``base.Variants``): the workflows that do ``kind``; with
        ``mask``, those that take a selected area."""
        return self.workflows(kind, mask=mask)

    def workflows(self, kind: JobKind, *, mask: bool = False) -> list[str]:
        """Names of the workflows that do ``kind``, the default first: what the dialog can offer.

        Without ``mask``, those for a whole-image job (no ``imgedit:mask``); with it, those that
        take a selected area (``imgedit:mask``), the shipped inpaint first after the default.
        """
        names = [name for name in self._names(kind) if self._workflows[name].takes_mask is mask]
        return (
            sorted(names, key=lambda name: (name != DEFAULT_NAMES[kind], name != MASK_DEFAULT))
            if mask
            else names
        )

    def _names(self, kind: JobKind) -> list[str]:
        """Every workflow that does ``kind``, the default first."""
        names = [name for name, workflow in self._workflows.items() if workflow.kind is kind]
        default = DEFAULT_NAMES[kind]
        return sorted(names, key=lambda name: (name != default, name))

    def workflow(self, kind: JobKind, name: str | None = None) -> Workflow:
        chosen = self._workflows.get(name or self._names(kind)[0])
        if chosen is None or chosen.kind is not kind:
            raise InvalidRequest(f"There is no ComfyUI {kind.value} workflow named “{name}”.")
        return chosen

    def region_workflow(self, name: str | None = None) -> Workflow:
        """The edit workflow a region edit runs on: ``name`` if it takes a mask (refused if not),
        else the default edit workflow if it does, else the first that does."""
        takers = self.workflows(JobKind.EDIT, mask=True)
        listed = ", ".join(f"“{taker}”" for taker in takers)
        if name:
            chosen = self.workflow(JobKind.EDIT, name)
            if chosen.takes_mask:
                return chosen
            instead = f"choose {listed}, or " if takers else ""
            raise InvalidRequest(
                f"The ComfyUI workflow “{name}” cannot edit a selected area (it has no imgedit:mask): "
                f"{instead}clear the selection to edit the whole picture."
            )
        default = self.workflow(JobKind.EDIT)
        if default.takes_mask:
            return default
        if not takers:
            raise InvalidRequest(
                "No ComfyUI edit workflow can edit a selected area: mark a LoadImageMask node "
                "imgedit:mask in one, or clear the selection to edit the whole picture."
            )
        return self._workflows[takers[0]]

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return STEPS[quality] * SECONDS_PER_STEP + OVERHEAD_SECONDS

    def describe(self, kind: JobKind) -> str:
        if kind is JobKind.EDIT:
            return (
                "Runs a ComfyUI workflow on your image. With the default one, describe the picture "
                "you want, not the change, e.g. “a watercolour painting of a harbour at dusk”."
            )
        return (
            "Runs a ComfyUI workflow. Describe the scene, style and mood, e.g. “a fox in snow, oil painting”."
        )

    async def edit(
        self, request: ProviderRequest, sink: ProgressSink, *, workflow: str | None = None
    ) -> ProviderResult:
        if request.image is None:
            raise InvalidRequest("An edit needs a source image.")
        name = workflow or request.variant
        if request.mask is not None:
            checked_mask(request.image, request.mask)
            chosen = self.region_workflow(name)
        else:
            chosen = self.workflow(JobKind.EDIT, name)
        with named_errors(self.name):
            return await self._run(request, sink, chosen)

    async def generate(
        self, request: ProviderRequest, sink: ProgressSink, *, workflow: str | None = None
    ) -> ProviderResult:
        size = request.size
        if size is not None and (size[0] < 1 or size[1] < 1):
            raise InvalidRequest(f"The image size {size[0]}x{size[1]} is not possible.")
        with named_errors(self.name):
            return await self._run(
                request, sink, self.workflow(JobKind.GENERATE, workflow or request.variant)
            )

    # -- one job on one server ---------------------------------------------------------------

    async def _run(self, request: ProviderRequest, sink: ProgressSink, workflow: Workflow) -> ProviderResult:
        self._check_count(request.count, workflow)
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
                # trust_env as httpx does: HTTP(S)_PROXY / NO_PROXY apply to the socket too.
                async with aiohttp.ClientSession(trust_env=True) as session:
                    job = _Job(workflow=workflow, session=session)
                    try:
                        await self._connect(server, job)
                    except ProviderUnavailable as exc:
                        # Nothing was sent yet, so another server can take the job.
                        self._pool.mark_down(server)
                        failed[server] = exc
                        continue
                    self._pool.mark_up(server)
                    return await self._work(server, job, request, sink)
            finally:
                self._pool.release(server)

    async def _work(
        self, server: Server, job: _Job, request: ProviderRequest, sink: ProgressSink
    ) -> ProviderResult:
        workflow = job.workflow
        seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
        steps = STEPS[request.quality] if request.steps is None else request.steps
        negative = request.negative_prompt or None  # "": the workflow's own negative prompt
        cfg = None if request.guidance is None else float(request.guidance)
        denoise = self._denoise if request.strength is None else float(request.strength)
        _log_ignored(workflow, request)
        # With imgedit:batch one prompt makes every variation; without, one prompt each.
        runs = 1 if workflow.batches else request.count
        batch = request.count if workflow.batches else None
        if runs > 1 and workflow.name not in self._said_unbatched:
            self._said_unbatched.add(workflow.name)
            log.info(
                "ComfyUI workflow %s has no imgedit:batch: variations run it once each, seed after seed",
                workflow.name,
            )
        current = job
        results: list[bytes] = []
        try:
            kind_specific: dict[str, Any]
            if request.image is not None:
                image = await self._upload(server, request.image)
                mask = await self._upload_mask(server, request) if workflow.takes_mask else None
                kind_specific = {"image": image, "mask": mask, "denoise": denoise}
            else:
                side = SIDE[request.quality]
                kind_specific = {"size": _on_grid(request.size or (side, side), side)}
            for index in range(runs):
                if index:
                    current = current.again()
                part: ProgressSink = sink if runs == 1 else _Share(sink, index, runs)
                graph = workflow.fill(
                    prompt=request.prompt,
                    seed=seed + index,
                    steps=steps,
                    negative=negative,
                    cfg=cfg,
                    batch=batch,
                    **kind_specific,
                )
                current.total = max(len(graph), 1)
                await self._post_prompt(server, current, graph)
                self._say("Waiting in the server's queue", current, part)
                outputs = await self._follow(server, current, part)
                results += await self._fetch(server, outputs, workflow, batch or 1)
        except asyncio.CancelledError:
            if current.posted and not current.finished:
                await uncancellable(self._stop(server, current))
            raise
        except ProviderError as exc:
            if current.posted and not current.finished:
                # It may still run: stop it before a retry sends it again.
                await uncancellable(self._stop(server, current))
            if not current.posted and isinstance(exc, ProviderUnavailable):
                self._pool.mark_down(server)
            raise
        sink.progress(1.0, "Done")
        seeded = "seed" in workflow.marks
        metadata = {
            "server": server.url,
            "workflow": workflow.name,
            "prompt_id": job.prompt_id,
            "seed": str(seed) if seeded else "",
            "seeds": ",".join(str(seed + index) for index in range(runs)) if seeded and runs > 1 else "",
            "steps": str(steps) if "steps" in workflow.marks else "",
        }
        first, *more = results
        fmt = sniff_format(first) or "PNG"
        return ProviderResult(
            image=first, format=fmt, metadata={k: v for k, v in metadata.items() if v}, more=tuple(more)
        )

    def _check_count(self, count: int, workflow: Workflow) -> None:
        if not 1 <= count <= MAX_BATCH:
            raise InvalidRequest(f"{NAME} makes 1 to {MAX_BATCH} images at once, not {count}.")
        if count > 1 and not workflow.batches and "seed" not in workflow.marks:
            raise InvalidRequest(
                f"The ComfyUI workflow “{workflow.name}” has neither imgedit:batch nor imgedit:seed, "
                "so its variations would all be the same picture: mark its batch size or its seed."
            )

    # -- HTTP --------------------------------------------------------------------------------

    async def _connect(self, server: Server, job: _Job) -> None:
        """Open (or reopen) our socket; events of our prompt go only to it."""
        url = server.url.replace("http", "ws", 1) + "/ws"
        try:
            job.ws = await job.session.ws_connect(
                url,
                params={"clientId": job.client_id},
                headers=server.headers,
                heartbeat=HEARTBEAT,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
            await job.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        except aiohttp.WSServerHandshakeError as exc:
            raise ProviderUnavailable(
                f"{_label(server)} refused its websocket ({exc.status}): is this a ComfyUI server?"
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ProviderUnavailable(
                f"Could not connect to {_label(server)}: {exc or type(exc).__name__}."
            ) from exc

    async def _upload_mask(self, server: Server, request: ProviderRequest) -> str:
        """Upload the selected area for LoadImageMask: the kept form as it is, or with none
        selected, a fully transparent mask of the source's size (the whole picture changes)."""
        mask = request.mask
        if mask is None:
            assert request.image is not None
            mask = await cpu.run(clear_mask, encoded_size(request.image, "The source image"))
        return await self._upload(server, mask, prefix="imgedit-mask")

    async def _upload(self, server: Server, image: bytes, *, prefix: str = "imgedit") -> str:
        fmt = sniff_format(image) or "PNG"
        # Named by content: editing one image again reuses its upload instead of piling up copies
        # in ComfyUI's input folder (and lets ComfyUI reuse its cached LoadImage).
        digest = await off_loop(len(image), _digest, image)
        filename = f"{prefix}-{digest}.{fmt.lower()}"
        request = self._client.build_request(
            "POST",
            server.url + "/upload/image",
            files={"image": (filename, image, media_type(fmt))},
            data={"type": "input", "overwrite": "true"},
            headers=server.headers,
            timeout=REQUEST_TIMEOUT,
        )
        label = _label(server)
        body = json_body(await send(self._client, request, label), label)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise ProviderFailed(f"{label} answered the upload without a file name.")
        subfolder = body.get("subfolder") or ""
        return f"{subfolder}/{name}" if subfolder else name

    async def _post_prompt(self, server: Server, job: _Job, graph: dict[str, Any]) -> None:
        body = {"prompt": graph, "client_id": job.client_id, "prompt_id": job.prompt_id}
        request = self._client.build_request(
            "POST", server.url + "/prompt", json=body, headers=server.headers, timeout=REQUEST_TIMEOUT
        )
        label = _label(server)
        job.posted = True
        try:
            response = await send(self._client, request, label, errors=_prompt_error(job.workflow))
        except ProviderError as exc:
            if exc.status is not None or never_arrived(exc):
                job.posted = False  # refused with an answer, or never reached the server: not queued
            raise
        answer = json_body(response, label)
        errors = answer.get("node_errors") if isinstance(answer, dict) else None
        if errors:  # some outputs failed validation, ours did not: worth a line in the log
            log.info("%s accepted prompt %s with node errors: %s", label, job.prompt_id, _node_errors(errors))

    async def _fetch(
        self, server: Server, images: list[dict[str, Any]], workflow: Workflow, count: int = 1
    ) -> list[bytes]:
        """The first ``count`` images of the output node (its saved ones if it has any, else all),
        in order; fewer than ``count`` fails."""
        label = _label(server)
        saved = [image for image in images if image.get("type") == "output"]
        chosen = (saved or images)[:count]
        if len(chosen) < count:
            raise ProviderFailed(fewer_results(label, len(chosen), count))
        results = []
        for image in chosen:
            request = self._client.build_request(
                "GET",
                server.url + "/view",
                params={
                    "filename": str(image.get("filename", "")),
                    "subfolder": str(image.get("subfolder") or ""),
                    "type": str(image.get("type") or "output"),
                },
                headers=server.headers,
                timeout=REQUEST_TIMEOUT,
            )
            data = (await send(self._client, request, label)).content
            if sniff_format(data) is None:
                raise ProviderFailed(f"{label} sent a result that is not an image.")
            results.append(data)
        return results

    async def _read_queue(self, server: Server) -> tuple[set[str], set[str]]:
        """Ids of the prompts running and pending on the server."""
        request = self._client.build_request(
            "GET", server.url + "/queue", headers=server.headers, timeout=STOP_TIMEOUT
        )
        label = _label(server)
        body = json_body(await send(self._client, request, label), label)
        if not isinstance(body, dict):
            raise ProviderFailed(f"{label} sent a queue that is not an object.")

        def ids(items: object) -> set[str]:
            if not isinstance(items, list):
                return set()
            return {str(item[1]) for item in items if isinstance(item, list) and len(item) > 1}

        return ids(body.get("queue_running")), ids(body.get("queue_pending"))

    async def _read_history(self, server: Server, job: _Job) -> dict[str, Any] | None:
        request = self._client.build_request(
            "GET", f"{server.url}/history/{job.prompt_id}", headers=server.headers, timeout=STOP_TIMEOUT
        )
        label = _label(server)
        body = json_body(await send(self._client, request, label), label)
        entry = body.get(job.prompt_id) if isinstance(body, dict) else None
        return entry if isinstance(entry, dict) else None

    async def _post(self, server: Server, path: str, body: Mapping[str, Any]) -> None:
        request = self._client.build_request(
            "POST", server.url + path, json=dict(body), headers=server.headers, timeout=STOP_TIMEOUT
        )
        await send(self._client, request, _label(server))

    # -- following the prompt ----------------------------------------------------------------

    async def _follow(self, server: Server, job: _Job, sink: ProgressSink) -> list[dict[str, Any]]:
        """The output images of our prompt, from its events (or its history after a reconnect)."""
        while True:
            assert job.ws is not None
            while True:
                try:
                    message = await job.ws.receive(timeout=self._quiet_check)
                except TimeoutError:
                    images = await self._look(server, job)
                    if images is not None:
                        return images
                    continue
                except (aiohttp.ClientError, OSError) as exc:
                    log.info("Lost the socket to %s: %s", server.url, exc)
                    break
                if message.type is aiohttp.WSMsgType.TEXT:
                    images = await self._on_event(server, job, message.data, sink)
                    if images is not None:
                        return images
                elif message.type is aiohttp.WSMsgType.BINARY:
                    self._on_binary(job, message.data, sink)
                else:  # closing, closed or broken
                    break
            await job.ws.close()
            images = await self._reconnect(server, job)
            if images is not None:
                return images

    async def _look(self, server: Server, job: _Job) -> list[dict[str, Any]] | None:
        """After ``quiet_check`` seconds without a word, ask where our prompt is. ComfyUI forgets
        a client id when an older socket with the same id closes late (its ``/ws`` handler pops
        the id unconditionally), and a socket it forgot hears nothing more while looking open."""
        try:
            running, pending = await self._read_queue(server)
            if job.prompt_id in running or job.prompt_id in pending:
                return None
            entry = await self._read_history(server, job)
        except ProviderError as exc:
            log.debug("Looking for our prompt on %s: %s", server.url, exc)
            return None  # the socket's heartbeat tells whether the server is gone
        if entry is None:
            raise ProviderFailed(f"{_label(server)} no longer knows this job (was it restarted?).")
        log.info("Prompt %s on %s ended unheard; its history says how", job.prompt_id, server.url)
        return self._from_history(server, job, entry)

    async def _reconnect(self, server: Server, job: _Job) -> list[dict[str, Any]] | None:
        """Reopen the socket with the same client id, then ask where our prompt is: ComfyUI
        replays nothing, so an end missed while away is only in the history."""
        deadline = self._clock() + self._reconnect_window
        delay = self._poll_interval
        while True:
            try:
                await self._connect(server, job)
                running, pending = await self._read_queue(server)
                break
            except ProviderError as exc:
                if self._clock() >= deadline:
                    raise ProviderFailed(f"Lost the connection to {_label(server)}: {exc}") from exc
                log.info("Reconnecting to %s: %s", server.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if job.prompt_id in running or job.prompt_id in pending:
            return None  # still to come: its events reach the new socket
        entry = await self._read_history(server, job)
        if entry is None:
            raise ProviderFailed(f"{_label(server)} no longer knows this job (was it restarted?).")
        return self._from_history(server, job, entry)

    def _from_history(self, server: Server, job: _Job, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        job.finished = True
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        messages = status.get("messages") if isinstance(status, dict) else None
        for event in messages if isinstance(messages, list) else []:
            if isinstance(event, list) and len(event) == 2 and isinstance(event[1], dict):
                if event[0] == "execution_error":
                    raise _execution_error(server, job, event[1])
                if event[0] == "execution_interrupted":
                    raise _interrupted(server, job)
        outputs = entry.get("outputs")
        found = outputs.get(job.workflow.output_node) if isinstance(outputs, dict) else None
        images = _images(found)
        if not images:
            raise _no_image(server, job)
        return images

    async def _on_event(
        self, server: Server, job: _Job, text: str, sink: ProgressSink
    ) -> list[dict[str, Any]] | None:
        try:
            event = json.loads(text)
        except ValueError:
            return None
        kind, data = (event.get("type"), event.get("data")) if isinstance(event, dict) else (None, None)
        if not isinstance(data, dict):
            return None
        prompt_id = data.get("prompt_id")
        if kind == "status" and not job.started and job.posted:
            # Sent to every client whenever the queue changes: a waiting job is heard from.
            info = data.get("status")
            exec_info = info.get("exec_info") if isinstance(info, dict) else None
            left = finite_number(exec_info.get("queue_remaining")) if isinstance(exec_info, dict) else None
            if left:
                sink.progress(
                    job.fraction,
                    f"Waiting in the server's queue ({int(left)} queued or running)",
                    exact=False,
                )
            return None
        if kind == "executing" and prompt_id is None and job.started:
            # After a reconnect ComfyUI names the running node of our client, without a prompt id.
            self._enter(job, data.get("node"), sink)
            return None
        if prompt_id != job.prompt_id:
            return None
        if kind == "execution_start":
            job.started = True
            self._milestone(job, sink)
        elif kind == "execution_cached":
            nodes = data.get("nodes")
            if isinstance(nodes, list):
                job.done.update(str(node) for node in nodes if isinstance(node, str | int))
            if job.workflow.sampler_node in job.done:
                job.sampler = 1.0
            self._milestone(job, sink)
        elif kind == "executing":
            job.started = True
            if data.get("node") is None:
                job.finished = True
                if job.images is not None:
                    return job.images
                entry = await self._read_history(server, job)
                if entry is None:
                    raise ProviderFailed(f"{_label(server)} finished the job but has no history of it.")
                return self._from_history(server, job, entry)
            self._enter(job, data.get("node"), sink)
        elif kind == "progress":
            self._on_progress(job, data, sink)
        elif kind == "executed":
            if str(data.get("node")) == job.workflow.output_node:
                output = data.get("output")
                job.images = _images(output) or job.images
        elif kind == "execution_success":
            job.finished = True
            if job.images is not None:
                return job.images
            entry = await self._read_history(server, job)
            if entry is not None:
                return self._from_history(server, job, entry)
        elif kind == "execution_error":
            job.finished = True
            raise _execution_error(server, job, data)
        elif kind == "execution_interrupted":
            job.finished = True
            raise _interrupted(server, job)
        return None

    def _on_binary(self, job: _Job, data: bytes, sink: ProgressSink) -> None:
        if len(data) < 8:
            return
        (kind,) = struct.unpack(">I", data[:4])
        image: bytes | None = None
        if kind == PREVIEW:
            image = data[8:]  # after the event type, 4 bytes of format (1 JPEG, 2 PNG)
        elif kind == PREVIEW_WITH_METADATA:
            (length,) = struct.unpack(">I", data[4:8])
            try:
                metadata = json.loads(data[8 : 8 + length])
            except ValueError:
                return
            if isinstance(metadata, dict) and metadata.get("prompt_id") not in (None, job.prompt_id):
                return
            image = data[8 + length :]
        if image and sniff_format(image) is not None:
            sink.preview(image)

    # -- progress ----------------------------------------------------------------------------

    def _enter(self, job: _Job, node: object, sink: ProgressSink) -> None:
        """A node began: the one before it is done."""
        if node is None:
            return
        node = str(node)
        if job.current is not None and job.current != node:
            job.done.add(job.current)
            if job.current == job.workflow.sampler_node:
                job.sampler, job.step = 1.0, None
        job.current = node
        self._milestone(job, sink)

    def _on_progress(self, job: _Job, data: Mapping[str, Any], sink: ProgressSink) -> None:
        value, top = finite_number(data.get("value")), finite_number(data.get("max"))
        node = data.get("node")
        if value is None or not top or str(node) != job.workflow.sampler_node:
            return  # a node of its own with a bar (an upscaler): its boundaries are the milestones
        job.sampler = max(job.sampler, min(value / top, 1.0))
        job.step = (int(value), int(top))
        self._report(job, sink, f"Step {int(value)} of {int(top)}", exact=True)

    def _milestone(self, job: _Job, sink: ProgressSink) -> None:
        if not job.started:
            return
        current = job.current
        if current is None:
            message = "Starting"
        else:
            place = min(len(job.done) + 1, job.total)
            message = f"Running {job.workflow.class_type(current)} (node {place} of {job.total})"
        self._report(job, sink, message, exact=False)

    def _report(self, job: _Job, sink: ProgressSink, message: str, *, exact: bool) -> None:
        sampler = job.workflow.sampler_node
        if sampler is not None and sampler in job.workflow.graph:
            others = max(job.total - 1, 1)
            done = len(job.done - {sampler})
            fraction = (1 - SAMPLER_SHARE) * min(done / others, 1.0) + SAMPLER_SHARE * job.sampler
        else:
            fraction = min(len(job.done) / job.total, 1.0)
        job.fraction = max(job.fraction, min(fraction, 0.99))
        sink.progress(job.fraction, message, exact=exact)
        job.said = message

    @staticmethod
    def _say(message: str, job: _Job, sink: ProgressSink) -> None:
        if message != job.said:
            job.said = message
            sink.progress(job.fraction, message, exact=False)

    # -- stopping our prompt -----------------------------------------------------------------

    async def _stop(self, server: Server, job: _Job) -> None:
        """Delete our prompt if it waits, interrupt it if it runs; never anyone else's."""
        seen = False
        running: set[str] = set()
        try:
            running, pending = await self._read_queue(server)
            seen = job.prompt_id in pending or job.prompt_id in running
            if job.prompt_id in pending:
                await self._post(server, "/queue", {"delete": [job.prompt_id]})
                log.info("Deleted our queued prompt %s on %s", job.prompt_id, server.url)
            elif job.prompt_id in running:
                await self._post(server, "/interrupt", {"prompt_id": job.prompt_id})
                log.info("Interrupted our prompt %s on %s", job.prompt_id, server.url)
        except ProviderError as exc:
            log.info("Could not stop our prompt on %s yet: %s", server.url, exc)
        interrupted = self._clock() if seen and job.prompt_id in running else None
        self._keep(self._watch_stopped(server, job.prompt_id, job, seen=seen, interrupted=interrupted))

    async def _watch_stopped(
        self, server: Server, prompt_id: str, job: _Job, *, seen: bool, interrupted: float | None
    ) -> None:
        """Until the server lets go of our cancelled prompt: delete it again if it (still, or
        only now) waits, interrupt it again if it still runs some polls after the last interrupt
        (one lands at the next sampler step or node boundary, but one sent as the prompt starts
        is cleared by ComfyUI); then read the history to confirm."""
        started = self._clock()
        resend_after = 4 * self._poll_interval
        while self._clock() - started < WATCH_SECONDS:
            try:
                running, pending = await self._read_queue(server)
                if prompt_id in pending:
                    seen = True
                    await self._post(server, "/queue", {"delete": [prompt_id]})
                elif prompt_id in running:
                    seen = True
                    if interrupted is None or self._clock() - interrupted >= resend_after:
                        await self._post(server, "/interrupt", {"prompt_id": prompt_id})
                        interrupted = self._clock()
                else:
                    entry = await self._read_history(server, job)
                    if entry is not None:
                        events = [e[0] for e in entry.get("status", {}).get("messages", []) if e]
                        log.info("Cancelled prompt %s on %s ended: %s", prompt_id, server.url, events[-1:])
                        return
                    if seen or self._clock() - started > UNSEEN_SECONDS:
                        return  # deleted (or its POST never arrived): nothing of it runs
            except (ProviderError, TypeError, AttributeError) as exc:
                log.debug("Watching cancelled prompt %s on %s: %s", prompt_id, server.url, exc)
            await asyncio.sleep(self._poll_interval)
        log.info("Gave up watching cancelled prompt %s on %s", prompt_id, server.url)

    def _keep(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _log_ignored(workflow: Workflow, request: ProviderRequest) -> None:
    """Say which Advanced settings given for this job the workflow has no mark for: the
    workflow's own values stay there."""
    given = {
        "negative_prompt": bool(request.negative_prompt),
        "seed": request.seed is not None,
        "steps": request.steps is not None,
        "guidance": request.guidance is not None,
        "strength": request.strength is not None and request.kind is JobKind.EDIT,
    }
    ignored = sorted(name for name, present in given.items() if present and name not in workflow.advanced)
    if ignored:
        log.info(
            "ComfyUI workflow %s has no mark for %s; its own values are used",
            workflow.name,
            ", ".join(f"{name} (imgedit:{ADVANCED_MARKS[name]})" for name in ignored),
        )


# -- errors ------------------------------------------------------------------------------------


def _prompt_error(workflow: Workflow) -> Callable[[httpx.Response, str], ProviderError]:
    """A refused ``POST /prompt``: ComfyUI's ``{error: {type, message, details}, node_errors:
    {id: {class_type, errors: [{message, details}]}}}`` as one sentence naming the nodes."""

    def mapped(response: httpx.Response, label: str) -> ProviderError:
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code != 400 or not isinstance(error, dict):
            return error_from_response(response, label)
        head = str(error.get("message") or "invalid workflow").rstrip(".")
        details = str(error.get("details") or "").strip()
        parts = [f"{head}: {details}" if details and not body.get("node_errors") else head]
        nodes = _node_errors(body.get("node_errors"))
        if nodes:
            parts.append(nodes)
        message = "; ".join(parts)
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        code = error.get("type")
        return ProviderRejected(
            f"{label} refused the workflow “{workflow.name}”: {message}",
            status=400,
            code=code if isinstance(code, str) else None,
        )

    return mapped


def _node_errors(node_errors: object) -> str:
    """``node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'x' not in [...]``, joined."""
    if not isinstance(node_errors, dict):
        return ""
    lines = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        what = f"node {node_id} ({entry.get('class_type', '?')})"
        for problem in entry.get("errors") or []:
            if isinstance(problem, dict):
                said = str(problem.get("message") or "invalid")
                details = str(problem.get("details") or "")
                lines.append(f"{what}: {said}: {details}" if details else f"{what}: {said}")
    return "; ".join(lines)


def _execution_error(server: Server, job: _Job, data: Mapping[str, Any]) -> ProviderFailed:
    """A node raised while the prompt ran. Re-running the same graph fails the same way (a
    missing model, a bad input, too little memory for this size), so it is not retried."""
    node = data.get("node_id")
    where = f"node {node} ({data.get('node_type', '?')})" if node is not None else "the workflow"
    said = str(data.get("exception_message") or data.get("exception_type") or "an error").strip()
    if len(said) > MAX_MESSAGE:
        said = said[: MAX_MESSAGE - 1] + "…"
    kind = data.get("exception_type")
    error = ProviderFailed(
        f"{_label(server)} failed in {where} of workflow “{job.workflow.name}”: {said}",
        code=kind if isinstance(kind, str) else None,
    )
    error.retryable = False
    return error


def _interrupted(server: Server, job: _Job) -> ProviderFailed:
    return ProviderFailed(
        f"{_label(server)} interrupted this job (someone stopped it on the server); nothing was kept."
    )


def _no_image(server: Server, job: _Job) -> ProviderFailed:
    node = job.workflow.output_node
    error = ProviderFailed(
        f"{_label(server)} ran workflow “{job.workflow.name}” but its output node {node} "
        f"({job.workflow.class_type(node)}) gave no image."
    )
    error.retryable = False
    return error


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _images(output: object) -> list[dict[str, Any]] | None:
    images = output.get("images") if isinstance(output, dict) else None
    if not isinstance(images, list):
        return None
    found = [image for image in images if isinstance(image, dict) and image.get("filename")]
    return found or None
