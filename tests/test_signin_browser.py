"""Hosting for a team, in real headless Chromium against a real server with a password: signing
in (wrong, then right), the studio shared by two people with who-started-what on the cards and in
history, signing out everywhere, and a studio served under a path prefix."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.a11y import blocking, describe, emulate_color_scheme, run_axe
from tests.app_process import AppProcess
from tests.prefix_proxy import prefix_proxy
from tests.test_browser import chrome, click_button, start_edit_in_browser, wait
from tests.test_signin import _image_id

PASSWORD = "correct horse battery"


def sign_in(browser: webdriver.Chrome, name: str, password: str) -> None:
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[autocomplete='username']"))
    name_field = browser.find_element(By.CSS_SELECTOR, "input[autocomplete='username']")
    name_field.send_keys(Keys.CONTROL, "a")
    name_field.send_keys(Keys.BACKSPACE, name)
    password_field = browser.find_element(By.CSS_SELECTOR, "input[autocomplete='current-password']")
    password_field.send_keys(password, Keys.ENTER)


def alert_text(browser: webdriver.Chrome) -> str:
    return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "[role='alert']")).strip()


def image_cards_loaded(d: webdriver.Chrome) -> bool:
    cards = d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card img")
    return len(cards) >= 6 and all(
        d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        for img in cards
    )


def test_a_team_signs_in_shares_the_studio_and_signs_out(browser: webdriver.Chrome, tmp_path: Path) -> None:
    app = AppProcess(tmp_path, {"IMGEDIT_PASSWORD": PASSWORD}, args=("--host", "0.0.0.0"))
    second = None
    try:
        app.wait_ready()
        browser.get(app.url + "/history")
        wait(browser).until(lambda d: "/login" in d.current_url)
        assert browser.title.startswith("Sign in")
        for scheme in ("light", "dark"):  # the login page passes axe in both schemes
            emulate_color_scheme(browser, scheme)
            browser.refresh()
            wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[autocomplete='username']"))
            found = blocking(run_axe(browser))
            assert not found, describe(found, f"the login page ({scheme})")
        sign_in(browser, "Ana", "wrong password")
        wait(browser).until(lambda d: alert_text(d) == "Wrong password.")
        assert "/login" in browser.current_url

        sign_in(browser, "Ana", PASSWORD)
        wait(browser).until(lambda d: d.current_url == app.url + "/history")  # back where she was going
        browser.get(app.url + "/")
        wait(browser, 30).until(image_cards_loaded)  # media is served to a signed-in browser
        assert "Signed in as Ana" in browser.find_element(By.CSS_SELECTOR, ".imgedit-header").text

        # the session cookie is HttpOnly: page scripts cannot read it
        assert "session=" not in browser.execute_script("return document.cookie")

        # a second person, in a browser of their own, sees the same studio and Ana's job by name
        second = chrome()
        second.get(app.url + "/")
        sign_in(second, "Bo", PASSWORD)
        wait(second, 30).until(image_cards_loaded)
        # a prompt the local engine does not understand fails, and its card stays for all to see
        start_edit_in_browser(browser, 0, "make it fly away")
        with sqlite3.connect(app.data_dir / "imgedit.sqlite3") as db:
            wait(browser, 30).until(
                lambda _: db.execute("SELECT started_by FROM jobs").fetchall() == [("Ana",)]
            )
        wait(second, 30).until(
            lambda d: any("by Ana" in c.text for c in d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card")) or None
        )
        second.get(app.url + "/history")
        wait(second, 30).until(lambda d: "Ana" in d.find_element(By.TAG_NAME, "body").text or None)

        # signing out ends the session on the server, in every tab of that browser
        cookie = {c["name"]: c["value"] for c in browser.get_cookies()}["session"]
        with httpx.Client(base_url=app.url, cookies={"session": cookie}, timeout=10) as signed:
            media = signed.get(f"/media/images/{_image_id(app.data_dir)}")
            assert media.status_code == 200
            assert media.headers["cache-control"].startswith("private")  # no shared proxy cache keeps it
        click_button(browser, "Sign out")
        wait(browser).until(lambda d: "/login" in d.current_url)
        with httpx.Client(base_url=app.url, cookies={"session": cookie}, timeout=10) as old:
            assert old.get("/").status_code == 303
        # Bo is still signed in
        second.get(app.url + "/")
        wait(second, 30).until(image_cards_loaded)
    finally:
        if second is not None:
            second.quit()
        app.stop()
    assert "Traceback" not in app.log
    assert PASSWORD not in app.log


def test_too_many_wrong_passwords_make_that_address_wait(browser: webdriver.Chrome, tmp_path: Path) -> None:
    app = AppProcess(tmp_path, {"IMGEDIT_PASSWORD": PASSWORD}, args=("--host", "0.0.0.0"))
    try:
        app.wait_ready()
        browser.get(app.url + "/")
        for attempt in range(5):
            sign_in(browser, "Eve", f"guess {attempt}")
            wait(browser).until(lambda d: alert_text(d).startswith(("Wrong password", "Too many")))
            browser.get(app.url + "/")
        sign_in(browser, "Eve", PASSWORD)
        wait(browser).until(lambda d: alert_text(d).startswith("Too many wrong passwords"))
        assert "/login" in browser.current_url
    finally:
        app.stop()


def test_a_studio_under_a_path_prefix_works_end_to_end(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """Behind a reverse proxy that serves it under /imgedit/ and strips the prefix: pages,
    assets, media, the websocket and the redirects all stay under the prefix."""
    app = AppProcess(
        tmp_path, {"IMGEDIT_PASSWORD": PASSWORD}, args=("--host", "0.0.0.0", "--root-path", "/imgedit")
    )
    try:
        app.wait_ready()
        with prefix_proxy(app.port, "/imgedit") as url:
            browser.get(url + "/history")
            wait(browser).until(lambda d: d.current_url.startswith(url + "/login"))
            sign_in(browser, "Ana", PASSWORD)
            wait(browser).until(lambda d: d.current_url == url + "/history")
            browser.get(url + "/")
            wait(browser, 30).until(image_cards_loaded)
            before = len(browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))
            start_edit_in_browser(browser, 0, "grayscale")  # over the websocket, through the proxy
            wait(browser, 30).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) > before or None
            )
            wait(browser, 30).until(image_cards_loaded)
            for entry in browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"):
                assert entry.startswith(url + "/"), entry
    finally:
        app.stop()
    assert "Traceback" not in app.log
