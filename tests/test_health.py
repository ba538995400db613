"""The status line's probes (issue 10: provider lifecycle): each server up, busy or down, as the
real servers' fakes answer over loopback, and the monitor that asks only while someone looks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from nicegui.testing import User

from imgedit.health import HealthMonitor
from imgedit.models import JobKind, Quality
from imgedit.providers import ProviderRegistry, ServerHealth
from imgedit.providers.base import Capabilities, ProviderRequest, ProviderResult
from imgedit.providers.comfyui import ComfyUIProvider
from imgedit.providers.local import LocalProvider
from imgedit.providers.openai import OpenAIProvider
from imgedit.providers.sdwebui import SdWebUiProvider
from tests.fake_comfyui import FakeComfyUI, serve_comfyui
from tests.fake_openai import FakeOpenAI, make_app
from tests.fake_sdwebui import FakeWebUI
from tests.fakes import eventually
from tests.loopback import free_port, serve

KEY = "sk-test-health-key"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        yield http


async def test_sd_servers_are_up_busy_with_someone_elses_job_or_down(client: httpx.AsyncClient) -> None:
    fake = FakeWebUI()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with serve(fake.app()) as url:
        sd = SdWebUiProvider(client=client, urls=[url, dead])
        up, down = await sd.health()
        assert (up.state, down.state) == ("up", "down")
        assert up.label.endswith(url) and down.label.endswith(dead)
        assert down.detail  # why: the connection was refused

        foreign = fake.start_foreign_job()  # someone at the WebUI's own page
        assert await asyncio.to_thread(foreign.started.wait, 30)
        busy, _ = await sd.health()
        assert (busy.state, busy.detail) == ("busy", "running another client's job")
        foreign.finish()
        assert await asyncio.to_thread(foreign.done.wait, 30)
        again, _ = await sd.health()
        assert again.state == "up"
    assert fake.progress_queries and all(fake.progress_queries), "the probe asks for no preview"


async def test_comfyui_servers_are_up_busy_with_prompts_of_others_or_down(client: httpx.AsyncClient) -> None:
    from tests.test_comfyui_provider import ForeignClient, generate_graph

    fake = FakeComfyUI()
    dead = f"http://127.0.0.1:{free_port()}"
    with serve_comfyui(fake) as url:
        comfy = ComfyUIProvider(client=client, urls=[url, dead])
        up, down = await comfy.health()
        assert (up.state, down.state) == ("up", "down") and down.detail
        fake.hold()
        try:
            async with ForeignClient(url) as foreign:
                theirs = await foreign.submit(client, generate_graph())
                await eventually(lambda: fake.held == theirs, message="the foreign prompt to run")
                busy, _ = await comfy.health()
                assert busy.state == "busy" and "others" in busy.detail
        finally:
            fake.release()
        states = []
        for _ in range(200):  # the foreign prompt finishes on the fake's own thread
            again, _down = await comfy.health()
            states.append(again.state)
            if again.state == "up":
                break
            await asyncio.sleep(0.05)  # polling the fake's queue until it is empty, bounded
        assert states[-1] == "up", states


async def test_openai_is_up_with_a_good_key_and_down_with_the_reason_otherwise(client: httpx.AsyncClient) -> None:
    state = FakeOpenAI(api_key=KEY)
    with serve(make_app(state)) as server:
        base = server + "/v1"
        (good,) = await OpenAIProvider(client=client, api_key=KEY, base_url=base).health()
        assert good.state == "up"
        (refused,) = await OpenAIProvider(client=client, api_key="sk-wrong-key-0000", base_url=base).health()
        assert refused.state == "down" and "key" in refused.detail.lower()
        assert "sk-wrong-key-0000" not in refused.detail  # a key is never shown
        unknown = OpenAIProvider(client=client, api_key=KEY, base_url=base, model="no-such-model")
        (missing,) = await unknown.health()
        assert missing.state == "down" and "no-such-model" in missing.detail
    assert state.requests == [], "a probe is not an image call"


class Probed:
    """A provider whose probe answers what the test says, counting the calls."""

    name = "probed"
    label = "Probed"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.calls = 0
        self.answer: list[ServerHealth] | Exception = [ServerHealth("Probed", "up")]

    async def health(self) -> list[ServerHealth]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 1.0

    def describe(self, kind: JobKind) -> str:
        return ""

    async def edit(self, request: ProviderRequest, sink: object) -> ProviderResult:
        raise NotImplementedError

    async def generate(self, request: ProviderRequest, sink: object) -> ProviderResult:
        raise NotImplementedError


async def test_the_monitor_probes_once_per_interval_whatever_the_tabs_and_moves_only_on_change() -> None:
    probed = Probed()
    now = [100.0]
    monitor = HealthMonitor(ProviderRegistry([probed, LocalProvider()]), interval=30.0, clock=lambda: now[0])
    for _tab in range(5):  # five tabs tick in the same second
        monitor.wanted()
    await eventually(lambda: monitor.version == 1, message="the first probe")
    assert probed.calls == 1
    assert monitor.found == {
        "probed": [ServerHealth("Probed", "up")],
        "local": [ServerHealth("Local engine (offline)", "up")],  # no probe of its own: up
    }
    now[0] += 29.0
    monitor.wanted()
    assert probed.calls == 1, "within the interval: no new probe"
    now[0] += 2.0
    monitor.wanted()
    await eventually(lambda: probed.calls == 2, message="the next probe")
    await asyncio.sleep(0)  # the probe's task finishes its bookkeeping
    assert monitor.version == 1, "nothing changed"

    probed.answer = RuntimeError("boom")
    now[0] += 31.0
    monitor.wanted()
    await eventually(lambda: monitor.version == 2, message="the failed probe reported")
    (found,) = monitor.found["probed"]
    assert found.state == "down" and "RuntimeError" in found.detail
    await monitor.close()


@pytest.fixture
def dead_sd(monkeypatch: pytest.MonkeyPatch) -> str:
    """An SD WebUI server that is configured but not running (before ``user`` starts the app)."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("IMGEDIT_SDWEBUI_URLS", url)
    return url


async def test_the_header_shows_each_sd_server_and_its_state(dead_sd: str, user: User) -> None:
    await user.open("/")
    await user.should_see(f"Stable Diffusion WebUI at {dead_sd}: down", retries=50)
    await user.should_see("Local engine (offline)")


async def test_what_a_probe_found_is_redacted_before_anyone_sees_it(client: httpx.AsyncClient) -> None:
    """A server that echoes the key in its refusal: the status line must not repeat it."""
    from imgedit.redact import MASK, Redactor

    state = FakeOpenAI(api_key=KEY, echo_key=True)
    with serve(make_app(state)) as server:
        openai = OpenAIProvider(client=client, api_key=KEY, base_url=server + "/v1")
        (raw,) = await openai.health()
        assert KEY in raw.detail, "the fake echoes the key, as such servers do"
        monitor = HealthMonitor(ProviderRegistry([openai]), redact=Redactor([KEY]))
        monitor.wanted()
        await eventually(lambda: monitor.version == 1, message="the probe")
    (found,) = monitor.found["openai"]
    assert found.state == "down" and KEY not in found.detail and MASK in found.detail
