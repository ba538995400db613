"""Provider errors say which provider, which HTTP status and which server code they come from.

Real loopback servers (``tests.fake_sdwebui``, ``tests.fake_openai``) answer with the bodies the
real ones send; the production providers map them, and ``call_with_retries`` keeps the fields
when it rebuilds an error to add its advice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imgedit.errors import (
    ProviderError,
    ProviderFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ProviderRequest
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from imgedit.retry import RetryPolicy, call_with_retries
from tests.fake_openai import FakeOpenAI, Status, insufficient_quota, moderation, serve_openai
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import free_port, serve

KEY = "sk-structured-errors-test"


class Sink:
    def progress(self, fraction: float, message: str | None = None, **_: Any) -> None:
        pass

    def preview(self, image: bytes) -> None:
        pass


def generate(prompt: str = "a red fox") -> ProviderRequest:
    return ProviderRequest(kind=JobKind.GENERATE, prompt=prompt, quality=Quality.LOW)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        yield http


@pytest.fixture
def sd_fake() -> Iterator[tuple[FakeWebUI, str]]:
    fake = FakeWebUI(step_seconds=0.001)
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    with serve_openai(KEY) as served:
        yield served


def fields(error: ProviderError) -> tuple[str | None, int | None, str | None]:
    return error.provider, error.status, error.code


@pytest.mark.parametrize(
    ("failure", "kind", "expected"),
    [
        (
            {"status": 500, "body": {"error": "NansException", "detail": "", "body": "", "errors": "NaNs"}},
            ProviderFailed,
            ("sdwebui", 500, "NansException"),
        ),
        (
            {
                "status": 422,
                "body": {"detail": [{"type": "greater_than", "loc": ["body", "steps"], "msg": "> 0"}]},
            },
            ProviderRejected,
            ("sdwebui", 422, "greater_than"),
        ),
        ({"status": 503, "body": "<html>restarting</html>"}, ProviderFailed, ("sdwebui", 503, None)),
    ],
    ids=["a1111-exception", "fastapi-422", "proxy-503"],
)
async def test_sdwebui_errors_carry_provider_status_and_code(
    sd_fake: tuple[FakeWebUI, str],
    client: httpx.AsyncClient,
    failure: dict[str, Any],
    kind: type,
    expected: Any,
) -> None:
    fake, url = sd_fake
    fake.fail_next(1, **failure)
    with pytest.raises(kind) as caught:
        await SdWebUiProvider(client=client, urls=[url], poll_interval=0.02).generate(generate(), Sink())
    assert fields(caught.value) == expected


async def test_an_sdwebui_server_that_cannot_be_reached_is_named_without_a_status(
    client: httpx.AsyncClient,
) -> None:
    sd = SdWebUiProvider(client=client, urls=[f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(ProviderUnavailable) as caught:
        await sd.generate(generate(), Sink())
    assert fields(caught.value) == ("sdwebui", None, None)


async def test_a_rebuilt_error_keeps_what_the_server_said(
    sd_fake: tuple[FakeWebUI, str], client: httpx.AsyncClient
) -> None:
    fake, url = sd_fake
    fake.fail_next(1, status=429, body={"detail": "Queue full"}, headers={"Retry-After": "3600"})
    sd = SdWebUiProvider(client=client, urls=[url], poll_interval=0.02)
    with pytest.raises(ProviderRateLimited) as caught:
        await call_with_retries(lambda: sd.generate(generate(), Sink()), RetryPolicy(), sleep=no_wait)
    rebuilt = caught.value
    assert "asks to wait 3600 s" in str(rebuilt) and isinstance(rebuilt.__cause__, ProviderRateLimited)
    assert fields(rebuilt) == ("sdwebui", 429, None) and rebuilt.retry_after == 3600.0
    assert fake.work_requests == 1


@pytest.mark.parametrize(
    ("failure", "kind", "expected"),
    [
        (moderation(), ProviderRejected, ("openai", 400, "moderation_blocked")),
        (insufficient_quota(), ProviderRejected, ("openai", 429, "insufficient_quota")),
        (Status(503, "Overloaded"), ProviderFailed, ("openai", 503, None)),
    ],
    ids=["moderation", "no-quota", "overloaded"],
)
async def test_openai_errors_carry_provider_status_and_code(
    openai_fake: tuple[FakeOpenAI, str], client: httpx.AsyncClient, failure: Status, kind: type, expected: Any
) -> None:
    state, base_url = openai_fake
    state.script(failure)
    openai = OpenAIProvider(client=client, api_key=KEY, base_url=base_url, partial_images=0)
    with pytest.raises(kind) as caught:
        await openai.generate(generate(), Sink())
    assert fields(caught.value) == expected
