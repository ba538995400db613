"""Notifications and the jobs tray in headless Chromium against a real ``python main.py``.

The browser's own APIs are stubbed in the page, never in the app: ``window.Notification`` is
replaced by a recorder and ``document.hidden`` is faked with ``Object.defineProperty`` plus a
``visibilitychange`` event, so ``static/notify.js`` runs exactly as it would in a hidden tab.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.app_process import running_app
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import serve
from tests.test_browser import ARTIFACTS, chrome, click_button, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

PROMPT = "oil painting <b>bold</b> at dusk"
"""Carries markup: the toast and the notification must show it as text."""

STUB_NOTIFICATIONS = """
window.__notes = [];
window.__asked = 0;
class RecordingNotification {
  constructor(title, options) { window.__notes.push({title, ...(options || {})}); }
  static requestPermission() { window.__asked += 1; RecordingNotification.permission = 'granted';
                               return Promise.resolve('granted'); }
}
RecordingNotification.permission = arguments[0];
window.Notification = RecordingNotification;
"""

SET_HIDDEN = """
const hidden = arguments[0];
Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
document.dispatchEvent(new Event('visibilitychange'));
"""


@pytest.fixture
def two_browsers() -> Iterator[tuple[webdriver.Chrome, webdriver.Chrome]]:
    first = chrome()
    try:
        second = chrome()
    except BaseException:
        first.quit()
        raise
    yield first, second
    first.quit()
    second.quit()


def open_gallery(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6 or None)
    wait(driver).until(lambda d: d.execute_script("return !!window.imgeditNotify"))


def badge_text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, ".imgedit-tray-badge .imgedit-summary").text).strip()


def title_is(driver: webdriver.Chrome, expected: str, timeout: float = 20) -> None:
    wait(driver, timeout).until(
        lambda d: d.title == expected, message=f"title {expected!r}, last {driver.title!r}"
    )


def test_a_finished_job_reaches_both_tabs_the_title_counts_and_a_hidden_tab_notifies(
    two_browsers: tuple[webdriver.Chrome, webdriver.Chrome], tmp_path: Path
) -> None:
    alice, bob = two_browsers
    fake = FakeWebUI(step_seconds=0.05)
    fake.pause_at(4)
    with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
        open_gallery(alice, url)
        open_gallery(bob, url)
        assert alice.title == "imgedit"
        alice.execute_script(STUB_NOTIFICATIONS, "default")
        bob.execute_script(STUB_NOTIFICATIONS, "granted")
        bob.execute_script(SET_HIDDEN, True)  # bob looks at another tab

        start_edit_in_browser(alice, 0, PROMPT)
        assert fake.paused.wait(30), "sampling reached step 4"
        assert alice.execute_script("return window.__asked") == 1, "asked on the first submit"
        title_is(alice, "(1 running) imgedit")
        title_is(bob, "(1 running) imgedit")

        fake.resume()
        # Alice, watching: a toast with the result's thumbnail and View; no system notification.
        toast = wait(alice, 60).until(
            lambda d: next(
                (n for n in d.find_elements(By.CSS_SELECTOR, ".q-notification") if "finished" in n.text), None
            )
        )
        assert f"Edit finished: “{PROMPT}”" in toast.text, "the prompt's markup is shown as text"
        assert not toast.find_elements(By.CSS_SELECTOR, ".q-notification__message b")
        avatar = toast.find_element(By.CSS_SELECTOR, "img")
        assert "/media/thumbs/" in avatar.get_attribute("src")
        view = toast.find_element(By.XPATH, ".//a[.//span[normalize-space()='View']]")
        result_id = avatar.get_attribute("src").rsplit("/", 1)[1]
        assert view.get_attribute("href").endswith(f"/media/images/{result_id}")
        assert view.get_attribute("target") == "_blank"
        title_is(alice, "imgedit")
        assert alice.execute_script("return window.__notes") == []

        # Bob, hidden: the same toast in his tab, a counted title, one system notification.
        wait(bob, 20).until(
            lambda d: f"Edit finished: “{PROMPT}”" in d.find_element(By.TAG_NAME, "body").text
        )
        title_is(bob, "(1 done) imgedit")
        notes = bob.execute_script("return window.__notes")
        assert len(notes) == 1
        assert notes[0]["title"] == "Edit finished"
        assert notes[0]["body"] == PROMPT
        assert notes[0]["icon"] == f"/media/thumbs/{result_id}"
        assert bob.execute_script("return window.__asked") == 0, "bob never submitted: never asked"

        bob.execute_script(SET_HIDDEN, False)  # bob comes back: the count is read
        title_is(bob, "imgedit")

        # A second submit from alice's tab does not ask again.
        start_edit_in_browser(alice, 1, "second one")
        assert alice.execute_script("return window.__asked") == 1
        fake.resume()
        wait(alice, 60).until(lambda d: badge_text(d) == "No jobs")


def test_the_tray_steers_the_queue_and_a_new_card_is_scrolled_into_view(
    two_browsers: tuple[webdriver.Chrome, webdriver.Chrome], tmp_path: Path
) -> None:
    alice, bob = two_browsers
    fake = FakeWebUI(step_seconds=0.05)
    fake.pause_at(6)
    with serve(fake.app()) as sd_url, running_app(tmp_path, {"IMGEDIT_SDWEBUI_URLS": sd_url}) as url:
        open_gallery(alice, url)
        open_gallery(bob, url)
        alice.set_window_size(760, 700)  # two columns: the gallery scrolls

        # A job started far down the page: its card (top of the grid) is scrolled into view.
        last = len(alice.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")) - 1
        alice.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        start_edit_in_browser(alice, last, "running on the server")
        assert fake.paused.wait(30)
        wait(alice, 10).until(
            lambda d: d.execute_script(
                "const c = document.querySelector('.imgedit-loading-card'); if (!c) return false;"
                "const r = c.getBoundingClientRect(); const h = document.querySelector('.imgedit-sticky');"
                "return r.top >= h.getBoundingClientRect().bottom - 1 && r.top < window.innerHeight;"
            ),
            message="the new card in view below the sticky header",
        )
        alice.set_window_size(1360, 900)

        # The badge stays on screen wherever the page is scrolled.
        alice.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        badge = alice.find_element(By.CSS_SELECTOR, ".imgedit-tray-badge")
        assert alice.execute_script("return arguments[0].getBoundingClientRect().top >= 0", badge)
        badge.click()
        drawer = wait(alice).until(
            lambda d: next(
                (e for e in d.find_elements(By.CSS_SELECTOR, ".imgedit-tray") if e.is_displayed()), None
            )
        )
        wait(alice, 5).until(
            lambda d: (
                d.execute_script("return document.activeElement.getAttribute('aria-label')")
                == "Close the jobs tray"
            ),
            message="keyboard focus moves into the tray",
        )
        click_button(alice, "Pause queue")
        alice.find_element(By.CSS_SELECTOR, "button[aria-label='Close the jobs tray']").click()
        wait(alice).until(lambda d: not drawer.is_displayed())
        for prompt in ("make it sepia", "rotate 90 and mirror"):
            start_edit_in_browser(alice, 2, prompt, provider="Local engine")
        badge.click()
        wait(alice).until(lambda d: drawer.is_displayed())
        wait(bob).until(lambda d: badge_text(d) == "Paused · 1 running · 2 queued")
        wait(alice).until(lambda d: len(drawer.find_elements(By.CSS_SELECTOR, ".imgedit-tray-row")) == 3)
        wait(alice).until(lambda d: "#2 in the queue" in drawer.text)
        alice.execute_script("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        alice.save_screenshot(str(ARTIFACTS / "tray.png"))

        # Move the second queued job to the front; bob's tray follows.
        rows = drawer.find_elements(By.CSS_SELECTOR, ".imgedit-tray-row")
        queued = [r for r in rows if "in the queue" in r.text]
        assert "rotate 90" in queued[1].text
        queued[1].find_element(
            By.CSS_SELECTOR, "button[aria-label^='Move'][aria-label$='to the front']"
        ).click()

        def bob_queue(d: webdriver.Chrome) -> list[str]:
            return [
                r.get_attribute("textContent")
                for r in d.find_elements(By.CSS_SELECTOR, "[aria-label='Queued jobs'] .imgedit-tray-prompt")
            ]

        # Bob opens his tray (its rows are built while it is open) and sees the new order.
        bob.find_element(By.CSS_SELECTOR, ".imgedit-tray-badge").click()
        wait(bob).until(lambda d: len(bob_queue(d)) == 2 and "rotate 90" in bob_queue(d)[0])

        click_button(alice, "Resume queue")
        wait(bob, 60).until(lambda d: "queued" not in badge_text(d) and "Paused" not in badge_text(d))
        fake.resume()
        wait(bob, 60).until(lambda d: badge_text(d) == "No jobs")

        # The sound choice is the browser's: kept in localStorage, shown again after a reload.
        sound = "[role='switch'][aria-label='Sound when a job ends'], .imgedit-tray [role='switch']"
        alice.find_element(By.CSS_SELECTOR, sound).click()
        wait(alice, 5).until(
            lambda d: d.execute_script("return localStorage.getItem('imgedit.sound')") == "1"
        )
        open_gallery(alice, url)
        alice.find_element(By.CSS_SELECTOR, ".imgedit-tray-badge").click()
        wait(alice, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, sound).get_attribute("aria-checked") == "true"
        )
