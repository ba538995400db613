"""A gallery of 500 images in headless Chromium against a real ``python main.py``: one page at
first, the next as the user scrolls, search, a shift-click range, Esc, and Download N as a zip."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from imgedit.ui.image_grid import PAGE_SIZE
from tests.app_process import running_app
from tests.big_gallery import fill
from tests.test_browser import ARTIFACTS, wait

pytestmark = pytest.mark.browser

CARDS = ".imgedit-images-box .imgedit-image-card"


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[str]:
    fill(tmp_path / "data", 500, prompt_every=5)  # every 5th an edit "make it blue"
    with running_app(tmp_path) as url:
        yield url


def cards(driver: webdriver.Chrome) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, CARDS))


def count_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, ".imgedit-count").text)


def test_pages_arrive_on_scroll_and_search_selection_and_zip_work(
    gallery: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.get(gallery + "/")
    wait(browser).until(lambda d: cards(d) == PAGE_SIZE)
    assert count_text(browser) == "500 images"

    # Scrolling near the end brings the next page, with no click.
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait(browser).until(lambda d: cards(d) >= 2 * PAGE_SIZE)
    browser.execute_script("window.scrollTo(0, 0)")

    # Search: what is typed filters the gallery (prompts and names), the count says how many.
    search = browser.find_element(By.CSS_SELECTOR, ".imgedit-search input")
    search.send_keys("blue")
    wait(browser).until(lambda d: count_text(d) == "100 of 500 images match")
    wait(browser).until(
        lambda d: {e.text for e in d.find_elements(By.CSS_SELECTOR, f"{CARDS} .imgedit-title")} == {"make it blue"}
    )
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(Keys.BACKSPACE)
    wait(browser).until(lambda d: count_text(d) == "500 images")

    # A checkbox, then shift-click on another: the range between them.
    boxes = browser.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-select")
    boxes[1].click()
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".imgedit-selection-bar").is_displayed())
    ActionChains(browser).key_down(Keys.SHIFT).click(boxes[3]).key_up(Keys.SHIFT).perform()
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, ".imgedit-selection-count").text == "3 selected")
    checked = [
        e.get_attribute("aria-checked")
        for e in browser.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-select")[:5]
    ]
    assert checked == ["false", "true", "true", "true", "false"]
    browser.save_screenshot(str(ARTIFACTS / "gallery-selection.png"))

    # Download 3: one zip with the three images.
    browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Download 3']]").click()
    wait(browser, 30).until(lambda d: [p for p in downloads.iterdir() if p.suffix == ".zip"])
    [archive] = [p for p in downloads.iterdir() if p.suffix == ".zip"]
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        assert len(opened.namelist()) == 3

    # Esc (no dialog open) clears the selection.
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait(browser).until(lambda d: not d.find_element(By.CSS_SELECTOR, ".imgedit-selection-bar").is_displayed())
    # Nothing sat waiting: the download was whole when it showed up (Chromium renames on completion).
    assert not [p for p in downloads.iterdir() if p.suffix == ".crdownload"]
