"""An edit through each AI provider's loopback fake, driven in the gallery like a user would:
the loading card shows the provider's live preview and its progress, then the result lands.

The app is configured the way a user configures it, through the environment (OPENAI_API_KEY +
OPENAI_BASE_URL, IMGEDIT_SDWEBUI_URLS), before ``user`` runs main.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from nicegui import app, ui
from nicegui.testing import User
from PIL import Image, ImageChops, ImageStat

from tests.conftest import app_services
from tests.fake_openai import FakeOpenAI, make_app
from tests.fake_sdwebui import FakeWebUI
from tests.fakes import eventually
from tests.loopback import serve
from tests.test_gallery_ui import loading_cards, start_edit


@pytest.fixture
def openai_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()
    state.gate.clear()  # hold the stream after its first partial image
    with serve(make_app(state)) as base:
        monkeypatch.setenv("OPENAI_API_KEY", str(state.api_key))
        monkeypatch.setenv("OPENAI_BASE_URL", base + "/v1")
        monkeypatch.setenv("IMGEDIT_OPENAI_PARTIAL_IMAGES", "2")
        yield state
        state.gate.set()


@pytest.fixture
def sdwebui_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWebUI]:
    fake = FakeWebUI(step_seconds=0.01)
    fake.pause_at(6)
    with serve(fake.app()) as base:
        monkeypatch.setenv("IMGEDIT_SDWEBUI_URLS", base)
        yield fake
        fake.resume()


def preview_of(card: ui.element) -> ui.element:
    return next(e for e in card.descendants() if e.props.get("alt") == "live preview")


async def fetch(path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        return await client.get(path)


def mean_difference(a: bytes, b: bytes) -> float:
    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        diff = ImageChops.difference(first.convert("RGB"), second.convert("RGB").resize(first.size))
        return sum(ImageStat.Stat(diff).mean) / 3


async def test_openai_edit_shows_partial_image_preview_then_lands(
    openai_fake: FakeOpenAI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    assert services.providers.default.name == "openai", "a configured AI provider is offered first"
    source = services.store.list()[0]
    before = len(services.store)

    await start_edit(user, source.id, "turn the sky purple")
    await eventually(openai_fake.partial_sent.is_set, message="the first partial image")

    (card,) = loading_cards(user)
    await eventually(lambda: preview_of(card).visible, message="the preview on the card")
    src = preview_of(card).props["src"]
    assert src.startswith("/media/previews/")
    response = await fetch(src)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (source.width, source.height)
    await eventually(lambda: float(card.props.get("data-milestone") or 0) > 0.05, message="a milestone")
    assert "data-progress" not in card.props, "OpenAI reports milestones, not exact progress"
    await user.should_see("Partial image 1 of 2", retries=30)

    openai_fake.gate.set()
    await eventually(lambda: len(services.store) == before + 1, message="the result")
    result = services.store.list()[0]
    assert result.provider == "openai" and result.parent_id == source.id
    original = await services.store.read_bytes(source.id)
    inverted = io.BytesIO()
    Image.open(io.BytesIO(original)).convert("RGB").point(lambda v: 255 - v).save(inverted, "PNG")
    assert mean_difference(await services.store.read_bytes(result.id), inverted.getvalue()) < 3
    sent = openai_fake.requests[-1]
    assert sent.fields["quality"] == "medium" and sent.fields["model"] == "gpt-image-1.5"


async def test_sdwebui_edit_shows_real_progress_and_preview_then_lands(
    sdwebui_fake: FakeWebUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    assert services.providers.default.name == "sdwebui"
    source = services.store.list()[0]
    before = len(services.store)

    await start_edit(user, source.id, "oil painting")
    await eventually(sdwebui_fake.paused.is_set, message="sampling to reach step 6")

    (card,) = loading_cards(user)
    # An img2img of 24 steps at denoising 0.55 samples int(24 × 0.55) + 1 = 14 of them, as A1111 does.
    await user.should_see("Step 6 of 14", retries=40)
    progress = float(card.props["data-progress"])
    assert 0.2 < progress < 0.5, "6 of 14 steps, placed on the job's bar"
    await eventually(lambda: preview_of(card).visible, message="the live preview")
    assert "data-deadline" in card.props

    sdwebui_fake.resume()
    await eventually(lambda: len(services.store) == before + 1, message="the result")
    assert services.store.list()[0].provider == "sdwebui"
    assert sdwebui_fake.interrupts == []
    assert sdwebui_fake.max_in_flight == 1


async def test_sdwebui_cancel_interrupts_the_server_and_adds_nothing(
    sdwebui_fake: FakeWebUI, user: User
) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)

    await start_edit(user, services.store.list()[0].id, "oil painting")
    await eventually(sdwebui_fake.paused.is_set, message="sampling to reach step 6")
    await user.should_see("Step 6 of 14", retries=40)
    user.find(marker="cancel").click()

    await eventually(lambda: len(sdwebui_fake.interrupts) == 1, message="the interrupt")
    await eventually(lambda: services.registry.snapshots()[0].stage == "cancelled", message="cancelled")
    assert loading_cards(user) == []
    assert len(services.store) == before
