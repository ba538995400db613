"""Background jobs: one owner per concern.

    model      stages, the spec, the snapshot, the live record
    scheduler  queue order, global slots, per-provider capacity, pause, moves
    progress   progress and ETA of a job from its state and the time
    registry   runs the jobs: submit, cancel, retry, the watchdog, snapshots

Everyone outside imports from here. Must not import nicegui.
"""

from __future__ import annotations

from imgedit.jobs.model import GENERIC_FAILURE, JobSnapshot, JobSpec, JobStage, Work
from imgedit.jobs.registry import KEEP_FINISHED, JobContext, JobRegistry

__all__ = [
    "GENERIC_FAILURE",
    "KEEP_FINISHED",
    "JobContext",
    "JobRegistry",
    "JobSnapshot",
    "JobSpec",
    "JobStage",
    "Work",
]
