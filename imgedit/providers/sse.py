"""Server-sent events (``text/event-stream``), for any provider that streams: the parser and the
one loop that reads a response's events, with transport errors mapped while it iterates.

Usage::

    async for event in sse_events(response, "OpenAI"):
        ...  # event.event, event.data

A connection cut or reset in the middle of the stream becomes the same retryable
``ProviderError`` a failed request does (``http.error_from_transport``), never a bare httpx error.
Must not import nicegui.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from imgedit.providers.http import error_from_transport


@dataclass(slots=True)
class SseEvent:
    event: str
    data: str


@dataclass(slots=True)
class SseParser:
    """Turns the lines of a ``text/event-stream`` into events, per the WHATWG SSE rules.

    Feed it lines without their terminators; it returns an event at each blank line.
    """

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # "id", "retry" and unknown fields mean nothing here

    def finish(self) -> SseEvent | None:
        """The event still pending when the stream ended without a final blank line."""
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SseEvent(event or "message", "\n".join(data))



async def sse_events(response: httpx.Response, label: str) -> AsyncIterator[SseEvent]:
    """The events of a streamed response, in order, then the one left pending if the stream ended
    without a final blank line. A transport error while reading is raised as a provider error."""
    parser = SseParser()
    try:
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is not None:
                yield event
    except httpx.TransportError as exc:
        raise error_from_transport(exc, label) from exc
    event = parser.finish()
    if event is not None:
        yield event
