"""The NiceGUI layer: pages, components and routes. The only package that imports nicegui.

It lists providers through ``services.providers`` and never imports a concrete provider.
"""

from __future__ import annotations

from pathlib import Path

from nicegui import app, helpers, ui

from imgedit.services import Services
from imgedit.ui import archive, signin, speedups, theme, urls
from imgedit.ui.gallery import GalleryPage
from imgedit.ui.history import HistoryView
from imgedit.ui.hosts import HostCheck, HostPolicy
from imgedit.ui.routes import register_routes

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

services: Services | None = None
"""The running app's services, for tests that need to reach behind the page."""


def register(app_services: Services) -> None:
    """Register routes, static files and pages for these services."""
    global services
    services = app_services
    speedups.install()  # every page builds hundreds of elements: NiceGUI's per-element checks, cached
    settings = app_services.settings
    # NiceGUI's user fixture talks to the app in process as http://test; no network is involved.
    simulated = ("test",) if helpers.is_user_simulation() else ()
    policy = HostPolicy.for_server(host=settings.host, allowed_hosts=(*settings.allowed_hosts, *simulated))
    register_routes(app_services)
    archive.register_route(app_services)  # /media/zip/<token>: a selection as one zip
    signin.install(app_services)  # with a password: the gate, /login and /login/done
    app.add_middleware(HostCheck, policy=policy)  # added last, so it wraps everything added before
    app.add_static_files("/static", STATIC_DIR)
    urls.configure(settings.root_path)
    ui.add_head_html(theme.head_html(urls.prefixed("")), shared=True)

    @ui.page("/", title="imgedit")
    def gallery() -> None:
        theme.apply()
        GalleryPage(app_services).build()

    @ui.page("/history", title="History · imgedit")
    async def history() -> None:
        theme.apply()
        await HistoryView(app_services).build()
