"""Progress and ETA of one job, from its state and the time: the numbers a card shows.

Reported progress (a provider's fraction of its own work) wins over the estimate; milestones
(e.g. partial images) are floors under the estimate; the estimate is elapsed / expected, eased
(``imgedit.eta``). A provider's fraction fills the PROCESSING span of the job's bar. Queued jobs
get their wait by simulating the slots. Must not import nicegui.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from imgedit.eta import MAX_SHOWN_BEFORE_DONE, eased_progress, remaining_seconds
from imgedit.jobs.model import JobRecord, JobStage
from imgedit.models import JobId

PROCESSING_START = 0.05
PROCESSING_END = 0.95
"""Where PROCESSING sits on the whole job's bar: reported provider progress fills this span."""


@dataclass(frozen=True, slots=True)
class Shown:
    """What a card shows of a job at one moment."""

    progress: float
    source: Literal["reported", "estimated"]
    eta_s: float | None
    expected_s: float
    elapsed_s: float


def overall(fraction: float | None) -> float | None:
    """A provider's fraction of its own work, placed on the whole job's bar (PROCESSING span)."""
    if fraction is None:
        return None
    return PROCESSING_START + (PROCESSING_END - PROCESSING_START) * fraction


def elapsed(record: JobRecord, now: float) -> float:
    if record.started_mono is None:
        return 0.0
    end = record.finished_mono if record.finished_mono is not None else now
    return max(0.0, end - record.started_mono)


def remaining(record: JobRecord, now: float) -> float:
    """Seconds until the job is expected to finish (running jobs)."""
    if record.provider_eta is not None:
        # The provider's own estimate (e.g. SD WebUI's eta_relative), counted down since it came.
        return max(record.provider_eta - (now - record.provider_eta_at), 0.0)
    known = record.reported if record.reported is not None else record.milestone
    return remaining_seconds(elapsed(record, now), record.expected, overall(known))


def queue_waits(
    running: Iterable[JobRecord], queued: Sequence[JobRecord], limit: int, now: float
) -> dict[JobId, float]:
    """Seconds each queued job is expected to wait, simulating ``limit`` slots in queue order."""
    if not queued:
        return {}
    free_at = [remaining(r, now) for r in running]
    free_at += [0.0] * max(0, limit - len(free_at))
    heapq.heapify(free_at)
    waits: dict[JobId, float] = {}
    for record in queued:
        start = heapq.heappop(free_at)
        waits[record.id] = start
        heapq.heappush(free_at, start + record.expected)
    return waits


def shown(record: JobRecord, now: float, wait: float | None = None) -> Shown:
    """The card's numbers for ``record`` at ``now``; ``wait`` is a queued job's expected wait."""
    spent = elapsed(record, now)
    reported = overall(record.reported)
    source: Literal["reported", "estimated"] = "reported" if reported is not None else "estimated"
    if record.stage.is_finished:
        progress = 1.0 if record.stage is JobStage.COMPLETED else record.floor
        expected = spent if record.stage is JobStage.COMPLETED else record.expected
        return Shown(progress, source, None, expected, spent)
    if record.stage is JobStage.QUEUED:
        return Shown(0.0, source, (wait or 0.0) + record.expected, record.expected, spent)
    if reported is not None:
        computed = reported
    else:
        # Milestones (e.g. partial images) are floors under the estimate, not a replacement.
        computed = max(eased_progress(spent, record.expected), overall(record.milestone) or 0.0)
    if record.stage is JobStage.FINALIZING:
        computed = max(computed, PROCESSING_END)
    progress = min(max(record.floor, computed), MAX_SHOWN_BEFORE_DONE)
    return Shown(progress, source, remaining(record, now), record.expected, spent)
