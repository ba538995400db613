"""Batch edits in the UI: the dialog that edits a selection of images with one prompt, and the
jobs tray's row for a batch.

``BatchDialog`` (opened from the gallery's selection bar) shows the selection's thumbnails, one
prompt, quality and provider (only providers that can edit), and Start, which queues one edit
per image through ``Studio.submit_batch`` and closes at once; each job then gets its own loading
card as any edit does. ``BatchRow`` is a batch in the tray: how many of its jobs are done (and
failed or cancelled), a bar over the whole batch, Cancel batch, and a toggle that lists its jobs
(the tray builds those rows, as it builds every job's). User text (prompts, image titles) reaches
elements as text or as prop values, never through a parsed props string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nicegui import ui

from imgedit.editing import MAX_BATCH
from imgedit.errors import ImgEditError
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageRecord, JobId, JobKind, Quality
from imgedit.providers.base import Provider
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import signin, urls
from imgedit.ui.dialogs import (
    chosen_provider,
    chosen_variations,
    name_dialog,
    prompt_field,
    settings_fields,
    show_error,
    variants_of,
    variations_field,
)
from imgedit.ui.patch import LiveLabel, Patch

THUMBS_SHOWN = 12
"""The dialog shows this many of the selection's thumbnails, then "and N more"."""
_THUMBS_STYLE = "display: flex; flex-wrap: wrap; gap: 8px"
_THUMB_STYLE = "width: 64px; height: 48px; object-fit: cover; border-radius: 6px; display: block"


def images_noun(count: int) -> str:
    """``1 image``, ``3 images``."""
    return f"{count} image{'s' if count != 1 else ''}"


class BatchDialog:
    """Edit a selection of images with one prompt. Start queues the batch and closes at once."""

    def __init__(
        self,
        services: Services,
        *,
        title: Callable[[ImageRecord], str],
        on_submitted: Callable[[list[JobId]], None],
    ) -> None:
        self.services = services
        self._title = title
        self._on_submitted = on_submitted
        self.images: list[ImageRecord] = []
        self._submitted = False
        with ui.dialog() as self.dialog, ui.card().classes("imgedit-dialog q-pa-lg gap-3"):
            self.dialog.mark("batch-dialog")
            self.heading = ui.label().classes("text-h6").mark("batch-title")
            name_dialog(self.dialog, self.heading)
            self.thumbs = ui.element("div").style(_THUMBS_STYLE).mark("batch-thumbs")
            self.thumbs.props["role"] = "list"
            self.thumbs.props["aria-label"] = "Images to edit"
            self.more = ui.label().classes("imgedit-hint").mark("batch-more")
            self.prompt = prompt_field("What should change in each image?", "batch-prompt", self.submit)
            self.quality, self.provider, self.variant = settings_fields("batch-", self._refresh_estimates)
            with ui.row().classes("w-full no-wrap"):
                self.variations = variations_field("batch-variations", self._refresh_estimates)
            self.note = ui.label().classes("imgedit-hint").mark("batch-note")
            self.note.props["role"] = "status"
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat no-caps color=ie-quiet")
                self.start = (
                    ui.button("Start", on_click=self.submit)
                    .props("unelevated no-caps color=deep-purple-5")
                    .mark("batch-start")
                )

    def open(self, images: Sequence[ImageRecord]) -> None:
        self.images = list(images)
        count = len(self.images)
        self.heading.set_text(f"Edit {images_noun(count)}")
        self.thumbs.clear()
        with self.thumbs:
            for image in self.images[:THUMBS_SHOWN]:
                with ui.element("div") as item:
                    item.props["role"] = "listitem"
                    picture = ui.element("img").style(_THUMB_STYLE)
                    picture.props.update({"src": urls.thumb(image.id), "alt": self._title(image)})
        hidden = count - THUMBS_SHOWN
        self.more.set_text(f"and {hidden} more" if hidden > 0 else "")
        self.more.set_visibility(hidden > 0)
        too_many = count > MAX_BATCH
        self.note.set_text(
            f"A batch edits at most {MAX_BATCH} images; {count} are selected. Select fewer to start."
            if too_many
            else "Each image gets its own edit with these settings; each can be cancelled on its own, "
            "or all at once from the jobs tray."
        )
        self.start.set_enabled(not too_many and count > 0)
        self.start.set_text(f"Start {count} edit{'s' if count != 1 else ''}" if not too_many else "Start")
        providers = self.services.providers.offering(JobKind.EDIT)
        self.provider.set_options({p.name: p.label for p in providers}, value=providers[0].name)
        self.prompt.value = ""
        self.prompt.props.pop("error", None)
        self.variations.set_value(1)
        self._submitted = False
        self.start.props.pop("loading", None)
        self._refresh_estimates()
        self.dialog.open()

    def _chosen_provider(self) -> Provider | None:
        return chosen_provider(self.services, self.provider)

    def _refresh_estimates(self) -> None:
        provider = self._chosen_provider()
        if provider is None:
            return
        durations = self.services.studio.durations
        first = self.images[0] if self.images else None
        size = (first.width, first.height) if first is not None else None
        count = chosen_variations(self.variations)
        options = {
            q.value: f"{q.value.capitalize()} · "
            + fmt.seconds_label(durations.expected(provider.name, JobKind.EDIT, q, size=size) * count)
            + " each"
            for q in Quality
        }
        self.quality.set_options(options, value=self.quality.value or Quality.MEDIUM.value)
        names = variants_of(provider, JobKind.EDIT)
        if len(names) > 1:
            self.variant.props["label"] = getattr(provider, "variant_label", "Variant")
            self.variant.set_options(
                names, value=self.variant.value if self.variant.value in names else names[0]
            )
        else:
            self.variant.set_options([], value=None)
        self.variant.set_visibility(len(names) > 1)

    def submit(self) -> None:
        """One batch per open of the dialog, however often Start is clicked or Enter pressed."""
        if self._submitted or not self.dialog.value or not self.start.enabled:
            return
        try:
            _batch, jobs = self.services.studio.submit_batch(
                [image.id for image in self.images],
                str(self.prompt.value or ""),
                Quality(self.quality.value),
                str(self.provider.value),
                started_by=signin.current_name(self.services),
                variant=str(self.variant.value or "") if self.variant.visible else "",
                variations=chosen_variations(self.variations),
            )
        except ImgEditError as exc:
            show_error(self.prompt, str(exc))
            return
        self._submitted = True
        self.start.props["loading"] = True
        self.dialog.close()
        ui.notify(f"Queued {len(jobs)} edit{'s' if len(jobs) != 1 else ''}.", type="info")
        self._on_submitted(jobs)


def batch_counts(stages: Sequence[JobStage]) -> str:
    """``3 of 8 done``; ``3 of 8 done · 1 failed · 2 cancelled``."""
    done = stages.count(JobStage.COMPLETED)
    parts = [f"{done} of {len(stages)} done"]
    for stage, word in (
        (JobStage.FAILED, "failed"),
        (JobStage.INTERRUPTED, "interrupted"),
        (JobStage.CANCELLED, "cancelled"),
    ):
        if number := stages.count(stage):
            parts.append(f"{number} {word}")
    return " · ".join(parts)


def _unfinished_order(snapshot: JobSnapshot) -> tuple[int, float, float]:
    """Running first (oldest start first), then the queue in its order."""
    if snapshot.queue_position is not None:
        return (1, float(snapshot.queue_position), 0.0)
    return (0, snapshot.started_at or float("inf"), snapshot.created_at)


class BatchRow:
    """One batch in the jobs tray. The tray builds and updates the rows of its jobs inside
    ``jobs_box`` while the row is expanded; collapsed, they are not built."""

    def __init__(
        self,
        batch_id: str,
        first: JobSnapshot,
        *,
        on_cancel: Callable[[str], None],
        on_toggle: Callable[[], None],
    ) -> None:
        self.batch_id = batch_id
        self.expanded = False
        self.jobs: list[JobSnapshot] = []
        """The batch's unfinished jobs, running first, then in queue order (as of the last update)."""
        self._stages: dict[JobId, JobStage] = {}
        """Every job of the batch this tab has seen, with its last stage: the counts do not
        shrink when a finished job is dismissed or forgotten by the registry."""
        self._on_toggle = on_toggle
        prompt = first.spec.prompt
        short = fmt.shorten(prompt, 40)
        with (
            ui.element("div")
            .classes("imgedit-tray-row imgedit-tray-running")
            .mark("tray-batch", f"tray-batch-{batch_id}") as self.root
        ):
            self.root.props["role"] = "listitem"
            with ui.element("div").classes("imgedit-tray-thumb flex flex-center"):
                ui.icon("collections").props["aria-hidden"] = "true"
            with ui.element("div").classes("imgedit-tray-text"):
                title = ui.label(f"Batch: “{prompt}”").classes("imgedit-tray-prompt")
                title.props["title"] = prompt
                self.status = LiveLabel().classes("imgedit-tray-status").mark(f"tray-batch-status-{batch_id}")
                self.bar = ui.linear_progress(value=0.0, show_value=False, size="6px").props(
                    "rounded color=ie-accent"
                )
                self.bar.props["aria-label"] = f"Progress of the batch “{short}”"
            with ui.element("div").classes("imgedit-tray-actions items-center"):
                self.toggle = ui.button(icon="expand_more", on_click=self.toggle_jobs).props(
                    "flat round dense color=ie-quiet"
                )
                self.toggle.mark(f"tray-batch-toggle-{batch_id}")
                self.toggle.props["aria-label"] = f"Show the jobs of the batch “{short}”"
                self.toggle.props["aria-expanded"] = "false"
                self.cancel = (
                    ui.button("Cancel batch", on_click=lambda: on_cancel(batch_id))
                    .props("flat no-caps dense color=ie-danger")
                    .mark("tray-cancel-batch", f"tray-cancel-batch-{batch_id}")
                )
                self.cancel.props["aria-label"] = f"Cancel batch “{short}”"
            self.jobs_box = ui.element("div").classes("imgedit-tray-list").style("grid-column: 1 / -1")
            self.jobs_box.props["role"] = "list"
            self.jobs_box.props["aria-label"] = f"Jobs of the batch “{short}”"
            self.jobs_box.set_visibility(False)

    def update(self, group: Sequence[JobSnapshot], *, patch: Patch, live: bool) -> None:
        """``group``: the registry's jobs of this batch. The counts change only when a job ends;
        the bar is brought up to date only while the drawer is open (``live``)."""
        stages = self._stages
        unfinished: list[JobSnapshot] = []
        running = 0.0
        for snapshot in group:
            stages[snapshot.id] = snapshot.stage
            if not snapshot.stage.is_finished:
                unfinished.append(snapshot)
                running += snapshot.progress
        if self.expanded:
            unfinished.sort(key=_unfinished_order)
        self.jobs = unfinished
        shown = list(stages.values())
        patch.text(self.status, batch_counts(shown))
        if live:
            ended = sum(stage.is_finished for stage in shown)
            patch.prop(self.bar, "value", round((ended + running) / max(1, len(shown)), 3))

    def toggle_jobs(self) -> None:
        self.expanded = not self.expanded
        self.jobs_box.set_visibility(self.expanded)
        self.toggle.props["icon"] = "expand_less" if self.expanded else "expand_more"
        self.toggle.props["aria-expanded"] = "true" if self.expanded else "false"
        label = str(self.toggle.props["aria-label"])
        self.toggle.props["aria-label"] = label.replace(
            "Hide" if not self.expanded else "Show", "Show" if not self.expanded else "Hide", 1
        )
        self._on_toggle()
