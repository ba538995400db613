"""A real ``python main.py`` stopped with jobs queued and running on a slow provider (the loopback
Stable Diffusion WebUI fake, one server: one job runs, the others wait), then started again on
the same data dir (issue 7). ``kill -9`` and a clean stop alike: every job comes back and
completes, no result lands twice, no partial file stays, and earlier images are intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from selenium import webdriver

from tests.app_process import AppProcess
from tests.fake_sdwebui import FakeWebUI
from tests.loopback import serve
from tests.test_browser import By, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

PROMPTS = ("oil painting one", "oil painting two", "oil painting three")


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        return db.execute(sql).fetchall()


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("how", ["kill -9", "clean stop"])
def test_jobs_queued_and_running_survive_a_stop_and_land_once(
    browser: webdriver.Chrome, tmp_path: Path, how: str
) -> None:
    fake = FakeWebUI(step_seconds=0.02)
    fake.pause_at(5)
    with serve(fake.app()) as sd_url:
        env = {"IMGEDIT_SDWEBUI_URLS": sd_url}
        first = AppProcess(tmp_path, env)
        try:
            first.wait_ready()
            browser.get(first.url)
            wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6)
            samples = len(browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))
            for index, prompt in enumerate(PROMPTS):
                start_edit_in_browser(browser, index, prompt)
            assert fake.paused.wait(30), "the first job is sampling on the server"
            wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card")) == 3)
            wait(browser).until(
                lambda d: (
                    sorted(dict(rows(first.data_dir, "SELECT prompt, stage FROM jobs")).values())
                    == ["processing", "queued", "queued"]
                )
            )
        finally:
            first.kill() if how == "kill -9" else first.stop()
        journal = dict(rows(first.data_dir, "SELECT prompt, stage FROM jobs"))
        assert sorted(journal.values()) == ["processing", "queued", "queued"], (
            "stopping marks nothing finished"
        )
        assert not [n for n in files(first.data_dir / "images") if n.endswith(".tmp")]
        before = set(rows(first.data_dir, "SELECT id FROM images"))

        fake.resume()  # the old request finishes on the server; its answer goes nowhere
        second = AppProcess(tmp_path, env)
        try:
            second.wait_ready()
            browser.get(second.url)
            wait(browser, 90).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == samples + 3
            )
            wait(browser, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card"))
        finally:
            second.stop()
        assert "Traceback" not in second.log, second.log

    data = second.data_dir
    assert sorted(s for (s,) in rows(data, "SELECT stage FROM jobs")) == ["completed"] * 3
    by_job = rows(data, "SELECT job_id, count(*) FROM images WHERE job_id IS NOT NULL GROUP BY job_id")
    assert len(by_job) == 3 and all(count == 1 for _job, count in by_job), "one image per job"
    results = rows(data, "SELECT prompt FROM images WHERE job_id IS NOT NULL")
    assert sorted(p for (p,) in results) == sorted(PROMPTS)
    after = set(rows(data, "SELECT id FROM images"))
    assert before <= after and len(after - before) == 3, "earlier images intact, three new ones"
    stored = {n.split(".")[0] for n in files(data / "images")}
    assert stored == {i for (i,) in after}, "every row has its file and every file its row"
    assert not [n for n in files(data / "images") | files(data / "thumbs") if n.endswith(".tmp")]
    sent = [p["prompt"] for p in fake.received]
    for prompt in PROMPTS:
        assert 1 <= sent.count(prompt) <= 2, "a job runs again only if it was running when the app stopped"
