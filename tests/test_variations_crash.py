"""A real ``python main.py`` killed with ``kill -9`` while a job of four variations is half made,
then started again on the same data dir: the variations already in the gallery stay as they
were (same images, not made again), the job makes only the missing ones, and no partial file
stays. The local engine on a 4000×3000 photo at high quality takes over a second per
variation, so the kill lands between two of them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from selenium import webdriver

from imgedit.models import ImageOrigin
from imgedit.storage import ImageStore
from tests.app_process import AppProcess
from tests.test_browser import By, click, click_button, colourful_png, dialog_field, wait

pytestmark = pytest.mark.browser

PROMPT = "blur 12 and emboss and sharpen and add a vignette and sepia"


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        return db.execute(sql).fetchall()


def landed(data_dir: Path) -> dict[int, str]:
    """The variations stored so far: slot → image id."""
    found = rows(data_dir, "SELECT job_slot, id FROM images WHERE job_id IS NOT NULL")
    return {int(slot): str(image) for slot, image in found}  # type: ignore[call-overload]


def test_a_kill_between_variations_keeps_those_made_and_makes_the_rest(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = ImageStore(data)
    store.open()
    big = colourful_png(tmp_path / "big.png", (4000, 3000)).read_bytes()
    source = store.add_sync(big, origin=ImageOrigin.UPLOAD, name="big-photo.png")
    store.close()

    first = AppProcess(tmp_path, {"IMGEDIT_SAMPLES": "0"})
    try:
        first.wait_ready()
        browser.get(first.url)
        click(browser, By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")
        click_button(browser, "Edit")
        field = dialog_field(browser)
        field.send_keys(PROMPT)
        click(browser, By.XPATH, "//label[.//*[normalize-space()='Quality']]")
        click(browser, By.CSS_SELECTOR, ".q-item", text_prefix="High")
        click(browser, By.XPATH, "//label[.//*[normalize-space()='Variations']]")
        click(browser, By.CSS_SELECTOR, ".q-item", text_prefix="4 images")
        click_button(browser, "Start Edit")
        # Kill as soon as the first variation is stored (the next takes over a second).
        deadline = time.monotonic() + 120
        while not landed(data):
            assert time.monotonic() < deadline, "no variation was stored within 2 minutes"
            time.sleep(0.02)  # polling another process's database, not synchronising with our own code
    finally:
        first.kill()
    before = landed(data)
    assert 1 <= len(before) < 4, f"the kill came between variations (stored: {sorted(before)})"
    assert rows(data, "SELECT stage, variations FROM jobs") == [("processing", 4)]

    second = AppProcess(tmp_path, {"IMGEDIT_SAMPLES": "0"})
    try:
        second.wait_ready()
        browser.get(second.url)
        wait(browser, 120).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-images-box .imgedit-image-card")) == 5
        )
        wait(browser, 30).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card"))
    finally:
        second.stop()
    assert "Traceback" not in second.log, second.log

    assert rows(data, "SELECT stage FROM jobs") == [("completed",)]
    after = landed(data)
    assert sorted(after) == [0, 1, 2, 3], "four variations, one per slot"
    assert all(after[slot] == image for slot, image in before.items()), "those made before the kill stay"
    parents = rows(data, "SELECT DISTINCT parent_id FROM images WHERE job_id IS NOT NULL")
    assert parents == [(source.id,)]
    stored = {p.name.split(".")[0] for p in (data / "images").iterdir()}
    assert stored == {str(i) for (i,) in rows(data, "SELECT id FROM images")}, "every row has its file"
    assert not [p for p in (data / "images").iterdir() if p.name.endswith(".tmp")]
