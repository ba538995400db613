"""Issue 8 ("everyone can use it"), through NiceGUI's simulated user: names for icon-only
buttons, the one polite live region, who started a job, what a loading card says about its
source, the failed card's full error, the theme switch and readable download names."""

from __future__ import annotations

import httpx
from nicegui import app, ui
from nicegui.testing import User

from imgedit.jobs import JobSpec, JobStage
from imgedit.models import JobKind, Quality
from imgedit.ui import format as fmt
from imgedit.ui.routes import content_disposition
from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually
from tests.test_gallery_ui import loading_cards, marked, start_edit


def live_text(user: User) -> str:
    (region,) = marked(user, "live")
    return region.text


def icon_only_buttons(user: User) -> list[ui.button]:
    assert user.client is not None
    return [
        e
        for e in user.client.elements.values()
        if isinstance(e, ui.button)
        and not e.text
        and not any(isinstance(c, ui.label) for c in e.descendants())
    ]


async def test_every_icon_only_button_has_a_name(user: User) -> None:
    await user.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    await start_edit(user, services.store.list()[0].id, "anything", provider_label="Gated test engine")
    await eventually(gated.started.is_set, message="the provider to start")
    user.find(marker="tray-badge").click()
    buttons = icon_only_buttons(user)
    assert buttons, "the page has icon-only buttons (tray, viewer close, theme)"
    for button in buttons:
        assert button.props.get("aria-label"), f"{button.props.get('icon')} has no accessible name"
    cancel = user.find(marker="cancel").elements.pop()
    assert "anything" in cancel.props["aria-label"], "Cancel says which job it cancels"
    gated.gate.set()


async def test_one_polite_live_region_tells_queued_started_and_finished(user: User) -> None:
    await user.open("/")
    services = app_services()
    (region,) = marked(user, "live")
    assert region.props["aria-live"] == "polite"
    assert "imgedit-sr-only" in region.classes
    gated = GatedProvider()
    services.providers.add(gated)
    source = services.store.list()[0]
    await start_edit(user, source.id, "warm tones", provider_label="Gated test engine")
    await eventually(lambda: "warm tones" in live_text(user), message="the job to be announced")
    await eventually(gated.started.is_set, message="the provider to start")
    await eventually(lambda: "Half way" in live_text(user) or "Started" in live_text(user), message="started")
    gated.gate.set()
    await eventually(lambda: live_text(user).startswith("Finished: "), message="the finish to be announced")
    assert live_text(user) == f"Finished: {fmt.job_title('warm tones', source.title)}."


async def test_live_region_tells_failure_and_cancellation(user: User) -> None:
    await user.open("/")
    services = app_services()
    await start_edit(user, services.store.list()[0].id, "add glitter")
    await eventually(lambda: live_text(user).startswith("Failed: "), within=30, message="the failure")
    gated = GatedProvider()
    services.providers.add(gated)
    await start_edit(user, services.store.list()[1].id, "cool tones", provider_label="Gated test engine")
    await eventually(gated.started.is_set, message="the provider to start")
    user.find(marker="cancel").click()
    await eventually(lambda: live_text(user).startswith("Cancelled: "), message="the cancellation")
    assert "cool tones" in live_text(user)


async def test_cards_name_the_source_and_who_started_the_job(user: User) -> None:
    await user.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    source = services.store.list()[0]
    spec = JobSpec(
        kind=JobKind.EDIT,
        prompt="same prompt",
        quality=Quality.LOW,
        provider="gated",
        source_image_id=source.id,
        started_by="Ana",
    )
    job_id = services.registry.submit(spec)
    await eventually(lambda: len(loading_cards(user)) == 1, message="the loading card")
    await user.should_see(f"Edit of “{source.title}”", marker="loading-card")
    await user.should_see("by Ana", marker="loading-card")
    kind = marked(user, "kind-chip")
    assert kind and "imgedit-kind-chip" in kind[0].classes and kind[0].tag != "a"
    gated.gate.set()
    assert (await services.registry.wait(job_id)).stage is JobStage.COMPLETED
    await services.journal.flush()
    await user.open("/history")
    await user.should_see("by Ana")


async def test_a_job_without_a_user_says_nobody_started_it(user: User) -> None:
    await user.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    await start_edit(user, services.store.list()[0].id, "nobody", provider_label="Gated test engine")
    await eventually(lambda: len(loading_cards(user)) == 1, message="the loading card")
    await user.should_not_see("by ", marker="started-by")
    gated.gate.set()


async def test_failed_card_error_opens_and_closes_with_a_button(user: User) -> None:
    await user.open("/")
    services = app_services()
    await start_edit(user, services.store.list()[0].id, "add glitter")
    await user.should_see("Failed", retries=50)
    toggle = user.find(marker="show-error").elements.pop()
    assert toggle.props["aria-expanded"] == "false"
    card = loading_cards(user)[0]
    user.find(marker="show-error").click()
    assert toggle.props["aria-expanded"] == "true"
    assert card.props.get("data-error-open") == "true"
    assert toggle.text == "Show less"
    user.find(marker="show-error").click()
    assert toggle.props["aria-expanded"] == "false"


async def test_theme_follows_the_system_and_the_header_switch_cycles(user: User) -> None:
    await user.open("/")
    (dark,) = user.find(ui.dark_mode).elements
    assert dark.value is None, "auto: the system's preference"
    switch = user.find(marker="theme-switch").elements.pop()
    assert "Auto" in switch.props["aria-label"]
    user.find(marker="theme-switch").click()
    assert dark.value is False and "Light" in switch.props["aria-label"]
    user.find(marker="theme-switch").click()
    assert dark.value is True and "Dark" in switch.props["aria-label"]
    user.find(marker="theme-switch").click()
    assert dark.value is None


def test_result_titles_and_job_titles() -> None:
    assert fmt.job_title("sepia", "photo1.jpg") == "photo1.jpg — sepia"
    assert fmt.job_title("a red circle", None) == "a red circle"
    long_source = "Forest mountains under a big moon.png"
    assert fmt.job_title("sepia", long_source) == "Forest mountains under… — sepia", "the prompt stays in sight"
    assert fmt.job_title("blur", "photo1.jpg — sepia") == "photo1.jpg — blur", "no chain of prompts"


def test_download_names_are_readable_and_safe() -> None:
    assert content_disposition("photo1.jpg", "jpg", "0123456789abcdef") == 'attachment; filename="photo1.jpg"'
    assert content_disposition("Sunset at sea — sepia!", "png", "ab") == (
        'attachment; filename="Sunset-at-sea-sepia.png"'
    )
    header = content_disposition("Café Straße", "webp", "ab")
    assert header == "attachment; filename=\"Cafe-Strae.webp\"; filename*=UTF-8''Caf%C3%A9-Stra%C3%9Fe.webp"
    assert content_disposition('../"evil"\r\n.png', "png", "0123456789") == 'attachment; filename="evil.png"'
    assert content_disposition("!!!", "png", "0123456789ab") == 'attachment; filename="image-01234567.png"'


async def test_download_route_sends_the_readable_name(user: User) -> None:
    await user.open("/")
    image = app_services().store.list()[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get(f"/media/download/{image.id}")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == content_disposition(
        image.title, image.extension, image.id
    )
    assert image.id[:8] not in response.headers["content-disposition"]
