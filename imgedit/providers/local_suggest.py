"""The local engine's phrases as ready-to-use prompt pieces, for the dialog's suggestion chips.

Owns ``suggestions(kind)``: the edit phrases come from ``local_parse.understood_phrases()`` (the
help text's "blur [radius]" becomes "blur", "more / less contrast" becomes "more contrast" and
"less contrast"), each kept only if the engine's own parser takes it; the drawing words come
from ``local_draw`` (palettes, then shapes). Pure, cached. Must not import nicegui.
"""

from __future__ import annotations

import functools
import re

from imgedit.errors import InvalidRequest
from imgedit.models import JobKind

_ASIDE = re.compile(r"\s*[\[(][^\])]*[\])]")
"""``[radius]`` and ``(grayscale, monochrome)``: hints about a phrase, not part of it."""


def suggestions(kind: JobKind) -> list[str]:
    """Phrases a user can add to a prompt as they are, in the engine's own order."""
    return list(_edit_phrases() if kind is JobKind.EDIT else _drawing_words())


def spelled_out(phrase: str) -> list[str]:
    """The prompt pieces one help phrase stands for: ``brighter / darker [percent]`` →
    ``brighter``, ``darker``; ``more / less contrast`` → ``more contrast``, ``less contrast``."""
    core = _ASIDE.sub("", phrase).strip()
    options = [option.strip() for option in core.split("/") if option.strip()]
    last = options[-1].split() if options else []
    if len(options) > 1 and len(last) > 1 and all(len(o.split()) == 1 for o in options[:-1]):
        rest = " ".join(last[1:])  # "more / less contrast": the words after the last choice are shared
        options = [f"{option} {rest}" for option in options[:-1]] + [options[-1]]
    return options


@functools.cache
def _edit_phrases() -> tuple[str, ...]:
    from imgedit.providers.local_parse import parse_prompt, understood_phrases

    found: list[str] = []
    for phrase in understood_phrases():
        for option in spelled_out(phrase):
            try:
                parse_prompt(option)
            except InvalidRequest:
                continue  # needs a number or a direction to mean anything ("rotate")
            if option not in found:
                found.append(option)
    return tuple(found)


@functools.cache
def _drawing_words() -> tuple[str, ...]:
    from imgedit.providers import local_draw

    shapes = [f"{shape}s" for shape in local_draw._OBJECTS] + list(local_draw._SCENERY)
    return (*local_draw.PALETTES, *shapes)
