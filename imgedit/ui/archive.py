"""Download a selection of gallery images as one zip, made while it is sent.

``await download(services, image_ids)`` from a page's event handler. In a browser tab it keeps
the selection under a random token and has the browser fetch ``/media/zip/<token>``; in the
native window (which cannot download) it asks where to save and writes the zip there.

The archive is ZIP_STORED (images are compressed already) and is never held whole: Python's
``zipfile`` writes into a sink that cannot seek, so each member's CRC and sizes follow its data
(a data descriptor) and nothing has to be gone back to; each file is opened and read in chunks in
a worker thread, and every chunk goes out before the next one is read. What stays in memory is a
chunk and zipfile's record of each member for the central directory that ends the archive (peak
RSS grew 2.9 MiB for a 376 MiB zip of 2,000 images: ``bench/zip_memory.py``), never the files.
A disk error in the middle of a file ends the response unfinished, so the browser reports a
failed download rather than saving a zip with a short member.

Members are named as single downloads are (``routes.download_names``: letters, digits and "-",
so never a path), made unique ignoring case: ``cat.png``, ``cat (2).png``. An image deleted
between choosing and downloading is left out, and so is one whose file has vanished by the time
its turn comes (its card then drops out, as on the media routes).

Tokens live in memory for ``TOKEN_TTL_S``, at most ``MAX_SELECTIONS`` at once (the oldest go
first), and may be fetched again until they expire (a browser's retry). The route sits under
``/media/`` like the image routes, so the Host check and, with a password, the sign-in gate stand
in front of it; there a token also works only for the signed-in session that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from nicegui import app, ui

from imgedit import native
from imgedit.errors import NotFound
from imgedit.models import ImageId, ImageRecord, is_valid_id
from imgedit.services import Services
from imgedit.storage import ImageStore
from imgedit.ui import format as fmt
from imgedit.ui import signin
from imgedit.ui.routes import download_names

ZIP_PATH = "/media/zip/{}"
"""For ``ui.download.from_url`` (which adds the server's path prefix itself)."""
TOKEN_TTL_S = 600.0
MAX_SELECTIONS = 32
"""Selections kept at once; each is 16 bytes an image, so 32 of 10,000 images are 5 MB."""
CHUNK_BYTES = 256 * 1024
HEADERS = {"Cache-Control": "private, no-store"}


# -- the selections waiting to be fetched --------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Selection:
    """Images chosen for one zip, in the order chosen (ids packed 16 bytes each)."""

    packed_ids: bytes
    session: str | None
    """The signed-in session that chose them (None when the studio has no password)."""
    expires_at: float

    @property
    def image_ids(self) -> Iterator[ImageId]:
        for start in range(0, len(self.packed_ids), 16):
            yield ImageId(self.packed_ids[start : start + 16].hex())

    def __len__(self) -> int:
        return len(self.packed_ids) // 16


class Selections:
    """Selections by token: random, expiring, bounded in number.

    Usage: ``token = selections.add(ids, session=None)``; ``selections.get(token, session=None)``.
    """

    def __init__(
        self,
        *,
        ttl_s: float = TOKEN_TTL_S,
        limit: int = MAX_SELECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._limit = limit
        self._clock = clock
        self._by_token: OrderedDict[str, Selection] = OrderedDict()

    def add(self, image_ids: Iterable[str], *, session: str | None) -> str:
        """Keep these images (valid ids only, each once) and return the token that fetches them."""
        unique = dict.fromkeys(i for i in image_ids if is_valid_id(i))
        self._drop_expired()
        token = secrets.token_urlsafe(24)
        self._by_token[token] = Selection(
            packed_ids=bytes.fromhex("".join(unique)),
            session=session,
            expires_at=self._clock() + self._ttl_s,
        )
        while len(self._by_token) > self._limit:
            self._by_token.popitem(last=False)
        return token

    def get(self, token: str, *, session: str | None) -> Selection | None:
        """The selection behind ``token``, if it has not expired and ``session`` may use it."""
        self._drop_expired()
        selection = self._by_token.get(token)
        if selection is None or (selection.session is not None and selection.session != session):
            return None
        return selection

    def __len__(self) -> int:
        return len(self._by_token)

    def _drop_expired(self) -> None:
        now = self._clock()
        while self._by_token and next(iter(self._by_token.values())).expires_at <= now:
            self._by_token.popitem(last=False)  # added in order with one lifetime: oldest first


# -- names -----------------------------------------------------------------------------------------


def archive_name(count: int) -> str:
    """``imgedit-12-images.zip``."""
    return f"imgedit-{count}-{'image' if count == 1 else 'images'}.zip"


class UniqueNames:
    """Hands out member names once each, ignoring case (as Windows and macOS unpack them):
    ``cat.png``, then ``cat (2).png``, ``cat (3).png``."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._next: dict[str, int] = {}

    def claim(self, name: str) -> str:
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        key = name.casefold()
        candidate, number = name, self._next.get(key, 1)
        while candidate.casefold() in self._taken:
            number += 1
            candidate = f"{stem} ({number}){dot}{extension}"
        self._next[key] = number
        self._taken.add(candidate.casefold())
        return candidate


def member_name(record: ImageRecord, store: ImageStore) -> str:
    """The image's single-download name (full Unicode: zip names are UTF-8)."""
    title = fmt.image_title(record, lambda i: store.get(i) if i in store else None)
    return download_names(title, record.extension, record.id)[1]


def _zip_info(name: str, record: ImageRecord) -> zipfile.ZipInfo:
    stamp = time.localtime(record.created_at)[:6]
    info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))  # zip's dates start in 1980
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16  # rw-r--r-- when unpacked
    return info


# -- the archive ---------------------------------------------------------------------------------


class _Sink:
    """Where ``zipfile`` writes: a list the bytes are taken out of after each step. It has no
    ``tell``, so ``zipfile`` treats it as a stream and never seeks back."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class _ZipWriter:
    """``zipfile`` on a ``_Sink``, one member at a time. Its steps run in worker threads and
    take turns on a lock: a step still reading when its caller is cancelled ends before
    ``abandon`` closes anything (asyncio's cancellation does not stop a thread, and anyio's,
    which Starlette uses when a client hangs up, interrupts any wait for it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._source: IO[bytes] | None = None
        self._member: IO[bytes] | None = None
        self._abandoned = False

    def open_source(self, path: Path) -> bool:
        """Open the next image's file; False if it is gone (or cannot be read)."""
        with self._lock:
            if self._abandoned:  # a step that started after the stream was given up
                return False
            try:
                self._source = open(path, "rb", buffering=0)  # noqa: SIM115 - closed when its member ends
            except OSError:
                return False
            return True

    def start_member(self, info: zipfile.ZipInfo) -> None:
        with self._lock:
            assert self._source is not None
            info.file_size = os.fstat(self._source.fileno()).st_size  # decides Zip64 over 4 GiB
            self._member = self._zip.open(info, "w")

    def copy_chunk(self) -> tuple[bytes, bool]:
        """The next bytes of the archive (the member's header first), and whether the member is whole."""
        with self._lock:
            assert self._source is not None and self._member is not None
            data = self._source.read(CHUNK_BYTES)
            if data:
                self._member.write(data)
                return self._sink.take(), False
            self._end_member()
            return self._sink.take(), True

    def finish(self) -> bytes:
        """The central directory that ends the archive."""
        with self._lock:
            self._zip.close()
            return self._sink.take()

    def abandon(self) -> None:
        """Release the open file of an archive that will not be finished (its reader went away).
        Closing the zip writes its directory into the sink, which is then dropped; unclosed, the
        zip would complain from its finaliser. Waits for a step under way, so it runs in a thread."""
        with self._lock:
            self._abandoned = True
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                self._end_member()
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                self._zip.close()
            self._sink.parts.clear()

    def _end_member(self) -> None:
        member, source = self._member, self._source
        self._member = self._source = None
        try:
            if member is not None:
                member.close()  # writes the data descriptor: CRC and sizes
        finally:
            if source is not None:
                source.close()


class ZipStream:
    """One zip of ``image_ids``, made as it is read.

    Usage: ``async with contextlib.aclosing(ZipStream(store, ids).chunks()) as chunks: ...``;
    afterwards ``included`` and ``skipped`` count the images.
    """

    def __init__(self, store: ImageStore, image_ids: Iterable[ImageId]) -> None:
        self._store = store
        self._image_ids = image_ids
        self.included = 0
        self.skipped = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        writer, names = _ZipWriter(), UniqueNames()
        try:
            for image_id in self._image_ids:
                record = self._record(image_id)  # looked up now: it may have been deleted meanwhile
                if record is None:
                    self.skipped += 1
                    continue
                if not await asyncio.to_thread(writer.open_source, self._store.path_of(record)):
                    self._store.forget_missing(record.id)
                    self.skipped += 1
                    continue
                info = _zip_info(names.claim(member_name(record, self._store)), record)
                await asyncio.to_thread(writer.start_member, info)
                whole = False
                while not whole:
                    data, whole = await asyncio.to_thread(writer.copy_chunk)
                    if data:
                        yield data
                self.included += 1
            yield await asyncio.to_thread(writer.finish)
        finally:
            # Not awaited: a cancelled caller (client gone) may not wait, and need not.
            asyncio.get_running_loop().run_in_executor(None, writer.abandon)

    def _record(self, image_id: ImageId) -> ImageRecord | None:
        try:
            return self._store.get(image_id)
        except NotFound:
            return None


async def save_zip(store: ImageStore, image_ids: Iterable[ImageId], target: Path) -> int:
    """Write the zip to ``target`` (through ``.<name>.tmp``, then replace, so a failure leaves no
    half archive), each chunk in a worker thread. Returns how many images it holds."""
    partial = target.with_name(f".{target.name}.tmp")
    stream = ZipStream(store, image_ids)
    file = await asyncio.to_thread(open, partial, "wb")
    try:
        async with contextlib.aclosing(stream.chunks()) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(file.close)
        await asyncio.to_thread(partial.replace, target)
    finally:
        file.close()
        await asyncio.to_thread(partial.unlink, missing_ok=True)
    return stream.included


# -- the route and the call the gallery makes ----------------------------------------------------

_selections: Selections | None = None


def _request_session(request: Request) -> str | None:
    value = request.session.get("id") if "session" in request.scope else None
    return value if isinstance(value, str) else None


def register_route(services: Services) -> None:
    """Add ``/media/zip/<token>`` (once, from ``imgedit.ui.register``)."""
    global _selections
    selections = _selections = Selections()
    store, guarded = services.store, services.auth is not None

    @app.get("/media/zip/{token}", include_in_schema=False)
    async def zip_download(request: Request, token: str) -> StreamingResponse:
        selection = selections.get(token, session=_request_session(request) if guarded else None)
        if selection is None:
            raise HTTPException(status_code=404, detail="That download has expired; choose the images again")
        count = sum(1 for image_id in selection.image_ids if image_id in store)
        if count == 0:
            raise HTTPException(status_code=404, detail="None of those images is in the gallery any more")
        disposition = f'attachment; filename="{archive_name(count)}"'
        return StreamingResponse(
            ZipStream(store, selection.image_ids).chunks(),
            media_type="application/zip",
            headers={**HEADERS, "Content-Disposition": disposition},
        )


async def download(services: Services, image_ids: Iterable[str]) -> None:
    """Download these images as one zip: the browser fetches it, or the native window saves it.

    Call it from a NiceGUI event handler (it needs the page's client)."""
    store = services.store
    chosen = [ImageId(i) for i in dict.fromkeys(image_ids) if i in store]
    if not chosen:
        ui.notify("Those images are no longer in the gallery.", type="warning")
        return
    window = app.native.main_window
    if window is None:  # a browser tab: the browser saves it
        if _selections is None:
            raise RuntimeError("archive.register_route has not run")
        session = signin.session_id_of() if services.auth is not None else None
        ui.download.from_url(ZIP_PATH.format(_selections.add(chosen, session=session)))
        return
    # The native window (pywebview cannot download): its save dialog, then the server, on the
    # same computer, writes the zip there.
    answer = await window.create_file_dialog(
        native.SAVE_DIALOG, directory=str(native.downloads_folder()), save_filename=archive_name(len(chosen))
    )
    target = native.chosen_path(answer)
    if target is None:
        return
    ui.notify(f"Saving {len(chosen)} {'image' if len(chosen) == 1 else 'images'} to {target.name}…")
    try:
        count = await save_zip(store, chosen, target)
    except OSError as exc:
        ui.notify(f"Could not save {target.name}: {exc.strerror or exc}", type="negative")
        return
    ui.notify(f"Saved {count} {'image' if count == 1 else 'images'} to {target}", type="positive")
