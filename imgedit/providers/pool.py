"""Which server of a pool a job runs on: one job per server, first come first served.

Shared by the Stable Diffusion WebUI and ComfyUI providers. A1111's progress and interrupt
endpoints are global to a server, so a job only knows which progress is its own, and may only
interrupt, while no other job of ours shares the server; ComfyUI runs one prompt at a time. Owns
``Server`` (one configured URL and its health) and ``ServerPool`` (hands out free servers in
FIFO order and rests servers that stopped answering). Sends nothing itself: the provider says
what happened through ``mark_down`` / ``mark_up``. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from imgedit.providers.http import public_url

BASE_COOLDOWN = 10.0
MAX_COOLDOWN = 60.0
_MIN_RECHECK = 0.05


@dataclass(eq=False)
class Server:
    """One server; ``url`` carries no credentials, they live in ``headers`` (never shown)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    busy: bool = False
    down_until: float | None = None
    """Clock time until which jobs go elsewhere; ``None`` while it answers."""
    failures: int = 0
    task_api: bool | None = None
    """Whether it answers ``/internal/progress`` (not with ``--nowebui``); ``None`` until asked."""

    @classmethod
    def from_url(cls, url: str, auth: tuple[str, str] | None = None) -> Server:
        """A server for ``url``; ``user:pass@`` in the URL wins over ``auth``."""
        parts = urlsplit(url.strip())
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        headers: dict[str, str] = {}
        if auth is not None:
            # Set by hand because http.send takes no auth; BasicAuth would build the same header.
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return cls(url=public_url(url.strip()), headers=headers)


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Server]
    exclude: frozenset[Server]


class ServerPool:
    """Hands each job a free server; a server that stopped answering rests for a cool-down.

    A resting server is skipped while another one could take the job. When every server a job
    may use is resting, it gets one anyway: the request itself is the test of whether it is back.
    The cool-down doubles with each failure in a row, from ``base_cooldown`` to ``max_cooldown``.
    """

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        clock: Callable[[], float],
        base_cooldown: float = BASE_COOLDOWN,
        max_cooldown: float = MAX_COOLDOWN,
    ) -> None:
        if not servers:
            raise ValueError("a server pool needs at least one server")
        self.servers = tuple(servers)
        self._clock = clock
        self._base, self._max = base_cooldown, max_cooldown
        self._waiters: deque[_Waiter] = deque()

    async def acquire(
        self, exclude: Collection[Server] = (), on_wait: Callable[[], None] | None = None
    ) -> Server | None:
        """A server for one job, not one of ``exclude``; ``None`` when every server is excluded.

        Waits while the usable servers are busy; ``on_wait`` is called once if it has to.
        Cancelling the wait never keeps a server.
        """
        if all(server in exclude for server in self.servers):
            return None
        waiter = _Waiter(asyncio.get_running_loop().create_future(), frozenset(exclude))
        self._waiters.append(waiter)
        self._dispatch()
        if not waiter.future.done() and on_wait is not None:
            on_wait()
        try:
            while not waiter.future.done():
                # A resting server's cool-down ends without any event; look again then.
                await asyncio.wait({waiter.future}, timeout=self._recheck_after())
                self._dispatch()
        except asyncio.CancelledError:
            if waiter.future.done():
                self.release(waiter.future.result())  # handed over just as we were cancelled
            else:
                waiter.future.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return waiter.future.result()

    def release(self, server: Server) -> None:
        server.busy = False
        self._dispatch()

    def mark_down(self, server: Server) -> None:
        server.failures += 1
        rest = min(self._base * 2.0 ** (server.failures - 1), self._max)
        server.down_until = self._clock() + rest
        self._dispatch()

    def mark_up(self, server: Server) -> None:
        server.failures = 0
        server.down_until = None

    def _dispatch(self) -> None:
        """Hand free servers to waiters, oldest first."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            server = self._choose(waiter.exclude)
            if server is not None:
                server.busy = True
                waiter.future.set_result(server)
                self._waiters.remove(waiter)

    def _choose(self, exclude: frozenset[Server]) -> Server | None:
        now = self._clock()
        candidates = [s for s in self.servers if s not in exclude]
        rested = [s for s in candidates if s.down_until is None or s.down_until <= now]
        # While some server may answer, wait for it rather than knock on one known to be down.
        usable = rested or candidates
        return next((s for s in usable if not s.busy), None)

    def _recheck_after(self) -> float | None:
        now = self._clock()
        pending = [
            s.down_until - now for s in self.servers if s.down_until is not None and s.down_until > now
        ]
        return max(min(pending), _MIN_RECHECK) if pending else None
