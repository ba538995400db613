"""HTTP routes that serve images by id. No user-given path ever reaches the filesystem: the id
must be one the store knows, and the path comes from the store."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import FileResponse, Response
from nicegui import app

from imgedit.errors import NotFound
from imgedit.imaging import media_type, sniff_format
from imgedit.models import ImageRecord, JobId, is_valid_id
from imgedit.services import Services

IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
"""An id names one file forever, so browsers may keep it."""


def register_routes(services: Services) -> None:
    store, registry = services.store, services.registry

    def record_or_404(image_id: str) -> ImageRecord:
        try:
            return store.get(image_id)
        except NotFound:
            raise HTTPException(status_code=404, detail="No such image") from None

    @app.get("/media/images/{image_id}", include_in_schema=False)
    def full_image(image_id: str) -> FileResponse:
        record = record_or_404(image_id)
        return FileResponse(store.path_of(record), media_type=record.media_type, headers=IMMUTABLE)

    @app.get("/media/thumbs/{image_id}", include_in_schema=False)
    def thumbnail(image_id: str) -> FileResponse:
        record = record_or_404(image_id)
        return FileResponse(store.thumb_path_of(record), media_type="image/webp", headers=IMMUTABLE)

    @app.get("/media/download/{image_id}", include_in_schema=False)
    def download(image_id: str) -> FileResponse:
        record = record_or_404(image_id)
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in record.title)[:60].strip("-")
        filename = f"{stem or 'image'}-{record.id[:8]}.{record.extension}"
        return FileResponse(store.path_of(record), media_type=record.media_type, filename=filename)

    @app.get("/media/previews/{job_id}", include_in_schema=False)
    def preview(job_id: str) -> Response:
        try:
            data = registry.preview(JobId(job_id)) if is_valid_id(job_id) else None
        except NotFound:
            data = None
        if data is None:
            raise HTTPException(status_code=404, detail="No preview")
        # Previews come in whatever format the provider streams; tell the browser which.
        return Response(
            data, media_type=media_type(sniff_format(data) or "PNG"), headers={"Cache-Control": "no-store"}
        )
