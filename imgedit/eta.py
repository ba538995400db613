"""Expected durations and the progress / ETA shown for a running job.

Two sources, in this order of trust:
- reported progress from the provider (a fraction of its work), which wins;
- estimated progress: elapsed / expected duration, eased so an overrun creeps toward 95 %
  instead of stalling at 99 % or jumping.

Expected durations start from priors (per provider × kind × quality) and become a running mean
of measured durations once jobs of that kind have completed. ``static/imgedit.js`` repeats
``eased_progress`` so the browser can advance estimated cards without server traffic: keep
the two in step. Must not import nicegui.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgedit.models import JobKind, Quality

EASE_KNEE = 0.85
"""Below this fraction of the expected time, estimated progress is linear."""
EASE_CEILING = 0.95
"""Estimated progress approaches this and never passes it."""
MAX_SHOWN_BEFORE_DONE = 0.99
"""No progress shown reaches 100 % before the job has completed."""


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


def remaining_seconds(elapsed: float, expected: float, reported: float | None) -> float:
    """Seconds left. With reported progress, the measured rate is trusted in proportion to it."""
    if reported is None or reported <= 0.0:
        return max(expected - elapsed, 0.0)
    reported = min(reported, 1.0)
    rate_left = elapsed * (1.0 - reported) / reported
    prior_left = expected * (1.0 - reported)
    return reported * rate_left + (1.0 - reported) * prior_left


@dataclass(slots=True)
class _Mean:
    count: int = 0
    mean: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        # A window of ~10 jobs: follows a machine that gets faster or slower without forgetting.
        weight = 1.0 / min(self.count, 10)
        self.mean += (value - self.mean) * weight


DurationKey = tuple[str, JobKind, Quality]


class DurationModel:
    """Expected job durations: a prior until measured, then the running mean of real durations.

    Usage::

        model = DurationModel(priors={Quality.LOW: 2.0, ...})
        model.expected("local", JobKind.EDIT, Quality.LOW)
        model.record("local", JobKind.EDIT, Quality.LOW, seconds=1.7)
    """

    def __init__(self, priors: dict[Quality, float]) -> None:
        self._fallback = dict(priors)
        self._provider_priors: dict[DurationKey, float] = {}
        self._measured: dict[DurationKey, _Mean] = {}

    def set_prior(self, provider: str, kind: JobKind, quality: Quality, seconds: float) -> None:
        self._provider_priors[(provider, kind, quality)] = max(0.1, seconds)

    def expected(self, provider: str, kind: JobKind, quality: Quality) -> float:
        key = (provider, kind, quality)
        measured = self._measured.get(key)
        prior = self._provider_priors.get(key, self._fallback.get(quality, 4.0))
        if measured is None or measured.count == 0:
            return prior
        # The first measurement is blended with the prior; from the third on it dominates.
        trust = min(measured.count / 3.0, 1.0)
        return trust * measured.mean + (1.0 - trust) * prior

    def record(self, provider: str, kind: JobKind, quality: Quality, seconds: float) -> None:
        if seconds > 0 and math.isfinite(seconds):
            self._measured.setdefault((provider, kind, quality), _Mean()).add(seconds)
