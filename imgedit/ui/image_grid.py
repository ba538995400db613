"""The gallery's image cards: search and filters, pages as the user scrolls, stars, selection.

A tab shows the newest ``limit`` images that match its filter, newest first; each card holds
its place until its image goes. The store's change log (``ImageStore.changes_since``) says what
changed since the tab last looked, so a sync costs what changed, never the whole gallery: a new
image goes in at its place, a deleted one's place is filled from the next older match, a star
updates one card. A filter change, or a tab further behind than the log, rebuilds one page.

Selection: a checkbox on each card (shown on hover and focus, always once something is
selected); shift-click selects a range; the selection bar edits (one prompt for all:
``imgedit.ui.batch``), deletes or downloads them all.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import events, ui

from imgedit.errors import ImgEditError
from imgedit.models import ImageId, ImageOrigin, ImageRecord, JobId
from imgedit.search import PERIOD_LABELS, ImageFilter, Period, period_start
from imgedit.services import Services
from imgedit.storage import Change, order_key
from imgedit.ui import format as fmt
from imgedit.ui import urls
from imgedit.ui.batch import BatchDialog, images_noun
from imgedit.ui.dialogs import delete_confirmation

log = logging.getLogger(__name__)

PAGE_SIZE = 36
"""Image cards a tab shows at first, and adds per page. A full-HD screen shows about 21 cards;
the next page comes as the user scrolls near the end (static/gallery.js), or at once on a screen
that shows more. The first paint stays small whatever the size of the gallery."""
FIRST_SCREEN = 12
"""Cards whose thumbnails load at once rather than lazily: about what a laptop screen shows."""

SEARCH_MAX = 200
ORIGIN_CHOICES: dict[str, str] = {
    "all": "All images",
    ImageOrigin.UPLOAD.value: "Uploads",
    ImageOrigin.EDIT.value: "Edits",
    ImageOrigin.GENERATE.value: "Generated",
    ImageOrigin.SAMPLE.value: "Samples",
}
ANY_PROVIDER = "any"

# Space or Enter on a control drawn from a div; Shift travels along for ranges.
_KEY_HANDLER = (
    "(e) => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); e.stopPropagation(); "
    "emit({shift: e.shiftKey}); } }"
)
_CLICK_HANDLER = "(e) => { e.stopPropagation(); emit({shift: e.shiftKey}); }"


@dataclass
class _Card:
    wrap: ui.element
    card: ui.element
    select: ui.element
    star: ui.element
    record: ImageRecord
    meta: ui.label


def _shift(event: events.GenericEventArguments | None) -> bool:
    args = event.args if event is not None else None
    return bool(isinstance(args, dict) and args.get("shift"))


class ImageGrid:
    """One tab's image cards and the controls that choose them."""

    def __init__(
        self,
        services: Services,
        *,
        open_image: Callable[[ImageRecord], None],
        title: Callable[[ImageRecord], str],
        lineage: Callable[[ImageRecord], str],
        say: Callable[[str], None],
        changed: Callable[[], None],
        download: Callable[[list[ImageId]], Awaitable[None]] | None = None,
        batch_submitted: Callable[[], None] | None = None,
    ) -> None:
        self.services = services
        self.store = services.store
        self._open_image, self._title, self._lineage = open_image, title, lineage
        self._say, self._changed, self._download = say, changed, download
        self._batch_submitted = batch_submitted
        self.cards: dict[ImageId, _Card] = {}
        self._keys: list[tuple[float, str]] = []
        """``order_key`` of each shown card, in the order shown (newest first)."""
        self.filter = ImageFilter()
        self.period = Period.ANY
        self.limit = PAGE_SIZE
        self.matching = 0
        """How many images match the filter (all of them, not just those shown)."""
        self.selected: dict[ImageId, None] = {}
        self._anchor: ImageId | None = None
        self._version = -1
        self._broken: set[str] = set()
        self._failed: dict[ImageId, None] = {}
        """Images whose card could not be built; tried again at each sync."""
        self._resetting = False

    # -- building ------------------------------------------------------------------------------

    def build_tools(self) -> None:
        """Search, filters and the count, above the grid."""
        with ui.row().classes("imgedit-tools").mark("gallery-tools") as self.tools:
            self.tools.props["role"] = "search"
            self.search = (
                ui.input(placeholder="Search prompts and names")
                .props("dense outlined clearable debounce=250 type=search")
                .classes("imgedit-search")
                .mark("search")
            )
            self.search.props["maxlength"] = SEARCH_MAX
            self.search.props["aria-label"] = "Search prompts and names"
            self.search.on_value_change(self._refilter)
            with self.search.add_slot("prepend"):
                ui.icon("search").props["aria-hidden"] = "true"
            self.origin = self._select(ORIGIN_CHOICES, "all", "Show", "filter-origin")
            self.provider = self._select(self._provider_choices(), ANY_PROVIDER, "Made by", "filter-provider")
            periods = {p.value: label for p, label in PERIOD_LABELS.items()}
            self.when = self._select(periods, Period.ANY.value, "Made", "filter-period")
            self.favourites = ui.button(icon="star_border", on_click=self._toggle_favourites_filter)
            self.favourites.props.update({"flat": True, "round": True, "color": "ie-quiet"})
            self.favourites.props["aria-label"] = "Favourites only"
            self.favourites.props["aria-pressed"] = "false"
            self.favourites.classes("imgedit-fav-filter").mark("filter-favourites")
            with self.favourites:
                ui.tooltip("Favourites only")
            self.count = ui.label().classes("imgedit-count").mark("gallery-count")
            self.clear_filters = ui.button("Clear filters", on_click=self.reset_filters)
            self.clear_filters.props.update({"flat": True, "no-caps": True, "color": "ie-quiet"})
            self.clear_filters.mark("clear-filters")

    def _select(self, options: dict[str, str], value: str, label: str, marker: str) -> ui.select:
        select = ui.select(options, value=value, on_change=self._refilter, label=label)
        select.props.update({"dense": True, "outlined": True, "options-dense": True})
        select.classes("imgedit-filter").mark(marker)
        return select

    def _provider_choices(self) -> dict[str, str]:
        labels = {p.name: p.label for p in self.services.providers.all()}
        names = sorted(set(labels) | set(self.store.providers()))
        return {ANY_PROVIDER: "Any engine", **{n: labels.get(n, n) for n in names}}

    def build_box(self) -> None:
        """The cards' container, inside the gallery grid after the loading cards."""
        self.box = ui.element("div").classes("imgedit-box imgedit-images-box")

    def build_footer(self) -> None:
        """No-match note, Show more, and the selection bar."""
        with ui.column().classes("imgedit-no-match items-center") as self.no_match:
            ui.label("No images match this search.").classes("imgedit-empty")
            ui.button("Clear filters", on_click=self.reset_filters).props(
                "outline no-caps color=ie-quiet"
            ).mark("no-match-clear")
        self.no_match.mark("no-match")
        self.more = ui.button("Show more", on_click=self.show_more).classes("imgedit-more")
        self.more.props.update({"outline": True, "no-caps": True, "color": "ie-quiet"})
        self.more.mark("show-more")
        with ui.row().classes("imgedit-selection-bar items-center") as self.bar:
            self.bar.props["role"] = "toolbar"
            self.bar.props["aria-label"] = "Selected images"
            self.bar_count = ui.label().classes("imgedit-selection-count").mark("selection-count")
            ui.space()
            self.select_all = ui.button("Select all shown", icon="select_all", on_click=self.select_all_shown)
            self.select_all.props.update({"flat": True, "no-caps": True, "color": "white"})
            self.select_all.mark("select-all")
            self.edit_button = ui.button("Edit", icon="auto_fix_high", on_click=self._edit_selected)
            self.edit_button.props.update({"flat": True, "no-caps": True, "color": "white"})
            self.edit_button.mark("edit-selected")
            self.download_button = ui.button("Download", icon="download", on_click=self._download_selected)
            self.download_button.props.update({"flat": True, "no-caps": True, "color": "white"})
            self.download_button.mark("download-selected")
            self.delete_button = ui.button("Delete", icon="delete", on_click=self._confirm_delete)
            self.delete_button.props.update({"unelevated": True, "no-caps": True, "color": "red-9"})
            self.delete_button.mark("delete-selected")
            clear = ui.button(icon="close", on_click=self.clear_selection)
            clear.props.update({"flat": True, "round": True, "color": "white"})
            clear.props["aria-label"] = "Clear the selection"
            clear.mark("clear-selection")
            with clear:
                ui.tooltip("Clear the selection (Esc)")
        self.bar.mark("selection-bar")
        self.bar.set_visibility(False)
        self.confirm, self.confirm_text = delete_confirmation(
            hint="The files are removed from the data folder. Images made from them stay.",
            keep="Keep them",
            on_delete=self._delete_selected,
            marker="confirm-delete-selected",
        )
        self.batch_dialog = BatchDialog(self.services, title=self._title, on_submitted=self._after_batch)

    # -- syncing with the store ------------------------------------------------------------------

    @property
    def behind(self) -> bool:
        """The store changed since the last sync, or a card is waiting to be tried again."""
        return self._version != self.store.version or bool(self._failed)

    def sync(self) -> bool:
        """Apply what changed in the store since the last sync; False if a card failed (it is
        logged once, the others go on, and it is tried again at the next sync)."""
        version = self.store.version
        changes = self.store.changes_since(self._version) if self._version >= 0 else None
        if changes is None:
            ok = self._rebuild()
        else:
            ok = True
            for change in changes:
                ok &= self._apply(change)
            ok &= self._retry()
            ok &= self._fill()
        self._version = version
        self._update_footer()
        return ok

    def _matches(self, record: ImageRecord) -> bool:
        return self.filter.matches(record)

    def _rebuild(self) -> bool:
        self.box.clear()
        self.cards.clear()
        self._keys.clear()
        self.selected.clear()
        self._anchor = None
        self._failed.clear()
        self.matching = self.store.count(self.filter)
        return self._fill()

    def _apply(self, change: Change) -> bool:
        before, after = change.before, change.after
        was = before is not None and self._matches(before)
        now = after is not None and self._matches(after)
        self.matching += int(now) - int(was)
        record = after or before
        assert record is not None
        shown = self.cards.get(record.id)
        if shown is not None:
            if now and after is not None:
                return self._guard(record.id, functools.partial(self._refresh_card, shown, after))
            self._remove(record.id)
            return True
        if not now:
            self._failed.pop(record.id, None)
        elif after is not None and self._keys and order_key(after) < self._keys[-1]:
            # Newer than the oldest card shown: it belongs among them, at its place.
            return self._try_add(after, arriving=before is None)
        return True  # older than every card shown: a later page (or ``_fill``) brings it

    def _fill(self) -> bool:
        """Top the shown cards up to ``limit`` from the next older matches."""
        need = self.limit - len(self.cards)
        if need <= 0:
            return True
        last = self.cards[ImageId(self._keys[-1][1])].record if self._keys else None
        ok = True
        for record in self.store.page(self.filter, after=last, limit=need):
            ok &= self._try_add(record, arriving=False)
        return ok

    def _retry(self) -> bool:
        """Cards that could not be built before, if their image still belongs here."""
        ok = True
        for image_id in list(self._failed):
            record = self.store.get(image_id) if image_id in self.store else None
            if record is None or not self._matches(record):
                del self._failed[image_id]
            elif image_id not in self.cards:
                ok &= self._try_add(record, arriving=False)
        return ok

    def _try_add(self, record: ImageRecord, *, arriving: bool) -> bool:
        """Add a card at its place; one that fails is logged once and kept for ``_retry``."""
        index = bisect.bisect_left(self._keys, order_key(record))
        if self._guard(record.id, functools.partial(self._add, record, index, arriving)):
            self._failed.pop(record.id, None)
            return True
        self._failed[record.id] = None
        return False

    def _guard(self, key: str, action: Callable[[], object]) -> bool:
        try:
            action()
        except Exception:
            if key not in self._broken:
                self._broken.add(key)
                log.exception("the image card %s could not be shown; the rest of the gallery goes on", key)
            return False
        self._broken.discard(key)
        return True

    def _update_footer(self) -> None:
        total = len(self.store)
        hidden = max(0, self.matching - len(self.cards))
        self.more.set_visibility(hidden > 0)
        self.more.set_text(f"Show more ({hidden:,} older)")
        filtered = self.filter.active
        if filtered:
            self.count.set_text(f"{self.matching:,} of {total:,} images match")
        else:
            self.count.set_text(f"{total:,} image{'s' if total != 1 else ''}")
        self.clear_filters.set_visibility(filtered)
        self.no_match.set_visibility(filtered and self.matching == 0)
        self._changed()

    # -- cards -----------------------------------------------------------------------------------

    def _add(self, record: ImageRecord, index: int, arriving: bool) -> None:
        with self.box:
            wrap = ui.element("div").classes("imgedit-card-wrap")
        try:
            with wrap:
                card = self._build_card(wrap, record, arriving, eager=index < FIRST_SCREEN)
        except Exception:
            self.box.remove(wrap)  # no half-built card stays behind
            raise
        if index < len(self._keys):
            wrap.move(self.box, target_index=index)
        self._keys.insert(index, order_key(record))
        self.cards[record.id] = card
        if record.job_slot and record.job_id is not None:
            # A later variation landed: its first, shown before it knew, is numbered too.
            first = self.store.made_by(record.job_id, 0)
            shown = self.cards.get(first.id) if first is not None else None
            if shown is not None and not shown.meta.text.startswith("Variation"):
                shown.meta.set_text(self._meta_text(shown.record, "Variation 1 · "))

    def _build_card(self, wrap: ui.element, record: ImageRecord, arriving: bool, *, eager: bool) -> _Card:
        """A card in as few elements and prop changes as it takes: a page of them is what the
        first paint of a 10,000-image gallery costs. Icons of the two corner controls are
        drawn by CSS from their state (static/imgedit.css)."""
        image_id = record.id
        wrap.mark(f"card-{image_id}")
        title = self._title(record)
        card = ui.element("div").classes(
            "imgedit-card imgedit-image-card imgedit-new" if arriving else "imgedit-card imgedit-image-card"
        )
        card.mark("image-card", f"image-{image_id}")
        # Reachable and operable by keyboard: Tab to it, Enter or Space opens its actions (or, while
        # something is selected, selects it); arrow keys move between cards (static/imgedit.js).
        # User text goes in as values, never through a props string (which is parsed).
        card.props.update(
            {
                "tabindex": "0",
                "role": "button",
                "aria-label": f"{title}: open Edit, View, Download and Delete",
            }
        )
        on_card = functools.partial(self._on_card, image_id)
        card.on("click", on_card, js_handler="(e) => emit({shift: e.shiftKey})")
        card.on("keydown", on_card, js_handler=_KEY_HANDLER)
        with card:  # flat: the thumbnail keeps its 4:3 box itself, the texts pad themselves
            ui.element("img").classes("imgedit-thumb imgedit-card-thumb").props.update(
                # The first screen's thumbnails load at once (a lazy image waits for layout); the
                # browser records when they drew (elementtiming: bench/scale.py, P4).
                {
                    "src": urls.thumb(image_id),
                    "alt": title,
                    "loading": "eager" if eager else "lazy",
                    "elementtiming": "card",
                }
            )
            ui.label(title).classes("imgedit-title imgedit-card-line").props["title"] = title
            lineage = self._lineage(record)
            if lineage:
                ui.label(lineage).classes("imgedit-lineage imgedit-card-line")
            # One of a job's variations: numbered, next to its siblings in the order.
            variation = (
                f"Variation {record.job_slot + 1} · "
                if record.job_slot or (record.job_id is not None and len(self.store.siblings(record)) > 1)
                else ""
            )
            meta = ui.label(self._meta_text(record, variation)).classes(
                "imgedit-meta imgedit-card-line imgedit-card-last"
            )
        select = ui.element("div").classes("imgedit-select")
        select.mark("select", f"select-{image_id}")
        select.props.update(
            {"role": "checkbox", "tabindex": "0", "aria-label": f"Select {title}", "aria-checked": "false"}
        )
        on_select = functools.partial(self._on_select, image_id)
        select.on("click", on_select, js_handler=_CLICK_HANDLER)
        select.on("keydown", on_select, js_handler=_KEY_HANDLER)
        on = record.favourite
        star = ui.element("div").classes("imgedit-star imgedit-starred" if on else "imgedit-star")
        star.mark("star", f"star-{image_id}")
        star.props.update(
            {
                "role": "button",
                "tabindex": "0",
                "aria-label": f"Favourite: {title}",
                "aria-pressed": "true" if on else "false",
            }
        )
        on_star = functools.partial(self._on_star, image_id)
        star.on("click", on_star, js_handler=_CLICK_HANDLER)
        star.on("keydown", on_star, js_handler=_KEY_HANDLER)
        return _Card(wrap, card, select, star, record, meta)

    @staticmethod
    def _meta_text(record: ImageRecord, variation: str) -> str:
        return f"{variation}{fmt.ORIGIN_LABELS[record.origin]} · {record.width}×{record.height}"

    def _refresh_card(self, shown: _Card, record: ImageRecord) -> None:
        shown.record = record
        self._draw_star(shown)

    def _draw_star(self, shown: _Card) -> None:
        on = shown.record.favourite
        shown.star.props["aria-pressed"] = "true" if on else "false"
        shown.star.classes(add="imgedit-starred" if on else "", remove="" if on else "imgedit-starred")

    def _remove(self, image_id: ImageId) -> None:
        shown = self.cards.pop(image_id)
        index = bisect.bisect_left(self._keys, order_key(shown.record))
        if index < len(self._keys) and self._keys[index][1] == image_id:
            del self._keys[index]
        self.box.remove(shown.wrap)
        if image_id in self.selected:
            del self.selected[image_id]
            self._draw_selection()
        if self._anchor == image_id:
            self._anchor = None

    def show_more(self) -> None:
        self.limit = len(self.cards) + PAGE_SIZE
        self._fill()
        self._update_footer()

    def order(self) -> list[ImageRecord]:
        """The shown images, in the order shown."""
        return [self.cards[ImageId(key[1])].record for key in self._keys]

    def step(self, record: ImageRecord, delta: int) -> ImageRecord | None:
        """The image ``delta`` places after ``record`` among this tab's matches (+1: older, -1:
        newer); going past the last card shown brings the next page. None past either end."""
        index = bisect.bisect_left(self._keys, order_key(record))
        if index >= len(self._keys) or self._keys[index][1] != record.id:
            return None
        target = index + delta
        if target >= len(self._keys) and self.matching > len(self.cards):
            self.show_more()
        if 0 <= target < len(self._keys):
            return self.cards[ImageId(self._keys[target][1])].record
        return None

    def position(self, record: ImageRecord) -> tuple[int, int] | None:
        """Where ``record`` is among this tab's matches: (place from 1, how many match)."""
        index = bisect.bisect_left(self._keys, order_key(record))
        if index >= len(self._keys) or self._keys[index][1] != record.id:
            return None
        return index + 1, self.matching

    # -- card actions ---------------------------------------------------------------------------

    def _on_card(self, image_id: ImageId, event: events.GenericEventArguments) -> None:
        if self.selected:
            self._toggle(image_id, _shift(event))
            return
        shown = self.cards.get(image_id)
        if shown is not None:
            self._open_image(shown.record)

    def _on_select(self, image_id: ImageId, event: events.GenericEventArguments) -> None:
        self._toggle(image_id, _shift(event))

    async def _on_star(self, image_id: ImageId, event: events.GenericEventArguments) -> None:
        shown = self.cards.get(image_id)
        if shown is None:
            return
        on = not shown.record.favourite
        try:
            await self.store.set_favourite(image_id, on)
        except ImgEditError as exc:
            ui.notify(str(exc), type="warning")
        title = self._title(shown.record)
        self._say(f"{'Added to' if on else 'Removed from'} favourites: {title}.")
        self._changed_now()

    def _changed_now(self) -> None:
        self.sync()

    # -- selection -------------------------------------------------------------------------------

    def _toggle(self, image_id: ImageId, shift: bool) -> None:
        if image_id not in self.cards:
            return
        ids = [ImageId(key[1]) for key in self._keys]
        if shift and self._anchor in self.cards:
            a, b = ids.index(self._anchor), ids.index(image_id)  # type: ignore[arg-type]
            for other in ids[min(a, b) : max(a, b) + 1]:
                self.selected[other] = None
        elif image_id in self.selected:
            del self.selected[image_id]
        else:
            self.selected[image_id] = None
        self._anchor = image_id
        self._draw_selection()
        count = len(self.selected)
        self._say(f"{count} selected." if count else "Selection cleared.")

    def select_all_shown(self) -> None:
        for image_id in self.cards:
            self.selected[image_id] = None
        self._draw_selection()
        self._say(f"{len(self.selected)} selected.")

    def clear_selection(self) -> None:
        self.selected.clear()
        self._anchor = None
        self._draw_selection()
        self._say("Selection cleared.")

    def _draw_selection(self) -> None:
        for image_id, shown in self.cards.items():
            on = image_id in self.selected
            if (shown.select.props.get("aria-checked") == "true") != on:
                shown.select.props["aria-checked"] = "true" if on else "false"
                shown.wrap.classes(
                    add="imgedit-selected" if on else "", remove="" if on else "imgedit-selected"
                )
        count = len(self.selected)
        self.box.classes(
            add="imgedit-selecting" if count else "", remove="" if count else "imgedit-selecting"
        )
        self.bar.set_visibility(bool(count))
        noun = f"{count} image{'s' if count != 1 else ''}"
        self.bar_count.set_text(f"{count} selected")
        self.edit_button.set_text(f"Edit {images_noun(count)}")
        self.edit_button.props["aria-label"] = f"Edit {images_noun(count)} with one prompt"
        self.download_button.set_text(f"Download {count}")
        self.download_button.props["aria-label"] = f"Download {noun} as a zip"
        self.delete_button.set_text(f"Delete {count}")
        self.delete_button.props["aria-label"] = f"Delete {noun}"

    def _confirm_delete(self) -> None:
        count = len(self.selected)
        if not count:
            return
        self.confirm_text.set_text(f"Delete {count} image{'s' if count != 1 else ''}?")
        self.confirm.open()

    async def _delete_selected(self) -> None:
        self.confirm.close()
        ids = list(self.selected)
        deleted, problem = await self.store.delete_many(ids)
        for record in deleted:
            self.selected.pop(record.id, None)
        if deleted:
            ui.notify(f"Deleted {len(deleted)} image{'s' if len(deleted) != 1 else ''}.")
        if problem:
            ui.notify(f"{problem} Nothing else was lost.", type="warning", multi_line=True)
        self._say(f"Deleted {len(deleted)}." + (f" {problem}" if problem else ""))
        self._changed_now()
        self._draw_selection()

    def _edit_selected(self) -> None:
        images = [self.store.get(i) for i in self.selected if i in self.store]
        if images:
            self.batch_dialog.open(images)

    def _after_batch(self, jobs: list[JobId]) -> None:
        self.clear_selection()
        self._say(f"Queued {len(jobs)} edit{'s' if len(jobs) != 1 else ''}.")
        if self._batch_submitted is not None:
            self._batch_submitted()

    async def _download_selected(self) -> None:
        ids = [i for i in self.selected if i in self.store]
        if not ids or self._download is None:
            return
        await self._download(ids)

    # -- filters ---------------------------------------------------------------------------------

    def _refilter(self, _event: object = None) -> None:
        if self._resetting:
            return
        text = str(self.search.value or "")[:SEARCH_MAX]
        origin = str(self.origin.value or "all")
        provider = str(self.provider.value or ANY_PROVIDER)
        self.period = Period(str(self.when.value or Period.ANY.value))
        flt = ImageFilter(
            text=text,
            origins=frozenset() if origin == "all" else frozenset({ImageOrigin(origin)}),
            provider=None if provider == ANY_PROVIDER else provider,
            since=period_start(self.period, time.time()),
            favourites=self.favourites.props.get("aria-pressed") == "true",
        )
        if flt == self.filter:
            return
        self.filter = flt
        self.limit = PAGE_SIZE
        self._version = -1
        self.sync()
        if flt.active:
            self._say(f"{self.matching:,} image{'s' if self.matching != 1 else ''} match.")

    def _toggle_favourites_filter(self) -> None:
        on = self.favourites.props.get("aria-pressed") != "true"
        self._draw_favourites_filter(on)
        self._refilter()

    def _draw_favourites_filter(self, on: bool) -> None:
        self.favourites.props["aria-pressed"] = "true" if on else "false"
        self.favourites.props["icon"] = "star" if on else "star_border"
        self.favourites.classes(add="imgedit-on" if on else "", remove="" if on else "imgedit-on")
        self.favourites.update()

    def reset_filters(self) -> None:
        self._resetting = True
        try:
            self.search.set_value("")
            self.origin.set_value("all")
            self.provider.set_value(ANY_PROVIDER)
            self.when.set_value(Period.ANY.value)
            self._draw_favourites_filter(False)
        finally:
            self._resetting = False
        self._refilter()
