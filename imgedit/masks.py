"""Region edits: the mask a user paints, in the one form imgedit keeps, and its conversions.

The kept form is OpenAI's: a PNG the size of the source, RGBA, fully transparent (alpha 0) where
the edit applies and opaque black where the image must stay as it is. Everything here is pure
Pillow work on bytes: callers on the event loop go through ``imgedit.cpu.run``. Must not import
nicegui.

Usage::

    kept = normalise(painted_png, source_size)      # validated, the kept form
    area = edit_area(kept)                           # 'L': 255 where the edit applies
    sd = white_on_black(kept)                        # SD WebUI's inpainting mask
    out = blend(original, edited, kept, feather=8)   # the edit inside the area only
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageChops, ImageFilter

from imgedit.errors import InvalidRequest
from imgedit.imaging import open_image

MIN_AREA_FRACTION = 0.0005
"""A painted area smaller than this share of the image (a stray click) is taken for no area."""


def mask_id(data: bytes) -> str:
    """The kept mask's name: its content's hash (the same painting is stored once)."""
    return hashlib.sha256(data).hexdigest()


def normalise(data: bytes, size: tuple[int, int]) -> bytes:
    """A painted mask as the kept form, for a source of ``size`` (width, height).

    Accepts any allowed image format: the edit area is where alpha is below half (a mask with no
    alpha at all is read as a white-on-black SD-style mask: white is the area). A mask of a
    different size is refused, as is one with no area to edit.
    """
    image = _decode(data, expect=size)
    if "A" in image.getbands() or image.mode in ("LA", "PA") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        area = alpha.point(lambda v: 255 if v < 128 else 0)
    else:
        area = image.convert("L").point(lambda v: 255 if v >= 128 else 0)
    return from_area(area)


def _decode(data: bytes, *, expect: tuple[int, int] | None = None) -> Image.Image:
    """Decoded and loaded, or ``InvalidRequest`` (not an image, truncated, a pixel bomb). With
    ``expect``, a picture of another size is refused from its header, before any pixel is read."""
    unreadable = InvalidRequest("The selected area could not be read as an image; select it again.")
    try:
        image = open_image(data)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise unreadable from exc
    if expect is not None and image.size != tuple(expect):
        raise InvalidRequest(
            f"The selected area is {image.width}×{image.height} but the image is {expect[0]}×{expect[1]}; "
            "select the area again."
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise unreadable from exc
    return image


def from_area(area: Image.Image) -> bytes:
    """The kept form of an 'L' image that is 255 where the edit applies."""
    area = area.convert("L").point(lambda v: 255 if v >= 128 else 0)
    histogram = area.histogram()
    painted = histogram[255]
    if painted < max(1, area.width * area.height * MIN_AREA_FRACTION):
        raise InvalidRequest("No area is selected: paint over the part to change, or clear the selection.")
    kept = Image.new("RGBA", area.size, (0, 0, 0, 255))
    kept.putalpha(ImageChops.invert(area))
    buffer = io.BytesIO()
    kept.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def edit_area(mask: bytes) -> Image.Image:
    """'L', 255 where the edit applies, 0 elsewhere, from the kept form."""
    alpha = _decode(mask).convert("RGBA").getchannel("A")
    return alpha.point(lambda v: 255 if v < 128 else 0)


def white_on_black(mask: bytes) -> bytes:
    """SD WebUI's (and most inpainting UIs') mask: a PNG, white where the edit applies."""
    buffer = io.BytesIO()
    edit_area(mask).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def feathered(area: Image.Image, radius: float) -> Image.Image:
    """The area with a soft inner edge: 0 outside the area (pixels there stay exactly as they
    were), rising to 255 ``radius`` pixels inside it."""
    if radius <= 0:
        return area
    # Shrink first, then blur: the blur spreads out by about the radius, back to the edge.
    shrink = max(1, int(radius)) * 2 + 1
    inner = area.filter(ImageFilter.MinFilter(shrink)) if shrink <= 31 else area
    soft = inner.filter(ImageFilter.GaussianBlur(radius / 2))
    return ImageChops.multiply(soft, area)  # never past the painted edge


def feather_radius(size: tuple[int, int]) -> float:
    """A feather that looks the same at any size: about 1 % of the shorter side, 2 to 24 px."""
    return max(2.0, min(24.0, min(size) / 100))


def blend(
    original: Image.Image, edited: Image.Image, mask: bytes, *, feather: float | None = None
) -> Image.Image:
    """``edited`` inside the mask's area (with a feathered edge), ``original`` everywhere else.

    Both images must have the source's size; the result has ``original``'s mode.
    """
    area = edit_area(mask)
    if area.size != original.size or edited.size != original.size:
        raise InvalidRequest("The selected area does not fit this image; select it again.")
    radius = feather_radius(original.size) if feather is None else feather
    weight = feathered(area, radius)
    mode = original.mode if original.mode in ("RGB", "RGBA", "L") else "RGBA"
    return Image.composite(edited.convert(mode), original.convert(mode), weight)


def outline(mask: bytes, box: tuple[int, int]) -> bytes:
    """A transparent PNG no larger than ``box`` with the area's outline drawn in white over a
    dark halo (readable on any picture), for a loading card over the blurred original."""
    area = edit_area(mask)
    area.thumbnail(box, Image.Resampling.NEAREST)
    edge = area.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v else 0)
    line = edge.filter(ImageFilter.MaxFilter(3))
    halo = line.filter(ImageFilter.MaxFilter(3))
    drawn = Image.new("RGBA", area.size, (0, 0, 0, 0))
    drawn.paste((20, 20, 30, 200), mask=halo)
    drawn.paste((255, 255, 255, 255), mask=line)
    # A light veil inside the area, so a small selection is seen as well as its edge.
    veil = Image.new("RGBA", area.size, (255, 255, 255, 0))
    veil.putalpha(area.point(lambda v: 40 if v else 0))
    drawn = Image.alpha_composite(veil, drawn)
    buffer = io.BytesIO()
    drawn.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def keep_outside(source: bytes, result: bytes, mask: bytes) -> bytes:
    """A provider's answer to a region edit, made to keep its promise: at the source's size, and
    every pixel outside the area exactly the source's (a model may redraw the whole picture, at a
    size of its own, and treat the mask as a hint). PNG."""
    original, edited = _decode(source), _decode(result)
    if edited.size != original.size:
        edited = edited.convert("RGBA").resize(original.size, Image.Resampling.LANCZOS)
    if original.mode not in ("RGB", "RGBA", "L"):
        original = original.convert("RGBA")
    buffer = io.BytesIO()
    blend(original, edited, mask).save(buffer, "PNG")
    return buffer.getvalue()
