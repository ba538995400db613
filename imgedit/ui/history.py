"""The /history page: every job the journal kept, newest first, one page of rows at a time.

Filters (status, provider) and the prompt search go to the database (``imgedit.jobs.history``,
called off the event loop); "Load more" appends the next keyset page, so the first render
holds one page whatever the history's size. Per row: Retry (the prompt editable first, then a
new job through ``Studio``) and Delete (asks first; the images stay). User text reaches
elements as text or as prop values, never through a parsed props string.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nicegui import ui

from imgedit.errors import ImgEditError
from imgedit.jobs import JobStage
from imgedit.jobs import history as journal_history
from imgedit.jobs.history import Cursor, HistoryRow
from imgedit.models import ImageRecord, JobKind
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import signin, theme, urls
from imgedit.ui.dialogs import (
    ImageDialog,
    JobDialog,
    image_title,
    job_settings_text,
    name_dialog,
)

STATUS_FILTERS: dict[str, tuple[str, frozenset[JobStage]]] = {
    "all": ("All statuses", frozenset()),
    "completed": ("Completed", frozenset({JobStage.COMPLETED})),
    "failed": ("Failed", frozenset({JobStage.FAILED})),
    "cancelled": ("Cancelled", frozenset({JobStage.CANCELLED})),
    "interrupted": ("Interrupted", frozenset({JobStage.INTERRUPTED})),
    "active": (
        "Queued or running",
        frozenset({JobStage.QUEUED, JobStage.INITIALIZING, JobStage.PROCESSING, JobStage.FINALIZING}),
    ),
}
ALL_PROVIDERS = "__all__"
ANY_REASON = "__any__"
SEARCH_DEBOUNCE_MS = 350


def nav(current: str) -> None:
    """Gallery ⇄ History links for a page header."""
    with ui.element("nav").classes("imgedit-nav") as bar:
        bar.props["aria-label"] = "Pages"
        for label, target in (("Gallery", "/"), ("History", "/history")):
            link = ui.link(label, target).classes("imgedit-nav-link").mark(f"nav-{label.lower()}")
            if target == current:
                link.classes("imgedit-nav-current")
                link.props["aria-current"] = "page"


class HistoryView:
    """One browser tab's history page."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.store.db
        self.cursor: Cursor | None = None
        self.total = 0
        self.shown = 0
        self.rows: dict[str, ui.element] = {}
        self._generation = 0

    async def build(self) -> None:
        self.delete_dialog = DeleteDialog(on_confirm=self._delete)
        # Retry opens the gallery's own Edit / New image form, filled with the job's settings.
        self.job_dialog = JobDialog(self.services, on_submitted=self._after_retry)
        self.image_dialog = ImageDialog(
            self.services, on_edit=self.job_dialog.open_edit, on_delete=self._delete_image
        )
        with ui.row().classes("imgedit-header"):
            ui.label("imgedit").classes("imgedit-logo")
            nav("/history")
            ui.space()
            self.count = ui.label().classes("imgedit-summary").mark("history-count")
            self.count.props["aria-live"] = "polite"
            refresh = ui.button(icon="refresh", on_click=self.refresh).props("flat round color=ie-quiet")
            refresh.props["aria-label"] = "Refresh"
            refresh.mark("history-refresh")
            with refresh:
                ui.tooltip("Refresh")
            theme.switch()
            signin.account_controls(self.services)
        with ui.column().classes("imgedit-main imgedit-history"):
            with ui.row().classes("imgedit-history-filters w-full items-center no-wrap gap-3"):
                self.search = (
                    ui.input(placeholder="Search prompts and errors", on_change=self.reload)
                    .props(f"outlined dense clearable debounce={SEARCH_DEBOUNCE_MS} color=ie-accent")
                    .classes("grow")
                    .mark("history-search")
                )
                self.search.props["aria-label"] = "Search prompts and errors"
                with self.search.add_slot("prepend"):
                    ui.icon("search")
                self.status = (
                    ui.select(
                        {key: label for key, (label, _) in STATUS_FILTERS.items()},
                        value="all",
                        label="Status",
                        on_change=self.reload,
                    )
                    .props("outlined dense options-dense color=ie-accent")
                    .classes("imgedit-history-select")
                    .mark("history-status")
                )
                self.provider = (
                    ui.select({ALL_PROVIDERS: "All providers"}, value=ALL_PROVIDERS, label="Provider")
                    .props("outlined dense options-dense color=ie-accent")
                    .classes("imgedit-history-select")
                    .mark("history-provider")
                )
                self.provider.on_value_change(self.reload)
                # Why jobs failed (FailureKind), offered once the history holds a failure of that kind.
                self.reason = (
                    ui.select({ANY_REASON: "Any reason"}, value=ANY_REASON, label="Failure")
                    .props("outlined dense options-dense color=ie-accent")
                    .classes("imgedit-history-select")
                    .mark("history-failure")
                )
                self.reason.on_value_change(self.reload)
            self.list = ui.element("div").classes("imgedit-history-list").mark("history-list")
            self.empty = ui.label().classes("imgedit-empty").mark("history-empty")
            self.more = (
                ui.button("Load more", icon="expand_more", on_click=self.load_more)
                .props("flat no-caps color=ie-accent")
                .classes("self-center")
                .mark("history-more")
            )
        await self._load_providers()
        await self.reload()

    # -- loading -------------------------------------------------------------------------------

    def _query(self, before: Cursor | None) -> journal_history.HistoryPage:
        stages = STATUS_FILTERS.get(str(self.status.value), STATUS_FILTERS["all"])[1]
        provider = None if self.provider.value in (None, ALL_PROVIDERS) else str(self.provider.value)
        reason = None if self.reason.value in (None, ANY_REASON) else {str(self.reason.value)}
        return journal_history.page(
            self.db,
            status=stages,
            provider=provider,
            failure=reason,
            search=str(self.search.value or ""),
            before=before,
        )

    async def reload(self) -> None:
        """Page 1 for the current filters; a slower, older answer never overwrites a newer one."""
        self._generation += 1
        generation = self._generation
        page = await asyncio.to_thread(self._query, None)
        if generation != self._generation:
            return
        self.list.clear()
        self.rows.clear()
        self.total, self.shown = page.total, 0
        self._show(page)

    async def refresh(self) -> None:
        await self._load_providers()
        await self.reload()

    async def load_more(self) -> None:
        if self.cursor is None:
            return
        generation = self._generation
        page = await asyncio.to_thread(self._query, self.cursor)
        if generation == self._generation:
            self._show(page)

    async def _load_providers(self) -> None:
        names, kinds = await asyncio.to_thread(
            lambda: (journal_history.providers(self.db), journal_history.failure_kinds(self.db))
        )
        reasons = {ANY_REASON: "Any reason", **{kind.value: kind.label for kind in kinds}}
        self.reason.set_options(
            reasons, value=self.reason.value if self.reason.value in reasons else ANY_REASON
        )
        known = {p.name: p.label for p in self.services.providers.all()}
        options = {ALL_PROVIDERS: "All providers", **{n: known.get(n, n) for n in names}}
        self.provider.set_options(
            options, value=self.provider.value if self.provider.value in options else ALL_PROVIDERS
        )

    def _show(self, page: journal_history.HistoryPage) -> None:
        self.total = page.total
        self.cursor = page.next_cursor
        with self.list:
            for row in page.rows:
                self.rows[row.id] = self._row(row)
        self.shown += len(page.rows)
        self._update_counts()

    def _update_counts(self) -> None:
        self.more.set_visibility(self.cursor is not None)
        filtered = (
            bool(self.search.value)
            or self.status.value != "all"
            or self.provider.value != ALL_PROVIDERS
            or self.reason.value != ANY_REASON
        )
        noun = "job" if self.total == 1 else "jobs"
        self.count.set_text(
            f"{self.shown:,} of {self.total:,} {noun}" if self.cursor else f"{self.total:,} {noun}"
        )
        self.empty.set_text(
            "No job matches these filters." if filtered else "No jobs yet. They appear here as you run them."
        )
        self.empty.set_visibility(self.total == 0)

    # -- one row -------------------------------------------------------------------------------

    def _row(self, row: HistoryRow) -> ui.element:
        with ui.element("div").classes("imgedit-history-row").mark("history-row", f"job-{row.id}") as element:
            element.props["data-stage"] = row.stage.value
            with ui.element("div").classes("imgedit-history-thumbs"):
                if row.kind is JobKind.EDIT:
                    self._thumb(row.source_image_id, "Before")
                else:
                    with ui.element("div").classes("imgedit-history-thumb imgedit-history-none"):
                        ui.icon("text_fields")
                        ui.label("prompt")
                ui.icon("arrow_forward").classes("imgedit-history-arrow")
                self._thumb(row.result_image_id, "After", pending=not row.stage.is_finished)
            with ui.element("div").classes("imgedit-history-body"):
                with ui.element("div").classes("imgedit-history-status"):
                    ui.icon(fmt.STAGE_ICONS.get(row.stage, "help"))
                    ui.label(_stage_text(row)).mark("history-stage")
                    ui.label(f"{fmt.kind_label(row.kind)} · {_when(row.created_at)}").classes("imgedit-meta")
                    if row.started_by:
                        ui.label(f"by {row.started_by}").classes("imgedit-meta").mark("history-started-by")
                ui.label(row.prompt).classes("imgedit-history-prompt").mark("history-prompt")
                ui.label(self._meta(row)).classes("imgedit-meta")
                if row.stage is JobStage.FAILED and row.error:
                    ui.label(row.error).classes("imgedit-history-error")
                if row.stage is JobStage.FAILED and row.failure is not None:
                    ui.label(self._failure_text(row)).classes("imgedit-meta imgedit-failure").mark(
                        "history-failure-detail"
                    )
            with ui.element("div").classes("imgedit-history-actions"):
                retry = ui.button(icon="replay", on_click=lambda r=row: self.retry(r))
                retry.props("flat round color=ie-accent").mark("history-retry", f"retry-{row.id}")
                retry.props["aria-label"] = "Retry with this prompt"
                with retry:
                    ui.tooltip("Retry…")
                store = self.services.store
                if (
                    row.kind is JobKind.EDIT
                    and row.stage is JobStage.COMPLETED
                    and row.source_image_id in store
                    and row.result_image_id in store
                ):
                    compare = ui.button(icon="compare", on_click=lambda r=row: self._compare(r))
                    compare.props("flat round color=ie-accent").mark("history-compare", f"compare-{row.id}")
                    compare.props["aria-label"] = "Compare with the original"
                    with compare:
                        ui.tooltip("Compare with the original")
                if row.stage.is_finished:
                    delete = ui.button(icon="delete", on_click=lambda r=row: self.delete_dialog.open(r))
                    delete.props("flat round color=ie-danger").mark("history-delete", f"delete-{row.id}")
                    delete.props["aria-label"] = "Delete from history"
                    with delete:
                        ui.tooltip("Delete from history")
        return element

    def _thumb(self, image_id: str | None, what: str, *, pending: bool = False) -> None:
        store = self.services.store
        if image_id and image_id in store:
            record = store.get(image_id)
            title = image_title(record, self.services)
            with (
                ui.element("div")
                .classes("imgedit-history-thumb imgedit-history-image")
                .mark(f"open-{what.lower()}-{record.id}") as box
            ):
                image = ui.element("img")
                image.props.update(src=urls.thumb(record.id), alt=f"{what}: {title}", loading="lazy")
                box.props["role"] = "button"
                box.props["tabindex"] = "0"
                box.props["aria-label"] = f"Open {what.lower()} image: {title}"
                box.on("click", lambda r=record: self.image_dialog.open(r))
                box.on("keydown.enter", lambda r=record: self.image_dialog.open(r))
            return
        with ui.element("div").classes("imgedit-history-thumb imgedit-history-none"):
            if pending:
                ui.icon("hourglass_empty")
                ui.label("not yet")
            elif image_id:
                ui.icon("hide_image")
                ui.label("deleted")
            else:
                ui.icon("block")
                ui.label("no image")

    def _failure_text(self, row: HistoryRow) -> str:
        """``Rate limited · HTTP 429 · rate_limit_exceeded``: the error's structure in words, as on
        the failed card."""
        failure = row.failure
        assert failure is not None
        parts = [failure.kind.label]
        if failure.provider and failure.provider != row.provider:  # the row's own is in its meta line
            try:
                parts.append(self.services.providers.get(failure.provider).label)
            except ImgEditError:
                parts.append(failure.provider)
        if described := failure.describe():
            parts.append(described)
        return " · ".join(parts)

    def _meta(self, row: HistoryRow) -> str:
        try:
            provider = self.services.providers.get(row.provider).label
        except ImgEditError:
            provider = row.provider
        parts = [provider + (f" ({row.model})" if row.model else ""), row.quality.value.capitalize()]
        if row.size:
            parts.append(f"{row.size[0]}×{row.size[1]}")
        if row.duration is not None:
            parts.append(duration_text(row.duration))
        if row.variations > 1:
            parts.append(f"{row.variations} variations")
        if row.attempt > 1:
            parts.append(f"attempt {row.attempt}")
        if extra := job_settings_text(row.seed, row.negative_prompt):
            parts.append(extra)
        return " · ".join(parts)

    # -- actions ---------------------------------------------------------------------------

    def retry(self, row: HistoryRow) -> None:
        """The job's form, filled with its prompt and settings (area, Advanced, variations), all
        editable; Start queues a new job. An edit whose original is gone cannot run again."""
        source = None
        if row.kind is JobKind.EDIT:
            store = self.services.store
            if row.source_image_id is None or row.source_image_id not in store:
                ui.notify("The original image was deleted, so this edit cannot run again.", type="warning")
                return
            source = store.get(row.source_image_id)
        self.job_dialog.open_with(row.spec, source)

    def _after_retry(self) -> None:
        ui.notify("Queued. It runs in the background; the gallery shows its progress.", type="positive")
        # The journal writes the new row off the event loop; look again once it is there.
        ui.timer(0.5, self.reload, once=True)

    def _compare(self, row: HistoryRow) -> None:
        store = self.services.store
        if row.source_image_id in store and row.result_image_id in store:
            assert row.source_image_id is not None and row.result_image_id is not None
            self.image_dialog.compare.open(store.get(row.result_image_id), store.get(row.source_image_id))
        else:
            ui.notify("One of the two images was deleted meanwhile.", type="warning")

    async def _delete(self, row: HistoryRow) -> None:
        if not await asyncio.to_thread(journal_history.delete, self.db, row.id):
            ui.notify("That job is still queued or running; cancel it first.", type="warning")
            return
        element = self.rows.pop(row.id, None)
        if element is not None:
            self.list.remove(element)
            self.shown -= 1
        self.total = max(0, self.total - 1)
        self._update_counts()
        ui.notify("Deleted from the history. Its images stay in the gallery.")

    async def _delete_image(self, record: ImageRecord) -> None:
        try:
            await self.services.store.delete(record.id)
        except ImgEditError as exc:
            ui.notify(str(exc), type="warning")
            return
        ui.notify(f"Deleted “{image_title(record, self.services)}”.")
        await self.reload()


class DeleteDialog:
    """Asks before a job leaves the history."""

    def __init__(self, *, on_confirm: Callable[[HistoryRow], Awaitable[None]]) -> None:
        self._on_confirm = on_confirm
        self.row: HistoryRow | None = None
        with ui.dialog() as self.dialog, ui.card().classes("imgedit-dialog q-pa-lg gap-3"):
            question = ui.label("Delete this job from the history?").classes("text-body1")
            name_dialog(self.dialog, question)
            self.prompt = ui.label().classes("imgedit-history-prompt")
            ui.label("Only the history entry goes; its images stay in the gallery.").classes("imgedit-hint")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Keep it", on_click=self.dialog.close).props("flat no-caps color=ie-quiet")
                ui.button("Delete", on_click=self._confirm).props("unelevated no-caps color=red-9").mark(
                    "history-confirm-delete"
                )

    def open(self, row: HistoryRow) -> None:
        self.row = row
        self.prompt.set_text(f"“{fmt.shorten(row.prompt, 200)}”")
        self.dialog.open()

    async def _confirm(self) -> None:
        self.dialog.close()
        if self.row is not None:
            row, self.row = self.row, None
            await self._on_confirm(row)


def _stage_text(row: HistoryRow) -> str:
    if row.stage is JobStage.FAILED and row.attempt > 1:
        return f"Failed (attempt {row.attempt})"
    return row.stage.value.capitalize()


def _when(timestamp: float) -> str:
    return time.strftime("%d %b %Y, %H:%M", time.localtime(timestamp))


def duration_text(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``2:05``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return fmt.clock(seconds)
