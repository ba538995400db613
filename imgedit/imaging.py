"""Pillow helpers for files entering the gallery: validate, normalise, thumbnail.

All functions are synchronous and CPU-bound: call them from a worker thread, never on the
event loop. Must not import nicegui.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from imgedit.errors import InvalidRequest

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 64_000_000
"""Larger images are refused: a decompression bomb must not take the server down."""
THUMB_SIDE = 480
KEPT_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
"""Stored as uploaded; anything else readable (GIF, BMP, TIFF, ...) is converted to PNG."""
READABLE = "PNG, JPEG, WebP, GIF, BMP or TIFF"
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""The only decoders Pillow may use on bytes from outside (uploads, provider answers). Sniffing
every format Pillow knows would hand PostScript to Ghostscript and run other rarely used
decoders on hostile input."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NormalizedImage:
    data: bytes
    format: str
    width: int
    height: int
    note: str = ""
    """What was changed on the way in that the user should hear of (e.g. "first frame only")."""


def normalize(data: bytes, name: str = "the file") -> NormalizedImage:
    """Check that ``data`` is an image we can work with and return what to store.

    The original bytes are kept when nothing needs changing, so an upload loses nothing.
    Raises ``InvalidRequest`` with a message naming the file otherwise.
    """
    if not data:
        raise InvalidRequest(f"“{name}” is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"“{name}” is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(data) as probe:
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise InvalidRequest(
                        f"“{name}” is {width}×{height} pixels; imgedit takes up to {MAX_PIXELS // 1_000_000} MP."
                    )
                source_format = probe.format or ""
                probe.load()
                upright = ImageOps.exif_transpose(probe)
                rotated = upright.size != probe.size or _has_orientation(probe)
                if source_format in KEPT_FORMATS and not rotated:
                    return NormalizedImage(data=data, format=source_format, width=width, height=height)
                converted = _displayable(upright)
                return NormalizedImage(
                    data=encode(converted, "PNG"),
                    format="PNG",
                    width=converted.width,
                    height=converted.height,
                )
    except InvalidRequest:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise InvalidRequest(f"“{name}” is not an image imgedit can read ({READABLE}).") from exc


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A WebP no larger than ``side`` on its longest edge."""
    with open_image(data) as image:
        image.draft("RGB", (side, side))  # JPEG decodes at a reduced scale: much faster
        small = _displayable(ImageOps.exif_transpose(image))
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        return encode(small, "WEBP", quality=82, method=4)


def open_image(data: bytes) -> Image.Image:
    """Open encoded bytes with the allowed decoders only; lazy, like ``Image.open``."""
    return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name of encoded image bytes, from their signature; None if unknown.

    Cheap enough for the event loop: it reads the first 12 bytes only.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in _SIGNATURES if data.startswith(signature)), None)


def media_type(format: str) -> str:
    """``image/png``, ``image/jpeg``, … for a Pillow format name."""
    return f"image/{format.lower()}"


def size_of(data: bytes) -> tuple[int, int]:
    with open_image(data) as image:
        return image.size


def _has_orientation(image: Image.Image) -> bool:
    orientation = image.getexif().get(0x0112)
    return orientation not in (None, 1)


def _displayable(image: Image.Image) -> Image.Image:
    if image.mode in {"RGB", "RGBA"}:
        return image
    has_alpha = image.mode in {"LA", "PA"} or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if has_alpha else "RGB")
