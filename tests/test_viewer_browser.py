"""The image viewer (issue 9) in headless Chromium against a real ``python main.py``: ArrowRight /
ArrowLeft in the image dialog and in the full-size viewer change the picture shown; + zooms, the
wheel zooms around the cursor, a drag pans, a double-click toggles Fit / 100 %, 0 fits; Escape
closes the viewer, then the dialog, and focus lands somewhere sensible each time. axe looks at the
open dialog and the open viewer. Screenshots: tests/artifacts/viewer-*.png.

Every key is sent to whatever has focus, as a user's keyboard would; nothing is clicked by script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.keys import Keys

from tests.a11y import emulate_color_scheme
from tests.app_process import running_app
from tests.test_a11y_browser import assert_no_blocking_violations
from tests.test_browser import ARTIFACTS, By, chrome, click, wait

pytestmark = pytest.mark.browser

DIALOG_PICTURE = ".imgedit-image-dialog .imgedit-dialog-image"
VIEWER = ".imgedit-viewer"
STAGE = ".imgedit-viewer-stage"
VIEWER_PICTURE = ".imgedit-viewer-stage > img:not(.imgedit-prefetch)"

# The viewer picture's transform as numbers (scale, x, y): 1, 0, 0 at Fit.
TRANSFORM = """
const img = document.querySelector(arguments[0]);
if (!img) return null;
const t = getComputedStyle(img).transform;
if (!t || t === 'none') return [1, 0, 0];
const m = new DOMMatrixReadOnly(t);
return [m.a, m.e, m.f];
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("viewer")) as url:
        yield url


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    yield browser
    browser.quit()


def card_ids(driver: webdriver.Chrome) -> list[str]:
    """The image ids of the gallery's cards, in page order."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('.imgedit-gallery .imgedit-image-card img.imgedit-thumb')]"
            ".map((i) => i.getAttribute('src').split('/').pop())"
        )
    )


def src_id(driver: webdriver.Chrome, selector: str) -> str | None:
    return driver.execute_script(
        "const i = document.querySelector(arguments[0]);"
        "return i && i.getAttribute('src') ? i.getAttribute('src').split('/').pop() : null;",
        selector,
    )


def press(driver: webdriver.Chrome, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def transform(driver: webdriver.Chrome) -> tuple[float, float, float]:
    scale, x, y = driver.execute_script(TRANSFORM, VIEWER_PICTURE)
    return float(scale), float(x), float(y)


def zoom_level(driver: webdriver.Chrome) -> str:
    return str(driver.execute_script("return document.querySelector('.imgedit-zoom-level').textContent"))


def settled(driver: webdriver.Chrome) -> bool:
    """No transition or animation running (the dialog's entrance, a zoom's ease)."""
    return bool(
        driver.execute_script(
            "return document.getAnimations().every((a) => a.playState !== 'running'"
            " || a.effect?.getTiming().iterations === Infinity)"
        )
    )


def viewer_loaded(driver: webdriver.Chrome, image_id: str) -> bool:
    return bool(
        driver.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return !!i && i.getAttribute('src').endsWith('/' + arguments[1]) && i.complete && i.naturalWidth > 0;",
            VIEWER_PICTURE,
            image_id,
        )
    )


def focus_in(driver: webdriver.Chrome, selector: str) -> bool:
    return bool(
        driver.execute_script(
            "const d = document.querySelector(arguments[0]);"
            "return !!d && d.contains(document.activeElement);",
            selector,
        )
    )


def button_disabled(driver: webdriver.Chrome, scope: str, name: str) -> bool:
    return bool(
        driver.execute_script(
            'const b = document.querySelector(`${arguments[0]} [aria-label="${arguments[1]}"]`);'
            "return !!b && (b.disabled || b.getAttribute('aria-disabled') === 'true');",
            scope,
            name,
        )
    )


def open_newest_by_keyboard(driver: webdriver.Chrome, app_url: str) -> list[str]:
    """Load the gallery, focus the newest card and press Enter; the card ids, newest first."""
    driver.get(app_url)
    wait(driver).until(lambda d: len(card_ids(d)) >= 6 or None)
    ids = card_ids(driver)
    first_card = driver.find_element(By.CSS_SELECTOR, ".imgedit-gallery .imgedit-image-card")
    driver.execute_script("arguments[0].focus()", first_card)
    press(driver, Keys.ENTER)
    wait(driver).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[0], message="the dialog shows the card")
    wait(driver, 5).until(lambda d: focus_in(d, ".q-dialog"), message="focus moves into the dialog")
    wait(driver, 5).until(settled)
    return ids


def test_arrows_zoom_pan_and_escape(app_url: str, driver: webdriver.Chrome) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The newest card, opened by keyboard: Tab to it, Enter.
    ids = open_newest_by_keyboard(driver, app_url)
    assert button_disabled(driver, ".imgedit-image-dialog", "Previous image (newer)"), "nothing is newer"
    assert not button_disabled(driver, ".imgedit-image-dialog", "Next image (older)")
    title = driver.find_element(By.CSS_SELECTOR, ".imgedit-image-dialog .text-h6")

    # ArrowRight / ArrowLeft: the neighbours, in place (the same dialog element stays).
    dialog = driver.find_element(By.CSS_SELECTOR, ".imgedit-image-dialog")
    press(driver, Keys.ARROW_RIGHT)
    wait(driver, 5).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[1], message="ArrowRight: the next older")
    press(driver, Keys.ARROW_RIGHT)
    wait(driver, 5).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[2])
    press(driver, Keys.ARROW_LEFT)
    wait(driver, 5).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[1], message="ArrowLeft: the next newer")
    assert dialog.is_displayed(), "not closed and opened again"
    wait(driver, 5).until(lambda d: not button_disabled(d, ".imgedit-image-dialog", "Previous image (newer)"))
    assert title.text, "the title follows"
    wait(driver, 5).until(settled)
    driver.save_screenshot(str(ARTIFACTS / "viewer-dialog.png"))
    assert_no_blocking_violations(driver, "the image dialog with its arrows")

    # View (the first Tab stop, before the arrows): the full-size viewer on the same image; the
    # arrow keys go on there.
    press(driver, Keys.TAB)
    assert driver.execute_script("return document.activeElement.textContent.trim().endsWith('View')")
    press(driver, Keys.ENTER)
    wait(driver).until(lambda d: viewer_loaded(d, ids[1]), message="the viewer shows the full image")
    wait(driver, 5).until(lambda d: focus_in(d, ".imgedit-viewer-dialog"), message="focus in the viewer")
    press(driver, Keys.ARROW_RIGHT)
    wait(driver, 10).until(lambda d: viewer_loaded(d, ids[2]), message="ArrowRight in the viewer")
    press(driver, Keys.ARROW_LEFT)
    wait(driver, 10).until(lambda d: viewer_loaded(d, ids[1]), message="ArrowLeft in the viewer")
    assert src_id(driver, DIALOG_PICTURE) == ids[1], "the dialog behind follows"
    wait(driver, 5).until(settled)
    assert transform(driver) == (1, 0, 0) and zoom_level(driver) == "Fit"

    # + zooms in steps of the picture's own pixels, until it is wider than the stage.
    stage_width = driver.execute_script(f"return document.querySelector('{STAGE}').clientWidth")
    for _ in range(12):
        before = zoom_level(driver)
        press(driver, "+")
        wait(driver, 5).until(lambda d, was=before: zoom_level(d) != was, message="+ changes the level")
        wait(driver, 5).until(settled)
        width = driver.execute_script(
            f"return document.querySelector('{VIEWER_PICTURE}').getBoundingClientRect().width"
        )
        if width > stage_width * 1.5:
            break
    scale, x0, _ = transform(driver)
    assert scale > 1, "+ zooms in"
    assert re.fullmatch(r"\d+ %", zoom_level(driver)), zoom_level(driver)

    # A drag pans the zoomed picture with the pointer.
    stage = driver.find_element(By.CSS_SELECTOR, STAGE)
    ActionChains(driver).move_to_element(stage).click_and_hold().move_by_offset(-150, 0).move_by_offset(
        -50, 0
    ).release().perform()
    wait(driver, 5).until(lambda d: transform(d)[1] < x0 - 150, message="the drag moved the picture left")
    assert transform(driver)[0] == pytest.approx(scale), "a drag does not zoom"

    # The wheel zooms around the cursor: the picture's point under it stays under it.
    centre = driver.execute_script(
        f"const r = document.querySelector('{STAGE}').getBoundingClientRect();"
        "return [r.left + r.width / 2, r.top + r.height / 2];"
    )
    px, py = centre[0] + 120, centre[1] - 60
    rect = f"return document.querySelector('{VIEWER_PICTURE}').getBoundingClientRect().toJSON()"
    box = driver.execute_script(rect)
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(stage, 120, -60), 0, -200).perform()
    wait(driver, 5).until(lambda d: transform(d)[0] > scale * 1.2, message="the wheel zooms in")
    after = driver.execute_script(rect)
    fx, fy = (px - box["left"]) / box["width"], (py - box["top"]) / box["height"]
    assert after["left"] + fx * after["width"] == pytest.approx(px, abs=2)
    assert after["top"] + fy * after["height"] == pytest.approx(py, abs=2)
    driver.save_screenshot(str(ARTIFACTS / "viewer-zoomed.png"))

    # 0 fits again.
    press(driver, "0")
    wait(driver, 5).until(lambda d: transform(d) == (1, 0, 0) and zoom_level(d) == "Fit", message="0 fits")

    # The named buttons: Fit, Zoom in, Zoom out.
    click(driver, By.CSS_SELECTOR, f"{VIEWER} [aria-label='Fit']")
    wait(driver, 5).until(lambda d: transform(d) == (1, 0, 0), message="Fit")
    click(driver, By.CSS_SELECTOR, f"{VIEWER} [aria-label='Zoom in']")
    wait(driver, 5).until(lambda d: transform(d)[0] > 1, message="Zoom in")
    wait(driver, 5).until(settled)
    zoomed = transform(driver)[0]
    click(driver, By.CSS_SELECTOR, f"{VIEWER} [aria-label='Zoom out']")
    wait(driver, 5).until(lambda d: transform(d)[0] < zoomed, message="Zoom out")

    # A double-click toggles Fit and 100 %.
    press(driver, "0")
    wait(driver, 5).until(lambda d: transform(d) == (1, 0, 0))
    ActionChains(driver).double_click(stage).perform()
    wait(driver, 5).until(lambda d: zoom_level(d) in {"100 %", "200 %"}, message="double-click: 100 %")
    ActionChains(driver).double_click(stage).perform()
    wait(driver, 5).until(lambda d: zoom_level(d) == "Fit", message="double-click again: Fit")

    # A new picture starts at Fit.
    press(driver, "+")
    wait(driver, 5).until(lambda d: transform(d)[0] > 1)
    press(driver, Keys.ARROW_RIGHT)
    wait(driver, 10).until(lambda d: viewer_loaded(d, ids[2]))
    wait(driver, 5).until(lambda d: transform(d) == (1, 0, 0) and zoom_level(d) == "Fit", message="reset")
    wait(driver, 5).until(settled)
    driver.save_screenshot(str(ARTIFACTS / "viewer-fit.png"))
    assert_no_blocking_violations(driver, "the full-size viewer")

    # Escape: the viewer closes, focus is back on View in the dialog, which shows the same image.
    press(driver, Keys.ESCAPE)
    wait(driver, 5).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, VIEWER), message="Esc closes the viewer"
    )
    assert src_id(driver, DIALOG_PICTURE) == ids[2]
    wait(driver, 5).until(
        lambda d: d.execute_script("return document.activeElement.textContent.trim().endsWith('View')"),
        message="focus back on View",
    )

    # Escape again: the dialog closes; focus is on the card of the image last shown, not the first.
    press(driver, Keys.ESCAPE)
    wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-image-dialog"))
    wait(driver, 5).until(
        lambda d: d.execute_script(
            "const c = document.activeElement.closest('.imgedit-image-card');"
            "return c && c.querySelector('img.imgedit-thumb').getAttribute('src').endsWith('/' + arguments[0]);",
            ids[2],
        ),
        message="focus on the card of the image shown last",
    )


def test_next_pressed_to_the_end_keeps_the_focus(app_url: str, driver: webdriver.Chrome) -> None:
    """Enter on Next until the oldest image: the arrow stays focused (disabled for screen readers,
    not taken out of the page), so the arrow keys go on working."""
    driver.get(app_url)
    wait(driver).until(lambda d: len(card_ids(d)) >= 6 or None)
    ids = card_ids(driver)
    cards = driver.find_elements(By.CSS_SELECTOR, ".imgedit-gallery .imgedit-image-card")
    driver.execute_script("arguments[0].focus()", cards[-2])
    press(driver, Keys.ENTER)
    wait(driver).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[-2])
    wait(driver, 5).until(lambda d: focus_in(d, ".q-dialog"))
    name = "return document.activeElement.getAttribute('aria-label')"
    for _ in range(8):
        press(driver, Keys.TAB)
        if driver.execute_script(name) == "Next image (older)":
            break
    assert driver.execute_script(name) == "Next image (older)", "Tab reaches Next"
    press(driver, Keys.ENTER)
    wait(driver, 5).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[-1], message="Enter on Next")
    wait(driver, 5).until(lambda d: button_disabled(d, ".imgedit-image-dialog", "Next image (older)"))
    assert driver.execute_script(name) == "Next image (older)", "focus stays on the arrow at the end"
    press(driver, Keys.ENTER)  # nothing beyond: nothing moves
    press(driver, Keys.ARROW_LEFT)
    wait(driver, 5).until(lambda d: src_id(d, DIALOG_PICTURE) == ids[-2], message="ArrowLeft still works")
    press(driver, Keys.ESCAPE)
    wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-image-dialog"))


def touch(driver: webdriver.Chrome, kind: str, points: list[tuple[float, float]]) -> None:
    """Fingers on the screen, through Chromium's own input pipeline (touch and pointer events)."""
    driver.execute_cdp_cmd(
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
    )


def test_pinch_zooms_and_a_swipe_moves_on(app_url: str, driver: webdriver.Chrome) -> None:
    """On a touch screen, in the dark scheme (the first test saw the light one)."""
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    emulate_color_scheme(driver, "dark")
    try:
        ids = open_newest_by_keyboard(driver, app_url)
        assert_no_blocking_violations(driver, "the image dialog, dark")
        driver.save_screenshot(str(ARTIFACTS / "viewer-dialog-dark.png"))
        press(driver, Keys.TAB, Keys.ENTER)  # View
        wait(driver).until(lambda d: viewer_loaded(d, ids[0]))
        wait(driver, 5).until(settled)
        cx, cy = driver.execute_script(
            f"const r = document.querySelector('{STAGE}').getBoundingClientRect();"
            "return [r.left + r.width / 2, r.top + r.height / 2];"
        )

        # Two fingers spread apart: the picture grows.
        touch(driver, "touchStart", [(cx - 50, cy), (cx + 50, cy)])
        for spread in range(1, 6):
            touch(driver, "touchMove", [(cx - 50 - 20 * spread, cy), (cx + 50 + 20 * spread, cy)])
        touch(driver, "touchEnd", [])
        wait(driver, 5).until(lambda d: transform(d)[0] > 1.5, message="a pinch zooms in")
        assert re.fullmatch(r"\d+ %", zoom_level(driver))

        # At Fit, one finger swiping left brings the next (older) picture.
        press(driver, "0")
        wait(driver, 5).until(lambda d: transform(d) == (1, 0, 0))
        touch(driver, "touchStart", [(cx + 100, cy)])
        for step in range(1, 6):
            touch(driver, "touchMove", [(cx + 100 - 40 * step, cy + 2)])
        touch(driver, "touchEnd", [])
        wait(driver, 10).until(lambda d: viewer_loaded(d, ids[1]), message="a swipe left: the next older")
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        emulate_color_scheme(driver, "light")
