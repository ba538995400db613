"""The one contract every image backend implements, and the values that cross it.

A provider turns a ``ProviderRequest`` into a ``ProviderResult`` and tells a ``ProgressSink``
how far it is. It knows nothing of jobs, storage or the UI; errors leave it as
``imgedit.errors.ProviderError`` subclasses (or ``UnknownPrompt`` for the local engine).
Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from imgedit.models import JobKind, Quality


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a provider can do; the UI shows only what is offered here."""

    edit: bool = True
    generate: bool = True
    mask: bool = False
    offline: bool = False
    """Runs on this computer: no model download, no network, nothing leaves the machine."""
    stream_previews: bool = False
    real_progress: bool = False
    cancel_remote: bool = False
    advanced: frozenset[str] = frozenset()
    """The Advanced settings it honours, of ``ADVANCED``: the dialog offers only these."""
    seeds: bool = False
    """Honours ``ProviderRequest.seed`` though it offers no Seed setting (the local engine: a seed
    makes a variant), so several variations of one job differ by their seeds."""
    variations: int = 1
    """The most results one request may ask for (``ProviderRequest.count``): OpenAI's ``n``, SD
    WebUI's ``batch_size``, a ComfyUI batch. 1: the studio asks once per variation instead."""


ADVANCED = ("negative_prompt", "seed", "steps", "guidance", "strength")
"""Every Advanced setting a provider may take (``Capabilities.advanced``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderRequest:
    """One unit of work. ``image`` is the encoded source for edits, ``None`` for generation.

    Usage: ``ProviderRequest(kind=JobKind.EDIT, prompt='sepia', quality=Quality.LOW, image=png)``
    """

    kind: JobKind
    prompt: str
    quality: Quality
    image: bytes | None = None
    size: tuple[int, int] | None = None
    """Requested output size for generation (width, height); ``None`` lets the provider choose."""
    seed: int | None = None
    variant: str = ""
    """One of the provider's ``variants(kind)`` (a ComfyUI workflow); "" for its default."""
    negative_prompt: str = ""
    """What the picture should not show; "" for none."""
    steps: int | None = None
    """Sampling steps; None follows ``quality``."""
    guidance: float | None = None
    """CFG scale; None for the provider's default."""
    strength: float | None = None
    """An edit's denoising strength 0..1; None for the provider's default."""
    mask: bytes | None = None
    """A region edit: a PNG the size of ``image``, RGBA, alpha 0 where the edit applies and opaque
    where the image stays (OpenAI's form; ``imgedit.masks`` converts it). Only sent to providers
    whose ``capabilities.mask`` is true; None edits the whole image."""
    count: int = 1
    """How many results (variations) this one request asks for; more than 1 only for a provider
    whose ``capabilities.variations`` is at least this. With a ``seed``, result i is meant to
    come from ``seed + i`` where the backend lets one say so (SD WebUI does this itself)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderResult:
    """The finished image, encoded, plus what the provider wants remembered about it.

    A request with ``count`` n > 1 returns its first result in ``image`` and the other n - 1, in
    order, in ``more``; a provider that got fewer back than asked says so with ``ProviderFailed``
    rather than returning short."""

    image: bytes
    format: str = "PNG"
    metadata: dict[str, str] = field(default_factory=dict)
    more: tuple[bytes, ...] = ()


def fewer_results(who: str, got: int, asked: int) -> str:
    """The message for a server that sent back fewer results than a request's ``count``."""
    return f"{who} returned {got} {'image' if got == 1 else 'images'} of the {asked} asked for."


class ProgressSink(Protocol):
    """Where a provider reports how far it is. Safe to call only from the event loop thread."""

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        """Fraction 0..1 of the provider's own work done; ``message`` says what it is doing.

        ``eta_s``: the provider's own estimate of seconds left, when it has one.
        ``exact=False`` marks a milestone (e.g. a partial image arrived): the bar is at least
        this far, but keeps estimating between milestones.
        """

    def preview(self, image: bytes) -> None:
        """An encoded in-between image to show instead of the blurred original."""


@runtime_checkable
class Provider(Protocol):
    """An image backend. ``name`` is stable (stored in history); ``label`` is for people."""

    name: str
    label: str
    capabilities: Capabilities

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        """A prior for how long one job takes, before any has been measured."""
        ...

    def describe(self, kind: JobKind) -> str:
        """One or two sentences for the dialog: what prompts work with this provider."""
        ...

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult: ...

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult: ...


HealthState = Literal["up", "busy", "down"]


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One server of a provider (or the provider itself) as its health probe found it: ``up``
    (ready for a job), ``busy`` (working, e.g. on another client's job) or ``down`` (``detail``
    says why). The status line in the gallery's header shows these."""

    label: str
    state: HealthState
    detail: str = ""


class Variants(Protocol):
    """What a provider may add to ``Provider``: named ways of doing a kind of job (ComfyUI's
    workflows), offered in the dialog when there is more than one. ``variants(kind)`` lists
    their names, the default first; the chosen one arrives as ``ProviderRequest.variant``. With
    ``mask``, the variants that can edit a selected area (``ProviderRequest.mask``)."""

    def variants(self, kind: JobKind, *, mask: bool = False) -> list[str]: ...


class Lifecycle(Protocol):
    """What a provider may add to ``Provider``: a health probe and a close. ``providers.health``
    and ``providers.aclose`` call them where present (a provider without a probe counts as up)."""

    async def health(self) -> list[ServerHealth]:
        """Ask each server how it is, briefly (a few seconds at most); never raises."""
        ...

    async def aclose(self) -> None:
        """Let go of what the provider holds (background watches, connections)."""
        ...
