"""Small pieces the remote providers share (SD WebUI and ComfyUI): reading a number from a
server's JSON, naming the provider on the errors that leave it, and finishing clean-up work
that must not be cut short by a second cancellation. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Iterator

from imgedit.errors import ProviderError


def finite_number(value: object) -> float | None:
    """``value`` as a float if the server sent a finite number (not a bool, NaN or text)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@contextlib.contextmanager
def named_errors(provider: str) -> Iterator[None]:
    """Errors leaving the provider say which provider they come from."""
    try:
        yield
    except ProviderError as exc:
        exc.provider = exc.provider or provider
        raise


async def uncancellable(work: Awaitable[None]) -> None:
    """Run ``work`` to the end even if the caller is cancelled again meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
    task.result()
