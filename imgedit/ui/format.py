"""How jobs and durations read on screen. Pure functions; ``static/imgedit.js`` mirrors
``clock`` and ``eta_phrase`` for the values it advances in the browser (``tests/test_eta_parity.py``
holds them together). No nicegui import needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from imgedit.eta import ALMOST_DONE
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageId, ImageOrigin, ImageRecord, JobKind

STAGE_ICONS: dict[JobStage, str] = {
    JobStage.QUEUED: "schedule",
    JobStage.INITIALIZING: "hourglass_top",
    JobStage.PROCESSING: "auto_fix_high",
    JobStage.FINALIZING: "save",
    JobStage.COMPLETED: "check_circle",
    JobStage.FAILED: "error",
    JobStage.CANCELLED: "cancel",
    JobStage.INTERRUPTED: "power_off",
}

ORIGIN_LABELS: dict[ImageOrigin, str] = {
    ImageOrigin.SAMPLE: "Sample",
    ImageOrigin.UPLOAD: "Upload",
    ImageOrigin.EDIT: "Edit",
    ImageOrigin.GENERATE: "Generated",
}


def clock(seconds: float) -> str:
    """``0:07``, ``12:05``, ``1:02:03``."""
    total = max(0, math.floor(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def card_stage(snapshot: JobSnapshot) -> str:
    """The stage as a card shows it: a queued job already handed a slot is ``starting`` (it
    runs within a moment), one held back only by its provider's capacity is ``waiting``."""
    if snapshot.stage is JobStage.QUEUED:
        if snapshot.waiting_for_provider:
            return "waiting"
        if snapshot.queue_position is None:
            return "starting"
    return snapshot.stage.value


def stage_label(snapshot: JobSnapshot) -> str:
    stage = card_stage(snapshot)
    if stage == "waiting":
        return "Waiting for a free server"
    if stage == "starting":
        return "Starting"
    if snapshot.stage is JobStage.QUEUED and snapshot.queue_position is not None:
        if snapshot.paused:
            return f"Paused (position {snapshot.queue_position})"
        return f"Queued (position {snapshot.queue_position})"
    if snapshot.stage is JobStage.FAILED and snapshot.attempt > 1:
        return f"Failed (attempt {snapshot.attempt})"
    return snapshot.stage.value.capitalize()


def eta_phrase(stage: str, left: float | None, progress: float) -> str:
    """The ETA text of a card in ``stage`` (``card_stage``) with ``left`` seconds to go.

    Honest at both ends: "almost done" only near the end of a running job; a job past its
    projected time "a little longer" (not a number counting up); waiting jobs never "almost".
    Mirrored by ``etaText`` in ``static/imgedit.js``."""
    if left is None or stage in {"completed", "failed", "cancelled", "interrupted"}:
        return ""
    if left >= 1 or stage in {"queued", "starting", "waiting"}:
        return f"≈{clock(max(left, 1.0))} left"
    if stage == "finalizing" or (left > 0 and progress >= ALMOST_DONE):
        return "almost done"
    return "a little longer"


def card_eta_text(snapshot: JobSnapshot) -> str:
    return eta_phrase(card_stage(snapshot), snapshot.eta_s, snapshot.progress)


def eta_text(eta_s: float | None) -> str:
    """A remaining time without a stage: never "almost done" (that needs the job's progress)."""
    return "" if eta_s is None else f"≈{clock(max(eta_s, 1.0))} left"


def elapsed_text(snapshot: JobSnapshot) -> str:
    if snapshot.started_at is None:
        return "0:00" if card_stage(snapshot) == "starting" else "waiting"
    return clock(snapshot.elapsed_s)


TITLE_JOIN = " — "
SOURCE_IN_TITLE_CHARS = 24


def job_title(prompt: str, source_title: str | None) -> str:
    """A job's (and its result's) name: ``photo1.jpg — sepia`` for an edit, the prompt for a new
    image. The source's own edits are not repeated: an edit of ``photo1.jpg — sepia`` with
    "blur" is ``photo1.jpg — blur``, so titles stay short and rows of them stay distinct."""
    if not source_title:
        return prompt
    # Short enough that the prompt still shows on a card: it is what tells two edits apart.
    source = shorten(source_title.split(TITLE_JOIN)[0], SOURCE_IN_TITLE_CHARS)
    return f"{source}{TITLE_JOIN}{prompt}"


def image_title(image: ImageRecord, lookup: Callable[[ImageId], ImageRecord | None]) -> str:
    """The title an image is shown (and downloaded) under. A result the studio stored without a
    name is titled by its prompt alone, so edits of different sources read alike: shown here as
    ``<source title> — <prompt>`` (``job_title``), the source found through ``lookup`` (None when
    deleted, then the prompt alone)."""
    if image.name or image.origin is not ImageOrigin.EDIT or not image.prompt or image.parent_id is None:
        return image.title
    parent, seen = lookup(image.parent_id), {image.id}
    # Up to the first ancestor with a name of its own (an upload, a sample, a generation).
    while (
        parent is not None
        and parent.id not in seen
        and not parent.name
        and parent.origin is ImageOrigin.EDIT
        and parent.parent_id is not None
    ):
        seen.add(parent.id)
        parent = lookup(parent.parent_id)
    if parent is None or parent.id in seen:
        return image.title
    return job_title(image.prompt, parent.title)


def kind_label(kind: JobKind) -> str:
    return "Edit" if kind is JobKind.EDIT else "New image"


def seconds_label(seconds: float) -> str:
    """A duration estimate for choosing quality: ``~0.3 s``, ``~1.5 s``, ``~12 s``, ``~2 min``.

    Sub-second and few-second jobs keep a decimal, so qualities that differ do not all read
    "~1 s"."""
    if seconds < 1:
        return f"~{max(seconds, 0.1):.1f} s"
    if seconds < 10:
        return f"~{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    if seconds < 90:
        return f"~{round(seconds)} s"
    return f"~{round(seconds / 60)} min"


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis if cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,.;:") + "…"
