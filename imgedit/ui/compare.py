"""Before and after: a result over its source, cut at a slider the user drags or moves by keys.

``CompareDialog`` is built once per page and refilled on each ``open(result, source)``. The
source is drawn beneath, the result on top, clipped left of the handle (``static/compare.js``
moves it in the browser alone: pointer drags on the picture, and on the handle, a
``role="slider"``, ←/→ 5 %, PageUp/PageDown 25 %, Home/End; nothing reaches the server). Quasar
mounts a dialog's content afresh on each opening, so every opening starts at the middle.
User text (titles) reaches elements as prop values, never through a parsed props string.
"""

from __future__ import annotations

from nicegui import ui

from imgedit.models import ImageRecord
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import urls

SLIDER_NAME = "Compare with the original"
START = 50
HINT = "Drag across the picture, or focus the handle and use ← → (Home, End, Page Up, Page Down)."
MAX_HEIGHT_VH = 70
"""The picture's largest height, in hundredths of the window's height."""

STAGE_EVENTS = ("pointerdown", "pointermove", "pointerup", "pointercancel")


def _compare_js(function: str) -> str:
    """A browser-only handler: the event goes to ``imgeditCompare.<function>`` (static/compare.js)."""
    return f"(e) => window.imgeditCompare && imgeditCompare.{function}(e)"


class CompareDialog:
    """The before/after slider of one page.

    Usage::

        compare = CompareDialog(services)
        compare.open(result, source)
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.result: ImageRecord | None = None
        self.source: ImageRecord | None = None
        with (
            ui.dialog() as self.dialog,
            ui.card().classes("imgedit-dialog imgedit-compare q-pa-lg gap-3").mark("compare-dialog"),
        ):
            self.title = ui.label().classes("text-h6 ellipsis w-full").mark("compare-title")
            self.dialog.props["aria-labelledby"] = f"c{self.title.id}"
            # The frame keeps the result's shape (a style set here); the stage inside it is where
            # the browser writes the cut (--ie-compare), so a server update never resets it.
            with (
                ui.element("div").classes("imgedit-compare-frame").mark("compare-frame") as self.frame,
                ui.element("div").classes("imgedit-compare-stage").mark("compare-stage") as stage,
            ):
                self.before = ui.element("img").classes("imgedit-compare-before").mark("compare-before")
                self.after = ui.element("img").classes("imgedit-compare-after").mark("compare-after")
                for picture in (self.before, self.after):
                    picture.props["draggable"] = "false"
                ui.label("Before").classes("imgedit-compare-label imgedit-compare-label-before")
                ui.label("After").classes("imgedit-compare-label imgedit-compare-label-after")
                self.handle = ui.element("div").classes("imgedit-compare-handle").mark("compare-slider")
                self.handle.props.update(
                    {
                        "role": "slider",
                        "tabindex": "0",
                        "aria-label": SLIDER_NAME,
                        "aria-orientation": "horizontal",
                        "aria-valuemin": "0",
                        "aria-valuemax": "100",
                        "aria-valuenow": str(START),
                        "aria-valuetext": value_text(START),
                    }
                )
                self.handle.on("keydown", js_handler=_compare_js("key"))
                for event in STAGE_EVENTS:
                    stage.on(event, js_handler=_compare_js(event))
            with ui.row().classes("w-full items-center justify-between no-wrap gap-2"):
                ui.label(HINT).classes("imgedit-hint")
                ui.button("Close", on_click=self.dialog.close).props("flat no-caps color=ie-quiet").mark(
                    "compare-close"
                )

    def open(self, result: ImageRecord, source: ImageRecord) -> None:
        """Show ``result`` over ``source``, cut at the middle."""
        self.result, self.source = result, source
        store = self.services.store

        def lookup(image_id: str) -> ImageRecord | None:
            return store.get(image_id) if image_id in store else None

        result_title, source_title = fmt.image_title(result, lookup), fmt.image_title(source, lookup)
        self.title.set_text(f"Before and after: {result_title}")
        self.before.props["src"] = urls.image(source.id)
        self.before.props["alt"] = f"Before: {source_title}"
        self.after.props["src"] = urls.image(result.id)
        self.after.props["alt"] = f"After: {result_title}"
        # Numbers only: the result's own shape, at most MAX_HEIGHT_VH of the window high.
        width, height = max(1, result.width), max(1, result.height)
        self.frame.style(
            replace=f"aspect-ratio: {width} / {height}; "
            f"width: min(100%, calc({MAX_HEIGHT_VH}vh * {width / height:.5f}))"
        )
        self.dialog.open()


def value_text(percent: int) -> str:
    """What a screen reader says for the handle's place (static/compare.js says the same)."""
    return f"{percent} % before, {100 - percent} % after"
