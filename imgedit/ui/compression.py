"""Static assets compressed once, with brotli where the browser takes it (issue 9, P4).

A first visit downloads NiceGUI's framework (Vue, Quasar, socket.io, their CSS) before any card
can show: about 290 KB gzipped, compressed anew for every request by Starlette's gzip
middleware (~100 ms of the event loop per visitor). :class:`Compression` wraps the app in place
of that middleware (``ui.run(gzip_middleware_factory=...)``):

- a GET of a static file (NiceGUI's ``/_nicegui/<version>/...`` scripts and styles, imgedit's
  ``/static/...``) is answered from a cache of compressed bodies, keyed by a hash of the body the
  app serves, so a changed file is never served stale: brotli at its best quality (about 15 %
  smaller than gzip) when the browser accepts ``br``, else gzip;
- a body not cached yet is sent gzipped at once while its brotli form is made in the background
  (quality 11 takes about a second for Quasar) and kept on disk in :func:`cache_dir`: every later
  start of the server serves brotli from the first request; :func:`prepare` makes the files
  every page loads ahead, once per install, in a thread of its own after start-up;
- everything else (pages, media, the zip stream, websockets) goes through Starlette's gzip
  middleware as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import brotli
import nicegui
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgedit import cpu
from imgedit.ui.signin import STATIC_PREFIXES, route_path

log = logging.getLogger(__name__)


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the brotli copies are kept: the user's cache (``$XDG_CACHE_HOME``, else
    ``~/.cache``), shared by every data dir, since they are the same files for all."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "imgedit" / "static"

COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MINIMUM_SIZE = 1024
"""Below this a compressed body saves less than its headers cost."""

BROTLI_QUALITY = 11
GZIP_LEVEL = 9


def accepted(scope: Scope) -> str | None:
    """``br`` or ``gzip``, the better one the request accepts (q=0 refuses), or None."""
    offered: dict[str, float] = {}
    for part in Headers(scope=scope).get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            with contextlib.suppress(ValueError):
                weight = float(params[2:])
        offered[name.strip().lower()] = weight
    for encoding in ("br", "gzip"):
        if offered.get(encoding, offered.get("*", 0.0)) > 0:
            return encoding
    return None


class Compression:
    """ASGI middleware: cached brotli/gzip for static files, Starlette's gzip for the rest."""

    def __init__(self, app: ASGIApp, cache_dir: Path | None = None) -> None:
        self.app = app
        self.others = GZipMiddleware(app)
        self.cache_dir = cache_dir
        self._cache: dict[tuple[str, str], bytes] = {}  # (body hash, encoding) -> compressed body
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not route_path(scope).startswith(STATIC_PREFIXES)
            or "range" in Headers(scope=scope)
        ):
            await self.others(scope, receive, send)
            return
        encoding = accepted(scope)
        if encoding is None:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        relaying = False  # not ours to compress (an error, a font, ...): passed on as it comes
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start, relaying
            if relaying:
                await send(message)
            elif message["type"] == "http.response.start":
                found = Headers(raw=message["headers"])
                if (
                    message["status"] != 200
                    or "content-encoding" in found
                    or not found.get("content-type", "").startswith(COMPRESSIBLE)
                ):
                    relaying = True
                    await send(message)
                else:
                    start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        if start is None:
            return
        body = b"".join(chunks)
        if len(body) < MINIMUM_SIZE:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        headers = MutableHeaders(raw=list(start["headers"]))
        encoded, encoding = await self._compressed(body, encoding)
        headers["content-encoding"] = encoding
        headers["content-length"] = str(len(encoded))
        headers.add_vary_header("Accept-Encoding")
        if (etag := headers.get("etag")) and not etag.startswith("W/"):
            headers["etag"] = f"W/{etag}"  # the same file, other bytes per encoding
        await send({"type": "http.response.start", "status": 200, "headers": headers.raw})
        await send({"type": "http.response.body", "body": encoded})

    async def _compressed(self, body: bytes, encoding: str) -> tuple[bytes, str]:
        key = hashlib.sha256(body).hexdigest()
        if encoding == "br":
            if (found := self._cache.get((key, "br"))) is None:
                found = await asyncio.to_thread(self._from_disk, key)
            if found is not None:
                self._cache[(key, "br")] = found
                return found, "br"
            if claim([key]):  # made once, in the background; gzip until then
                task = asyncio.create_task(self._make_brotli(key, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if (found := self._cache.get((key, "gzip"))) is None:
            found = await cpu.run(functools.partial(gzip.compress, body, GZIP_LEVEL, mtime=0))
            self._cache[(key, "gzip")] = found
        return found, "gzip"

    async def _make_brotli(self, key: str, body: bytes) -> None:
        try:
            # A thread of its own, not the image pool: a user's edit must not wait behind it.
            encoded = await asyncio.to_thread(functools.partial(brotli.compress, body, quality=BROTLI_QUALITY))
            self._cache[(key, "br")] = encoded
            if self.cache_dir is not None:
                await asyncio.to_thread(keep_on_disk, self.cache_dir, key, encoded)
        except Exception:  # a cache: serving gzip instead is the worst that can happen
            log.warning("could not prepare a brotli copy of a static file", exc_info=True)
        finally:
            release([key])

    def _from_disk(self, key: str) -> bytes | None:
        return None if self.cache_dir is None else from_disk(self.cache_dir, key)


_being_made: set[str] = set()  # hashes of bodies whose brotli copy a thread is making
_being_made_lock = threading.Lock()


def claim(keys: list[str]) -> list[str]:
    """Of ``keys``, those no one is compressing yet, now marked as being made by the caller."""
    with _being_made_lock:
        free = [key for key in keys if key not in _being_made]
        _being_made.update(free)
        return free


def release(keys: list[str]) -> None:
    with _being_made_lock:
        _being_made.difference_update(keys)


def from_disk(cache_dir: Path, key: str) -> bytes | None:
    """The kept brotli copy of the body hashed ``key``, only if it still unpacks to that very
    body (else it is made anew)."""
    try:
        encoded = (cache_dir / f"{key}.br").read_bytes()
        if hashlib.sha256(brotli.decompress(encoded)).hexdigest() == key:
            return encoded
    except (OSError, brotli.error):
        pass
    return None


def keep_on_disk(cache_dir: Path, key: str, encoded: bytes) -> None:
    path = cache_dir / f"{key}.br"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(encoded)
        partial.replace(path)  # whole or absent: a reader never sees half a file
    except OSError as exc:
        log.info("static files are compressed anew each start: cannot write %s (%s)", cache_dir, exc)


EVERY_PAGE = (
    "quasar.umd.prod.js",
    "vue.esm-browser.prod.js",
    "quasar.unimportant.prod.css",
    "quasar.important.prod.css",
    "socket.io.min.js",
    "dompurify.mjs",
    "nicegui.js",
    "nicegui.css",
    "fonts.css",
    "lang/en-US.umd.prod.js",
)
"""NiceGUI's static files that every page loads (its templates/index.html)."""


def every_page_files(own_static: Path) -> list[Path]:
    framework = Path(nicegui.__file__).parent / "static"
    own = sorted(p for p in own_static.iterdir() if p.suffix in {".js", ".css"})
    return [framework / name for name in EVERY_PAGE if (framework / name).is_file()] + own


def prepare(cache_dir: Path, files: list[Path]) -> int:
    """Make the brotli copies of ``files`` that the cache lacks (blocking: run it in a thread);
    returns how many it made."""
    bodies: dict[str, bytes] = {}
    for file in files:
        try:
            body = file.read_bytes()
        except OSError:
            continue
        key = hashlib.sha256(body).hexdigest()
        if len(body) >= MINIMUM_SIZE and from_disk(cache_dir, key) is None:
            bodies[key] = body
    mine = claim(list(bodies))  # a request may have started one already: not made twice
    try:
        for key in mine:
            keep_on_disk(cache_dir, key, brotli.compress(bodies[key], quality=BROTLI_QUALITY))
    finally:
        release(mine)
    return len(mine)


async def prepare_static(cache_dir: Path) -> None:
    """After start-up: the brotli copies of what every page loads, made once per install."""
    from imgedit.ui import STATIC_DIR

    made = await asyncio.to_thread(prepare, cache_dir, every_page_files(STATIC_DIR))
    if made:
        log.info("prepared %d static files for brotli (once, kept in %s)", made, cache_dir)
