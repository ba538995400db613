"""The "Select area" painter in headless Chromium against a real ``python main.py``, on a data
dir with one picture of a known size (300×200): the painter shows it scaled up, the user drags a
rectangle, paints a stroke and undoes it, presses Done, and the mask kept in data/masks is the
picture's full size, transparent exactly where the rectangle was. Then Start Edit carries the area.
The same with the keyboard alone, at a phone's width.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from imgedit.models import ImageOrigin, ImageRecord
from imgedit.storage import ImageStore
from tests.a11y import blocking, describe, emulate_color_scheme, run_axe
from tests.app_process import running_app
from tests.test_a11y_browser import _real_violations  # axe's misread of a light Quasar dialog, measured
from tests.test_browser import ARTIFACTS, chrome, click, click_button, wait  # skips without Chromium

pytestmark = pytest.mark.browser

SIZE = (300, 200)
RECT = (60, 40, 180, 120)
"""The rectangle dragged, in the picture's own pixels (left, top, right, bottom)."""


def seeded_picture() -> bytes:
    image = Image.new("RGB", SIZE, (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((100, 50, 200, 150), fill=(240, 200, 60))
    draw.rectangle((10, 10, 60, 60), fill=(200, 40, 70))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def one_picture(tmp_path: Path) -> Iterator[tuple[str, Path, ImageRecord]]:
    """A server whose gallery holds one 300×200 picture and no samples."""
    data = tmp_path / "data"
    store = ImageStore(data)
    store.open()
    record = store.add_sync(seeded_picture(), origin=ImageOrigin.UPLOAD, name="Seed picture")
    store.close()
    with running_app(tmp_path, {"IMGEDIT_SAMPLES": "0"}) as url:
        yield url, data, record


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    yield browser
    browser.quit()


def open_painter(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    wait(browser).until(
        lambda d: d.execute_script(
            "const img = document.querySelector('.imgedit-image-card img');"
            "return !!img && img.complete && img.naturalWidth > 0;"
        )
    )
    click(browser, By.CSS_SELECTOR, ".imgedit-image-card")
    click_button(browser, "Edit")
    click_button(browser, "Select area")
    # Laid out: the frame has the picture's proportions and the canvas its pixels.
    wait(browser).until(
        lambda d: d.execute_script(
            "const c = document.querySelector('.imgedit-painter-canvas');"
            "const img = document.querySelector('.imgedit-painter-image');"
            "return !!c && c.clientWidth > 0 && !!img && img.complete && img.naturalWidth > 0"
            " && document.getAnimations().every((a) => a.playState !== 'running');"
        )
    )


def axe_painter(browser: webdriver.Chrome, where: str) -> None:
    """axe-core on the painter, the pointer resting on its title (a hovered button is shaded)."""
    ActionChains(browser).move_to_element(
        browser.find_element(By.CSS_SELECTOR, ".imgedit-painter-title")
    ).perform()
    report = _real_violations(browser, blocking(run_axe(browser, ".imgedit-painter")))
    assert not report, describe(report, where)


def canvas_box(browser: webdriver.Chrome) -> dict[str, float]:
    return browser.execute_script(  # type: ignore[no-any-return]
        "const r = document.querySelector('.imgedit-painter-canvas').getBoundingClientRect();"
        "return {left: r.left, top: r.top, width: r.width, height: r.height};"
    )


def offset(box: dict[str, float], x: float, y: float) -> tuple[int, int]:
    """Selenium's offset from the canvas's centre for the picture's pixel (x, y)."""
    return (
        round(box["width"] * x / SIZE[0] - box["width"] / 2),
        round(box["height"] * y / SIZE[1] - box["height"] / 2),
    )


def drag(browser: webdriver.Chrome, points: list[tuple[float, float]]) -> None:
    canvas = browser.find_element(By.CSS_SELECTOR, ".imgedit-painter-canvas")
    box = canvas_box(browser)
    actions = ActionChains(browser, duration=20)
    start = offset(box, *points[0])
    actions.move_to_element_with_offset(canvas, *start).click_and_hold()
    previous = start
    for point in points[1:]:
        here = offset(box, *point)
        actions.move_by_offset(here[0] - previous[0], here[1] - previous[1])
        previous = here
    actions.release().perform()


def painted_at(browser: webdriver.Chrome, x: float, y: float) -> bool:
    """Whether the area is drawn on the painter's canvas over the picture's pixel (x, y)."""
    return bool(
        browser.execute_script(
            "const c = document.querySelector('.imgedit-painter-canvas');"
            "const k = c.width / arguments[2];"
            "return c.getContext('2d').getImageData(Math.floor(arguments[0] * k), Math.floor(arguments[1] * k), 1, 1)"
            ".data[3] > 0;",
            x,
            y,
            SIZE[0],
        )
    )


def touch_stroke(browser: webdriver.Chrome, points: list[tuple[float, float]]) -> None:
    """One finger drawn over the canvas through the picture's pixels ``points`` (DevTools touch input)."""
    box = canvas_box(browser)

    def at(x: float, y: float) -> dict[str, float]:
        return {"x": box["left"] + box["width"] * x / SIZE[0], "y": box["top"] + box["height"] * y / SIZE[1]}

    browser.execute_cdp_cmd(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at(*points[0])]}
    )
    for point in points[1:]:
        browser.execute_cdp_cmd(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [at(*point)]}
        )
    browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def area_box(path: Path) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """The kept mask's size and the bounding box of its transparent (edit) area."""
    with Image.open(path) as mask:
        alpha = mask.convert("RGBA").getchannel("A")
        return mask.size, alpha.point(lambda v: 255 if v < 128 else 0).getbbox()


def near(
    found: tuple[int, int, int, int] | None, wanted: tuple[float, float, float, float], slack: float = 3
) -> bool:
    return found is not None and all(abs(a - b) <= slack for a, b in zip(found, wanted, strict=True))


def finish(browser: webdriver.Chrome) -> None:
    wait(browser).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-painter"))
    wait(browser).until(
        lambda d: any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, ".imgedit-area-status"))
    )


def local_can_edit_an_area() -> bool:
    from imgedit.providers.local import LocalProvider

    return bool(LocalProvider.capabilities.mask)


def start_edit_with_the_area(browser: webdriver.Chrome, data: Path, mask_id: str) -> None:
    """Start Edit on the local engine: the job is journaled with the area and its result lands.
    Until the local engine can edit an area, the dialog must say that no provider can."""
    if not local_can_edit_an_area():
        wait(browser).until(
            lambda d: "None of the configured providers can edit a selected area" in d.page_source
        )
        start = browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Start Edit']]")
        assert start.get_attribute("disabled") is not None or start.get_attribute("aria-disabled") == "true"
        return
    prompt = next(
        e for e in browser.find_elements(By.CSS_SELECTOR, ".q-dialog input[aria-label]") if e.is_displayed()
    )
    prompt.send_keys("invert")
    click_button(browser, "Start Edit")
    wait(browser, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))

    def journaled() -> list[str]:
        with sqlite3.connect(data / "imgedit.sqlite3") as db:
            return [row[0] for row in db.execute("SELECT mask FROM jobs")]

    wait(browser, 30).until(lambda d: journaled() == [mask_id])
    wait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == 2)


def test_a_dragged_rectangle_becomes_a_full_size_mask_and_the_edit_carries_it(
    one_picture: tuple[str, Path, ImageRecord], driver: webdriver.Chrome
) -> None:
    url, data, record = one_picture
    assert (record.width, record.height) == SIZE
    open_painter(driver, url)
    axe_painter(driver, "the painter (light)")
    box = canvas_box(driver)
    assert box["width"] > SIZE[0] * 1.5, "the small picture is shown larger than its own size"
    assert abs(box["width"] / box["height"] - SIZE[0] / SIZE[1]) < 0.02
    assert (
        driver.execute_script(
            "return getComputedStyle(document.querySelector('.imgedit-painter-canvas')).touchAction"
        )
        == "none"
    )

    assert not driver.execute_script(
        "return [...document.querySelectorAll('.imgedit-painter .q-icon')]"
        ".filter((i) => i.scrollWidth > i.clientWidth + 1).map((i) => i.textContent);"
    ), "every icon is one the font draws (an unknown name is spelled out, wide, over its neighbours)"
    click_button(driver, "Rectangle")
    drag(driver, [(RECT[0], RECT[1]), ((RECT[0] + RECT[2]) / 2, (RECT[1] + RECT[3]) / 2), (RECT[2], RECT[3])])
    click_button(driver, "Brush")
    drag(driver, [(230, 150), (250, 165), (280, 185)])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The brush's cursor shows its size where the pointer rests.
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element(By.CSS_SELECTOR, ".imgedit-painter-canvas"), *offset(canvas_box(driver), 220, 60)
    ).perform()
    cursor = driver.find_element(By.CSS_SELECTOR, ".imgedit-painter-cursor")
    assert cursor.is_displayed() and abs(cursor.size["width"] - 32) <= 1
    size = driver.find_element(By.CSS_SELECTOR, ".imgedit-painter-slider")
    for _ in range(4):
        size.send_keys(Keys.ARROW_RIGHT)  # 4 steps of 2 px
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element(By.CSS_SELECTOR, ".imgedit-painter-canvas"), *offset(canvas_box(driver), 222, 62)
    ).perform()
    assert abs(cursor.size["width"] - 40) <= 1, "the cursor shows the brush's new size"
    driver.save_screenshot(str(ARTIFACTS / "mask-painter.png"))
    # A finger paints too (touch events become pointer events; the page does not scroll).
    assert painted_at(driver, 250, 165) and not painted_at(driver, 40, 160)
    touch_stroke(driver, [(30, 150), (40, 160), (55, 175)])
    assert painted_at(driver, 40, 160)
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert not painted_at(driver, 40, 160), "Ctrl+Z took the touch stroke back"
    click_button(driver, "Undo")  # the mouse stroke goes too; the rectangle stays
    assert not painted_at(driver, 250, 165) and painted_at(driver, 120, 80)
    click_button(driver, "Done")
    finish(driver)

    (kept,) = list((data / "masks").glob("*.png"))
    size, found = area_box(kept)
    assert size == SIZE
    assert near(found, RECT), found
    start_edit_with_the_area(driver, data, kept.stem)


def test_the_keyboard_alone_selects_a_box_at_a_phones_width(
    one_picture: tuple[str, Path, ImageRecord], driver: webdriver.Chrome
) -> None:
    url, data, _record = one_picture
    driver.set_window_size(390, 844)
    emulate_color_scheme(driver, "dark")
    open_painter(driver, url)
    axe_painter(driver, "the painter (dark, phone)")
    assert driver.execute_script("return document.documentElement.clientWidth") <= 400
    assert driver.execute_script(
        "return document.querySelector('.imgedit-painter').scrollWidth"
        " <= document.documentElement.clientWidth"
    ), "nothing sticks out sideways"

    # Tab walks every control of the painter, each named, up to the picture.
    named: list[str] = []
    for _ in range(30):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        name = driver.execute_script(
            "const e = document.activeElement;"
            "return (e.getAttribute('aria-label') || e.textContent || '').trim();"
        )
        assert name, driver.execute_script("return document.activeElement.outerHTML")
        named.append(name)
        if driver.execute_script(
            "return document.activeElement.classList.contains('imgedit-painter-canvas')"
        ):
            break
    else:
        raise AssertionError(f"Tab never reached the picture: {named}")
    for control in ("Brush", "Rectangle", "Eraser", "Brush size", "Undo", "Clear", "Done"):
        assert any(control in n for n in named), (control, named)
    hint = driver.find_element(By.CSS_SELECTOR, ".imgedit-painter-hint")
    assert hint.is_displayed() and "arrow keys move the box" in hint.text

    canvas = driver.switch_to.active_element
    canvas.send_keys(Keys.ENTER)  # the box where it starts, taken back with Ctrl+Z
    assert painted_at(driver, SIZE[0] / 2, SIZE[1] / 2)
    canvas.send_keys(Keys.CONTROL, "z")
    assert not painted_at(driver, SIZE[0] / 2, SIZE[1] / 2)
    for _ in range(5):
        canvas.send_keys(Keys.ARROW_RIGHT)  # 5 × 2 % of the width
    for _ in range(3):
        canvas.send_keys(Keys.SHIFT, Keys.ARROW_DOWN)  # 3 × 2 % taller
    canvas.send_keys(Keys.ENTER)
    driver.save_screenshot(str(ARTIFACTS / "mask-painter-phone.png"))
    canvas.send_keys(Keys.SHIFT, Keys.TAB)
    assert "Done" in driver.switch_to.active_element.text
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    finish(driver)
    driver.save_screenshot(str(ARTIFACTS / "mask-area-selected-phone.png"))
    report = _real_violations(driver, blocking(run_axe(driver, ".q-dialog")))
    assert not report, describe(report, "the Edit dialog with an area (dark, phone)")

    (kept,) = list((data / "masks").glob("*.png"))
    size, found = area_box(kept)
    assert size == SIZE
    w, h = SIZE
    # The box starts centred, a quarter of each side: x 37.5 % + 10 %, 25 % wide; y 37.5 %, 31 % high.
    assert near(found, (0.475 * w, 0.375 * h, 0.725 * w, 0.685 * h)), found
