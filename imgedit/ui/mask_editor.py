"""The "Select area" of the Edit dialog: the painter, the area's summary, and the route the mask
comes in by.

The painter is a maximized dialog over the Edit dialog: the picture fitted to the screen with a
canvas over it, where the user paints (brush, with a size), removes (Eraser), drags rectangles,
or places a box with the keyboard; Undo (also Ctrl+Z) and Clear. All of that runs in the browser
(``static/mask.js``), which keeps each action in the picture's own pixels; "Done" draws the mask
at the picture's full size (the kept form of ``imgedit.masks``: transparent where painted) and
POSTs it to ``/media/masks/upload?image=<id>&ticket=<token>``, not over the websocket, whose
messages are limited in size. The route checks it through ``Studio.prepare_mask`` and answers
the mask id, or the ``InvalidRequest`` message to show (JSON ``{"detail": ...}``).

Tickets tie an upload to the page that opened the painter: each editor holds a random token,
known only to its page, that dies with the page's client; with a password, a ticket also works
only for the signed-in session that made it. The route sits under ``/media/`` like the image
routes, so the Host check and the sign-in gate stand in front of it. A body over
``MAX_MASK_BYTES`` (20 MB) is refused with 413 before it is read whole.

Usage (the Edit dialog)::

    area = MaskEditor(services, on_change=dialog.offer_providers)   # the row after the picture
    area.reset(image)            # each open: no area
    area.keep(spec.mask)         # or the area a job had (the dialog opened from that job)
    studio.submit_edit(..., mask=area.mask_id)

``register_route(services)`` once, with the other media routes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import JSONResponse
from nicegui import Client, app, events, ui

from imgedit.errors import ImgEditError, InvalidRequest, NotFound
from imgedit.models import ImageRecord, is_valid_id
from imgedit.services import Services
from imgedit.ui import signin, urls

UPLOAD_PATH = "/media/masks/upload"
OUTLINE_PATH = "/media/masks/{}/outline"
"""A kept area's outline over transparency (the region edit's loading card draws it too)."""
MAX_MASK_BYTES = 20 * 1024 * 1024
"""A mask is a PNG of two colours: 20 MB holds one for a picture far larger than any we keep."""
HEADERS = {"Cache-Control": "no-store"}
BRUSH_SIZES = (4, 160)
BRUSH_SIZE = 32
KEYBOARD_HINT = (
    "Mouse, touch or pen: paint over the part to change, or drag a rectangle with Rectangle. "
    "Keyboard: Tab to the picture; arrow keys move the box, Shift + arrow keys resize it, "
    "Enter adds it to the area (removes it with Eraser on); Ctrl+Z undoes."
)
NONE_CAN = (
    "None of the configured providers can edit a selected area. Clear the area to edit the whole picture."
)


# -- tickets: which page may send a mask ---------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Ticket:
    """One painter's right to send masks: its page's client and, with a password, its session."""

    client_id: str
    session: str | None
    received: set[tuple[str, str]] = field(default_factory=set)
    """(image id, mask id) of the masks this page sent and the server kept."""


class Tickets:
    """Tickets by token. Usage: ``token = tickets.issue(client_id, session)``; ``tickets.get(token)``."""

    def __init__(self) -> None:
        self._by_token: dict[str, Ticket] = {}

    def issue(self, client_id: str, session: str | None) -> str:
        token = secrets.token_urlsafe(24)
        self._by_token[token] = Ticket(client_id=client_id, session=session)
        return token

    def get(self, token: str, *, session: str | None, guarded: bool) -> Ticket | None:
        """The ticket, while its page is open and (``guarded``) for its own session alone."""
        ticket = self._by_token.get(token)
        if ticket is None or ticket.client_id not in Client.instances:
            return None
        if guarded and (ticket.session is None or ticket.session != session):
            return None
        return ticket

    def drop(self, token: str) -> None:
        self._by_token.pop(token, None)

    def __len__(self) -> int:
        return len(self._by_token)


_tickets: Tickets | None = None


def _refusal(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=HEADERS)


def _request_session(request: Request) -> str | None:
    value = request.session.get("id") if "session" in request.scope else None
    return value if isinstance(value, str) else None


def register_route(services: Services) -> None:
    """Add ``POST /media/masks/upload`` (once, with the other media routes)."""
    global _tickets
    tickets = _tickets = Tickets()
    guarded = services.auth is not None

    @app.post(UPLOAD_PATH, include_in_schema=False)
    async def upload_mask(request: Request, image: str = "", ticket: str = "") -> JSONResponse:
        held = tickets.get(ticket, session=_request_session(request), guarded=guarded)
        if held is None:
            return _refusal(403, "This page can no longer send a selected area; reload it and select again.")
        if not is_valid_id(image) or image not in services.store:
            return _refusal(404, "That image is no longer in the gallery.")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_MASK_BYTES:
            return _refusal(413, f"The selected area is over {MAX_MASK_BYTES // (1024 * 1024)} MB.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_MASK_BYTES:  # a length that lied, or none given
                return _refusal(413, f"The selected area is over {MAX_MASK_BYTES // (1024 * 1024)} MB.")
        try:
            mask_id = await services.studio.prepare_mask(image, bytes(body))
        except NotFound:
            return _refusal(404, "That image is no longer in the gallery.")
        except InvalidRequest as exc:
            return _refusal(400, str(exc))
        except ImgEditError as exc:  # the data folder refused the write
            return _refusal(503, str(exc))
        except (OSError, ValueError, SyntaxError):  # Pillow's words for "not a picture it can read"
            return _refusal(400, "The selected area could not be read: it is not a PNG picture.")
        held.received.add((image, mask_id))
        return JSONResponse({"mask_id": mask_id}, headers=HEADERS)


def _js(call: str) -> str:
    """A browser-only handler: the event goes to ``imgeditMask.<call>`` (static/mask.js)."""
    return f"(e) => window.imgeditMask && imgeditMask.{call}"


# -- the editor ----------------------------------------------------------------------------------


class MaskEditor:
    """The area's row in the Edit dialog (Select area, or its preview with Change and Clear) and
    the painter dialog it opens. ``mask_id`` is "" while no area is set; ``on_change`` runs when
    it changes (the dialog offers only providers that can edit an area while one is set)."""

    def __init__(self, services: Services, *, on_change: Callable[[], None]) -> None:
        if _tickets is None:
            raise RuntimeError("mask_editor.register_route has not run")
        self.services = services
        self._on_change = on_change
        self.image: ImageRecord | None = None
        self.mask_id = ""
        client = ui.context.client
        session = signin.session_id_of(client) if services.auth is not None else None
        self._tickets = tickets = _tickets
        self._token = token = tickets.issue(client.id, session)
        client.on_delete(lambda: tickets.drop(token))

        with ui.element("div").classes("imgedit-area-row w-full").mark("area-row") as self.row:
            self.select_button = (
                ui.button("Select area", icon="highlight_alt", on_click=self.open)
                .props("outline no-caps color=ie-accent")
                .mark("select-area")
            )
            with ui.element("div").classes("imgedit-area-summary") as self.summary:
                self.preview = ui.element("canvas").classes("imgedit-area-preview").mark("area-preview")
                self.preview.props.update(role="img", width="160", height="120")
                self.preview.props["aria-label"] = "The selected area, over the picture"
                with ui.element("div").classes("imgedit-area-text"):
                    ui.label("Area selected").classes("imgedit-area-status").mark("area-status")
                    with ui.row().classes("gap-1"):
                        ui.button("Change area", icon="edit", on_click=self.open).props(
                            "flat dense no-caps color=ie-quiet"
                        ).mark("change-area")
                        ui.button("Clear area", icon="layers_clear", on_click=self.clear).props(
                            "flat dense no-caps color=ie-quiet"
                        ).mark("clear-area")
            self.note = ui.label(NONE_CAN).classes("imgedit-area-note").mark("area-none-can")
            self.note.props["role"] = "status"
        self.summary.set_visibility(False)
        self.note.set_visibility(False)
        self._build_painter()

    def _build_painter(self) -> None:
        with (
            ui.dialog().props("maximized").classes("imgedit-painter-dialog") as self.dialog,
            ui.card().classes("imgedit-painter").mark("painter") as card,
        ):
            self._root_id = f"c{card.id}"
            with ui.element("div").classes("imgedit-painter-bar"):
                self.title = ui.label("Select the area to change").classes("imgedit-painter-title")
                self.dialog.props["aria-labelledby"] = f"c{self.title.id}"
                with ui.element("div").classes("imgedit-painter-tools").props('role="toolbar"') as tools:
                    tools.props["aria-label"] = "Painting tools"
                    self._tool_button("Brush", "brush", "brush", "tool(e, 'brush')", pressed=True)
                    self._tool_button("Rectangle", "crop_square", "rect", "tool(e, 'rect')")
                    self._tool_button("Eraser", "format_color_reset", "eraser", "eraser(e)")
                    # A native range input: one focusable control with a role, a name and a value.
                    with ui.element("label").classes("imgedit-painter-size"):
                        ui.label("Size").classes("imgedit-painter-size-label")
                        size = ui.element("input").classes("imgedit-painter-slider").mark("brush-size")
                        size.props.update(type="range", min=BRUSH_SIZES[0], max=BRUSH_SIZES[1], step=2)
                        size.props["value"] = BRUSH_SIZE
                        size.props["aria-label"] = "Brush size in screen pixels"
                        size.on("input", js_handler=_js("size(e.target.value)"))
                    self._action_button("Undo", "undo", "undo", "Undo (Ctrl+Z)")
                    self._action_button("Clear", "delete_sweep", "clear", "Clear the whole area")
                with ui.element("div").classes("imgedit-painter-actions"):
                    ui.button("Cancel", on_click=self.dialog.close).props("flat no-caps color=ie-quiet").mark(
                        "painter-cancel"
                    )
                    done = ui.button("Done", icon="check").props("unelevated no-caps color=deep-purple-5")
                    done.on(
                        "click",
                        self._received,
                        js_handler="(e) => window.imgeditMask && imgeditMask.done(e, emit)",
                    )
                    done.mark("painter-done")
            with (
                ui.element("div").classes("imgedit-painter-stage").mark("painter-stage"),
                ui.element("div").classes("imgedit-painter-frame"),
            ):
                self.picture = ui.element("img").classes("imgedit-painter-image")
                self.picture.props.update(alt="", draggable="false")
                self.canvas = ui.element("canvas").classes("imgedit-painter-canvas").mark("painter-canvas")
                self.canvas.props.update(tabindex="0", role="application")
                self.canvas.props["aria-label"] = "The picture: select the area to change"
                for event in ("pointerdown", "pointermove", "pointerup", "pointercancel", "pointerleave"):
                    self.canvas.on(event, js_handler=_js("pointer(e)"))
                self.canvas.on("focus", js_handler=_js("focus(e)"))
                self.canvas.on("blur", js_handler=_js("focus(e)"))
                cursor = ui.element("div").classes("imgedit-painter-cursor")
                cursor.props.update(hidden="")
                cursor.props["aria-hidden"] = "true"
            hint = ui.label(KEYBOARD_HINT).classes("imgedit-painter-hint").mark("painter-hint")
            self.canvas.props["aria-describedby"] = f"c{hint.id}"
            self.error = ui.label().classes("imgedit-painter-error").mark("painter-error")
            self.error.props["role"] = "alert"
            status = ui.element("div").classes("imgedit-painter-status imgedit-sr-only")
            status.props.update(role="status")
            status.props["aria-live"] = "polite"
        self.dialog.on("keydown", js_handler=_js("key(e)"))

    def _tool_button(self, text: str, icon: str, tool: str, call: str, *, pressed: bool = False) -> None:
        button = ui.button(text, icon=icon).props("flat dense no-caps color=ie-quiet")
        button.classes("imgedit-painter-tool")
        button.props["data-tool"] = tool
        button.props["aria-pressed"] = "true" if pressed else "false"
        button.on("click", js_handler=_js(call))
        button.mark(f"tool-{tool}")

    def _action_button(self, text: str, icon: str, call: str, tip: str) -> None:
        button = ui.button(text, icon=icon).props("flat dense no-caps color=ie-quiet")
        button.props["title"] = tip
        button.on("click", js_handler=_js(f"{call}(e)"))
        button.mark(f"painter-{call}")

    # -- the area's life ---------------------------------------------------------------------------

    def reset(self, image: ImageRecord | None) -> None:
        """A fresh open of the Edit dialog: no area. ``None`` (a new image): no row at all."""
        self.image = image
        self.row.set_visibility(image is not None)
        self._set("")

    def open(self) -> None:
        """Open the painter on the image, afresh."""
        image = self.image
        if image is None:
            return
        self.error.set_text("")
        self.title.set_text(f"Select the area to change · {image.width}×{image.height}")
        self.picture.props["src"] = urls.image(image.id)
        self.dialog.open()
        query = f"?image={image.id}&ticket={self._token}"
        config = {
            "root": self._root_id,
            "width": image.width,
            "height": image.height,
            "upload": urls.prefixed(UPLOAD_PATH + query),
            "preview": f"c{self.preview.id}",
        }
        self.dialog.client.run_javascript(f"window.imgeditMask && imgeditMask.open({json.dumps(config)})")

    def clear(self) -> None:
        self._set("")

    def keep(self, mask_id: str) -> None:
        """Set an area kept earlier (a job's ``spec.mask``, e.g. the Edit dialog opened to run a
        region edit again): shown as if just painted, its preview the picture with the area's
        outline (``OUTLINE_PATH``, served by ``imgedit/ui/mask_outline.py``)."""
        image = self.image
        if image is None or not mask_id:
            self._set("")
            return
        self._set(mask_id)
        config = {
            "preview": f"c{self.preview.id}",
            "picture": urls.thumb(image.id),
            "outline": urls.prefixed(OUTLINE_PATH.format(mask_id)),
        }
        self.preview.client.run_javascript(f"window.imgeditMask && imgeditMask.preview({json.dumps(config)})")

    def say_none_can(self, none_can: bool) -> None:
        """Shown while an area is set and no configured provider can edit one."""
        self.note.set_visibility(none_can and bool(self.mask_id))

    def _received(self, event: events.GenericEventArguments) -> None:
        """The browser's answer to Done: the id the route kept, or why it did not."""
        answer = event.args if isinstance(event.args, dict) else {}
        mask_id, image = answer.get("mask_id"), self.image
        held = self._tickets.get(self._token, session=None, guarded=False)
        if (
            isinstance(mask_id, str)
            and image is not None
            and held is not None
            and (image.id, mask_id) in held.received
        ):
            self.dialog.close()
            self._set(mask_id)
            return
        error = answer.get("error")
        self.error.set_text(str(error) if error else "The selected area did not arrive; press Done again.")

    def _set(self, mask_id: str) -> None:
        changed = mask_id != self.mask_id
        self.mask_id = mask_id
        self.select_button.set_visibility(not mask_id)
        self.summary.set_visibility(bool(mask_id))
        if not mask_id:
            self.note.set_visibility(False)
        if changed:
            self._on_change()
