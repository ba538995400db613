"""The gallery page: header, upload zone, loading cards, image cards, and the 1-second tick.

Each client builds its view once from the shared store and registry, then ``tick`` looks at
two version counters and touches only what changed: new or deleted images, jobs that appeared,
moved on or finished. The grid is never rebuilt on a tick.
"""

from __future__ import annotations

import functools
import time

from nicegui import events, ui

from imgedit.errors import ImgEditError
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageId, ImageOrigin, ImageRecord, JobId
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui.dialogs import ImageDialog, JobDialog, lineage_text
from imgedit.ui.job_card import LoadingCard

TICK_SECONDS = 1.0


class GalleryPage:
    """One browser tab's gallery."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store
        self.registry = services.registry
        self.image_cards: dict[ImageId, ui.element] = {}
        self.job_cards: dict[JobId, LoadingCard] = {}
        self._hidden_jobs: set[JobId] = set()
        self._store_version = -1
        self._registry_version = -1

    def build(self) -> None:
        # The browser advances timers from server timestamps; this tells it the server's clock.
        ui.add_head_html(f"<script>window.imgeditSkew = {int(time.time() * 1000)} - Date.now();</script>")
        self.job_dialog = JobDialog(self.services, on_submitted=self.tick)
        self.image_dialog = ImageDialog(
            self.services, on_edit=self.job_dialog.open_edit, on_delete=self._delete
        )
        with ui.row().classes("imgedit-header"):
            ui.label("imgedit").classes("imgedit-logo")
            engines = ", ".join(p.label for p in self.services.providers.all())
            ui.label(engines).classes("imgedit-chip")
            ui.space()
            self.summary = ui.label().classes("imgedit-summary").mark("summary")
            ui.button("New image", icon="add_photo_alternate", on_click=self.job_dialog.open_generate).props(
                "unelevated no-caps color=deep-purple-5"
            ).mark("new-image")
        with ui.column().classes("imgedit-main"):
            self.upload = (
                ui.upload(
                    label="Drop images here, or click to choose (PNG, JPEG, WebP, GIF, BMP, TIFF)",
                    multiple=True,
                    auto_upload=True,
                    on_upload=self._on_upload,
                )
                .props('accept="image/*" flat dark color=transparent')
                .classes("imgedit-upload")
                .mark("upload")
            )
            with ui.element("div").classes("imgedit-gallery").mark("gallery") as self.grid:
                self.jobs_box = ui.element("div").classes("imgedit-box")
                self.images_box = ui.element("div").classes("imgedit-box imgedit-images-box")
                self.empty = ui.label("No images yet. Drop some above, or make a New image.").classes(
                    "imgedit-empty"
                )
        self.tick()
        ui.timer(TICK_SECONDS, self.tick)

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> None:
        """Apply what changed since the last tick; costs two integer compares when nothing did."""
        if self.store.version != self._store_version:
            self._store_version = self.store.version
            self._sync_images()
        if self.registry.version != self._registry_version:
            self._registry_version = self.registry.version
            self._sync_jobs()

    def _sync_images(self) -> None:
        records = self.store.list()
        current = {r.id for r in records}
        for image_id in [i for i in self.image_cards if i not in current]:
            self.images_box.remove(self.image_cards.pop(image_id))
        fresh = [r for r in records if r.id not in self.image_cards]
        arriving = bool(self.image_cards)
        # Oldest first so each new card can go to the front and the newest ends up first.
        for record in reversed(fresh):
            with self.images_box:
                card = self._image_card(record, arriving=arriving)
            card.move(self.images_box, target_index=0)
            self.image_cards[record.id] = card
        self.empty.set_visibility(not records and not self.job_cards)

    def _sync_jobs(self) -> None:
        snapshots = {s.id: s for s in self.registry.snapshots()}
        for job_id, card in list(self.job_cards.items()):
            snapshot = snapshots.get(job_id)
            if snapshot is None or snapshot.stage in {JobStage.COMPLETED, JobStage.CANCELLED}:
                self._drop_card(job_id)
                if snapshot is not None and job_id not in self._hidden_jobs:
                    self._announce(snapshot)
            else:
                card.update(snapshot)
        for snapshot in snapshots.values():
            if snapshot.id in self.job_cards or snapshot.id in self._hidden_jobs:
                continue
            if snapshot.stage.is_finished and snapshot.stage is not JobStage.FAILED:
                continue
            self._add_job_card(snapshot)
        running = sum(1 for s in snapshots.values() if s.stage.is_running)
        queued = sum(1 for s in snapshots.values() if s.stage is JobStage.QUEUED)
        parts = [f"{running} running"] if running else []
        parts += [f"{queued} queued"] if queued else []
        self.summary.set_text(" · ".join(parts))
        self.empty.set_visibility(not self.image_cards and not self.job_cards)

    def _add_job_card(self, snapshot: JobSnapshot) -> None:
        source = snapshot.spec.source_image_id
        thumb = f"/media/thumbs/{source}" if source and source in self.store else None
        with self.jobs_box:
            card = LoadingCard(
                snapshot,
                source_thumb=thumb,
                on_cancel=self._cancel,
                on_retry=self._retry,
                on_dismiss=self._dismiss,
            )
        card.root.move(self.jobs_box, target_index=0)
        self.job_cards[snapshot.id] = card

    def _drop_card(self, job_id: JobId) -> None:
        card = self.job_cards.pop(job_id, None)
        if card is not None:
            self.jobs_box.remove(card.root)

    def _announce(self, snapshot: JobSnapshot) -> None:
        what = fmt.kind_label(snapshot.spec.kind)
        if snapshot.stage is JobStage.COMPLETED:
            ui.notify(f"{what} finished: “{snapshot.spec.prompt}”", type="positive", icon="check_circle")
        elif snapshot.stage is JobStage.CANCELLED:
            ui.notify(f"{what} cancelled: “{snapshot.spec.prompt}”", type="info")

    # -- job actions ---------------------------------------------------------------------------

    def _cancel(self, job_id: JobId) -> None:
        self._hidden_jobs.add(job_id)
        card = self.job_cards.get(job_id)
        if card is not None:
            card.root.set_visibility(False)
        if self.registry.cancel(job_id):
            ui.notify("Cancelled. Nothing was added to the gallery.", type="info")

    def _retry(self, job_id: JobId) -> None:
        try:
            self.registry.retry(job_id)
        except (ImgEditError, ValueError) as exc:
            ui.notify(str(exc), type="warning")
        self.tick()

    def _dismiss(self, job_id: JobId) -> None:
        try:
            self.registry.dismiss(job_id)
        except (ImgEditError, ValueError) as exc:
            ui.notify(str(exc), type="warning")
        self.tick()

    # -- images ----------------------------------------------------------------------------

    def _image_card(self, record: ImageRecord, *, arriving: bool) -> ui.element:
        with (
            ui.element("div")
            .classes("imgedit-card imgedit-image-card")
            .mark("image-card", f"image-{record.id}") as card
        ):
            if arriving:
                card.classes("imgedit-new")
            card.on("click", functools.partial(self.image_dialog.open, record))
            with ui.element("div").classes("imgedit-media"):
                ui.element("img").props(
                    f'src="/media/thumbs/{record.id}" alt="{_attr(record.title)}" loading="lazy"'
                ).classes("imgedit-thumb")
            with ui.element("div").classes("imgedit-card-body"):
                ui.label(record.title).classes("imgedit-title")
                lineage = lineage_text(record, self.services)
                if lineage:
                    ui.label(lineage).classes("imgedit-lineage")
                meta = f"{fmt.ORIGIN_LABELS[record.origin]} · {record.width}×{record.height}"
                ui.label(meta).classes("imgedit-meta")
        return card

    async def _on_upload(self, event: events.UploadEventArguments) -> None:
        name = event.file.name or "upload"
        try:
            data = await event.file.read()
            record, _note = await self.store.add_upload(data, name=name)
        except ImgEditError as exc:
            ui.notify(f"{exc} Nothing was added.", type="negative", multi_line=True)
            return
        ui.notify(f"Added “{record.title}” to the gallery.", type="positive")
        self.upload.reset()
        self.tick()

    async def _delete(self, record: ImageRecord) -> None:
        try:
            await self.store.delete(record.id)
        except ImgEditError as exc:
            ui.notify(str(exc), type="warning")
            return
        ui.notify(f"Deleted “{record.title}”.")
        self.tick()


def _attr(text: str) -> str:
    return text.replace('"', "'")
