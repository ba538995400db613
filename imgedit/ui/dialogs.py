"""The page's dialogs, built once per page and refilled on each open: image actions, the
edit / new-image form, the full-size viewer and the delete confirmation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import app, background_tasks, events, ui

from imgedit import native
from imgedit.editing import Advanced, clean_text
from imgedit.errors import ImgEditError
from imgedit.jobs import JobSpec, prompts
from imgedit.jobs import history as journal_history
from imgedit.jobs.model import MAX_VARIATIONS
from imgedit.models import ImageRecord, JobId, JobKind, Quality
from imgedit.providers.base import Provider
from imgedit.services import Services
from imgedit.ui import format as fmt
from imgedit.ui import signin, urls
from imgedit.ui.advanced import AdvancedSettings
from imgedit.ui.compare import CompareDialog
from imgedit.ui.mask_editor import MaskEditor
from imgedit.ui.routes import download_names

SIZES: dict[str, tuple[int, int]] = {
    "Square · 1024×1024": (1024, 1024),
    "Landscape · 1280×768": (1280, 768),
    "Portrait · 768×1280": (768, 1280),
}
VARIATIONS = {n: "1 image" if n == 1 else f"{n} images" for n in range(1, MAX_VARIATIONS + 1)}
"""The dialog's Variations choices: how many results one job makes."""
CHIPS_HINT = "Click a phrase to add it to the prompt."
RECENT_CHARS = 40
"""A recent prompt's chip shows this much of it; its name and title carry all of it."""

CHIP_KEYS_JS = """(e) => {
  const moves = {ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1, Home: -Infinity, End: Infinity};
  const group = e.target instanceof Element && e.target.closest('[role=group]');
  if (!group || !(e.key in moves) || e.altKey || e.ctrlKey || e.metaKey) return;
  const chips = [...group.querySelectorAll('button')];
  const at = chips.indexOf(document.activeElement);
  if (at < 0) return;
  const step = moves[e.key];
  const to = step === -Infinity ? 0 : step === Infinity ? chips.length - 1 : (at + step + chips.length) % chips.length;
  e.preventDefault();
  chips.forEach((chip, i) => chip.setAttribute('tabindex', i === to ? '0' : '-1'));
  chips[to].focus();
}"""
"""A group of chips is one Tab stop; the arrow keys (Home, End) move between its chips."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Again:
    """The dialog was opened from an earlier job (``JobDialog.open_with``): its spec, and the
    failed job it retries (dismissed once the new one is queued), if any."""

    spec: JobSpec
    retry_of: JobId | None
    form: tuple[object, ...]
    """The settings as the form showed them when it opened (``JobDialog._form``)."""


def show_error(field: ui.input, message: str) -> None:
    """A refusal under the form's field (gone as soon as the field is edited)."""
    field.props["error-message"] = message
    field.props["error"] = True


def chosen_provider(services: Services, select: ui.select) -> Provider | None:
    """The provider a Provider select shows, or None when none is chosen (or it is gone)."""
    try:
        return services.providers.get(str(select.value))
    except ImgEditError:
        return None


def prompt_field(label: str, marker: str, on_enter: Callable[[], object]) -> ui.input:
    """A dialog's prompt: Enter submits, and an error shown on it goes as soon as it is edited."""
    field = (
        ui.input(label=label)
        .props('outlined autofocus clearable color=ie-accent input-class="text-body1"')
        .classes("w-full")
        .mark(marker)
    )
    field.on("keydown.enter", on_enter)
    field.on_value_change(lambda: field.props.pop("error", None))
    return field


def settings_fields(
    prefix: str, on_provider: Callable[[], object] | None = None
) -> tuple[ui.select, ui.select, ui.select]:
    """Quality and Provider side by side, then Workflow (a provider's variants, shown only when
    there is a choice); markers ``<prefix>quality``, ``<prefix>provider``, ``<prefix>variant``."""
    with ui.row().classes("w-full no-wrap gap-3 imgedit-field-row"):
        quality = (
            ui.select(
                {q.value: q.value.capitalize() for q in Quality}, label="Quality", value=Quality.MEDIUM.value
            )
            .props("outlined dense options-dense color=ie-accent")
            .classes("grow")
            .mark(f"{prefix}quality")
        )
        provider = (
            ui.select({}, label="Provider", on_change=on_provider)
            .props("outlined dense options-dense color=ie-accent")
            .classes("grow")
            .mark(f"{prefix}provider")
        )
    variant = (
        ui.select({}, label="Workflow")
        .props("outlined dense options-dense color=ie-accent")
        .classes("w-full")
        .mark(f"{prefix}variant")
    )
    return quality, provider, variant


def variations_field(marker: str, on_change: Callable[[], object] | None = None) -> ui.select:
    """How many results a job makes (1–4: ``VARIATIONS``), 1 to start with."""
    return (
        ui.select(VARIATIONS, label="Variations", value=1, on_change=on_change)
        .props("outlined dense options-dense color=ie-accent")
        .classes("grow")
        .mark(marker)
    )


def chosen_variations(select: ui.select) -> int:
    value = select.value
    return value if isinstance(value, int) and value in VARIATIONS else 1


class JobDialog:
    """The Edit and New image form. Start submits a job and closes at once; it never waits."""

    def __init__(self, services: Services, *, on_submitted: Callable[[], None]) -> None:
        self.services = services
        self._on_submitted = on_submitted
        self.kind = JobKind.EDIT
        self.image: ImageRecord | None = None
        self._submitted = False
        self._again: _Again | None = None
        self._suggested: tuple[str, JobKind] | None = None
        self._recent_round = 0
        with ui.dialog() as self.dialog, ui.card().classes("imgedit-dialog q-pa-lg gap-3"):
            self.title = ui.label().classes("text-h6")
            name_dialog(self.dialog, self.title)
            self.picture = ui.element("img").classes("imgedit-dialog-image").props('alt=""')
            # "Select area": a region edit's mask (``area.mask_id``), painted over the picture.
            self.area = MaskEditor(services, on_change=self._offer_providers)
            self.prompt = prompt_field("What should change?", "prompt", self.submit)
            self.hint = ui.label().classes("imgedit-hint")
            # The provider's phrases (add to the prompt) and this kind's recent prompts (replace it).
            self.suggestions = ui.element("div").classes("imgedit-suggestions").mark("suggestions")
            self.recent = ui.element("div").classes("imgedit-suggestions").mark("recent-prompts")
            for group, name in ((self.suggestions, "Phrases to add"), (self.recent, "Recent prompts")):
                group.props["role"] = "group"
                group.props["aria-label"] = name
                group.set_visibility(False)
                group.on("keydown", js_handler=CHIP_KEYS_JS)
            # A provider's named variants (ComfyUI's workflows), shown only when there is a choice.
            self.quality, self.provider, self.variant = settings_fields("", self._refresh_estimates)
            with ui.row().classes("w-full no-wrap gap-3 imgedit-field-row"):
                self.size = (
                    ui.select(
                        list(SIZES), label="Size", value=next(iter(SIZES)), on_change=self._refresh_estimates
                    )
                    .props("outlined dense color=ie-accent")
                    .classes("grow")
                    .mark("size")
                )
                # 1–4 results from one job, siblings in the gallery (the card shows a slot each).
                self.variations = variations_field("variations", self._refresh_estimates)
            self.engine_note = ui.label().classes("imgedit-hint")
            # Negative prompt, seed, steps, guidance, strength: folded, for providers that take them.
            self.advanced = AdvancedSettings()
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat no-caps color=ie-quiet")
                self.start = (
                    ui.button(on_click=self.submit)
                    .props("unelevated no-caps color=deep-purple-5")
                    .mark("start")
                )

    def open_edit(self, image: ImageRecord) -> None:
        self.kind, self.image = JobKind.EDIT, image
        self.title.set_text(f"Edit “{image_title(image, self.services)}”")
        self.picture.props["src"] = urls.thumb(image.id)
        self.picture.set_visibility(True)
        self.area.reset(image)  # each open starts with no area
        self.prompt.props["label"] = "What should change?"
        self.size.set_visibility(False)
        self.start.set_text("Start Edit")
        self._open()

    def open_generate(self) -> None:
        self.kind, self.image = JobKind.GENERATE, None
        self.title.set_text("New image")
        self.picture.set_visibility(False)
        self.area.reset(None)
        self.prompt.props["label"] = "Describe the image"
        self.size.set_visibility(True)
        self.start.set_text("Generate")
        self._open()

    def _open(self) -> None:
        self._again = None  # ``open_with`` sets it after this
        self.advanced.reset()
        self.variations.set_value(1)
        self._show_recent()
        self._offer_providers(keep=False)
        self.prompt.value = ""
        self.prompt.props.pop("error", None)
        self._submitted = False
        self.start.props.pop("loading", None)
        self._refresh_estimates()
        self.dialog.open()

    def _offer_providers(self, *, keep: bool = True) -> None:
        """The providers for this kind; while an area is set, only those that can edit one (the
        choice kept where it still can, with ``keep``). With none, Start is off and the area says so."""
        providers = self.services.providers.offering(self.kind, mask=bool(self.area.mask_id))
        options = {p.name: p.label for p in providers}
        chosen = self.provider.value if keep and self.provider.value in options else None
        self.provider.set_options(options, value=chosen or next(iter(options), None))
        self.area.say_none_can(not options)
        self.start.set_enabled(bool(options))
        if keep:
            self._refresh_estimates()

    def _refresh_estimates(self) -> None:
        provider = self._chosen_provider()
        if provider is None:
            return
        # Learned per size bucket too: the size of this edit's source or of the picture asked for.
        if self.kind is JobKind.EDIT and self.image is not None:
            size: tuple[int, int] | None = (self.image.width, self.image.height)
        else:
            size = SIZES.get(str(self.size.value))
        durations = self.services.studio.durations
        count = self._variations()
        options = {
            q.value: f"{q.value.capitalize()} · "
            + fmt.seconds_label(durations.expected(provider.name, self.kind, q, size=size) * count)
            for q in Quality
        }
        self.quality.set_options(options, value=self.quality.value or Quality.MEDIUM.value)
        self._fill_suggestions(provider)
        self.engine_note.set_text(engine_note(provider))
        self.advanced.show_for(provider, self.kind)
        names = variants_of(provider, self.kind, mask=bool(self.area.mask_id))
        if len(names) > 1:
            self.variant.props["label"] = getattr(provider, "variant_label", "Variant")
            value = self.variant.value if self.variant.value in names else names[0]
            self.variant.set_options(names, value=value)
        else:
            self.variant.set_options([], value=None)
        self.variant.set_visibility(len(names) > 1)

    def _variant(self) -> str:
        return str(self.variant.value or "") if self.variant.visible else ""

    def _variations(self) -> int:
        return chosen_variations(self.variations)

    def _chosen_provider(self) -> Provider | None:
        return chosen_provider(self.services, self.provider)

    def submit(self) -> None:
        """One job per open of the dialog, however often Start is clicked or Enter pressed."""
        if self._submitted or not self.dialog.value:
            return
        prompt = str(self.prompt.value or "")
        by = signin.current_name(self.services)  # "" without a password: no "by" shown
        try:
            if self._again is not None:
                self._submit_again(self._again, prompt, by)
            else:
                self._submit_form(prompt, by)
        except ImgEditError as exc:
            show_error(self.prompt, str(exc))
            return
        self._submitted = True
        self.start.props["loading"] = True  # the browser ignores further clicks until the next open
        self.dialog.close()
        self._on_submitted()

    def _submit_form(self, prompt: str, by: str, size: tuple[int, int] | None = None) -> None:
        """Queue the job the form describes (``size`` instead of the Size field's, when given)."""
        studio = self.services.studio
        quality, provider = Quality(self.quality.value), str(self.provider.value)
        if self.kind is JobKind.EDIT:
            assert self.image is not None
            studio.submit_edit(
                self.image.id,
                prompt,
                quality,
                provider,
                started_by=by,
                variant=self._variant(),
                mask=self.area.mask_id,
                advanced=self.advanced.value(),
                variations=self._variations(),
            )
        else:
            studio.submit_generate(
                prompt,
                quality,
                provider,
                size or SIZES.get(str(self.size.value)),
                started_by=by,
                variant=self._variant(),
                advanced=self.advanced.value(),
                variations=self._variations(),
            )

    # -- opened from an earlier job (Retry of a failed card) -------------------------------------

    def open_with(
        self, spec: JobSpec, source: ImageRecord | None = None, *, retry_of: JobId | None = None
    ) -> None:
        """Open filled with ``spec``'s prompt and settings (quality, provider, variant, size), all
        editable. Start queues a new job; with ``retry_of`` (a failed job) that job's card is
        dismissed once it is queued, and Start on an unchanged form retries it as before (the
        next attempt of the same spec). A region edit keeps its area (``spec.mask``)."""
        if spec.kind is JobKind.EDIT:
            if source is None:
                raise ValueError("an edit opens with its source image")
            self.open_edit(source)
        else:
            self.open_generate()
        if spec.mask:  # shown as the area set (Change / Clear work on it); the providers follow
            self.area.keep(spec.mask)
        if spec.provider in self.provider.options:
            self.provider.set_value(spec.provider)
        self.quality.set_value(spec.quality.value)
        by_size = {size: label for label, size in SIZES.items()}
        if spec.size in by_size:
            self.size.set_value(by_size[spec.size])
        self.variations.set_value(spec.variations if spec.variations in VARIATIONS else 1)
        self._refresh_estimates()
        if spec.variant and self.variant.visible and spec.variant in self.variant.options:
            self.variant.set_value(spec.variant)
        self.prompt.value = spec.prompt
        self.advanced.fill(spec)
        self._again = _Again(spec, retry_of, self._form())

    def _form(self) -> tuple[object, ...]:
        return (
            self.quality.value,
            self.provider.value,
            self._variant(),
            self.size.value,
            self.advanced.value(),
            self._variations(),
        )

    def _unchanged(self, again: _Again, prompt: str) -> bool:
        """Confirmed as it opened: the same prompt and settings on the job's own provider."""
        return (
            clean_text(prompt) == again.spec.prompt
            and self.provider.value == again.spec.provider
            and self._form() == again.form
            and (again.spec.kind is JobKind.GENERATE or self.area.mask_id == again.spec.mask)
        )

    def _submit_again(self, again: _Again, prompt: str, by: str) -> None:
        """Queue the form's job; the failed one it retries goes (a retry as before when the form
        was confirmed unchanged). Raises ``ImgEditError`` when the form cannot run."""
        registry, spec = self.services.registry, again.spec
        if again.retry_of is not None and self._unchanged(again, prompt):
            with contextlib.suppress(ImgEditError, ValueError):  # gone meanwhile: queued anew below
                registry.retry(again.retry_of, started_by=by or None)
                return
        size = None
        if (
            spec.kind is JobKind.GENERATE
            and self.size.value == again.form[3]
            and spec.size not in SIZES.values()
        ):
            size = spec.size  # a size the form does not offer, left as it was
        self._submit_form(prompt, by, size)
        if again.retry_of is not None:
            with contextlib.suppress(ImgEditError, ValueError):  # dismissed elsewhere already
                registry.dismiss(again.retry_of)

    # -- prompt chips -----------------------------------------------------------------------------

    def _fill_suggestions(self, provider: Provider) -> None:
        """The provider's phrases as chips that add to the prompt; a provider without any keeps
        its one-line ``describe`` as the hint."""
        if self._suggested == (provider.name, self.kind):
            return
        self._suggested = (provider.name, self.kind)
        offered = getattr(provider, "suggestions", None)
        phrases = [str(p) for p in offered(self.kind)] if offered is not None else []
        self.hint.set_text(CHIPS_HINT if phrases else provider.describe(self.kind))
        self.suggestions.clear()
        self.suggestions.set_visibility(bool(phrases))
        with self.suggestions:
            for index, phrase in enumerate(phrases):
                chip = ui.button(phrase, on_click=functools.partial(self._add_phrase, phrase))
                chip.props("outline dense rounded no-caps size=sm color=ie-accent").mark("suggestion")
                chip.props["aria-label"] = f"Add “{phrase}” to the prompt"
                chip.props["tabindex"] = "0" if index == 0 else "-1"

    def _add_phrase(self, phrase: str) -> None:
        text = str(self.prompt.value or "").strip()
        joiner = " and " if self.kind is JobKind.EDIT else ", "
        self.prompt.value = f"{text}{joiner}{phrase}" if text else phrase

    def _use_prompt(self, prompt: str) -> None:
        self.prompt.value = prompt

    def _show_recent(self) -> None:
        """This kind's recent prompts as chips, read from the journal off the event loop; an
        answer for an earlier opening is dropped."""
        self._recent_round += 1
        self.recent.clear()
        self.recent.set_visibility(False)
        background_tasks.create(self._load_recent(self.kind, self._recent_round), name="recent prompts")

    async def _load_recent(self, kind: JobKind, round_: int) -> None:
        try:
            found = await asyncio.to_thread(prompts.recent, self.services.store.db, kind)
        except Exception:  # the chips are a convenience: the dialog works without them
            log.warning("the recent prompts could not be read", exc_info=True)
            return
        if round_ != self._recent_round or self.recent.is_deleted or not found:
            return
        with self.recent:
            ui.label("Recent:").classes("imgedit-hint")
            for index, prompt in enumerate(found):
                shown = fmt.shorten(prompt, RECENT_CHARS)
                chip = ui.button(shown, on_click=functools.partial(self._use_prompt, prompt))
                chip.props("outline dense rounded no-caps size=sm color=ie-accent icon=history")
                chip.mark("recent-prompt")
                chip.props["aria-label"] = f"Use the prompt “{prompt}”"
                chip.props["title"] = prompt
                chip.props["tabindex"] = "0" if index == 0 else "-1"
        self.recent.set_visibility(True)


def variants_of(provider: Provider, kind: JobKind, *, mask: bool = False) -> list[str]:
    """The provider's named variants for ``kind`` (``base.Variants``), the default first; with
    ``mask``, those that can edit a selected area. [] for a provider without variants."""
    offered = getattr(provider, "variants", None)
    if offered is None:
        return []
    return list(offered(kind, mask=True)) if mask else list(offered(kind))


def job_settings_text(seed: int | None, negative_prompt: str) -> str:
    """``seed 1234 · not: “blurry, text”``: what a result was made with beyond its prompt."""
    parts = [f"seed {seed}" if seed is not None else ""]
    if negative_prompt:
        parts.append(f"not: “{fmt.shorten(negative_prompt, 60)}”")
    return " · ".join(part for part in parts if part)


def engine_note(provider: Provider) -> str:
    """What the chosen provider is and what it shows while it works, from its capabilities."""
    caps = provider.capabilities
    if caps.offline:
        return f"{provider.label}: runs on this computer, no AI model and no network."
    shows = [
        text
        for wanted, text in (
            (caps.real_progress, "real progress"),
            (caps.stream_previews, "live previews"),
            (caps.cancel_remote, "cancels on the server"),
        )
        if wanted
    ]
    return f"Runs on {provider.label}" + (f": {', '.join(shows)}." if shows else ".")


Step = Callable[[ImageRecord, int], "ImageRecord | None"]
"""``step(record, delta)``: the image ``delta`` places on in the page's order (+1 the next older,
-1 the next newer), or None past either end."""
Position = Callable[[ImageRecord], "tuple[int, int] | None"]
"""``position(record)``: (its place counted from 1, how many there are), where the page knows it."""

NEWER, OLDER = -1, 1

KEYS_JS = "(e) => { const delta = window.imgeditViewer ? imgeditViewer.key(e) : 0; if (delta) emit(delta); }"
"""A dialog's keydown: static/viewer.js zooms on + / - / 0 itself and answers -1 / +1 for
ArrowLeft / ArrowRight (never while typing in a field, never with a modifier); only those reach
the server."""


STAGE_EVENTS = ("wheel", "pointerdown", "pointermove", "pointerup", "pointercancel", "dblclick")
"""What the viewer's stage hands to static/viewer.js (zoom around the cursor, drag, pinch)."""


def _viewer_js(function: str) -> str:
    """A browser-only handler: the event goes to ``imgeditViewer.<function>`` (static/viewer.js)."""
    return f"(e) => window.imgeditViewer && imgeditViewer.{function}(e)"


class ImageDialog:
    """Click on a gallery image: a larger view with Edit, View, Download and Delete.

    Previous / Next (buttons, and ArrowLeft / ArrowRight) walk the page's order in place, here and
    in the full-size viewer, which also zooms and pans (``static/viewer.js``, in the browser
    alone). Without ``step`` there is no order to walk and the arrows are not shown.

    Usage::

        dialog = ImageDialog(services, on_edit=..., on_delete=..., step=page.step)
        dialog.open(record)
    """

    def __init__(
        self,
        services: Services,
        *,
        on_edit: Callable[[ImageRecord], None],
        on_delete: Callable[[ImageRecord], Awaitable[None]],
        step: Step | None = None,
        position: Position | None = None,
    ) -> None:
        self.services = services
        self.image: ImageRecord | None = None
        self._opened_with: ImageRecord | None = None
        self._handing_over = False
        """Closed by Edit or Delete: where focus goes next is not this dialog's business."""
        self._on_edit, self._on_delete = on_edit, on_delete
        self._step, self._position = step, position
        self._arrows: list[tuple[ui.button, int]] = []
        self._prefetch: list[tuple[ui.element, int, Callable[[str], str]]] = []
        with (
            ui.dialog() as self.dialog,
            ui.card().classes("imgedit-dialog imgedit-image-dialog q-pa-lg gap-3").mark("image-dialog"),
        ):
            self.title = ui.label().classes("text-h6 ellipsis w-full").mark("image-title")
            name_dialog(self.dialog, self.title)
            self.picture = ui.element("img").classes("imgedit-dialog-image").props('alt=""')
            self.picture.on("click", self._view).mark("image-picture")  # a mouse's way to View
            self.counter = ui.label().classes("imgedit-counter").mark("image-position")
            self.details = ui.label().classes("imgedit-hint")
            self.lineage = ui.label().classes("imgedit-lineage")
            # The other results of its job (variations), to switch between; rebuilt on each open.
            self.siblings = ui.element("div").classes("imgedit-chain").mark("siblings")
            # The chain of edits this image came from, parent first; rebuilt on each open.
            self.chain = ui.element("div").classes("imgedit-chain").mark("lineage")
            with ui.row().classes("w-full justify-between items-center"):
                with ui.row().classes("gap-1"):
                    ui.button("View", icon="open_in_full", on_click=self._view).props(
                        "flat no-caps color=ie-quiet"
                    )
                    # Shown for an image whose source is still in the gallery (_show).
                    self.compare_button = ui.button("Compare", icon="compare", on_click=self._compare)
                    self.compare_button.props("flat no-caps color=ie-quiet").mark("compare")
                    ui.button("Download", icon="download", on_click=self._download).props(
                        "flat no-caps color=ie-quiet"
                    )
                    ui.button("Delete", icon="delete", on_click=self._confirm_delete).props(
                        "flat no-caps color=ie-danger"
                    )
                with ui.row().classes("gap-1"):
                    # Shown for an image a job made (_show): that job's settings, a new seed.
                    self.again_button = ui.button("Run again", icon="replay", on_click=self._run_again)
                    self.again_button.props("flat no-caps color=ie-quiet").mark("run-again")
                    ui.button("Edit", icon="auto_fix_high", on_click=self._edit).props(
                        "unelevated no-caps color=deep-purple-5"
                    ).mark("edit")
            # After the actions in the page (Tab reaches View and Download first), drawn on the
            # picture's sides (a CSS grid cell they share with it).
            self._add_arrows("image")
            self._add_prefetchers(urls.thumb)
            self.announcer = _live_region()
        self.dialog.on("keydown", self._on_key, js_handler=KEYS_JS)
        self.dialog.on_value_change(self._on_dialog_toggled)

        with (
            ui.dialog().props("maximized").classes("imgedit-viewer-dialog") as self.viewer,
            ui.card().classes("imgedit-viewer").mark("viewer"),
        ):
            with ui.element("div").classes("imgedit-viewer-bar"):
                with ui.element("div").classes("imgedit-viewer-heading"):
                    self.viewer_title = ui.label().classes("imgedit-viewer-title")
                    name_dialog(self.viewer, self.viewer_title)
                    self.viewer_counter = ui.label().classes("imgedit-viewer-counter").mark("viewer-position")
                with ui.element("div").classes("imgedit-zoom-controls"):
                    self._zoom_button("zoom_out", "Zoom out", "out", "Zoom out (−)")
                    # static/viewer.js writes the level here ("Fit", "200 %"); read out as it changes.
                    level = ui.label("Fit").classes("imgedit-zoom-level").mark("zoom-level")
                    level.props.update(role="status")
                    level.props["aria-live"] = "polite"
                    self._zoom_button("zoom_in", "Zoom in", "in", "Zoom in (+)")
                    self._zoom_button("fit_screen", "Fit", "fit", "Fit to the window (0)")
                close = ui.button(icon="close", on_click=self.viewer.close).props("flat round color=white")
                close.props["aria-label"] = "Close the full-size view"
                close.props["title"] = "Close (Esc)"
                close.mark("viewer-close")
            with ui.element("div").classes("imgedit-viewer-stage").mark("viewer-stage") as stage:
                self.viewer_image = ui.element("img").props('alt="full size"')
                self.viewer_image.props["draggable"] = "false"
                self.viewer_image.on("load", js_handler=_viewer_js("loaded"))
                for event in STAGE_EVENTS:
                    stage.on(event, js_handler=_viewer_js(event))
                self._add_arrows("viewer")
                self._add_prefetchers(urls.image)
            self.viewer_announcer = _live_region()
        self.viewer.on("keydown", self._on_key, js_handler=KEYS_JS)

        self.confirm, self.confirm_text = delete_confirmation(
            hint="The file is removed from the data folder. Images made from it stay.",
            keep="Keep it",
            on_delete=self._delete,
            marker="confirm-delete",
        )
        self.compare = CompareDialog(services)
        """The page's before/after slider (the history's rows open it too)."""

    # -- building blocks -------------------------------------------------------------------------

    def _add_arrows(self, where: str) -> None:
        for delta, icon, name, side in (
            (NEWER, "chevron_left", "Previous image (newer)", "newer"),
            (OLDER, "chevron_right", "Next image (older)", "older"),
        ):
            arrow = ui.button(icon=icon, on_click=functools.partial(self.go, delta))
            arrow.props("flat color=white").classes(f"imgedit-arrow imgedit-arrow-{side}")
            arrow.props["aria-label"] = name
            arrow.props["title"] = f"{name} · {'←' if delta == NEWER else '→'}"
            arrow.mark(f"{where}-{side}")
            arrow.set_visibility(self._step is not None)
            self._arrows.append((arrow, delta))

    def _add_prefetchers(self, url: Callable[[str], str]) -> None:
        """Hidden pictures of both neighbours: the browser has them by the time an arrow is pressed
        (they load only while their dialog is open: thumbnails here, full size in the viewer)."""
        for delta in (NEWER, OLDER):
            hidden = ui.element("img").classes("imgedit-prefetch")
            hidden.props["alt"] = ""
            hidden.props["aria-hidden"] = "true"
            self._prefetch.append((hidden, delta, url))

    def _zoom_button(self, icon: str, name: str, command: str, tip: str) -> None:
        button = ui.button(icon=icon).props("flat round dense color=white")
        button.props["aria-label"] = name
        button.props["title"] = tip
        button.mark(f"zoom-{command}")
        button.on("click", js_handler=f"(e) => window.imgeditViewer && imgeditViewer.zoom(e, '{command}')")

    # -- showing an image ------------------------------------------------------------------------

    def open(self, image: ImageRecord) -> None:
        if not self.dialog.value:
            self._opened_with, self._handing_over = image, False
        self._show(image)
        self.dialog.open()

    def _show(self, image: ImageRecord) -> None:
        """Fill both views with ``image`` in place: nothing closes or opens again."""
        self.image = image
        title = image_title(image, self.services)
        self.title.set_text(title)
        self.picture.props["src"] = urls.thumb(image.id)
        origin = fmt.ORIGIN_LABELS[image.origin]
        self.details.set_text(f"{origin} · {image.width}×{image.height} · {image.format}")
        if image.job_id is not None:  # its job's seed, when it had one: read off the event loop
            background_tasks.create(self._add_job_details(image), name="image job details")
        self.lineage.set_text(lineage_text(image, self.services))
        self._fill_siblings(image)
        self._fill_chain(image)
        self.compare_button.set_visibility(
            image.parent_id is not None and image.parent_id in self.services.store
        )
        self.again_button.set_visibility(image.job_id is not None)
        place = self._place(image)
        for label in (self.counter, self.viewer_counter):
            label.set_text(place)
            label.set_visibility(bool(place))
        self.viewer_title.set_text(title)
        self.viewer_image.props["src"] = urls.image(image.id)
        self._find_neighbours(image)

    def _find_neighbours(self, image: ImageRecord) -> None:
        """An arrow with nothing beyond it is disabled; the pictures beyond the others load now.

        Disabled with aria-disabled, not the disabled property: an arrow pressed to the end keeps
        the keyboard focus (a button losing it would drop focus to the page, out of the dialog's
        keys), and a press on it does nothing."""
        step = self._step
        neighbours = {delta: step(image, delta) if step else None for delta in (NEWER, OLDER)}
        for arrow, delta in self._arrows:
            if neighbours[delta] is None:
                arrow.props["aria-disabled"] = "true"
                arrow.classes(add="imgedit-arrow-end")
            else:
                arrow.props.pop("aria-disabled", None)
                arrow.classes(remove="imgedit-arrow-end")
        for hidden, delta, url in self._prefetch:
            neighbour = neighbours[delta]
            if neighbour is None:
                hidden.props.pop("src", None)
            else:
                hidden.props["src"] = url(neighbour.id)

    def _place(self, image: ImageRecord) -> str:
        where = self._position(image) if self._position is not None else None
        return f"{where[0]:,} of {where[1]:,}" if where else ""

    def go(self, delta: int) -> None:
        """Show the next older (+1) or newer (-1) image in place; at an end, nothing moves."""
        if self.image is None or self._step is None:
            return
        target = self._step(self.image, delta)
        if target is None:
            self._find_neighbours(self.image)  # the end may have moved since it was shown
            return
        self._show(target)
        # Focus stays on the arrow (or the dialog); the new title is read out instead.
        said = ". ".join(p for p in (self.title.text, self._place(target)) if p)
        announcer = self.viewer_announcer if self.viewer.value else self.announcer
        announcer.set_text(said if said != announcer.text else said + "\u00a0")

    def _on_key(self, event: events.GenericEventArguments) -> None:
        if event.args in (NEWER, OLDER):
            self.go(int(event.args))

    def _on_dialog_toggled(self, event: events.ValueChangeEventArguments) -> None:
        """Closed on another image than it opened on: keyboard focus goes to that image's card,
        scrolled into view (Quasar hands it back to the card it came from)."""
        image, opened = self.image, self._opened_with
        if event.value or self._handing_over or image is None or opened is None or image.id == opened.id:
            return
        ui.run_javascript(f"window.imgeditViewer && imgeditViewer.focusCard({json.dumps(image.id)})")

    def _fill_siblings(self, image: ImageRecord) -> None:
        """The results its job made (variations), this one marked current; each opens in place."""
        self.siblings.clear()
        siblings = self.services.store.siblings(image)
        self.siblings.set_visibility(len(siblings) > 1)
        if len(siblings) < 2:
            return
        with self.siblings:
            ui.label("Variations of this job").classes("imgedit-chain-heading")
            with ui.element("ol").classes("imgedit-chain-steps imgedit-variation-steps"):
                for sibling in siblings:
                    number = f"Variation {sibling.job_slot + 1}"
                    # A list item holding a button: a list's own children keep their list role.
                    with ui.element("li").classes("imgedit-chain-item"), ui.element("div") as step:
                        step.classes("imgedit-chain-step").mark(
                            "variation", f"variation-{sibling.job_slot + 1}"
                        )
                        step.props.update(role="button", tabindex="0", title=number)
                        step.props["aria-label"] = f"Show {number.lower()} of {len(siblings)}"
                        if sibling.id == image.id:
                            step.props["aria-current"] = "true"
                            step.classes("imgedit-current")
                        thumb = ui.element("img").classes("imgedit-chain-thumb")
                        thumb.props.update(src=urls.thumb(sibling.id), alt="", loading="lazy")
                        ui.label(str(sibling.job_slot + 1)).classes("imgedit-chain-title")
                        step.on("click", functools.partial(self.open, sibling))
                        step.on("keydown.enter", functools.partial(self.open, sibling))

    def _fill_chain(self, image: ImageRecord) -> None:
        self.chain.clear()
        ancestors = self.ancestors(image, self.services)
        self.chain.set_visibility(bool(ancestors))
        if not ancestors:
            return
        with self.chain:
            ui.label("Made from").classes("imgedit-chain-heading")
            with ui.element("ol").classes("imgedit-chain-steps"):
                for ancestor in ancestors:
                    with ui.element("li").classes("imgedit-chain-item"), ui.element("div") as step:
                        step.classes("imgedit-chain-step")
                        if ancestor is None:
                            step.classes("imgedit-chain-gone").mark("lineage-deleted")
                            ui.icon("hide_image").classes("imgedit-chain-thumb")
                            ui.label("a deleted image").classes("imgedit-chain-title")
                            continue
                        step.mark("lineage-step", f"lineage-{ancestor.id}")
                        name = image_title(ancestor, self.services)
                        step.props.update(role="button", tabindex="0", title=name)
                        step.props["aria-label"] = f"Open “{name}”"
                        thumb = ui.element("img").classes("imgedit-chain-thumb")
                        thumb.props.update(src=urls.thumb(ancestor.id), alt="", loading="lazy")
                        with ui.element("div").classes("imgedit-chain-text"):
                            ui.label(name).classes("imgedit-chain-title")
                            ui.label(fmt.ORIGIN_LABELS[ancestor.origin]).classes("imgedit-meta")
                        step.on("click", functools.partial(self.open, ancestor))
                        step.on("keydown.enter", functools.partial(self.open, ancestor))

    @staticmethod
    def ancestors(image: ImageRecord, services: Services, limit: int = 50) -> list[ImageRecord | None]:
        """Parent, grandparent … up to the original; ``None`` for a deleted one, where the chain
        ends (its own parent is not known any more)."""
        chain: list[ImageRecord | None] = []
        seen = {image.id}
        parent = image.parent_id
        while parent is not None and parent not in seen and len(chain) < limit:
            seen.add(parent)
            if parent not in services.store:
                chain.append(None)
                break
            record = services.store.get(parent)
            chain.append(record)
            parent = record.parent_id
        return chain

    def _edit(self) -> None:
        if self.image is not None:
            self._handing_over = True
            self.dialog.close()
            self._on_edit(self.image)

    def _view(self) -> None:
        if self.image is not None:
            self.viewer.open()  # filled by _show: the title and picture of the image shown

    async def _add_job_details(self, image: ImageRecord) -> None:
        """The details line gains the settings the job that made ``image`` ran with (its seed,
        a negative prompt), once the journal answers and if the dialog still shows ``image``."""
        assert image.job_id is not None
        try:
            row = await asyncio.to_thread(journal_history.get, self.services.store.db, image.job_id)
        except Exception:  # a convenience: the dialog works without it
            log.warning("the job of image %s could not be read", image.id, exc_info=True)
            return
        if row is None or self.image is not image or self.details.is_deleted:
            return
        extra = job_settings_text(row.seed, row.negative_prompt)
        if row.variations > 1:  # the job's seed made them all; which one this is
            extra = " · ".join(p for p in (extra, f"variation {image.job_slot + 1} of {row.variations}") if p)
        if extra:
            self.details.set_text(f"{self.details.text} · {extra}")

    def _compare(self) -> None:
        image = self.image
        if image is not None and image.parent_id is not None and image.parent_id in self.services.store:
            self.compare.open(image, self.services.store.get(image.parent_id))

    async def _run_again(self) -> None:
        """The job that made this image, queued again with its settings and a new seed; the
        journal (read off the event loop) has them. Closes the dialog once it is queued."""
        image = self.image
        if image is None or image.job_id is None:
            return
        row = await asyncio.to_thread(journal_history.get, self.services.store.db, image.job_id)
        if row is None:
            ui.notify("The job that made this image is no longer in the history.", type="warning")
            return
        store, studio = self.services.store, self.services.studio
        by = signin.current_name(self.services)
        seed = secrets.randbelow(2**31 - 1) + 1  # a new seed: another result, even from the local engine
        # The job's other Advanced settings, as it ran with them.
        advanced = Advanced(
            negative_prompt=row.negative_prompt, steps=row.steps, guidance=row.guidance, strength=row.strength
        )
        try:
            if row.kind is JobKind.EDIT:
                if row.source_image_id is None or row.source_image_id not in store:
                    ui.notify(
                        "The original of this edit was deleted, so it cannot run again.", type="warning"
                    )
                    return
                studio.submit_edit(
                    row.source_image_id,
                    row.prompt,
                    row.quality,
                    row.provider,
                    started_by=by,
                    variant=row.variant,
                    mask=row.mask,
                    seed=seed,
                    advanced=advanced,
                )
            else:
                studio.submit_generate(
                    row.prompt,
                    row.quality,
                    row.provider,
                    row.size,
                    started_by=by,
                    variant=row.variant,
                    seed=seed,
                    advanced=advanced,
                )
        except ImgEditError as exc:
            ui.notify(str(exc), type="warning")
            return
        ui.notify("Queued. It runs in the background; the gallery shows its progress.", type="positive")
        self.dialog.close()

    async def _download(self) -> None:
        image = self.image
        if image is None:
            return
        window = app.native.main_window
        if window is None:  # a browser tab: the browser saves it
            ui.download.from_url(urls.DOWNLOAD_PATH.format(image.id))
            return
        # The native window (pywebview cannot download): its save dialog, then the server, on the
        # same computer, copies the file there.
        _, name = download_names(image_title(image, self.services), image.extension, image.id)
        answer = await window.create_file_dialog(
            native.SAVE_DIALOG, directory=str(native.downloads_folder()), save_filename=name
        )
        target = native.chosen_path(answer)
        if target is None:
            return
        try:
            await native.save_copy(self.services.store.path_of(image), target)
        except OSError as exc:
            ui.notify(f"Could not save {target.name}: {exc.strerror or exc}", type="negative")
            return
        ui.notify(f"Saved {target.name} to {target.parent}", type="positive")

    def _confirm_delete(self) -> None:
        if self.image is not None:
            self.confirm_text.set_text(f"Delete “{image_title(self.image, self.services)}”?")
            self.confirm.open()

    async def _delete(self) -> None:
        self.confirm.close()
        self._handing_over = True
        self.dialog.close()
        if self.image is not None:
            await self._on_delete(self.image)


def _live_region() -> ui.label:
    """Unseen, read politely: the title of the image an arrow moved to (focus stays on the arrow)."""
    region = ui.label().classes("imgedit-sr-only")
    region.props.update(role="status")
    region.props["aria-live"] = "polite"
    region.props["aria-atomic"] = "true"
    return region


def lineage_text(image: ImageRecord, services: Services) -> str:
    if image.prompt is None or image.origin.value not in {"edit", "generate"}:
        return ""
    if image.parent_id is None:
        return f"From “{image.prompt}”"
    parent = (
        image_title(services.store.get(image.parent_id), services)
        if image.parent_id in services.store
        else "a deleted image"
    )
    return f"Edit of {_quote(parent)}: “{image.prompt}”"


def delete_confirmation(
    *, hint: str, keep: str, on_delete: Callable[[], Awaitable[None]], marker: str
) -> tuple[ui.dialog, ui.label]:
    """A dialog that asks before deleting: its question (the returned label, set before opening;
    it names the dialog), what deleting does, Keep and Delete (marked ``marker``)."""
    with ui.dialog() as dialog, ui.card().classes("imgedit-dialog q-pa-lg gap-3"):
        question = ui.label().classes("text-body1")
        name_dialog(dialog, question)
        ui.label(hint).classes("imgedit-hint")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(keep, on_click=dialog.close).props("flat no-caps color=ie-quiet")
            ui.button("Delete", on_click=on_delete).props("unelevated no-caps color=red-9").mark(marker)
    return dialog, question


def name_dialog(dialog: ui.dialog, title: ui.element) -> None:
    """A dialog is named by its visible title (NiceGUI renders element ``n`` as id ``c<n>``)."""
    dialog.props["aria-labelledby"] = f"c{title.id}"


def image_title(image: ImageRecord, services: Services) -> str:
    """The title an image is shown under (``format.image_title`` with this store)."""
    store = services.store
    return fmt.image_title(image, lambda i: store.get(i) if i in store else None)


def _quote(title: str) -> str:
    return title if title == "a deleted image" else f"“{title}”"
