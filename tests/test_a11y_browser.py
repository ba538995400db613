"""axe-core in headless Chromium against a real ``python main.py`` (issue 8, WCAG 2.2 AA): the
gallery, the open Edit dialog, the gallery with a running job's loading card, and /history, each
in the dark and the light colour scheme. A page passes when axe finds nothing serious or
critical; a failure lists each violation's id, help and the selectors to fix.

One server and one browser serve the whole module. A Stable Diffusion fake held mid-sampling keeps
a job running, so its loading card stays on screen while axe looks at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from selenium import webdriver

from tests.a11y import blocking, describe, emulate_color_scheme, run_axe
from tests.app_process import running_app
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import serve
from tests.test_browser import By, chrome, click_button, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

SCHEMES = ("dark", "light")
Scheme = Literal["dark", "light"]


class App:
    """The running server and the fake it talks to."""

    def __init__(self, url: str, fake: FakeWebUI) -> None:
        self.url, self.fake = url, fake


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    fake = FakeWebUI(step_seconds=0.02)
    fake.pause_at(6)
    folder = tmp_path_factory.mktemp("a11y")
    with serve(fake.app()) as sd_url, running_app(folder, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
        try:
            yield App(url, fake)
        finally:
            fake.resume()  # let the held job finish so the server stops cleanly


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    yield browser
    browser.quit()


def open_gallery(driver: webdriver.Chrome, url: str, scheme: Scheme) -> None:
    """Load the gallery afresh with the system asking for ``scheme``."""
    emulate_color_scheme(driver, scheme)
    driver.get(url)
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6 or None)
    settle(driver)


def settle(driver: webdriver.Chrome) -> None:
    """Wait until entrance animations and dialog transitions have ended: axe measures colours as
    drawn, and a half-faded element would read as low contrast."""
    wait(driver, 10).until(
        lambda d: d.execute_script(
            "return document.getAnimations().every((a) => a.playState !== 'running'"
            " || a.effect?.getTiming().iterations === Infinity)"
        )
    )


_DRAWN_COLOURS = """
const el = typeof arguments[0] === 'string' ? document.querySelector(arguments[0]) : arguments[0];
if (!el) return null;
const r = el.getBoundingClientRect();
const parse = (c) => (c.match(/[0-9.]+/g) || []).map(Number);
const layers = document.elementsFromPoint(r.left + r.width / 2, r.top + r.height / 2)
  .map((e) => parse(getComputedStyle(e).backgroundColor)).filter((c) => c.length === 3 || c[3] > 0);
return {fg: parse(getComputedStyle(el).color), layers: layers};
"""


def _luminance(rgb: list[float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def drawn_contrast(driver: webdriver.Chrome, selector: object) -> float | None:
    """The contrast of an element's text over what the browser actually paints under its
    centre (``elementsFromPoint``, semi-transparent layers blended), or None if not found."""
    drawn = driver.execute_script(_DRAWN_COLOURS, selector)
    if not drawn:
        return None
    bg = [255.0, 255.0, 255.0]
    for layer in reversed(drawn["layers"]):  # from the bottom up
        alpha = layer[3] if len(layer) == 4 else 1.0
        bg = [alpha * c + (1 - alpha) * b for c, b in zip(layer[:3], bg, strict=True)]
    light, dark = sorted((_luminance(drawn["fg"]), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _real_violations(driver: webdriver.Chrome, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop color-contrast nodes whose drawn contrast is at least 4.5:1. axe 4.9 judges the
    buttons of a light Quasar dialog against the dialog's backdrop instead of the white card on
    top of it (the browser's hit-test stack has the card); such a node is measured here from
    what is painted instead. Every other rule, and every node that really is too faint, stays."""
    kept = []
    for violation in found:
        if violation["id"] == "color-contrast":
            nodes = [
                n for n in violation["nodes"]
                if (ratio := drawn_contrast(driver, n["target"][0])) is None or ratio < 4.5
            ]  # fmt: skip
            if not nodes:
                continue
            violation = {**violation, "nodes": nodes}
        kept.append(violation)
    return kept


def assert_no_blocking_violations(driver: webdriver.Chrome, where: str) -> None:
    found = _real_violations(driver, blocking(run_axe(driver)))
    if found:
        shown = driver.execute_script(
            "return document.body.classList.contains('body--dark') ? 'dark' : 'light'"
        )
        pytest.fail(describe(found, f"{where}, drawn {shown}"))


@pytest.fixture(scope="module")
def running_job(app: App, driver: webdriver.Chrome) -> None:
    """A finished local edit (a row in the history) and a Stable Diffusion edit held at step 6
    (a loading card that stays)."""
    open_gallery(driver, app.url, "dark")
    before = len(driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card"))
    start_edit_in_browser(driver, 1, "grayscale", provider="Local engine")
    wait(driver, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")) > before
    )
    start_edit_in_browser(driver, 0, "oil painting at dusk")
    assert app.fake.paused.wait(30), "sampling reached step 6 and waits there"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_gallery(app: App, driver: webdriver.Chrome, scheme: Scheme) -> None:
    open_gallery(driver, app.url, scheme)
    assert_no_blocking_violations(driver, f"the gallery ({scheme})")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_edit_dialog(app: App, driver: webdriver.Chrome, scheme: Scheme) -> None:
    open_gallery(driver, app.url, scheme)
    driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")[0].click()
    click_button(driver, "Edit")
    wait(driver).until(
        lambda d: any(
            e.is_displayed()
            for e in d.find_elements(By.XPATH, "//button[.//span[normalize-space()='Start Edit']]")
        )
    )
    settle(driver)
    assert_no_blocking_violations(driver, f"the open Edit dialog ({scheme})")
    for label in ("Cancel", "Start Edit"):  # measured from what is painted, whatever axe says
        text = driver.find_element(By.XPATH, f"//div[@role='dialog']//button//span[normalize-space()='{label}']")
        ratio = drawn_contrast(driver, text)
        assert ratio is not None and ratio >= 4.5, (label, ratio)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_gallery_with_a_running_job(
    app: App, driver: webdriver.Chrome, running_job: None, scheme: Scheme
) -> None:
    open_gallery(driver, app.url, scheme)
    card = wait(driver).until(
        lambda d: next(
            iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=processing]")), None
        )
    )
    wait(driver).until(lambda d: "Step 6 of" in card.text)
    assert_no_blocking_violations(driver, f"the gallery with a loading card ({scheme})")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_history(app: App, driver: webdriver.Chrome, running_job: None, scheme: Scheme) -> None:
    emulate_color_scheme(driver, scheme)
    driver.get(app.url + "/history")
    wait(driver).until(lambda d: "grayscale" in d.find_element(By.TAG_NAME, "body").text)
    wait(driver).until(lambda d: "oil painting at dusk" in d.find_element(By.TAG_NAME, "body").text)
    settle(driver)
    assert_no_blocking_violations(driver, f"/history ({scheme})")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_gallery_with_a_selection_and_a_favourite(app: App, driver: webdriver.Chrome, scheme: Scheme) -> None:
    """The search and filter bar, the cards' checkboxes and stars, and the selection bar."""
    open_gallery(driver, app.url, scheme)
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-select"))
    driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-select")[0].click()
    driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-star")[1].click()
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, ".imgedit-selection-bar").is_displayed())
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-star.imgedit-starred"))
    settle(driver)
    try:
        assert_no_blocking_violations(driver, f"the gallery with a selection and a star ({scheme})")
        bar = driver.find_element(By.CSS_SELECTOR, ".imgedit-selection-count")
        ratio = drawn_contrast(driver, bar)
        assert ratio is not None and ratio >= 4.5, ratio
    finally:
        driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-star")[1].click()  # unstar
        driver.find_element(By.CSS_SELECTOR, "[aria-label='Clear the selection']").click()
