"""The providers' servers as last probed, for the status line in the gallery's header.

One monitor per process, shared by every tab: ``wanted()`` (each open gallery calls it on its
tick) starts a probe of every provider at once when the last one is older than ``interval``
and none is running, so servers are asked only while someone looks, and at most once per
interval whatever the number of tabs. ``version`` moves when what the probes found changed.
Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from imgedit.providers import ProviderRegistry, ServerHealth

log = logging.getLogger(__name__)

INTERVAL = 30.0
"""Seconds between two probes while a gallery is open."""


class HealthMonitor:
    def __init__(
        self,
        providers: ProviderRegistry,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        """``redact`` cleans what a probe found before anyone sees it: a server's message may
        echo a key or a URL's password (the same redactor as for job errors)."""
        self._providers = providers
        self._redact = redact
        self.interval = interval
        self._clock = clock
        self.found: dict[str, list[ServerHealth]] = {}
        """Provider name → its servers; empty until the first probe ends."""
        self.version = 0
        self._asked: float | None = None
        self._probe: asyncio.Task[None] | None = None

    def wanted(self) -> None:
        """Someone is looking: probe now unless a probe runs or the last began within the interval."""
        now = self._clock()
        if self._probe is not None or (self._asked is not None and now - self._asked < self.interval):
            return
        self._asked = now
        self._probe = asyncio.get_running_loop().create_task(self._run(), name="provider health")

    async def _run(self) -> None:
        try:
            found = {
                name: [ServerHealth(self._redact(s.label), s.state, self._redact(s.detail)) for s in servers]
                for name, servers in (await self._providers.health()).items()
            }
        except Exception:  # the registry reports each provider's failure itself; this is a bug
            log.exception("the providers' health could not be read")
            return
        finally:
            self._probe = None
        if found != self.found:
            self.found = found
            self.version += 1

    async def close(self) -> None:
        probe = self._probe
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
