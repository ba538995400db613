"""A whole edit by keyboard alone, in headless Chromium against a real ``python main.py`` (issue 8,
WCAG 2.2 AA: 2.1.1 keyboard, 2.4.3 focus order, 2.4.7 focus visible, 4.1.2 name, 4.1.3 status
messages).

Every step is a key press sent to whatever has focus (Tab, Shift+Tab, Enter, Escape, arrows,
typing); nothing is clicked. At each stop the focused control must have an accessible name (as
Chromium's accessibility tree computes it) and show its focus. Those findings are collected over
the whole journey and reported together at the end, so one run lists every control to fix; a step
the journey cannot get past fails at once.

The local engine does the edit: "grayscale and rotate 90" is in its prompt language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.a11y import describe_focus, focus_indicator, focused_ax_node
from tests.app_process import running_app
from tests.test_browser import By, chrome, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

PROMPT = "grayscale and rotate 90"
MAX_TABS = 40

RECORD_LOADING_CARDS = """
// A recorder, not a driver: notes each loading card the page shows, however briefly.
window.__loadingCards = [];
new MutationObserver(() => {
  for (const card of document.querySelectorAll('.imgedit-loading-card')) {
    const text = card.innerText.replace(/\\s+/g, ' ').trim();
    if (!window.__loadingCards.includes(text)) window.__loadingCards.push(text);
  }
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""

RECORD_POLITE_ANNOUNCEMENTS = """
// The polite live regions present now: only a region that exists before its text changes is
// announced by screen readers. Every text they get from now on is recorded.
const regions = Array.from(document.querySelectorAll('[aria-live="polite"]'));
window.__announced = [];
const note = () => {
  for (const region of regions) {
    const text = region.textContent.replace(/\\s+/g, ' ').trim();
    if (region.isConnected && text && !window.__announced.includes(text)) window.__announced.push(text);
  }
};
new MutationObserver(note).observe(document.body, {childList: true, subtree: true, characterData: true});
return regions.length;
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("keyboard")) as url:
        yield url


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    yield browser
    browser.quit()


def image_cards(driver: webdriver.Chrome) -> list:  # type: ignore[type-arg]
    return driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")


def open_gallery(driver: webdriver.Chrome, url: str) -> int:
    driver.get(url)
    wait(driver).until(lambda d: len(image_cards(d)) >= 6 or None)
    return len(image_cards(driver))


class Keyboard:
    """Key presses to the focused element, and what each focus stop looked like."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.problems: list[str] = []

    def press(self, *keys: str) -> None:
        ActionChains(self.driver).send_keys(*keys).perform()

    def shift_tab(self) -> None:
        ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()

    def focused(self) -> dict[str, str]:
        return focused_ax_node(self.driver)

    def check(self, step: str) -> dict[str, str]:
        """Note it if the focused control has no accessible name or shows no focus."""
        node = self.focused()
        where = f"{step}: {describe_focus(self.driver)}"
        try:  # a focus ring may fade in: give it a moment before calling it missing
            indicator = wait(self.driver, 0.5).until(
                lambda d: (focus_indicator(d),) if focus_indicator(d) != "" else None
            )[0]
        except TimeoutException:
            indicator = ""
        if indicator is None:
            self.problems.append(f"{where}: focus is on <body> (lost)")
            return node
        if not node["name"]:
            self.problems.append(f"{where}: no accessible name (role {node['role']!r})")
        if not indicator:
            self.problems.append(f"{where}: no visible focus (outline and box-shadow are none)")
        return node

    def tab_until(self, step: str, wanted: re.Pattern[str], *, limit: int = MAX_TABS) -> dict[str, str]:
        """Tab forward, checking each stop, until the focused control's accessible name matches."""
        seen = []
        for _ in range(limit):
            self.press(Keys.TAB)
            node = self.check(step)
            seen.append(f"{node['role']} {node['name']!r}")
            if wanted.search(node["name"]):
                return node
        raise AssertionError(f"{step}: Tab never reached {wanted.pattern!r}; stops: {seen}")

    def wait_for_focus(self, step: str, wanted: re.Pattern[str], timeout: float = 5) -> dict[str, str]:
        try:
            wait(self.driver, timeout).until(lambda d: wanted.search(self.focused()["name"]))
        except TimeoutException:
            raise AssertionError(
                f"{step}: focus should be on {wanted.pattern!r}, it is on {describe_focus(self.driver)}"
            ) from None
        return self.check(step)


def focus_in_open_dialog(driver: webdriver.Chrome) -> bool:
    return bool(driver.execute_script("return !!document.activeElement.closest('.q-dialog, [role=dialog]')"))


def dialog_shown(driver: webdriver.Chrome, button: str) -> bool:
    """Whether a dialog on screen shows ``button`` (read in one go: Vue may swap the node)."""
    return bool(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('.q-dialog button')).some((b) =>"
            " b.innerText.trim().split('\\n').pop().trim() === arguments[0] && b.checkVisibility())",
            button,
        )
    )


def options_shown(driver: webdriver.Chrome) -> bool:
    """Whether a select's list of options is open on screen."""
    return bool(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('[role=option]')).some((o) => o.checkVisibility())"
        )
    )


def highlighted_option(driver: webdriver.Chrome) -> str:
    """The option the arrow keys have reached in an open Quasar list ('' if none)."""
    return str(
        driver.execute_script(
            "const o = document.querySelector('[role=option].q-manual-focusable--focused');"
            "return o ? o.innerText.trim() : '';"
        )
    )


def test_an_edit_from_start_to_finish_by_keyboard_alone(app_url: str, driver: webdriver.Chrome) -> None:
    before = open_gallery(driver, app_url)
    keys = Keyboard(driver)

    # Tab from the top of the page to the first image card.
    card = keys.tab_until("Tab to an image card", re.compile(r": open Edit, View, Download and Delete$"))
    card_name = card["name"]
    assert card["role"] == "button"

    # Enter opens its actions; focus moves into the dialog. Escape closes it; focus comes back.
    keys.press(Keys.ENTER)
    wait(driver).until(lambda d: dialog_shown(d, "Edit"), message="Enter on a card opens its actions")
    wait(driver, 5).until(focus_in_open_dialog, message="focus moves into the image dialog")
    keys.check("image dialog opened")
    keys.press(Keys.ESCAPE)
    wait(driver).until(lambda d: not dialog_shown(d, "Edit"), message="Escape closes the image dialog")
    if keys.focused()["name"] != card_name:
        keys.problems.append(
            f"image dialog closed with Escape: focus should return to the card, it is on {describe_focus(driver)}"
        )

    # Open it again and reach Edit: Shift+Tab and Tab both move within the dialog.
    keys.press(Keys.ENTER)
    wait(driver).until(lambda d: dialog_shown(d, "Edit"))
    wait(driver, 5).until(focus_in_open_dialog)
    keys.tab_until("Tab to Edit", re.compile(r"^Edit$"), limit=15)
    keys.shift_tab()
    assert keys.focused()["name"] != "Edit", "Shift+Tab leaves Edit backwards"
    keys.check("Shift+Tab inside the image dialog")
    keys.tab_until("Tab back to Edit", re.compile(r"^Edit$"), limit=15)
    keys.press(Keys.ENTER)

    # The Edit form opens with the prompt focused; type, choose Low quality with the arrows.
    wait(driver).until(lambda d: dialog_shown(d, "Start Edit"), message="Edit opens the edit form")
    keys.wait_for_focus("the edit form opened", re.compile(r"What should change"))
    keys.press(PROMPT)
    wait(driver, 5).until(lambda d: d.switch_to.active_element.get_attribute("value") == PROMPT)
    keys.tab_until("Tab to Quality", re.compile(r"Quality"), limit=6)
    keys.press(Keys.ENTER)
    wait(driver, 5).until(options_shown, message="Enter on Quality opens its options")
    for _ in range(4):  # arrows move the highlight (the list may wrap); stop on Low
        if highlighted_option(driver).startswith("Low"):
            break
        keys.press(Keys.ARROW_DOWN)
    assert highlighted_option(driver).startswith("Low"), "the arrows reach Low"
    keys.press(Keys.ENTER)
    wait(driver, 5).until(
        lambda d: not options_shown(d), message="Enter picks the option and closes the list"
    )
    quality = driver.find_element(
        By.XPATH,
        "//label[.//*[normalize-space()='Quality']]//*[@class and contains(@class, 'q-field__native')]",
    )
    assert quality.text.startswith("Low"), f"Low chosen by keyboard: {quality.text!r}"
    keys.check("Quality chosen")

    # Tab on to Start Edit and press Enter: the dialog closes, a loading card shows, then the image.
    keys.tab_until("Tab to Start Edit", re.compile(r"^Start Edit$"), limit=8)
    driver.execute_script(RECORD_LOADING_CARDS)
    keys.press(Keys.ENTER)
    wait(driver, 5).until(lambda d: not dialog_shown(d, "Start Edit"), message="Start Edit closes the form")
    wait(driver, 30).until(lambda d: len(image_cards(d)) == before + 1, message="the edited image arrives")
    wait(driver, 5).until(
        lambda d: (
            PROMPT
            in d.execute_script(
                "return document.querySelector('.imgedit-images-box .imgedit-image-card').textContent"
            )
        ),
        message="the newest card is the edit",
    )
    shown = driver.execute_script("return window.__loadingCards")
    assert any(PROMPT in text for text in shown), f"a loading card for the job was shown: {shown}"

    # Where did focus go when the form closed? Somewhere the user can carry on from.
    if focus_indicator(driver) is None:
        keys.problems.append("edit form closed by Start Edit: focus was lost to <body>")
    elif not driver.execute_script("return document.activeElement.checkVisibility()"):
        keys.problems.append(f"edit form closed by Start Edit: focus is on a hidden {describe_focus(driver)}")

    if keys.problems:
        pytest.fail(f"{len(keys.problems)} keyboard problem(s) on the way:\n- " + "\n- ".join(keys.problems))


def test_a_finished_job_is_announced_politely(app_url: str, driver: webdriver.Chrome) -> None:
    """A screen-reader user hears that the job finished without moving focus: a polite live
    region, present before the job ends, gets text naming the prompt once the image is there."""
    before = open_gallery(driver, app_url)
    regions = driver.execute_script(RECORD_POLITE_ANNOUNCEMENTS)
    assert regions >= 1, 'the gallery has an aria-live="polite" region'
    prompt = "sepia and mirror"
    start_edit_in_browser(driver, 2, prompt)
    wait(driver, 30).until(lambda d: len(image_cards(d)) == before + 1, message="the edited image arrives")
    try:
        wait(driver, 10).until(
            lambda d: any(
                prompt in text and re.search(r"finish|done|complete|ready", text, re.IGNORECASE)
                for text in d.execute_script("return window.__announced")
            )
        )
    except TimeoutException:
        heard = driver.execute_script("return window.__announced")
        raise AssertionError(
            f"no polite live region said the job finished; they said {heard} "
            f"({regions} region(s) present before the job)"
        ) from None
