"""The selected area's outline a region edit's loading card shows over the blurred original.

``MaskOutlines.get(mask_id)`` is the PNG of ``masks.outline(kept, OUTLINE_BOX)``: the kept mask
read from the store and drawn in the image pool, never on the event loop, then kept in a small
LRU by id (an id names one mask forever: its content's hash). ``/media/masks/<id>/outline``
(``imgedit/ui/routes.py``) serves it; ``outline_url(mask_id)`` is that URL under the server's
prefix. Must not load Pillow at import.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from imgedit import cpu
from imgedit.errors import InvalidRequest, NotFound
from imgedit.storage import ImageStore
from imgedit.ui import urls

OUTLINE_BOX = (512, 512)
OUTLINE_PATH = "/media/masks/{}/outline"
CACHED = 64
"""Outlines kept in memory: a few KB each; more than the cards a gallery shows at once."""


def outline_url(mask_id: str) -> str:
    return urls.prefixed(OUTLINE_PATH.format(mask_id))


def _draw(kept: bytes) -> bytes:
    from imgedit import masks  # Pillow's filters: loaded by the first region edit's card

    return masks.outline(kept, OUTLINE_BOX)


class MaskOutlines:
    """Outline PNGs by mask id, drawn once each (concurrent asks for one id share the drawing)."""

    def __init__(self, store: ImageStore, *, cached: int = CACHED) -> None:
        self._store = store
        self._cached = cached
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._drawing: dict[str, asyncio.Future[bytes]] = {}

    async def get(self, mask_id: str) -> bytes:
        """The outline's PNG; ``NotFound`` for an id that is not a kept, readable mask."""
        found = self._done.get(mask_id)
        if found is not None:
            self._done.move_to_end(mask_id)
            return found
        pending = self._drawing.get(mask_id)
        if pending is None:
            pending = self._drawing[mask_id] = asyncio.ensure_future(self._make(mask_id))
            pending.add_done_callback(lambda f: self._settled(mask_id, f))
        return await asyncio.shield(pending)

    def _settled(self, mask_id: str, future: asyncio.Future[bytes]) -> None:
        self._drawing.pop(mask_id, None)
        if not future.cancelled():
            future.exception()  # retrieved: a 404 nobody waited for any more is not logged

    async def _make(self, mask_id: str) -> bytes:
        kept = await self._store.read_mask(mask_id)  # validates the id; NotFound if unknown
        try:
            data = await cpu.run(_draw, kept)
        except (InvalidRequest, OSError, ValueError) as exc:  # a damaged file: nothing to show
            raise NotFound("The selected area could not be read.") from exc
        self._done[mask_id] = data
        while len(self._done) > self._cached:
            self._done.popitem(last=False)
        return data

    def __len__(self) -> int:
        return len(self._done)
