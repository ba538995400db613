"""The loading card of one background job: shimmer over the blurred original, stage, progress,
elapsed time, ETA, Cancel; on failure the error with Retry and Dismiss.

The server sets only what it knows better than the browser: stage, message, reported progress
and the expected finish time (as ``data-*`` attributes). ``static/imgedit.js`` advances the bar,
percentage, elapsed time and ETA from those every half second, so a card whose values did not
change on the server costs nothing on the 1-second tick.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from nicegui import ui

from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import JobId
from imgedit.ui import format as fmt

JobAction = Callable[[JobId], None]


class LoadingCard:
    """One job's card. ``update(snapshot)`` sends only the parts that changed."""

    def __init__(
        self,
        snapshot: JobSnapshot,
        *,
        source_thumb: str | None,
        on_cancel: JobAction,
        on_retry: JobAction,
        on_dismiss: JobAction,
    ) -> None:
        self.job_id = snapshot.id
        self.stage = snapshot.stage
        self._on_cancel, self._on_retry, self._on_dismiss = on_cancel, on_retry, on_dismiss
        self._sent: dict[str, object] = {}
        self._actions_for: str | None = None
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
                self.preview = ui.element("img").classes("imgedit-preview").props('alt="live preview"')
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
                    ui.label(fmt.kind_label(snapshot.spec.kind)).classes("imgedit-meta")
                self.message = ui.label(snapshot.message).classes("imgedit-message")
                with (
                    ui.element("div")
                    .classes("imgedit-progress")
                    .props('role="progressbar" aria-valuemin="0" aria-valuemax="100"')
                ):
                    ui.element("div").classes("imgedit-progress-bar").style(f"width: {snapshot.percent}%")
                with ui.element("div").classes("imgedit-times"):
                    _span("imgedit-percent", percent)
                    _span("imgedit-elapsed", fmt.elapsed_text(snapshot))
                    _span("imgedit-eta", fmt.eta_text(snapshot.eta_s))
                ui.label(f"“{snapshot.spec.prompt}”").classes("imgedit-prompt").tooltip(snapshot.spec.prompt)
                self.actions = ui.element("div").classes("imgedit-actions")
        self.update(snapshot)

    def update(self, snapshot: JobSnapshot) -> None:
        """Bring the card to ``snapshot``; unchanged parts send nothing."""
        self.stage = snapshot.stage
        now = time.time()
        reported = round(snapshot.progress, 3) if snapshot.progress_source == "reported" else None
        deadline = None if snapshot.eta_s is None else now + snapshot.eta_s
        attributes = {
            "data-stage": snapshot.stage.value,
            "data-started": None if snapshot.started_at is None else int(snapshot.started_at * 1000),
            "data-expected": round(snapshot.expected_s, 2),
            "data-progress": reported,
            "data-milestone": None if snapshot.milestone is None else round(snapshot.milestone, 3),
            "data-floor": round(snapshot.progress, 3),
        }
        props = self.root.props
        # The floor rides along with other changes; alone it would resend every card on every
        # tick. The expected finish time drifts a little on every report: resend it only when
        # the shown ETA would move by more than a second.
        changed = any(props.get(key) != value for key, value in attributes.items() if key != "data-floor")
        old_deadline = props.get("data-deadline")
        if deadline is None or not isinstance(old_deadline, int):
            changed |= deadline != old_deadline
        else:
            changed |= abs(old_deadline / 1000 - deadline) > 1.0
        if changed:
            attributes["data-deadline"] = None if deadline is None else int(deadline * 1000)
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
        # A long error is clamped on the card; hovering shows all of it.
        self.message.props["title"] = str(text)

    def _set_icon(self, name: object) -> None:
        for icon in (self.stage_icon, self.badge_icon):
            icon.props["name"] = name
        spinning = self.stage.is_running
        self.badge_icon.classes(
            add="imgedit-spin" if spinning else "", remove="" if spinning else "imgedit-spin"
        )

    def _show_preview(self, job_id: JobId, version: object) -> None:
        if version:
            self.preview.props["src"] = f"/media/previews/{job_id}?v={version}"
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
            if wanted == "running":
                ui.button("Cancel", icon="close", on_click=lambda: self._on_cancel(self.job_id)).props(
                    "flat dense no-caps color=grey-4"
                ).classes("imgedit-cancel").mark("cancel")
            else:
                ui.button("Dismiss", on_click=lambda: self._on_dismiss(self.job_id)).props(
                    "flat dense no-caps color=grey-5"
                ).classes("imgedit-dismiss").mark("dismiss")
                ui.button("Retry", icon="refresh", on_click=lambda: self._on_retry(self.job_id)).props(
                    "unelevated dense no-caps color=deep-purple-4"
                ).classes("imgedit-retry").mark("retry")


def _span(css_class: str, text: str) -> ui.element:
    # Written by the browser after creation: the server never updates these again.
    span = ui.element("span").classes(css_class)
    span._text = text
    return span
