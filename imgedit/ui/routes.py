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
from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse, Response
from nicegui import app

from imgedit import imaging
from imgedit.errors import NotFound
from imgedit.imaging import media_type, sniff_format
from imgedit.models import ImageRecord, JobId, is_valid_id
from imgedit.services import Services
from imgedit.ui.hosts import ASGIApp, Message, Receive, Scope, Send

MEDIA_PREFIX = "/media/"
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
"""An id names one file forever, so browsers may keep it."""
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


def _stat(path: Path) -> os.stat_result | None:
    try:
        result = path.stat()
    except OSError:  # gone, or not readable: either way there is nothing to serve
        return None
    return result if path.is_file() else None


def register_routes(services: Services) -> None:
    store, registry = services.store, services.registry
    app.add_middleware(NoSniffMedia)

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
            data = await asyncio.to_thread(lambda: imaging.thumbnail(path.read_bytes()))
        except FileNotFoundError:
            raise gone(record) from None
        return Response(data, media_type="image/webp", headers=NOT_STORED)

    @app.get("/media/download/{image_id}", include_in_schema=False)
    async def download(image_id: str) -> FileResponse:
        record, path, found = await image_file(image_id)
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in record.title)[:60].strip("-")
        filename = f"{stem or 'image'}-{record.id[:8]}.{record.extension}"
        return FileResponse(path, media_type=record.media_type, filename=filename, stat_result=found)

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
