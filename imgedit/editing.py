"""The editing use-case: turn "edit this image with this prompt" into a background job.

``Studio`` validates a request, submits it to the job registry and, inside the job, walks the
stages: read the source (INITIALIZING), let the provider work (PROCESSING), store the result
(FINALIZING). It never waits for the work itself. Must not import nicegui.

Usage::

    job_id = studio.submit_edit(image_id, 'sepia and vignette', Quality.MEDIUM, 'local')
"""

from __future__ import annotations

import asyncio
import math
import secrets
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from imgedit import cpu
from imgedit.errors import ImgEditError, InvalidRequest, ProviderFailed
from imgedit.eta import DurationModel
from imgedit.jobs import JobContext, JobRegistry, JobSpec, JobStage
from imgedit.jobs.model import MAX_VARIATIONS
from imgedit.models import ImageId, ImageOrigin, ImageRecord, JobId, JobKind, Quality
from imgedit.providers import ProgressSink, Provider, ProviderRegistry, ProviderRequest, ProviderResult
from imgedit.providers.base import fewer_results
from imgedit.retry import RetryPolicy, Sleep, call_with_retries
from imgedit.storage import ImageStore

MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Advanced:
    """The dialog's Advanced settings; each None (or "") leaves the provider's default."""

    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None


ADVANCED_LABELS = {
    "negative_prompt": "Negative prompt",
    "seed": "Seed",
    "steps": "Steps",
    "guidance": "Guidance",
    "strength": "Strength",
}
ADVANCED_RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, MAX_SEED),
    "steps": (1, 150),
    "guidance": (1, 30),
    "strength": (0.05, 1.0),
}
MAX_BATCH = 100
"""At most this many images in one batch edit (``Studio.submit_batch``)."""


class Studio:
    """Submits edits and generations and does the work of each job."""

    def __init__(
        self,
        *,
        store: ImageStore,
        registry: JobRegistry,
        providers: ProviderRegistry,
        durations: DurationModel,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.registry = registry
        self.providers = providers
        self.durations = durations
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        for kind in JobKind:
            registry.handle(kind, self._work)
        for provider in providers.all():
            for kind in JobKind:
                for quality in Quality:
                    durations.set_prior(
                        provider.name, kind, quality, provider.expected_seconds(kind, quality)
                    )

    def expected_seconds(self, provider: str, kind: JobKind, quality: Quality) -> float:
        return self.durations.expected(provider, kind, quality)

    def submit_edit(
        self,
        image_id: str,
        prompt: str,
        quality: Quality,
        provider: str,
        *,
        started_by: str = "",
        variant: str = "",
        mask: str = "",
        batch: str = "",
        seed: int | None = None,
        advanced: Advanced | None = None,
        variations: int = 1,
    ) -> JobId:
        """Queue an edit of a gallery image; returns at once. ``mask``: an id from
        ``prepare_mask`` for a region edit ("" edits the whole image). ``advanced``: settings
        the provider takes (``Capabilities.advanced``); a seed is chosen for a provider that takes
        one when none is given. ``variations``: how many results (1..4), siblings in the gallery."""
        source = self.store.get(image_id)
        if mask and not self.providers.get(provider).capabilities.mask:
            raise InvalidRequest(
                f"{self.providers.get(provider).label} cannot edit a selected area; "
                "choose another provider or clear the selection."
            )
        spec = JobSpec(
            kind=JobKind.EDIT,
            prompt=_clean_prompt(prompt, "Describe what to change, e.g. “sepia and a vignette”."),
            quality=Quality(quality),
            provider=self._provider_for(provider, JobKind.EDIT),
            source_image_id=source.id,
            model=self._model_of(provider),
            started_by=started_by,
            variant=self._variant_of(provider, JobKind.EDIT, variant, mask=bool(mask)),
            mask=mask,
            batch=batch,
            variations=_variations(variations),
            **self._advanced_of(provider, JobKind.EDIT, advanced, seed, variations),
        )
        return self.registry.submit(spec)

    def submit_batch(
        self,
        image_ids: Iterable[str],
        prompt: str,
        quality: Quality,
        provider: str,
        *,
        started_by: str = "",
        variant: str = "",
        advanced: Advanced | None = None,
        variations: int = 1,
    ) -> tuple[str, list[JobId]]:
        """Queue one edit per image, all with the same settings and a shared batch id; returns
        (batch id, job ids in the order given). Everything is checked before anything is queued:
        a bad prompt, provider or image queues nothing."""
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            raise InvalidRequest("Select at least one image to edit.")
        if len(ids) > MAX_BATCH:
            raise InvalidRequest(f"{len(ids)} images are selected; a batch edits at most {MAX_BATCH}.")
        sources = [self.store.get(image_id).id for image_id in ids]
        text = _clean_prompt(prompt, "Describe what to change, e.g. “sepia and a vignette”.")
        name = self._provider_for(provider, JobKind.EDIT)
        variant = self._variant_of(name, JobKind.EDIT, variant)
        self._advanced_of(name, JobKind.EDIT, advanced, None)  # checked before any is queued
        _variations(variations)
        batch = uuid.uuid4().hex
        jobs = [
            self.submit_edit(
                source,
                text,
                quality,
                name,
                started_by=started_by,
                variant=variant,
                batch=batch,
                advanced=advanced,
                variations=variations,
            )
            for source in sources
        ]
        return batch, jobs

    async def prepare_mask(self, image_id: str, painted: bytes) -> str:
        """Check a painted mask against its image and keep it; the id to pass to ``submit_edit``.
        ``InvalidRequest`` says what is wrong with it (wrong size, nothing painted)."""
        from imgedit import masks  # Pillow's filters: loaded by the first region edit, not at start-up

        source = self.store.get(image_id)
        kept = await cpu.run(masks.normalise, painted, (source.width, source.height))
        return await self.store.save_mask(kept)

    def submit_generate(
        self,
        prompt: str,
        quality: Quality,
        provider: str,
        size: tuple[int, int] | None = None,
        *,
        started_by: str = "",
        variant: str = "",
        seed: int | None = None,
        advanced: Advanced | None = None,
        variations: int = 1,
    ) -> JobId:
        """Queue a new image drawn from a prompt; returns at once (``advanced`` and
        ``variations`` as for edits)."""
        spec = JobSpec(
            kind=JobKind.GENERATE,
            prompt=_clean_prompt(prompt, "Describe the image, e.g. “a red circle on a blue background”."),
            quality=Quality(quality),
            provider=self._provider_for(provider, JobKind.GENERATE),
            size=size,
            model=self._model_of(provider),
            started_by=started_by,
            variant=self._variant_of(provider, JobKind.GENERATE, variant),
            variations=_variations(variations),
            **self._advanced_of(provider, JobKind.GENERATE, advanced, seed, variations),
        )
        return self.registry.submit(spec)

    def _advanced_of(
        self, name: str, kind: JobKind, advanced: Advanced | None, seed: int | None, variations: int = 1
    ) -> dict[str, Any]:
        """The spec's Advanced fields, checked against what the provider takes and their ranges;
        a random seed for a provider that takes seeds when none is fixed (and for several
        variations on one that honours seeds without offering them: they differ by their seeds)."""
        given = advanced or Advanced()
        provider = self.providers.get(name)
        takes = provider.capabilities.advanced
        if seed is None:
            seed = given.seed
        values: dict[str, Any] = {
            "negative_prompt": clean_text(given.negative_prompt),
            "steps": given.steps,
            "guidance": given.guidance,
            "strength": given.strength if kind is JobKind.EDIT else None,
        }
        for field, value in values.items():
            if value not in (None, "") and field not in takes:
                raise InvalidRequest(
                    f"{provider.label} does not take the setting “{ADVANCED_LABELS[field]}”."
                )
        if len(values["negative_prompt"]) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"The negative prompt is longer than {MAX_PROMPT_CHARS} characters.")
        for field, (low, high) in ADVANCED_RANGES.items():
            value = values.get(field) if field != "seed" else seed
            if value is not None and not (isinstance(value, int | float) and low <= value <= high):
                raise InvalidRequest(
                    f"{ADVANCED_LABELS[field]} must be between {number_text(low)} and {number_text(high)}."
                )
        if "seed" in takes or (variations > 1 and provider.capabilities.seeds):
            values["seed"] = seed if seed is not None else secrets.randbelow(MAX_SEED) + 1
        else:
            values["seed"] = seed  # a provider without seeds ignores it (Run again's fresh one)
        return values

    def _model_of(self, name: str) -> str:
        model = getattr(self.providers.get(name), "model", "")
        return model if isinstance(model, str) else ""

    def _variant_of(self, name: str, kind: JobKind, variant: str, *, mask: bool = False) -> str:
        """``variant`` if the provider offers it for ``kind`` (with ``mask``: for a region edit);
        "" stays its default."""
        if not variant:
            return ""
        offered = getattr(self.providers.get(name), "variants", None)
        if offered is None or variant not in (offered(kind, mask=True) if mask else offered(kind)):
            raise InvalidRequest(
                f"“{variant}” is not one of the choices of {self.providers.get(name).label}."
            )
        return variant

    def _provider_for(self, name: str, kind: JobKind) -> str:
        provider = self.providers.get(name)
        if provider not in self.providers.offering(kind):
            raise InvalidRequest(f"{provider.label} cannot {kind.value} images.")
        return provider.name

    async def _work(self, job: JobContext) -> ImageId:
        spec = job.spec
        wanted = max(1, spec.variations)
        done: dict[int, ImageRecord] = {}
        for slot in range(wanted):
            if (stored := self.store.made_by(job.job_id, slot)) is not None:
                # Resumed after a restart with this result already stored: not made again.
                done[slot] = stored
                job.landed(slot, stored.id)
        if len(done) == wanted:
            return done[0].id
        provider = self.providers.get(spec.provider)
        source: bytes | None = None
        mask: bytes | None = None
        if spec.kind is JobKind.EDIT:
            job.stage(JobStage.INITIALIZING, "Loading the image")
            assert spec.source_image_id is not None
            source = await self.store.read_bytes(spec.source_image_id)
            if spec.mask:
                mask = await self.store.read_mask(spec.mask)
        else:
            job.stage(JobStage.INITIALIZING, "Preparing")
        request = ProviderRequest(
            kind=spec.kind,
            prompt=spec.prompt,
            quality=spec.quality,
            image=source,
            size=spec.size,
            variant=spec.variant,
            mask=mask,
            seed=spec.seed,
            negative_prompt=spec.negative_prompt,
            steps=spec.steps,
            guidance=spec.guidance,
            strength=spec.strength,
        )
        job.stage(JobStage.PROCESSING, f"Working with {provider.label}")
        missing = [slot for slot in range(wanted) if slot not in done]
        # A provider that makes several results in one request (OpenAI's n, SD WebUI's batch)
        # is asked for as many as it takes at once; any other once per variation. Result i
        # comes from seed + i, so one variation can be made again alone.
        per_request = max(1, provider.capabilities.variations)
        chunks = [missing[i : i + per_request] for i in range(0, len(missing), per_request)]
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) - 1
            seed = None if spec.seed is None else (spec.seed + chunk[0]) % (MAX_SEED + 1)
            sink: ProgressSink = job
            if wanted > 1:
                share = len(chunk) / len(missing)
                sink = _Share(job, number * per_request / len(missing), share, chunk, wanted, last=last)
            result = await self._call_provider(
                provider, replace(request, count=len(chunk), seed=seed), job, sink
            )
            images = (result.image, *result.more)
            if len(images) != len(chunk):
                raise ProviderFailed(fewer_results(provider.label, len(images), len(chunk)))
            if last:
                job.stage(JobStage.FINALIZING, "Saving the results" if wanted > 1 else "Saving the result")
            for slot, image in zip(chunk, images, strict=True):
                first = done.get(0)
                done[slot] = await self._keep_result(
                    job,
                    provider,
                    image,
                    source,
                    mask,
                    slot,
                    # A later variation sits right after the first in the gallery's order.
                    None if first is None else first.created_at - slot * 0.001,
                )
                job.landed(slot, done[slot].id)
        return done[0].id

    async def _keep_result(
        self,
        job: JobContext,
        provider: Provider,
        image: bytes,
        source: bytes | None,
        mask: bytes | None,
        slot: int,
        created_at: float | None,
    ) -> ImageRecord:
        """Store one result (kept outside the area for a region edit) as the job's ``slot``."""
        spec = job.spec
        if mask is not None and source is not None:
            from imgedit import masks

            try:
                image = await cpu.run(masks.keep_outside, source, image, mask)
            except InvalidRequest as exc:
                raise ProviderFailed(
                    f"{provider.label} returned something that is not a usable image."
                ) from exc
        try:
            return await self.store.add(
                image,
                origin=ImageOrigin.EDIT if spec.kind is JobKind.EDIT else ImageOrigin.GENERATE,
                prompt=spec.prompt,
                parent_id=spec.source_image_id,
                provider=provider.name,
                quality=spec.quality,
                job_id=job.job_id,
                job_slot=slot,
                created_at=created_at,
            )
        except InvalidRequest as exc:
            raise ProviderFailed(f"{provider.label} returned something that is not a usable image.") from exc

    async def _call_provider(
        self, provider: Provider, request: ProviderRequest, job: JobContext, sink: ProgressSink
    ) -> ProviderResult:
        """The provider call, retried on transient failures; the card counts down each wait, and
        each retry starts its own progress (the card says which attempt it shows)."""
        retry_note = ""
        number, attempts = 1, self.retry.max_attempts

        def before_wait(attempt: int, of: int, seconds: float, error: ImgEditError) -> None:
            nonlocal retry_note, number, attempts
            number, attempts = attempt, of
            retry_note = f"Retrying ({attempt}/{of}) in {{}} s: {error}"

        async def countdown(seconds: float) -> None:
            for passed in range(math.ceil(seconds)):
                job.message(retry_note.format(math.ceil(seconds - passed)))
                await self._sleep(min(1.0, seconds - passed))

        async def attempt() -> ProviderResult:
            if number > 1:
                job.new_attempt(number, attempts, f"Working with {provider.label}")
            if request.kind is JobKind.EDIT:
                return await provider.edit(request, sink)
            return await provider.generate(request, sink)

        return await call_with_retries(attempt, self.retry, on_wait=before_wait, sleep=countdown)


class _Share:
    """A provider's progress for some of a job's variations, as its share of the job's bar:
    the card says which variations are being made, and the provider's own ETA only counts for
    the last request (earlier ones do not know what comes after them)."""

    def __init__(
        self, job: JobContext, start: float, width: float, slots: list[int], of: int, *, last: bool
    ) -> None:
        self._job, self._start, self._width, self._last = job, start, width, last
        low, high = slots[0] + 1, slots[-1] + 1
        if len(slots) == of:
            self._label = f"{of} variations"
        elif len(slots) == 1:
            self._label = f"Variation {low} of {of}"
        else:
            self._label = f"Variations {low}–{high} of {of}"

    def progress(
        self, fraction: float, message: str | None = None, *, eta_s: float | None = None, exact: bool = True
    ) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._job.progress(
            self._start + self._width * fraction,
            f"{self._label} · {message}" if message else self._label,
            eta_s=eta_s if self._last else None,
            exact=exact,
        )

    def preview(self, image: bytes) -> None:
        self._job.preview(image)


def number_text(value: float) -> str:
    """``4294967295``, ``0.05``, ``150``: a bound as a person writes it (never ``4.29e+09``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def clean_text(text: str) -> str:
    """User text made safe to store and show: control characters (NUL included) and lone
    surrogates dropped, runs of white space folded into one space. Emoji, RTL text and
    backslashes are kept as typed."""
    kept = "".join(c if unicodedata.category(c) not in {"Cc", "Cs"} else " " for c in text or "")
    return " ".join(kept.split())


def _variations(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VARIATIONS:
        raise InvalidRequest(f"Variations must be a whole number from 1 to {MAX_VARIATIONS}.")
    return count


def _clean_prompt(prompt: str, hint: str) -> str:
    text = clean_text(prompt)
    if not text:
        raise InvalidRequest(hint)
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"The prompt is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}.")
    return text
