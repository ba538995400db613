"""Plain value types shared by every layer: ids, quality, job kinds, image records.

Must not import nicegui, httpx or any provider.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

ImageId = NewType("ImageId", str)
JobId = NewType("JobId", str)

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def new_image_id() -> ImageId:
    return ImageId(uuid.uuid4().hex)


def new_job_id() -> JobId:
    return JobId(uuid.uuid4().hex)


def is_valid_id(value: str) -> bool:
    """True for ids this app makes; anything else never reaches the filesystem."""
    return bool(_ID_RE.fullmatch(value))


class Quality(StrEnum):
    """How much work a provider spends on a job."""

    LOW = "low"
    """Fast preview quality."""
    MEDIUM = "medium"
    """The default balance of speed and detail."""
    HIGH = "high"
    """Full resolution, best filters, slowest."""


class JobKind(StrEnum):
    """What a job makes."""

    EDIT = "edit"
    """A new image derived from an existing one."""
    GENERATE = "generate"
    """A new image from a prompt alone."""


class ImageOrigin(StrEnum):
    """Where a gallery image came from."""

    SAMPLE = "sample"
    UPLOAD = "upload"
    EDIT = "edit"
    GENERATE = "generate"


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageRecord:
    """One gallery image as stored: the file is ``images/<id>.<ext>``.

    Usage: ``store.get(image_id).title``
    """

    id: ImageId
    created_at: float
    origin: ImageOrigin
    width: int
    height: int
    format: str
    """Pillow format name of the stored file: PNG, JPEG, WEBP."""
    name: str = ""
    prompt: str | None = None
    parent_id: ImageId | None = None
    provider: str | None = None
    quality: Quality | None = None
    job_id: JobId | None = None
    """The job that made it (edits and generations): one image per job and slot, whatever happens."""
    job_slot: int = 0
    """Which of its job's variations it is (0 for the first; a job of n variations makes slots
    0..n-1, its siblings)."""
    favourite: bool = False
    """Starred by someone in the gallery; the Favourites filter shows these."""

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg"}.get(self.format, self.format.lower())

    @property
    def media_type(self) -> str:
        return f"image/{'jpeg' if self.format == 'JPEG' else self.format.lower()}"

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        if self.prompt:
            return self.prompt
        return f"Image {self.id[:6]}"
