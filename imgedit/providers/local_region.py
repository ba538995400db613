"""The local engine's region edits: the prompt's operations inside a selected area only.

``check_area_operations`` refuses, before any work, an operation that changes the picture's
geometry (rotate, flip, mirror, crop, resize): it cannot apply to a part of the picture.
``area_edit_work`` runs in the image pool like ``local._edit_work``: it decodes the source at its
full size, works on the area's bounding box (with enough margin around it that filters such as a
blur see the real pixels beyond the edge), puts the worked box back at the source's size and
blends it in with ``masks.blend``: a feathered edge inside the area, every pixel outside it
exactly as it was. Operations that measure the picture (contrast's mean, auto contrast, the
vignette) measure the box, i.e. the selected part. Pure and synchronous; must not import nicegui.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image

from imgedit import masks
from imgedit.errors import InvalidRequest
from imgedit.models import Quality
from imgedit.providers.local import decode_source
from imgedit.providers.local_ops import (
    _GEOMETRY,
    QUALITY_SPECS,
    OperationCancelled,
    ProgressFn,
    StopFn,
    _blur_pad,
    apply_operations,
    normalise_mode,
)
from imgedit.providers.local_parse import Operation

_WHOLE_PICTURE: dict[str, tuple[str, str]] = {
    "rotate": ("Rotate", "rotate"),
    "flip": ("Flip", "flip"),
    "mirror": ("Mirror", "mirror"),
    "crop_square": ("Crop", "crop"),
    "resize": ("Resize", "resize"),
}
"""How the refusal names each geometry operation: (what it is, the verb for "clear … to …")."""


def check_area_operations(ops: Sequence[Operation]) -> None:
    """``InvalidRequest`` naming the first operation that changes the whole picture's geometry."""
    for op in ops:
        if op.name in _GEOMETRY:
            title, verb = _WHOLE_PICTURE.get(op.name, (op.label.split(" (")[0], "do that"))
            raise InvalidRequest(f"{title} changes the whole picture; clear the selection to {verb}.")


def _reach(op: Operation) -> int:
    """How far (working pixels) one operation looks beyond a pixel to compute it."""
    if op.name == "blur":
        return _blur_pad(op.param("radius"))
    if op.name in ("sharpen", "sketch"):
        return _blur_pad(2)
    if op.name in ("edges", "emboss"):
        return 2
    if op.name == "pixelate":
        return int(op.param("block"))
    return 0


def work_box(area: Image.Image, ops: Sequence[Operation], quality: Quality) -> tuple[int, int, int, int]:
    """The part of the picture to work on: the area's bounding box plus every operation's reach
    (scaled to source pixels when the work is done at a smaller working resolution), in bounds."""
    bounds = area.getbbox()
    if bounds is None:
        raise InvalidRequest("No area is selected: paint over the part to change, or clear the selection.")
    scale = max(1.0, max(area.size) / QUALITY_SPECS[quality].max_side)
    margin = math.ceil(sum(_reach(op) for op in ops) * scale) + 2
    left, top, right, bottom = bounds
    return (
        max(0, left - margin),
        max(0, top - margin),
        min(area.width, right + margin),
        min(area.height, bottom + margin),
    )


def area_edit_work(
    data: bytes,
    mask: bytes,
    ops: Sequence[Operation],
    quality: Quality,
    report: ProgressFn,
    stop: StopFn,
) -> tuple[bytes, list[str]]:
    """The source with ``ops`` applied inside the mask's area only, as PNG, and notes for the user."""
    from imgedit.providers.local import _encode_png, _scaled

    report(0.0, "Reading image")
    source = decode_source(data, None)  # full size: the mask has the source's own size
    area = masks.edit_area(mask)
    if area.size != source.size:
        raise InvalidRequest(
            f"The selected area is {area.width}×{area.height} but the image is "
            f"{source.width}×{source.height}; select the area again."
        )
    if stop():
        raise OperationCancelled
    original = normalise_mode(source)
    box = work_box(area, ops, quality)
    notes: list[str] = []
    piece = original.crop(box)
    worked = apply_operations(
        piece,
        list(ops),
        quality=quality,
        on_progress=_scaled(report, 0.05, 0.85),
        should_stop=stop,
        on_note=notes.append,
    )
    if worked.size != piece.size:  # worked on at the quality's smaller working resolution
        worked = worked.resize(piece.size, QUALITY_SPECS[quality].resample)
    if stop():
        raise OperationCancelled
    report(0.85, "Blending the selected area")
    edited = original.copy()
    edited.paste(worked.convert(original.mode), box[:2])
    result = masks.blend(original, edited, mask)
    if stop():
        raise OperationCancelled
    report(0.9, "Saving PNG")
    png = _encode_png(result)
    report(1.0, "Done")
    return png, notes
