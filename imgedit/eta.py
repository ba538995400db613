"""Expected durations and the progress / ETA shown for a running job.

Two sources, in this order of trust:
- reported progress from the provider (a fraction of its work), which wins;
- estimated progress: elapsed / expected duration, eased so an overrun creeps toward 95 %
  instead of stalling at 99 % or jumping.

Expected durations start from priors (per provider × kind × quality) and become the running mean
of measured durations per provider × model × kind × quality × size bucket from the first
completed job on. ``static/imgedit.js`` repeats ``eased_progress`` and ``shown_progress`` so the
browser can advance cards without server traffic; ``tests/test_eta_parity.py`` runs both on the
same inputs so they cannot drift. Must not import nicegui.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imgedit.models import JobKind, Quality

EASE_KNEE = 0.85
"""Below this fraction of the expected time, estimated progress is linear."""
EASE_CEILING = 0.95
"""Estimated progress approaches this and never passes it."""
MAX_SHOWN_BEFORE_DONE = 0.99
"""No progress shown reaches 100 % before the job has completed."""
ALMOST_DONE = 0.85
"""A job is "almost done" only this far along and with under a second left; short of it, an ETA
that has run out reads "a little longer"."""


def eased_progress(elapsed: float, expected: float) -> float:
    """Estimated fraction done after ``elapsed`` of an ``expected``-second job.

    Linear up to the knee, then an exponential approach to the ceiling whose slope matches at
    the knee, so the bar never jumps and slows smoothly on an overrun.
    """
    if expected <= 0:
        return 0.0
    t = max(0.0, elapsed / expected)
    if t <= EASE_KNEE:
        return t
    span = EASE_CEILING - EASE_KNEE
    return EASE_CEILING - span * math.exp(-(t - EASE_KNEE) / span)


def shown_progress(
    elapsed: float,
    expected: float,
    *,
    reported: float | None = None,
    milestone: float | None = None,
    floor: float = 0.0,
    finalizing: bool = False,
) -> float:
    """The bar of a running job (fractions of the whole job): reported progress wins; else the
    estimate, with milestones as floors under it. Never below ``floor``, never 100 %.

    ``expected`` is the job's projected running time (the prior, revised by what it reported).
    ``static/imgedit.js`` (``shownProgress``) computes the same in the browser."""
    computed = reported if reported is not None else max(eased_progress(elapsed, expected), milestone or 0.0)
    if finalizing:
        computed = max(computed, EASE_CEILING)
    return min(max(floor, computed), MAX_SHOWN_BEFORE_DONE)


def remaining_seconds(elapsed: float, expected: float, reported: float | None) -> float:
    """Seconds left. With reported progress, the measured rate is trusted in proportion to it."""
    if reported is None or reported <= 0.0:
        return max(expected - elapsed, 0.0)
    reported = min(reported, 1.0)
    rate_left = elapsed * (1.0 - reported) / reported
    prior_left = expected * (1.0 - reported)
    return reported * rate_left + (1.0 - reported) * prior_left


SIZE_BUCKETS: tuple[tuple[float, str], ...] = ((0.5, "≤0.5MP"), (1.0, "≤1MP"), (2.0, "≤2MP"))
"""Megapixel limits of the size buckets durations are learned in; larger is ``>2MP``."""


def size_bucket(size: tuple[int, int] | None) -> str:
    """The bucket of an output size (``""`` when unknown): time grows with the pixel count."""
    if size is None:
        return ""
    megapixels = size[0] * size[1] / (1024 * 1024)
    for limit, name in SIZE_BUCKETS:
        if megapixels <= limit:
            return name
    return ">2MP"


@dataclass(slots=True)
class _Mean:
    count: int = 0
    mean: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        # A window of ~10 jobs: follows a machine that gets faster or slower without forgetting.
        weight = 1.0 / min(self.count, 10)
        self.mean += (value - self.mean) * weight


PriorKey = tuple[str, JobKind, Quality]
DurationKey = tuple[str, str, JobKind, Quality, str]
"""provider, model ("" when unknown), kind, quality, size bucket ("" when unknown)."""
DurationRow = tuple[str, str, str, str, str, int, float]
"""``(provider, model, kind, quality, size_bucket, count, mean)``: how durations are stored."""


class DurationModel:
    """Expected job durations: a prior until measured, then the running mean of real durations.

    Learned per provider × model × kind × quality × size bucket, and used from the first
    sample on (a prior is a guess; one real job is better). Usage::

        model = DurationModel(priors={Quality.LOW: 2.0, ...})
        model.expected("openai", JobKind.EDIT, Quality.LOW, model="gpt-image-1.5", size=(1024, 1024))
        model.record("openai", JobKind.EDIT, Quality.LOW, 7.9, model="gpt-image-1.5", size=(1024, 1024))
        rows = model.rows(); DurationModel(priors).load(rows)   # persisted as plain tuples
    """

    def __init__(self, priors: dict[Quality, float]) -> None:
        self._fallback = dict(priors)
        self._provider_priors: dict[PriorKey, float] = {}
        self._measured: dict[DurationKey, _Mean] = {}

    def set_prior(self, provider: str, kind: JobKind, quality: Quality, seconds: float) -> None:
        self._provider_priors[(provider, kind, quality)] = max(0.1, seconds)

    def expected(
        self,
        provider: str,
        kind: JobKind,
        quality: Quality,
        *,
        model: str = "",
        size: tuple[int, int] | None = None,
    ) -> float:
        """The measured mean for this key; where the model or size is not known, the best
        measured match (most samples); else the prior."""
        measured = self._best_match(provider, model, kind, quality, size_bucket(size))
        if measured is not None:
            return measured.mean
        return self._provider_priors.get((provider, kind, quality), self._fallback.get(quality, 4.0))

    def record(
        self,
        provider: str,
        kind: JobKind,
        quality: Quality,
        seconds: float,
        *,
        model: str = "",
        size: tuple[int, int] | None = None,
    ) -> None:
        if seconds > 0 and math.isfinite(seconds):
            key = (provider, model, kind, quality, size_bucket(size))
            self._measured.setdefault(key, _Mean()).add(seconds)

    def rows(self) -> list[DurationRow]:
        """Every learned duration as ``(provider, model, kind, quality, size_bucket, count, mean)``."""
        return [
            (provider, model, kind.value, quality.value, bucket, mean.count, mean.mean)
            for (provider, model, kind, quality, bucket), mean in self._measured.items()
        ]

    def load(self, rows: Iterable[Sequence[object]]) -> None:
        """Take learned durations back from ``rows()``; rows that make no sense are skipped."""
        for row in rows:
            try:
                provider, model, kind, quality, bucket, count, mean = row
                key = (str(provider), str(model), JobKind(str(kind)), Quality(str(quality)), str(bucket))
                number, seconds = int(float(str(count))), float(str(mean))
            except (TypeError, ValueError):
                continue
            if number >= 1 and seconds > 0 and math.isfinite(seconds):
                self._measured[key] = _Mean(count=number, mean=seconds)

    def _best_match(
        self, provider: str, model: str, kind: JobKind, quality: Quality, bucket: str
    ) -> _Mean | None:
        exact = self._measured.get((provider, model, kind, quality, bucket))
        if exact is not None and exact.count > 0:
            return exact
        if model and bucket:
            return None  # both known and never measured: the prior, not another model's time
        candidates = [
            mean
            for (p, m, k, q, b), mean in self._measured.items()
            if (p, k, q) == (provider, kind, quality)
            and (not model or m == model)
            and (not bucket or b == bucket)
        ]
        return max(candidates, key=lambda mean: mean.count, default=None)
