"""Issue 8 ("everyone can use it") in headless Chromium against a real ``python main.py``: arrow
keys between image cards, names for every button (Quasar's upload "+" too), text contrast as
drawn in the dark and the light scheme (cards, toasts, tray, dialogs, history), the Edit dialog
and a failed card on a phone, the theme switch remembered before the first paint, and the
drag-over highlight. Screenshots go to tests/artifacts/a11y-*.png.

Contrast is measured, not assumed: each text's colour over the background actually behind it
(semi-transparent layers composited), by WCAG 2.2's formula; 4.5:1, or 3:1 for large text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.app_process import running_app
from tests.test_browser import ARTIFACTS, By, chrome, click, click_button, wait

pytestmark = pytest.mark.browser

Scheme = Literal["dark", "light"]
GLITTER_ERROR = "I don't understand"

CONTRAST_JS = r"""
window.ieContrast = (() => {
  const parse = (c) => {
    const m = c && c.match(/^rgba?\(([^)]+)\)$/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = (el) => {
    const layers = [];
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const opacity = (el) => {
    let o = 1;
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) o *= Number(getComputedStyle(n).opacity);
    return o;
  };
  return (el, ignoreOpacity) => {
    const s = getComputedStyle(el);
    const colour = parse(s.color);
    if (!colour) return null;
    const bg = background(el);
    const fg = over([colour[0], colour[1], colour[2], colour[3] * (ignoreOpacity ? 1 : opacity(el))], bg);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    return {
      ratio: Math.round(ratio(fg, bg) * 100) / 100,
      need: size >= 24 || (bold && size >= 18.66) ? 3 : 4.5,
      text: (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 70),
      where: el.className && typeof el.className === 'string' ? el.className.slice(0, 80) : el.tagName,
      fg: s.color,
      bg: 'rgb(' + bg.slice(0, 3).map(Math.round).join(', ') + ')',
    };
  };
})();
// Every toast, measured as it arrives (its colours do not animate, only its opacity does).
window.ieToasts = [];
new MutationObserver(() => {
  for (const toast of document.querySelectorAll('.q-notification:not([data-ie-seen])')) {
    toast.dataset.ieSeen = '1';
    const parts = [...toast.querySelectorAll('.q-notification__message, .q-notification__actions .q-btn .block')];
    for (const part of parts) window.ieToasts.push(window.ieContrast(part, true));
  }
}).observe(document.body, { childList: true, subtree: true });
"""

SWEEP_JS = r"""
const [scope] = arguments;
const skip = '.imgedit-media, .q-icon, .material-icons, .imgedit-logo, [aria-hidden="true"], .disabled, '
  + '[disabled], .imgedit-sr-only, .q-notification, .q-field__native input';
const found = [];
for (const root of document.querySelectorAll(scope)) {
  for (const el of [root, ...root.querySelectorAll('*')]) {
    if (el.closest(skip)) continue;
    if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own && !(el.tagName === 'INPUT' && el.value)) continue;
    const measured = window.ieContrast(el);
    if (measured) found.push(measured);
  }
}
return found;
"""


def start_edit_in_browser(driver: webdriver.Chrome, card_index: int, prompt: str) -> None:
    """Open a card's Edit form, type the prompt, Start Edit; cards redrawn meanwhile are looked up again."""
    click(driver, By.CSS_SELECTOR, f".imgedit-images-box .imgedit-card-wrap:nth-child({card_index + 1}) .imgedit-image-card")
    click_button(driver, "Edit")
    field = WebDriverWait(driver, 20, 0.1, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, ".q-dialog input[aria-label]") if e.is_displayed()),
            None,
        )
    )
    field.send_keys(prompt)
    click_button(driver, "Start Edit")
    wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))


def settle(driver: webdriver.Chrome) -> None:
    """Entrance animations and dialog transitions over (infinite shimmers excepted)."""
    wait(driver, 10).until(
        lambda d: d.execute_script(
            "return document.getAnimations().every((a) => a.playState !== 'running'"
            " || a.effect?.getTiming().iterations === Infinity)"
        )
    )


def emulate(driver: webdriver.Chrome, scheme: Scheme) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def image_cards(driver: webdriver.Chrome) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")


def open_gallery(driver: webdriver.Chrome, url: str, scheme: Scheme | None = None) -> None:
    if scheme:
        emulate(driver, scheme)
    driver.get(url)
    wait(driver).until(lambda d: len(image_cards(d)) >= 6 or None)
    driver.execute_script(CONTRAST_JS)
    settle(driver)


def sweep(driver: webdriver.Chrome, scope: str, where: str, log: list[str]) -> list[dict[str, Any]]:
    measured: list[dict[str, Any]] = driver.execute_script(SWEEP_JS, scope)
    assert measured, f"nothing to measure in {where}"
    for m in measured:
        if m["ratio"] < m["need"]:
            log.append(
                f"{where}: {m['ratio']}:1 < {m['need']} for {m['text']!r} ({m['where']}; {m['fg']} on {m['bg']})"
            )
    return measured


def tray_open(driver: webdriver.Chrome) -> None:
    click(driver, By.CSS_SELECTOR, ".imgedit-tray-badge")
    wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, ".imgedit-tray").is_displayed())
    settle(driver)


def tray_close(driver: webdriver.Chrome) -> None:
    click(driver, By.CSS_SELECTOR, "[aria-label='Close the jobs tray']")
    wait(driver).until(lambda d: not d.find_element(By.CSS_SELECTOR, ".imgedit-tray").is_displayed())


def close_dialogs(driver: webdriver.Chrome) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("a11y-ui")) as url:
        yield url


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    yield browser
    browser.quit()


def test_arrow_keys_move_focus_between_cards_as_laid_out(app_url: str, driver: webdriver.Chrome) -> None:
    open_gallery(driver, app_url)
    cards = image_cards(driver)
    boxes = [c.rect for c in cards]
    columns = sum(1 for b in boxes if abs(b["y"] - boxes[0]["y"]) < 2)
    assert 1 < columns < len(cards), "at least two rows and two columns to walk"

    def focused_index() -> int:
        active = driver.switch_to.active_element
        return next(i for i, c in enumerate(image_cards(driver)) if c == active)

    def press(key: str) -> int:
        driver.switch_to.active_element.send_keys(key)
        return focused_index()

    driver.execute_script("arguments[0].focus()", cards[0])
    assert press(Keys.ARROW_RIGHT) == 1
    assert press(Keys.ARROW_LEFT) == 0
    assert press(Keys.ARROW_LEFT) == 0, "stays on the first"
    assert press(Keys.ARROW_RIGHT) == 1
    below = press(Keys.ARROW_DOWN)
    assert below == 1 + columns, "Down: the card right below, in the next row"
    assert abs(cards[below].rect["x"] - boxes[1]["x"]) < 2
    assert press(Keys.ARROW_UP) == 1
    assert press(Keys.ARROW_UP) == 1, "no row above: stays"
    assert press(Keys.END) == len(cards) - 1
    assert press(Keys.HOME) == 0
    scrolled = driver.execute_script("return window.scrollY")
    press(Keys.ARROW_DOWN)
    assert driver.execute_script("return window.scrollY") == scrolled or focused_index() == columns
    outline = driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the card moved to shows its focus ring"


NAMES_JS = r"""
const name = (el) => {
  const label = el.getAttribute('aria-label');
  if (label && label.trim()) return label.trim();
  const walk = (n) => n.nodeType === 3 ? n.textContent
    : n.nodeType === 1 && n.getAttribute('aria-hidden') !== 'true' && !n.classList.contains('q-icon')
      ? [...n.childNodes].map(walk).join('') : '';
  return walk(el).trim();
};
return [...document.querySelectorAll('button, [role=button], a[href], input[type=file]')]
  .filter((el) => el.checkVisibility() || el.closest('.imgedit-upload'))
  .filter((el) => !name(el))
  .map((el) => el.outerHTML.slice(0, 160));
"""


def test_every_button_has_a_name_the_upload_plus_included(app_url: str, driver: webdriver.Chrome) -> None:
    open_gallery(driver, app_url)
    add = driver.find_element(By.CSS_SELECTOR, ".imgedit-upload .q-uploader__header .q-btn")
    assert add.get_attribute("aria-label") == "Choose images to upload"
    assert driver.execute_script(NAMES_JS) == [], "controls a screen reader cannot name"
    start_edit_in_browser(driver, 0, "add glitter")
    wait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")
    )
    tray_open(driver)
    assert driver.execute_script(NAMES_JS) == [], "with a failed card and the tray open"
    retry = driver.find_element(By.CSS_SELECTOR, ".imgedit-retry")
    assert (retry.get_attribute("aria-label") or "").startswith("Retry “")


def test_text_contrast_in_both_schemes(app_url: str, driver: webdriver.Chrome) -> None:
    problems: list[str] = []
    ratios: dict[str, float] = {}
    for scheme in ("dark", "light"):
        open_gallery(driver, app_url, scheme)
        assert driver.execute_script("return document.documentElement.dataset.theme") == scheme

        # A paused queue holds an edit: its queued card, then Cancel (the "cancelled" toast).
        tray_open(driver)
        click_button(driver, "Pause queue")
        tray_close(driver)
        start_edit_in_browser(driver, 0, "grayscale")
        card = wait(driver).until(
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=queued]")), None
            )
        )
        settle(driver)
        sweep(driver, ".imgedit-main", f"gallery with a queued card ({scheme})", problems)
        card.find_element(By.CSS_SELECTOR, ".imgedit-cancel").click()
        # A failing edit (its card, the failure toast with Retry) and a finished one (its toast).
        start_edit_in_browser(driver, 1, "add glitter")
        tray_open(driver)
        sweep(driver, ".imgedit-tray", f"tray ({scheme})", problems)
        click_button(driver, "Resume queue")
        tray_close(driver)
        wait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")
        )
        start_edit_in_browser(driver, 2, "sepia")
        wait(driver, 30).until(
            lambda d: any(
                "finished" in (t or {}).get("text", "") for t in d.execute_script("return window.ieToasts")
            )
        )
        settle(driver)
        measured = sweep(
            driver, ".imgedit-main, .imgedit-header", f"gallery with a failed card ({scheme})", problems
        )
        for m in measured:
            if m["text"] == "Retry":
                ratios[f"card Retry ({scheme})"] = m["ratio"]
        driver.save_screenshot(str(ARTIFACTS / f"a11y-gallery-{scheme}.png"))

        toasts = driver.execute_script("return window.ieToasts")
        texts = " | ".join(t["text"] for t in toasts)
        for wanted in ("Cancelled. Nothing was added", "Queue paused", "failed", "finished", "Retry", "View"):
            assert wanted in texts, f"the {wanted!r} toast was seen ({texts})"
        for t in toasts:
            ratios[f"toast {t['text'][:30]} ({scheme})"] = t["ratio"]
            if t["ratio"] < 4.5:
                problems.append(
                    f"toast ({scheme}): {t['ratio']}:1 for {t['text']!r} ({t['fg']} on {t['bg']})"
                )

        # The image dialog and the Edit form.
        image_cards(driver)[0].click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".q-dialog"))
        settle(driver)
        sweep(driver, ".q-dialog", f"image dialog ({scheme})", problems)
        click_button(driver, "Edit")
        wait(driver).until(
            lambda d: any(
                b.is_displayed()
                for b in d.find_elements(By.XPATH, "//button[.//span[normalize-space()='Start Edit']]")
            )
        )
        settle(driver)
        sweep(driver, ".q-dialog", f"Edit form ({scheme})", problems)
        driver.save_screenshot(str(ARTIFACTS / f"a11y-edit-dialog-{scheme}.png"))
        close_dialogs(driver)

        driver.get(app_url + "/history")
        wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-history-row")) >= 3)
        driver.execute_script(CONTRAST_JS)
        settle(driver)
        sweep(driver, "body", f"history ({scheme})", problems)
    print("\n".join(f"{k}: {v}:1" for k, v in sorted(ratios.items())))
    assert not problems, f"{len(problems)} text(s) below WCAG AA:\n" + "\n".join(problems)


def phone(driver: webdriver.Chrome) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )


def test_phone_edit_dialog_fits_and_a_failed_card_opens_its_error(
    app_url: str, driver: webdriver.Chrome
) -> None:
    for scheme in ("dark", "light"):
        phone(driver)
        open_gallery(driver, app_url, scheme)
        image_cards(driver)[0].click()
        click_button(driver, "Edit")
        wait(driver).until(
            lambda d: any(
                b.is_displayed()
                for b in d.find_elements(By.XPATH, "//button[.//span[normalize-space()='Start Edit']]")
            )
        )
        settle(driver)
        overflow = driver.execute_script(
            """
            const card = [...document.querySelectorAll('.q-dialog .imgedit-dialog')].find((c) => c.checkVisibility());
            const box = card.getBoundingClientRect();
            return [...card.querySelectorAll('.q-field, .q-btn')].filter((f) => f.checkVisibility())
              .map((f) => [f.innerText.split('\\n')[0], f.getBoundingClientRect()])
              .filter(([, r]) => r.right > box.right + 0.5 || r.left < box.left - 0.5 || r.right > innerWidth)
              .map(([name, r]) => `${name}: ${Math.round(r.left)}..${Math.round(r.right)} (card ${Math.round(box.left)}..${Math.round(box.right)})`);
            """
        )
        assert overflow == [], f"fields past the dialog's edge on a phone ({scheme})"
        driver.save_screenshot(str(ARTIFACTS / f"a11y-phone-edit-{scheme}.png"))
        close_dialogs(driver)

    start_edit_in_browser(driver, 0, "add glitter")
    card = wait(driver, 30).until(
        lambda d: next(
            iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")), None
        )
    )
    message = card.find_element(By.CSS_SELECTOR, ".imgedit-message")
    clamped = driver.execute_script(
        "return arguments[0].scrollHeight > arguments[0].clientHeight + 1", message
    )
    assert clamped, "a long error is cut on the card at first"
    toggle = card.find_element(By.CSS_SELECTOR, ".imgedit-error-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert toggle.get_attribute("aria-controls") == message.get_attribute("id")
    driver.execute_script("arguments[0].focus()", toggle)
    driver.switch_to.active_element.send_keys(Keys.ENTER)  # by keyboard
    wait(driver).until(lambda d: toggle.get_attribute("aria-expanded") == "true")
    wait(driver).until(
        lambda d: d.execute_script(
            "return arguments[0].scrollHeight <= arguments[0].clientHeight + 1", message
        )
    )
    assert "Example:" in message.text, "the whole error is readable"
    # The failure toast covers half a phone's screen: dismiss it, as a user would.
    click(driver, By.CSS_SELECTOR, ".q-notification__actions .q-btn", text_prefix="DISMISS")
    wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-notification"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
    driver.save_screenshot(str(ARTIFACTS / "a11y-phone-failed-card-open.png"))
    toggle.click()  # and by tap
    wait(driver).until(lambda d: toggle.get_attribute("aria-expanded") == "false")


def test_theme_switch_is_remembered_and_applied_before_the_first_paint(
    app_url: str, driver: webdriver.Chrome
) -> None:
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "new MutationObserver((_, o) => { if (document.body) {"
            " window.__themeAtBody = document.documentElement.dataset.theme; o.disconnect(); } })"
            ".observe(document, {childList: true, subtree: true});"
        },
    )
    open_gallery(driver, app_url, "dark")
    switch = driver.find_element(By.CSS_SELECTOR, ".imgedit-theme-switch")
    assert "Auto" in (switch.get_attribute("aria-label") or "")
    assert driver.execute_script("return document.documentElement.dataset.theme") == "dark"
    meta = "return document.querySelector('meta[name=color-scheme]').content"
    assert driver.execute_script(meta) == "light dark", "auto: both schemes offered"
    assert driver.execute_script("return document.querySelectorAll('meta[name=color-scheme]').length") == 1

    switch.click()  # Auto → Light
    wait(driver).until(lambda d: d.execute_script("return document.documentElement.dataset.theme") == "light")
    wait(driver).until(lambda d: d.execute_script("return document.body.classList.contains('body--light')"))
    driver.refresh()
    wait(driver).until(lambda d: len(image_cards(d)) >= 6 or None)
    assert driver.execute_script("return window.__themeAtBody") == "light", "light before <body> existed"
    assert driver.execute_script(meta) == "light"
    assert "Light" in (
        driver.find_element(By.CSS_SELECTOR, ".imgedit-theme-switch").get_attribute("aria-label") or ""
    )
    background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 245, 249)"

    driver.find_element(By.CSS_SELECTOR, ".imgedit-theme-switch").click()  # Light → Dark
    wait(driver).until(lambda d: d.execute_script("return document.documentElement.dataset.theme") == "dark")
    emulate(driver, "light")
    driver.refresh()
    wait(driver).until(lambda d: len(image_cards(d)) >= 6 or None)
    assert driver.execute_script("return window.__themeAtBody") == "dark", "the choice beats the system"

    driver.find_element(By.CSS_SELECTOR, ".imgedit-theme-switch").click()  # Dark → Auto: the system's light
    wait(driver).until(lambda d: d.execute_script("return document.documentElement.dataset.theme") == "light")
    emulate(driver, "dark")  # and it follows the system while it runs
    wait(driver).until(lambda d: d.execute_script("return document.documentElement.dataset.theme") == "dark")


DRAG_JS = """
const zone = document.querySelector('.imgedit-upload');
const data = new DataTransfer();
data.items.add(new File(['x'], 'x.png', {type: 'image/png'}));
for (const type of ['dragenter', 'dragover']) {
  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data}));
}
"""


def test_drag_over_highlight_is_clear_in_both_schemes(app_url: str, driver: webdriver.Chrome) -> None:
    for scheme in ("dark", "light"):
        open_gallery(driver, app_url, scheme)
        driver.execute_script(DRAG_JS)
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-upload.q-uploader--dnd"))
        title = driver.find_element(By.CSS_SELECTOR, ".imgedit-upload .q-uploader__title")
        measured = driver.execute_script("return window.ieContrast(arguments[0])", title)
        assert measured["ratio"] >= 4.5, measured
        frame = driver.execute_script(
            "const s = getComputedStyle(document.querySelector('.imgedit-upload'));"
            "return [s.borderTopColor, s.borderTopWidth, s.borderTopStyle]"
        )
        assert frame[2] == "solid" and float(frame[1].removesuffix("px")) >= 2, frame
        border_contrast = driver.execute_script(
            """
            const zone = document.querySelector('.imgedit-upload');
            const probe = document.createElement('span');
            probe.style.color = getComputedStyle(zone).borderTopColor;
            zone.parentElement.appendChild(probe);
            const r = window.ieContrast(probe);
            probe.remove();
            return r.ratio;
            """
        )
        assert border_contrast >= 3, f"the frame stands out from the page ({scheme}): {border_contrast}:1"
        assert "Release to add" in driver.execute_script(
            "return getComputedStyle(arguments[0], '::before').content", title
        )
        driver.save_screenshot(str(ARTIFACTS / f"a11y-drag-over-{scheme}.png"))
