"""The error matrix: each provider failure ends a job in the right state, with the right message,
after the right number of attempts. Requests go through ``httpx.MockTransport`` routed on the
path; the job runs through the real Studio, registry and retry policy (only the sleep between
attempts is recorded instead of waited)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imgedit.editing import Studio
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobStage
from imgedit.models import ImageOrigin, Quality
from imgedit.providers import Provider, ProviderRegistry
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from imgedit.retry import RetryPolicy
from imgedit.storage import ImageStore

KEY = "sk-test-error-matrix-0123456789"


def png(color: tuple[int, int, int] = (20, 120, 220), size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


RESULT_B64 = base64.b64encode(png((250, 10, 10))).decode()

Reply = Callable[[httpx.Request], httpx.Response]


def status(code: int, body: dict[str, object] | str, headers: dict[str, str] | None = None) -> Reply:
    content = body if isinstance(body, str) else json.dumps(body)
    return lambda request: httpx.Response(code, content=content, headers=headers or {})


def raise_(exc: type[httpx.TransportError]) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        raise exc("simulated", request=request)

    return reply


def openai_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"created": 1, "data": [{"b64_json": RESULT_B64}], "usage": {}})


def sd_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"images": [RESULT_B64], "parameters": {}, "info": "{}"})


def openai_error(code: int, message: str, error_code: str | None = None) -> Reply:
    return status(
        code,
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": error_code}},
    )


class CutStream(httpx.AsyncByteStream):
    """One partial image, then the connection breaks."""

    async def __aiter__(self) -> Iterator[bytes]:  # type: ignore[override]
        event = {"type": "image_edit.partial_image", "b64_json": RESULT_B64, "partial_image_index": 0}
        yield f"event: image_edit.partial_image\ndata: {json.dumps(event)}\n\n".encode()
        raise httpx.ReadError("connection reset by peer")


def openai_cut_stream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=CutStream())


def openai_stream_ok(request: httpx.Request) -> httpx.Response:
    event = {"type": "image_edit.completed", "b64_json": RESULT_B64, "usage": {}}
    body = f"event: image_edit.completed\ndata: {json.dumps(event)}\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


@dataclass
class Case:
    name: str
    replies: list[Reply]
    stage: JobStage
    attempts: int
    message: str | None = None
    waits_at_least: list[float] = field(default_factory=list)


OPENAI_CASES = [
    Case("timeout, then success", [raise_(httpx.ReadTimeout), openai_ok], JobStage.COMPLETED, 2),
    Case(
        "connect errors every time", [raise_(httpx.ConnectError)] * 3, JobStage.FAILED, 3, "Could not connect"
    ),
    Case(
        "429 honours Retry-After",
        [openai_error(429, "Rate limit reached", "rate_limit_exceeded"), openai_ok],
        JobStage.COMPLETED,
        2,
    ),
    Case(
        "500 every time",
        [openai_error(500, "The server had an error")] * 3,
        JobStage.FAILED,
        3,
        "server error (500)",
    ),
    Case("503, then success", [openai_error(503, "Overloaded"), openai_ok], JobStage.COMPLETED, 2),
    Case(
        "400 moderation_blocked is not retried",
        [openai_error(400, "Your request was rejected by the safety system.", "moderation_blocked")],
        JobStage.FAILED,
        1,
        "Your request was rejected by the safety system.",
    ),
    Case(
        "400 keeps the server's message",
        [openai_error(400, "Invalid size 'huge'.")],
        JobStage.FAILED,
        1,
        "Invalid size 'huge'.",
    ),
    Case(
        "401 asks to check the key",
        [openai_error(401, "Incorrect API key provided")],
        JobStage.FAILED,
        1,
        "check your API key",
    ),
    Case(
        "403 asks to check the key",
        [openai_error(403, "Forbidden")],
        JobStage.FAILED,
        1,
        "check your API key",
    ),
    Case("malformed body, then success", [status(200, "{not json"), openai_ok], JobStage.COMPLETED, 2),
    Case("malformed body every time", [status(200, "<html>")] * 3, JobStage.FAILED, 3, "not valid JSON"),
]

SD_CASES = [
    Case("connect error, then success", [raise_(httpx.ConnectError), sd_ok], JobStage.COMPLETED, 2),
    Case(
        "500 every time",
        [status(500, {"error": "OSError", "errors": "[Errno 24] Too many open files"})] * 3,
        JobStage.FAILED,
        3,
        "Too many open files",
    ),
    Case(
        "out of memory fails at once",
        [status(500, {"error": "RuntimeError", "errors": "CUDA out of memory"})],
        JobStage.FAILED,
        1,
        "CUDA out of memory",
    ),
    Case(
        "401 asks to check credentials",
        [status(401, {"detail": "Incorrect credentials"})],
        JobStage.FAILED,
        1,
        "check your API key",
    ),
    Case(
        "422 validation is not retried",
        [status(422, {"detail": "steps must be positive"})],
        JobStage.FAILED,
        1,
        "steps must be positive",
    ),
    Case("no image in the answer, then success", [status(200, {"images": []}), sd_ok], JobStage.COMPLETED, 2),
]


class Backend:
    """Routes on the path; the work endpoint answers from a script, the rest like an idle server."""

    def __init__(self, work_path: str, replies: list[Reply]) -> None:
        self.work_path = work_path
        self.replies = list(replies)
        self.attempts = 0
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.work_path:
            self.attempts += 1
            self.headers.append(request.headers)
            reply = self.replies.pop(0) if self.replies else (lambda r: httpx.Response(599))
            return reply(request)
        if request.url.path == "/sdapi/v1/progress":
            return httpx.Response(
                200,
                json={
                    "progress": 0.0,
                    "eta_relative": 0.0,
                    "state": {"job_timestamp": "0", "job": ""},
                    "current_image": None,
                    "textinfo": None,
                },
            )
        if request.url.path == "/sdapi/v1/interrupt":
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"detail": "Not Found"})


@dataclass
class Harness:
    store: ImageStore
    registry: JobRegistry
    studio: Studio
    source_id: str

    def submit(self) -> str:
        return self.studio.submit_edit(
            self.source_id, "make it red", Quality.LOW, self.studio.providers.default.name
        )


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path,
    make_provider: Callable[[httpx.AsyncClient], Provider],
    backend: Backend,
    sleep: Callable[[float], Awaitable[None]],
) -> AsyncIterator[Harness]:
    """The real job path (store, registry, Studio, retry policy) around one provider."""
    store = ImageStore(tmp_path / "data")
    store.open()
    source = store.add_sync(png(), origin=ImageOrigin.UPLOAD, name="source.png")
    durations = DurationModel({q: 1.0 for q in Quality})
    registry = JobRegistry(max_concurrent=2, durations=durations)
    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        studio = Studio(
            store=store,
            registry=registry,
            providers=ProviderRegistry([make_provider(client)]),
            durations=durations,
            retry=RetryPolicy(max_attempts=3, base_delay=2.0, rng=random.Random(1)),
            sleep=sleep,
        )
        yield Harness(store=store, registry=registry, studio=studio, source_id=source.id)
    store.close()


async def run_case(
    tmp_path: Path, make_provider: Callable[[httpx.AsyncClient], Provider], backend: Backend
) -> tuple[object, list[float]]:
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    async with harness(tmp_path, make_provider, backend, recorded_sleep) as h:
        final = await asyncio.wait_for(h.registry.wait(h.submit()), timeout=30)
    return final, waits


def openai_provider(client: httpx.AsyncClient) -> Provider:
    return OpenAIProvider(client=client, api_key=KEY, base_url="http://openai.test/v1", partial_images=0)


def sd_provider(client: httpx.AsyncClient) -> Provider:
    return SdWebUiProvider(client=client, urls=["http://sd.test:7860"], poll_interval=0.05)


@pytest.mark.parametrize("case", OPENAI_CASES, ids=lambda c: c.name)
async def test_openai_error_matrix(case: Case, tmp_path: Path) -> None:
    backend = Backend("/v1/images/edits", case.replies)
    final, waits = await run_case(tmp_path, openai_provider, backend)
    assert_outcome(final, case, backend, waits)
    assert all(h["authorization"] == f"Bearer {KEY}" for h in backend.headers)
    assert KEY not in (final.error or "")  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", SD_CASES, ids=lambda c: c.name)
async def test_sdwebui_error_matrix(case: Case, tmp_path: Path) -> None:
    backend = Backend("/sdapi/v1/img2img", case.replies)
    final, waits = await run_case(tmp_path, sd_provider, backend)
    assert_outcome(final, case, backend, waits)


def assert_outcome(final: object, case: Case, backend: Backend, waits: list[float]) -> None:
    assert final.stage == case.stage, final.error  # type: ignore[attr-defined]
    assert backend.attempts == case.attempts
    if case.message is not None:
        assert case.message in (final.error or "")  # type: ignore[attr-defined]
    # One countdown per retry: the waits add up to the backoff before each further attempt.
    assert (sum(waits) > 0) == (case.attempts > 1)


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    backend = Backend(
        "/v1/images/edits",
        [openai_error(429, "Slow down", "rate_limit_exceeded"), openai_ok],
    )
    backend.replies[0] = status(
        429, {"error": {"message": "Slow down", "code": "rate_limit_exceeded"}}, {"Retry-After": "7"}
    )
    final, waits = await run_case(tmp_path, openai_provider, backend)
    assert final.stage == JobStage.COMPLETED  # type: ignore[attr-defined]
    assert sum(waits) >= 7.0


async def test_a_retry_after_beyond_patience_fails_with_the_advice(tmp_path: Path) -> None:
    backend = Backend(
        "/v1/images/edits",
        [
            status(
                429, {"error": {"message": "Quota", "code": "rate_limit_exceeded"}}, {"Retry-After": "3600"}
            )
        ],
    )
    final, waits = await run_case(tmp_path, openai_provider, backend)
    assert final.stage == JobStage.FAILED  # type: ignore[attr-defined]
    assert backend.attempts == 1 and waits == []
    assert "wait 3600 s" in (final.error or "")  # type: ignore[attr-defined]


async def test_a_cut_stream_is_retried(tmp_path: Path) -> None:
    backend = Backend("/v1/images/edits", [openai_cut_stream, openai_stream_ok])
    final, _ = await run_case(
        tmp_path,
        lambda client: OpenAIProvider(
            client=client, api_key=KEY, base_url="http://openai.test/v1", partial_images=1
        ),
        backend,
    )
    assert final.stage == JobStage.COMPLETED  # type: ignore[attr-defined]
    assert backend.attempts == 2


async def test_the_card_counts_down_to_the_retry_and_cancel_stops_the_wait(tmp_path: Path) -> None:
    backend = Backend("/v1/images/edits", [openai_error(503, "Overloaded"), openai_ok])
    waiting, never = asyncio.Event(), asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        waiting.set()
        await never.wait()

    async with harness(tmp_path, openai_provider, backend, held_sleep) as h:
        job_id = h.submit()
        await asyncio.wait_for(waiting.wait(), timeout=10)
        message = h.registry.snapshot(job_id).message
        assert message.startswith("Retrying (2/3) in ")
        assert " s: " in message and "server error (503)" in message
        assert h.registry.cancel(job_id)
        final = await asyncio.wait_for(h.registry.wait(job_id), timeout=10)
        assert len(h.store) == 1
    assert final.stage == JobStage.CANCELLED
    assert backend.attempts == 1, "the cancelled wait never led to a second call"
