"""Static files go out brotli-compressed from a kept copy (issue 9, P4), through the real server.

What a browser observes: the same bytes whatever encoding it accepts, brotli when it offers
``br`` (once the copy is made, and from the first request after a restart), gzip or nothing
otherwise, and never a damaged copy.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path

import brotli
import httpx
from nicegui import __version__ as NICEGUI_VERSION

from imgedit.ui.compression import EVERY_PAGE, cache_dir
from tests.app_process import running_app

QUASAR = f"/_nicegui/{NICEGUI_VERSION}/static/quasar.umd.prod.js"
OWN_CSS = "/static/imgedit.css"


def fetch(url: str, encoding: str, extra: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded)."""
    with httpx.stream("GET", url, headers={"Accept-Encoding": encoding, **(extra or {})}, timeout=30) as response:
        return response, b"".join(response.iter_raw())


def decoded(response: httpx.Response, raw: bytes) -> bytes:
    encoding = response.headers.get("content-encoding")
    if encoding == "br":
        return brotli.decompress(raw)
    if encoding == "gzip":
        return gzip.decompress(raw)
    assert encoding is None, encoding
    return raw


def eventually(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)  # polling a server process for a state it reaches by itself


def test_every_encoding_carries_the_same_file_and_brotli_comes_once_its_copy_is_made(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with running_app(tmp_path, env) as url:
        plain, plain_body = fetch(url + QUASAR, "identity")
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        zipped, zipped_raw = fetch(url + QUASAR, "gzip")
        assert zipped.headers["content-encoding"] == "gzip"
        assert gzip.decompress(zipped_raw) == plain_body
        assert "accept-encoding" in zipped.headers["vary"].lower()

        def brotli_now() -> bool:
            return fetch(url + QUASAR, "gzip, deflate, br")[0].headers.get("content-encoding") == "br"

        eventually(brotli_now)  # made in the background after start-up
        best, best_raw = fetch(url + QUASAR, "gzip, deflate, br, zstd")
        assert brotli.decompress(best_raw) == plain_body
        assert int(best.headers["content-length"]) == len(best_raw) < len(zipped_raw)
        refused, _ = fetch(url + QUASAR, "br;q=0, gzip")
        assert refused.headers["content-encoding"] == "gzip"
        # imgedit's own files too, and they are served as they are now
        css, css_raw = fetch(url + OWN_CSS, "br")
        assert decoded(css, css_raw) == (Path(__file__).parents[1] / "static" / "imgedit.css").read_bytes()
        # every file each page loads gets its kept copy, unasked, once per install
        eventually(lambda: len(list(cache_dir(env).glob("*.br"))) >= len(EVERY_PAGE))


def test_after_a_restart_the_first_request_gets_brotli_and_a_damaged_copy_is_never_sent(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with running_app(tmp_path, env) as url:
        plain_body = fetch(url + QUASAR, "identity")[1]
        eventually(lambda: fetch(url + QUASAR, "br")[0].headers.get("content-encoding") == "br")
    with running_app(tmp_path, env) as url:
        first, first_raw = fetch(url + QUASAR, "br")
        assert first.headers["content-encoding"] == "br"
        assert brotli.decompress(first_raw) == plain_body
    for copy in cache_dir(env).glob("*.br"):  # a disk fault, or someone else's file
        copy.write_bytes(copy.read_bytes()[: len(copy.read_bytes()) // 2])
    with running_app(tmp_path, env) as url:
        response, raw = fetch(url + QUASAR, "br")
        assert decoded(response, raw) == plain_body  # gzip while the copy is made anew
        eventually(lambda: fetch(url + QUASAR, "br")[0].headers.get("content-encoding") == "br")
        _response, again_raw = fetch(url + QUASAR, "br")
        assert brotli.decompress(again_raw) == plain_body


def test_pages_ranges_and_images_are_served_as_before(tmp_path: Path) -> None:
    with running_app(tmp_path, {"XDG_CACHE_HOME": str(tmp_path / "cache")}) as url:
        page, page_raw = fetch(url + "/", "gzip, br")
        assert page.headers["content-encoding"] == "gzip"  # the page: Starlette's gzip as before
        assert b"imgedit" in gzip.decompress(page_raw)
        part, part_raw = fetch(url + QUASAR, "br", {"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part_raw) == 100 and "content-encoding" not in part.headers
        missing, _ = fetch(url + f"/_nicegui/{NICEGUI_VERSION}/static/no-such-file.js", "br")
        assert missing.status_code == 404 and "content-encoding" not in missing.headers
        font = f"/_nicegui/{NICEGUI_VERSION}/static/fonts.css"
        css, css_raw = fetch(url + font, "br, gzip")
        assert css.headers["content-encoding"] in {"br", "gzip"} and b"@font-face" in decoded(css, css_raw)
