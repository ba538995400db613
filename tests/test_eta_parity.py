"""``static/imgedit.js`` against ``imgedit/eta.py`` and ``imgedit/ui/format.py``: the same inputs
through both, run under node, must give the same bar, clock and ETA text, so the browser and the
server never tell a card's story differently."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from imgedit import eta
from imgedit.ui import format as fmt
from tests.node import SCRIPT, run_script

RUNNER = """
const eta = require(process.argv[1]);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {
  constants: [eta.KNEE, eta.CEILING, eta.MAX_BEFORE_DONE, eta.ALMOST_DONE],
  eased: cases.eased.map(([e, x]) => eta.eased(e, x)),
  shown: cases.shown.map(([e, x, r, m, f, fin]) => eta.shownProgress(e, x, r, m, f, fin)),
  clock: cases.clock.map((s) => eta.clock(s)),
  eta: cases.eta.map(([stage, left, p]) => eta.etaText(stage, left, p)),
};
process.stdout.write(JSON.stringify(out));
"""

TIMES = [0.0, 0.2, 1.0, 3.4, 6.8, 7.99, 8.0, 10.0, 12.9, 20.0, 40.0, 400.0, -1.0]
EXPECTED = [0.0, 0.3, 4.0, 12.9, 60.0, -2.0]
STAGES = ["queued", "starting", "waiting", "initializing", "processing", "finalizing", "completed", "failed"]


def run_js(cases: dict[str, Any], script: Path = SCRIPT) -> dict[str, Any]:
    return run_script(RUNNER, cases, script)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    shown = [
        [elapsed, expected, reported, milestone, floor, finalizing]
        for elapsed, expected, reported, milestone, floor, finalizing in itertools.product(
            TIMES,
            EXPECTED,
            [None, 0.05, 0.5, 0.95],
            [None, 0.05, 0.35, 0.65],
            [0.0, 0.4, 0.99],
            [False, True],
        )
    ]
    lefts = [None, 0.0, 0.2, 0.99, 1.0, 1.5, 59.5, 61.0, 3599.0, 3725.0]
    return {
        "eased": [[e, x] for e in TIMES for x in EXPECTED],
        "shown": shown,
        "clock": [0, 0.4, 1, 59.9, 60, 61, 599, 3599, 3600, 3725.5, 86399, -5],
        "eta": [[s, left, p] for s in STAGES for left in lefts for p in (0.0, 0.26, 0.45, 0.84, 0.85, 0.95)],
    }


@pytest.fixture(scope="module")
def js(cases: dict[str, Any]) -> dict[str, Any]:
    return run_js(cases)


def test_the_constants_are_the_same(js: dict[str, Any]) -> None:
    assert js["constants"] == [eta.EASE_KNEE, eta.EASE_CEILING, eta.MAX_SHOWN_BEFORE_DONE, eta.ALMOST_DONE]


def test_estimated_progress_is_the_same(cases: dict[str, Any], js: dict[str, Any]) -> None:
    python = [eta.eased_progress(e, x) for e, x in cases["eased"]]
    assert js["eased"] == pytest.approx(python, abs=1e-12)


def test_the_shown_bar_is_the_same(cases: dict[str, Any], js: dict[str, Any]) -> None:
    python = [
        eta.shown_progress(e, x, reported=r, milestone=m, floor=f, finalizing=fin)
        for e, x, r, m, f, fin in cases["shown"]
    ]
    assert js["shown"] == pytest.approx(python, abs=1e-12)


def test_the_clock_reads_the_same(cases: dict[str, Any], js: dict[str, Any]) -> None:
    assert js["clock"] == [fmt.clock(s) for s in cases["clock"]]


def test_the_eta_text_is_the_same(cases: dict[str, Any], js: dict[str, Any]) -> None:
    python = [fmt.eta_phrase(stage, left, p) for stage, left, p in cases["eta"]]
    assert js["eta"] == python
    assert "almost done" not in {
        text
        for (stage, _left, p), text in zip(cases["eta"], python, strict=True)
        if p < eta.ALMOST_DONE and stage != "finalizing"
    }


def test_a_drift_would_be_caught(cases: dict[str, Any], tmp_path: Path) -> None:
    # The comparison has teeth: a copy of the script whose knee moved gives other numbers.
    drifted = tmp_path / "imgedit.js"
    drifted.write_text(SCRIPT.read_text().replace("KNEE = 0.85", "KNEE = 0.8"))
    python = [eta.eased_progress(e, x) for e, x in cases["eased"]]
    assert run_js(cases, drifted)["eased"] != pytest.approx(python, abs=1e-12)
