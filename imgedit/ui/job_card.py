"""The loading card of one background job: shimmer over the blurred original, stage, progress,
elapsed time, ETA, Cancel; on failure the error with Retry and Dismiss.

The server sets only what it knows better than the browser: stage, message, reported progress
and the projected running time and finish (as ``data-*`` attributes, ``card_attributes``). These
change only when the job reports something, never with the mere passing of time, so
``static/imgedit.js`` advances the bar, percentage, elapsed time and ETA alone every half second
and a card whose values did not change on the server costs nothing on the 1-second tick.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from nicegui import ui

from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import JobId
from imgedit.ui import format as fmt
from imgedit.ui import urls

JobAction = Callable[[JobId], None]
ERROR_CLAMP_CHARS = 120
"""Errors longer than this may be cut at five lines on a card: those get "Show full error"."""


def card_attributes(snapshot: JobSnapshot, *, now: float) -> dict[str, object]:
    """The ``data-*`` attributes the browser advances the card from (``now``: wall clock).

    A running card's deadline is its start plus its projected running time, so it moves only
    when a report revises the projection; a queued card's is ``now`` plus its wait and run."""
    running = snapshot.stage.is_running and snapshot.started_at is not None
    if snapshot.eta_s is None or snapshot.is_finished:
        deadline = None
    elif running:
        assert snapshot.started_at is not None
        deadline = int((snapshot.started_at + snapshot.expected_s) * 1000)
    else:
        deadline = int((now + snapshot.eta_s) * 1000)
    return {
        "data-stage": fmt.card_stage(snapshot),
        "data-started": None if snapshot.started_at is None else int(snapshot.started_at * 1000),
        "data-expected": round(snapshot.expected_s, 2),
        "data-progress": round(snapshot.progress, 3) if snapshot.progress_source == "reported" else None,
        "data-milestone": None if snapshot.milestone is None else round(snapshot.milestone, 3),
        "data-deadline": deadline,
    }


def _deadline_moved(old: object, new: object, *, queued: bool, now: float) -> bool:
    if not isinstance(old, int) or not isinstance(new, int):
        return old != new
    # A queued card's wait is re-simulated on every tick (the jobs ahead move on): resend it only
    # when the shown wait would be off by more than 2 s or a fifth, not for every second.
    slack = max(2.0, 0.2 * (new / 1000 - now)) if queued else 0.5
    return abs(old - new) / 1000 > slack


class LoadingCard:
    """One job's card. ``update(snapshot)`` sends only the parts that changed."""

    def __init__(
        self,
        snapshot: JobSnapshot,
        *,
        source_thumb: str | None,
        source_title: str | None = None,
        on_cancel: JobAction,
        on_retry: JobAction,
        on_dismiss: JobAction,
    ) -> None:
        self.job_id = snapshot.id
        self.stage = snapshot.stage
        self._on_cancel, self._on_retry, self._on_dismiss = on_cancel, on_retry, on_dismiss
        self._sent: dict[str, object] = {}
        self._actions_for: str | None = None
        self.title = fmt.job_title(snapshot.spec.prompt, source_title)
        """How the card and the live region name this job (the source's title for an edit)."""
        self.announced_quarter = 0
        """The last progress milestone (in quarters) the live region told; see the gallery."""
        self._error_open = False
        percent = f"{snapshot.percent}%"
        with (
            ui.element("div")
            .classes("imgedit-card imgedit-loading-card")
            .mark("loading-card", f"job-{snapshot.id}") as self.root
        ):
            with ui.element("div").classes("imgedit-media"):
                if source_thumb:
                    backdrop = ui.element("img").classes("imgedit-backdrop")
                    backdrop.props["src"] = source_thumb
                    backdrop.props["alt"] = ""
                else:
                    hue = int(hashlib.sha256(snapshot.spec.prompt.encode()).hexdigest()[:4], 16) % 360
                    ui.element("div").classes("imgedit-backdrop-generate").style(f"--ie-hue: {hue}")
                self.preview = ui.element("img").classes("imgedit-preview")
                self.preview.props["alt"] = "live preview"
                self.preview.set_visibility(False)
                ui.element("div").classes("imgedit-shimmer")
                with ui.element("div").classes("imgedit-badge"):
                    self.badge_icon = ui.icon(fmt.STAGE_ICONS[snapshot.stage])
                    _span("imgedit-big-percent", percent)
            with ui.element("div").classes("imgedit-card-body"):
                with ui.element("div").classes("imgedit-stage-row"):
                    self.stage_icon = ui.icon(fmt.STAGE_ICONS[snapshot.stage])
                    self.stage_label = ui.label(fmt.stage_label(snapshot)).classes("imgedit-stage")
                    ui.space()
                    # A label, not a link: it names the kind of job and does nothing on click.
                    ui.label(fmt.kind_label(snapshot.spec.kind)).classes("imgedit-kind-chip").mark(
                        "kind-chip"
                    )
                if source_title is not None:
                    # Queued edits with the same prompt differ by their source.
                    source = (
                        ui.label(f"Edit of “{source_title}”").classes("imgedit-source").mark("card-source")
                    )
                    source.props["title"] = source_title
                if snapshot.spec.started_by:
                    ui.label(f"by {snapshot.spec.started_by}").classes("imgedit-started-by").mark(
                        "started-by"
                    )
                self.message = ui.label(snapshot.message).classes("imgedit-message")
                self.message.props["id"] = f"imgedit-message-{snapshot.id}"
                self.error_toggle = (
                    ui.button("Show full error", on_click=self.toggle_error)
                    .props("flat dense no-caps size=sm color=ie-quiet")
                    .classes("imgedit-error-toggle")
                    .mark("show-error")
                )
                self.error_toggle.props["aria-expanded"] = "false"
                self.error_toggle.props["aria-controls"] = f"imgedit-message-{snapshot.id}"
                self.error_toggle.set_visibility(False)
                with ui.element("div").classes("imgedit-progress") as track:
                    track.props.update(role="progressbar", **{"aria-valuemin": 0, "aria-valuemax": 100})
                    track.props["aria-label"] = f"Progress of “{fmt.shorten(self.title, 80)}”"
                    # The browser keeps it current (static/imgedit.js) between server updates.
                    track.props["aria-valuenow"] = snapshot.percent
                    ui.element("div").classes("imgedit-progress-bar").style(f"width: {snapshot.percent}%")
                with ui.element("div").classes("imgedit-times"):
                    _span("imgedit-percent", percent)
                    _span("imgedit-elapsed", fmt.elapsed_text(snapshot))
                    _span("imgedit-eta", fmt.card_eta_text(snapshot))
                ui.label(f"“{snapshot.spec.prompt}”").classes("imgedit-prompt").tooltip(snapshot.spec.prompt)
                self.actions = ui.element("div").classes("imgedit-actions")
        self.update(snapshot)

    def update(self, snapshot: JobSnapshot) -> None:
        """Bring the card to ``snapshot``; unchanged parts send nothing."""
        self.stage = snapshot.stage
        now = time.time()
        attributes = card_attributes(snapshot, now=now)
        props = self.root.props
        changed = any(
            props.get(key) != value for key, value in attributes.items() if key != "data-deadline"
        ) or _deadline_moved(
            props.get("data-deadline"),
            attributes["data-deadline"],
            queued=not snapshot.stage.is_running,
            now=now,
        )
        if changed:
            # The floor rides along with other changes; alone it would resend every card on every tick.
            attributes["data-floor"] = round(snapshot.progress, 3)
            for key, value in attributes.items():
                if value is None:
                    props.pop(key, None)
                else:
                    props[key] = value
        self._set("stage", fmt.stage_label(snapshot), self.stage_label.set_text)
        self._set("icon", fmt.STAGE_ICONS[snapshot.stage], self._set_icon)
        self._set("message", snapshot.error or snapshot.message, self._set_message)
        # A finished job's preview is gone from the server; only a live job shows one.
        live_preview = snapshot.preview_version if not snapshot.is_finished else 0
        self._set("preview", live_preview, lambda v: self._show_preview(snapshot.id, v))
        self._build_actions(snapshot.stage)

    def _set(self, key: str, value: object, apply: Callable[[object], object]) -> None:
        if self._sent.get(key) != value:
            self._sent[key] = value
            apply(value)

    def _set_message(self, text: object) -> None:
        self.message.set_text(str(text))
        # A long error is clamped on the card; hovering shows all of it, and so does the toggle
        # (for touch and keyboard).
        self.message.props["title"] = str(text)
        long_error = self.stage is JobStage.FAILED and len(str(text)) > ERROR_CLAMP_CHARS
        self.error_toggle.set_visibility(long_error)
        if self._error_open and not long_error:
            self.toggle_error()  # a retried job starts closed again

    def toggle_error(self) -> None:
        """Open or close the failed card's full error in place."""
        self._error_open = not self._error_open
        self.root.props["data-error-open"] = "true" if self._error_open else "false"
        self.error_toggle.props["aria-expanded"] = "true" if self._error_open else "false"
        self.error_toggle.set_text("Show less" if self._error_open else "Show full error")

    def _set_icon(self, name: object) -> None:
        for icon in (self.stage_icon, self.badge_icon):
            icon.props["name"] = name
        spinning = self.stage.is_running
        self.badge_icon.classes(
            add="imgedit-spin" if spinning else "", remove="" if spinning else "imgedit-spin"
        )

    def _show_preview(self, job_id: JobId, version: object) -> None:
        if version:
            self.preview.props["src"] = urls.preview(job_id, version)
        else:
            self.preview.props.pop("src", None)
        self.preview.set_visibility(bool(version))

    def _build_actions(self, stage: JobStage) -> None:
        wanted = "failed" if stage.is_finished else "running"
        if self._actions_for == wanted:
            return
        self._actions_for = wanted
        self.actions.clear()
        with self.actions:
            # Each button names its job: a screen reader's list of buttons is otherwise
            # "Cancel, Cancel, Cancel". Values, never parsed: the title quotes a prompt.
            if wanted == "running":
                cancel = ui.button("Cancel", icon="close", on_click=lambda: self._on_cancel(self.job_id))
                cancel.props("flat dense no-caps color=ie-quiet").classes("imgedit-cancel").mark("cancel")
                cancel.props["aria-label"] = f"Cancel “{fmt.shorten(self.title, 80)}”"
            else:
                dismiss = ui.button("Dismiss", on_click=lambda: self._on_dismiss(self.job_id))
                dismiss.props("flat dense no-caps color=ie-quiet").classes("imgedit-dismiss").mark("dismiss")
                dismiss.props["aria-label"] = f"Dismiss “{fmt.shorten(self.title, 80)}”"
                # deep-purple-7 under white text: 8.0:1 (deep-purple-4 read at 3.7:1).
                retry = ui.button("Retry", icon="refresh", on_click=lambda: self._on_retry(self.job_id))
                retry.props("unelevated dense no-caps color=deep-purple-7").classes("imgedit-retry").mark(
                    "retry"
                )
                retry.props["aria-label"] = f"Retry “{fmt.shorten(self.title, 80)}”"


def _span(css_class: str, text: str) -> ui.element:
    # Written by the browser after creation: the server never updates these again.
    span = ui.element("span").classes(css_class)
    span._text = text
    return span
