"""A fake ComfyUI 0.3.x server on loopback that speaks its wire protocol, for provider tests.

Modelled on ComfyUI's ``server.py`` (routes, ``send``/``send_json``/``send_bytes`` to one client
id or all, ``encode_bytes``: a 4-byte big-endian event type before the payload), ``execution.py``
(``validate_prompt`` errors, ``execute_async``'s messages and their order, the history entry
written by ``task_done`` before ``executing {node: null}``), ``main.py`` (``prompt_worker``, the
progress hook that sends ``progress`` and the legacy type-1 preview) and
``comfy_execution/progress.py`` (``progress_state``, type-4 previews with a JSON header naming
the prompt for clients that sent the ``supports_preview_metadata`` feature flag).

It runs aiohttp.web (as ComfyUI does) in its own thread and event loop. The "model" is Pillow:
LoadImage reads the uploaded file, KSampler paints an image from the seed (tinting the source
for an edit), SaveImage writes a real PNG that ``/view`` serves.

Masks as in ``nodes.py`` and ``comfy_extras/nodes_mask.py`` (a MASK is an 'L' image here, 255 =
1.0): LoadImageMask reads one channel of the uploaded file, "alpha" giving ``1 - alpha`` (a
transparent pixel is 1, to change), LoadImage's second output is ``1 - alpha`` too (all 0 without
alpha); SetLatentNoiseMask puts the mask on the latent, and KSampler then changes only where it
is set (the sampler keeps the rest of the latent); VAEEncodeForInpaint greys the masked pixels and
grows the noise mask; ImageCompositeMasked pastes ``source`` over ``destination`` through the mask.
``mask_loads`` keeps each mask a LoadImageMask read, for tests to look at.

Batches as in ``nodes.py`` and ``comfy_extras``: an IMAGE is a list of pictures (a batch), a
latent carries one per batch item. EmptyLatentImage's ``batch_size`` and RepeatLatentBatch's
``amount`` make latent batches, RepeatImageBatch's ``amount`` an image batch; KSampler draws item i
in the seed's colour with its blue channel shifted by 60 × i (one seed for the batch, as
ComfyUI's noise is one tensor); ImageCompositeMasked repeats or cuts ``source`` to
``destination``'s batch size (``comfy.utils.repeat_to_batch_size``: a batch composited onto a
single image comes out single); SaveImage saves every item, listing them in order.

Behaviours seen on a live ComfyUI 0.3.64 that it reproduces:
- only nodes in ``progress_nodes`` (KSampler) send ``progress``; the others only ``executing``
  and ``progress_state`` at their boundaries;
- an interrupt lands at the sampler's next step, or else at the next node's start; the
  interrupt flag is cleared when a prompt starts (so an interrupt sent just before is lost);
- nodes whose inputs are unchanged since an earlier prompt are cached: listed in
  ``execution_cached``, no ``executing`` for them;
- a reconnect with the same clientId first gets ``executing {node}`` without a prompt_id;
  nothing missed is replayed; a socket's handler forgets its client id when it ends, even if a
  newer socket took that id (``forget_clients()`` shows the effect);
- ``stop_short=True``: the progress bar stops at (max-1)/max;
- ``fail_node``: a runtime failure arrives as ``execution_error`` after a 200 from /prompt;
- a body that is not JSON gets aiohttp's plain-text 500;
- ``/interrupt {prompt_id}`` for a prompt that is not running does nothing and answers 200.

Test controls (safe to call from the test's thread): ``hold(after_steps=0)`` / ``release()``
stop and restart the worker at a sampler step; ``hold_posts()`` keeps ``POST /prompt`` in flight;
``hold_starts()`` keeps a prompt between "running" in /queue and its start (which clears the
interrupt flag); ``drop_clients(refuse=...)`` closes every websocket (and refuses new ones until
``accept_clients()``); ``forget_clients()`` forgets client ids behind open sockets. To look at:
``held``, ``starting``, ``history``, ``prompts``, ``uploads``, ``interrupts``, ``deletes``,
``connections``, ``notices``, ``preview_kinds``, ``pending_ids()``, ``status_of()``,
``messages_of()``.

Widget values are checked as ``validate_inputs`` does (``INPUT_TYPES``: KSampler's seed, steps,
cfg and denoise, CLIPTextEncode's text); ``prompts`` keeps each graph as it arrived.

Usage::

    fake = FakeComfyUI()
    with serve_comfyui(fake) as base_url:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import json
import struct
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image, ImageFilter, ImageOps

from tests.loopback import free_port

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
MASK_CHANNELS = ("alpha", "red", "green", "blue")
OUTPUT_NODES = frozenset({"SaveImage", "PreviewImage"})
REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text", "clip"),
    "LoadImage": ("image",),
    "LoadImageMask": ("image", "channel"),
    "SetLatentNoiseMask": ("samples", "mask"),
    "VAEEncodeForInpaint": ("pixels", "vae", "mask", "grow_mask_by"),
    "ImageCompositeMasked": ("destination", "source", "x", "y", "resize_source"),
    "VAEEncode": ("pixels", "vae"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "RepeatLatentBatch": ("samples", "amount"),
    "RepeatImageBatch": ("image", "amount"),
    "KSampler": (
        "model",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "denoise",
    ),
    "VAEDecode": ("samples", "vae"),
    "SaveImage": ("images", "filename_prefix"),
    "PreviewImage": ("images",),
    "ImageBlur": ("image", "blur_radius", "sigma"),
}


INPUT_TYPES: dict[str, dict[str, tuple[str, float | None, float | None]]] = {
    "KSampler": {
        "seed": ("INT", 0, 0xFFFFFFFFFFFFFFFF),
        "steps": ("INT", 1, 10000),
        "cfg": ("FLOAT", 0.0, 100.0),
        "denoise": ("FLOAT", 0.0, 1.0),
    },
    "CLIPTextEncode": {"text": ("STRING", None, None)},
    "EmptyLatentImage": {"batch_size": ("INT", 1, 4096)},
    "RepeatLatentBatch": {"amount": ("INT", 1, 64)},
    "RepeatImageBatch": {"amount": ("INT", 1, 4096)},
}
"""Typed widget inputs as nodes.py declares them (type, min, max), checked as
``execution.validate_inputs`` does: converted with int()/float()/str(), then held to the range."""


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException."""


class NodeFailed(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class FakeComfyUI:
    root: Path | None = None
    """Folder for input/, output/ and temp/; a fresh temporary one when None."""
    checkpoints: tuple[str, ...] = (CHECKPOINT,)
    step_seconds: float = 0.0
    """How long one sampler step takes (the fake's own pace, like a GPU's)."""
    progress_nodes: frozenset[str] = frozenset({"KSampler"})
    stop_short: bool = False
    fail_node: str | None = None
    """A class_type that raises at run time (``fail_message``) after /prompt answered 200."""
    fail_message: str = "Allocation on device 0 would exceed allowed memory. (out of memory)"
    fail_type: str = "torch.OutOfMemoryError"
    preview_metadata: bool = True
    """Whether the server offers ``supports_preview_metadata`` (0.3.4x and later do)."""
    preview_format: str = "JPEG"

    # what a test looks at
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupts: list[str | None] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    mask_loads: list[tuple[str, Image.Image]] = field(default_factory=list)
    """(file name, MASK as 'L') of every LoadImageMask run."""
    preview_kinds: list[int] = field(default_factory=list)
    """The binary event type of every preview sent (1, or 4 with its JSON header)."""
    connections: list[str] = field(default_factory=list)
    """The clientId of every websocket opened, in order."""
    notices: list[str] = field(default_factory=list)
    """Clients told ``executing {node}`` without a prompt_id on reconnecting."""
    running_id: str | None = None
    held: str | None = None
    """The prompt the worker is holding at a sampler step (after ``hold()``), else None."""

    def __post_init__(self) -> None:
        if self.root is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="fake-comfyui-")
            self.root = Path(self._tmp.name)
        self.dirs = {name: self.root / name for name in ("input", "output", "temp")}
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.number = 0
        self._queue: list[tuple[float, int, tuple[Any, ...]]] = []
        self._running_item: tuple[Any, ...] = ()
        self._counter = 0
        self._cache: dict[str, Any] = {}
        self._interrupt = False
        self._refuse = False
        self._holding = False
        self._hold_after: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._gate: asyncio.Event | None = None
        self._posts: asyncio.Event | None = None
        self._starts: asyncio.Event | None = None
        self.starting: str | None = None
        self.posts_waiting = 0
        self._gone: dict[str, tuple[web.WebSocketResponse, asyncio.Event]] = {}
        self._worker: asyncio.Task[None] | None = None
        self._save_counter = 0

    # -- test controls (any thread) ---------------------------------------------------------

    def hold(self, after_steps: int = 0) -> None:
        """Stop the worker at the sampler's next step (or once a sampler has reported
        ``after_steps`` steps) until ``release()``."""
        if after_steps:
            self._hold_after = after_steps
            return
        self._holding = True
        self._in_loop(lambda: self._gate.clear() if self._gate else None)

    def release(self) -> None:
        self._holding = False
        self._hold_after = None
        self._in_loop(lambda: self._gate.set() if self._gate else None)

    def drop_clients(self, *, refuse: bool = False) -> None:
        """Close every websocket, as a network cut or a proxy restart would."""
        self._refuse = refuse

        async def close_all() -> None:
            for sid, ws in list(self.sockets.items()):
                # A new socket with this id waits until this one's handler has ended: its
                # unconditional pop would otherwise forget the new one (see forget_clients).
                self._gone[sid] = (ws, asyncio.Event())
                await ws.close()

        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=10)

    def hold_posts(self) -> None:
        """Keep each ``POST /prompt`` from being checked and queued until ``release_posts()``
        (a server slow to validate: the client's POST is in flight meanwhile)."""
        self._in_loop(lambda: self._posts.clear() if self._posts else None)

    def release_posts(self) -> None:
        self._in_loop(lambda: self._posts.set() if self._posts else None)

    def hold_starts(self) -> None:
        """Stop the worker between taking a prompt off the queue (it is "running" in /queue) and
        starting it (which clears the interrupt flag), until ``release_starts()``."""
        self._in_loop(lambda: self._starts.clear() if self._starts else None)

    def release_starts(self) -> None:
        self._in_loop(lambda: self._starts.set() if self._starts else None)

    def forget_clients(self) -> None:
        """Forget every client id while its socket stays open, as ComfyUI does when an older
        socket with the same id closes late (its handler pops the id unconditionally): the
        socket looks alive but hears nothing more."""
        self._in_loop(self.sockets.clear)

    def accept_clients(self) -> None:
        self._refuse = False

    def pending_ids(self) -> list[str]:
        return [item[1] for _, _, item in sorted(self._queue)]

    def status_of(self, prompt_id: str) -> str | None:
        entry = self.history.get(prompt_id)
        return entry["status"]["status_str"] if entry else None

    def messages_of(self, prompt_id: str) -> list[str]:
        entry = self.history.get(prompt_id)
        return [event for event, _ in entry["status"]["messages"]] if entry else []

    def _in_loop(self, action: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(action)

    # -- the app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/upload/image", self._upload)
        app.router.add_post("/prompt", self._post_prompt)
        app.router.add_get("/queue", self._get_queue)
        app.router.add_post("/queue", self._post_queue)
        app.router.add_post("/interrupt", self._post_interrupt)
        app.router.add_get("/history/{prompt_id}", self._get_history)
        app.router.add_get("/view", self._view)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._gate = asyncio.Event()
        self._posts = asyncio.Event()
        self._posts.set()
        self._starts = asyncio.Event()
        self._starts.set()
        if not self._holding:
            self._gate.set()
        self._worker = asyncio.create_task(self._prompt_worker())

    async def _shutdown(self, app: web.Application) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for ws in list(self.sockets.values()):
            await ws.close()

    # -- sending (server.py) ----------------------------------------------------------------

    async def send_json(self, event: str, data: Any, sid: str | None) -> None:
        message = {"type": event, "data": data}
        targets = (
            list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        )
        for ws in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(message)

    async def send_bytes(self, event: int, data: bytes, sid: str | None) -> None:
        message = struct.pack(">I", event) + data  # encode_bytes
        targets = (
            list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        )
        for ws in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(message)

    async def _send_preview(self, image: Image.Image, prompt_id: str, node_id: str, sid: str | None) -> None:
        image = ImageOps.contain(image, (512, 512))
        buffer = io.BytesIO()
        image.save(buffer, format=self.preview_format, quality=95, compress_level=1)
        wants_metadata = (
            self.preview_metadata
            and sid is not None
            and bool(self.flags.get(sid, {}).get("supports_preview_metadata"))
        )
        self.preview_kinds.append(PREVIEW_IMAGE_WITH_METADATA if wants_metadata else PREVIEW_IMAGE)
        if wants_metadata:
            mimetype = "image/png" if self.preview_format == "PNG" else "image/jpeg"
            metadata = {
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": mimetype,
            }
            header = json.dumps(metadata).encode()
            await self.send_bytes(
                PREVIEW_IMAGE_WITH_METADATA, struct.pack(">I", len(header)) + header + buffer.getvalue(), sid
            )
        else:
            kind = 2 if self.preview_format == "PNG" else 1
            await self.send_bytes(PREVIEW_IMAGE, struct.pack(">I", kind) + buffer.getvalue(), sid)

    def _queue_info(self) -> dict[str, Any]:
        remaining = len(self._queue) + (1 if self.running_id else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    async def _queue_updated(self) -> None:
        await self.send_json("status", {"status": self._queue_info()}, None)

    # -- routes -----------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self._refuse:
            return web.Response(status=503, text="not now")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        if sid in self._gone:
            await self._gone[sid][1].wait()
        self.sockets[sid] = ws
        self.flags[sid] = {}
        self.connections.append(sid)
        try:
            await self.send_json("status", {"status": self._queue_info(), "sid": sid}, sid)
            if self.client_id == sid and self.last_node_id is not None:
                await self.send_json("executing", {"node": self.last_node_id}, sid)
                self.notices.append(sid)
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    with contextlib.suppress(ValueError):
                        data = json.loads(msg.data)
                        if first and data.get("type") == "feature_flags":
                            self.flags[sid] = dict(data.get("data") or {})
                            await self.send_json(
                                "feature_flags",
                                {
                                    "supports_preview_metadata": self.preview_metadata,
                                    "max_upload_size": 104857600,
                                },
                                sid,
                            )
                    first = False
        finally:
            # As ComfyUI: popped even if a newer socket has taken the id meanwhile.
            self.sockets.pop(sid, None)
            self.flags.pop(sid, None)
            gone = self._gone.get(sid)
            if gone is not None and gone[0] is ws:
                del self._gone[sid]
                gone[1].set()
        return ws

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        folder_type = str(post.get("type") or "input")
        if folder_type not in self.dirs:
            folder_type = "input"
        subfolder = str(post.get("subfolder") or "")
        folder = self.dirs[folder_type] / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        filename = image.filename
        data = image.file.read()
        path = folder / filename
        if str(post.get("overwrite")) not in ("true", "1"):
            i = 1
            stem, suffix = Path(filename).stem, Path(filename).suffix
            while path.exists() and path.read_bytes() != data:
                filename = f"{stem} ({i}){suffix}"
                path = folder / filename
                i += 1
        path.write_bytes(data)
        self.uploads.append(filename)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": folder_type})

    async def _post_prompt(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()  # not JSON: aiohttp answers a plain-text 500, as ComfyUI does
        assert self._posts is not None
        if not self._posts.is_set():
            self.posts_waiting += 1
            await self._posts.wait()
            self.posts_waiting -= 1
        number = self.number
        self.number += 1
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        error, outputs, node_errors = self._validate(prompt)
        extra_data = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if error is not None:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        self.prompts.append({"prompt_id": prompt_id, "prompt": prompt, "client_id": body.get("client_id")})
        self._counter += 1
        heapq.heappush(self._queue, (number, self._counter, (number, prompt_id, prompt, extra_data, outputs)))
        assert self._wake is not None
        self._wake.set()
        await self._queue_updated()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def _get_queue(self, request: web.Request) -> web.StreamResponse:
        running = [list(self._running_item)] if self.running_id else []
        pending = [list(item) for _, _, item in sorted(self._queue)]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def _post_queue(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("clear"):
            self._queue.clear()
        for prompt_id in body.get("delete", []):
            self.deletes.append(prompt_id)
            self._queue = [entry for entry in self._queue if entry[2][1] != prompt_id]
            heapq.heapify(self._queue)
        await self._queue_updated()
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        prompt_id = body.get("prompt_id")
        self.interrupts.append(prompt_id)
        if not prompt_id or prompt_id == self.running_id:
            self._interrupt = True
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.StreamResponse:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def _view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        filename = query.get("filename", "")
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        folder = self.dirs.get(query.get("type", "output"))
        if folder is None:
            return web.Response(status=400)
        path = folder / query.get("subfolder", "") / filename
        if not path.is_file():
            return web.Response(status=404)
        return web.Response(body=path.read_bytes(), content_type="image/png")

    # -- validation (execution.validate_prompt) ---------------------------------------------

    def _validate(self, prompt: Any) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
        if not isinstance(prompt, dict):
            return _error("invalid_prompt", "Cannot execute because the prompt is not an object.", ""), [], {}
        outputs = []
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return (
                    _error(
                        "invalid_prompt",
                        "Cannot execute because a node is missing the class_type property.",
                        f"Node ID '#{node_id}'",
                    ),
                    [],
                    {},
                )
            if node["class_type"] not in REQUIRED_INPUTS:
                return (
                    _error(
                        "invalid_prompt",
                        f"Cannot execute because node {node['class_type']} does not exist.",
                        f"Node ID '#{node_id}'",
                    ),
                    [],
                    {},
                )
            if node["class_type"] in OUTPUT_NODES:
                outputs.append(node_id)
        if not outputs:
            return _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
        node_errors: dict[str, Any] = {}
        good = []
        for output in outputs:
            bad = False
            for node_id in self._needed(prompt, output):
                reasons = self._check_node(prompt, node_id)
                if reasons:
                    bad = True
                    entry = node_errors.setdefault(
                        node_id,
                        {
                            "errors": reasons,
                            "dependent_outputs": [],
                            "class_type": prompt[node_id]["class_type"],
                        },
                    )
                    entry["dependent_outputs"].append(output)
            if not bad:
                good.append(output)
        if not good:
            return (
                _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", ""),
                [],
                node_errors,
            )
        return None, good, node_errors

    def _needed(self, prompt: dict[str, Any], output: str) -> list[str]:
        """Nodes ``output`` depends on, dependencies first (ExecutionList's order)."""
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order or node_id not in prompt:
                return
            for value in prompt[node_id].get("inputs", {}).values():
                if _is_link(value):
                    visit(str(value[0]))
            order.append(node_id)

        visit(output)
        return order

    def _check_node(self, prompt: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
        node = prompt[node_id]
        inputs = node.get("inputs", {})
        reasons = []
        for name in REQUIRED_INPUTS[node["class_type"]]:
            if name not in inputs or (_is_link(inputs[name]) and str(inputs[name][0]) not in prompt):
                reasons.append(
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": name,
                        "extra_info": {"input_name": name},
                    }
                )
        ckpt = inputs.get("ckpt_name")
        if (
            node["class_type"] == "CheckpointLoaderSimple"
            and ckpt is not None
            and ckpt not in self.checkpoints
        ):
            reasons.append(
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"ckpt_name: '{ckpt}' not in {list(self.checkpoints)}",
                    "extra_info": {"input_name": "ckpt_name", "received_value": ckpt},
                }
            )
        channel = inputs.get("channel")
        if node["class_type"] == "LoadImageMask" and channel is not None and channel not in MASK_CHANNELS:
            reasons.append(
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"channel: '{channel}' not in {list(MASK_CHANNELS)}",
                    "extra_info": {"input_name": "channel", "received_value": channel},
                }
            )
        image = inputs.get("image")
        if (
            node["class_type"] in ("LoadImage", "LoadImageMask")
            and isinstance(image, str)
            and not (self.dirs["input"] / image).is_file()
        ):
            reasons.append(
                {
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": f"image - Invalid image file: {inputs['image']}",
                    "extra_info": {},
                }
            )
        for name, (kind, low, high) in INPUT_TYPES.get(node["class_type"], {}).items():
            if name in inputs and not _is_link(inputs[name]):
                reasons.extend(_check_value(name, inputs[name], kind, low, high))
        return reasons

    # -- the worker (main.prompt_worker, execution.PromptExecutor) --------------------------

    async def _prompt_worker(self) -> None:
        assert self._wake is not None
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            _, _, item = heapq.heappop(self._queue)
            self._running_item = item
            self.running_id = item[1]
            assert self._starts is not None
            if not self._starts.is_set():
                self.starting = item[1]
                await self._starts.wait()
                self.starting = None
            messages, outputs, success = await self._execute(item)
            self.history[item[1]] = {
                "prompt": list(item),
                "outputs": outputs,
                "status": {
                    "status_str": "success" if success else "error",
                    "completed": success,
                    "messages": messages,
                },
                "meta": {
                    node: {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
                    for node in outputs
                },
            }
            self.running_id = None
            await self._queue_updated()
            if self.client_id is not None:
                await self.send_json("executing", {"node": None, "prompt_id": item[1]}, self.client_id)

    async def _execute(self, item: tuple[Any, ...]) -> tuple[list[Any], dict[str, Any], bool]:
        _, prompt_id, prompt, extra_data, outputs = item
        self._interrupt = False  # nodes.interrupt_processing(False): an earlier interrupt is lost
        self.client_id = extra_data.get("client_id")
        sid = self.client_id
        messages: list[Any] = []

        async def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": int(time.time() * 1000)}
            messages.append([event, data])
            if sid is not None or broadcast:
                await self.send_json(event, data, sid)

        await add_message("execution_start", {"prompt_id": prompt_id}, False)
        order: list[str] = []
        for output in outputs:
            order += [n for n in self._needed(prompt, output) if n not in order]
        signatures = {node_id: self._signature(prompt, node_id) for node_id in order}
        cached = [node_id for node_id in order if signatures[node_id] in self._cache]
        await add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, False)
        values: dict[str, Any] = {}
        ui: dict[str, Any] = {}
        states: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        success = True
        for node_id in order:
            class_type = prompt[node_id]["class_type"]
            if node_id in cached:
                result, output_ui = self._cache[signatures[node_id]]
                values[node_id] = result
                if output_ui is not None:
                    ui[node_id] = output_ui
                    if sid is not None:
                        await self.send_json(
                            "executed",
                            {
                                "node": node_id,
                                "display_node": node_id,
                                "output": output_ui,
                                "prompt_id": prompt_id,
                            },
                            sid,
                        )
                continue
            states[node_id] = {
                "value": 0,
                "max": 1,
                "state": "running",
                "node_id": node_id,
                "prompt_id": prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            await self.send_json("progress_state", {"prompt_id": prompt_id, "nodes": states}, sid)
            if sid is not None:
                self.last_node_id = node_id
                await self.send_json(
                    "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid
                )
            try:
                if self._interrupt:
                    raise Interrupted()
                if class_type == self.fail_node:
                    raise NodeFailed(self.fail_message, self.fail_type)
                inputs = {
                    name: values[str(value[0])][int(value[1])] if _is_link(value) else value
                    for name, value in prompt[node_id]["inputs"].items()
                }
                result, output_ui = await self._run_node(class_type, inputs, prompt_id, node_id, states, sid)
            except Interrupted:
                await add_message(
                    "execution_interrupted",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": executed,
                    },
                    True,
                )
                success = False
                break
            except NodeFailed as exc:
                await add_message(
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": executed,
                        "exception_message": str(exc),
                        "exception_type": exc.kind,
                        "traceback": traceback.format_stack(limit=2),
                        "current_inputs": {},
                        "current_outputs": list(values),
                    },
                    False,
                )
                success = False
                break
            values[node_id] = result
            self._cache[signatures[node_id]] = (result, output_ui)
            executed.append(node_id)
            states[node_id]["state"] = "finished"
            await self.send_json("progress_state", {"prompt_id": prompt_id, "nodes": states}, sid)
            if output_ui is not None:
                ui[node_id] = output_ui
                if sid is not None:
                    await self.send_json(
                        "executed",
                        {
                            "node": node_id,
                            "display_node": node_id,
                            "output": output_ui,
                            "prompt_id": prompt_id,
                        },
                        sid,
                    )
        else:
            await add_message("execution_success", {"prompt_id": prompt_id}, False)
        self.last_node_id = None
        return messages, ui, success

    def _signature(self, prompt: dict[str, Any], node_id: str) -> str:
        node = prompt[node_id]
        parts = {}
        for name, value in sorted(node["inputs"].items()):
            parts[name] = (
                ["link", self._signature(prompt, str(value[0])), value[1]] if _is_link(value) else value
            )
        if node["class_type"] in ("LoadImage", "LoadImageMask"):  # IS_CHANGED: the file's content
            path = self.dirs["input"] / str(node["inputs"].get("image"))
            parts["hash"] = path.read_bytes().hex()[:64] if path.is_file() else ""
        if node["class_type"] in OUTPUT_NODES:
            parts["run"] = uuid.uuid4().hex  # output nodes are never reused across prompts here
        return json.dumps([node["class_type"], parts], sort_keys=True, default=str)

    async def _step(
        self,
        value: int,
        total: int,
        prompt_id: str,
        node_id: str,
        states: dict[str, Any],
        sid: str | None,
        preview: Image.Image | None,
    ) -> None:
        """main.hijack_progress's hook: stop if interrupted, report, maybe preview."""
        if self._interrupt:
            raise Interrupted()
        await self.send_json(
            "progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}, sid
        )
        states[node_id].update(value=value, max=total)
        await self.send_json("progress_state", {"prompt_id": prompt_id, "nodes": states}, sid)
        if preview is not None:
            await self._send_preview(preview, prompt_id, node_id, sid)

    async def _run_node(
        self,
        class_type: str,
        inputs: dict[str, Any],
        prompt_id: str,
        node_id: str,
        states: dict[str, Any],
        sid: str | None,
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        if class_type == "CheckpointLoaderSimple":
            return ("MODEL", "CLIP", "VAE"), None
        if class_type == "CLIPTextEncode":
            return (str(inputs["text"]),), None
        if class_type == "LoadImage":
            with Image.open(self.dirs["input"] / inputs["image"]) as opened:
                image = opened.convert("RGB")
                has_alpha = "A" in opened.getbands() or "transparency" in opened.info
                alpha = opened.convert("RGBA").getchannel("A") if has_alpha else None
            mask = ImageOps.invert(alpha) if alpha is not None else Image.new("L", (64, 64), 0)
            return ([image], mask), None
        if class_type == "LoadImageMask":
            with Image.open(self.dirs["input"] / inputs["image"]) as opened:
                rgba = opened.convert("RGBA")
            band = str(inputs["channel"])[0].upper()
            mask = rgba.getchannel(band)
            if band == "A":
                mask = ImageOps.invert(mask)
            self.mask_loads.append((str(inputs["image"]), mask))
            return (mask,), None
        if class_type == "VAEEncode":
            return ({"images": list(inputs["pixels"])},), None
        if class_type == "SetLatentNoiseMask":
            return ({**inputs["samples"], "noise_mask": inputs["mask"]},), None
        if class_type == "VAEEncodeForInpaint":
            batch: list[Image.Image] = inputs["pixels"]
            area = inputs["mask"].resize(batch[0].size).point(lambda v: 255 if v >= 128 else 0)
            grey = Image.new("RGB", batch[0].size, (128, 128, 128))
            greyed = [Image.composite(grey, pixels, area) for pixels in batch]
            grow = int(inputs["grow_mask_by"])
            grown = area.filter(ImageFilter.MaxFilter(grow // 2 * 2 + 1)) if grow > 1 else area
            return ({"images": greyed, "noise_mask": grown},), None
        if class_type == "ImageCompositeMasked":
            destinations: list[Image.Image] = inputs["destination"]
            sources: list[Image.Image] = inputs["source"]
            composites = []
            for index, target in enumerate(destinations):
                destination = target.copy()
                source = sources[index % len(sources)]  # repeat_to_batch_size(source, len(destination))
                if inputs["resize_source"]:
                    source = source.resize(destination.size, Image.Resampling.BILINEAR)
                given = inputs.get("mask")
                mask = given.resize(source.size, Image.Resampling.BILINEAR) if given is not None else None
                destination.paste(source, (int(inputs["x"]), int(inputs["y"])), mask)
                composites.append(destination)
            return (composites,), None
        if class_type == "EmptyLatentImage":
            size = (int(inputs["width"]), int(inputs["height"]))
            return ({"size": size, "batch": int(inputs["batch_size"])},), None
        if class_type == "RepeatLatentBatch":
            latent, amount = inputs["samples"], int(inputs["amount"])
            if "images" in latent:
                return ({**latent, "images": latent["images"] * amount},), None
            return ({**latent, "batch": latent.get("batch", 1) * amount},), None
        if class_type == "RepeatImageBatch":
            return (list(inputs["image"]) * int(inputs["amount"]),), None
        if class_type == "KSampler":
            return (await self._sample(inputs, prompt_id, node_id, states, sid),), None
        if class_type == "VAEDecode":
            return (list(inputs["samples"]["images"]),), None
        if class_type == "ImageBlur":
            return (inputs["image"],), None
        if class_type in OUTPUT_NODES:
            kind = "output" if class_type == "SaveImage" else "temp"
            saved = []
            for picture in inputs["images"]:
                self._save_counter += 1
                filename = f"{inputs.get('filename_prefix', 'ComfyUI')}_{self._save_counter:05}_.png"
                picture.save(self.dirs[kind] / filename, format="PNG")
                saved.append({"filename": filename, "subfolder": "", "type": kind})
            return (), {"images": saved}
        raise NodeFailed(f"unknown node {class_type}", "KeyError")

    async def _sample(
        self, inputs: dict[str, Any], prompt_id: str, node_id: str, states: dict[str, Any], sid: str | None
    ) -> dict[str, Any]:
        seed, steps = int(inputs["seed"]), int(inputs["steps"])
        latent = inputs["latent_image"]
        targets = []
        for index, source in enumerate(latent.get("images") or [None] * latent.get("batch", 1)):
            colour = ((seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160 + 60 * index) % 256)
            if source is not None:
                target = Image.blend(source, Image.new("RGB", source.size, colour), float(inputs["denoise"]))
                noise_mask = latent.get("noise_mask")
                if noise_mask is not None:  # the sampler keeps the latent where the mask is 0
                    target = Image.composite(target, source, noise_mask.resize(source.size))
            else:
                target = Image.new("RGB", latent["size"], colour)
            targets.append(target)
        target = targets[0]
        reported = steps - 1 if self.stop_short else steps
        for step in range(1, steps + 1):
            assert self._gate is not None
            if self._hold_after is not None and step > self._hold_after:
                self._hold_after = None
                self._gate.clear()
            if not self._gate.is_set():
                self.held = prompt_id
                await self._gate.wait()
                self.held = None
            if self.step_seconds:
                await asyncio.sleep(self.step_seconds)
            if step <= reported:
                preview = target.resize((max(1, target.width // 8), max(1, target.height // 8)))
                await self._step(step, steps, prompt_id, node_id, states, sid, preview)
            elif self._interrupt:
                raise Interrupted()
        return {"images": targets}


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
    )


def _check_value(
    name: str, value: Any, kind: str, low: float | None, high: float | None
) -> list[dict[str, Any]]:
    """``validate_inputs`` for one widget value: a value that does not convert is
    ``invalid_input_type``; one outside the node's range ``value_smaller_than_min`` /
    ``value_bigger_than_max``."""
    convert = {"INT": int, "FLOAT": float, "STRING": str}[kind]
    try:
        converted = convert(value)
    except (TypeError, ValueError) as exc:
        return [
            {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {kind} value",
                "details": f"{name}, {value}, {exc}",
                "extra_info": {"input_name": name, "received_value": value},
            }
        ]
    if low is not None and converted < low:
        return [
            {
                "type": "value_smaller_than_min",
                "message": f"Value {converted} smaller than min of {low}",
                "details": name,
                "extra_info": {"input_name": name, "received_value": value},
            }
        ]
    if high is not None and converted > high:
        return [
            {
                "type": "value_bigger_than_max",
                "message": f"Value {converted} bigger than max of {high}",
                "details": name,
                "extra_info": {"input_name": name, "received_value": value},
            }
        ]
    return []


def _error(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


@contextlib.contextmanager
def serve_comfyui(fake: FakeComfyUI, *, startup_timeout: float = 15.0) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 in a thread with its own event loop; yields its base URL."""
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(fake.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name=f"fake-comfyui-{port}", daemon=True)
    thread.start()
    if not started.wait(startup_timeout) or failure:
        raise RuntimeError(f"the fake ComfyUI on port {port} did not start: {failure}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)


StartServer = Callable[..., tuple[FakeComfyUI, str]]
"""Starts one more fake ComfyUI (options as ``FakeComfyUI`` takes them); gives it and its URL."""


@contextlib.contextmanager
def comfy_servers() -> Iterator[StartServer]:
    """Start fake ComfyUI servers on loopback as a test asks; at the end let held prompts go, then
    stop them (a test's ``comfy`` fixture)."""
    fakes: list[FakeComfyUI] = []
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> tuple[FakeComfyUI, str]:
            fake = FakeComfyUI(**options)
            fakes.append(fake)
            return fake, stack.enter_context(serve_comfyui(fake))

        yield start
        for fake in fakes:
            fake.release()
