"""Image backends behind one contract (``base.Provider``), and the registry that lists them.

The UI never imports a concrete provider: it asks the registry what is configured and what
each can do. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from imgedit.errors import InvalidRequest
from imgedit.models import JobKind
from imgedit.providers.base import (
    Capabilities,
    ProgressSink,
    Provider,
    ProviderRequest,
    ProviderResult,
    ServerHealth,
)

__all__ = [
    "Capabilities",
    "ProgressSink",
    "Provider",
    "ProviderRegistry",
    "ProviderRequest",
    "ProviderResult",
    "ServerHealth",
]

log = logging.getLogger(__name__)


class ProviderRegistry:
    """The configured providers, the first one being the default.

    Usage: ``providers.get('local')``, ``providers.offering(JobKind.EDIT)``
    """

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}
        if not self._providers:
            raise ValueError("at least one provider is needed")

    def add(self, provider: Provider) -> None:
        """Offer one more provider (configured at start-up, or a test's fake)."""
        self._providers[provider.name] = provider

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise InvalidRequest(f"The provider “{name}” is not configured.") from None

    def capacity_of(self, name: str) -> int | None:
        """How many jobs the provider can run at once (e.g. one per SD WebUI server); None: no limit."""
        provider = self._providers.get(name)
        return getattr(provider, "capacity", None) if provider is not None else None

    def all(self) -> list[Provider]:
        return list(self._providers.values())

    def offering(self, kind: JobKind, *, mask: bool = False) -> list[Provider]:
        """Providers that can do ``kind`` (edit or generate), default first; with ``mask``, only
        those that can edit a selected area."""
        wanted = "edit" if kind is JobKind.EDIT else "generate"
        return [
            p
            for p in self._providers.values()
            if getattr(p.capabilities, wanted) and (not mask or p.capabilities.mask)
        ]

    @property
    def default(self) -> Provider:
        return next(iter(self._providers.values()))

    async def health(self) -> dict[str, list[ServerHealth]]:
        """Every provider's servers as their probes find them, probed at once; a provider
        without a probe (or whose probe fails) is reported, never skipped."""

        async def probe(provider: Provider) -> list[ServerHealth]:
            check = getattr(provider, "health", None)
            if check is None:
                return [ServerHealth(provider.label, "up")]
            try:
                found: list[ServerHealth] = await check()
            except Exception as exc:  # a probe must not take the status line down with it
                log.warning("health probe of %s failed", provider.name, exc_info=True)
                return [ServerHealth(provider.label, "down", f"its check failed ({type(exc).__name__})")]
            return found

        providers = self.all()
        found = await asyncio.gather(*(probe(p) for p in providers))
        return {p.name: servers for p, servers in zip(providers, found, strict=True)}

    async def aclose(self) -> None:
        for provider in self.all():
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing the others matters more
                    log.warning("closing %s failed", provider.name, exc_info=True)
