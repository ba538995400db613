"""Advanced settings (negative prompt, seed, steps, guidance, strength), through NiceGUI's
simulated user: folded by default, offered only for a provider that takes them, reaching the
provider as set, refused out of range with nothing queued, and the seed shown on the result."""

from __future__ import annotations

import io

from nicegui import ui
from nicegui.testing import User
from PIL import Image

from imgedit.editing import Advanced
from imgedit.jobs import JobStage
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ADVANCED, Capabilities, ProgressSink, ProviderRequest, ProviderResult
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import marked, open_dialogs


class Tunable:
    """A provider that takes every Advanced setting and remembers each request it was given."""

    name = "tunable"
    label = "Tunable test server"
    capabilities = Capabilities(edit=True, generate=True, advanced=frozenset(ADVANCED))

    def __init__(self) -> None:
        self.requests: list[ProviderRequest] = []

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 1.0

    def describe(self, kind: JobKind) -> str:
        return "Takes every setting."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return self._answer(request)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return self._answer(request)

    def _answer(self, request: ProviderRequest) -> ProviderResult:
        self.requests.append(request)
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (request.seed or 0) % 256).save(buffer, "PNG")
        return ProviderResult(image=buffer.getvalue())


def one(user: User, marker: str) -> ui.element:
    (found,) = [e for e in marked(user, marker) if e.visible or marker == "advanced"]
    return found


def shown(element: ui.element) -> bool:
    """Visible, and so is every ancestor up to the dialog."""
    while element is not None:
        if not element.visible:
            return False
        element = element.parent_slot.parent if element.parent_slot else None  # type: ignore[assignment]
    return True


async def open_new_image(user: User, provider_label: str) -> None:
    user.find(marker="new-image").click()
    user.find(marker="provider").click()
    user.find(provider_label).click()


async def test_offered_only_for_a_provider_that_takes_them_and_folded(user: User) -> None:
    await user.open("/")
    app_services().providers.add(Tunable())
    user.find(marker="new-image").click()
    (panel,) = marked(user, "advanced")
    assert not shown(panel), "the local engine takes no Advanced setting: no panel"

    user.find(marker="provider").click()
    user.find("Tunable test server").click()
    assert shown(panel) and panel.value is False, "offered, folded by default"
    (strength,) = marked(user, "strength")
    assert not strength.visible, "strength is for edits"
    assert marked(user, "seed")[0].enabled is False, "the seed is random until it is fixed"
    assert marked(user, "seed")[0].props["hint"] == "0 to 4294967295"


async def test_the_settings_reach_the_provider_and_the_seed_shows_on_the_result(user: User) -> None:
    await user.open("/")
    services = app_services()
    tunable = Tunable()
    services.providers.add(tunable)
    await open_new_image(user, "Tunable test server")
    user.find(marker="prompt").type("a lighthouse at night")
    marked(user, "negative-prompt")[0].set_value("blurry, <b>text</b>")
    marked(user, "random-seed")[0].set_value(False)
    marked(user, "seed")[0].set_value(4242)
    marked(user, "steps")[0].set_value(20)
    marked(user, "guidance")[0].set_value(7.5)
    user.find("Generate").click()

    await eventually(lambda: len(tunable.requests) == 1, message="the provider was asked")
    (request,) = tunable.requests
    assert (request.negative_prompt, request.seed, request.steps, request.guidance, request.strength) == (
        "blurry, <b>text</b>",
        4242,
        20,
        7.5,
        None,
    )
    (job,) = services.registry.snapshots()
    final = await services.registry.wait(job.id)
    assert final.stage is JobStage.COMPLETED and final.result_image_id is not None
    await services.journal.flush()
    await eventually(lambda: open_dialogs(user) == [], message="the dialog closed")

    await eventually(lambda: marked(user, f"image-{final.result_image_id}"), message="the result's card")
    user.find(marker=f"image-{final.result_image_id}").click()
    await user.should_see("seed 4242 · not: “blurry, <b>text</b>”")

    # A random seed is chosen for each job, and shown too.
    user.find(marker="new-image").click()
    assert marked(user, "random-seed")[0].value is True, "a fresh open starts random again"
    user.find(marker="provider").click()
    user.find("Tunable test server").click()
    user.find(marker="prompt").type("a lighthouse at night")
    user.find("Generate").click()
    await eventually(lambda: len(tunable.requests) == 2, message="the second job")
    assert tunable.requests[1].seed is not None and tunable.requests[1].negative_prompt == ""


async def test_out_of_range_is_refused_with_nothing_queued(user: User) -> None:
    await user.open("/")
    services = app_services()
    services.providers.add(Tunable())
    await open_new_image(user, "Tunable test server")
    user.find(marker="prompt").type("a lighthouse")
    marked(user, "steps")[0].set_value(500)
    user.find("Generate").click()
    (prompt,) = marked(user, "prompt")
    await eventually(lambda: prompt.props.get("error") is True, message="the error on the form")
    assert prompt.props["error-message"] == "Steps must be between 1 and 150."
    assert services.registry.snapshots() == [] and open_dialogs(user), "nothing queued, the form stays"


async def test_an_edit_takes_strength_and_retry_keeps_the_settings(user: User) -> None:
    await user.open("/")
    services = app_services()
    tunable = Tunable()
    services.providers.add(tunable)
    source = services.store.list()[0]
    user.find(marker=f"image-{source.id}").click()
    user.find(marker="edit").click()
    user.find(marker="provider").click()
    user.find("Tunable test server").click()
    user.find(marker="prompt").type("make it autumn")
    marked(user, "strength")[0].set_value(0.35)
    marked(user, "negative-prompt")[0].set_value("snow")
    user.find("Start Edit").click()
    await eventually(lambda: len(tunable.requests) == 1, message="the edit")
    assert tunable.requests[0].strength == 0.35 and tunable.requests[0].negative_prompt == "snow"
    (job,) = services.registry.snapshots()
    assert job.spec.strength == 0.35 and job.spec.seed is not None


async def test_run_again_keeps_every_advanced_setting_with_a_new_seed(user: User) -> None:
    """ "Run again" promises the same settings and a new seed: the negative prompt, steps, guidance
    and strength the job had reach the provider again."""
    await user.open("/")
    services = app_services()
    tunable = Tunable()
    services.providers.add(tunable)
    source = services.store.list()[0]
    settings = Advanced(negative_prompt="snow, fog", seed=1234, steps=37, guidance=9.5, strength=0.4)
    first = services.studio.submit_edit(
        source.id, "make it autumn", Quality.LOW, "tunable", advanced=settings
    )
    done = await services.registry.wait(first)
    assert done.stage is JobStage.COMPLETED and done.result_image_id is not None
    await services.journal.flush()  # Run again reads the job from the journal
    result = done.result_image_id
    await eventually(lambda: marked(user, f"image-{result}"), message="the result in the gallery")

    user.find(marker=f"image-{result}").click()
    user.find(marker="run-again").click()
    await eventually(lambda: len(tunable.requests) == 2, message="the job run again")

    again = tunable.requests[1]
    assert again.prompt == "make it autumn"
    assert (again.negative_prompt, again.steps, again.guidance, again.strength) == ("snow, fog", 37, 9.5, 0.4)
    assert again.seed is not None and again.seed != 1234, "a new seed"
    await eventually(lambda: open_dialogs(user) == [], message="the dialog to close")
