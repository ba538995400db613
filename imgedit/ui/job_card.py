"""The loading card of one background job: shimmer over the blurred original, stage, progress,
elapsed time, ETA, Cancel; on failure the error with Retry and Dismiss.

The server sets only what it knows better than the browser: stage, message, reported progress
and the projected running time and finish (as ``data-*`` attributes, ``card_attributes``). These
change only when the job reports something, never with the mere passing of time, so
``static/imgedit.js`` advances the bar, percentage, elapsed time and ETA alone every half second
and a card whose values did not change on the server costs nothing on the 1-second tick. What
does change (those attributes, the stage label and icons, the message, the preview) is written
through the tab's ``Patch`` (``imgedit/ui/patch.py``): a few values in one message per tick, not
the card's elements resent whole.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from nicegui import ui

from imgedit.jobs import JobSnapshot, JobStage
from imgedit.jobs.model import Failure
from imgedit.models import JobId
from imgedit.ui import format as fmt
from imgedit.ui import urls
from imgedit.ui.mask_outline import outline_url
from imgedit.ui.patch import UNSENT, LiveLabel, Patch

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
        "data-expected": _hundredths(snapshot.expected_s),
        "data-progress": _thousandths(snapshot.progress) if snapshot.progress_source == "reported" else None,
        "data-milestone": None if snapshot.milestone is None else _thousandths(snapshot.milestone),
        "data-deadline": deadline,
    }


def _deadline_moved(old: object, new: object, *, queued: bool, now: float) -> bool:
    if not isinstance(old, int) or not isinstance(new, int):
        return old != new
    # A queued card's wait is re-simulated on every tick (the jobs ahead move on): resend it only
    # when the shown wait would be off by more than 2 s or a fifth, not for every second.
    slack = max(2.0, 0.2 * (new / 1000 - now)) if queued else 0.5
    return abs(old - new) / 1000 > slack


_ATTRIBUTE_KEYS = ("data-stage", "data-started", "data-expected", "data-progress", "data-milestone")
"""``card_attributes`` but the deadline, in the order ``LoadingCard._write_attributes`` keeps them."""


_STAGE_VALUES = {stage: stage.value for stage in JobStage}
"""``stage.value`` without the enum's descriptor (a dict lookup: this runs per card per tick)."""
_QUEUED, _FAILED = JobStage.QUEUED, JobStage.FAILED
_RUNNING = frozenset(stage for stage in JobStage if stage.is_running)
_FINISHED = frozenset(stage for stage in JobStage if stage.is_finished)
# (An enum member read from its class, or a property on it, costs ~0.2 µs; the card's tick path
# reads them a dozen times per card.)


def _thousandths(value: float) -> float:
    """``round(value, 3)`` for the non-negative fractions of a card, ten times cheaper (Python's
    ``round`` with digits goes through a decimal string: ~0.7 µs, four times per card)."""
    return int(value * 1000 + 0.5) / 1000


def _hundredths(value: float) -> float:
    return int(value * 100 + 0.5) / 100


_LABELS: dict[tuple[object, ...], str] = {}
"""Stage labels by what they are made of (``LoadingCard.update``'s ``shown``): a hundred cards
that move to the same stage in one tick format it once."""


class LoadingCard:
    """One job's card. ``update(snapshot)`` changes only what changed, through the tab's ``Patch``."""

    def __init__(
        self,
        snapshot: JobSnapshot,
        *,
        source_thumb: str | None,
        source_title: str | None = None,
        patch: Patch,
        on_cancel: JobAction,
        on_retry: JobAction,
        on_dismiss: JobAction,
    ) -> None:
        self.job_id = snapshot.id
        self.stage = snapshot.stage
        self._on_cancel, self._on_retry, self._on_dismiss = on_cancel, on_retry, on_dismiss
        self._patch = patch
        self._shown: tuple[object, ...] | None = None
        self._timing: tuple[object, ...] | None = None
        """The ``data-*`` values last written (``_ATTRIBUTE_KEYS``), to send only what differs."""
        self._deadline: int | None = None
        self._message: str | None = None
        self._preview: int | None = None
        self._actions_for: str | None = None
        self.title = fmt.job_title(snapshot.spec.prompt, source_title)
        """How the card and the live region name this job (the source's title for an edit)."""
        self.announced_quarter = 0
        """The last progress milestone (in quarters) the live region told; see the gallery."""
        self._error_open = False
        self._failure: Failure | None = None
        percent = f"{snapshot.percent}%"
        # As few elements as it takes (a burst of jobs builds one card per job in every tab): the
        # stage icons (badge and stage row) are drawn by CSS from the card's ``data-stage``, as is
        # the badge's pulse while running, and the progress bar inside its track
        # (static/imgedit.css); the prompt's full text is a title, not a tooltip element; "Show
        # full error" is built only for a failure long enough to need it.
        with (
            ui.element("div")
            .classes("imgedit-card imgedit-loading-card")
            .mark("loading-card", f"job-{snapshot.id}") as self.root
        ):
            with ui.element("div").classes("imgedit-media"):
                if source_thumb:
                    ui.element("img").classes("imgedit-backdrop").props.update(
                        {"src": source_thumb, "alt": ""}
                    )
                    if snapshot.spec.mask:  # a region edit: its area outlined over the picture
                        ui.element("img").classes("imgedit-mask-outline").mark("mask-outline").props.update(
                            {"src": outline_url(snapshot.spec.mask), "alt": ""}
                        )
                else:
                    hue = int(hashlib.sha256(snapshot.spec.prompt.encode()).hexdigest()[:4], 16) % 360
                    ui.element("div").classes("imgedit-backdrop-generate").style(f"--ie-hue: {hue}")
                self.preview = ui.element("img").classes("imgedit-preview")
                self.preview.props["alt"] = "live preview"
                self.preview.visible = False
                ui.element("div").classes("imgedit-shimmer")
                # The badge is its own big percent (the browser writes the text); its stage icon
                # is drawn by CSS before the text. Hidden from screen readers: the progress bar
                # and the percent below say the same (and a failed card's shows no number).
                badge = _span("imgedit-badge imgedit-big-percent", percent, tag="div")
                badge.props["aria-hidden"] = "true"
            with ui.element("div").classes("imgedit-card-body") as self.body:
                with ui.element("div").classes("imgedit-stage-row"):
                    self.stage_label = LiveLabel(fmt.stage_label(snapshot)).classes("imgedit-stage")
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
                self.message = LiveLabel(snapshot.message).classes("imgedit-message")
                self.message.props["id"] = f"imgedit-message-{snapshot.id}"
                self.error_toggle: ui.button | None = None
                self.failure_detail: LiveLabel | None = None
                # The track draws its bar itself (CSS, from --ie-bar). Values, never parsed: the
                # label quotes a prompt. The browser keeps the bar and aria-valuenow current
                # (static/imgedit.js) between server updates.
                track = ui.element("div").classes("imgedit-progress").style(f"--ie-bar: {snapshot.percent}%")
                track.props.update(
                    {
                        "role": "progressbar",
                        "aria-valuemin": 0,
                        "aria-valuemax": 100,
                        "aria-label": f"Progress of “{fmt.shorten(self.title, 80)}”",
                        "aria-valuenow": snapshot.percent,
                    }
                )
                with ui.element("div").classes("imgedit-times"):
                    _span("imgedit-percent", percent)
                    _span("imgedit-elapsed", fmt.elapsed_text(snapshot))
                    _span("imgedit-eta", fmt.card_eta_text(snapshot))
                self._slots: list[tuple[ui.element, ui.element]] = []
                self._landed = 0
                if snapshot.spec.variations > 1:
                    self._build_slots(snapshot.spec.variations)
                prompt = ui.label(f"“{snapshot.spec.prompt}”").classes("imgedit-prompt")
                prompt.props["title"] = snapshot.spec.prompt  # the whole prompt on hover, no tooltip element
                self.actions = ui.element("div").classes("imgedit-actions")
        self._patch = UNSENT  # while it is built: its first update carries every value
        self.update(snapshot)
        self._patch = patch

    def update(self, snapshot: JobSnapshot) -> None:
        """Bring the card to ``snapshot``. Only what changed is written, through the tab's
        ``Patch``; a card whose shown values did not change costs a few compares and sends
        nothing (the browser advances bar, percent, elapsed time and ETA by itself).

        Runs for every card on each tick where any job moved (a hundred cards that all moved:
        a hundred calls), so it compares tuples of what was last written and hands the patch
        only the values that differ."""
        stage = snapshot.stage
        self.stage = stage
        shown = (
            stage,
            snapshot.queue_position,
            snapshot.waiting_for_provider,
            snapshot.paused,
            snapshot.attempt,
        )
        if shown != self._shown:
            self._shown = shown
            self._write_attributes(snapshot, force_floor=True)
            label = _LABELS.get(shown)
            if label is None:
                label = _LABELS[shown] = fmt.stage_label(snapshot)
                if len(_LABELS) > 1000:
                    _LABELS.clear()
            self._patch.text(self.stage_label, label)  # the icons follow data-stage (CSS)
            self._build_actions(stage)
        else:
            self._write_attributes(snapshot, force_floor=False)
        text = snapshot.error or snapshot.message
        if text != self._message:
            self._message = text
            self._set_message(text)
        failure = snapshot.failure if stage is JobStage.FAILED else None
        if failure != self._failure:
            self._failure = failure
            self._set_failure(failure)
        if self._slots and len(snapshot.result_image_ids) != self._landed:
            self._fill_slots(snapshot.result_image_ids)
        # A finished job's preview is gone from the server; only a live job shows one.
        preview = snapshot.preview_version if stage not in _FINISHED else 0
        if preview != self._preview:
            self._preview = preview
            self._patch.prop(self.preview, "src", urls.preview(snapshot.id, preview) if preview else None)
            if self.preview.visible != bool(preview):
                self.preview.set_visibility(bool(preview))

    def _build_slots(self, count: int) -> None:
        """A slot per variation: numbered and empty until its result lands, then its thumbnail
        (the result is in the gallery already; the card goes once they all are)."""
        with ui.element("ul").classes("imgedit-slots").mark("variation-slots") as slots:
            slots.props["aria-label"] = f"{count} variations"
            for number in range(1, count + 1):
                with ui.element("li").classes("imgedit-slot").mark("variation-slot") as slot:
                    slot.props["aria-label"] = f"Variation {number} of {count}: not made yet"
                    picture = ui.element("img")
                    picture.props["alt"] = ""
                    _span("imgedit-slot-number", str(number)).props["aria-hidden"] = "true"
                self._slots.append((slot, picture))

    def _fill_slots(self, landed: tuple[str, ...]) -> None:
        count = len(self._slots)
        for number, (slot, picture) in enumerate(self._slots, start=1):
            filled = number <= len(landed)
            self._patch.prop(picture, "src", urls.thumb(landed[number - 1]) if filled else None)
            self._patch.props(
                slot,
                {
                    "data-filled": "true" if filled else None,
                    "aria-label": f"Variation {number} of {count}: "
                    + ("in the gallery" if filled else "not made yet"),
                },
            )
        self._landed = len(landed)

    def _write_attributes(self, snapshot: JobSnapshot, *, force_floor: bool) -> None:
        """The ``data-*`` attributes (``card_attributes``, computed inline: this is the tick's
        hot path). The floor and the deadline ride along with any other change; alone the floor
        would resend every card on every tick, and the deadline alone is resent only once it
        moved enough (``_deadline_moved``)."""
        stage = snapshot.stage
        started = snapshot.started_at
        progress = snapshot.progress
        milestone = snapshot.milestone
        # ``_thousandths`` and ``_hundredths`` inlined.
        values = (
            _STAGE_VALUES[stage] if stage is not _QUEUED else fmt.card_stage(snapshot),
            None if started is None else int(started * 1000),
            int(snapshot.expected_s * 100 + 0.5) / 100,
            int(progress * 1000 + 0.5) / 1000 if snapshot.progress_source == "reported" else None,
            None if milestone is None else int(milestone * 1000 + 0.5) / 1000,
        )
        old = self._timing
        eta = snapshot.eta_s
        queued = stage is _QUEUED
        # Nothing the browser advances from changed: a running card's deadline moves only with
        # its projection (``expected``), or when its ETA appears or goes.
        if values == old and not force_floor and not queued and (eta is None) == (self._deadline is None):
            return
        now = time.time()
        running = stage in _RUNNING
        if eta is None or stage in _FINISHED:
            deadline = None
        elif running and started is not None:
            deadline = int((started + snapshot.expected_s) * 1000)
        else:
            deadline = int((now + eta) * 1000)
        changed: dict[str, object]
        if old is None:
            changed = dict(zip(_ATTRIBUTE_KEYS, values, strict=True))
        else:
            changed = {}
            if values != old:
                # Unrolled: a loop over the five keys cost as much as the rest of the card.
                if values[0] != old[0]:
                    changed["data-stage"] = values[0]
                if values[1] != old[1]:
                    changed["data-started"] = values[1]
                if values[2] != old[2]:
                    changed["data-expected"] = values[2]
                if values[3] != old[3]:
                    changed["data-progress"] = values[3]
                if values[4] != old[4]:
                    changed["data-milestone"] = values[4]
        self._timing = values
        if changed or force_floor or _deadline_moved(self._deadline, deadline, queued=not running, now=now):
            self._deadline = deadline
            changed["data-deadline"] = deadline
            changed["data-floor"] = int(progress * 1000 + 0.5) / 1000
            self._patch.props(self.root, changed)  # type: ignore[arg-type]

    def _set_message(self, text: str) -> None:
        self._patch.text(self.message, text)
        # A long error is clamped on the card; hovering shows all of it, and so does the toggle
        # (for touch and keyboard).
        self._patch.prop(self.message, "title", text)
        long_error = self.stage is JobStage.FAILED and len(text) > ERROR_CLAMP_CHARS
        if long_error and self.error_toggle is None:
            self._build_error_toggle()
        if self.error_toggle is not None and self.error_toggle.visible != long_error:
            self.error_toggle.set_visibility(long_error)
        if self._error_open and not long_error:
            self.toggle_error()  # a retried job starts closed again

    def _set_failure(self, failure: Failure | None) -> None:
        """A failed card names the kind of failure, with the HTTP status and the server's code when
        known ("Rate limited · HTTP 429 · rate_limit_exceeded"); built at the first failure."""
        text = "" if failure is None else " · ".join(p for p in (failure.kind.label, failure.describe()) if p)
        self._patch.prop(self.root, "data-failure", failure.kind.value if failure else None)
        if self.failure_detail is None:
            if not text:
                return
            with self.body:
                self.failure_detail = LiveLabel("").classes("imgedit-failure").mark("failure-detail")
            self.failure_detail.move(
                self.body, target_index=self.body.default_slot.children.index(self.message) + 1
            )
        self._patch.text(self.failure_detail, text)
        if self.failure_detail.visible != bool(text):
            self.failure_detail.set_visibility(bool(text))

    def _build_error_toggle(self) -> None:
        """The "Show full error" button, right under the message; built when an error needs it."""
        with self.body:
            toggle = (
                ui.button("Show full error", on_click=self.toggle_error)
                .props("flat dense no-caps size=sm color=ie-quiet")
                .classes("imgedit-error-toggle")
                .mark("show-error")
            )
        toggle.props.update({"aria-expanded": "false", "aria-controls": f"imgedit-message-{self.job_id}"})
        toggle.move(self.body, target_index=self.body.default_slot.children.index(self.message) + 1)
        self.error_toggle = toggle

    def toggle_error(self) -> None:
        """Open or close the failed card's full error in place."""
        if self.error_toggle is None:
            return
        self._error_open = not self._error_open
        self.root.props["data-error-open"] = "true" if self._error_open else "false"
        self.error_toggle.props["aria-expanded"] = "true" if self._error_open else "false"
        self.error_toggle.set_text("Show less" if self._error_open else "Show full error")

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


def _span(css_class: str, text: str, *, tag: str = "span") -> ui.element:
    # Written by the browser after creation: the server never updates these again.
    span = ui.element(tag).classes(css_class)
    span._text = text
    return span
