"""Benchmark (issue 9, P4 and P6): a gallery of many images, from start-up to the first cards.

Fills a data dir with N small images (kept between runs in --data-dir, so the fill is paid
once), then starts ``python main.py`` on it the way a user does and measures:

- start-up: process start to the first HTTP 200 for ``/`` (P6);
- the first page: server time and bytes of ``GET /`` (P4);
- in headless Chromium: navigation start to the first image card's thumbnail painted (the
  browser's Element Timing record, not a poll),
  the bytes fetched before it, and how many cards the page holds (P4); then the same for a
  second visit in the same browser (NiceGUI's own scripts, styles and fonts cached).

    python bench/scale.py [--images 10000] [--data-dir /tmp/imgedit-scale] [--runs 3]

Needs Chromium (/usr/bin/chromium) for the browser figures; without it they are skipped.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgedit.models import ImageOrigin  # noqa: E402
from imgedit.storage import ImageStore  # noqa: E402
from tests.loopback import free_port  # noqa: E402


def fill(data_dir: Path, count: int) -> None:
    store = ImageStore(data_dir)
    store.open()
    try:
        have = len(store)
        if have >= count:
            return
        print(f"adding {count - have} images to {data_dir} (once) ...", flush=True)
        for i in range(have, count):
            picture = Image.new("RGB", (320, 240), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
            out = io.BytesIO()
            picture.save(out, "PNG")
            store.add_sync(out.getvalue(), origin=ImageOrigin.UPLOAD, name=f"scale-{i:05d}.png")
    finally:
        store.close()


def start_app(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "main.py", "--port", str(port), "--no-show", "--data-dir", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if httpx.get(url + "/", timeout=30).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited")
        time.sleep(0.02)  # polling a child process


FIRST_CARD_DRAWN = """
const done = arguments[arguments.length - 1];
new PerformanceObserver((list, observer) => {
  const cards = list.getEntries().filter((e) => e.identifier === 'card');
  if (cards.length) {
    observer.disconnect();
    done(Math.min(...cards.map((e) => e.renderTime || e.loadTime)));
  }
}).observe({type: 'element', buffered: true});
"""
"""When the browser painted the first card thumbnail (Element Timing: thumbnails carry
``elementtiming="card"``), in ms since navigation start; not when a poll noticed it."""

BYTES_BEFORE = """
const until = arguments[0];
const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
return entries.filter((e) => e.responseEnd <= until)
  .reduce((sum, e) => sum + (e.transferSize || 0), 0);  // 0 for what came from the cache
"""
"""Bytes the browser fetched (headers and compressed bodies) that finished by ``until`` (ms)."""


def first_cards_ms(url: str) -> tuple[float, int, int, float, int] | None:
    """First visit (empty cache) and a second visit in the same browser: time to the first card
    drawn with its thumbnail, cards in the page, bytes fetched before it."""
    if not Path("/usr/bin/chromium").exists():
        return None
    from tests.test_browser import chrome, wait

    def visit() -> tuple[float, int, int]:
        driver.get("about:blank")  # a new navigation, not a reload (which revalidates)
        driver.get(url + "/")
        wait(driver, 120).until(
            lambda d: d.execute_script(
                "const img = document.querySelector('.imgedit-image-card img');"
                "return !!img && img.complete && img.naturalWidth > 0"
            )
        )
        shown = driver.execute_async_script(FIRST_CARD_DRAWN)  # ms since navigation start
        cards = driver.execute_script("return document.querySelectorAll('.imgedit-image-card').length")
        fetched = driver.execute_script(BYTES_BEFORE, shown)
        return float(shown), int(cards), int(fetched)

    driver = chrome()
    try:
        cold_ms, cards, cold_bytes = visit()
        warm_ms, _cards, warm_bytes = visit()
        return cold_ms, cards, cold_bytes, warm_ms, warm_bytes
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/imgedit-scale"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data_dir = args.data_dir / str(args.images)
    fill(data_dir, args.images)
    startup, server_ms, sizes, browser = [], [], [], []
    for _ in range(args.runs):
        shutil.rmtree(data_dir / ".nicegui", ignore_errors=True)
        process, url, ready = start_app(data_dir)
        try:
            startup.append(ready)
            begun = time.perf_counter()
            page = httpx.get(url + "/", timeout=120)
            server_ms.append((time.perf_counter() - begun) * 1000)
            sizes.append(len(page.content))
            measured = first_cards_ms(url)
            if measured is not None:
                browser.append(measured)
        finally:
            process.terminate()
            process.wait(30)
    print(f"images: {args.images}, runs: {args.runs} (medians)")
    print(f"P6 start-up to first 200:   {statistics.median(startup):.2f} s")
    print(f"P4 GET / server time:       {statistics.median(server_ms):.0f} ms")
    print(f"P4 GET / bytes:             {statistics.median(sizes) / 1024:.0f} KB")
    if browser:
        print(f"P4 first card drawn:        {statistics.median(b[0] for b in browser):.0f} ms after navigation")
        print(f"P4 bytes before first card: {statistics.median(b[2] for b in browser) / 1024:.0f} KB")
        print(f"   cards in the page:       {browser[0][1]}")
        print(f"P4 second visit (cached):   first card {statistics.median(b[3] for b in browser):.0f} ms, "
              f"{statistics.median(b[4] for b in browser) / 1024:.0f} KB fetched before it")


if __name__ == "__main__":
    main()
