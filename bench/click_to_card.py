"""Benchmark (issue 9, P5): from the Start Edit click to the job's loading card, in the browser.

Starts ``python main.py`` on a fresh temp data dir (the sample images appear on first start),
opens the gallery in headless Chromium, and per run: opens an image's dialog, Edit, types a
prompt, then measures inside the page itself. A MutationObserver and a requestAnimationFrame
loop are installed before the click, the click is dispatched from JavaScript (no WebDriver
round trip inside the measurement), and ``performance.now()`` is taken

- at the click,
- when the click's event leaves through NiceGUI's socket (``socket.emit`` wrapped),
- when the first update message carrying a loading card arrives (``socket.prependAny``, before
  NiceGUI applies it),
- when the loading card for that job (a new ``.imgedit-loading-card`` showing this run's
  prompt) is in the DOM and laid out: ``checkVisibility()`` (no ``display: none`` on it or an
  ancestor) and a box of non-zero size, read in the observer callback (which forces layout);
- at the first animation frame after that (the frame that paints it).

What lies between: the click event, the websocket message to the server, the server's submit
and sync of the gallery, the update message back, Vue's render. Each run waits for its job to
finish before the next, so every click meets a quiet server.

    python bench/click_to_card.py [--runs 10] [--warmup 1]

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.app_process import AppProcess  # noqa: E402
from tests.test_browser import click  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1360,900",
)

# Installed before the click, in the same script that clicks: records the click time, then the
# first moment the new card is laid out, then the next animation frame.
MEASURE_JS = """
const prompt = arguments[0];
const before = new Set(document.querySelectorAll('.imgedit-loading-card'));
const start = [...document.querySelectorAll('.q-dialog button')]
  .find((b) => b.textContent.trim() === 'Start Edit');
if (!start) return 'no Start Edit button';
const result = { click: null, emitted: null, arrived: null, laidOut: null, frame: null, how: null };
window.__p5 = result;
// Milestones on the way, same clock: the click's event leaving through the socket, and the
// first update message that carries a loading card arriving (before NiceGUI applies it).
const socket = window.socket;
const emit = socket.emit;
socket.emit = function (name, ...rest) {
  if (name === 'event' && result.emitted === null) result.emitted = performance.now();
  return emit.call(this, name, ...rest);
};
const arrival = (name, message) => {
  if (name !== 'update' || result.arrived !== null || result.emitted === null) return;
  const now = performance.now();
  const carries = Object.values(message).some(
    (e) => e && Array.isArray(e.class) && e.class.includes('imgedit-loading-card'));
  if (carries) result.arrived = now;
};
socket.prependAny(arrival);
const shown = () => {
  for (const card of document.querySelectorAll('.imgedit-loading-card')) {
    if (before.has(card)) continue;
    const text = card.querySelector('.imgedit-prompt');
    if (!text || !text.textContent.includes(prompt)) continue;
    const box = card.getBoundingClientRect();  // forces layout
    if (card.checkVisibility() && box.width > 0 && box.height > 0) return true;
  }
  return false;
};
const found = (how) => {
  if (result.laidOut !== null) return;
  result.laidOut = performance.now();
  result.how = how;
  observer.disconnect();
  socket.emit = emit;
  socket.offAny(arrival);
  requestAnimationFrame(() => { result.frame = performance.now(); });
};
const observer = new MutationObserver(() => { if (shown()) found('mutation'); });
observer.observe(document.body, { childList: true, subtree: true, attributes: true,
                                  attributeFilter: ['class', 'style', 'hidden'] });
const poll = () => {
  if (result.laidOut !== null) return;
  if (shown()) found('frame'); else requestAnimationFrame(poll);
};
requestAnimationFrame(poll);
result.click = performance.now();
start.click();
return 'clicked';
"""


def chrome() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(1360, 900)
    return driver


def wait(driver: webdriver.Chrome, timeout: float = 20) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )


def still(driver: webdriver.Chrome) -> bool:
    """No animation running (a card fading in, a dialog opening or closing)."""
    return bool(
        driver.execute_script(
            "return document.getAnimations().every((a) => a.playState !== 'running'"
            " || a.effect?.getComputedTiming().iterations === Infinity)"
        )
    )


def quiet_gallery(driver: webdriver.Chrome, cards: int) -> None:
    """Wait until the gallery holds ``cards`` image cards, no loading card and no dialog."""
    wait(driver, 120).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('.imgedit-images-box .imgedit-image-card').length"
            " === arguments[0] && !document.querySelector('.imgedit-loading-card')"
            " && !document.querySelector('.q-dialog')",
            cards,
        )
    )
    wait(driver, 20).until(still)


def one_click(driver: webdriver.Chrome, prompt: str) -> dict[str, Any]:
    prepare(driver, prompt)
    return measure(driver, prompt)


def prepare(driver: webdriver.Chrome, prompt: str) -> None:
    """The first image's dialog, Edit, the prompt typed: the Start Edit click is next."""
    click(driver, By.CSS_SELECTOR, ".imgedit-images-box .imgedit-card-wrap:nth-child(1) .imgedit-image-card")
    click(driver, By.XPATH, "//button[.//span[normalize-space()='Edit']]")
    field = wait(driver).until(
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, ".q-dialog input[aria-label]") if e.is_displayed()),
            None,
        )
    )
    field.send_keys(prompt)
    wait(driver).until(lambda d: field.get_attribute("value") == prompt)
    wait(driver).until(still)  # the dialog has finished opening


def measure(driver: webdriver.Chrome, prompt: str) -> dict[str, Any]:
    outcome = driver.execute_script(MEASURE_JS, prompt)
    if outcome != "clicked":
        raise SystemExit(f"FAIL: {outcome}")
    measured: dict[str, Any] = wait(driver, 10).until(
        lambda d: d.execute_script("const r = window.__p5; return r.frame !== null ? r : null")
    )
    return measured


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="clicks before the measured ones (not counted)")
    args = parser.parse_args()
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise SystemExit(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    laid_out: list[float] = []
    framed: list[float] = []
    shares: tuple[list[float], list[float], list[float]] = ([], [], [])
    with tempfile.TemporaryDirectory(prefix="imgedit-p5-") as folder:
        app = AppProcess(Path(folder))
        driver = None
        try:
            app.wait_ready()
            driver = chrome()
            driver.get(app.url + "/")
            wait(driver, 60).until(
                lambda d: d.execute_script(
                    "const imgs = [...document.querySelectorAll('.imgedit-image-card img')];"
                    "return imgs.length >= 6 && imgs.every((i) => i.complete && i.naturalWidth > 0)"
                )
            )
            cards = int(
                driver.execute_script("return document.querySelectorAll('.imgedit-image-card').length")
            )
            quiet_gallery(driver, cards)
            for run in range(args.warmup + args.runs):
                prompt = f"sepia and rotate {run + 1}"
                measured = one_click(driver, prompt)
                to_dom = measured["laidOut"] - measured["click"]
                to_frame = measured["frame"] - measured["click"]
                parts = (
                    measured["emitted"] - measured["click"],
                    measured["arrived"] - measured["emitted"],
                    measured["laidOut"] - measured["arrived"],
                )
                counted = run >= args.warmup
                label = f"run {run - args.warmup + 1}" if counted else "warm-up"
                print(
                    f"{label:>8}: laid out {to_dom:6.1f} ms, painted frame {to_frame:6.1f} ms (seen by"
                    f" {measured['how']}); click->sent {parts[0]:.1f}, sent->update in {parts[1]:.1f},"
                    f" update in->laid out {parts[2]:.1f} ms",
                    flush=True,
                )
                if counted:
                    laid_out.append(to_dom)
                    framed.append(to_frame)
                    for share, value in zip(shares, parts, strict=True):
                        share.append(value)
                cards += 1
                quiet_gallery(driver, cards)  # the job is done and its image shown: a quiet start
        finally:
            if driver is not None:
                driver.quit()
            app.stop()
        if "Traceback" in app.log:
            print("WARNING: the server logged a traceback:\n" + app.log, file=sys.stderr)
    print(f"P5 click Start Edit -> loading card, {args.runs} runs (after {args.warmup} warm-up):")
    rows = [
        ("laid out (in DOM, visible)", laid_out),
        ("first frame after it", framed),
        ("  click -> event sent", shares[0]),
        ("  sent -> card's update in", shares[1]),
        ("  update in -> laid out", shares[2]),
    ]
    for name, values in rows:
        print(
            f"  {name:<27} median {statistics.median(values):6.1f} ms, "
            f"p90 {nearest_rank(values, 0.9):6.1f} ms, max {max(values):6.1f} ms"
        )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(took {time.perf_counter() - started:.0f} s)")
