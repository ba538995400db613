"""Provider faults through the loopback fakes and the real job path.

Each fault is served by ``tests.fake_openai`` / ``tests.fake_sdwebui`` over a real socket; the job
runs through the real ImageStore, JobRegistry, Studio and retry policy, with only the wait between
attempts recorded instead of slept. Each case asserts what the user sees (the final stage and the
card's message) and what the server received (the number of requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgedit.editing import Studio
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobSnapshot, JobStage
from imgedit.models import ImageOrigin, Quality
from imgedit.providers import Provider, ProviderRegistry
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from imgedit.retry import RetryPolicy
from imgedit.storage import ImageStore
from tests.fake_openai import (
    CutStream,
    FakeOpenAI,
    Hang,
    Malformed,
    Status,
    make_app,
    moderation,
    rate_limited,
    serve_openai,
)
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import serve
from tests.test_provider_errors import png

KEY = "sk-test-faults-0123456789"
READ_TIMEOUT = 5.0
"""Ample for a healthy answer from the fakes, even on a busy machine."""
HANG_READ_TIMEOUT = 0.2
"""For the hang cases: a short wait, far below the hang, so a hang costs little."""


@dataclass
class Outcome:
    final: JobSnapshot
    waits: list[float]
    images: int
    """Images in the gallery afterwards: the source, plus the result if the job completed."""


async def run_job(
    tmp_path: Path, make_provider: Callable[[httpx.AsyncClient], Provider], read_timeout: float = READ_TIMEOUT
) -> Outcome:
    """One edit through the real job path; the retry waits are recorded, not slept."""
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    store = ImageStore(tmp_path / "data")
    store.open()
    try:
        source = store.add_sync(png(), origin=ImageOrigin.UPLOAD, name="source.png")
        durations = DurationModel({q: 1.0 for q in Quality})
        registry = JobRegistry(max_concurrent=2, durations=durations)
        timeout = httpx.Timeout(10.0, read=read_timeout)
        async with httpx.AsyncClient(timeout=timeout) as client:
            provider = make_provider(client)
            studio = Studio(
                store=store,
                registry=registry,
                providers=ProviderRegistry([provider]),
                durations=durations,
                retry=RetryPolicy(max_attempts=3, base_delay=2.0, rng=random.Random(1)),
                sleep=recorded_sleep,
            )
            job_id = studio.submit_edit(source.id, "make it red", Quality.LOW, provider.name)
            final = await asyncio.wait_for(registry.wait(job_id), timeout=30)
        return Outcome(final, waits, len(store))
    finally:
        store.close()


def assert_outcome(outcome: Outcome, stage: JobStage, message: str | None = None) -> None:
    assert outcome.final.stage == stage, outcome.final.error
    if stage is JobStage.COMPLETED:
        assert outcome.images == 2
    else:
        assert outcome.images == 1, "a failed job stores nothing"
        assert message is not None and message in (outcome.final.error or "")


# -- OpenAI ------------------------------------------------------------------------------------


@pytest.fixture
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    with serve_openai(KEY) as served:
        yield served


def openai(
    base_url: str, *, key: str = KEY, partial_images: int = 0
) -> Callable[[httpx.AsyncClient], Provider]:
    return lambda client: OpenAIProvider(
        client=client, api_key=key, base_url=base_url, partial_images=partial_images
    )


@dataclass
class OpenAICase:
    name: str
    script: list[Any]
    stage: JobStage
    requests: int
    message: str | None = None
    partial_images: int = 0
    key: str = KEY


OPENAI_CASES = [
    OpenAICase("429 with Retry-After, then drawn", [rate_limited("3")], JobStage.COMPLETED, 2),
    OpenAICase("500 every time", [Status(500)] * 3, JobStage.FAILED, 3, "had a server error (500)"),
    OpenAICase(
        "a hang past the read timeout every time",
        [Hang(0.6)] * 3,
        JobStage.FAILED,
        3,
        "did not answer in time (ReadTimeout)",
        partial_images=2,  # a streamed call: the client's read timeout stands (a silent one waits 600 s)
    ),
    OpenAICase(
        "a stream cut in the middle, then drawn",
        [CutStream(after_partials=1, abrupt=True)],
        JobStage.COMPLETED,
        2,
        partial_images=2,
    ),
    OpenAICase(
        "a stream cut in the middle every time",
        [CutStream(after_partials=1, abrupt=True)] * 3,
        JobStage.FAILED,
        3,
        "broke off",
        partial_images=2,
    ),
    OpenAICase(
        "a garbage body every time",
        [Malformed("<html><body>502 Bad Gateway</body></html>", "text/html")] * 3,
        JobStage.FAILED,
        3,
        "not valid JSON",
    ),
    OpenAICase(
        "401 wrong key", [], JobStage.FAILED, 1, "check your API key", key="sk-wrong-0123456789abcdef"
    ),
    OpenAICase(
        "400 moderation",
        [moderation()],
        JobStage.FAILED,
        1,
        "safety system blocked this request: Your request was rejected by the safety system.",
    ),
]


@pytest.mark.parametrize("case", OPENAI_CASES, ids=lambda c: c.name)
async def test_openai_faults_end_in_a_retry_or_a_readable_failure(
    case: OpenAICase, openai_fake: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    state, base_url = openai_fake
    state.script(*case.script)
    hangs = any(isinstance(fault, Hang) for fault in case.script)
    outcome = await run_job(
        tmp_path,
        openai(base_url, key=case.key, partial_images=case.partial_images),
        HANG_READ_TIMEOUT if hangs else READ_TIMEOUT,
    )
    assert_outcome(outcome, case.stage, case.message)
    assert len(state.requests) == case.requests
    assert len(outcome.waits) > 0 or case.requests == 1
    assert KEY not in (outcome.final.error or "")


async def test_openai_retry_after_is_waited_for(openai_fake: tuple[FakeOpenAI, str], tmp_path: Path) -> None:
    state, base_url = openai_fake
    state.script(rate_limited("7"))
    outcome = await run_job(tmp_path, openai(base_url))
    assert outcome.final.stage == JobStage.COMPLETED
    assert sum(outcome.waits) >= 7.0


async def test_the_fake_can_echo_the_key_it_received_like_some_compatible_servers(tmp_path: Path) -> None:
    state = FakeOpenAI(api_key=KEY, echo_key=True)
    with serve(make_app(state)) as server:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                server + "/v1/images/generations", headers={"Authorization": f"Bearer {KEY}"}, json={}
            )
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "message": f"Incorrect API key provided: {KEY}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


# -- SD WebUI ----------------------------------------------------------------------------------


@pytest.fixture
def sd_fake() -> Iterator[Callable[..., tuple[FakeWebUI, str]]]:
    fakes: list[FakeWebUI] = []
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> tuple[FakeWebUI, str]:
            fake = FakeWebUI(**{"step_seconds": 0.001, **options})
            fakes.append(fake)
            return fake, stack.enter_context(serve(fake.app()))

        yield start
        for fake in fakes:
            fake.resume()  # a paused job ends, so the server can stop


def sd(url: str, **options: Any) -> Callable[[httpx.AsyncClient], Provider]:
    return lambda client: SdWebUiProvider(client=client, urls=[url], poll_interval=0.02, **options)


@dataclass
class SdCase:
    name: str
    faults: list[dict[str, Any]]
    stage: JobStage
    work_requests: int
    message: str | None = None


SD_CASES = [
    SdCase(
        "429 with Retry-After, then drawn",
        [{"count": 1, "status": 429, "body": {"detail": "Queue full"}, "headers": {"Retry-After": "3"}}],
        JobStage.COMPLETED,
        2,
    ),
    SdCase(
        "500 every time",
        [
            {
                "count": 3,
                "status": 500,
                "body": {"error": "OSError", "errors": "[Errno 24] Too many open files"},
            }
        ],
        JobStage.FAILED,
        3,
        "had a server error (500): OSError: [Errno 24] Too many open files",
    ),
    SdCase(
        "a connection cut in the middle of the answer, then drawn",
        [{"count": 1, "drop": True}],
        JobStage.COMPLETED,
        2,
    ),
    SdCase(
        "a connection cut in the middle every time",
        [{"count": 3, "drop": True}],
        JobStage.FAILED,
        3,
        "broke off",
    ),
    SdCase(
        "a garbage body every time",
        [{"count": 3, "status": 200, "body": "<html>Gradio is restarting</html>"}],
        JobStage.FAILED,
        3,
        "not valid JSON",
    ),
]


@pytest.mark.parametrize("case", SD_CASES, ids=lambda c: c.name)
async def test_sdwebui_faults_end_in_a_retry_or_a_readable_failure(
    case: SdCase, sd_fake: Callable[..., tuple[FakeWebUI, str]], tmp_path: Path
) -> None:
    fake, url = sd_fake()
    for fault in case.faults:
        fake.fail_next(**fault)
    outcome = await run_job(tmp_path, sd(url))
    assert_outcome(outcome, case.stage, case.message)
    assert fake.work_requests == case.work_requests
    if case.name.startswith("429"):
        assert sum(outcome.waits) >= 3.0


async def test_sdwebui_hang_past_the_read_timeout_is_retried_and_each_render_stopped(
    sd_fake: Callable[..., tuple[FakeWebUI, str]], tmp_path: Path
) -> None:
    fake, url = sd_fake()
    fake.pause_at(2)  # every render stalls until it is interrupted
    outcome = await run_job(tmp_path, sd(url), HANG_READ_TIMEOUT)
    assert_outcome(outcome, JobStage.FAILED, "did not answer in time (ReadTimeout)")
    assert fake.work_requests == 3 and len(fake.jobs) == 3
    assert len(fake.interrupts) == 3, "no render was left running on the GPU"


async def test_sdwebui_401_fails_at_once_asking_for_the_credentials(
    sd_fake: Callable[..., tuple[FakeWebUI, str]], tmp_path: Path
) -> None:
    fake, url = sd_fake(auth=("alice", "right"))
    outcome = await run_job(tmp_path, sd(url, auth=("alice", "wrong")))
    assert_outcome(outcome, JobStage.FAILED, "did not accept the credentials (401): check your API key")
    assert len(fake.requests) == 1 and fake.work_requests == 0
    assert "wrong" not in (outcome.final.error or "")
