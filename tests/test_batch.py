"""Batch edits (issue 11): one prompt over a selection of images, one job per image sharing a
batch id. The studio and registry on a real data dir (each job's own Cancel, the whole batch's,
a restart keeps the batch), and a simulated user who selects images, edits them in one go,
watches the batch in the jobs tray and cancels the rest of it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User
from PIL import Image

from imgedit.config import Settings
from imgedit.errors import ImgEditError
from imgedit.jobs import JobStage
from imgedit.models import ImageId, ImageOrigin, JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from imgedit.services import Services, build_services
from tests.big_gallery import fill
from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually
from tests.test_gallery_ui import image_cards, loading_cards, marked, open_dialogs


class StepProvider:
    """Each call waits for its own release (``release(n)`` lets the n oldest waiting calls
    finish), so a test decides how many of a batch are done."""

    name = "step"
    label = "Step test engine"
    capabilities = Capabilities(edit=True, generate=True, real_progress=True)

    def __init__(self) -> None:
        self.waiting: list[asyncio.Event] = []
        self.calls = 0

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 5.0

    def describe(self, kind: JobKind) -> str:
        return "Waits for the test, one call at a time."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        self.calls += 1
        sink.progress(0.5, "Half way")
        gate = asyncio.Event()
        self.waiting.append(gate)
        await gate.wait()
        return ProviderResult(image=_png((40, 200, 90)))

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self.edit(request, sink)

    def release(self, count: int) -> None:
        for gate in [g for g in self.waiting if not g.is_set()][:count]:
            gate.set()


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(out, "PNG")
    return out.getvalue()


# -- the studio and the registry, on a real data dir ------------------------------------------------


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Services]]:
    """Start the services on one data dir, as ``python main.py`` does; several times if asked."""
    started: list[Services] = []

    def make(slots: int = 2) -> Services:
        services = build_services(
            Settings(data_dir=tmp_path / "data", samples=False, show=False, max_concurrent=slots)
        )
        services.providers.add(GatedProvider())
        started.append(services)
        services.start()
        return services

    yield make
    for services in started:
        await services.close()


async def add_images(services: Services, count: int) -> list[ImageId]:
    records = [
        await services.store.add(_png((i * 20, 50, 100)), origin=ImageOrigin.UPLOAD, name=f"photo {i}.png")
        for i in range(count)
    ]
    return [r.id for r in records]


def gated(services: Services) -> GatedProvider:
    provider = services.providers.get("gated")
    assert isinstance(provider, GatedProvider)
    return provider


async def test_eight_images_make_eight_jobs_and_three_cancelled_add_nothing(
    start: Callable[..., Services],
) -> None:
    services = start()
    sources = await add_images(services, 8)
    before = {r.id for r in services.store.list()}

    batch, jobs = services.studio.submit_batch(sources, "  add  a vignette ", Quality.LOW, "gated")

    assert len(jobs) == 8 and len(set(jobs)) == 8
    specs = {s.id: s.spec for s in services.registry.snapshots()}
    assert set(specs) == set(jobs)
    assert {spec.batch for spec in specs.values()} == {batch} and batch
    assert {spec.prompt for spec in specs.values()} == {"add a vignette"}
    assert [specs[j].source_image_id for j in jobs] == sources, "one job per image, in order"
    assert {(spec.provider, spec.quality) for spec in specs.values()} == {("gated", Quality.LOW)}

    # Each image's own Cancel: one running, two still queued.
    await eventually(gated(services).started.is_set, message="the first jobs to start")
    cancelled = [jobs[0], jobs[4], jobs[7]]
    for job_id in cancelled:
        assert services.registry.cancel(job_id)
    for job_id in cancelled:
        assert (await services.registry.wait(job_id)).stage is JobStage.CANCELLED
    gated(services).gate.set()
    finals = {j: await services.registry.wait(j) for j in jobs}

    kept = [j for j in jobs if j not in cancelled]
    assert [finals[j].stage for j in kept] == [JobStage.COMPLETED] * 5
    added = [r for r in services.store.list() if r.id not in before]
    assert len(added) == 5, "exactly one new image per job that was not cancelled"
    parent_of = {finals[j].result_image_id: specs[j].source_image_id for j in kept}
    assert {r.id: r.parent_id for r in added} == parent_of, "each result is an edit of its own image"
    assert all(r.prompt == "add a vignette" for r in added)
    assert services.registry.cancel_batch(batch) == 0, "nothing left to cancel"


async def test_cancel_batch_cancels_every_unfinished_job_of_the_batch_only(
    start: Callable[..., Services],
) -> None:
    services = start(slots=2)
    sources = await add_images(services, 5)
    before = len(services.store)
    other = services.studio.submit_edit(sources[0], "on its own", Quality.LOW, "gated")
    batch, jobs = services.studio.submit_batch(sources, "sepia", Quality.LOW, "gated")
    await eventually(gated(services).started.is_set, message="a job to start")

    assert services.registry.cancel_batch(batch) == 5
    finals = [await services.registry.wait(j) for j in jobs]
    assert [f.stage for f in finals] == [JobStage.CANCELLED] * 5
    assert services.registry.snapshot(other).stage is JobStage.PROCESSING, "another job goes on"
    gated(services).gate.set()
    assert (await services.registry.wait(other)).stage is JobStage.COMPLETED
    assert len(services.store) == before + 1, "only the job outside the batch added an image"
    assert services.registry.cancel_batch("") == 0


async def test_a_bad_batch_queues_nothing(start: Callable[..., Services]) -> None:
    services = start()
    sources = await add_images(services, 3)
    studio = services.studio
    for images, prompt, provider in (
        (sources, "   ", "local"),  # no prompt
        (sources, "sepia", "nowhere"),  # no such provider
        ([*sources, "0" * 32], "sepia", "local"),  # one image is gone
        ([], "sepia", "local"),  # nothing selected
        ([f"{i:032x}" for i in range(101)], "sepia", "local"),  # over the limit
    ):
        with pytest.raises(ImgEditError):
            studio.submit_batch(images, prompt, Quality.LOW, provider)
    assert services.registry.snapshots() == [], "validated before anything was queued"


async def test_the_batch_id_survives_a_restart(start: Callable[..., Services]) -> None:
    first = start(slots=1)
    sources = await add_images(first, 3)
    batch, jobs = first.studio.submit_batch(sources, "grayscale", Quality.LOW, "gated")
    await eventually(gated(first).started.is_set, message="the first job to start")
    await first.registry.shutdown()  # the process stops with the batch unfinished
    await first.journal.flush()

    second = start(slots=1)
    snapshots = {s.id: s for s in second.registry.snapshots()}
    assert set(snapshots) == set(jobs)
    assert {s.spec.batch for s in snapshots.values()} == {batch}
    assert second.registry.cancel_batch(batch) == 3
    assert {(await second.registry.wait(j)).stage for j in jobs} == {JobStage.CANCELLED}


# -- a simulated user --------------------------------------------------------------------------------


def text_of(element: ui.element) -> str:
    return str(element.text)  # type: ignore[attr-defined]


def batch_status(user: User) -> str:
    labels = [
        e for e in marked(user, "tray-batch") for e in e.descendants() if "imgedit-tray-status" in e.classes
    ]
    assert len(labels) == 1, "one row for the batch"
    return text_of(labels[0])


async def select_and_edit(user: User, image_ids: list[ImageId], prompt: str) -> StepProvider:
    services = app_services()
    step = StepProvider()
    services.providers.add(step)
    for image_id in image_ids:
        user.find(marker=f"select-{image_id}").click()
    (button,) = marked(user, "edit-selected")
    assert text_of(button) == f"Edit {len(image_ids)} images"
    user.find(marker="edit-selected").click()
    await user.should_see(f"Edit {len(image_ids)} images")
    user.find(marker="batch-prompt").type(prompt)
    user.find(marker="batch-provider").click()
    user.find("Step test engine").click()
    user.find(marker="batch-start").click()
    return step


async def open_tray(user: User) -> None:
    user.find(marker="tray-badge").click()
    (drawer,) = marked(user, "tray")
    assert isinstance(drawer, ui.right_drawer) and drawer.value


async def test_edit_three_selected_images_in_one_go(user: User) -> None:
    await user.open("/")
    services = app_services()
    chosen = [r.id for r in services.store.list()[:3]]
    before = len(image_cards(user))

    step = await select_and_edit(user, chosen, "add a vignette")

    assert open_dialogs(user) == [], "Start closes the dialog at once"
    assert not any(e.visible for e in marked(user, "selection-bar")), "the selection is cleared"
    await eventually(lambda: len(loading_cards(user)) == 3, message="three loading cards")
    batches = {s.spec.batch for s in services.registry.snapshots()}
    assert len(batches) == 1 and "" not in batches, "one batch"
    await open_tray(user)
    await eventually(lambda: batch_status(user) == "0 of 3 done", message="the batch row in the tray")
    assert marked(user, "tray-job") == [], "the batch's jobs are one row until expanded"

    await eventually(lambda: step.calls == 3, message="the three jobs to start")
    step.release(1)
    await eventually(lambda: batch_status(user) == "1 of 3 done", message="one of three done")
    await eventually(lambda: len(loading_cards(user)) == 2, message="two loading cards left")
    step.release(2)
    await eventually(lambda: len(image_cards(user)) == before + 3, message="three results")
    await eventually(lambda: loading_cards(user) == [], message="the loading cards to go")
    results = services.store.list()[:3]
    assert {r.parent_id for r in results} == set(chosen)
    assert {r.prompt for r in results} == {"add a vignette"}
    await eventually(lambda: marked(user, "tray-batch") == [], message="a finished batch leaves the tray")


async def test_cancel_batch_in_the_tray_cancels_the_rest(user: User) -> None:
    await user.open("/")
    services = app_services()
    chosen = [r.id for r in services.store.list()[:3]]
    before = len(services.store)

    step = await select_and_edit(user, chosen, "grayscale")
    await eventually(lambda: step.calls == 3, message="the three jobs to start")
    step.release(1)
    await open_tray(user)
    await eventually(lambda: batch_status(user) == "1 of 3 done", message="one of three done")

    # Expanded, the batch lists its jobs (each with its own Cancel); collapsed again, it does not.
    batch = next(s.spec.batch for s in services.registry.snapshots())
    (toggle,) = marked(user, f"tray-batch-toggle-{batch}")
    assert toggle.props["aria-expanded"] == "false"
    assert toggle.props["aria-label"] == "Show the jobs of the batch “grayscale”"
    user.find(marker=f"tray-batch-toggle-{batch}").click()
    assert toggle.props["aria-expanded"] == "true"
    assert toggle.props["aria-label"] == "Hide the jobs of the batch “grayscale”"
    assert len(marked(user, "tray-job")) == 2, "the two unfinished jobs listed at once"
    user.find(marker=f"tray-batch-toggle-{batch}").click()
    assert marked(user, "tray-job") == []

    (cancel,) = marked(user, "tray-cancel-batch")
    assert isinstance(cancel, ui.button) and text_of(cancel) == "Cancel batch"
    assert cancel.props["aria-label"] == "Cancel batch “grayscale”"
    user.find(marker="tray-cancel-batch").click()
    assert loading_cards(user) == [], "the cards go at once"
    assert user.notify.contains("Cancelled 2 jobs of the batch.")
    step.release(2)  # even if the provider answered now, nothing may land
    jobs = [s.id for s in services.registry.snapshots()]
    finals = [await services.registry.wait(j) for j in jobs]
    assert sorted(f.stage for f in finals) == sorted(
        [JobStage.COMPLETED, JobStage.CANCELLED, JobStage.CANCELLED]
    )
    assert len(services.store) == before + 1
    await eventually(lambda: marked(user, "tray-batch") == [], message="the batch row to go")


@pytest.fixture
def a_hundred_and_one(data_dir: Path) -> list[str]:
    """A data dir of 101 images, before the app starts: request it before ``user``."""
    return fill(data_dir, 101)


async def test_more_than_a_hundred_selected_is_refused_in_the_dialog(
    a_hundred_and_one: list[str], user: User
) -> None:
    await user.open("/")
    while any(e.visible for e in marked(user, "show-more")):
        user.find(marker="show-more").click()
    first = app_services().store.list()[0].id
    user.find(marker=f"select-{first}").click()
    user.find(marker="select-all").click()
    user.find(marker="edit-selected").click()
    await user.should_see("A batch edits at most 100 images; 101 are selected.")
    (start,) = marked(user, "batch-start")
    assert start.enabled is False
    assert text_of(marked(user, "batch-more")[0]) == "and 89 more"
    assert app_services().registry.snapshots() == []


# -- a real browser: axe on the dialog and the tray's batch row, Cancel batch by keyboard ----------


@pytest.mark.browser
def test_batch_dialog_and_tray_row_in_a_browser(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from tests.a11y import focused_ax_node
    from tests.app_process import running_app
    from tests.fake_sdwebui import FakeWebUI
    from tests.loopback import serve
    from tests.test_a11y_browser import assert_no_blocking_violations, open_gallery, settle
    from tests.test_browser import By, chrome, click, click_button, dialog_field, wait

    def loading(d: webdriver.Chrome) -> int:
        return len(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card"))

    fake = FakeWebUI(step_seconds=0.02)
    fake.pause_at(6)  # one server: the first job holds it, the other two wait for it
    driver = chrome()
    try:
        with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
            for scheme in ("dark", "light"):
                open_gallery(driver, url, scheme)
                for index in range(3):
                    boxes = driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-select")
                    boxes[index].click()
                click_button(driver, "Edit 3 images")
                field = dialog_field(driver)
                settle(driver)
                assert len(driver.find_elements(By.CSS_SELECTOR, ".q-dialog img[alt]")) == 3
                assert_no_blocking_violations(driver, f"the batch dialog ({scheme})")
                if scheme == "dark":
                    field.send_keys(Keys.ESCAPE)
                    wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))
            field.send_keys("oil painting")
            click_button(driver, "Start 3 edits")
            wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))
            wait(driver).until(lambda d: loading(d) == 3)
            assert fake.paused.wait(30), "the first job reached step 6 and waits there"

            click(driver, By.CSS_SELECTOR, ".imgedit-tray-badge")
            wait(driver).until(
                lambda d: "0 of 3 done" in d.find_element(By.CSS_SELECTOR, ".imgedit-tray").text
            )
            click(driver, By.CSS_SELECTOR, ".imgedit-tray [aria-label^='Show the jobs of the batch']")
            wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-tray-row")) == 4)
            settle(driver)
            assert_no_blocking_violations(driver, "the tray with a batch, expanded (light)")

            # Keyboard: Tab from the batch's Show / Hide toggle reaches Cancel batch, Enter presses it.
            toggle = driver.find_element(
                By.CSS_SELECTOR, ".imgedit-tray [aria-label^='Hide the jobs of the batch']"
            )
            driver.execute_script("arguments[0].focus()", toggle)
            ActionChains(driver).send_keys(Keys.TAB).perform()
            assert focused_ax_node(driver) == {"role": "button", "name": "Cancel batch “oil painting”"}
            cancel = driver.switch_to.active_element
            cancel.send_keys(Keys.ENTER)
            wait(driver).until(lambda d: loading(d) == 0)
            wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-tray-row"))
            fake.resume()
    finally:
        fake.resume()
        driver.quit()
