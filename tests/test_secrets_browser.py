"""Secrets never leave the server (issue 6, defects 14 and 15): a real ``python main.py`` with a
marker API key and a base URL with a marker password, against an OpenAI-compatible server that
echoes whatever credentials it gets back in its 401 (as some proxies do). After a job fails
there, neither marker is in the page, the websocket frames, the server log, the data dir or
the error shown to the user."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.loopback import serve
from tests.test_browser import By, chrome, click_button, running_app, start_edit_in_browser, wait

pytestmark = pytest.mark.browser

KEY = "sk-MARKERKEY-7f3a9c1e5b2d"
URL_PASSWORD = "MARKERPASS-41d8"


def echoing_server() -> Starlette:
    """Answers every call with 401 and the credentials it received, in OpenAI's error shape."""

    async def refuse(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            token = base64.b64decode(token).decode(errors="replace")
        message = (
            f"Incorrect API key provided: {token}. You can find your API key at https://platform.openai.com."
        )
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        return JSONResponse(body, status_code=401)

    return Starlette(routes=[Route("/v1/{rest:path}", refuse, methods=["GET", "POST"])])


def test_a_key_echoed_by_the_provider_reaches_no_page_frame_log_file_or_message(tmp_path: Path) -> None:
    browser = chrome(performance_log=True)
    try:
        with serve(echoing_server()) as upstream:
            base_url = upstream.replace("http://", f"http://proxyuser:{URL_PASSWORD}@") + "/v1"
            env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url, "IMGEDIT_MAX_ATTEMPTS": "1"}
            with running_app(tmp_path, env) as app_url:
                browser.get(app_url)
                wait(browser).until(
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card")) >= 6
                )
                start_edit_in_browser(browser, 0, "make it brighter")  # OpenAI is offered first
                failed = wait(browser, 30).until(
                    lambda d: next(
                        iter(d.find_elements(By.CSS_SELECTOR, ".imgedit-loading-card[data-stage=failed]")),
                        None,
                    )
                )
                shown = failed.text
                toast = wait(browser, 10).until(
                    lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".q-notification")), None)
                )
                shown += "\n" + toast.text
                page = browser.page_source
                frames = [
                    json.loads(entry["message"])["message"]["params"]["response"]["payloadData"]
                    for entry in browser.get_log("performance")
                    if '"Network.webSocketFrameReceived"' in entry["message"]
                ]
                click_button(browser, "Dismiss")
    finally:
        browser.quit()

    assert "Incorrect API key provided" in shown, "the provider's message itself is still shown"
    assert frames, "the websocket frames were captured"
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("server-*.log"))
    assert "job" in logs and "failed" in logs
    data_files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in data_files)
    for secret in (KEY, URL_PASSWORD):
        assert secret not in shown, "in the error shown to the user"
        assert secret not in page, "in the page HTML"
        assert not [f for f in frames if secret in f], "in a websocket frame"
        assert secret not in logs, "in the server log"
        assert not [p for p in data_files if secret.encode() in p.read_bytes()], "in the data dir"
