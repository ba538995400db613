"""User text is never markup, in a real browser (issue 6, Security): a prompt, a file name and
a provider's error message each carry an HTML payload that would set ``window.__pwned`` if it
were ever rendered as HTML; each is shown as the literal text instead. Also the browser's own
refusal of a non-image (the upload strip's ``accept``) names the file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.loopback import serve
from tests.test_browser import By, running_app, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

PAYLOAD = "<img src=x onerror=\"window.__pwned='{}'\">"


def refusing_server() -> Starlette:
    """An OpenAI-compatible server whose refusal message carries markup."""

    async def refuse(request: Request) -> JSONResponse:
        message = f"Blocked {PAYLOAD.format('provider')} by policy."
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=400)

    return Starlette(routes=[Route("/v1/{rest:path}", refuse, methods=["POST"])])


def test_prompts_file_names_and_provider_messages_are_shown_as_text(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    hostile_file = tmp_path / PAYLOAD.format("filename").replace("/", "_").replace('"', "'")
    hostile_file = hostile_file.with_name(hostile_file.name + ".png")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 200)).save(buffer, "PNG")
    hostile_file.write_bytes(buffer.getvalue())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")

    with (
        serve(refusing_server()) as upstream,
        running_app(
            tmp_path, {"OPENAI_API_KEY": "sk-test-injection", "OPENAI_BASE_URL": upstream + "/v1"}
        ) as app_url,
    ):
        browser.get(app_url)
        wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6)
        before = len(browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))

        # 1. A file name with markup, dropped together with a text file the browser refuses.
        field = browser.find_element(By.CSS_SELECTOR, ".imgedit-upload input[type=file]")
        field.send_keys(f"{hostile_file}\n{notes}")
        wait(browser, 30).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) == before + 1
        )
        wait(browser).until(
            lambda d: "“notes.txt” is not an image" in d.find_element(By.TAG_NAME, "body").text
        )
        status = browser.find_element(By.CSS_SELECTOR, ".imgedit-upload-status").text
        assert "notes.txt" in status
        newest = browser.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")[0]
        wait(browser).until(lambda d: "window.__pwned" in newest.text)

        # 2. A prompt with markup, sent to the provider, whose refusal carries markup too.
        start_edit_in_browser(browser, 0, f"make it {PAYLOAD.format('prompt')}")
        failed = wait(browser, 30).until(
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")), None
            )
        )
        wait(browser).until(lambda d: "by policy" in failed.text)
        toast = wait(browser, 10).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-toast")), None)
        )
        page_text = browser.find_element(By.TAG_NAME, "body").text
        pwned = browser.execute_script("return window.__pwned || null")
        injected = browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length")

    assert pwned is None and injected == 0, "no payload was rendered as HTML"
    assert PAYLOAD.format("prompt") in failed.text, "the prompt is shown as typed"
    assert PAYLOAD.format("provider") in failed.text, "the provider's message is shown as sent"
    assert "Blocked <img" in toast.text
    assert PAYLOAD.format("filename").replace('"', "'") in page_text
