"""Estimated progress, remaining time and learned durations (imgedit.eta)."""

from __future__ import annotations

import itertools
import math

import pytest

from imgedit.eta import (
    EASE_CEILING,
    EASE_KNEE,
    DurationModel,
    eased_progress,
    remaining_seconds,
    size_bucket,
)
from imgedit.models import JobKind, Quality

EXPECTED = 8.0
PRIORS = {Quality.LOW: 2.0, Quality.MEDIUM: 5.0, Quality.HIGH: 12.0}


# -- eased_progress ------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 0.7, EASE_KNEE - 0.001])
def test_estimated_progress_is_elapsed_over_expected_below_the_knee(fraction: float) -> None:
    assert eased_progress(fraction * EXPECTED, EXPECTED) == pytest.approx(fraction, abs=1e-12)


def test_estimated_progress_does_not_jump_at_the_knee() -> None:
    knee_time = EASE_KNEE * EXPECTED
    below = eased_progress(knee_time - 1e-4, EXPECTED)
    at = eased_progress(knee_time, EXPECTED)
    above = eased_progress(knee_time + 1e-4, EXPECTED)

    assert abs(above - below) < 1e-3
    assert below < at < above
    # The slope just after the knee matches the linear part (no visible kink in speed).
    slope_before = (at - eased_progress(knee_time - 0.01, EXPECTED)) / 0.01
    slope_after = (eased_progress(knee_time + 0.01, EXPECTED) - at) / 0.01
    assert slope_after == pytest.approx(slope_before, rel=0.1)


def test_estimated_progress_strictly_increases_over_time() -> None:
    times = [i * 0.01 * EXPECTED for i in range(301)]  # up to three times the expected duration
    values = [eased_progress(t, EXPECTED) for t in times]
    assert all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("overrun", [1.0, 1.5, 2.0, 5.0, 100.0, 1e6])
def test_estimated_progress_never_passes_the_ceiling(overrun: float) -> None:
    value = eased_progress(overrun * EXPECTED, EXPECTED)
    assert value <= EASE_CEILING
    assert value >= EASE_KNEE  # once past the expected time, it is past the knee too


def test_estimated_progress_stays_below_the_ceiling_on_a_moderate_overrun() -> None:
    assert eased_progress(2 * EXPECTED, EXPECTED) < EASE_CEILING


@pytest.mark.parametrize(("elapsed", "expected"), [(5.0, 0.0), (5.0, -1.0), (-3.0, EXPECTED)])
def test_estimated_progress_is_zero_for_nonsense_inputs(elapsed: float, expected: float) -> None:
    assert eased_progress(elapsed, expected) == 0.0


# -- remaining_seconds ---------------------------------------------------------------------


@pytest.mark.parametrize(("elapsed", "left"), [(0.0, 8.0), (2.0, 6.0), (7.5, 0.5)])
def test_without_reported_progress_the_prior_counts_down(elapsed: float, left: float) -> None:
    assert remaining_seconds(elapsed, EXPECTED, None) == pytest.approx(left)


def test_without_reported_progress_an_overrun_is_zero_not_negative() -> None:
    assert remaining_seconds(20.0, EXPECTED, None) == 0.0


def test_zero_reported_progress_is_treated_as_no_report() -> None:
    assert remaining_seconds(3.0, EXPECTED, 0.0) == remaining_seconds(3.0, EXPECTED, None)


def test_reported_completion_leaves_nothing() -> None:
    assert remaining_seconds(3.0, EXPECTED, 1.0) == pytest.approx(0.0)


def test_a_slow_job_with_reported_progress_gets_a_longer_eta_than_the_prior() -> None:
    # Half done after 10 s of an expected 4 s: the measured rate says 10 s more, the prior 0.
    left = remaining_seconds(10.0, 4.0, 0.5)
    assert left > 4.0
    assert left <= 10.0


def test_a_fast_job_with_reported_progress_gets_a_shorter_eta_than_the_prior() -> None:
    # 90 % after 1 s of an expected 10 s: far less than the prior's 9 s left.
    left = remaining_seconds(1.0, 10.0, 0.9)
    assert left < 9.0 * 0.5
    assert left > 0.0


def test_reported_progress_is_trusted_more_the_further_it_goes() -> None:
    # Same measured rate (1 % per second) on a 4 s prior: the later the report, the closer the
    # ETA comes to what the rate says.
    early = remaining_seconds(10.0, 4.0, 0.1)
    late = remaining_seconds(80.0, 4.0, 0.8)
    rate_early, rate_late = 90.0, 20.0
    assert abs(late - rate_late) / rate_late < abs(early - rate_early) / rate_early


def test_more_reported_progress_at_the_same_time_means_less_left() -> None:
    values = [remaining_seconds(5.0, EXPECTED, r) for r in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)]
    assert all(b < a for a, b in itertools.pairwise(values))


# -- DurationModel -------------------------------------------------------------------------


def test_the_prior_for_the_quality_is_used_before_any_measurement() -> None:
    model = DurationModel(PRIORS)
    for quality, seconds in PRIORS.items():
        assert model.expected("local", JobKind.EDIT, quality) == seconds


def test_a_quality_without_a_prior_falls_back_to_a_positive_default() -> None:
    model = DurationModel({Quality.LOW: 2.0})
    assert model.expected("local", JobKind.EDIT, Quality.HIGH) > 0


def test_a_provider_prior_overrides_the_quality_prior_for_that_provider_only() -> None:
    model = DurationModel(PRIORS)
    model.set_prior("remote", JobKind.GENERATE, Quality.LOW, 30.0)
    assert model.expected("remote", JobKind.GENERATE, Quality.LOW) == 30.0
    assert model.expected("remote", JobKind.EDIT, Quality.LOW) == PRIORS[Quality.LOW]
    assert model.expected("local", JobKind.GENERATE, Quality.LOW) == PRIORS[Quality.LOW]


def test_the_first_measurement_is_used_at_once() -> None:
    # A 7.9 s job after a 2 s prior: the next estimate is 7.9 s, not something in between.
    model = DurationModel(PRIORS)
    model.record("local", JobKind.EDIT, Quality.MEDIUM, 7.9)
    assert model.expected("local", JobKind.EDIT, Quality.MEDIUM) == pytest.approx(7.9)


def test_measurements_are_kept_per_provider_kind_and_quality() -> None:
    model = DurationModel(PRIORS)
    model.record("local", JobKind.EDIT, Quality.MEDIUM, 20.0)
    assert model.expected("local", JobKind.EDIT, Quality.LOW) == PRIORS[Quality.LOW]
    assert model.expected("local", JobKind.GENERATE, Quality.MEDIUM) == PRIORS[Quality.MEDIUM]
    assert model.expected("other", JobKind.EDIT, Quality.MEDIUM) == PRIORS[Quality.MEDIUM]


def test_repeated_measurements_are_averaged() -> None:
    model = DurationModel(PRIORS)
    for seconds in (8.0, 10.0, 12.0):
        model.record("local", JobKind.EDIT, Quality.LOW, seconds)
    assert model.expected("local", JobKind.EDIT, Quality.LOW) == pytest.approx(10.0)


def test_the_model_follows_a_machine_that_got_faster() -> None:
    model = DurationModel(PRIORS)
    for _ in range(20):
        model.record("local", JobKind.EDIT, Quality.HIGH, 30.0)
    assert model.expected("local", JobKind.EDIT, Quality.HIGH) == pytest.approx(30.0)
    for _ in range(40):
        model.record("local", JobKind.EDIT, Quality.HIGH, 3.0)
    assert model.expected("local", JobKind.EDIT, Quality.HIGH) == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("nonsense", [0.0, -4.0, math.nan, math.inf, -math.inf])
def test_nonsense_measurements_are_ignored(nonsense: float) -> None:
    model = DurationModel(PRIORS)
    model.record("local", JobKind.EDIT, Quality.MEDIUM, nonsense)
    assert model.expected("local", JobKind.EDIT, Quality.MEDIUM) == PRIORS[Quality.MEDIUM]
    # ... and do not poison later real ones either.
    for _ in range(3):
        model.record("local", JobKind.EDIT, Quality.MEDIUM, 7.0)
    assert model.expected("local", JobKind.EDIT, Quality.MEDIUM) == pytest.approx(7.0)


def test_a_nonsense_prior_is_clamped_to_something_positive() -> None:
    model = DurationModel(PRIORS)
    model.set_prior("local", JobKind.EDIT, Quality.LOW, -5.0)
    assert model.expected("local", JobKind.EDIT, Quality.LOW) > 0


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((512, 512), "≤0.5MP"),
        ((1024, 768), "≤1MP"),
        ((1024, 1024), "≤1MP"),
        ((1536, 1024), "≤2MP"),
        ((2048, 2048), ">2MP"),
        (None, ""),
    ],
)
def test_size_buckets_follow_the_output_size(size: tuple[int, int] | None, bucket: str) -> None:
    assert size_bucket(size) == bucket


def test_measurements_are_kept_per_model_and_size_bucket() -> None:
    model = DurationModel(PRIORS)
    model.set_prior("openai", JobKind.GENERATE, Quality.HIGH, 80.0)
    model.record("openai", JobKind.GENERATE, Quality.HIGH, 30.0, model="gpt-image-1-mini", size=(1024, 1024))
    model.record("openai", JobKind.GENERATE, Quality.HIGH, 90.0, model="gpt-image-1.5", size=(1024, 1024))
    model.record("openai", JobKind.GENERATE, Quality.HIGH, 150.0, model="gpt-image-1.5", size=(1536, 1024))

    def expected(name: str, size: tuple[int, int]) -> float:
        return model.expected("openai", JobKind.GENERATE, Quality.HIGH, model=name, size=size)

    assert expected("gpt-image-1-mini", (1024, 1024)) == pytest.approx(30.0)
    assert expected("gpt-image-1.5", (1024, 1024)) == pytest.approx(90.0)
    assert expected("gpt-image-1.5", (1536, 1024)) == pytest.approx(150.0)
    assert expected("gpt-image-1-mini", (1536, 1024)) == pytest.approx(80.0)  # not measured: the prior
    # Callers that know neither model nor size still get the prior or a measured value, never 0.
    assert model.expected("openai", JobKind.GENERATE, Quality.HIGH) > 0
    assert model.expected("openai", JobKind.GENERATE, Quality.LOW) == PRIORS[Quality.LOW]


def test_rows_round_trip_through_plain_tuples() -> None:
    model = DurationModel(PRIORS)
    model.record("local", JobKind.EDIT, Quality.LOW, 3.0, size=(800, 600))
    model.record("local", JobKind.EDIT, Quality.LOW, 5.0, size=(800, 600))
    model.record("openai", JobKind.GENERATE, Quality.HIGH, 60.0, model="gpt-image-1.5", size=(1024, 1024))
    rows = model.rows()
    assert sorted(rows) == [
        ("local", "", "edit", "low", "≤0.5MP", 2, pytest.approx(4.0)),
        ("openai", "gpt-image-1.5", "generate", "high", "≤1MP", 1, pytest.approx(60.0)),
    ]
    assert all(isinstance(value, str | int | float) for row in rows for value in row)

    again = DurationModel(PRIORS)
    again.load([*rows, ("bad", "", "nonsense", "low", "", 1, 2.0), ("x", "", "edit", "low", "", 1, -1.0)])
    assert sorted(again.rows()) == sorted(rows)
    assert again.expected("local", JobKind.EDIT, Quality.LOW, size=(800, 600)) == pytest.approx(4.0)
    # ...and learning goes on from the loaded count: a third sample weighs a third.
    again.record("local", JobKind.EDIT, Quality.LOW, 7.0, size=(800, 600))
    assert again.expected("local", JobKind.EDIT, Quality.LOW, size=(800, 600)) == pytest.approx(5.0)
