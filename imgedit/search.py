"""What the gallery shows: a search text and filters, matched against image records in memory.

A filter is a plain value; ``matches`` is a few comparisons and one substring test per word,
so a filter over 10,000 images costs milliseconds. Must not import nicegui.

Usage::

    f = ImageFilter(text="red cat", origins=frozenset({ImageOrigin.EDIT}), favourites=True)
    shown = [r for r in store.list() if f.matches(r)]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from imgedit.models import ImageOrigin, ImageRecord

DAY = 24 * 3600.0


class Period(StrEnum):
    """How far back the gallery looks."""

    ANY = "any"
    TODAY = "today"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


PERIOD_LABELS = {
    Period.ANY: "Any time",
    Period.TODAY: "Today",
    Period.WEEK: "Past 7 days",
    Period.MONTH: "Past 30 days",
    Period.YEAR: "Past year",
}


def period_start(period: Period, now: float) -> float | None:
    """The earliest ``created_at`` a period keeps (local midnight for Today); None: no bound."""
    if period is Period.ANY:
        return None
    if period is Period.TODAY:
        local = time.localtime(now)
        return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
    days = {Period.WEEK: 7, Period.MONTH: 30, Period.YEAR: 365}[period]
    return now - days * DAY


def haystack(record: ImageRecord) -> str:
    """The text a search looks in: the name and the prompt, case-folded."""
    return f"{record.name}\n{record.prompt or ''}".casefold()


@dataclass(frozen=True, kw_only=True)
class ImageFilter:
    """The gallery's search and filters; the default shows everything."""

    text: str = ""
    """Words that must all appear in the name or prompt (any case, any order)."""
    origins: frozenset[ImageOrigin] = frozenset()
    """Empty: every origin."""
    provider: str | None = None
    """The provider name that made the image (``local``, ``openai``, ``sdwebui``); None: any."""
    since: float | None = None
    """Only images made at or after this wall-clock time; None: any time."""
    favourites: bool = False
    words: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.text.casefold().split()))

    @property
    def active(self) -> bool:
        """True when something is filtered out (the gallery then says how many match)."""
        return bool(self.words or self.origins or self.provider or self.since is not None or self.favourites)

    def matches(self, record: ImageRecord, text: str | None = None) -> bool:
        """``text``: the record's ``haystack``, when the caller keeps it (saves case-folding)."""
        if self.favourites and not record.favourite:
            return False
        if self.origins and record.origin not in self.origins:
            return False
        if self.provider is not None and record.provider != self.provider:
            return False
        if self.since is not None and record.created_at < self.since:
            return False
        if self.words:
            text = haystack(record) if text is None else text
            return all(word in text for word in self.words)
        return True


EVERYTHING = ImageFilter()
