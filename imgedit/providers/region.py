"""What the remote providers share about a region edit's mask on its way out.

``ProviderRequest.mask`` arrives in the kept form (``imgedit.masks``: a PNG the source's size,
transparent where the edit applies). Before a provider sends it, ``checked_mask`` makes sure it
still fits the source (the servers either refuse a mismatch, as OpenAI does, or silently stretch
it, as SD WebUI and ComfyUI do), reading the PNG headers only. ``clear_mask`` is a mask that edits
everywhere, for a mask-taking ComfyUI workflow run without a selected area.

Pure Pillow on bytes; ``clear_mask`` encodes a whole image, so callers on the event loop go
through ``imgedit.cpu.run``. Must not import nicegui.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from imgedit.errors import InvalidRequest
from imgedit.imaging import open_image, sniff_format


def encoded_size(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) from an encoded image's header; ``InvalidRequest`` naming ``what`` if it
    cannot be read. Cheap: no pixels are decoded."""
    try:
        with open_image(data) as image:
            return image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidRequest(f"{what} could not be read: {exc}") from exc


def checked_mask(image: bytes, mask: bytes) -> tuple[int, int]:
    """The source's size, once the kept mask is known to be a PNG of that very size."""
    size = encoded_size(image, "The source image")
    if sniff_format(mask) != "PNG":
        raise InvalidRequest("The selected area is not a PNG image; select the area again.")
    mask_size = encoded_size(mask, "The selected area")
    if mask_size != size:
        raise InvalidRequest(
            f"The selected area is {mask_size[0]}×{mask_size[1]} but the image is {size[0]}×{size[1]}; "
            "select the area again."
        )
    return size


def clear_mask(size: tuple[int, int]) -> bytes:
    """A kept-form mask of ``size`` that selects everything: fully transparent."""
    buffer = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 0, 0)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
