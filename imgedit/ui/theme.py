"""The page theme: the head every page shares, and the colour scheme a page starts in.

Usage: ``ui.add_head_html(theme.HEAD_HTML, shared=True)`` once; ``theme.apply()`` in each page.
"""

from __future__ import annotations

from nicegui import ui

HEAD_HTML = (
    '<link rel="stylesheet" href="/static/imgedit.css">'
    '<script src="/static/imgedit.js" defer></script>'
    '<script src="/static/notify.js" defer></script>'
    '<meta name="color-scheme" content="dark">'
)


def apply() -> None:
    """Set this page's colour scheme (call at the top of every page function)."""
    ui.dark_mode(True)
