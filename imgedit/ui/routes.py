"""HTTP routes that serve images by id. No user-given path ever reaches the filesystem: the id
must be one the store knows, and the path comes from the store.

Every answer under ``/media/`` (200 or 404, from these routes or from NiceGUI's not-found page)
carries ``X-Content-Type-Options: nosniff``. A file removed behind the app's back is a 404, and
its image is dropped from the gallery (``store.forget_missing``); a lost thumbnail alone is drawn
again from the image. Files are looked at in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from fastapi import HTTPException
from fastapi.responses import FileResponse, Response
from nicegui import app

from imgedit import cpu, imaging
from imgedit.errors import NotFound
from imgedit.imaging import media_type, sniff_format
from imgedit.models import ImageRecord, JobId, is_valid_id
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import mask_editor
from imgedit.ui.hosts import ASGIApp, Message, Receive, Scope, Send
from imgedit.ui.mask_outline import OUTLINE_PATH, MaskOutlines

MEDIA_PREFIX = "/media/"
IMMUTABLE = {"Cache-Control": "private, max-age=31536000, immutable"}
"""An id names one file forever, so browsers may keep it; private: a shared proxy cache must not
(behind a password, images are for signed-in people only)."""
NOT_STORED = {"Cache-Control": "no-store"}


class NoSniffMedia:
    """ASGI middleware: ``nosniff`` on every response under ``/media/``, whoever wrote it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(MEDIA_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-content-type-options"
                ]
                message["headers"] = [*headers, (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_nosniff)


_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp|gif|bmp|tiff?)$", re.IGNORECASE)
MAX_STEM_CHARS = 80


def _slug(text: str, *, ascii_only: bool) -> str:
    """Letters and digits kept (accents dropped when ``ascii_only``), every other run one "-"."""
    if ascii_only:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.split(r"[^\w]+|_+", text)
    return "-".join(w for w in words if w)[:MAX_STEM_CHARS].strip("-")


def download_names(title: str, extension: str, image_id: str) -> tuple[str, str]:
    """The file name a download is saved under: (ASCII, full Unicode), e.g. ``photo1.jpg``.

    Only letters, digits and "-" survive (no path, quote or control can get through);
    ``image-<id>`` when nothing is left."""
    title = _IMAGE_SUFFIX.sub("", title.strip())
    fallback = f"image-{image_id[:8]}"
    plain = f"{_slug(title, ascii_only=True) or fallback}.{extension}"
    full = f"{_slug(title, ascii_only=False) or fallback}.{extension}"
    return plain, full


def content_disposition(title: str, extension: str, image_id: str) -> str:
    """``attachment`` named after the image's title: ``photo1.jpg``, ``Sunset-at-sea-sepia.png``;
    an ASCII ``filename`` for every browser, plus RFC 6266's ``filename*`` (UTF-8) when the
    title has letters ASCII cannot spell."""
    plain, full = download_names(title, extension, image_id)
    header = f'attachment; filename="{plain}"'
    if full != plain:
        header += f"; filename*=UTF-8''{quote(full, safe='')}"
    return header


def _stat(path: Path) -> os.stat_result | None:
    try:
        result = path.stat()
    except OSError:  # gone, or not readable: either way there is nothing to serve
        return None
    return result if path.is_file() else None


def register_routes(services: Services) -> None:
    store, registry = services.store, services.registry
    app.add_middleware(NoSniffMedia)
    mask_editor.register_route(services)  # POST /media/masks/upload: a painted area, from its page

    def record_or_404(image_id: str) -> ImageRecord:
        try:
            return store.get(image_id)
        except NotFound:
            raise HTTPException(status_code=404, detail="No such image") from None

    def gone(record: ImageRecord) -> HTTPException:
        store.forget_missing(record.id)
        return HTTPException(status_code=404, detail="That image's file is missing")

    async def image_file(image_id: str) -> tuple[ImageRecord, Path, os.stat_result]:
        record = record_or_404(image_id)
        path = store.path_of(record)
        found = await asyncio.to_thread(_stat, path)
        if found is None:
            raise gone(record)
        return record, path, found

    @app.get("/media/images/{image_id}", include_in_schema=False)
    async def full_image(image_id: str) -> FileResponse:
        record, path, found = await image_file(image_id)
        return FileResponse(path, media_type=record.media_type, headers=IMMUTABLE, stat_result=found)

    @app.get("/media/thumbs/{image_id}", include_in_schema=False)
    async def thumbnail(image_id: str) -> Response:
        record, path, _found = await image_file(image_id)  # a thumbnail of a lost image drops out too
        thumb = store.thumb_path_of(record)
        found = await asyncio.to_thread(_stat, thumb)
        if found is not None:
            return FileResponse(thumb, media_type="image/webp", headers=IMMUTABLE, stat_result=found)
        # Only the thumbnail is lost: draw it again (not cached, so a restored file wins later).
        try:
            data = await cpu.run(imaging.thumbnail, await asyncio.to_thread(path.read_bytes))
        except FileNotFoundError:
            raise gone(record) from None
        return Response(data, media_type="image/webp", headers=NOT_STORED)

    @app.get("/media/download/{image_id}", include_in_schema=False)
    async def download(image_id: str) -> FileResponse:
        record, path, found = await image_file(image_id)
        title = fmt.image_title(record, lambda i: store.get(i) if i in store else None)
        disposition = content_disposition(title, record.extension, record.id)
        return FileResponse(
            path,
            media_type=record.media_type,
            headers={"Content-Disposition": disposition},
            stat_result=found,
        )

    outlines = MaskOutlines(store)

    @app.get(OUTLINE_PATH.format("{mask_id}"), include_in_schema=False)
    async def mask_outline(mask_id: str) -> Response:
        """A region edit's area, outlined for its loading card (``imgedit/ui/mask_outline.py``)."""
        try:
            data = await outlines.get(mask_id)  # the id is checked by the store (64 hex digits)
        except NotFound:
            raise HTTPException(status_code=404, detail="No such area") from None
        return Response(data, media_type="image/png", headers=IMMUTABLE)

    @app.get("/media/previews/{job_id}", include_in_schema=False)
    def preview(job_id: str) -> Response:
        try:
            data = registry.preview(JobId(job_id)) if is_valid_id(job_id) else None
        except NotFound:
            data = None
        if data is None:
            raise HTTPException(status_code=404, detail="No preview")
        # Previews come in whatever format the provider streams; tell the browser which.
        return Response(data, media_type=media_type(sniff_format(data) or "PNG"), headers=NOT_STORED)
