"""End to end in headless Chromium against a real ``python main.py`` server on loopback.

On a machine without Chromium these tests skip with the reason; with IMGEDIT_REQUIRE_BROWSER=1
(set by .ci/run) a missing browser is a failure instead.
"""

from __future__ import annotations

import io
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()

if not HAVE_BROWSER and os.environ.get("IMGEDIT_REQUIRE_BROWSER") != "1":
    pytest.skip(
        "headless Chromium not found (apt-get install -y chromium chromium-driver)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.app_process import running_app  # noqa: E402
from tests.fake_sdwebui import FakeWebUI  # noqa: E402
from tests.loopback import serve  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with running_app(tmp_path) as url:
        yield url


def chrome(*, performance_log: bool = False) -> webdriver.Chrome:
    """Debian's headless Chromium, with the flags this closed network needs; ``performance_log``
    also records the DevTools events (network, websocket frames) for ``get_log("performance")``."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-default-apps",
        "--disable-extensions",
        "--window-size=1360,900",
    ):
        options.add_argument(flag)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(1360, 900)
    return driver


def wait(driver: webdriver.Chrome, timeout: float = 20):  # type: ignore[no-untyped-def]
    """Poll a condition; an element Vue redrew between finding it and reading it (stale) is
    simply looked up again at the next poll."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )


STILL = """
return document.getAnimations().every((a) => a.playState !== 'running'
  || a.effect?.getComputedTiming().iterations === Infinity);
"""
"""True when nothing moves but endless loops (a shimmer): no dialog is opening or closing."""


def click(driver: webdriver.Chrome, by: str, selector: str, text_prefix: str = "") -> None:
    """Click the first visible match once nothing (an opening dialog or menu) covers it or moves:
    a click into a dialog that is still growing can land on its backdrop and close it."""

    def attempt(d: webdriver.Chrome) -> bool:
        if not d.execute_script(STILL):
            return False
        for element in d.find_elements(by, selector):
            if element.is_displayed() and element.text.strip().startswith(text_prefix):
                try:
                    element.click()
                except (ElementClickInterceptedException, StaleElementReferenceException):
                    return False
                return True
        return False

    wait(driver).until(attempt)


def click_button(driver: webdriver.Chrome, label: str) -> None:
    click(driver, By.XPATH, f"//button[.//span[normalize-space()='{label}']]")


def dialog_field(driver: webdriver.Chrome, timeout: float = 20):  # type: ignore[no-untyped-def]
    """The open dialog's first shown named input (its prompt), once it is there."""
    return wait(driver, timeout).until(
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, ".q-dialog input[aria-label]") if e.is_displayed()), None
        )
    )


def colourful_png(path: Path, size: tuple[int, int]) -> Path:
    """A large, busy picture: big enough that an edit at high quality takes a visible moment."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.merge(
        "RGB",
        (
            image.getchannel(0),
            image.getchannel(0).rotate(90, expand=False).resize(size),
            Image.new("L", size, 160),
        ),
    )
    draw = ImageDraw.Draw(image)
    rng = random.Random(7)
    for _ in range(60):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(40, 260)
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    path.write_bytes(buffer.getvalue())
    return path


def test_start_edit_end_to_end(server: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(server)
    cards = wait(browser).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6 or None
    )
    assert cards
    before = len(browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))

    # A large upload makes the edit run long enough to watch the card.
    big = colourful_png(tmp_path / "big-picture.png", (2400, 1800))
    browser.find_element(By.CSS_SELECTOR, ".imgedit-upload input[type=file]").send_keys(str(big))
    wait(browser, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == before + 1 or None
    )
    before += 1
    # Click the new card as a person would: once it is drawn, thumbnail and all.
    wait(browser, 30).until(
        lambda d: d.execute_script(
            "const c = document.querySelector('.imgedit-images-box .imgedit-image-card');"
            "const img = c && c.querySelector('img');"
            "return !!img && img.complete && img.naturalWidth > 0 && c.textContent.includes('big-picture')"
            " && c.getAnimations({subtree: true}).every((a) => a.playState !== 'running');"
        )
    )
    click(browser, By.CSS_SELECTOR, ".imgedit-images-box .imgedit-card-wrap:nth-child(1) .imgedit-image-card")
    click_button(browser, "Edit")
    prompt = dialog_field(browser)
    prompt.send_keys("blur 12 and emboss and sharpen and add a vignette and sepia")
    click(browser, By.XPATH, "//label[.//*[normalize-space()='Quality']]")
    click(browser, By.CSS_SELECTOR, ".q-item", text_prefix="High")
    click_button(browser, "Start Edit")

    card = wait(browser, 10).until(
        lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card")), None)
    )
    wait(browser, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))
    assert card.find_element(By.CSS_SELECTOR, ".imgedit-progress")
    assert card.find_element(By.CSS_SELECTOR, ".imgedit-cancel").is_displayed()
    assert card.find_element(By.CSS_SELECTOR, ".imgedit-shimmer")
    percent = card.find_element(By.CSS_SELECTOR, ".imgedit-percent").text
    assert percent.endswith("%")
    # For the artifact, catch the card while the engine works (it may also be done already).
    wait(browser, 30).until(
        lambda d: d.execute_script(
            "const c = document.querySelector('.imgedit-loading-card');"
            "return !c || ['processing', 'finalizing'].includes(c.dataset.stage);"
        )
    )
    browser.save_screenshot(str(ARTIFACTS / "loading-card.png"))

    wait(browser, 120).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == before + 1 or None
    )
    wait(browser, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card"))
    newest = browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")[0]
    # The new card fades in; Selenium reads no text while it is still transparent.
    wait(browser, 5).until(lambda d: "blur 12 and emboss" in newest.text)
    image = newest.find_element(By.CSS_SELECTOR, "img")
    wait(browser).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
    )
    browser.save_screenshot(str(ARTIFACTS / "gallery-after-edit.png"))


def start_edit_in_browser(
    browser: webdriver.Chrome, card_index: int, prompt: str, provider: str | None = None
) -> None:
    click(browser, By.CSS_SELECTOR, f".imgedit-images-box .imgedit-card-wrap:nth-child({card_index + 1}) .imgedit-image-card")
    click_button(browser, "Edit")
    dialog_field(browser).send_keys(prompt)
    if provider:
        click(browser, By.XPATH, "//label[.//*[normalize-space()='Provider']]")
        click(browser, By.CSS_SELECTOR, ".q-item", text_prefix=provider)
    click_button(browser, "Start Edit")
    wait(browser, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))


def test_live_preview_from_a_stable_diffusion_server_beside_other_jobs(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    fake = FakeWebUI(step_seconds=0.05)
    fake.pause_at(9)
    with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as app_url:
        browser.get(app_url)
        wait(browser).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6 or None
        )
        before = len(browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))

        start_edit_in_browser(browser, 0, "oil painting at golden hour")
        assert fake.paused.wait(30), "sampling reached step 9"
        start_edit_in_browser(browser, 2, "add glitter", provider="Local engine")
        start_edit_in_browser(browser, 3, "watercolor")

        cards = browser.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card")
        assert len(cards) == 3
        # 24 steps asked at denoising 0.55: A1111's img2img samples int(24 × 0.55) + 1 = 14.
        wait(browser, 20).until(lambda d: "Step 9 of 14" in d.page_source)
        wait(browser, 20).until(
            lambda d: any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, ".imgedit-preview"))
        )
        wait(browser, 20).until(lambda d: "Waiting for a free server" in d.page_source)
        wait(browser, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")
        )
        failed = browser.find_element(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")
        assert "glitter" in failed.text and "Retry" in failed.text and "Dismiss" in failed.text
        sampling = browser.find_element(By.CSS_SELECTOR, ".imgedit-loading-card[data-progress]")
        percent = int(sampling.find_element(By.CSS_SELECTOR, ".imgedit-percent").text.rstrip("%"))
        # 8 of 14 steps done (the server counts from 0), between 5 % and 95 % of the job's bar: ~56 %
        assert 50 <= percent <= 62, "step 9 of 14 placed on the job's bar, drawn by the browser"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "live-preview.png"))

        fake.resume()
        wait(browser, 60).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == before + 2 or None
        )
        assert fake.max_in_flight == 1, "one job at a time per server"
        assert fake.interrupts == []
