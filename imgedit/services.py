"""The services object: everything the UI and main.py use, built once per process.

Must not import nicegui. Usage: ``services = build_services(settings)``; ``await services.close()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imgedit.config import Settings
from imgedit.editing import Studio
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry
from imgedit.models import ImageOrigin
from imgedit.providers import ProviderRegistry
from imgedit.providers.local import LocalProvider
from imgedit.samples import SAMPLE_PROMPTS, render_sample
from imgedit.storage import ImageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    settings: Settings
    store: ImageStore
    registry: JobRegistry
    providers: ProviderRegistry
    studio: Studio

    async def close(self) -> None:
        await self.registry.shutdown()
        self.store.close()


def build_services(settings: Settings) -> Services:
    """Open the data dir and wire the services. Runs before the server accepts anyone."""
    store = ImageStore(settings.data_dir)
    store.open()
    if settings.samples and len(store) == 0:
        seed_samples(store)
    durations = DurationModel(settings.eta_priors)
    registry = JobRegistry(max_concurrent=settings.max_concurrent, durations=durations)
    providers = ProviderRegistry([LocalProvider()])
    studio = Studio(store=store, registry=registry, providers=providers, durations=durations)
    return Services(settings=settings, store=store, registry=registry, providers=providers, studio=studio)


def seed_samples(store: ImageStore) -> None:
    """Draw the sample pictures into an empty gallery, so there is something to edit."""
    for prompt in SAMPLE_PROMPTS:
        store.add_sync(render_sample(prompt), origin=ImageOrigin.SAMPLE, name=prompt[:1].upper() + prompt[1:])
    log.info("added %d sample images to the empty gallery", len(SAMPLE_PROMPTS))
