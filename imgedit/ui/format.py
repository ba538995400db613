"""How jobs and durations read on screen. Pure functions; ``static/imgedit.js`` mirrors the
clock and ETA formats for the values it advances in the browser. No nicegui import needed.
"""

from __future__ import annotations

import math

from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageOrigin, JobKind

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


def stage_label(snapshot: JobSnapshot) -> str:
    if snapshot.stage is JobStage.QUEUED and snapshot.queue_position is not None:
        return f"Queued (position {snapshot.queue_position})"
    if snapshot.stage is JobStage.FAILED and snapshot.attempt > 1:
        return f"Failed (attempt {snapshot.attempt})"
    return snapshot.stage.value.capitalize()


def eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return ""
    return f"≈{clock(eta_s)} left" if eta_s >= 1 else "almost done"


def elapsed_text(snapshot: JobSnapshot) -> str:
    return "waiting" if snapshot.started_at is None else clock(snapshot.elapsed_s)


def kind_label(kind: JobKind) -> str:
    return "Edit" if kind is JobKind.EDIT else "New image"


def seconds_label(seconds: float) -> str:
    """A duration estimate for choosing quality: ``~3 s``, ``~2 min``."""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    return f"~{round(seconds / 60)} min"


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis if cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,.;:") + "…"
