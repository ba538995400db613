"""A fake AUTOMATIC1111 WebUI API for loopback tests: it behaves like the real one, minus the GPU.

Like A1111, it runs one job at a time behind a queue lock, keeps one global progress state
(``/sdapi/v1/progress`` shows whatever job runs, whoever sent it), stamps each job with a new
``job_timestamp`` when it starts, keeps sampling after the client hangs up, and on
``/sdapi/v1/interrupt`` stops early and still answers 200 with the partial image.

Test API (all thread-safe; the app runs in the loopback server's thread)::

    fake = FakeWebUI(step_seconds=0.02, auth=("user", "pass"))
    with serve(fake.app()) as url: ...
    fake.pause_at(5)          # sampling stops after step 5 until fake.resume(); fake.paused is set there
    fake.fail_next(2, status=500)             # the next 2 img2img/txt2img requests fail
    fake.fail_next(1, drop=True)              # ... or cut the connection mid-answer
    fake.fail_next(1, status=429, headers={"Retry-After": "3"})   # ... with headers
    fake.fail_next(3, status=500, path=PROGRESS)  # ... or fail progress reads
    foreign = fake.start_foreign_job()        # another user's job holds the server until foreign.finish()
    fake.result_image = big_png               # answer with these bytes (e.g. a 40 MB upscale) after sampling
    fake.jobs, fake.received, fake.interrupts, fake.requests, fake.max_in_flight   # what happened

The fake shares the test's process, so its own big base64 and JSON work (a 30 MB source, a
40 MB answer) is done in slices: one long C call here would hold the GIL and show up as a stall
of the client's event loop that the client did not cause.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import io
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageOps
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

IMG2IMG = "/sdapi/v1/img2img"
TXT2IMG = "/sdapi/v1/txt2img"
PROGRESS = "/sdapi/v1/progress"
INTERRUPT = "/sdapi/v1/interrupt"
WAIT_LIMIT = 30.0  # a gate or foreign job left closed by a broken test ends after this
SLICE = 64 * 1024  # base64 characters per call in the GIL-friendly helpers below
_INIT_IMAGES = re.compile(rb'"init_images"\s*:\s*\[\s*"')


@dataclass
class Failure:
    status: int = 500
    body: str = json.dumps({"error": "RuntimeError", "detail": "", "body": "", "errors": "scripted failure"})
    drop: bool = False
    path: str | None = None
    """``None``: img2img and txt2img; else only requests to this path."""
    headers: dict[str, str] = field(default_factory=dict)
    """e.g. ``{"Retry-After": "3"}`` with a 429, as a proxy or a queue extension in front of A1111 sends."""


@dataclass
class JobRecord:
    kind: str
    timestamp: str
    steps: int
    steps_done: int = 0
    interrupted: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class InterruptRecord:
    at: float
    client: str
    """Who sent it: the client's host:port."""
    job_timestamp: str | None
    """The job running when it came, or ``None`` when the server was idle."""


class ForeignJob:
    """Someone else's job: holds the queue lock and shows its own progress until ``finish()``."""

    def __init__(self, fake: FakeWebUI, steps: int) -> None:
        self.started = threading.Event()
        self.done = threading.Event()
        self._finish = threading.Event()
        self.record: JobRecord | None = None
        self._thread = threading.Thread(target=self._run, args=(fake, steps), daemon=True)
        self._thread.start()

    def _run(self, fake: FakeWebUI, steps: int) -> None:
        with fake.queue_lock:
            self.record = fake._begin("txt2img", steps)
            fake._set_step(1, None)
            self.started.set()
            deadline = time.monotonic() + WAIT_LIMIT
            while not self._finish.wait(0.01) and not fake._interrupted and time.monotonic() < deadline:
                pass
            self.record.steps_done = 1
            self.record.interrupted = fake._interrupted
            fake._end(self.record)
        self.done.set()

    def finish(self) -> None:
        self._finish.set()


class FakeWebUI:
    """State of one fake server; ``app()`` serves it."""

    def __init__(self, *, step_seconds: float = 0.02, auth: tuple[str, str] | None = None) -> None:
        self.step_seconds = step_seconds
        self.auth = auth
        self.queue_lock = threading.Lock()
        self._lock = threading.Lock()  # guards everything below; held only briefly
        # The global state A1111 keeps in shared.state.
        self._job = ""
        self._job_count = 0
        self._job_timestamp = "0"
        self._step = 0
        self._steps = 0
        self._time_start = 0.0
        self._interrupted = False
        self._current_image: bytes | None = None
        # What tests configure and inspect.
        self.gate = threading.Event()
        self.gate.set()
        self.result_image: bytes | None = None
        self.pause_step: int | None = None
        self.paused = threading.Event()
        self.failures: deque[Failure] = deque()
        self.requests: list[tuple[str, str]] = []
        self.received: list[dict[str, Any]] = []
        self.jobs: list[JobRecord] = []
        self.interrupts: list[InterruptRecord] = []
        self.auth_users: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    # -- test API ----------------------------------------------------------------------------

    def pause_at(self, step: int) -> None:
        self.pause_step, self.paused = step, threading.Event()
        self.gate.clear()

    def resume(self) -> None:
        self.gate.set()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        body: Any = None,
        drop: bool = False,
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        text = Failure.body if body is None else body if isinstance(body, str) else json.dumps(body)
        with self._lock:
            self.failures.extend(Failure(status, text, drop, path, dict(headers or {})) for _ in range(count))

    def start_foreign_job(self, steps: int = 20) -> ForeignJob:
        return ForeignJob(self, steps)

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self.failures)

    @property
    def work_requests(self) -> int:
        with self._lock:
            return sum(1 for _, path in self.requests if path in (IMG2IMG, TXT2IMG))

    def idle(self) -> bool:
        with self._lock:
            return self.in_flight == 0 and self._job_count == 0

    # -- the global state --------------------------------------------------------------------

    def _begin(self, kind: str, steps: int) -> JobRecord:
        with self._lock:
            # A1111 stamps with the second; kept unique here so back-to-back tests never collide.
            now = int(datetime.datetime.now().strftime("%Y%m%d%H%M%S"))
            self._job_timestamp = str(max(now, int(self._job_timestamp) + 1))
            self._job, self._job_count, self._step, self._steps = f"scripts_{kind}", 1, 0, steps
            self._time_start, self._interrupted, self._current_image = time.time(), False, None
            record = JobRecord(kind=kind, timestamp=self._job_timestamp, steps=steps)
            self.jobs.append(record)
            return record

    def _set_step(self, step: int, preview: bytes | None) -> None:
        with self._lock:
            self._step = step
            if preview is not None:
                self._current_image = preview

    def _end(self, record: JobRecord) -> None:
        with self._lock:
            self._job, self._job_count, self._current_image = "", 0, None
        record.finished.set()

    def _progress(self, skip_image: bool) -> dict[str, Any]:
        with self._lock:
            state = {
                "skipped": False,
                "interrupted": self._interrupted,
                "job": self._job,
                "job_count": self._job_count,
                "job_timestamp": self._job_timestamp,
                "job_no": 0,
                "sampling_step": self._step,
                "sampling_steps": self._steps,
            }
            if self._job_count == 0:
                return {
                    "progress": 0,
                    "eta_relative": 0,
                    "state": state,
                    "current_image": None,
                    "textinfo": None,
                }
            progress = 0.01 + (self._step / self._steps if self._steps else 0.0)
            elapsed = time.time() - self._time_start
            image = None
            if self._current_image is not None and not skip_image:
                image = base64.b64encode(self._current_image).decode()
        return {
            "progress": min(progress, 1.0),
            "eta_relative": elapsed / progress - elapsed,
            "state": state,
            "current_image": image,
            "textinfo": None,
        }

    # -- sampling (in a worker thread, like A1111's) -----------------------------------------

    def _sample(
        self, kind: str, payload: dict[str, Any], init: Image.Image | None
    ) -> tuple[bytes, JobRecord]:
        size = (payload["width"], payload["height"])
        if init is not None:
            target = ImageOps.invert(init.convert("RGB").resize(size))
        else:
            target = _prompt_picture(payload.get("prompt", ""), size)
        with self.queue_lock:
            record = self._begin(kind, payload["steps"])
            try:
                for step in range(1, record.steps + 1):
                    if self._interrupted:
                        break
                    time.sleep(self.step_seconds)  # the "denoising"
                    self._set_step(
                        step, _png(_blurred(target, step / record.steps)) if step % 2 == 0 else None
                    )
                    record.steps_done = step
                    if step == self.pause_step:
                        self.paused.set()
                        deadline = time.monotonic() + WAIT_LIMIT
                        while (
                            not self.gate.wait(0.01) and not self._interrupted and time.monotonic() < deadline
                        ):
                            pass
                record.interrupted = self._interrupted
                if self.result_image is not None:
                    return self.result_image, record
                return _png(_blurred(target, record.steps_done / record.steps)), record
            finally:
                self._end(record)

    # -- HTTP --------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(IMG2IMG, self._work, methods=["POST"]),
                Route(TXT2IMG, self._work, methods=["POST"]),
                Route(PROGRESS, self._progress_endpoint, methods=["GET"]),
                Route(INTERRUPT, self._interrupt_endpoint, methods=["POST"]),
            ]
        )

    def _admit(self, request: Request) -> Response | None:
        """Record the request; answer it here if auth or a scripted failure says so."""
        path = request.url.path
        with self._lock:
            self.requests.append((request.method, path))
        if self.auth is not None:
            user = _basic_user(request.headers.get("authorization", ""), self.auth)
            if user is None:
                return JSONResponse(
                    {"detail": "Incorrect credentials"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Basic"},
                )
            with self._lock:
                self.auth_users.append(user)
        with self._lock:
            failure = next(
                (
                    f
                    for f in self.failures
                    if f.path == path or (f.path is None and path in (IMG2IMG, TXT2IMG))
                ),
                None,
            )
            if failure is not None:
                self.failures.remove(failure)
        if failure is None:
            return None
        if failure.drop:
            return _Dropped()  # type: ignore[return-value]
        return Response(
            failure.body, status_code=failure.status, media_type="application/json", headers=failure.headers
        )

    async def _work(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        kind = "img2img" if request.url.path == IMG2IMG else "txt2img"
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                payload = await asyncio.to_thread(_loads, await request.body())
            except ValueError:
                return JSONResponse({"detail": "body is not JSON"}, status_code=422)
            with self._lock:
                self.received.append(payload)
            problem, init = _validate(kind, payload)
            if problem:
                return JSONResponse({"detail": problem}, status_code=422)
            image, record = await asyncio.to_thread(self._sample, kind, payload, init)
        finally:
            with self._lock:
                self.in_flight -= 1
        parameters = {**payload, "init_images": None}
        info = {"seed": 1234 if payload.get("seed", -1) == -1 else payload["seed"], "steps": record.steps}
        info |= {"sampler_name": payload.get("sampler_name") or "Euler", "interrupted": record.interrupted}
        rest = {"parameters": parameters, "info": json.dumps(info)}
        return Response(await asyncio.to_thread(_answer_body, image, rest), media_type="application/json")

    async def _progress_endpoint(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        skip = request.query_params.get("skip_current_image", "false").lower() == "true"
        return JSONResponse(self._progress(skip))

    async def _interrupt_endpoint(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        with self._lock:
            running = self._job_timestamp if self._job_count else None
            who = f"{request.client.host}:{request.client.port}" if request.client else "?"
            self.interrupts.append(InterruptRecord(at=time.monotonic(), client=who, job_timestamp=running))
            self._interrupted = True
        return JSONResponse({})


class _Dropped:
    """Starts a 200 answer, then cuts the connection: the client sees it break off mid-body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"images": ["iVBO', "more_body": True})
        raise ConnectionAbortedError("scripted connection drop")


def _validate(kind: str, payload: Any) -> tuple[str | None, Image.Image | None]:
    if not isinstance(payload, dict):
        return "body must be an object", None
    for key in ("steps", "width", "height"):
        if not isinstance(payload.get(key), int) or payload[key] <= 0:
            return f"{key} must be a positive integer", None
    if payload["width"] % 8 or payload["height"] % 8:
        return "width and height must be multiples of 8", None
    if kind == "txt2img":
        return None, None
    images = payload.get("init_images")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str | bytes):
        return "init_images must hold one base64 image", None
    try:
        image = Image.open(io.BytesIO(_b64decode(images[0])))
        image.load()
    except (binascii.Error, ValueError, OSError) as exc:
        return f"Invalid encoded image: {exc}", None
    return None, image


def _loads(body: bytes) -> Any:
    """``json.loads(body)``, with a large ``init_images`` string taken out and decoded in slices."""
    start = _INIT_IMAGES.search(body)
    end = body.find(b'"', start.end()) if start else -1
    if start is None or end < 0 or body.find(b"\\", start.end(), end) >= 0:
        return json.loads(body)
    payload = json.loads(body[: start.end()] + body[end:])
    text = body[start.end() : end]  # kept as ASCII bytes: a str of 40 MB is one more long copy
    if isinstance(payload, dict) and isinstance(payload.get("init_images"), list) and payload["init_images"]:
        payload["init_images"][0] = text
    return payload


def _b64decode(text: str | bytes) -> bytes:
    if len(text) % 4:
        raise binascii.Error("Incorrect padding")
    return b"".join(
        base64.b64decode(text[at : at + SLICE], validate=True) for at in range(0, len(text), SLICE)
    )


def _answer_body(image: bytes, rest: dict[str, Any]) -> bytes:
    """``json.dumps({"images": [base64 of image], **rest})``, in slices (base64 needs no escaping)."""
    step = SLICE // 4 * 3
    parts = [b'{"images": ["']
    parts += (base64.b64encode(image[at : at + step]) for at in range(0, len(image), step))
    parts.append(b'"], ' + json.dumps(rest).encode()[1:])
    return b"".join(parts)


def _basic_user(header: str, auth: tuple[str, str]) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if (user, password) == auth else None


def _prompt_picture(prompt: str, size: tuple[int, int]) -> Image.Image:
    """A picture in the first colour the prompt names, with a white disc so blur is visible."""
    colour = next((w for w in prompt.lower().split() if w in ImageColor.colormap), "gray")
    image = Image.new("RGB", size, ImageColor.getrgb(colour))
    radius, cx, cy = min(size) // 4, size[0] // 2, size[1] // 2
    ImageDraw.Draw(image).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 255, 255))
    return image


def _blurred(image: Image.Image, done: float) -> Image.Image:
    radius = 16.0 * (1.0 - done)
    return image.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
