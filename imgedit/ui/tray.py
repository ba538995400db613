"""The jobs tray: a badge in the sticky header and a drawer that steers the queue.

The badge says what runs ("2 running · 3 queued", or that the queue is paused) and opens the
drawer: running and queued jobs with the source thumbnail, prompt, position and wait, each
with Cancel, Move to front and Move up / down; and for the whole queue Pause / Resume, Cancel
all queued, the number of jobs at once, and the sound toggle (kept in the browser's
localStorage by ``static/notify.js``).

Every tab has its own tray driven by the gallery's 1-second tick: ``sync(snapshots)`` runs only
when the registry's version moved, keeps one row per job and touches only what changed. Rows are
built only while the drawer is open (opening it builds the missing ones at once); closed, the
badge and controls stay live and rows already built are kept up to date, but no new one is made. User
text (prompts) reaches elements as text or as prop values, never through a parsed props string.

A batch (one prompt over several images) is one row (``imgedit.ui.batch.BatchRow``): "3 of 8
done", a bar over the batch, Cancel batch; expanded, its jobs' rows are built inside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from nicegui import ui

from imgedit.errors import ImgEditError
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import JobId
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import urls
from imgedit.ui.batch import BatchRow
from imgedit.ui.patch import UNSENT, LiveLabel, Patch

MAX_SLOTS_CHOICE = 16
"""The concurrency control offers 1..16 (more if the server was started with more)."""


def summary_text(running: int, queued: int, *, paused: bool) -> str:
    """``2 running · 3 queued``; ``Paused · 3 queued``; ``No jobs``."""
    parts = [f"{running} running"] if running else []
    parts += [f"{queued} queued"] if queued else []
    if paused:
        parts.insert(0, "Paused")
    return " · ".join(parts) or "No jobs"


def _wait_text(snapshot: JobSnapshot, *, paused: bool) -> str:
    position = snapshot.queue_position
    if position is None:
        return "Starting"
    where = f"#{position} in the queue"
    if paused:
        return f"{where} · paused"
    if snapshot.waiting_for_provider:
        return f"{where} · waiting for a free server"
    if snapshot.eta_s is None:
        return where
    wait = max(0.0, snapshot.eta_s - snapshot.expected_s)
    return f"{where} · starts in ≈{fmt.clock(wait)}" if wait >= 1 else f"{where} · next"


def _running_text(snapshot: JobSnapshot) -> str:
    parts = [snapshot.stage.value.capitalize(), f"{snapshot.percent}%"]
    eta = fmt.eta_text(snapshot.eta_s)
    if eta:
        parts.append(eta)
    return " · ".join(parts)


_QUEUED = JobStage.QUEUED
_FINISHED = frozenset(stage for stage in JobStage if stage.is_finished)


def _running_order(snapshot: JobSnapshot) -> tuple[float, float]:
    return (snapshot.started_at or float("inf"), snapshot.created_at)


def _queue_order(snapshot: JobSnapshot) -> int:
    return snapshot.queue_position or 0


def _icon_button(icon: str, label: str, on_click: Callable[[], None], marker: str) -> ui.button:
    button = ui.button(icon=icon, on_click=on_click).props("flat round dense color=ie-quiet").mark(marker)
    button.props["aria-label"] = label  # a value, never parsed: the label may quote a prompt
    button.tooltip(label)
    return button


class TrayRow:
    """One job in the tray; ``update`` sends only what changed (its status through the ``Patch``)."""

    def __init__(self, tray: JobsTray, snapshot: JobSnapshot, thumb: str | None) -> None:
        self.job_id = snapshot.id
        self._shown: tuple[object, ...] | None = None
        self._status_for: tuple[object, ...] | None = None
        prompt = fmt.shorten(snapshot.spec.prompt, 40)
        with (
            ui.element("div")
            .classes("imgedit-tray-row")
            .mark("tray-job", f"tray-job-{snapshot.id}") as self.root
        ):
            self.root.props["role"] = "listitem"
            with ui.element("div").classes("imgedit-tray-thumb"):
                if thumb:
                    image = ui.element("img")
                    image.props["src"] = thumb
                    image.props["alt"] = ""
                else:
                    ui.icon("brush").props["aria-hidden"] = "true"
            with ui.element("div").classes("imgedit-tray-text"):
                what = fmt.kind_label(snapshot.spec.kind)
                title = ui.label(f"{what}: “{snapshot.spec.prompt}”").classes("imgedit-tray-prompt")
                title.props["title"] = snapshot.spec.prompt
                self.status = LiveLabel().classes("imgedit-tray-status").mark(f"tray-status-{snapshot.id}")
            with ui.element("div").classes("imgedit-tray-actions"):
                self.front = _icon_button(
                    "vertical_align_top",
                    f"Move “{prompt}” to the front",
                    lambda: tray.move_to_front(self.job_id),
                    f"tray-front-{snapshot.id}",
                )
                self.up = _icon_button(
                    "arrow_upward",
                    f"Move “{prompt}” up",
                    lambda: tray.move_by(self.job_id, -1),
                    f"tray-up-{snapshot.id}",
                )
                self.down = _icon_button(
                    "arrow_downward",
                    f"Move “{prompt}” down",
                    lambda: tray.move_by(self.job_id, +1),
                    f"tray-down-{snapshot.id}",
                )
                self.cancel = _icon_button(
                    "close",
                    f"Cancel “{prompt}”",
                    lambda: tray.cancel(self.job_id),
                    f"tray-cancel-{snapshot.id}",
                )
                self.cancel.props["color"] = "ie-danger"

    def update(
        self, snapshot: JobSnapshot, *, paused: bool, queued_count: int, patch: Patch, live: bool
    ) -> None:
        """``live``: the drawer is open. Closed, the status is rewritten only when what it says
        changes (stage, position, pause, waiting), not for each new percent or wait; opening
        the drawer brings every row up to date first."""
        queued = snapshot.stage is JobStage.QUEUED
        status_for = (snapshot.stage, snapshot.queue_position, paused, snapshot.waiting_for_provider)
        if live or status_for != self._status_for:
            self._status_for = status_for
            patch.text(
                self.status, _wait_text(snapshot, paused=paused) if queued else _running_text(snapshot)
            )
        position = snapshot.queue_position
        movable = queued and position is not None
        shown = (queued, movable, position, queued_count)
        if shown == self._shown:
            return
        self._shown = shown
        self.root.classes(
            add="imgedit-tray-running" if not queued else "",
            remove="" if not queued else "imgedit-tray-running",
        )
        for button in (self.front, self.up, self.down):
            button.set_visibility(movable)
        if movable:
            assert position is not None
            self.front.set_enabled(position > 1)
            self.up.set_enabled(position > 1)
            self.down.set_enabled(position < queued_count)


class JobsTray:
    """The header badge and the drawer of one tab."""

    def __init__(
        self,
        services: Services,
        *,
        patch: Patch,
        on_cancel: Callable[[JobId], None],
        on_hide: Callable[[Iterable[JobId]], None],
    ) -> None:
        self.registry = services.registry
        self.store = services.store
        self._on_cancel = on_cancel
        self._on_hide = on_hide
        self._patch = patch
        self.rows: dict[JobId, TrayRow] = {}
        self.batch_rows: dict[str, BatchRow] = {}
        self._paused_shown: bool | None = None

    # -- building ----------------------------------------------------------------------------

    def build_drawer(self) -> None:
        """The drawer; call at the page's top level (Quasar drawers belong to the layout)."""
        self.drawer = (
            ui.right_drawer(value=False, fixed=True, bordered=True).classes("imgedit-tray").mark("tray")
        )
        self.drawer.on_value_change(self._on_drawer)
        self.drawer.props["overlay"] = True
        self.drawer.props["width"] = 420
        self.drawer.props["aria-label"] = "Jobs tray"
        self.drawer.props["role"] = "dialog"
        with self.drawer:
            with ui.row().classes("imgedit-tray-head"):
                ui.label("Jobs").classes("imgedit-tray-title")
                ui.space()
                self.close_button = _icon_button("close", "Close the jobs tray", self.close, "tray-close")
                self.close_button.props["color"] = "ie-quiet"
            with ui.element("div").classes("imgedit-tray-controls"):
                self.pause_button = (
                    ui.button(on_click=self.toggle_pause)
                    .props("unelevated no-caps dense color=deep-purple-6")
                    .classes("imgedit-tray-pause")
                    .mark("tray-pause")
                )
                self.cancel_all = (
                    ui.button("Cancel all queued", icon="clear_all", on_click=self.cancel_queued)
                    .props("flat no-caps dense color=ie-danger")
                    .mark("tray-cancel-queued")
                )
                self.slots = (
                    ui.number(
                        label="Jobs at once",
                        min=1,
                        max=max(MAX_SLOTS_CHOICE, self.registry.max_concurrent),
                        step=1,
                        precision=0,
                        value=self.registry.max_concurrent,
                        on_change=self._on_slots,
                    )
                    .props("outlined dense color=ie-accent")
                    .classes("imgedit-tray-slots")
                    .mark("tray-slots")
                )
                self.slots.props["debounce"] = 400  # typing "12" must not pass through 1
                self.sound = (
                    ui.switch("Sound when a job ends", on_change=self._on_sound)
                    .props("dense color=ie-accent")
                    .mark("tray-sound")
                )
            self.batches_title = ui.label("Batches").classes("imgedit-tray-section")
            self.batches_box = ui.element("div").classes("imgedit-tray-list").mark("tray-batches")
            self.batches_box.props["role"] = "list"
            self.batches_box.props["aria-label"] = "Batches"
            for element in (self.batches_title, self.batches_box):
                element.set_visibility(False)
            ui.label("Running").classes("imgedit-tray-section")
            self.running_box = ui.element("div").classes("imgedit-tray-list").mark("tray-running")
            self.running_box.props["role"] = "list"
            self.running_box.props["aria-label"] = "Running jobs"
            self.no_running = ui.label("Nothing is running.").classes("imgedit-tray-empty")
            ui.label("Queued").classes("imgedit-tray-section")
            self.queued_box = ui.element("div").classes("imgedit-tray-list").mark("tray-queued")
            self.queued_box.props["role"] = "list"
            self.queued_box.props["aria-label"] = "Queued jobs"
            self.no_queued = ui.label("The queue is empty.").classes("imgedit-tray-empty")
        # The browser remembers the sound choice; ask it once the tab is connected (no timer: the
        # page has exactly one, the tick).
        ui.context.client.on_connect(self._load_sound_choice)

    def build_badge(self) -> None:
        """The header badge that opens the drawer; call inside the header."""
        with (
            ui.button(on_click=self.open)
            .props("no-caps unelevated dense color=ie-chip text-color=ie-text")
            .classes("imgedit-tray-badge")
            .mark("tray-badge") as self.badge
        ):
            self.badge_icon = ui.icon("pending_actions")
            self.badge_icon.props["aria-hidden"] = "true"
            self.summary = LiveLabel().classes("imgedit-summary").mark("summary")
        self.badge.props["aria-haspopup"] = "dialog"

    # -- the tick ------------------------------------------------------------------------------

    def sync(self, snapshots: list[JobSnapshot]) -> None:
        """Bring badge, controls and rows to the registry's state; unchanged parts send nothing,
        changed texts go through the tab's ``Patch``."""
        patch = self._patch
        paused = self.registry.paused
        live = bool(self.drawer.value)
        running: list[JobSnapshot] = []
        queued: list[JobSnapshot] = []
        running_now = 0
        batches: dict[str, list[JobSnapshot]] = {}
        for s in snapshots:
            stage = s.stage
            batch = s.spec.batch
            if batch:
                group = batches.get(batch)
                if group is None:
                    batches[batch] = group = []
                group.append(s)
            if stage in _FINISHED:
                continue
            if stage is _QUEUED and s.queue_position is not None:
                queued.append(s)
            else:
                running.append(s)
                running_now += stage is not _QUEUED  # a queued job handed a slot is not running yet
        if live or self.rows:  # closed with no rows, only the counts are needed: no sorting
            running.sort(key=_running_order)
            queued.sort(key=_queue_order)
        summary = summary_text(running_now, len(queued), paused=paused)
        patch.text(self.summary, summary)
        patch.prop(self.badge, "aria-label", f"Jobs: {summary}. Open the jobs tray")
        patch.prop(self.badge_icon, "name", "pause_circle" if paused else "pending_actions")
        patch.prop(self.pause_button, "icon", "play_arrow" if paused else "pause")
        if paused != self._paused_shown:
            self._paused_shown = paused
            self.badge.classes(
                add="imgedit-tray-paused" if paused else "", remove="" if paused else "imgedit-tray-paused"
            )
            self.pause_button.set_text("Resume queue" if paused else "Pause queue")
        self.cancel_all.set_enabled(bool(queued))
        self.slots.set_value(self.registry.max_concurrent)

        queued_count = len(queued)
        active = [b for b, group in batches.items() if any(s.stage not in _FINISHED for s in group)]
        if batches:
            # A batch's jobs are listed in its own row (when expanded), not among the others.
            running = [s for s in running if not s.spec.batch]
            queued = [s for s in queued if not s.spec.batch]
        if not live and not self.rows and not self.batch_rows:
            # Closed, never opened (or emptied): rows are built when the drawer opens.
            self._show_empty(running, queued, bool(active))
            return
        groups = [(self.running_box, running), (self.queued_box, queued)]
        for batch_id in active:
            group = batches[batch_id]
            batch_row = self.batch_rows.get(batch_id)
            if batch_row is None:
                if not live:
                    continue
                with self.batches_box:
                    batch_row = BatchRow(
                        batch_id, group[0], on_cancel=self.cancel_batch, on_toggle=self._on_batch_toggle
                    )
                self.batch_rows[batch_id] = batch_row
                batch_row.update(group, patch=UNSENT, live=True)
            else:
                batch_row.update(group, patch=patch, live=live)
            if batch_row.expanded:
                groups.append((batch_row.jobs_box, batch_row.jobs))
        wanted = {s.id for _box, group in groups for s in group}
        for job_id in [j for j in self.rows if j not in wanted]:
            self.rows.pop(job_id).root.delete()
        for batch_id in [b for b in self.batch_rows if b not in active]:
            self.batch_rows.pop(batch_id).root.delete()
        self.batches_title.set_visibility(bool(self.batch_rows))
        self.batches_box.set_visibility(bool(self.batch_rows))
        for box, group in groups:
            for snapshot in group:
                row = self.rows.get(snapshot.id)
                if row is None:
                    if not live:
                        continue  # built when the drawer opens (``_on_drawer``): nobody sees it closed
                    with box:
                        row = TrayRow(self, snapshot, self._thumb(snapshot))
                    row.update(snapshot, paused=paused, queued_count=queued_count, patch=UNSENT, live=True)
                    self.rows[snapshot.id] = row
                else:
                    row.update(snapshot, paused=paused, queued_count=queued_count, patch=patch, live=live)
            order = [self.rows[s.id].root for s in group if s.id in self.rows]
            if box.default_slot.children != order:
                for index, root in enumerate(order):
                    children = box.default_slot.children
                    if index >= len(children) or children[index] is not root:
                        root.move(box, target_index=index)
        self._show_empty(running, queued, bool(active))

    def _show_empty(self, running: list[JobSnapshot], queued: list[JobSnapshot], batches: bool) -> None:
        """Each list's note when empty; beside a batch's row it says "else"."""
        self.no_running.set_visibility(not running)
        self.no_queued.set_visibility(not queued)
        self.no_running.set_text("Nothing else is running." if batches else "Nothing is running.")
        self.no_queued.set_text("Nothing else is queued." if batches else "The queue is empty.")

    def _thumb(self, snapshot: JobSnapshot) -> str | None:
        source = snapshot.spec.source_image_id
        return urls.thumb(source) if source and source in self.store else None

    # -- actions -------------------------------------------------------------------------------

    def _on_drawer(self) -> None:
        """Opened (by the badge, or by the browser): every row's percent and wait brought up to
        date at once, not at the next tick."""
        if self.drawer.value:
            self.sync(self.registry.snapshots())
            self._patch.flush()

    def open(self) -> None:
        self.drawer.set_value(True)
        self._focus(self.close_button)  # keyboard users land in the tray, not behind it

    def close(self) -> None:
        self.drawer.set_value(False)
        self._focus(self.badge)

    @staticmethod
    def _focus(element: ui.element) -> None:
        # The drawer slides in after the update arrives; focus once it is drawn.
        ui.run_javascript(f"setTimeout(() => getHtmlElement({element.id})?.focus(), 120)")

    def toggle_pause(self) -> None:
        if self.registry.paused:
            self.registry.resume()
            ui.notify("Queue resumed.", type="info")
        else:
            self.registry.pause()
            ui.notify("Queue paused: running jobs finish, nothing new starts.", type="info")

    def cancel_queued(self) -> None:
        queued = [s.id for s in self.registry.snapshots() if s.stage is JobStage.QUEUED]
        self._on_hide(queued)  # this tab asked: one toast here instead of one per job
        count = self.registry.cancel_queued()
        ui.notify(f"Cancelled {count} queued job{'s' if count != 1 else ''}.", type="info")

    def cancel(self, job_id: JobId) -> None:
        self._on_cancel(job_id)

    def cancel_batch(self, batch_id: str) -> None:
        """Every unfinished job of the batch; this tab asked, so one toast instead of one per job."""
        snapshots = self.registry.snapshots()
        self._on_hide([s.id for s in snapshots if s.spec.batch == batch_id and not s.is_finished])
        count = self.registry.cancel_batch(batch_id)
        ui.notify(f"Cancelled {count} job{'s' if count != 1 else ''} of the batch.", type="info")

    def _on_batch_toggle(self) -> None:
        """A batch's jobs shown or hidden: their rows built (or removed) at once."""
        self.sync(self.registry.snapshots())
        self._patch.flush()

    def move_to_front(self, job_id: JobId) -> None:
        self._move(job_id, 0)

    def move_by(self, job_id: JobId, delta: int) -> None:
        position = next((s.queue_position for s in self.registry.snapshots() if s.id == job_id), None)
        if position is not None:
            self._move(job_id, max(0, position - 1 + delta))

    def _move(self, job_id: JobId, index: int) -> None:
        try:
            self.registry.move(job_id, index)
        except (ValueError, ImgEditError) as exc:  # it started or ended meanwhile
            ui.notify(f"That job can no longer be moved ({exc}).", type="warning")

    def _on_slots(self, event: object) -> None:
        value = self.slots.value
        if value is None:
            return
        limit = int(value)
        if limit >= 1 and limit != self.registry.max_concurrent:
            self.registry.set_max_concurrent(limit)

    def _on_sound(self) -> None:
        enabled = bool(self.sound.value)
        ui.run_javascript(f"window.imgeditNotify && imgeditNotify.setSound({json.dumps(enabled)})")

    async def _load_sound_choice(self) -> None:
        try:
            enabled = await ui.run_javascript(
                "return window.imgeditNotify ? imgeditNotify.soundEnabled() : false", timeout=3
            )
        except TimeoutError:
            return
        if isinstance(enabled, bool) and enabled != self.sound.value:
            self.sound.set_value(enabled)
