"""The cached ``expects_arguments`` answers what NiceGUI's own does, for every kind of handler."""

from __future__ import annotations

import functools
from typing import Any

from nicegui import helpers

from imgedit.ui import speedups


class Handlers:
    def with_event(self, event: Any) -> None: ...
    def without(self) -> None: ...
    def optional(self, event: Any = None) -> None: ...
    def varargs(self, *args: Any) -> None: ...

    @classmethod
    def klass(cls, event: Any) -> None: ...


def plain(event: Any) -> None: ...


def test_cached_answers_match_nicegui_for_every_kind_of_handler() -> None:
    speedups.install()
    assert helpers.expects_arguments is not speedups._original
    a, b = Handlers(), Handlers()
    handlers = [
        a.with_event, b.with_event, a.without, b.without, a.optional, a.varargs, Handlers.klass,
        plain, lambda: None, lambda e: None, functools.partial(plain), functools.partial(a.with_event, 1), print,
    ]  # fmt: skip
    for handler in handlers * 2:  # the second round answers from the cache
        assert helpers.expects_arguments(handler) == speedups._original(handler), handler
    assert helpers.expects_arguments(a.with_event) and not helpers.expects_arguments(b.without)
