"""Before and after (imgedit/ui/compare.py, static/compare.js): an edited image's dialog offers
Compare, which shows the result over its source with a slider; an upload has nothing to compare
with; History's completed edits offer it too. In headless Chromium the slider moves by keys and
by a drag, and the clip follows. Screenshot: tests/artifacts/compare.png.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User
from PIL import Image, ImageDraw, ImageOps

from imgedit.models import ImageOrigin, ImageRecord
from imgedit.storage import ImageStore
from tests.conftest import app_services
from tests.test_gallery_ui import marked, open_dialogs
from tests.test_history import job_row


def png(size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def edited_pair(store: ImageStore) -> tuple[ImageRecord, ImageRecord]:
    source = await store.add(png(), origin=ImageOrigin.UPLOAD, name="harbour.png")
    result = await store.add(
        png(colour=(40, 40, 200)), origin=ImageOrigin.EDIT, prompt="invert", parent_id=source.id
    )
    return source, result


def only(user: User, marker: str) -> ui.element:
    (element,) = marked(user, marker)
    return element


def assert_compares(user: User, result: ImageRecord, source: ImageRecord) -> None:
    """The compare dialog is open with the result over its source and a named slider at the middle."""
    dialog = next(d for d in open_dialogs(user) if only(user, "compare-dialog") in d.descendants())
    assert dialog.props["aria-labelledby"] == f"c{only(user, 'compare-title').id}"
    before, after = only(user, "compare-before"), only(user, "compare-after")
    assert before.props["src"] == f"/media/images/{source.id}"
    assert after.props["src"] == f"/media/images/{result.id}"
    assert before.props["alt"] == "Before: harbour.png"
    assert after.props["alt"].startswith("After: ")
    slider = only(user, "compare-slider")
    assert slider.props["role"] == "slider"
    assert slider.props["aria-label"] == "Compare with the original"
    assert (slider.props["aria-valuemin"], slider.props["aria-valuemax"], slider.props["aria-valuenow"]) == (
        "0",
        "100",
        "50",
    )
    assert slider.props["tabindex"] == "0", "reached by Tab"
    frame = only(user, "compare-frame")
    assert f"aspect-ratio: {result.width} / {result.height}" in "; ".join(
        f"{k}: {v}" for k, v in frame.style.items()
    )
    texts = {e.text for e in dialog.descendants() if isinstance(e, ui.label)}
    assert {"Before", "After"} <= texts


async def test_an_edited_image_compares_with_its_original(user: User) -> None:
    services = app_services()
    source, result = await edited_pair(services.store)
    await user.open("/")
    user.find(marker=f"image-{result.id}").click()
    compare = only(user, "compare")
    assert compare.visible, "an image with its original in the gallery offers Compare"
    user.find(marker="compare").click()
    assert_compares(user, result, source)
    assert len(open_dialogs(user)) == 2, "over the image dialog, which stays"
    user.find(marker="compare-close").click()
    assert len(open_dialogs(user)) == 1


async def test_an_upload_or_an_edit_of_a_deleted_image_offers_no_compare(user: User) -> None:
    services = app_services()
    source, result = await edited_pair(services.store)
    await user.open("/")
    user.find(marker=f"image-{source.id}").click()
    assert not only(user, "compare").visible, "an upload has nothing to compare with"
    user.find(marker=f"image-{result.id}").click()  # the gallery card, behind the dialog
    assert only(user, "compare").visible
    await services.store.delete(source.id)
    user.find(marker=f"image-{result.id}").click()
    assert not only(user, "compare").visible, "its original was deleted"


async def test_history_compares_a_completed_edit(user: User) -> None:
    services = app_services()
    source, result = await edited_pair(services.store)
    done = job_row(prompt="invert", source=source.id, result=result.id, created_at=10)
    failed = job_row(prompt="add glitter", source=source.id, stage="failed", error="no", created_at=11)
    drawn = job_row(prompt="teal stripes", kind="generate", result=source.id, created_at=12)
    services.store.db.execute_many([done, failed, drawn])
    await user.open("/history")
    (button,) = marked(user, "history-compare")
    assert f"compare-{done[1][0]}" in button._markers, "only the completed edit"
    assert button.props["aria-label"] == "Compare with the original"
    user.find(marker=f"compare-{done[1][0]}").click()
    assert_compares(user, result, source)


# -- in a real browser ---------------------------------------------------------------------------

SLIDER = ".imgedit-compare-handle"
STATE = """
const handle = document.querySelector('.imgedit-compare-handle');
const after = document.querySelector('.imgedit-compare-after');
if (!handle || !after) return null;
return [handle.getAttribute('aria-valuenow'), getComputedStyle(after).clipPath,
        handle.getAttribute('aria-valuetext')];
"""


def picture(size: tuple[int, int]) -> Image.Image:
    """A harbour of sorts: sky, sea, a sun and boats, so both halves read at a glance."""
    width, height = size
    image = Image.new("RGB", size, (120, 180, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 0.6, width, height), fill=(20, 80, 140))
    draw.ellipse((width * 0.68, height * 0.1, width * 0.84, height * 0.34), fill=(250, 205, 60))
    for i in range(5):
        x = width * (0.08 + i * 0.18)
        draw.polygon(
            [(x, height * 0.7), (x + 70, height * 0.7), (x + 55, height * 0.78), (x + 15, height * 0.78)],
            fill=(140, 60, 40),
        )
        draw.polygon(
            [(x + 35, height * 0.45), (x + 35, height * 0.69), (x + 65, height * 0.69)], fill=(245, 245, 240)
        )
    return image


def encoded(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.browser
def test_slider_moves_by_keys_and_drag_in_chromium(tmp_path: Path) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("headless Chromium not found")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from tests.app_process import running_app
    from tests.test_browser import ARTIFACTS, By, chrome, click, wait

    store = ImageStore(tmp_path / "data")
    store.open()
    original = picture((900, 600))
    source = store.add_sync(encoded(original), origin=ImageOrigin.UPLOAD, name="harbour.png")
    sepia = ImageOps.colorize(ImageOps.grayscale(original), (40, 26, 13), (255, 235, 200))
    result = store.add_sync(encoded(sepia), origin=ImageOrigin.EDIT, prompt="sepia")
    store.db.execute("UPDATE images SET parent_id = ? WHERE id = ?", (source.id, result.id))
    store.close()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app(tmp_path) as url:
        driver = chrome()
        try:
            driver.get(url)
            card = f".imgedit-image-card img[src$='{result.id}']"
            wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, card) or None)
            click(driver, By.CSS_SELECTOR, card)
            click(driver, By.XPATH, "//button[.//span[normalize-space()='Compare']]")
            wait(driver).until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('.imgedit-compare-stage img')]"
                    ".every((i) => i.complete && i.naturalWidth > 0) || null"
                )
            )
            state = lambda: tuple(driver.execute_script(STATE))  # noqa: E731
            assert state()[0] == "50" and "50%" in state()[1]

            # Tab from the dialog's title area reaches the handle; then the keys move the cut.
            handle = driver.find_element(By.CSS_SELECTOR, SLIDER)
            for _ in range(6):
                if driver.switch_to.active_element == handle:
                    break
                ActionChains(driver).send_keys(Keys.TAB).perform()
            assert driver.switch_to.active_element == handle, "the slider is reached by Tab"
            ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()
            wait(driver, 5).until(lambda d: state()[0] == "45")
            assert state()[1] == "inset(0px 0px 0px 45%)", state()
            assert state()[2] == "45 % before, 55 % after"
            ActionChains(driver).send_keys(Keys.END).perform()
            wait(driver, 5).until(lambda d: state()[0] == "100")
            assert "100%" in state()[1]
            ActionChains(driver).send_keys(Keys.HOME).perform()
            wait(driver, 5).until(lambda d: state()[0] == "0")
            ActionChains(driver).send_keys(Keys.PAGE_UP).perform()
            wait(driver, 5).until(lambda d: state()[0] == "25")
            assert len(driver.find_elements(By.CSS_SELECTOR, ".imgedit-image-dialog")) == 1, (
                "the arrow keys did not walk the gallery behind"
            )

            # A drag with the mouse: press at 30 % of the picture, move to 70 %.
            stage = driver.find_element(By.CSS_SELECTOR, ".imgedit-compare-stage")
            width = stage.size["width"]
            (
                ActionChains(driver)
                .move_to_element_with_offset(stage, int(-width * 0.2), 0)
                .click_and_hold()
                .move_by_offset(int(width * 0.2), 0)
                .move_by_offset(int(width * 0.2), 0)
                .release()
                .perform()
            )
            wait(driver, 5).until(lambda d: abs(int(state()[0]) - 70) <= 1)
            assert driver.switch_to.active_element == handle, "the keys go on from the drag"
            ActionChains(driver).send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT).perform()
            wait(driver, 5).until(lambda d: abs(int(state()[0]) - 60) <= 1)
            driver.save_screenshot(str(ARTIFACTS / "compare.png"))

            # A phone: the picture fits the width, the handle stays on it, a touch-sized target.
            driver.set_window_size(390, 844)
            wait(driver, 5).until(
                lambda d: d.execute_script(
                    "const f = document.querySelector('.imgedit-compare-frame').getBoundingClientRect();"
                    "return f.left >= 0 && f.right <= window.innerWidth && f.width > 250 || null"
                )
            )
            box = driver.execute_script(
                "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                "return [r.width, r.height];",
                SLIDER,
            )
            assert box[0] >= 44 and box[1] >= 44, box
            driver.save_screenshot(str(ARTIFACTS / "compare-phone.png"))
        finally:
            driver.quit()
