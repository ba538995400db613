"""Small element changes sent to the browser as one compact message per tick.

NiceGUI sends a changed element whole (tag, classes, style, every prop, its children's ids and
its event listeners), and each write to its observable props or bindable text costs tens of
microseconds of bookkeeping. The 1-second tick changes a few values on up to hundreds of cards
and tray rows, so it writes them through a ``Patch`` instead:

- the element's state on the server is set directly, so a later full update, a reload, and the
  simulated user of the tests all see the true value;
- the browser gets ``[[element id, key, value, key, value, ...], ...]`` in one ``run_javascript``
  message (each element's changes together), which
  ``imgeditPatch`` in ``static/imgedit.js`` writes into the element store NiceGUI's own updates
  go to: Vue redraws exactly as after a full update, only the bytes and the work are smaller.

Rules that keep the browser true:
- a key written through a patch (a prop, or an element's text) is changed through the patch
  only, never also through NiceGUI (``el.props[key] = ...``, ``set_text``). Otherwise an older
  patch could arrive after a newer full update (both wait in the outbox while a tab is offline);
- values are plain JSON scalars (str, int, float, bool) or None (removes a prop);
- an element being built is written through ``UNSENT``: its first (whole) update carries the
  values, since NiceGUI serialises an element when it sends it, not when it is queued.

Nothing here parses text into props: user text travels as a JSON value.
"""

from __future__ import annotations

from typing import Any

from nicegui import Client, ui
from nicegui.json import dumps

_ABSENT = object()
_set, _delete = dict.__setitem__, dict.__delitem__
"""The plain dict's methods: no observer, no full update (the patch sends the change)."""
TEXT = "@text"
"""The key of an element's text in a patch (no prop can be named so)."""
Scalar = str | int | float | bool | None


class Patch:
    """The element changes one tick makes in one tab, sent at ``flush``.

    ``Patch(None)`` only writes: for elements being built, whose first (whole) update carries
    every value anyway."""

    def __init__(self, client: Client | None) -> None:
        self._client = client
        self._ops: dict[int, list[Any]] = {}
        """Per element id: key, value, key, value, ... in the order they were set."""

    def prop(self, element: ui.element, key: str, value: Scalar) -> None:
        """Set (or, with None, remove) a prop; nothing is sent if it already has this value."""
        props = element.props
        if value is None:
            if key not in props:
                return
            dict.__delitem__(props, key)  # the plain dict: no observer, no full update
        elif key in props and props[key] == value and type(props[key]) is type(value):
            return
        else:
            dict.__setitem__(props, key, value)
        if self._client is not None:
            self._note(element.id, key, value)

    def props(self, element: ui.element, values: dict[str, Scalar]) -> bool:
        """``prop`` for each of ``values``; whether any of them changed.

        The tick calls this for every card that moved: one ``get`` per key, and the plain
        dict's methods bound once (``_set``, ``_delete``)."""
        props = element.props
        get = props.get
        ops: list[Any] | None = None
        changed = False
        for key, value in values.items():
            old = get(key, _ABSENT)
            if value is None:
                if old is _ABSENT:
                    continue
                _delete(props, key)
            elif old == value and type(old) is type(value):
                continue
            else:
                _set(props, key, value)
            changed = True
            if self._client is None:
                continue
            if ops is None:
                ops = self._ops.setdefault(element.id, [])
            ops += (key, value)
        return changed

    def text(self, element: ui.element, text: str) -> None:
        """Set the text of a ``LiveLabel`` or of a plain element; nothing is sent if unchanged."""
        if element._text == text:
            return
        element._text = text  # what NiceGUI sends and the simulated user reads (LiveLabel.text)
        if self._client is not None:
            self._note(element.id, TEXT, text)

    def _note(self, element_id: int, key: str, value: Scalar) -> None:
        ops = self._ops.get(element_id)
        if ops is None:
            self._ops[element_id] = [key, value]
        else:
            ops += (key, value)

    @property
    def pending(self) -> int:
        """Changes waiting for ``flush``."""
        return sum(len(ops) for ops in self._ops.values()) // 2

    def flush(self) -> None:
        """Send what this tick changed, as one message (nothing if nothing changed)."""
        client, ops = self._client, self._ops
        if not ops:
            return
        self._ops = {}
        if client is None or client.is_deleted:
            return
        code = f"window.imgeditPatch && imgeditPatch({dumps([[key, *kv] for key, kv in ops.items()])})"
        # What ``client.run_javascript`` does when not awaited, minus a background task per tick.
        client.outbox.enqueue_message("run_javascript", {"code": code}, client.id)


UNSENT = Patch(None)
"""Writes only: for elements being built."""


class LiveLabel(ui.label):
    """A label whose text the tick changes through a ``Patch`` (see the module's rules). Its
    text is a plain attribute, not a bindable property: it cannot be bound, and a patch writes
    it with one assignment instead of NiceGUI's binding bookkeeping. ``set_text`` still sends a
    full update, as for any label."""

    @property  # type: ignore[override]
    def text(self) -> str:
        return self._text or ""

    @text.setter
    def text(self, text: str) -> None:
        self._text = text
        self.update()
