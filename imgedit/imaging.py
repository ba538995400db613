"""Pillow helpers for files entering the gallery: validate, normalise, thumbnail, name.

``normalize`` is the one gate for outside bytes (uploads and provider answers): it says in plain
words what a refused file is ("a PDF document", "cut short or damaged", "30000×30000 pixels"), and
turns what browsers or the engine would show wrongly (CMYK, 16-bit, animation, EXIF rotation) into a
plain still PNG. ``display_name`` turns an uploaded file name into a title that is never a path.

All image functions are synchronous and CPU-bound: call them from a worker thread, never on the
event loop. Must not import nicegui.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
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
SHOWN_AS_IS_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
"""Pixel modes that browsers show right and the engine's plain ``convert`` handles; others (CMYK,
16-bit grey, ...) are converted on the way in, even in a kept format."""
READABLE = "PNG, JPEG, WebP, GIF, BMP or TIFF"
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""The only decoders Pillow may use on bytes from outside (uploads, provider answers). Sniffing
every format Pillow knows would hand PostScript to Ghostscript and run other rarely used
decoders on hostile input."""
MAX_NAME_CHARS = 120
_FORMAT_LABELS = {"WEBP": "WebP"}


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
    Raises ``InvalidRequest`` with a message naming the file and saying why otherwise.
    """
    with _opened(data, name) as probe:
        return _normalize(probe, data, name)[0]


def normalize_with_thumbnail(
    data: bytes, name: str = "the file", side: int = THUMB_SIDE
) -> tuple[NormalizedImage, bytes]:
    """``normalize(data)`` and the thumbnail of what it returns, from one decode of the pixels.

    What the store needs for a new image: ``normalize`` decodes the whole file to check it, and
    ``thumbnail`` of its bytes would decode it all again (a 2048 px PNG: ~0.2 s, ~8 % of a local
    edit job; see bench/local_overhead.py). The decoded pixels are shrunk where they lie, with no
    copy made first (the checked image is not used again).
    """
    with _opened(data, name) as probe:
        normalized, upright = _normalize(probe, data, name)
        return normalized, _thumbnail_of(displayable(upright), side)


def _opened(data: bytes, name: str) -> Image.Image:
    """``data`` opened (lazily) for ``_normalize``, or ``InvalidRequest`` for what is plainly no
    image we read; the caller closes it."""
    if not data:
        raise InvalidRequest(f"“{name}” is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"“{name}” is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    what = _plainly_not_an_image(data)
    if what is not None:
        raise InvalidRequest(f"“{name}” is {what}.")
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS check in ``_normalize`` refuses these with a better message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return open_image(data)
    except Image.DecompressionBombError:
        raise InvalidRequest(_too_many_pixels(name, _claimed_size(data))) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidRequest(f"“{name}” is not an image imgedit can read ({READABLE}).") from exc


def _normalize(probe: Image.Image, data: bytes, name: str) -> tuple[NormalizedImage, Image.Image]:
    """``normalize`` of ``probe`` (``data`` opened), and the decoded, upright image it checked:
    ``probe`` itself when it needed no turning (the caller's to change, not to use after)."""
    if probe.width * probe.height > MAX_PIXELS:
        raise InvalidRequest(_too_many_pixels(name, probe.size))
    source_format = probe.format or ""
    label = _FORMAT_LABELS.get(source_format, source_format)
    try:
        frames = getattr(probe, "n_frames", 1)  # counting seeks through the file, then back to 0
        probe.load()
        rotated = _has_orientation(probe)
        # exif_transpose copies an image it does not turn (4 MB for 1024² RGB): only when it turns.
        upright = ImageOps.exif_transpose(probe) if rotated else probe
    except Exception as exc:  # a hostile or broken file can make a decoder raise almost anything
        raise InvalidRequest(
            f"“{name}” is cut short or damaged: it starts like a {label} image but cannot be read to the end."
        ) from exc
    if source_format in KEPT_FORMATS and not rotated and frames == 1 and probe.mode in SHOWN_AS_IS_MODES:
        kept = NormalizedImage(data=data, format=source_format, width=probe.width, height=probe.height)
        return kept, upright
    notes = [_mode_note(probe.mode)]
    if frames > 1:
        notes.append(f"Animated {label}: only the first of {frames} frames was kept.")
    converted = displayable(upright)
    normalized = NormalizedImage(
        data=encode(converted, "PNG"),
        format="PNG",
        width=converted.width,
        height=converted.height,
        note=" ".join(note for note in notes if note),
    )
    return normalized, converted


def display_name(raw: str) -> str:
    """An uploaded file's name fit to store and show as its title: never a path, never a control.

    Keeps the last path component only (``/`` and ``\\`` alike, so ``C:\\photos\\a.png`` from a
    Windows browser is "a.png"), drops control and bidi-override characters (NUL included),
    collapses whitespace and cuts at ``MAX_NAME_CHARS``; "upload" if nothing is left.
    """
    kept = (" " if c.isspace() else c for c in raw if c.isspace() or unicodedata.category(c) != "Cc")
    text = "".join(kept).translate(_BIDI_CONTROLS)
    text = re.split(r"[/\\]", text)[-1]
    text = re.sub(r"^\s*[A-Za-z]:", "", text)  # a Windows drive-relative name, "C:photo.png"
    text = " ".join(text.split())[:MAX_NAME_CHARS].strip()
    return "upload" if text in ("", ".", "..") else text


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A WebP no larger than ``side`` on its longest edge."""
    with open_image(data) as image:
        image.draft("RGB", (side, side))  # JPEG decodes at a reduced scale: much faster
        return _thumbnail_of(displayable(ImageOps.exif_transpose(image)), side)


THUMB_RESAMPLE = Image.Resampling.BICUBIC
"""Bicubic, not Lanczos: 2/3 of the taps (1024² → 480²: ~15 ms instead of ~20 ms), and still no
visible aliasing (a zone plate shrunk both ways shows the same rings; on the local engine's
pictures the two thumbnails are 55-60 dB apart, below what the WebP encoding itself changes).
Bilinear, Hamming or a 2× box ``reduce`` first are faster again but alias fine detail visibly.
From 4× down, ``thumbnail`` box-reduces first anyway (its ``reducing_gap``)."""
THUMB_WEBP = {"quality": 82, "method": 2}
"""WebP effort 2, not 4: 1024² → 480² encodes in ~9 ms instead of ~21 ms, at the same quality
(PSNR within 0.5 dB) for ~6 % more bytes (a thumbnail of ~6 KB: ~0.4 KB)."""


def _thumbnail_of(image: Image.Image, side: int) -> bytes:
    """``image`` (upright, RGB or RGBA; shrunk in place) as a WebP thumbnail."""
    image.thumbnail((side, side), THUMB_RESAMPLE)
    return encode(image, "WEBP", **THUMB_WEBP)


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


def displayable(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when ``image`` has any transparency: what screens, WebP and every filter take."""
    if image.mode in {"RGB", "RGBA"}:
        return image
    if image.mode == "I" or image.mode.startswith("I;16"):
        # convert("RGB") would clip every value above 255 to white; scale 16 bits down to 8 instead.
        return image.convert("I").point(lambda v: v / 257).convert("L").convert("RGB")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _mode_note(mode: str) -> str:
    if mode == "CMYK":
        return "Its CMYK colours were converted to RGB, as screens show them."
    if mode == "I" or mode.startswith("I;16"):
        return "It was a 16-bit image; it is stored with 8 bits per channel, as screens show it."
    return ""


def _too_many_pixels(name: str, size: tuple[int, int] | None) -> str:
    limit = f"imgedit takes up to {MAX_PIXELS // 1_000_000} MP"
    if size is None:
        return f"“{name}” has too many pixels to open safely; {limit}."
    return f"“{name}” is {size[0]}×{size[1]} pixels; {limit}."


def _claimed_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, for the message about a decompression bomb:
    ``Image.open`` refuses those before it tells anyone their size. Nothing is decoded."""
    fmt = _signature_format(data)
    if fmt is None:
        return None
    factory, _accept = Image.OPEN[fmt]
    try:
        with factory(io.BytesIO(data), "") as image:
            return image.size
    except Exception:  # a header too broken to read: the message goes without the size
        return None


def _signature_format(data: bytes) -> str | None:
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "TIFF"
    return sniff_format(data)


_TEXT_PROBE_BYTES = 4096
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def _plainly_not_an_image(data: bytes) -> str | None:
    """What a file without an image signature plainly is, in words for the refusal, or None.

    Judged from the first few KB before any decoder sees the file, so a PDF or an SVG is named
    as such instead of "not an image imgedit can read", and PostScript never reaches Pillow.
    """
    if _signature_format(data) is not None:
        return None
    head = data[:_TEXT_PROBE_BYTES]
    if b"%PDF-" in head[:1024]:  # readers allow a little junk before the header
        return "a PDF document, not an image"
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):  # plain and DOS-binary (E)PS
        return "a PostScript file, not an image imgedit accepts"
    text = _as_text(head)
    if text is None:
        return None
    start = text.lstrip().lower()
    if start.startswith("<") and "<svg" in start:
        return "an SVG drawing; SVG is not accepted because it can carry scripts"
    if start.startswith("<") and re.search(r"<(?:!doctype html|html|head|body|script)\b", start):
        return "a web page (HTML), not an image"
    return "a text file, not an image"


def _as_text(head: bytes) -> str | None:
    """``head`` decoded if it reads as text (UTF-8, or UTF-16 with a BOM), else None."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if head.startswith(bom):
            head, encoding = head[len(bom) :], name
            break
    try:
        # Incremental, so a character cut in two at the end of the probe is not an error.
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" and c not in _TEXT_CONTROLS for c in text):
        return None
    return text
