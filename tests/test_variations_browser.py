"""Variations in a real browser: the dialog's Variations choice, the card's slots while an SD
WebUI batch is made (fake server over loopback, paused mid-batch), the three results side by
side, and the image dialog's variations, operated by keyboard; axe on each."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.mark.browser
def test_variations_card_gallery_and_dialog_in_a_browser(tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    from tests.a11y import focused_ax_node
    from tests.app_process import running_app
    from tests.fake_sdwebui import FakeWebUI
    from tests.loopback import serve
    from tests.test_a11y_browser import assert_no_blocking_violations, open_gallery, settle
    from tests.test_browser import By, chrome, click, click_button, dialog_field, wait

    fake = FakeWebUI(step_seconds=0.02)
    fake.pause_at(6)
    driver = chrome()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
            open_gallery(driver, url, "light")
            before = len(driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card"))
            click(
                driver,
                By.CSS_SELECTOR,
                ".imgedit-images-box .imgedit-card-wrap:nth-child(1) .imgedit-image-card",
            )
            click_button(driver, "Edit")
            field = dialog_field(driver)
            field.send_keys("oil painting at golden hour")
            click(driver, By.XPATH, "//label[.//*[normalize-space()='Variations']]")
            click(driver, By.CSS_SELECTOR, ".q-item", text_prefix="3 images")
            settle(driver)
            assert_no_blocking_violations(driver, "the Edit dialog with Variations")
            click_button(driver, "Start Edit")
            wait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))

            # One card, three empty slots, while the server makes the batch.
            assert fake.paused.wait(30), "the batch reached step 6 and waits there"
            slots = wait(driver).until(
                lambda d: (
                    (found := d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card .imgedit-slot"))
                    and len(found) == 3
                    and found
                )
            )
            assert [s.get_attribute("aria-label") for s in slots] == [
                f"Variation {n} of 3: not made yet" for n in (1, 2, 3)
            ]
            settle(driver)
            assert_no_blocking_violations(driver, "a card with variation slots (light)")
            driver.save_screenshot(str(ARTIFACTS / "variations-card.png"))
            assert fake.received[-1].get("batch_size") == 3, "one batch of three"

            fake.resume()
            wait(driver, 60).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card"))
            wait(driver).until(
                lambda d: (
                    len(d.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card"))
                    == before + 3
                )
            )
            cards = driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")[:3]
            wait(driver).until(
                lambda d: (
                    [c.text.count("Variation") for c in cards] == [1, 1, 1]
                    and "Variation 1 ·" in cards[0].text
                    and "Variation 3 ·" in cards[2].text
                )
            )
            driver.save_screenshot(str(ARTIFACTS / "variations-gallery.png"))

            # The image dialog lists the three; Enter on another shows it in place.
            cards[0].click()
            wait(driver).until(
                lambda d: (
                    len(d.find_elements(By.CSS_SELECTOR, ".q-dialog [aria-label^='Show variation']")) == 3
                )
            )
            settle(driver)
            assert_no_blocking_violations(driver, "the image dialog with variations")
            second = driver.find_element(By.CSS_SELECTOR, ".q-dialog [aria-label='Show variation 2 of 3']")
            driver.execute_script("arguments[0].focus()", second)
            assert focused_ax_node(driver) == {"role": "button", "name": "Show variation 2 of 3"}
            driver.switch_to.active_element.send_keys(Keys.ENTER)
            wait(driver).until(
                lambda d: (
                    d.find_element(By.CSS_SELECTOR, ".q-dialog [aria-current='true']").get_attribute(
                        "aria-label"
                    )
                    == "Show variation 2 of 3"
                )
            )
            driver.save_screenshot(str(ARTIFACTS / "variations-dialog.png"))
    finally:
        fake.resume()
        driver.quit()
