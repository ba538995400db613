"""The page theme: the head every page shares, the colour scheme a page starts in, and the
header switch (Auto / Light / Dark) that changes and remembers it.

The choice lives in a cookie (``imgedit_theme``), so the server renders each page in it and a
tiny inline script in the head applies it to ``<html>`` before the first paint (no flash); with
no choice the page follows the system (``prefers-color-scheme``). Colours come from CSS custom
properties keyed on ``html[data-theme]`` (``static/imgedit.css``); Quasar's own dark mode is
driven by ``ui.dark_mode`` (``None``: auto), and ``static/imgedit.js`` keeps the two in step.

Usage: ``ui.add_head_html(theme.head_html(root_path), shared=True)`` once; ``theme.apply()`` in each page;
``theme.switch()`` in a page's header.
"""

from __future__ import annotations

import json
from typing import Literal, cast

from nicegui import app, ui

Choice = Literal["auto", "light", "dark"]
CHOICES: tuple[Choice, ...] = ("auto", "light", "dark")
COOKIE = "imgedit_theme"
_QUASAR: dict[Choice, bool | None] = {"auto": None, "light": False, "dark": True}
_NAMES: dict[Choice, str] = {"auto": "Auto (follows the system)", "light": "Light", "dark": "Dark"}
_ICONS: dict[Choice, str] = {"auto": "brightness_auto", "light": "light_mode", "dark": "dark_mode"}
_STATE = "imgedit.theme"

# Runs while the head is parsed, before <body> exists: the first paint is already in the right
# scheme. It reads only the cookie and the system preference; nothing from a user is written.
_EARLY_SCRIPT = (
    "<script>(function(){"
    "var m=document.cookie.match(/(?:^|; )imgedit_theme=(auto|light|dark)(?:;|$)/),c=m?m[1]:'auto',"
    "d=c==='dark'||(c==='auto'&&!(window.matchMedia&&matchMedia('(prefers-color-scheme: light)').matches)),"
    "r=document.documentElement,x=document.getElementById('nicegui-color-scheme');"
    "r.dataset.theme=d?'dark':'light';r.dataset.themeChoice=c;"
    "if(x)x.setAttribute('content',c==='auto'?'light dark':(d?'dark':'light'));"
    "})();</script>"
)



def head_html(prefix: str = "") -> str:
    """The head every page shares; ``prefix`` is the server's ``--root-path``.

    NiceGUI writes its own ``<meta name="color-scheme">`` first; the early script sets it to
    ``light dark`` (auto) or the chosen scheme, so there is one, and it tells the truth."""
    return (
        f'{_EARLY_SCRIPT}<link rel="stylesheet" href="{prefix}/static/imgedit.css">'
        f'<script src="{prefix}/static/imgedit.js" defer></script>'
        f'<script src="{prefix}/static/notify.js" defer></script>'
        f'<script src="{prefix}/static/viewer.js" defer></script>'
        f'<script src="{prefix}/static/gallery.js" defer></script>'
        f'<script src="{prefix}/static/compare.js" defer></script>'
        f'<script src="{prefix}/static/mask.js" defer></script>'
    )




def parse_choice(raw: object) -> Choice:
    return cast(Choice, raw) if raw in CHOICES else "auto"


def next_choice(choice: Choice) -> Choice:
    return CHOICES[(CHOICES.index(choice) + 1) % len(CHOICES)]


def describe(choice: Choice) -> str:
    """The switch's accessible name: what it is now and what a press does."""
    return f"Colour theme: {_NAMES[choice]}. Switch to {_NAMES[next_choice(choice)].split(' (')[0]}"


def apply() -> None:
    """Start this page in the remembered scheme, or the system's (call at the top of every page)."""
    request = getattr(ui.context.client, "request", None)
    choice = parse_choice(request.cookies.get(COOKIE) if request is not None else None)
    dark = ui.dark_mode(_QUASAR[choice])
    app.storage.client[_STATE] = {"choice": choice, "dark": dark}


def switch() -> ui.button:
    """The header button that cycles Auto → Light → Dark and remembers the choice."""
    state = app.storage.client.get(_STATE)
    if state is None:  # a page that did not call apply(): it gets one now
        apply()
        state = app.storage.client[_STATE]
    button = ui.button(on_click=lambda: _cycle(button)).props("flat round dense color=ie-quiet")
    button.classes("imgedit-theme-switch").mark("theme-switch")
    _show(button, state["choice"])
    return button


def _show(button: ui.button, choice: Choice) -> None:
    button.props["icon"] = _ICONS[choice]
    button.props["aria-label"] = describe(choice)  # a value, never parsed
    button.props["title"] = describe(choice)


def _cycle(button: ui.button) -> None:
    state = app.storage.client[_STATE]
    choice = next_choice(state["choice"])
    state["choice"] = choice
    state["dark"].set_value(_QUASAR[choice])
    _show(button, choice)
    ui.run_javascript(f"window.imgeditTheme && imgeditTheme.remember({json.dumps(choice)})")
