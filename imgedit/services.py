"""The services object: everything the UI and main.py use, built once per process.

Must not import nicegui. Usage: ``services = build_services(settings)``; ``await services.close()``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgedit.auth import Auth, storage_secret
from imgedit.config import DEFAULT_PRIORS, Settings
from imgedit.editing import Studio
from imgedit.eta import DurationModel
from imgedit.health import HealthMonitor
from imgedit.jobs import JobRegistry, JobStage
from imgedit.jobs.journal import JobJournal
from imgedit.jobs.registry import PAUSED_SETTING
from imgedit.models import ImageOrigin
from imgedit.providers import Provider, ProviderRegistry
from imgedit.providers.plugins import PLUGINS
from imgedit.redact import Redactor, install_log_redaction
from imgedit.retry import RetryPolicy
from imgedit.samples import SAMPLE_PROMPTS, render_sample
from imgedit.storage import ImageStore

if TYPE_CHECKING:  # httpx and the remote providers are imported only when one is configured
    import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    settings: Settings
    store: ImageStore
    registry: JobRegistry
    providers: ProviderRegistry
    studio: Studio
    http: httpx.AsyncClient | None
    """The HTTP client the remote providers share; None when only the local engine runs (making
    one loads the system's CA certificates, a quarter of a second of start-up)."""
    journal: JobJournal
    session_secret: str
    """Signs the browser session cookie (IMGEDIT_STORAGE_SECRET, else kept in the data dir)."""
    health: HealthMonitor
    """The providers' servers as last probed (up, busy, down), for the status line."""
    auth: Auth | None = None
    """The studio's sign-in, when it has a password."""

    def start(self) -> None:
        """Bring back the jobs the last run left queued or running (needs the running loop):
        resumed in their queue order, or, with ``--no-resume``, shown as INTERRUPTED. The
        gallery's files are checked in the background meanwhile."""
        self.store.check_in_background()
        if self.journal.setting(PAUSED_SETTING) == "1":
            self.registry.pause()
        rows = self.journal.unfinished()
        if not rows:
            return
        if self.settings.resume:
            for row in rows:
                self.registry.submit(
                    row.spec,
                    job_id=row.id,
                    attempt=row.attempt,
                    created_wall=row.created_at,
                    retry_of=row.retry_of,
                )
            log.info("resumed %d job(s) left unfinished by the last run", len(rows))
            return
        message = "Interrupted: imgedit stopped while this job was waiting or running."
        for row in rows:
            self.registry.restore_interrupted(
                row.spec, job_id=row.id, attempt=row.attempt, created_wall=row.created_at, message=message
            )
        self.journal.mark_interrupted([r.id for r in rows], message, time.time())
        log.info("%d job(s) left unfinished by the last run are shown as interrupted", len(rows))

    async def close(self) -> None:
        await self.health.close()
        await self.store.stop_checking()
        await self.registry.shutdown()
        await self.providers.aclose()
        await self.journal.flush()
        self.journal.close()
        if self.http is not None:
            await self.http.aclose()
        self.store.close()


def build_services(settings: Settings) -> Services:
    """Open the data dir and wire the services. Runs before the server accepts anyone."""
    session_secret = storage_secret(settings)
    redact = Redactor.from_settings(settings, more=[session_secret])
    install_log_redaction(redact)
    store = ImageStore(settings.data_dir)
    store.open()
    if settings.samples and len(store) == 0:
        seed_samples(store)
    durations = DurationModel(DEFAULT_PRIORS)
    remote = remote_configured(settings)
    http = http_client() if remote else None
    providers = ProviderRegistry(build_providers(settings, http))
    journal = JobJournal(store.db)
    durations.load(journal.durations())  # what earlier runs learned, from the first job on
    registry = JobRegistry(
        max_concurrent=settings.max_concurrent,
        durations=durations,
        redact=redact,
        stall_timeout=settings.stall_timeout,
        capacity_of=providers.capacity_of,
        journal=journal,
    )
    registry.on_finish(
        lambda snapshot: (
            journal.save_durations(durations.rows()) if snapshot.stage is JobStage.COMPLETED else None
        )
    )
    studio = Studio(
        store=store,
        registry=registry,
        providers=providers,
        durations=durations,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
    )
    return Services(
        settings=settings,
        store=store,
        registry=registry,
        providers=providers,
        studio=studio,
        http=http,
        journal=journal,
        session_secret=session_secret,
        health=HealthMonitor(providers, redact=redact),
        auth=Auth.from_settings(settings, store.db),
    )


def http_client() -> httpx.AsyncClient:
    """The one client the remote providers share. Reads are long on purpose: a high-quality image
    can take minutes before its first byte."""
    import httpx  # here, not at the top: an offline start-up does not load it

    timeout = httpx.Timeout(connect=10.0, read=300.0, write=120.0, pool=30.0)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


def build_providers(settings: Settings, http: httpx.AsyncClient | None) -> list[Provider]:
    """The configured providers, in plug-in order (the first is the dialog's default; the local
    engine, always there, is last). ``http`` is needed (not None) when a remote one is configured."""
    providers = [
        plugin.build(values, http)
        for plugin in PLUGINS
        if plugin.configured(values := settings.providers.get(plugin.name, {}))
    ]
    for provider in providers:
        log.info("provider ready: %s", provider.label)
    return providers


def remote_configured(settings: Settings) -> bool:
    """Whether a configured provider talks HTTP (then the services make the shared client)."""
    return any(p.remote and p.configured(settings.providers.get(p.name, {})) for p in PLUGINS)


def seed_samples(store: ImageStore) -> None:
    """Draw the sample pictures into an empty gallery, so there is something to edit."""
    for prompt in SAMPLE_PROMPTS:
        store.add_sync(render_sample(prompt), origin=ImageOrigin.SAMPLE, name=prompt[:1].upper() + prompt[1:])
    log.info("added %d sample images to the empty gallery", len(SAMPLE_PROMPTS))
