"""The job model: stages, the spec a job is made from, the read-only snapshot, the live record.

``JobSpec`` is plain data: with it alone a job can be run, retried or resumed (the runner has a
handler per kind). ``JobRecord`` is the registry's mutable state of one job and never leaves
the jobs package; ``JobSnapshot`` is what everyone else sees. Must not import nicegui.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from imgedit.models import ImageId, JobId, JobKind, Quality

if TYPE_CHECKING:
    from imgedit.jobs.registry import JobContext

MAX_VARIATIONS = 4
"""The most results one job may ask for (the dialog's "Variations")."""
GENERIC_FAILURE = "Something went wrong inside imgedit; the details are in the server log."


class JobStage(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Waiting for a free slot."""
    INITIALIZING = "initializing"
    """Loading the source and preparing the provider call."""
    PROCESSING = "processing"
    """The provider is working; progress comes from it where it can tell."""
    FINALIZING = "finalizing"
    """Saving the result and its thumbnail."""
    COMPLETED = "completed"
    """Done; the result is in the gallery."""
    FAILED = "failed"
    """Stopped by an error; the message says what to do."""
    CANCELLED = "cancelled"
    """Stopped on request; nothing was added."""
    INTERRUPTED = "interrupted"
    """Found unfinished when the app started (the process stopped while it ran)."""

    @property
    def is_finished(self) -> bool:
        return self in _FINISHED

    @property
    def is_running(self) -> bool:
        return self in _RUNNING


_FINISHED = frozenset({JobStage.COMPLETED, JobStage.FAILED, JobStage.CANCELLED, JobStage.INTERRUPTED})
_RUNNING = frozenset({JobStage.INITIALIZING, JobStage.PROCESSING, JobStage.FINALIZING})


@dataclass(frozen=True, kw_only=True, slots=True)
class JobSpec:
    """What to do: the plain data a job is created from (and will be persisted as)."""

    kind: JobKind
    prompt: str
    quality: Quality
    provider: str
    source_image_id: ImageId | None = None
    size: tuple[int, int] | None = None
    model: str = ""
    """The provider's model when the job was made ("" if it has none): durations are learned per model."""
    started_by: str = ""
    """Who started it: the name given at sign-in when the studio has a password ("" otherwise)."""
    variant: str = ""
    """The provider's variant chosen in the dialog (a ComfyUI workflow's name); "" for its default."""
    mask: str = ""
    """A region edit's mask: the id the store keeps it under (``ImageStore.save_mask``); "" for the
    whole image."""
    batch: str = ""
    """The batch this job is one of (one prompt over several images); "" when on its own."""
    seed: int | None = None
    """The seed: chosen at submit for a provider that takes one (random unless the user fixed
    it), so the result can say which it was; None for a provider without seeds."""
    negative_prompt: str = ""
    """What the picture should not show (Advanced settings; SD WebUI, ComfyUI)."""
    steps: int | None = None
    """Sampling steps; None follows the quality (Advanced settings)."""
    guidance: float | None = None
    """How closely to follow the prompt (CFG scale); None for the provider's default."""
    strength: float | None = None
    """How much an edit may change the source (img2img denoising, 0..1); None for the default."""
    variations: int = 1
    """How many results (1..``MAX_VARIATIONS``) the job makes: siblings in the gallery, each
    image in its own ``job_slot``."""


class FailureKind(StrEnum):
    """Why a job failed, in the words a filter offers (history, the failed card)."""

    UNREACHABLE = "unreachable"
    """The provider could not be reached (connection refused, timed out, every server down)."""
    RATE_LIMITED = "rate_limited"
    """The provider said too many requests (HTTP 429)."""
    SIGN_IN = "sign_in"
    """The key or password was refused (HTTP 401/403)."""
    REFUSED = "refused"
    """The provider refused this request (a safety system, a bad parameter, no credit)."""
    PROVIDER_BROKE = "provider_broke"
    """The provider broke while working (5xx, an unreadable answer, a cut stream)."""
    INPUT = "input"
    """imgedit could not use the input (the prompt, the image)."""
    STORAGE = "storage"
    """The data folder refused the result (full, read-only)."""
    STALLED = "stalled"
    """The provider went silent and the watchdog stopped the job."""
    INTERNAL = "internal"
    """Something inside imgedit went wrong (the traceback is in the server log)."""

    @property
    def label(self) -> str:
        return _FAILURE_LABELS[self]


_FAILURE_LABELS = {
    FailureKind.UNREACHABLE: "Could not reach the provider",
    FailureKind.RATE_LIMITED: "Rate limited",
    FailureKind.SIGN_IN: "Key or password refused",
    FailureKind.REFUSED: "Refused by the provider",
    FailureKind.PROVIDER_BROKE: "Provider error",
    FailureKind.INPUT: "Input not usable",
    FailureKind.STORAGE: "Could not save",
    FailureKind.STALLED: "Provider went silent",
    FailureKind.INTERNAL: "imgedit error",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """The structure of a failed job's error, beside its message: what kind of failure, and for a
    provider's, which provider, the HTTP status and the server's own error code (each ``None``
    when unknown, e.g. for a connection that was never made)."""

    kind: FailureKind
    provider: str | None = None
    status: int | None = None
    code: str | None = None

    def describe(self) -> str:
        """``HTTP 429 · insufficient_quota``; "" when there is neither status nor code."""
        parts = [f"HTTP {self.status}" if self.status is not None else "", self.code or ""]
        return " · ".join(part for part in parts if part)


@dataclass(frozen=True, kw_only=True, slots=True)
class JobSnapshot:
    """A read-only view of one job at one moment. Unknown values are ``None``, never 0."""

    id: JobId
    spec: JobSpec
    stage: JobStage
    progress: float
    """Shown fraction 0..1: never goes backwards, 1.0 only once COMPLETED."""
    progress_source: Literal["reported", "estimated"]
    elapsed_s: float
    """Seconds since the job left the queue (0 while queued)."""
    eta_s: float | None
    """Seconds until it is expected to finish, queue wait included; None once finished."""
    expected_s: float
    """Expected running time in seconds when the job was queued (prior or learned mean);
    the actual running time once COMPLETED."""
    message: str
    error: str | None
    result_image_id: ImageId | None
    """The first result (variation 0) once it has landed."""
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue_position: int | None
    attempt: int
    preview_version: int
    milestone: float | None = None
    """The furthest milestone a provider passed (e.g. a partial image), on the whole job's bar."""
    waiting_for_provider: bool = False
    """Queued only because its provider is at capacity (e.g. every SD WebUI server is busy)."""
    paused: bool = False
    """Queued while the queue is paused: it starts only once the queue is resumed (no ETA)."""
    failure: Failure | None = None
    """A FAILED job's error as structure (kind, provider, HTTP status, code); None otherwise."""
    result_image_ids: tuple[ImageId, ...] = ()
    """Every result that has landed so far, in slot order (a job of n variations fills n)."""

    @property
    def is_finished(self) -> bool:
        return self.stage.is_finished

    @property
    def percent(self) -> int:
        return int(self.progress * 100)


Work = Callable[["JobContext"], Awaitable[ImageId | None]]
"""What a job does: given its context, produce the result image's id."""


@dataclass(slots=True, eq=False)
class JobRecord:
    """The registry's mutable state of one job; only the jobs package touches it."""

    id: JobId
    spec: JobSpec
    work: Work
    attempt: int
    expected: float
    created_wall: float
    order: float = 0.0
    """Where it stands in the queue relative to other jobs (kept in the journal for a restart)."""
    retry_of: JobId | None = None
    turn: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stage: JobStage = JobStage.QUEUED
    message: str = ""
    error: str | None = None
    failure: Failure | None = None
    result: ImageId | None = None
    results: dict[int, ImageId] = field(default_factory=dict)
    """Results landed so far by variation slot (``JobContext.landed``)."""
    started_mono: float | None = None
    started_wall: float | None = None
    finished_mono: float | None = None
    finished_wall: float | None = None
    reported: float | None = None
    milestone: float | None = None
    provider_eta: float | None = None
    provider_eta_at: float = 0.0
    floor: float = 0.0
    preview: bytes | None = None
    preview_version: int = 0
    task: asyncio.Task[None] | None = None
    heard_mono: float = 0.0
    """When the job last said anything (stage, progress, message, preview): the watchdog's clock."""
    stalled: str | None = None
    """Why the watchdog stopped the job, if it did."""
