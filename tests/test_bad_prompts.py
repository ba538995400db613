"""The bad-prompt corpus of issue 6, typed into the New image dialog as a user would.

Each case is either refused with a message in the dialog (which stays open, nothing added) or
accepted: then the job completes and the gallery, the SQLite rows and the data dir hold exactly
one new image whose title is the text as typed (control characters dropped), shown as text.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from nicegui.testing import User

from imgedit.editing import MAX_PROMPT_CHARS
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import files_in, image_cards, open_dialogs

REFUSED = {
    "empty": ("", "Describe the image"),
    "whitespace": ("   \t  \n ", "Describe the image"),
    "only control characters": ("\x00\x01\x7f", "Describe the image"),
    "over the limit": ("circle " * (MAX_PROMPT_CHARS // 7 + 10), f"the limit is {MAX_PROMPT_CHARS}"),
}

ACCEPTED = {
    "html": ('<img src=x onerror="alert(1)"> a red <b>circle</b>', None),
    "script": ("<script>alert('x')</script> blue stripes", None),
    "backslash": ("a sun \\ moon", None),
    "every escape form": ("stars \\x41 \\u0041 \\U00000041 \\N{LATIN SMALL LETTER A} \\n \\t \\0 \\\\", None),
    "emoji": ("🌅 sunset over 🌊 waves 👍🏽", None),
    "rtl": ("שמש אדומה \u200f red sun", None),
    "control characters": ("red\x07 dots\x1b[31m and\r\n stripes", "red dots [31m and stripes"),
    "nul": ("a moon\x00 and stars", "a moon and stars"),
    "quotes": ("a \"quoted\" 'grid' `code`", None),
    "props-like": ('color=red :src="x" @click=alert(1)', None),
}


def rows(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        return sorted(db.execute("SELECT id, coalesce(prompt, '') FROM images").fetchall())


def snapshot_of(data_dir: Path) -> tuple[set[str], set[str], list[tuple[str, str]]]:
    return files_in(data_dir / "images"), files_in(data_dir / "thumbs"), rows(data_dir)


async def type_new_image(user: User, prompt: str) -> None:
    user.find(marker="new-image").click()
    # Typed text cannot hold some characters (NUL); set the value the browser would send.
    field = user.find(marker="prompt").elements.pop()
    field.value = prompt
    user.find("Generate").click()


@pytest.mark.parametrize(("prompt", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_prompt_that_cannot_be_used_is_refused_in_the_dialog(
    user: User, data_dir: Path, prompt: str, message: str
) -> None:
    await user.open("/")
    before = snapshot_of(data_dir)
    await type_new_image(user, prompt)
    field = user.find(marker="prompt").elements.pop()
    assert field.props.get("error") is True
    assert message in field.props["error-message"]
    assert len(open_dialogs(user)) == 1, "the dialog stays open with what was typed"
    assert app_services().registry.snapshots() == []
    assert snapshot_of(data_dir) == before


@pytest.mark.parametrize(("prompt", "shown"), ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_odd_but_usable_prompts_make_exactly_one_image_shown_as_text(
    user: User, data_dir: Path, prompt: str, shown: str | None
) -> None:
    await user.open("/")
    services = app_services()
    images, thumbs, before_rows = snapshot_of(data_dir)
    cards = len(image_cards(user))

    await type_new_image(user, prompt)
    assert open_dialogs(user) == []
    await eventually(lambda: len(image_cards(user)) == cards + 1, message="the new image")

    expected = shown if shown is not None else " ".join(prompt.split())
    record = services.store.list()[0]
    assert record.prompt == expected
    after_images, after_thumbs, after_rows = snapshot_of(data_dir)
    assert after_images - images == {f"{record.id}.png"} and images <= after_images
    assert after_thumbs - thumbs == {f"{record.id}.webp"}
    assert sorted(set(after_rows) - set(before_rows)) == [(record.id, expected)]
    # Shown as text: the label holds the characters, and no element was made from the markup.
    await user.should_see(expected)
    assert not [e for e in user.client.elements.values() if e.tag in {"script", "b"} or "onerror" in e.props]
