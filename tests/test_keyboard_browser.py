"""Keyboard and screen-reader basics in a real browser (issue 8, first part): the page has a
language, an image card is reached with Tab and opened with Enter, and a running job's progress
bar tells its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.keys import Keys

from tests.app_process import running_app
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import serve
from tests.test_browser import By, start_edit_in_browser, wait

pytestmark = pytest.mark.browser


def test_tab_reaches_an_image_card_and_enter_opens_its_actions(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    fake = FakeWebUI(step_seconds=0.02)
    fake.pause_at(6)
    with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
        browser.get(url)
        wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6)
        assert browser.execute_script("return document.documentElement.lang") == "en-US"

        body = browser.find_element(By.TAG_NAME, "body")
        focused = None
        for _ in range(40):  # Tab from the top of the page until the first image card has focus
            body.send_keys(Keys.TAB) if focused is None else browser.switch_to.active_element.send_keys(
                Keys.TAB
            )
            focused = browser.switch_to.active_element
            if "imgedit-image-card" in (focused.get_attribute("class") or ""):
                break
        assert focused is not None and "imgedit-image-card" in (focused.get_attribute("class") or "")
        assert "open Edit, View, Download and Delete" in (focused.get_attribute("aria-label") or "")
        outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
        assert outline != "none", "the focused card shows a focus ring"
        focused.send_keys(Keys.ENTER)
        wait(browser).until(
            lambda d: any(
                b.is_displayed()
                for b in d.find_elements(By.XPATH, "//button[.//span[normalize-space()='Edit']]")
            )
        )

        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait(browser).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))
        start_edit_in_browser(browser, 0, "oil painting")
        assert fake.paused.wait(30)
        wait(browser).until(
            lambda d: (
                int(
                    d.find_element(By.CSS_SELECTOR, ".imgedit-loading-card [role=progressbar]").get_attribute(
                        "aria-valuenow"
                    )
                    or 0
                )
                > 0
            )
        )
        fake.resume()
