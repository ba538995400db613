"""``ImgEditGrid.target`` in ``static/imgedit.js`` (which card an arrow key moves focus to), run
under node on laid-out boxes: full rows, a short last row, wrapped rows of different heights."""

from __future__ import annotations

from tests.node import run_script

RUNNER = """
const grid = require(process.argv[1]);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(cases.map(([rects, i, key]) => grid.gridTarget(rects, i, key))));
"""


def laid_out(count: int, columns: int, width: float = 240, height: float = 250) -> list[dict[str, float]]:
    return [
        {
            "left": (i % columns) * (width + 18),
            "top": (i // columns) * (height + 18),
            "width": width,
            "height": height,
        }
        for i in range(count)
    ]


def targets(cases: list[tuple[list[dict[str, float]], int, str]]) -> list[int | None]:
    return run_script(RUNNER, cases)  # type: ignore[no-any-return]


def test_arrow_keys_follow_the_layout() -> None:
    five_by_three = laid_out(12, 5)  # rows of 5, 5 and 2
    cases = [
        (five_by_three, 0, "ArrowRight"),
        (five_by_three, 4, "ArrowRight"),  # end of a row: on to the next card
        (five_by_three, 5, "ArrowLeft"),
        (five_by_three, 0, "ArrowLeft"),  # the first stays
        (five_by_three, 11, "ArrowRight"),  # the last stays
        (five_by_three, 2, "ArrowDown"),
        (five_by_three, 7, "ArrowUp"),
        (five_by_three, 0, "ArrowUp"),  # no row above
        (five_by_three, 8, "ArrowDown"),  # short last row: the nearest card below
        (five_by_three, 11, "ArrowDown"),
        (five_by_three, 6, "Home"),
        (five_by_three, 6, "End"),
        (five_by_three, 6, "Enter"),
        ([], 0, "ArrowDown"),
    ]
    assert targets(cases) == [1, 5, 4, 0, 11, 7, 2, 0, 11, 11, 0, 11, None, None]


def test_cards_of_different_heights_still_form_rows() -> None:
    rects = laid_out(6, 3)
    rects[1]["height"] = 300  # a taller card (a two-line lineage) pushes nothing out of its row
    rects[3]["top"] += 50
    rects[4]["top"] += 50
    rects[5]["top"] += 50
    assert targets([(rects, 1, "ArrowDown"), (rects, 4, "ArrowUp"), (rects, 0, "ArrowDown")]) == [4, 1, 3]
