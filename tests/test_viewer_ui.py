"""The image viewer (issue 9) through NiceGUI's simulated user: Previous / Next in the image dialog
and in the full-size viewer walk the gallery's order in place, the arrows are named and disabled
at the ends, ArrowLeft / ArrowRight (what static/viewer.js emits) do the same, and a page that
knows the position shows "n of m". Zoom and pan live in the browser: tests/test_viewer_browser.py.
"""

from __future__ import annotations

from nicegui import events, ui
from nicegui.testing import User

from imgedit.models import ImageOrigin, ImageRecord
from imgedit.ui.dialogs import ImageDialog, image_title
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import _png, marked, open_dialogs


def only(user: User, marker: str) -> ui.element:
    (element,) = marked(user, marker)
    return element


def title_shown(user: User) -> str:
    return str(only(user, "image-title").text)


def arrows(user: User, where: str = "image") -> tuple[ui.button, ui.button]:
    newer, older = only(user, f"{where}-newer"), only(user, f"{where}-older")
    assert isinstance(newer, ui.button) and isinstance(older, ui.button)
    return newer, older


def at_end(arrow: ui.button) -> bool:
    """Disabled for everyone (aria-disabled, dimmed), yet it keeps the keyboard focus."""
    return arrow.props.get("aria-disabled") == "true" and "imgedit-arrow-end" in arrow.classes


def press(user: User, marker: str) -> None:
    """Click the one element marked ``marker``."""
    user.find(marker=marker).click()


def said(user: User) -> list[str]:
    """What the dialogs' own polite regions hold (the gallery's live region is elsewhere)."""
    assert user.client is not None
    return [
        e.text
        for e in user.client.elements.values()
        if isinstance(e, ui.label) and e.props.get("role") == "status" and "live" not in e._markers
    ]


async def test_next_and_previous_walk_the_gallery_in_place(user: User) -> None:
    await user.open("/")
    services = app_services()
    order = services.store.list()  # the gallery's order: newest first
    assert len(order) >= 3, "the samples give a gallery to walk"
    titles = [image_title(r, services) for r in order]
    user.find(marker=f"image-{order[0].id}").click()
    (dialog,) = open_dialogs(user)
    assert title_shown(user) == titles[0]

    newer, older = arrows(user)
    assert newer.props["aria-label"] == "Previous image (newer)"
    assert older.props["aria-label"] == "Next image (older)"
    assert newer.visible and older.visible
    assert at_end(newer), "nothing is newer than the newest image"
    assert not at_end(older)

    press(user, "image-older")
    assert title_shown(user) == titles[1]
    assert open_dialogs(user) == [dialog], "the same dialog, still open: updated in place"
    picture = next(e for e in dialog.descendants() if e.tag == "img" and "imgedit-dialog-image" in e.classes)
    assert picture.props["src"] == f"/media/thumbs/{order[1].id}"
    assert not at_end(newer) and not at_end(older)
    assert any(titles[1] in text for text in said(user)), "the new title is read out"

    press(user, "image-older")
    assert title_shown(user) == titles[2]
    press(user, "image-newer")
    press(user, "image-newer")
    assert title_shown(user) == titles[0]
    assert at_end(newer)

    press(user, "image-picture")  # a click on the picture views it full size
    viewer = next(d for d in open_dialogs(user) if d is not dialog)
    assert any(e.props.get("src") == f"/media/images/{order[0].id}" for e in viewer.descendants())


async def test_the_oldest_image_disables_next(user: User) -> None:
    await user.open("/")
    services = app_services()
    order = services.store.list()
    oldest = order[-1]
    user.find(marker=f"image-{oldest.id}").click()
    newer, older = arrows(user)
    assert not at_end(newer) and at_end(older)
    press(user, "image-older")
    assert title_shown(user) == image_title(oldest, services), "Next at the end does nothing"
    (dialog,) = open_dialogs(user)
    # ArrowRight at the end: nothing moves; ArrowLeft goes on to the next newer.
    trigger_key(user, dialog, +1)
    assert title_shown(user) == image_title(oldest, services)
    trigger_key(user, dialog, -1)
    assert title_shown(user) == image_title(order[-2], services)


def trigger_key(user: User, dialog: ui.dialog, delta: int) -> None:
    """What static/viewer.js emits for ArrowRight (+1) or ArrowLeft (-1) in ``dialog``."""
    assert user.client is not None
    with user.client:
        for listener in dialog._event_listeners.values():
            if listener.type == "keydown":
                events.handle_event(
                    listener.handler,
                    events.GenericEventArguments(sender=dialog, client=user.client, args=delta),
                )


async def test_arrow_keys_in_the_dialog_and_in_the_full_size_viewer(user: User) -> None:
    await user.open("/")
    services = app_services()
    order = services.store.list()
    titles = [image_title(r, services) for r in order]
    user.find(marker=f"image-{order[0].id}").click()
    (dialog,) = open_dialogs(user)
    trigger_key(user, dialog, +1)
    assert title_shown(user) == titles[1]

    user.find("View").click()
    viewer = next(d for d in open_dialogs(user) if d is not dialog)
    image = next(e for e in viewer.descendants() if e.props.get("alt") == "full size")
    viewer_title = next(e for e in viewer.descendants() if "imgedit-viewer-title" in e.classes)
    assert image.props["src"] == f"/media/images/{order[1].id}"
    assert viewer_title.text == titles[1]

    trigger_key(user, viewer, +1)
    assert image.props["src"] == f"/media/images/{order[2].id}"
    assert viewer_title.text == titles[2]
    assert title_shown(user) == titles[2], "the dialog behind follows"
    newer, _older = arrows(user, "viewer")
    assert newer.props["aria-label"] == "Previous image (newer)"
    press(user, "viewer-newer")
    assert image.props["src"] == f"/media/images/{order[1].id}"

    # The neighbours' pictures are asked for ahead: full size in the viewer, thumbnails behind.
    fetched = {e.props.get("src") for e in viewer.descendants() if "imgedit-prefetch" in e.classes}
    assert fetched == {f"/media/images/{order[0].id}", f"/media/images/{order[2].id}"}
    fetched = {e.props.get("src") for e in dialog.descendants() if "imgedit-prefetch" in e.classes}
    assert fetched == {f"/media/thumbs/{order[0].id}", f"/media/thumbs/{order[2].id}"}

    # Named zoom controls (what they do happens in the browser).
    for marker, name in (
        ("zoom-in", "Zoom in"),
        ("zoom-fit", "Fit"),
        ("zoom-out", "Zoom out"),
        ("viewer-close", "Close the full-size view"),
    ):
        assert only(user, marker).props["aria-label"] == name
    assert only(user, "zoom-level").text == "Fit"


async def test_next_past_the_last_card_shown_brings_the_next_page(user: User) -> None:
    services = app_services()
    await user.open("/")
    for i in range(100):  # more than a page
        services.store.add_sync(_png(i), origin=ImageOrigin.UPLOAD, name=f"many-{i:03d}.png")
    await user.open("/")
    order = services.store.list()
    shown = len(marked(user, "image-card"))
    assert shown < len(order), "the gallery shows a first page"
    user.find(marker=f"image-{order[shown - 1].id}").click()
    assert not at_end(arrows(user)[1]), "older images exist beyond the page"
    press(user, "image-older")
    assert title_shown(user) == image_title(order[shown], services)
    await eventually(lambda: marked(user, f"image-{order[shown].id}"), message="its card is shown too")


async def test_a_page_that_knows_the_position_shows_it(user: User) -> None:
    """ImageDialog on its own, with a plain list for the order: "2 of 3" follows the arrows."""
    services = app_services()
    records: list[ImageRecord] = [
        services.store.add_sync(_png(i), origin=ImageOrigin.UPLOAD, name=f"walk-{i}.png") for i in range(3)
    ]

    def step(record: ImageRecord, delta: int) -> ImageRecord | None:
        index = [r.id for r in records].index(record.id) + delta
        return records[index] if 0 <= index < len(records) else None

    def position(record: ImageRecord) -> tuple[int, int]:
        return [r.id for r in records].index(record.id) + 1, len(records)

    async def do_nothing(record: ImageRecord) -> None:
        return None

    @ui.page("/viewer-position")
    def page() -> None:
        dialog = ImageDialog(
            services, on_edit=lambda r: None, on_delete=do_nothing, step=step, position=position
        )
        ui.button("Show the first", on_click=lambda: dialog.open(records[0])).mark("show-first")

    await user.open("/viewer-position")
    press(user, "show-first")
    await user.should_see("1 of 3")
    press(user, "image-older")
    assert only(user, "image-position").text == "2 of 3"
    assert only(user, "viewer-position").text == "2 of 3"
    assert any(text.startswith("walk-1.png") and "2 of 3" in text for text in said(user))


async def test_without_an_order_there_are_no_arrows(user: User) -> None:
    """The history page opens an image on its own: nothing to walk, no arrows shown."""
    from tests.test_history import chain_of_edits, job_row

    services = app_services()
    original, first, _second, _third = await chain_of_edits(services.store)
    services.store.db.execute(*job_row(prompt="sepia", source=original.id, result=first.id))
    await user.open("/history")
    user.find(marker=f"open-after-{first.id}").click()
    newer, older = arrows(user)
    assert not newer.visible and not older.visible
