"""Shared fixtures: every test gets its own data dir; UI tests reach the app's services."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgedit.storage import ImageStore


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir, handed to main.py through the environment like a user would."""
    folder = tmp_path / "data"
    # A developer's own keys and servers must never be used by the tests.
    for name in list(os.environ):
        if name.startswith(("IMGEDIT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMGEDIT_DATA_DIR", str(folder))
    monkeypatch.setenv("IMGEDIT_NO_SHOW", "1")
    return folder


def app_services() -> Any:
    """The services main.py built for the running test app.

    NiceGUI re-imports page modules for every test, so this is looked up each time instead of
    imported at the top of a test module.
    """
    return sys.modules["imgedit.ui"].services


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    """An opened image store on real folders and a real SQLite file in the test's tmp dir."""
    opened = ImageStore(tmp_path)
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (``tests.test_browser.chrome``), closed after the test. Importing that
    module skips the test where Chromium is missing (and fails it in CI)."""
    from tests.test_browser import chrome

    driver = chrome()
    yield driver
    driver.quit()
