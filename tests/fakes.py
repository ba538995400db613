"""Fakes at the provider boundary: they implement the real Provider interface."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from imgedit.models import JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult


@dataclass
class RecordingSink:
    """A ProgressSink that keeps what a provider told it, in order."""

    updates: list[tuple[float, str | None]] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        self.updates.append((fraction, message))

    def preview(self, image: bytes) -> None:
        self.previews.append(image)

    @property
    def steps(self) -> list[str]:
        """The "Step n of m" messages (SD WebUI, ComfyUI)."""
        return [m for _, m in self.updates if m and m.startswith("Step")]


class GatedProvider:
    """Reports half its work, then waits until the test opens the gate; returns a real PNG."""

    name = "gated"
    label = "Gated test engine"
    capabilities = Capabilities(edit=True, generate=True, real_progress=True)

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.calls = 0

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 5.0

    def describe(self, kind: JobKind) -> str:
        return "Waits for the test."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self._work(sink)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self._work(sink)

    async def _work(self, sink: ProgressSink) -> ProviderResult:
        self.calls += 1
        sink.progress(0.5, "Half way")
        self.started.set()
        await self.gate.wait()
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (10, 200, 30)).save(buffer, "PNG")
        return ProviderResult(image=buffer.getvalue())


async def eventually(
    predicate: Callable[[], object], within: float = 15.0, message: str = "condition"
) -> None:
    """Wait until ``predicate()`` is true, yielding to the event loop; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {message}")
        await asyncio.sleep(0.05)
