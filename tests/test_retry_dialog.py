"""Retry opens the form, Run again, and the prompt chips, through NiceGUI's simulated user.

A failed card's Retry (and the failure toast's) opens the Edit / New image form filled with the
job's prompt and settings, all editable: Start queues what the form says and the failed card goes;
confirmed unchanged it is the job's next attempt, as Retry was before. "Run again" in the image
dialog queues the job that made an image again (its settings from the journal, a new seed). The
local engine's phrases are chips that add to the prompt; the recent prompts of a kind, chips that
replace it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from imgedit.errors import ProviderRejected
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageOrigin, JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import loading_cards, marked, open_dialogs, start_edit


class RefusingProvider:
    """Refuses every job at once (a 4xx: no retries), so a card fails and offers Retry."""

    name = "refusing"
    label = "Refusing test engine"
    capabilities = Capabilities(edit=True, generate=True)

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 1.0

    def describe(self, kind: JobKind) -> str:
        return "Refuses everything."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        raise ProviderRejected("Refused by the test engine.")

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        raise ProviderRejected("Refused by the test engine.")


class RefusingAreaProvider(RefusingProvider):
    """Refuses too, but can edit a selected area."""

    name = "refusing-area"
    label = "Refusing area engine"
    capabilities = Capabilities(edit=True, generate=True, mask=True)


def kept_mask(size: tuple[int, int]) -> bytes:
    """The kept form: opaque black, transparent where the edit applies (the left half)."""
    import io

    from PIL import Image

    image = Image.new("RGBA", size, (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def field(user: User, marker: str) -> ui.element:
    (element,) = user.find(marker=marker).elements
    return element


def click(user: User, element: ui.element) -> None:
    """Click this one element, as ``user.find(...).click()`` clicks what it found."""
    UserInteraction(user, {element}, None).click()


def chip(user: User, name: str) -> ui.element:
    """The visible chip named ``name`` (its aria-label)."""
    (found,) = [
        c
        for c in marked(user, "suggestion") + marked(user, "recent-prompt")
        if c.visible and c.props.get("aria-label") == name
    ]
    return found


def dialog_of(user: User, marker: str) -> ui.dialog:
    """The open dialog holding the element marked ``marker``."""
    target = field(user, marker)
    (dialog,) = [d for d in open_dialogs(user) if target in d.descendants()]
    return dialog


async def test_retry_opens_the_form_filled_in_and_runs_the_edited_prompt(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    await start_edit(user, source.id, "add glitter")  # the local engine does not know glitter
    await user.should_see("Retry", retries=50)
    (failed,) = services.registry.snapshots()
    assert failed.stage is JobStage.FAILED

    user.find(marker="retry").click()

    dialog_of(user, "prompt")  # the Edit form is open
    assert field(user, "prompt").value == "add glitter", "the prompt, ready to edit"
    assert field(user, "provider").value == "local"
    assert field(user, "quality").value == failed.spec.quality.value
    assert [s.id for s in services.registry.snapshots()] == [failed.id], "nothing queued before Start"

    user.find(marker="prompt").clear().type("sepia")
    user.find("Start Edit").click()

    assert open_dialogs(user) == []
    (job,) = [s for s in services.registry.snapshots() if s.spec.prompt == "sepia"]
    assert job.spec.source_image_id == source.id
    assert failed.id not in {s.id for s in services.registry.snapshots()}, "the failed card goes"
    final = await services.registry.wait(job.id)
    assert final.stage is JobStage.COMPLETED and final.result_image_id is not None
    result = services.store.get(final.result_image_id)
    assert result.prompt == "sepia" and result.parent_id == source.id
    await eventually(lambda: loading_cards(user) == [], message="the cards to go")


async def test_retry_confirmed_unchanged_is_the_next_attempt_with_the_same_settings(user: User) -> None:
    await user.open("/")
    services = app_services()
    services.providers.add(RefusingProvider())
    first = services.studio.submit_generate("teal stripes", Quality.LOW, "refusing", (1280, 768))
    await services.registry.wait(first)
    await user.should_see("Retry", retries=50)

    user.find(marker="retry").click()
    assert field(user, "prompt").value == "teal stripes"
    assert field(user, "quality").value == "low"
    assert field(user, "provider").value == "refusing"
    assert field(user, "size").value == "Landscape · 1280×768"
    user.find("Generate").click()

    (again,) = services.registry.snapshots()
    assert again.id != first and again.attempt == 2, "the next attempt of the same job"
    assert again.spec.prompt == "teal stripes" and again.spec.size == (1280, 768)
    assert again.spec.quality is Quality.LOW and again.spec.provider == "refusing"
    await user.should_see("Failed (attempt 2)", retries=50)


async def test_retry_of_a_generation_with_another_provider_queues_a_new_job(user: User) -> None:
    await user.open("/")
    services = app_services()
    services.providers.add(RefusingProvider())
    first = services.studio.submit_generate("teal stripes", Quality.HIGH, "refusing", (768, 1280))
    await services.registry.wait(first)
    await user.should_see("Retry", retries=50)
    before = len(services.store)

    user.find(marker="retry").click()
    user.find(marker="provider").click()
    user.find("Local engine (offline)").click()
    user.find("Generate").click()

    (job,) = services.registry.snapshots()
    assert job.spec.provider == "local" and job.attempt == 1
    assert job.spec.size == (768, 1280) and job.spec.quality is Quality.HIGH
    assert (await services.registry.wait(job.id)).stage is JobStage.COMPLETED
    assert len(services.store) == before + 1


async def test_retry_of_a_region_edit_keeps_its_area(user: User) -> None:
    await user.open("/")
    services = app_services()
    services.providers.add(RefusingAreaProvider())
    source = services.store.list()[0]
    mask = await services.studio.prepare_mask(source.id, kept_mask((source.width, source.height)))
    first = services.studio.submit_edit(source.id, "blur 4", Quality.LOW, "refusing-area", mask=mask)
    await services.registry.wait(first)
    await user.should_see("Retry", retries=50)

    user.find(marker="retry").click()
    assert field(user, "provider").value == "refusing-area"
    assert set(field(user, "provider").options) <= {
        p.name for p in services.providers.offering(JobKind.EDIT, mask=True)
    }, "while an area is set, only providers that can edit one"
    user.find(marker="prompt").clear().type("blur 8")
    user.find("Start Edit").click()

    (job,) = services.registry.snapshots()
    assert job.spec.prompt == "blur 8" and job.spec.mask == mask, "the same area"
    assert job.id != first


async def test_run_again_queues_the_same_generation_with_a_new_result(user: User) -> None:
    await user.open("/")
    services = app_services()
    user.find(marker="new-image").click()
    user.find(marker="prompt").type("a red circle on a blue background")
    user.find(marker="size").click()
    user.find("Portrait · 768×1280").click()
    user.find("Generate").click()
    (first,) = services.registry.snapshots()
    done = await services.registry.wait(first.id)
    assert done.result_image_id is not None
    await services.journal.flush()  # the journal writes off the event loop
    await eventually(lambda: loading_cards(user) == [], message="the first result")
    image = services.store.get(done.result_image_id)

    user.find(marker=f"image-{image.id}").click()
    (again_button,) = marked(user, "run-again")
    assert again_button.visible, "an image made by a job can run again"
    click(user, again_button)

    def queued() -> list[JobSnapshot]:
        return [s for s in services.registry.snapshots() if s.id != first.id]

    await eventually(queued, message="the job queued again")
    (job,) = queued()
    assert job.spec.kind is JobKind.GENERATE
    assert job.spec.prompt == "a red circle on a blue background"
    assert job.spec.size == (768, 1280) and job.spec.quality == first.spec.quality
    assert job.spec.seed is not None, "a new seed, chosen for this run"
    assert user.notify.contains("Queued. It runs in the background; the gallery shows its progress.")
    await eventually(lambda: open_dialogs(user) == [], message="the dialog to close")
    final = await services.registry.wait(job.id)
    assert final.stage is JobStage.COMPLETED
    assert final.result_image_id is not None and final.result_image_id != image.id
    assert services.store.get(final.result_image_id).prompt == image.prompt
    # Another picture, even from the local engine (which draws the same prompt the same way).
    first_bytes = await services.store.read_bytes(image.id)
    assert await services.store.read_bytes(final.result_image_id) != first_bytes


async def test_run_again_is_offered_only_for_an_image_a_job_made(user: User) -> None:
    services = app_services()
    upload = await services.store.add(_png(), origin=ImageOrigin.UPLOAD, name="mine.png")
    await user.open("/")
    user.find(marker=f"image-{upload.id}").click()
    (again_button,) = marked(user, "run-again")
    assert not again_button.visible


async def test_run_again_of_an_edit_whose_original_is_gone_says_so(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    job_id = services.studio.submit_edit(source.id, "invert", Quality.LOW, "local")
    done = await services.registry.wait(job_id)
    assert done.result_image_id is not None
    await services.journal.flush()
    await services.store.delete(source.id)
    result = done.result_image_id
    await eventually(
        lambda: marked(user, f"image-{result}") and not marked(user, f"image-{source.id}"),
        message="the gallery to follow",
    )

    user.find(marker=f"image-{done.result_image_id}").click()
    user.find(marker="run-again").click()

    await eventually(
        lambda: user.notify.contains("The original of this edit was deleted, so it cannot run again."),
        message="the explanation",
    )
    assert [s.id for s in services.registry.snapshots()] == [job_id], "nothing new queued"


async def test_phrase_chips_add_to_the_prompt_and_recent_chips_replace_it(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    earlier = []
    for prompt in ("blur 2", "sharpen", "blur 2", "mirror"):  # one after the other: newest last
        earlier.append(services.studio.submit_edit(source.id, prompt, Quality.LOW, "local"))
        await services.registry.wait(earlier[-1])
    await services.journal.flush()

    user.find(marker=f"image-{source.id}").click()
    user.find(marker="edit").click()

    chips = [c for c in marked(user, "suggestion") if c.visible]
    names = {str(c.props["aria-label"]) for c in chips}
    assert "Add “sepia” to the prompt" in names and "Add “vignette” to the prompt" in names
    assert [c.props.get("tabindex") for c in chips].count("0") == 1, "the chips are one Tab stop"
    hint = dialog_of(user, "prompt")
    assert "Understands:" not in " ".join(
        str(e.text) for e in hint.descendants() if isinstance(e, ui.label) and e.visible
    ), "the wall of phrases became chips"

    click(user, chip(user, "Add “sepia” to the prompt"))
    assert field(user, "prompt").value == "sepia"
    click(user, chip(user, "Add “vignette” to the prompt"))
    assert field(user, "prompt").value == "sepia and vignette"

    await eventually(lambda: marked(user, "recent-prompt"), message="the recent prompts")
    recent = marked(user, "recent-prompt")
    assert [c.props["title"] for c in recent] == ["mirror", "blur 2", "sharpen"], "newest first, distinct"
    assert all(str(c.props["aria-label"]).startswith("Use the prompt “") for c in recent)
    click(user, recent[1])
    assert field(user, "prompt").value == "blur 2", "a recent prompt replaces the text"

    user.find("Start Edit").click()
    (job,) = [s for s in services.registry.snapshots() if s.id not in earlier]
    assert job.spec.prompt == "blur 2"


async def test_recent_prompts_are_per_kind(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    await services.registry.wait(services.studio.submit_edit(source.id, "sepia", Quality.LOW, "local"))
    await services.registry.wait(services.studio.submit_generate("teal stripes", Quality.LOW, "local"))
    await services.journal.flush()

    user.find(marker="new-image").click()
    await eventually(lambda: marked(user, "recent-prompt"), message="the recent prompts")
    assert [c.props["title"] for c in marked(user, "recent-prompt")] == ["teal stripes"]
    words = {str(c.props["aria-label"]) for c in marked(user, "suggestion")}
    assert "Add “sunset” to the prompt" in words and "Add “circles” to the prompt" in words
    click(user, chip(user, "Add “sunset” to the prompt"))
    click(user, chip(user, "Add “circles” to the prompt"))
    assert field(user, "prompt").value == "sunset, circles"


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


# -- in a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
def test_chips_are_one_tab_stop_walked_by_arrows_in_chromium(tmp_path: Path) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("headless Chromium not found")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from tests.app_process import running_app
    from tests.test_browser import ARTIFACTS, By, chrome, click, wait

    def keys(*pressed: str) -> None:
        ActionChains(driver).send_keys(*pressed).perform()

    def focused_name() -> str:
        return str(driver.switch_to.active_element.get_attribute("aria-label") or "")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app(tmp_path) as url:
        driver = chrome()
        try:
            driver.get(url)
            wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6)
            click(driver, By.CSS_SELECTOR, ".imgedit-gallery .imgedit-image-card")
            click(driver, By.XPATH, "//button[.//span[normalize-space()='Edit']]")
            wait(driver).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "[aria-label='Phrases to add'] button")
            )
            prompt = driver.find_element(By.CSS_SELECTOR, "input[aria-label='What should change?']")
            wait(driver, 5).until(lambda d: d.switch_to.active_element == prompt)
            prompt.send_keys("sepia")
            for _ in range(4):  # past the prompt's clear button, onto the group's one stop
                keys(Keys.TAB)
                if focused_name().startswith("Add “"):
                    break
            assert focused_name() == "Add “black and white” to the prompt", focused_name()
            keys(Keys.ARROW_RIGHT)
            assert focused_name() == "Add “sepia” to the prompt"
            keys(Keys.END)
            last = focused_name()
            keys(Keys.HOME, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
            assert focused_name() == "Add “sharpen” to the prompt", focused_name()
            keys(Keys.ENTER)
            wait(driver, 5).until(lambda d: prompt.get_attribute("value") == "sepia and sharpen")
            assert last == "Add “solarize” to the prompt", last
            keys(Keys.TAB)
            assert not focused_name().startswith("Add “"), "Tab leaves the group at once"
            driver.save_screenshot(str(ARTIFACTS / "prompt-chips.png"))
        finally:
            driver.quit()
