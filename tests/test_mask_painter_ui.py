"""The "Select area" of the Edit dialog as a user drives it, through NiceGUI's simulated user.

The painter itself runs in the browser (static/mask.js; see test_mask_painter_browser.py); here
the test stands in for it the way the browser does: it reads what the page hands the painter
(``imgeditMask.open({...})``, answered by a JavaScript rule), POSTs a mask to the upload URL it
was given, over HTTP with the page's cookies, and then emits Done's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import app, ui
from nicegui.testing import User
from PIL import Image, ImageDraw

from imgedit.models import ImageRecord
from imgedit.providers.base import Capabilities
from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually

PASSWORD = "correct horse battery"


class RegionalProvider(GatedProvider):
    """A test engine that can edit a selected area."""

    name = "regional"
    label = "Regional test engine"
    capabilities = Capabilities(edit=True, generate=True, real_progress=True, mask=True)


class WholeOnlyProvider(GatedProvider):
    """A test engine that edits whole pictures only."""

    name = "whole"
    label = "Whole-picture test engine"
    capabilities = Capabilities(edit=True, generate=True, real_progress=True, mask=False)


def kept_mask(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> bytes:
    """Opaque black, transparent inside ``box`` (the kept form the painter sends)."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    if box is not None:
        ImageDraw.Draw(image).rectangle(box, fill=(0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def painter_configs(user: User, call: str = "open") -> list[dict[str, Any]]:
    """What the page hands static/mask.js each time the painter opens (``imgeditMask.open({...})``,
    or another ``call``), recorded in order from the messages the page sends to its browser.
    Call after ``user.open``."""
    seen: list[dict[str, Any]] = []
    outbox = user.client.outbox if user.client is not None else None
    assert outbox is not None, "open the page first"
    sending = outbox._emit
    opening = re.compile(rf"window\.imgeditMask && imgeditMask\.{call}\((.*)\)$", re.S)

    async def recording(message: Any) -> None:
        _, kind, data = message
        found = opening.match(data.get("code", "")) if kind == "run_javascript" else None
        if found:
            seen.append(json.loads(found.group(1)))
        await sending(message)

    outbox._emit = recording  # type: ignore[method-assign]
    return seen


def open_dialogs(user: User) -> list[ui.dialog]:
    return [d for d in user.find(ui.dialog).elements if d.value]


def painter(user: User) -> ui.dialog:
    card = user.find(marker="painter").elements.pop()
    dialog = card.parent_slot.parent if card.parent_slot else None
    assert isinstance(dialog, ui.dialog)
    return dialog


def provider_options(user: User) -> dict[str, str]:
    return dict(user.find(marker="provider").elements.pop().options)


def visible(user: User, marker: str) -> bool:
    """Whether the one element marked ``marker`` is shown, it and all around it."""
    assert user.client is not None
    (element,) = [e for e in user.client.elements.values() if marker in e._markers]
    return all(e.visible for e in (element, *element.ancestors()))


async def open_painter(user: User, image: ImageRecord, configs: list[dict[str, Any]]) -> dict[str, Any]:
    user.find(marker=f"image-{image.id}").click()
    user.find(marker="edit").click()
    await user.should_see(marker="select-area")
    before = len(configs)
    user.find(marker="select-area").click()
    await eventually(lambda: len(configs) > before, message="the painter to open")
    assert painter(user).value
    return configs[-1]


async def send(user: User, config: dict[str, Any], body: bytes) -> httpx.Response:
    return await user.http_client.post(config["upload"], content=body, headers={"Content-Type": "image/png"})


@contextlib.asynccontextmanager
async def stranger(host: str = "127.0.0.1:8080") -> AsyncIterator[httpx.AsyncClient]:
    """Someone else's request to the same app in process: no cookies of the page."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        yield client


async def test_an_area_comes_in_full_size_and_only_area_capable_providers_are_offered(
    user: User, data_dir: Path
) -> None:
    await user.open("/")
    configs = painter_configs(user)
    services = app_services()
    regional, whole = RegionalProvider(), WholeOnlyProvider()
    services.providers.add(regional)
    services.providers.add(whole)
    image = services.store.list()[0]
    config = await open_painter(user, image, configs)
    assert (config["width"], config["height"]) == (image.width, image.height)
    assert "Regional test engine" in provider_options(user).values()
    assert "Whole-picture test engine" in provider_options(user).values()

    box = (40, 30, 139, 89)
    answer = await send(user, config, kept_mask((image.width, image.height), box))
    assert answer.status_code == 200, answer.text
    mask_id = answer.json()["mask_id"]
    kept = data_dir / "masks" / f"{mask_id}.png"
    with Image.open(kept) as stored:
        assert stored.size == (image.width, image.height)
        assert stored.getchannel("A").point(lambda v: 255 if v < 128 else 0).getbbox() == (40, 30, 140, 90)

    user.find(marker="painter-done").trigger("click", {"mask_id": mask_id})
    assert not painter(user).value
    assert visible(user, "area-status") and visible(user, "area-preview")
    assert not visible(user, "select-area")
    offered = provider_options(user)
    assert "regional" in offered and "whole" not in offered
    assert set(offered) == {p.name for p in services.providers.all() if p.capabilities.mask}

    user.find(marker="clear-area").click()
    assert visible(user, "select-area") and not visible(user, "area-status")
    assert "whole" in provider_options(user)

    # Again, and Start: the job carries the area.
    user.find(marker="select-area").click()
    user.find(marker="painter-done").trigger("click", {"mask_id": mask_id})
    user.find(marker="provider").click()
    user.find("Regional test engine").click()
    user.find(marker="prompt").type("blur")
    user.find("Start Edit").click()
    await eventually(regional.started.is_set, message="the regional engine to start")
    (job,) = [s for s in services.registry.snapshots() if s.spec.provider == "regional"]
    assert job.spec.mask == mask_id and job.spec.source_image_id == image.id
    regional.gate.set()

    # Reopening the dialog, for this image or another, starts with no area.
    other = services.store.list()[1]
    user.find(marker=f"image-{other.id}").click()
    user.find(marker="edit").click()
    assert visible(user, "select-area") and not visible(user, "area-status")
    assert "whole" in provider_options(user)


async def test_a_wrong_size_or_empty_mask_is_refused_with_a_readable_message(user: User) -> None:
    await user.open("/")
    configs = painter_configs(user)
    services = app_services()
    image = services.store.list()[0]
    config = await open_painter(user, image, configs)

    wrong = await send(user, config, kept_mask((100, 100), (10, 10, 50, 50)))
    assert wrong.status_code == 400
    detail = wrong.json()["detail"]
    assert detail == (
        f"The selected area is 100×100 but the image is {image.width}×{image.height}; select the area again."
    )
    # The browser hands the message to the page, which shows it in the painter (still open).
    user.find(marker="painter-done").trigger("click", {"error": detail})
    assert painter(user).value
    await user.should_see(detail)
    assert user.find(marker="painter-error").elements.pop().props["role"] == "alert"

    empty = await send(user, config, kept_mask((image.width, image.height), None))
    assert empty.status_code == 400 and empty.json()["detail"].startswith("No area is selected")
    garbage = await send(user, config, b"not a picture")
    assert garbage.status_code == 400 and "could not be read" in garbage.json()["detail"]

    too_big = await send(user, config, b"\0" * (20 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and "20 MB" in too_big.json()["detail"]

    # An id the route did not keep for this page is not taken for an area.
    user.find(marker="painter-done").trigger("click", {"mask_id": "0" * 64})
    assert painter(user).value and not visible(user, "area-status")
    assert not await asyncio.to_thread(lambda: list(services.store.masks_dir.glob("*.png")))

    gone = config["upload"].replace(f"image={image.id}", "image=" + "0" * 32)
    assert (await user.http_client.post(gone, content=b"x")).status_code == 404
    forged = re.sub(r"ticket=[^&]+", "ticket=forged", config["upload"])
    refused = await user.http_client.post(
        forged, content=kept_mask((image.width, image.height), (1, 1, 99, 99))
    )
    assert refused.status_code == 403 and "reload" in refused.json()["detail"]


def area_editor(user: User) -> Any:
    """The Edit dialog's area editor (the object behind its Select area button)."""
    assert user.client is not None
    (button,) = [e for e in user.client.elements.values() if "select-area" in e._markers]
    for listener in button._event_listeners.values():
        for cell in getattr(listener.handler, "__closure__", None) or ():  # NiceGUI wraps on_click
            owner = getattr(cell.cell_contents, "__self__", None)
            if owner is not None and hasattr(owner, "keep"):
                return owner
    raise AssertionError("no area editor behind Select area")


async def test_an_area_kept_earlier_is_shown_with_its_outline_and_limits_the_providers(user: User) -> None:
    await user.open("/")
    configs, previews = painter_configs(user), painter_configs(user, "preview")
    services = app_services()
    services.providers.add(RegionalProvider())
    services.providers.add(WholeOnlyProvider())
    image = services.store.list()[0]
    config = await open_painter(user, image, configs)
    mask_id = (await send(user, config, kept_mask((image.width, image.height), (9, 9, 99, 99)))).json()[
        "mask_id"
    ]
    user.find(marker="painter-cancel").click()
    assert not painter(user).value and not visible(user, "area-status")

    area_editor(user).keep(mask_id)  # as the dialog does when it opens to run a region edit again
    assert visible(user, "area-status") and not visible(user, "select-area")
    assert "whole" not in provider_options(user) and "regional" in provider_options(user)
    await eventually(lambda: len(previews) == 1, message="the preview to be drawn")
    assert previews[0]["outline"] == f"/media/masks/{mask_id}/outline"
    assert previews[0]["picture"] == f"/media/thumbs/{image.id}"


async def test_with_no_provider_able_to_edit_an_area_the_dialog_says_so(user: User) -> None:
    await user.open("/")
    configs = painter_configs(user)
    services = app_services()

    class LocalWithoutMasks(WholeOnlyProvider):
        name = "local"
        label = "Local engine (offline)"

    services.providers.add(LocalWithoutMasks())  # the same name: it takes the local engine's place
    image = services.store.list()[0]
    config = await open_painter(user, image, configs)
    answer = await send(user, config, kept_mask((image.width, image.height), (0, 0, 99, 99)))
    user.find(marker="painter-done").trigger("click", {"mask_id": answer.json()["mask_id"]})
    assert visible(user, "area-none-can")
    await user.should_see("None of the configured providers can edit a selected area")
    assert provider_options(user) == {}
    assert not user.find(marker="start").elements.pop().enabled

    user.find(marker="clear-area").click()
    assert not visible(user, "area-none-can")
    assert "local" in provider_options(user)
    assert user.find(marker="start").elements.pop().enabled


# -- a studio with a password ----------------------------------------------------------------------


@pytest.fixture
def studio_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IMGEDIT_PASSWORD", PASSWORD)
    return PASSWORD


async def sign_in(user: User, name: str) -> None:
    await user.open("/")
    await user.should_see("Sign in")
    user.find("Your name").type(name)
    user.find("Password").type(PASSWORD)
    user.find("Sign in").click()
    await user.should_see(f"Signed in as {name}", retries=100)


async def test_the_upload_needs_the_pages_session_and_one_of_our_host_names(
    studio_password: str, user: User, create_user: Callable[[], User]
) -> None:
    await sign_in(user, "Ana")
    configs = painter_configs(user)
    image = app_services().store.list()[0]
    config = await open_painter(user, image, configs)
    body = kept_mask((image.width, image.height), (5, 5, 120, 80))

    async with stranger() as client:
        refused = await client.post(config["upload"], content=body)
    assert refused.status_code == 401 and refused.content == b"Sign in first.\n"
    async with stranger("attacker.example") as client:
        forged_host = await client.post(config["upload"], content=body)
    assert forged_host.status_code == 400 and "--allowed-hosts" in forged_host.text

    bo = create_user()
    await sign_in(bo, "Bo")
    other = await bo.http_client.post(config["upload"], content=body)
    assert other.status_code == 403  # signed in, but not on the page that opened the painter

    mine = await send(user, config, body)
    assert mine.status_code == 200 and len(mine.json()["mask_id"]) == 64
