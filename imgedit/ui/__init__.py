"""The NiceGUI layer: pages, components and routes. The only package that imports nicegui.

It lists providers through ``services.providers`` and never imports a concrete provider.
"""

from __future__ import annotations

from pathlib import Path

from nicegui import app, ui

from imgedit.services import Services
from imgedit.ui.gallery import GalleryPage
from imgedit.ui.routes import register_routes

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

services: Services | None = None
"""The running app's services, for tests that need to reach behind the page."""


def register(app_services: Services) -> None:
    """Register routes, static files and pages for these services."""
    global services
    services = app_services
    register_routes(app_services)
    app.add_static_files("/static", STATIC_DIR)
    ui.add_head_html(
        '<link rel="stylesheet" href="/static/imgedit.css">'
        '<script src="/static/imgedit.js" defer></script>'
        '<meta name="color-scheme" content="dark">',
        shared=True,
    )

    @ui.page("/", title="imgedit")
    def gallery() -> None:
        ui.dark_mode(True)
        GalleryPage(app_services).build()
