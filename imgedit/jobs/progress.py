"""Progress and ETA of one job, from its state and the time: the numbers a card shows.

Reported progress (a provider's fraction of its own work) wins over the estimate; milestones
(e.g. partial images) are floors under the estimate; the estimate is elapsed / projected, eased
(``imgedit.eta``). A provider's fraction fills the PROCESSING span of the job's bar.

Bar and ETA tell one story: both follow the job's *projected* running time — the prior until the
provider says something, then revised at each report (its own ETA if it gives one, else the pace
of its fractions; a 0 % milestone says nothing about pace). Between reports the projection does
not move, so the ETA counts down and the browser can advance the card alone; past it the ETA is
0 ("a little longer"), never a growing number. Queued jobs get their wait by simulating the
global slots and each provider's capacity. Must not import nicegui.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NamedTuple

from imgedit.eta import remaining_seconds, shown_progress
from imgedit.jobs.model import JobRecord, JobStage
from imgedit.models import JobId

PROCESSING_START = 0.05
PROCESSING_END = 0.95
"""Where PROCESSING sits on the whole job's bar: reported provider progress fills this span."""


class Shown(NamedTuple):
    """What a card shows of a job at one moment (a tuple: made for every job on every tick)."""

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


def provider_fraction(shown: float) -> float:
    """The inverse of ``overall``: where a shown bar sits in the provider's own work (0..1)."""
    return min(max((shown - PROCESSING_START) / (PROCESSING_END - PROCESSING_START), 0.0), 1.0)


def elapsed(record: JobRecord, now: float) -> float:
    if record.started_mono is None:
        return 0.0
    end = record.finished_mono if record.finished_mono is not None else now
    return max(0.0, end - record.started_mono)


def projected(record: JobRecord) -> float:
    """The running time the job is now expected to take: the prior, or the latest revision."""
    if record.provider_eta is None or record.started_mono is None:
        return record.expected
    return max(record.provider_eta_at - record.started_mono, 0.0) + record.provider_eta


def paced_remaining(record: JobRecord, now: float) -> float | None:
    """Seconds left as the pace of the job's reports says (None: no report with a pace yet)."""
    known = record.reported if record.reported is not None else record.milestone
    if not known:  # a 0 % milestone ("sending…") says nothing about the pace
        return None
    return remaining_seconds(elapsed(record, now), record.expected, overall(known))


def remaining(record: JobRecord, now: float) -> float:
    """Seconds until a running job is expected to finish; 0 once that time has passed."""
    return max(projected(record) - elapsed(record, now), 0.0)


def queue_waits(
    running: Iterable[JobRecord],
    queued: Sequence[JobRecord],
    limit: int,
    now: float,
    *,
    capacity_of: Callable[[str], int | None] = lambda _provider: None,
) -> dict[JobId, float]:
    """Seconds each queued job is expected to wait: the slots and each provider's capacity
    simulated in queue order, as the scheduler starts them (a job whose provider is full does
    not hold up the ones behind it). O(jobs × providers)."""
    if not queued:
        return {}
    ends: list[tuple[float, str]] = [(remaining(r, now), r.spec.provider) for r in running]
    heapq.heapify(ends)
    busy: dict[str, int] = {}
    for _end, provider in ends:
        busy[provider] = busy.get(provider, 0) + 1
    waiting: dict[str, list[int]] = {}  # provider -> indexes into ``queued``, in order
    for index, record in enumerate(queued):
        waiting.setdefault(record.spec.provider, []).append(index)
    heads = dict.fromkeys(waiting, 0)
    waits: dict[JobId, float] = {}
    clock = 0.0
    while len(waits) < len(queued):
        # Start, in queue order, every job that fits now.
        while len(ends) < limit:
            ready = [
                waiting[p][heads[p]]
                for p in waiting
                if heads[p] < len(waiting[p]) and _fits(p, busy, capacity_of)
            ]
            if not ready:
                break
            record = queued[min(ready)]
            provider = record.spec.provider
            heads[provider] += 1
            waits[record.id] = clock
            busy[provider] = busy.get(provider, 0) + 1
            heapq.heappush(ends, (clock + record.expected, provider))
        if len(waits) == len(queued) or not ends:
            break
        clock, provider = heapq.heappop(ends)
        busy[provider] -= 1
    return waits


def _fits(provider: str, busy: dict[str, int], capacity_of: Callable[[str], int | None]) -> bool:
    capacity = capacity_of(provider)
    return capacity is None or busy.get(provider, 0) < capacity


def shown(record: JobRecord, now: float, wait: float | None = None) -> Shown:
    """The card's numbers for ``record`` at ``now``; ``wait`` is a queued job's expected wait
    (None: not known, e.g. it waits for a busy provider server).

    Runs for every job of every tab on each tick where anything changed: kept to plain
    arithmetic and identity checks (``elapsed``, ``overall`` and ``projected`` inlined)."""
    stage = record.stage
    started = record.started_mono
    if started is None:
        spent = 0.0
    else:
        end = record.finished_mono
        spent = max(0.0, (now if end is None else end) - started)
    fraction = record.reported
    source: Literal["reported", "estimated"] = "estimated" if fraction is None else "reported"
    if stage in _FINISHED:
        if stage is _COMPLETED:
            return Shown(1.0, source, None, spent, spent)
        return Shown(record.floor, source, None, record.expected, spent)
    if stage is _QUEUED:
        return Shown(0.0, source, None if wait is None else wait + record.expected, record.expected, spent)
    if record.provider_eta is None or started is None:
        total = record.expected
    else:
        total = max(record.provider_eta_at - started, 0.0) + record.provider_eta
    milestone = record.milestone
    progress = shown_progress(
        spent,
        total,
        reported=None if fraction is None else PROCESSING_START + _SPAN * fraction,
        milestone=None if milestone is None else PROCESSING_START + _SPAN * milestone,
        floor=record.floor,
        finalizing=stage is _FINALIZING,
    )
    return Shown(progress, source, max(total - spent, 0.0), total, spent)


_SPAN = PROCESSING_END - PROCESSING_START
_QUEUED, _FINALIZING, _COMPLETED = JobStage.QUEUED, JobStage.FINALIZING, JobStage.COMPLETED
_FINISHED = (JobStage.COMPLETED, JobStage.FAILED, JobStage.CANCELLED, JobStage.INTERRUPTED)
