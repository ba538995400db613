"""The gallery at 10,000 images through NiceGUI's simulated user: one page at first, search,
filters, favourites and multi-select at that size, and files lost behind the app's back."""

from __future__ import annotations

from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User

from imgedit.ui.image_grid import PAGE_SIZE
from tests.big_gallery import fill
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import marked, open_dialogs, shown_ids


@pytest.fixture
def ten_thousand(data_dir: Path) -> list[str]:
    """A data dir of 10,000 images (every 50th an edit "make it blue"), before the app starts:
    request it before ``user``."""
    return fill(data_dir, 10_000, prompt_every=50)


@pytest.fixture
def twenty(data_dir: Path) -> list[str]:
    return fill(data_dir, 20)


def text_of(user: User, marker: str) -> str:
    [element] = marked(user, marker)
    return str(element.text)  # type: ignore[attr-defined]


def visible(user: User, marker: str) -> bool:
    return any(e.visible for e in marked(user, marker))


async def test_ten_thousand_images_open_on_one_page_and_search_filters_and_selection_work(
    ten_thousand: list[str], user: User, data_dir: Path
) -> None:
    ids = ten_thousand
    newest_first = ids[::-1]
    edits = [ids[i] for i in range(0, 10_000, 50)][::-1]

    await user.open("/")
    assert shown_ids(user) == newest_first[:PAGE_SIZE]  # one page, not the gallery
    assert len(marked(user, "image-card")) == PAGE_SIZE
    assert text_of(user, "gallery-count") == "10,000 images"
    await user.should_see(f"Show more ({10_000 - PAGE_SIZE:,} older)")
    user.find(marker=f"image-{newest_first[2]}").click()
    await eventually(lambda: text_of(user, "image-position") == "3 of 10,000", message="its place")
    open_dialogs(user)[0].close()

    # Search: words in any case, all of them; the count says how many of how many.
    user.find(marker="search").type("BLUE make")
    await eventually(lambda: text_of(user, "gallery-count") == "200 of 10,000 images match", message="count")
    assert shown_ids(user) == edits[:PAGE_SIZE]
    user.find(marker="show-more").click()
    await eventually(lambda: shown_ids(user) == edits[: 2 * PAGE_SIZE], message="the next page of matches")

    # Filter by origin on top of the search: uploads never say "make it blue".
    user.find(marker="filter-origin").click()
    user.find("Uploads").click()
    await eventually(lambda: visible(user, "no-match"), message="the no-match note")
    assert shown_ids(user) == []
    user.find(marker="no-match-clear").click()
    await eventually(lambda: shown_ids(user) == newest_first[:PAGE_SIZE], message="everything again")
    assert text_of(user, "gallery-count") == "10,000 images"

    # Favourites: a star on the card, kept by the store, and the filter shows only starred ones.
    starred = [newest_first[3], newest_first[7]]
    for image_id in starred:
        user.find(marker=f"star-{image_id}").click()
    services = app_services()
    await eventually(lambda: all(services.store.get(i).favourite for i in starred), message="stars saved")
    [star] = marked(user, f"star-{starred[0]}")
    assert star.props["aria-pressed"] == "true"
    user.find(marker="filter-favourites").click()
    await eventually(lambda: shown_ids(user) == starred, message="only the favourites")
    assert text_of(user, "gallery-count") == "2 of 10,000 images match"
    user.find(marker="filter-favourites").click()
    await eventually(lambda: len(shown_ids(user)) == PAGE_SIZE, message="the whole gallery again")

    # Multi-select: one checkbox, then shift on another selects the range between them.
    user.find(marker=f"select-{newest_first[2]}").click()
    user.find(marker=f"select-{newest_first[6]}").trigger("click", {"shift": True})
    doomed = newest_first[2:7]
    await eventually(lambda: text_of(user, "selection-count") == "5 selected", message="a range of 5")
    assert all(marked(user, f"select-{i}")[0].props["aria-checked"] == "true" for i in doomed)
    assert marked(user, f"select-{newest_first[1]}")[0].props["aria-checked"] == "false"
    # While something is selected, a click on a card selects it instead of opening it.
    user.find(marker=f"image-{newest_first[0]}").click()
    await eventually(lambda: text_of(user, "selection-count") == "6 selected", message="6 selected")
    assert not open_dialogs(user)
    user.find(marker=f"select-{newest_first[0]}").click()
    user.find(marker="delete-selected").click()
    await user.should_see("Delete 5 images?")
    user.find(marker="confirm-delete-selected").click()
    await eventually(lambda: len(services.store) == 9_995, message="5 images deleted")
    await eventually(
        lambda: not any((data_dir / "images" / f"{i}.png").exists() for i in doomed), message="files gone"
    )
    await eventually(
        lambda: shown_ids(user) == [i for i in newest_first if i not in doomed][:PAGE_SIZE],
        message="their places filled from older images",
    )
    assert text_of(user, "gallery-count") == "9,995 images"
    assert not visible(user, "selection-bar")


async def test_select_all_shown_then_clear(twenty: list[str], user: User) -> None:
    await user.open("/")
    first = shown_ids(user)[0]
    user.find(marker=f"select-{first}").click()
    await eventually(lambda: visible(user, "selection-bar"), message="the selection bar")
    user.find(marker="select-all").click()
    await eventually(lambda: text_of(user, "selection-count") == "20 selected", message="all 20")
    user.find(marker="clear-selection").click()
    await eventually(lambda: not visible(user, "selection-bar"), message="the bar gone")
    assert all(e.props["aria-checked"] == "false" for e in marked(user, "select"))
    # With nothing selected a card opens its dialog again.
    user.find(marker=f"image-{first}").click()
    await eventually(lambda: bool(open_dialogs(user)), message="the image dialog")
    assert isinstance(open_dialogs(user)[0], ui.dialog)


@pytest.fixture
def one_lost(data_dir: Path) -> list[str]:
    ids = fill(data_dir, 20)
    (data_dir / "images" / f"{ids[-1]}.png").unlink()  # the newest image's file is gone
    return ids


async def test_a_file_deleted_behind_the_apps_back_drops_its_card_after_start(
    one_lost: list[str], user: User
) -> None:
    ids = one_lost
    await user.open("/")
    await eventually(lambda: ids[-1] not in shown_ids(user), message="the lost image's card to go")
    assert shown_ids(user) == ids[-2::-1]
    assert text_of(user, "gallery-count") == "19 images"


async def test_a_search_is_plain_text_and_cut_at_its_limit(twenty: list[str], user: User) -> None:
    from imgedit.ui.image_grid import SEARCH_MAX

    await user.open("/")
    user.find(marker="search").type("scale-0001")
    await eventually(lambda: text_of(user, "gallery-count") == "10 of 20 images match", message="10 match")
    user.find(marker="search").clear().type(".*")  # a pattern would match everything; text matches none
    await eventually(lambda: text_of(user, "gallery-count") == "0 of 20 images match", message="none match")
    [search] = marked(user, "search")
    assert search.props["maxlength"] == SEARCH_MAX  # the browser stops at the limit
    user.find(marker="search").clear().type("scale-0001" + "x" * 500)  # a client that sends more anyway
    await eventually(lambda: text_of(user, "gallery-count") == "0 of 20 images match", message="cut, not refused")
