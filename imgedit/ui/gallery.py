"""The gallery page: header, upload zone, loading cards, image cards, and the 1-second tick.

Each client builds its view once from the shared store and registry, then ``tick`` looks at
two version counters and touches only what changed: new or deleted images, jobs that appeared,
moved on or finished. The grid is never rebuilt on a tick.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable

from nicegui import events, ui

from imgedit import imaging
from imgedit.errors import ImgEditError, InvalidRequest
from imgedit.jobs import JobSnapshot, JobStage
from imgedit.models import ImageId, ImageRecord, JobId, JobKind
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import history, signin, theme, urls
from imgedit.ui.dialogs import ImageDialog, JobDialog, lineage_text
from imgedit.ui.image_grid import ImageGrid
from imgedit.ui.job_card import LoadingCard
from imgedit.ui.patch import Patch
from imgedit.ui.tray import JobsTray

TICK_SECONDS = 1.0
MB = 1024 * 1024
FAILURE_TOAST_SECONDS = 20.0
MANY_NEWS = 3
"""More jobs than this reaching the same point in one tick are told as a count."""
SAME_DROP_SECONDS = 60.0
"""Files the browser refused this recently belong to the drop whose upload just finished."""

log = logging.getLogger(__name__)
_QUEUED, _FAILED, _COMPLETED = JobStage.QUEUED, JobStage.FAILED, JobStage.COMPLETED
_GONE = frozenset({JobStage.COMPLETED, JobStage.CANCELLED})
"""A card in these stages leaves the gallery (a failed one stays, with Retry and Dismiss)."""
_RUNNING = frozenset(stage for stage in JobStage if stage.is_running)

UPLOAD_HEADER = """
<div class="q-uploader__header-content row items-center no-wrap q-pa-sm imgedit-upload-head">
  <q-uploader-add-trigger v-if="props.canAddFiles" />
  <div class="col q-uploader__title">Drop images here, or click to choose (PNG, JPEG, WebP, GIF, BMP, TIFF)</div>
  <q-btn v-if="props.canAddFiles" type="button" flat dense round icon="add_photo_alternate"
    class="imgedit-upload-add" aria-label="Choose images to upload" @click="props.pickFiles" />
</div>
"""
"""A fixed template (no user text): the upload zone's header."""


class GalleryPage:
    """One browser tab's gallery."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store
        self.registry = services.registry
        self.job_cards: dict[JobId, LoadingCard] = {}
        self._hidden_jobs: set[JobId] = set()
        self._registry_version = -1
        self._broken: set[tuple[str, str]] = set()
        self._opened_at = time.time()
        self._refused_by_browser: tuple[float, list[str]] = (0.0, [])
        self._announced: set[JobId] = set()
        self._counts_sent: tuple[int, int] | None = None
        self._news: list[str] = []
        self._job_news_heads: dict[str, list[str]] = {}
        self.patch = Patch(ui.context.client)
        """This tab's small per-tick changes to cards and tray, sent as one message (``_sync_jobs``)."""
        self.tray = JobsTray(services, patch=self.patch, on_cancel=self._cancel, on_hide=self._hide_jobs)
        self.images = ImageGrid(
            services,
            open_image=lambda record: self.image_dialog.open(record),
            title=self._title,
            lineage=lambda record: lineage_text(record, services),
            say=self._say,
            changed=self._show_emptiness,
            download=self._download_images,
            batch_submitted=self.tick,  # the batch's loading cards at once, not at the next second
        )

    def build(self) -> None:
        # The browser advances timers from server timestamps; this tells it the server's clock.
        ui.add_head_html(f"<script>window.imgeditSkew = {int(time.time() * 1000)} - Date.now();</script>")
        self.tray.build_drawer()  # a layout element: at the page's top level
        self.job_dialog = JobDialog(self.services, on_submitted=self._after_submit)
        self.image_dialog = ImageDialog(
            self.services,
            on_edit=self.job_dialog.open_edit,
            on_delete=self._delete,
            step=self.step,
            position=self.images.position,
        )
        with ui.row().classes("imgedit-header imgedit-sticky"):
            ui.label("imgedit").classes("imgedit-logo")
            history.nav("/")
            # Each provider's servers: up, busy or down, as the health monitor last found them.
            self.status = ui.element("div").classes("imgedit-status").mark("provider-status")
            self._health_version = -1
            self._draw_status()
            ui.space()
            self.tray.build_badge()
            theme.switch()
            signin.account_controls(self.services)
            self.new_image_button = (
                ui.button("New image", icon="add_photo_alternate", on_click=self.job_dialog.open_generate)
                .props("unelevated no-caps color=deep-purple-5")
                .classes("imgedit-new-image")
                .mark("new-image")
            )
        with ui.column().classes("imgedit-main"):
            self.upload = (
                ui.upload(
                    label="Drop images here, or click to choose (PNG, JPEG, WebP, GIF, BMP, TIFF)",
                    multiple=True,
                    auto_upload=True,
                    max_file_size=imaging.MAX_UPLOAD_BYTES,
                    on_multi_upload=self._on_upload,
                )
                .props('accept="image/*" flat color=transparent')
                .classes("imgedit-upload")
                .mark("upload")
            )
            # Our own header: Quasar's draws its "+" as a link around the file input (a control
            # inside a control, read as "add_box"). Here the input covers the zone, so a click
            # anywhere chooses files, and the named button beside it is what keyboards reach.
            self.upload.add_slot("header", UPLOAD_HEADER)
            self.upload.on(
                "rejected",
                self._on_rejected,
                js_handler="(entries) => emit(entries.map((e) => "
                "({name: e.file.name, reason: e.failedPropValidation})))",
            )
            self.upload_status = ui.label().classes("imgedit-upload-status").mark("upload-status")
            # The page's one live region: job news and upload outcomes, read politely, unseen.
            self.live = ui.label().classes("imgedit-sr-only").mark("live")
            self.live.props.update(role="status")
            self.live.props["aria-live"] = "polite"
            self.live.props["aria-atomic"] = "true"
            self.images.build_tools()
            with ui.element("div").classes("imgedit-gallery").mark("gallery") as self.grid:
                self.jobs_box = ui.element("div").classes("imgedit-box")
                self.images.build_box()
                self.empty = ui.label("No images yet. Drop some above, or make a New image.").classes(
                    "imgedit-empty"
                )
            self.images.build_footer()
        self.tick()
        ui.timer(TICK_SECONDS, self.tick)

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> None:
        """Apply what changed since the last tick; costs two integer compares when nothing did.

        A version is taken as seen only when its sync went through for every card: a card that
        could not be built or updated is logged and skipped, the others stay live, and the next
        tick tries it again.
        """
        if self.images.behind:
            self.images.sync()
        health = self.services.health
        health.wanted()
        if health.version != self._health_version:
            self._draw_status()
        registry_version = self.registry.version
        if registry_version != self._registry_version and self._sync_jobs():
            self._registry_version = registry_version
        self._flush_news()

    def _draw_status(self) -> None:
        """One chip per server: its provider's label, its state in words (not only a colour), and
        on hover why it is down or what keeps it busy. Until the first probe: the labels alone."""
        health = self.services.health
        self._health_version = health.version
        self.status.clear()
        with self.status:
            for provider in self.services.providers.all():
                servers = health.found.get(provider.name)
                if not servers or provider.capabilities.offline:
                    ui.label(provider.label).classes("imgedit-chip")
                    continue
                for server in servers:
                    chip = ui.label(f"{server.label}: {server.state}").classes("imgedit-chip imgedit-health")
                    chip.props["data-state"] = server.state
                    if server.detail:
                        chip.props["title"] = server.detail

    # -- the live region -------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        """Queue a sentence for the live region; what one tick or action has to say is read as one."""
        self._news.append(text)

    def _flush_news(self) -> None:
        if not self._news:
            return
        text = " ".join(self._news)
        self._news.clear()
        if text == self.live.text.rstrip("\u00a0"):
            text += "\u00a0"  # the same words again are news again: a changed text is read
        self.live.set_text(text)  # text, never HTML: prompts and titles are the user's

    def _job_news(self, card: LoadingCard, before: JobStage, snapshot: JobSnapshot) -> None:
        """Started, and progress at quarters only (never every tick): told once each per card,
        gathered per tick by ``_tell_job_news``."""
        if snapshot.stage not in _RUNNING:
            return
        if before not in _RUNNING:
            self._job_news_heads.setdefault("Started", []).append(card.title)
        quarter = min(snapshot.percent // 25, 3)
        if quarter > card.announced_quarter:
            card.announced_quarter = quarter
            head = ("A quarter done", "Half way", "Three quarters done")[quarter - 1]
            self._job_news_heads.setdefault(head, []).append(card.title)

    def _tell_job_news(self) -> None:
        """One sentence per job; when many jobs reached the same point in one tick, one sentence
        for all of them ("Half way: 37 jobs."), not a list a screen reader would read for minutes."""
        for head, titles in self._job_news_heads.items():
            if len(titles) > MANY_NEWS:
                self._say(f"{head}: {len(titles)} jobs.")
            else:
                for title in titles:
                    self._say(f"{head}: {title}.")
        self._job_news_heads.clear()

    def _log_broken(self, what: str, key: str) -> None:
        """Log (once per card, until it works again) that a card's sync raised; call in ``except``."""
        if (what, key) not in self._broken:
            self._broken.add((what, key))
            log.exception("the %s card %s could not be shown; the rest of the gallery goes on", what, key)

    def _guarded(self, what: str, key: str, action: Callable[[], object]) -> bool:
        """Run one card's part of a sync; False (logged once per card) if it raised."""
        try:
            action()
        except Exception:
            if (what, key) not in self._broken:
                self._broken.add((what, key))
                log.exception("the %s card %s could not be shown; the rest of the gallery goes on", what, key)
            return False
        self._broken.discard((what, key))
        return True

    def _show_emptiness(self) -> None:
        if hasattr(self, "empty"):
            self.empty.set_visibility(len(self.store) == 0 and not self.job_cards)

    @property
    def image_cards(self) -> dict[ImageId, ui.element]:
        """The image cards this tab shows, by image (the focusable card element)."""
        return {image_id: shown.card for image_id, shown in self.images.cards.items()}

    def step(self, record: ImageRecord, delta: int) -> ImageRecord | None:
        """The image ``delta`` places after ``record`` in this tab's order (+1: the next older,
        -1: the next newer), as the viewer's arrows go; None past either end."""
        return self.images.step(record, delta)

    def _sync_jobs(self) -> bool:
        # The hot path of a tick where jobs moved: per card a few compares (stages read as module
        # constants: an enum member read from its class costs ~0.2 µs, a dozen times per card).
        snapshots = {s.id: s for s in self.registry.snapshots()}
        ok = True
        for job_id, card in list(self.job_cards.items()):
            snapshot = snapshots.get(job_id)
            if snapshot is None or snapshot.stage in _GONE:
                self._drop_card(job_id)
                if snapshot is not None and job_id not in self._hidden_jobs:
                    self._announce(snapshot)
            else:
                before = card.stage
                newly_failed = snapshot.stage is _FAILED and before is not _FAILED
                # ``_guarded`` inlined: this runs for every card on every tick that moved.
                try:
                    card.update(snapshot)
                except Exception:
                    ok = False
                    self._log_broken("job", job_id)
                else:
                    if self._broken:
                        self._broken.discard(("job", job_id))
                if newly_failed:
                    self._announce(snapshot)
                elif snapshot.stage in _RUNNING and card.root.visible:
                    self._job_news(card, before, snapshot)
        for snapshot in snapshots.values():
            if snapshot.id in self.job_cards or snapshot.id in self._hidden_jobs:
                continue
            if snapshot.stage.is_finished and snapshot.stage is not JobStage.FAILED:
                continue
            added = self._guarded("job", snapshot.id, functools.partial(self._add_job_card, snapshot))
            ok &= added
            card = self.job_cards.get(snapshot.id)
            if added and card is not None and not snapshot.is_finished:
                where = fmt.stage_label(snapshot) if snapshot.stage is JobStage.QUEUED else "Started"
                self._say(f"{where.split(' (')[0]}: {card.title}.")
                self._job_news(card, snapshot.stage, snapshot)
            # A job that failed since this tab opened (e.g. between two ticks) is news here too.
            if snapshot.stage is JobStage.FAILED and (snapshot.finished_at or 0) >= self._opened_at:
                self._announce(snapshot)
        self._announce_unseen(snapshots.values())
        ok &= self._guarded("tray", "tray", functools.partial(self.tray.sync, list(snapshots.values())))
        stages = [s.stage for s in snapshots.values()]
        running = sum(map(_RUNNING.__contains__, stages))
        queued = stages.count(_QUEUED)
        if (running, queued) != self._counts_sent:
            self._counts_sent = (running, queued)
            self._browser("setCounts", {"running": running, "queued": queued})
        self._tell_job_news()
        self.patch.flush()
        self._show_emptiness()
        return ok

    def _announce_unseen(self, snapshots: Iterable[JobSnapshot]) -> None:
        """A job that started and completed between two ticks never had a card here; its
        completion is news in this tab all the same."""
        for snapshot in snapshots:
            if (
                snapshot.stage is _COMPLETED
                and snapshot.id not in self._announced
                and snapshot.id not in self._hidden_jobs
                and snapshot.id not in self.job_cards
                and (snapshot.finished_at or 0) >= self._opened_at
            ):
                self._announce(snapshot)

    def _lookup(self, image_id: ImageId) -> ImageRecord | None:
        return self.store.get(image_id) if image_id in self.store else None

    def _title(self, record: ImageRecord) -> str:
        return fmt.image_title(record, self._lookup)

    def _source_title(self, snapshot: JobSnapshot) -> str | None:
        source = snapshot.spec.source_image_id
        if source is None:
            return None
        record = self._lookup(source)
        return self._title(record) if record is not None else "a deleted image"

    def _add_job_card(self, snapshot: JobSnapshot) -> None:
        source = snapshot.spec.source_image_id
        thumb = urls.thumb(source) if source and source in self.store else None
        before = set(self.jobs_box.default_slot.children)
        try:
            with self.jobs_box:
                card = LoadingCard(
                    snapshot,
                    source_thumb=thumb,
                    source_title=self._source_title(snapshot),
                    patch=self.patch,
                    on_cancel=self._cancel,
                    on_retry=self._retry,
                    on_dismiss=self._dismiss,
                )
        except Exception:
            for partial in set(self.jobs_box.default_slot.children) - before:
                self.jobs_box.remove(partial)  # no half-built card stays behind
            raise
        card.root.move(self.jobs_box, target_index=0)
        self.job_cards[snapshot.id] = card

    def _drop_card(self, job_id: JobId) -> None:
        card = self.job_cards.pop(job_id, None)
        if card is not None:
            self.jobs_box.remove(card.root)

    def _announce(self, snapshot: JobSnapshot) -> None:
        self._announced.add(snapshot.id)
        what = fmt.kind_label(snapshot.spec.kind)
        if snapshot.stage is JobStage.COMPLETED:
            self._announce_completion(snapshot)
        elif snapshot.stage is JobStage.CANCELLED:
            kept = len(snapshot.result_image_ids)
            note = f" · {kept} of {snapshot.spec.variations} variations kept" if kept else ""
            ui.notify(f"{what} cancelled{note}: “{snapshot.spec.prompt}”", type="info")
            self._say(f"Cancelled: {fmt.job_title(snapshot.spec.prompt, self._source_title(snapshot))}.")
        elif snapshot.stage is JobStage.FAILED:
            self._announce_failure(snapshot)

    def _announce_completion(self, snapshot: JobSnapshot) -> None:
        """A toast with the result's thumbnail and View (the full image in a new tab); a browser
        notification too when this tab is hidden (``static/notify.js`` decides)."""
        what = fmt.kind_label(snapshot.spec.kind)
        result = snapshot.result_image_id
        extra: dict[str, object] = {"icon": "check_circle"}
        record = self._lookup(result) if result else None
        title = (
            self._title(record)
            if record
            else fmt.job_title(snapshot.spec.prompt, self._source_title(snapshot))
        )
        self._say(f"Finished: {title}.")
        if result and result in self.store:
            # A link button needs no handler: Quasar renders each action as a q-btn with its props.
            extra = {
                "icon": "",  # Quasar draws the avatar only where there is no icon
                "avatar": urls.thumb(result),
                "actions": [
                    {
                        "label": "View",
                        "color": "white",
                        "noCaps": True,
                        "href": urls.image(result),
                        "target": "_blank",
                    }
                ],
                "classes": "imgedit-toast imgedit-done-toast",
            }
        # Quasar shows the message as text (html is off): a prompt cannot become markup.
        # Quasar's positive green under white text reads at 2.6:1; green-9 at 5.1:1.
        made = len(snapshot.result_image_ids)
        count = f" · {made} variations" if made > 1 else ""
        ui.notify(
            f"{what} finished{count}: “{snapshot.spec.prompt}”", type="positive", color="green-9", **extra
        )
        self._browser(
            "finished",
            {
                "id": snapshot.id,
                "ok": True,
                "title": f"{what} finished",
                "body": fmt.shorten(snapshot.spec.prompt, 120),
                "icon": urls.thumb(result) if result else None,
            },
        )

    def _browser(self, function: str, payload: dict[str, object]) -> None:
        """Call ``imgeditNotify.<function>(payload)`` in this tab; user text travels as JSON."""
        ui.run_javascript(f"window.imgeditNotify && imgeditNotify.{function}({json.dumps(payload)})")

    def _source_thumb(self, snapshot: JobSnapshot) -> str | None:
        source = snapshot.spec.source_image_id
        return urls.thumb(source) if source and source in self.store else None

    def _announce_failure(self, snapshot: JobSnapshot) -> None:
        """A toast with the reason and a Retry button; it stays long enough to be read, and out
        of the way of the dialogs (which open in the middle)."""
        what = fmt.kind_label(snapshot.spec.kind)
        # Short enough to read at a glance; the card keeps the whole reason.
        reason = fmt.shorten(snapshot.error or "", 180)
        self._say(
            f"Failed: {fmt.job_title(snapshot.spec.prompt, self._source_title(snapshot))}. {reason}".strip()
        )
        toast = ui.notification(
            f"{what} failed: “{fmt.shorten(snapshot.spec.prompt, 60)}”. {reason}".strip(),
            type="negative",
            multi_line=True,
            timeout=FAILURE_TOAST_SECONDS,
            position="bottom-right",
            icon="error",
            classes="imgedit-toast",
        ).mark("failure-toast")
        source_thumb = self._source_thumb(snapshot)
        if source_thumb:
            toast.props["options"].update(
                avatar=source_thumb, icon=""
            )  # Quasar drops the avatar beside an icon
        # Quasar calls the action's handler in the browser; it tells the server through an event.
        # White on the red toast reads at 5.6:1; Quasar's default close button did not.
        toast.props["options"]["actions"] = [
            {"label": "Retry", "color": "white", ":handler": f"() => getElement({toast.id}).$emit('retry')"},
            {"label": "Dismiss", "color": "white", ":handler": "() => {}"},
        ]

        def retry() -> None:
            toast.dismiss()
            self._retry(snapshot.id)

        toast.on("retry", retry)
        self._browser(
            "finished",
            {
                "id": snapshot.id,
                "ok": False,
                "title": f"{what} failed",
                "body": f"“{fmt.shorten(snapshot.spec.prompt, 60)}”. {reason}".strip(),
                "icon": source_thumb,
            },
        )

    # -- job actions ---------------------------------------------------------------------------

    def _after_submit(self) -> None:
        """Show this tab's new job at once: its card scrolled into view (the header stays on
        top); and, on the first submit only, ask for permission to notify (never on page load)."""
        known = set(self.job_cards)
        self.tick()
        fresh = [card for job_id, card in self.job_cards.items() if job_id not in known]
        if fresh:
            self._browser("reveal", {"id": fresh[-1].root.id})
        self._browser("askPermission", {})
        # Keyboard focus was on the closed dialog: it goes back to where the user came from (the
        # edited image's card, or New image), not to <body>.
        image = self.job_dialog.image if self.job_dialog.kind is JobKind.EDIT else None
        target = self.image_cards.get(image.id) if image is not None else self.new_image_button
        if target is not None:
            self._browser("refocus", {"id": target.id})

    def _hide_jobs(self, job_ids: Iterable[JobId]) -> None:
        """This tab cancels these itself: their cards go at once, without a toast each."""
        for job_id in job_ids:
            self._hidden_jobs.add(job_id)
            card = self.job_cards.get(job_id)
            if card is not None:
                card.root.set_visibility(False)

    def _cancel(self, job_id: JobId) -> None:
        self._hidden_jobs.add(job_id)
        card = self.job_cards.get(job_id)
        if card is not None:
            card.root.set_visibility(False)
        if self.registry.cancel(job_id):
            ui.notify("Cancelled. Nothing was added to the gallery.", type="info")
            if card is not None:
                self._say(f"Cancelled: {card.title}. Nothing was added.")
                self._flush_news()

    def _retry(self, job_id: JobId) -> None:
        """The Edit / New image form, filled with the failed job's prompt and settings; its Start
        queues the job (the failed card goes then), unchanged or edited."""
        try:
            spec = self.registry.snapshot(job_id).spec
        except (ImgEditError, ValueError) as exc:
            ui.notify(str(exc), type="warning")
            self.tick()
            return
        source = self._lookup(spec.source_image_id) if spec.source_image_id else None
        if spec.kind is JobKind.EDIT and source is None:
            ui.notify("The original image was deleted, so this edit cannot run again.", type="warning")
            return
        self.job_dialog.open_with(spec, source, retry_of=job_id)

    def _dismiss(self, job_id: JobId) -> None:
        try:
            self.registry.dismiss(job_id)
        except (ImgEditError, ValueError) as exc:
            ui.notify(str(exc), type="warning")
        self.tick()

    # -- images ----------------------------------------------------------------------------

    async def _on_upload(self, event: events.MultiUploadEventArguments) -> None:
        """Every file gets its own outcome: added (with any note), or refused with the reason."""
        added: list[str] = []
        refused: list[str] = []
        for file in event.files:
            name = file.name or "upload"
            try:
                # Checked before reading: a huge POST must not be pulled into memory first.
                if file.size() > imaging.MAX_UPLOAD_BYTES:
                    raise InvalidRequest(f"“{name}” is larger than {imaging.MAX_UPLOAD_BYTES // MB} MB.")
                record, note = await self.store.add_upload(await file.read(), name=name)
            except ImgEditError as exc:
                refused.append(str(exc))
                ui.notify(f"{exc} Nothing was added.", type="negative", multi_line=True)
                continue
            added.append(record.title)
            ui.notify(f"Added “{record.title}” to the gallery. {note}".strip(), type="positive")
        # The strip would show every file as done; what happened is said in words instead.
        self.upload.reset()
        at, by_browser = self._refused_by_browser
        self._refused_by_browser = (0.0, [])
        if time.monotonic() - at < SAME_DROP_SECONDS:
            refused = [*by_browser, *refused]
        self._show_upload_outcome(added, refused)
        self.tick()

    def _on_rejected(self, event: events.GenericEventArguments) -> None:
        """Files the browser refused before sending (wrong type, too large), named one by one."""
        reasons = {"accept": "is not an image", "max-file-size": "is larger than {} MB"}
        refused = []
        for entry in event.args if isinstance(event.args, list) else []:
            name = str(entry.get("name") or "a file") if isinstance(entry, dict) else "a file"
            reason = reasons.get(str(entry.get("reason")) if isinstance(entry, dict) else "", "was refused")
            refused.append(f"“{name}” {reason.format(imaging.MAX_UPLOAD_BYTES // MB)}.")
        for text in refused or ["A file was refused."]:
            ui.notify(f"{text} Nothing was added.", type="negative", multi_line=True)
        # The rest of the same drop arrives a moment later; its outcome line keeps these.
        self._refused_by_browser = (time.monotonic(), refused)
        self._show_upload_outcome([], refused)

    def _show_upload_outcome(self, added: list[str], refused: list[str]) -> None:
        parts = [f"Added {len(added)}." if added else ""] + [f"Refused: {text}" for text in refused]
        outcome = " ".join(p for p in parts if p)
        self.upload_status.set_text(outcome)
        if outcome:
            self._say(outcome)
            self._flush_news()
        self.upload_status.classes(
            add="imgedit-upload-refused" if refused else "",
            remove="" if refused else "imgedit-upload-refused",
        )

    async def _download_images(self, image_ids: list[ImageId]) -> None:
        from imgedit.ui import archive  # the zip download (imgedit/ui/archive.py)

        await archive.download(self.services, image_ids)

    async def _delete(self, record: ImageRecord) -> None:
        try:
            await self.store.delete(record.id)
        except ImgEditError as exc:
            ui.notify(str(exc), type="warning")
            self.tick()  # the store put the image back: so does the gallery, at once
            return
        ui.notify(f"Deleted “{self._title(record)}”.")
        self.tick()
