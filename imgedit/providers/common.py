"""Small pieces the remote providers share (SD WebUI and ComfyUI): reading a number from a
server's JSON, naming the provider on the errors that leave it, finishing clean-up work that
must not be cut short by a second cancellation, and the health of a pool of servers. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence

from imgedit.errors import ProviderError
from imgedit.providers.base import ServerHealth
from imgedit.providers.pool import Server


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


async def pool_health(
    servers: Sequence[Server],
    label_of: Callable[[Server], str],
    others_work: Callable[[Server], Awaitable[str | None]],
) -> list[ServerHealth]:
    """Each server of a pool, probed at once: busy with an imgedit job (the pool says so, no
    request), else ``others_work`` asks it: busy with what that names, up when None, down with
    the probe's error."""

    async def one(server: Server) -> ServerHealth:
        label = label_of(server)
        if server.busy:
            return ServerHealth(label, "busy", "running an imgedit job")
        try:
            work = await others_work(server)
        except ProviderError as exc:
            return ServerHealth(label, "down", str(exc))
        return ServerHealth(label, "up") if work is None else ServerHealth(label, "busy", work)

    return list(await asyncio.gather(*(one(server) for server in servers)))
