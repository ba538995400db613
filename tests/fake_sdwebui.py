"""A fake AUTOMATIC1111 WebUI API for loopback tests: it behaves like the real one, minus the GPU.

What it copies from A1111 (modules/api/api.py, modules/progress.py, modules/shared_state.py,
modules/sd_samplers_common.py, as of v1.10):

- One job at a time behind a queue lock granted first come first served (modules/call_queue.py:
  ``queue_lock = fifo_lock.FIFOLock()``). A request's task id
  (``force_task_id``, else ``task(txt2img-XXXXXXX)``) is queued before the lock
  (``add_task_to_queue``), started after ``state.begin()`` (``start_task``) and finished before
  ``state.end()`` (``finish_task``; not on a failure, so a failed task stays "active").
- The answer is encoded *after* the lock is released: the next job may already be running while
  this one's answer is on its way (``hold_answers()`` keeps it there for a test).
- One global state (``/sdapi/v1/progress`` shows whatever job runs, whoever sent it):
  ``job_timestamp`` is ``%Y%m%d%H%M%S`` of ``begin()``, so two jobs begun in the same second carry
  the same stamp; ``begin()`` sets ``job_count = -1`` and ``sampling_step = 0`` but leaves
  ``sampling_steps`` at the previous job's total until sampling starts; ``sampling_step`` is the
  0-based index of the last finished step; ``interrupted`` stays set after the job until the next
  ``begin()``. ``current_task`` in that answer is always ``None`` (A1111 imports it by value).
- ``/internal/progress {id_task, id_live_preview, live_preview}`` follows one task: ``active``,
  ``queued`` (with ``textinfo`` "In queue: 2/3"), ``completed`` (the last 16), progress, eta and a
  live preview as a ``data:`` URI only when it changed since ``id_live_preview``. Absent with
  ``internal_progress=False``, as on a server started with ``--nowebui`` (A1111 and Forge).
- Live previews are decoded only when progress is polled, and only every ``preview_every`` steps
  (A1111's ``show_progress_every_n_steps``, 10 by default there; 2 here so short test jobs show one).
- img2img samples ``int(min(denoising_strength, 0.999) * steps) + 1`` steps (``setup_img2img_steps``
  without ``img2img_fix_steps``); txt2img samples the ``steps`` sent.
- ``negative_prompt`` (str), ``seed`` (int; -1 = random, the answer's ``info.seed`` says 1234),
  ``cfg_scale`` and ``denoising_strength`` (numbers) are checked for their type as FastAPI does
  (a 422) and kept in ``received`` as sent.
- ``/sdapi/v1/interrupt`` sets the global flag: the job stops before its next step and still
  answers 200 with the half-finished image; sampling goes on after the client hangs up.
- Inpainting (modules/processing.py ``StableDiffusionProcessingImg2Img.init``, modules/api/api.py
  ``img2imgapi``): ``mask`` (base64) is decoded before the queue lock (a 500 "Invalid encoded
  image" if it does not decode) and made binary as ``create_binary_mask`` does (an RGBA mask
  with any transparency is read from its *alpha*, opaque = change; any other from its grey level,
  white = change), inverted with ``inpainting_mask_invert``, blurred by ``mask_blur``, stretched
  to width × height (no error for a mask of another size), doubled for the overlay; the
  result is the sample inside that overlay and the (resized) original outside it, as
  ``apply_overlay`` pastes it back. ``inpainting_fill`` other than 1 ("original") starts the
  masked area from a flat fill instead of the original. ``inpaint_full_res`` (A1111's API
  default: true, "only masked") is kept in ``received`` but rendered like the whole picture.
- Batches (modules/processing.py ``process_images_inner``): ``batch_size`` × ``n_iter`` images
  (both integers, default 1, below 1 a 422), sampled together with seeds ``seed``, ``seed + 1``,
  ... (``info.all_seeds``; ``info.seed`` is the first). Image i is image 0 with its green channel
  shifted by 50 × i, so tests tell them apart. With more than one image and ``save_images`` true,
  a grid of them comes first (``opts.return_grid``, on by default; the API sets
  ``do_not_save_grid`` from ``save_images``). ``fake.extra_images = k`` appends k more images after
  the batch, as an extension such as ControlNet appends its detected maps; ``fake.answer_images =
  k`` answers with only the first k (a short answer no real server gives, to test the check).
- Errors: FastAPI's 422 with a list-shaped ``detail``; an image that does not decode is a 500
  ``{"error": "HTTPException", "detail": "Invalid encoded image", "body": "", "errors": ...}``
  raised inside the lock (its task stays queued for ever, as on A1111); 404 as JSON.

Test API (all thread-safe; the app runs in the loopback server's thread)::

    fake = FakeWebUI(step_seconds=0.02, auth=("user", "pass"), now=lambda: FROZEN_DATETIME)
    with serve(fake.app()) as url: ...
    fake.pause_at(5)          # sampling stops after 5 steps until fake.resume(); fake.paused is set there
    fake.pause_at(5, job=2)   # ... only in the third job begun
    fake.pause_at(0)          # ... or after begin(), before sampling sets sampling_steps
    fake.hold_answers()       # answers wait after the lock is released, until fake.release_answers()
    fake.fail_next(2, status=500)             # the next 2 img2img/txt2img requests fail
    fake.fail_next(1, drop=True)              # ... or cut the connection mid-answer
    fake.fail_next(1, status=429, headers={"Retry-After": "3"})   # ... with headers
    fake.fail_next(3, status=500, path=PROGRESS)  # ... or fail progress reads
    foreign = fake.start_foreign_job()        # another user's job holds the server until foreign.finish()
    fake.result_image = big_png               # answer with these bytes (e.g. a 40 MB upscale) after sampling
    fake.jobs, fake.received, fake.interrupts, fake.requests, fake.max_in_flight   # what happened
    fake.progress_queries                     # skip_current_image of each /sdapi/v1/progress read

The fake shares the test's process, so its own big base64 and JSON work (a 30 MB source, a
40 MB answer) is done in slices: one long C call here would hold the GIL and show up as a stall
of the client's event loop that the client did not cause.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import io
import json
import random
import re
import string
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageOps, ImageStat
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

IMG2IMG = "/sdapi/v1/img2img"
TXT2IMG = "/sdapi/v1/txt2img"
PROGRESS = "/sdapi/v1/progress"
INTERRUPT = "/sdapi/v1/interrupt"
TASK_PROGRESS = "/internal/progress"
WAIT_LIMIT = 120.0  # a gate or foreign job left closed by a broken test ends after this (a browser
# test on a loaded 2-core machine can hold a pause for over 30 s on purpose)
SLICE = 64 * 1024  # base64 characters per call in the GIL-friendly helpers below
FINISHED_KEPT = 16  # modules/progress.py keeps the last 16 finished task ids
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
    """Steps sampled in full: ``steps``, or for img2img ``int(steps × denoising) + 1``."""
    task_id: str = ""
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
    task: str | None = None
    """The task id running when it came (``None`` when idle or for a job without one)."""


class _ApiError(Exception):
    """An answer A1111's exception middleware would give: ``status`` with ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status, self.body = status, body


class FifoLock:
    """A lock granted in the order it was asked for: the server's job queue (A1111's FIFOLock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tickets: deque[object] = deque()
        self._held = False

    def acquire(self) -> None:
        ticket = object()
        with self._cond:
            self._tickets.append(ticket)
            while self._held or self._tickets[0] is not ticket:
                self._cond.wait()
            self._tickets.popleft()
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self) -> FifoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ForeignJob:
    """Someone else's job started from the WebUI's own page (no API task id of ours): holds the
    queue lock and shows its own progress until ``finish()`` or an interrupt."""

    def __init__(self, fake: FakeWebUI, steps: int) -> None:
        self.started = threading.Event()
        self.done = threading.Event()
        self._finish = threading.Event()
        self.record: JobRecord | None = None
        self.task_id = "task(foreign-" + "".join(random.choices(string.ascii_uppercase, k=7)) + ")"
        self._thread = threading.Thread(target=self._run, args=(fake, steps), daemon=True)
        self._thread.start()

    def _run(self, fake: FakeWebUI, steps: int) -> None:
        with fake.queue_lock:
            self.record = fake._begin("txt2img", steps, self.task_id)
            fake._launch_sampling(steps)
            fake._callback(0, None)
            self.record.steps_done = 1
            self.started.set()
            deadline = time.monotonic() + WAIT_LIMIT
            while not self._finish.wait(0.01) and not fake._interrupted and time.monotonic() < deadline:
                pass
            self.record.interrupted = fake._interrupted
            fake._finish_task(self.task_id)
            fake._end(self.record)
        self.done.set()

    def finish(self) -> None:
        self._finish.set()


class FakeWebUI:
    """State of one fake server; ``app()`` serves it."""

    def __init__(
        self,
        *,
        step_seconds: float = 0.02,
        auth: tuple[str, str] | None = None,
        now: Callable[[], datetime.datetime] = datetime.datetime.now,
        internal_progress: bool = True,
        preview_every: int = 2,
        img2img_fix_steps: bool = False,
    ) -> None:
        self.step_seconds = step_seconds
        self.auth = auth
        self.now = now
        self.internal_progress = internal_progress
        self.preview_every = preview_every
        self.img2img_fix_steps = img2img_fix_steps
        self.queue_lock = FifoLock()
        self._lock = threading.Lock()  # guards everything below; held only briefly
        # The global state A1111 keeps in shared.state ...
        self._job = ""
        self._job_count = 0
        self._job_no = 0
        self._job_timestamp = "0"
        self._step = 0
        self._steps = 0
        self._time_start = 0.0
        self._interrupted = False
        self._latent: tuple[Image.Image, float] | None = None
        self._current_image: bytes | None = None
        self._current_image_step = 0
        self._id_live_preview = 0
        # ... and in modules/progress.py.
        self._current_task: str | None = None
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._finished: list[str] = []
        # What tests configure and inspect.
        self.gate = threading.Event()
        self.gate.set()
        self.answer_gate = threading.Event()
        self.answer_gate.set()
        self.result_image: bytes | None = None
        self.extra_images = 0
        self.answer_images: int | None = None
        self.pause_step: int | None = None
        self.pause_job: int | None = None
        self.paused = threading.Event()
        self.failures: deque[Failure] = deque()
        self.requests: list[tuple[str, str]] = []
        self.progress_queries: list[bool] = []
        """``skip_current_image`` of each ``/sdapi/v1/progress`` read, in order."""
        self.task_queries: list[dict[str, Any]] = []
        """The body of each ``/internal/progress`` read, in order."""
        self.received: list[dict[str, Any]] = []
        self.jobs: list[JobRecord] = []
        self.interrupts: list[InterruptRecord] = []
        self.auth_users: list[str] = []
        self.answers_held = 0
        self.in_flight = 0
        self.max_in_flight = 0

    # -- test API ----------------------------------------------------------------------------

    def pause_at(self, step: int, *, job: int | None = None) -> None:
        """Stop sampling after ``step`` steps until ``resume()``; only in the ``job``-th job begun
        (0-based) when given."""
        self.pause_step, self.pause_job, self.paused = step, job, threading.Event()
        self.gate.clear()

    def resume(self) -> None:
        self.gate.set()
        self.answer_gate.set()

    def hold_answers(self) -> None:
        self.answer_gate.clear()

    def release_answers(self) -> None:
        self.answer_gate.set()

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

    def queued_tasks(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    # -- the global state --------------------------------------------------------------------

    def _add_task_to_queue(self, task_id: str) -> None:
        with self._lock:
            self._pending[task_id] = time.time()

    def _begin(self, kind: str, steps: int, task_id: str) -> JobRecord:
        """``state.begin()`` then ``start_task()``; ``sampling_steps`` keeps the last job's total."""
        with self._lock:
            self._job_timestamp = self.now().strftime("%Y%m%d%H%M%S")
            self._job, self._job_count, self._job_no, self._step = f"scripts_{kind}", -1, 0, 0
            self._time_start, self._interrupted = time.time(), False
            self._latent, self._current_image = None, None
            self._current_image_step = self._id_live_preview = 0
            self._current_task = task_id
            self._pending.pop(task_id, None)
            record = JobRecord(kind=kind, timestamp=self._job_timestamp, steps=steps, task_id=task_id)
            self.jobs.append(record)
            return record

    def _launch_sampling(self, steps: int) -> None:
        with self._lock:
            self._job_count = 1  # processing sets it to n_iter
            self._steps, self._step = steps, 0

    def _callback(self, step: int, latent: tuple[Image.Image, float] | None) -> None:
        """The sampler's callback after step ``step`` (0-based): stores the latent, not a picture."""
        with self._lock:
            self._step = step
            if latent is not None:
                self._latent = latent

    def _finish_task(self, task_id: str) -> None:
        with self._lock:
            if self._current_task == task_id:
                self._current_task = None
            self._finished.append(task_id)
            del self._finished[:-FINISHED_KEPT]

    def _end(self, record: JobRecord) -> None:
        with self._lock:
            self._job, self._job_count = "", 0
        record.finished.set()

    def _set_current_image(self) -> None:
        """Decode the stored latent into a preview if ``preview_every`` steps passed since the last."""
        with self._lock:
            due = self.preview_every > 0 and self._step - self._current_image_step >= self.preview_every
            latent, stamp = self._latent, self._job_timestamp
            if not due or latent is None:
                return
        picture = _png(_blurred(*latent))
        with self._lock:
            if self._latent is latent and self._job_timestamp == stamp:
                self._current_image = picture
                self._id_live_preview += 1
                self._current_image_step = self._step

    def _state(self) -> dict[str, Any]:
        return {
            "skipped": False,
            "interrupted": self._interrupted,
            "job": self._job,
            "job_count": self._job_count,
            "job_timestamp": self._job_timestamp,
            "job_no": self._job_no,
            "sampling_step": self._step,
            "sampling_steps": self._steps,
        }

    def _progress(self, skip_image: bool) -> dict[str, Any]:
        """``/sdapi/v1/progress`` as modules/api/api.py ``progressapi`` computes it."""
        self._set_current_image()  # A1111 decodes the preview even when it is not sent
        with self._lock:
            state = self._state()
            if self._job_count == 0:
                return {
                    "progress": 0,
                    "eta_relative": 0,
                    "state": state,
                    "current_image": None,
                    "textinfo": None,
                    "current_task": None,
                }
            progress = 0.01
            if self._job_count > 0:
                progress += self._job_no / self._job_count
            if self._steps > 0:
                progress += 1 / self._job_count * self._step / self._steps
            elapsed = time.time() - self._time_start
            eta_relative = elapsed / progress - elapsed
            image = self._current_image if not skip_image else None
        return {
            "progress": min(progress, 1.0),
            "eta_relative": eta_relative,
            "state": state,
            "current_image": base64.b64encode(image).decode() if image is not None else None,
            "textinfo": None,
            "current_task": None,
        }

    def _task_progress(self, id_task: Any, id_live_preview: int, live_preview: bool) -> dict[str, Any]:
        """``/internal/progress`` as modules/progress.py ``progressapi`` computes it."""
        with self._lock:
            active = id_task == self._current_task
            queued = id_task in self._pending
            completed = id_task in self._finished
            if not active:
                textinfo = "Waiting..."
                if queued:
                    order = sorted(self._pending, key=lambda task: self._pending[task])
                    textinfo = f"In queue: {order.index(id_task) + 1}/{len(order)}"
                return {
                    "active": False,
                    "queued": queued,
                    "completed": completed,
                    "progress": None,
                    "eta": None,
                    "live_preview": None,
                    "id_live_preview": -1,
                    "textinfo": textinfo,
                }
            progress = 0.0
            if self._job_count > 0:
                progress += self._job_no / self._job_count
                if self._steps > 0:
                    progress += 1 / self._job_count * self._step / self._steps
            progress = min(progress, 1.0)
            elapsed = time.time() - self._time_start
            eta = elapsed / progress - elapsed if progress > 0 else None
        preview = None
        if live_preview:
            self._set_current_image()
            with self._lock:
                if self._id_live_preview != id_live_preview and self._current_image is not None:
                    preview = "data:image/png;base64," + base64.b64encode(self._current_image).decode()
                    id_live_preview = self._id_live_preview
        return {
            "active": True,
            "queued": queued,
            "completed": completed,
            "progress": progress,
            "eta": eta,
            "live_preview": preview,
            "id_live_preview": id_live_preview,
            "textinfo": None,
        }

    # -- a job (in a worker thread, like A1111's) --------------------------------------------

    def _sampling_steps(self, kind: str, payload: dict[str, Any]) -> int:
        steps = int(payload["steps"])
        if kind == "txt2img" or self.img2img_fix_steps:
            return steps
        denoising = float(payload.get("denoising_strength", 0.75))
        return int(min(denoising, 0.999) * steps) + 1

    def _process(self, kind: str, task_id: str, payload: dict[str, Any]) -> tuple[list[bytes], JobRecord]:
        size = (payload["width"], payload["height"])
        self._add_task_to_queue(task_id)
        with self.queue_lock:
            init = None
            if kind == "img2img":
                init = _decode_image(payload["init_images"][0])  # inside the lock, as on A1111
            mask = payload.get("mask")
            area = _inpaint_area(mask, payload, size) if isinstance(mask, Image.Image) else None
            if init is not None:
                start = init.convert("RGB").resize(size)
                if area is not None and payload.get("inpainting_fill", 0) != 1:
                    fill = Image.new("RGB", size, tuple(int(v) for v in ImageStat.Stat(start).mean))
                    start = Image.composite(fill, start, area.point(lambda v: 255 if v else 0))
                target = ImageOps.invert(start)
            else:
                target = _prompt_picture(payload.get("prompt", ""), size)
            record = self._begin(kind, self._sampling_steps(kind, payload), task_id)
            try:
                if self.pause_step == 0 and self._pauses(record):
                    self._pause()  # begun, sampling_steps still the last job's
                self._launch_sampling(record.steps)
                for step in range(record.steps):
                    if self._interrupted:
                        break  # the denoiser raises before the next step; the last latent is kept
                    time.sleep(self.step_seconds)  # the "denoising"
                    self._callback(step, (target, (step + 1) / record.steps))
                    record.steps_done = step + 1
                    if step + 1 == self.pause_step and self._pauses(record):
                        self._pause()
                record.interrupted = self._interrupted
                drawn = _blurred(target, record.steps_done / record.steps)
                if area is not None and init is not None:
                    # apply_overlay: the original goes back over everything outside the mask.
                    overlay = area.point(lambda v: min(255, v * 2))
                    drawn = Image.composite(drawn, init.convert("RGB").resize(size), overlay)
                count = int(payload.get("batch_size", 1)) * int(payload.get("n_iter", 1))
                batch = [_variation(drawn, index) for index in range(count)]
                pictures = [_grid(batch)] if count > 1 and payload.get("save_images") else []
                pictures += batch
                pictures += [Image.new("RGB", size, (0, 0, 0)) for _ in range(self.extra_images)]
                if self.answer_images is not None:
                    pictures = pictures[: self.answer_images]
                images = [_png(picture) for picture in pictures]
                if self.result_image is not None:
                    images[0] = self.result_image
                self._finish_task(task_id)
                return images, record
            finally:
                self._end(record)

    def _pauses(self, record: JobRecord) -> bool:
        with self._lock:
            return self.pause_job is None or self.jobs.index(record) == self.pause_job

    def _pause(self) -> None:
        self.paused.set()
        deadline = time.monotonic() + WAIT_LIMIT
        while not self.gate.wait(0.01) and not self._interrupted and time.monotonic() < deadline:
            pass

    # -- HTTP --------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route(IMG2IMG, self._work, methods=["POST"]),
            Route(TXT2IMG, self._work, methods=["POST"]),
            Route(PROGRESS, self._progress_endpoint, methods=["GET"]),
            Route(INTERRUPT, self._interrupt_endpoint, methods=["POST"]),
        ]
        if self.internal_progress:
            routes.append(Route(TASK_PROGRESS, self._task_progress_endpoint, methods=["POST"]))
        return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})

    def _admit(self, request: Request) -> Response | None:
        """Record the request; answer it here if auth or a scripted failure says so."""
        path = request.url.path
        with self._lock:
            self.requests.append((request.method, path))
        if self.auth is not None:
            user = _basic_user(request.headers.get("authorization", ""), self.auth)
            if user is None:
                return JSONResponse(
                    {"detail": "Incorrect username or password"},
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
                payload = await run_in_threadpool(_loads, await request.body())
            except ValueError as exc:
                return _unprocessable(
                    [{"type": "json_invalid", "loc": ["body", 0], "msg": f"JSON decode error: {exc}"}]
                )
            with self._lock:
                self.received.append(payload)
            problems = _validate(kind, payload)
            if problems:
                return _unprocessable(problems)
            task_id = payload.get("force_task_id") or _task_id(kind)
            if kind == "img2img" and payload.get("mask"):
                try:  # img2imgapi decodes the mask before it queues the task
                    payload = {**payload, "mask": await run_in_threadpool(_decode_image, payload["mask"])}
                except _ApiError as exc:
                    return JSONResponse(exc.body, status_code=exc.status)
            try:
                images, record = await run_in_threadpool(self._process, kind, task_id, payload)
            except _ApiError as exc:
                return JSONResponse(exc.body, status_code=exc.status)
            # The lock is released: the next job may run while this answer is encoded and sent.
            if not self.answer_gate.is_set():
                with self._lock:
                    self.answers_held += 1
                await run_in_threadpool(self.answer_gate.wait, WAIT_LIMIT)
            parameters = {**payload, "init_images": None, "mask": None}
            seed = 1234 if payload.get("seed", -1) == -1 else int(payload["seed"])
            count = int(payload.get("batch_size", 1)) * int(payload.get("n_iter", 1))
            info = {
                "seed": seed,
                "all_seeds": [seed + index for index in range(count)],
                "steps": payload["steps"],
                "sampler_name": payload.get("sampler_name") or "Euler",
                "job_timestamp": record.timestamp,
            }
            rest = {"parameters": parameters, "info": json.dumps(info)}
            body = await run_in_threadpool(_answer_body, images, rest)
        finally:
            with self._lock:
                self.in_flight -= 1
        return Response(body, media_type="application/json")

    async def _progress_endpoint(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        skip = request.query_params.get("skip_current_image", "false").lower() == "true"
        with self._lock:
            self.progress_queries.append(skip)
        return JSONResponse(await run_in_threadpool(self._progress, skip))

    async def _task_progress_endpoint(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _unprocessable([{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}])
        body = body if isinstance(body, dict) else {}
        with self._lock:
            self.task_queries.append(body)
        answer = await run_in_threadpool(
            self._task_progress,
            body.get("id_task"),
            int(body.get("id_live_preview", -1)),
            bool(body.get("live_preview", True)),
        )
        return JSONResponse(answer)

    async def _interrupt_endpoint(self, request: Request) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        with self._lock:
            running = self._job_count != 0
            who = f"{request.client.host}:{request.client.port}" if request.client else "?"
            self.interrupts.append(
                InterruptRecord(
                    at=time.monotonic(),
                    client=who,
                    job_timestamp=self._job_timestamp if running else None,
                    task=self._current_task if running else None,
                )
            )
            self._interrupted = True
        return JSONResponse({})


class _Dropped:
    """Starts a 200 answer, then cuts the connection: the client sees it break off mid-body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"images": ["iVBO', "more_body": True})
        raise ConnectionAbortedError("scripted connection drop")


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's JSON shape for routing errors (404, 405)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
    return JSONResponse({"detail": detail}, status_code=status)


def _unprocessable(problems: list[dict[str, Any]]) -> Response:
    """FastAPI's request validation answer: ``detail`` is a list of problems, each with a ``loc``."""
    return JSONResponse({"detail": problems}, status_code=422)


def _task_id(kind: str) -> str:
    return f"task({kind}-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=7)) + ")"


def _validate(kind: str, payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return [
            {"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a valid dictionary"}
        ]
    problems = []
    for key in ("steps", "width", "height"):
        value = payload.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            problems.append(
                {
                    "type": "greater_than",
                    "loc": ["body", key],
                    "msg": "Input should be greater than 0",
                    "input": value,
                }
            )
        elif key != "steps" and value % 8:
            problems.append(
                {
                    "type": "multiple_of",
                    "loc": ["body", key],
                    "msg": "Input should be a multiple of 8",
                    "input": value,
                }
            )
    for key in ("batch_size", "n_iter"):
        value = payload.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(
                {"type": "int_type", "loc": ["body", key], "msg": "Input should be a valid integer"}
            )
        elif value < 1:
            # pydantic takes any int; processing then makes no image and fails: a 422 is kinder.
            problems.append(
                {
                    "type": "greater_than",
                    "loc": ["body", key],
                    "msg": "Input should be greater than 0",
                    "input": value,
                }
            )
    for key, kinds, label in _TYPED_FIELDS:
        if key in payload and not _of_type(payload[key], kinds):
            problems.append(_type_problem(key, label))
    if kind == "img2img":
        mask = payload.get("mask")
        if mask is not None and not isinstance(mask, str):
            problems.append(
                {"type": "string_type", "loc": ["body", "mask"], "msg": "Input should be a valid string"}
            )
        for key in ("mask_blur", "inpainting_fill", "inpaint_full_res_padding", "inpainting_mask_invert"):
            value = payload.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(
                    {"type": "int_type", "loc": ["body", key], "msg": "Input should be a valid integer"}
                )
        if not isinstance(payload.get("inpaint_full_res", True), bool):
            problems.append(
                {
                    "type": "bool_type",
                    "loc": ["body", "inpaint_full_res"],
                    "msg": "Input should be a valid boolean",
                }
            )
        images = payload.get("init_images")
        if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str | bytes):
            problems.append(
                {"type": "list_type", "loc": ["body", "init_images"], "msg": "Input should be a valid list"}
            )
    return problems


_TYPED_FIELDS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("prompt", (str,), "string"),
    ("negative_prompt", (str,), "string"),
    ("seed", (int,), "integer"),
    ("cfg_scale", (int, float), "number"),
    ("denoising_strength", (int, float), "number"),
)
"""Fields of A1111's processing models and their types (``StableDiffusionTxt2ImgProcessingAPI`` /
``...Img2Img...``): ``negative_prompt: str``, ``seed: int``, ``cfg_scale: float``,
``denoising_strength: float``; a bool or a string is no number here."""


def _of_type(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return False
    if kinds == (int,) and isinstance(value, float):
        return value.is_integer()  # pydantic takes 5.0 for an int, not 5.5
    return isinstance(value, kinds)


def _type_problem(key: str, label: str) -> dict[str, Any]:
    kind = {"string": "string_type", "integer": "int_type", "number": "float_type"}[label]
    return {"type": kind, "loc": ["body", key], "msg": f"Input should be a valid {label}"}


def _inpaint_area(mask: Image.Image, payload: dict[str, Any], size: tuple[int, int]) -> Image.Image:
    """'L' at the working ``size``: how much of the sample shows (255 = all), before doubling."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        binary = mask.getchannel("A").point(lambda v: 255 if v > 128 else 0)  # create_binary_mask
    else:
        binary = mask.convert("L").point(lambda v: 255 if v > 128 else 0)
    if payload.get("inpainting_mask_invert"):
        binary = ImageOps.invert(binary)
    blur = payload.get("mask_blur", 4)
    if isinstance(blur, int | float) and blur > 0:
        binary = binary.filter(ImageFilter.GaussianBlur(blur))
    return binary.resize(size)


def _decode_image(text: str | bytes) -> Image.Image:
    """modules/api/api.py ``decode_base64_to_image``: a 500 when it does not decode."""
    try:
        image = Image.open(io.BytesIO(_b64decode(text)))
        image.load()
        return image
    except (binascii.Error, ValueError, OSError) as exc:
        detail = "Invalid encoded image"
        raise _ApiError(
            500, {"error": "HTTPException", "detail": detail, "body": "", "errors": f"500: {detail}"}
        ) from exc


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


def _answer_body(images: list[bytes], rest: dict[str, Any]) -> bytes:
    """``json.dumps({"images": [base64 of each image], **rest})``, in slices (base64 needs no
    escaping)."""
    step = SLICE // 4 * 3
    parts = [b'{"images": [']
    for number, image in enumerate(images):
        parts.append(b', "' if number else b'"')
        parts += (base64.b64encode(image[at : at + step]) for at in range(0, len(image), step))
        parts.append(b'"')
    parts.append(b"], " + json.dumps(rest).encode()[1:])
    return b"".join(parts)


def _variation(image: Image.Image, index: int) -> Image.Image:
    """Image ``index`` of a batch: the first with its green channel shifted by 50 × ``index``."""
    if index == 0:
        return image
    red, green, blue = image.convert("RGB").split()
    return Image.merge("RGB", (red, green.point(lambda v: (v + 50 * index) % 256), blue))


def _grid(images: list[Image.Image]) -> Image.Image:
    """``images.image_grid`` for one row: the pictures side by side."""
    width, height = images[0].size
    grid = Image.new("RGB", (width * len(images), height))
    for number, image in enumerate(images):
        grid.paste(image, (width * number, 0))
    return grid


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
