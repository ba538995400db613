"""Signing in to a hosted studio: the gate in front of everything, the login page, signing out.

Only when the studio has a password (``services.auth`` is set). ``SignInGate`` is a pure ASGI
middleware, so it sees every http request and websocket alike. A browser without a signed-in
session gets:

- for a page (GET of a path that is not an asset): a 303 to ``/login?next=<path>``;
- for ``/login``, ``/login/done``, NiceGUI's own code assets (``/_nicegui/<version>/...``),
  ``/static/...`` and the favicon: the answer (nothing there is the studio's data);
- for the socket.io endpoint: only when its ``client_id`` is a login page's client, so the login
  page can talk to the server and nothing else can;
- for anything else (``/media``, uploads, other websockets): 401, never the content.

The login page asks for a name (shown on the jobs one starts) and the password. A right password
earns a one-time ticket; the page then navigates to ``/login/done?ticket=...``, which puts a new
session id into the signed session cookie and redirects to where the person was going.

Usage: ``install(services)`` from ``imgedit.ui.register``; ``account_controls(services)`` in a header.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import Client, __version__, app, context, ui

from imgedit.auth import NAME_MAX, Auth
from imgedit.services import Services
from imgedit.ui import theme
from imgedit.ui.hosts import ASGIApp, Receive, Scope, Send, refuse

log = logging.getLogger(__name__)

LOGIN_PATH = "/login"
DONE_PATH = "/login/done"
STATIC_PREFIXES = (f"/_nicegui/{__version__}/", "/static/")
"""NiceGUI's versioned scripts, styles and fonts, and imgedit's own: the same for everyone."""
_PUBLIC_PATHS = frozenset({LOGIN_PATH, DONE_PATH, "/favicon.ico"})
_SOCKET_PREFIX = "/_nicegui_ws/"


def route_path(scope: Scope) -> str:
    """The request's path below the app's root path (``--root-path`` behind a proxy)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _is_login_client(client_id: str) -> bool:
    client = Client.instances.get(client_id)
    return client is not None and client.page.path == LOGIN_PATH


def safe_next(raw: str | None) -> str:
    """A same-site path to go to after signing in; ``/`` for anything else."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme or parsed.netloc or parsed.path.startswith(LOGIN_PATH):
        return "/"
    return raw


class SignInGate:
    """ASGI middleware: nothing but the login page for a browser that has not signed in."""

    def __init__(self, app: ASGIApp, *, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if scope["type"] == "http" and scope.get("method") == "GET" and _is_page(path):
            query = scope.get("query_string", b"").decode("latin-1")
            wanted = path + (f"?{query}" if query else "")
            location = f"{scope.get('root_path', '')}{LOGIN_PATH}?{urllib.parse.urlencode({'next': wanted})}"
            await refuse(
                scope,
                send,
                b"Sign in first.\n",
                status=303,
                headers=((b"location", location.encode("latin-1", "replace")),),
            )
            return
        await refuse(scope, send, b"Sign in first.\n", status=401)

    def _allowed(self, scope: Scope) -> bool:
        session = scope.get("session")
        if isinstance(session, dict) and self.auth.session(session.get("id")) is not None:
            return True
        path = route_path(scope)
        if path.startswith(_SOCKET_PREFIX):
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            return any(_is_login_client(cid) for cid in query.get("client_id", [])[:1])
        return scope["type"] == "http" and (path in _PUBLIC_PATHS or path.startswith(STATIC_PREFIXES))


def _is_page(path: str) -> bool:
    last = path.rsplit("/", 1)[-1]
    return not path.startswith(("/_nicegui", "/media/")) and "." not in last


def session_id_of(client: Client | None = None) -> str | None:
    """The session id in this page's signed cookie (None outside a page or without one)."""
    client = client or context.client
    request = getattr(client, "request", None)
    if request is None or "session" not in request.scope:
        return None
    value = request.session.get("id")
    return value if isinstance(value, str) else None


def current_name(services: Services) -> str:
    """The signed-in name of whoever is using this page ("" when the studio has no password)."""
    if services.auth is None:
        return ""
    session = services.auth.session(session_id_of())
    return session.name if session is not None else ""


def install(services: Services) -> None:
    """Add the gate, the login page and the ticket route, when the studio has a password."""
    auth = services.auth
    if auth is None:
        return
    app.add_middleware(SignInGate, auth=auth)

    @app.get(DONE_PATH, include_in_schema=False)
    async def login_done(request: Request, ticket: str = "", next: str = "/") -> Any:
        session = await auth.redeem(ticket)
        root = request.scope.get("root_path", "")
        if session is None:
            return RedirectResponse(f"{root}{LOGIN_PATH}?expired=1", status_code=303)
        request.session["id"] = session.id  # a fresh id: the one from before signing in is not trusted
        response = RedirectResponse(f"{root}{safe_next(next)}", status_code=303)
        response.headers["Cache-Control"] = "no-store"
        return response

    @ui.page(LOGIN_PATH, title="Sign in · imgedit")
    def login_page(request: Request, next: str = "/", expired: str = "") -> None:
        theme.apply()
        if auth.session(request.session.get("id")) is not None:
            ui.navigate.to(safe_next(next))
            return
        address = request.client.host if request.client else "unknown"
        LoginForm(auth, address=address, next_path=safe_next(next), expired=bool(expired)).build()


class LoginForm:
    """The login card: name, password, Sign in, and a message that is read out when it changes."""

    def __init__(self, auth: Auth, *, address: str, next_path: str, expired: bool) -> None:
        self.auth = auth
        self.address = address
        self.next_path = next_path
        self.expired = expired

    def build(self) -> None:
        page = ui.column().classes("imgedit-login w-full items-center justify-center min-h-screen p-4")
        with page, ui.card().classes("w-full max-w-sm gap-4 p-6") as card:
            card.props.update(role="form")
            card.props["aria-label"] = "Sign in"
            heading = ui.label("imgedit").classes("text-h5")
            heading.props.update({"role": "heading", "aria-level": "1"})
            ui.label("This studio is shared: sign in with its password.").classes("imgedit-muted")
            self.name = ui.input("Your name").classes("w-full")
            self.name.props.update(autocomplete="username", maxlength=NAME_MAX, autofocus=True, outlined=True)
            self.name.props["color"] = "ie-accent"
            ui.label("Shown on the jobs you start.").classes("imgedit-muted text-caption")
            self.password = ui.input("Password", password=True, password_toggle_button=True).classes("w-full")
            self.password.props.update(autocomplete="current-password", outlined=True, color="ie-accent")
            self.message = ui.label("").classes("imgedit-login-error")
            self.message.props.update({"role": "alert", "aria-live": "assertive"})
            if self.expired:
                self.message.set_text("That sign-in took too long; please sign in again.")
            self.button = ui.button("Sign in", on_click=self.submit).classes("w-full")
            self.button.props.update({"color": "deep-purple-5", "unelevated": True, "no-caps": True})
            self.name.on("keydown.enter", self.submit)
            self.password.on("keydown.enter", self.submit)

    async def submit(self) -> None:
        if self.button.props.get("loading"):
            return
        self.button.props["loading"] = True
        self.button.update()
        try:
            outcome = await self.auth.attempt(
                self.address, str(self.name.value or ""), str(self.password.value or "")
            )
        finally:
            self.button.props["loading"] = False
            self.button.update()
        if outcome.ticket is None:
            self.message.set_text(outcome.message)
            self.password.set_value("")
            self.password.run_method("focus")
            return
        query = urllib.parse.urlencode({"ticket": outcome.ticket, "next": self.next_path})
        ui.navigate.to(f"{DONE_PATH}?{query}")


def account_controls(services: Services) -> None:
    """ "Signed in as <name>" and Sign out, for a page header (nothing without a password)."""
    auth = services.auth
    if auth is None:
        return
    session_id = session_id_of()
    session = auth.session(session_id)
    if session is None or session_id is None:
        return
    ui.label(f"Signed in as {session.name}").classes("imgedit-account text-body2")

    async def sign_out() -> None:
        await auth.sign_out(session_id)
        for client in list(Client.instances.values()):
            if client.page.path != LOGIN_PATH and session_id_of(client) == session_id:
                with client:
                    ui.navigate.to(LOGIN_PATH)

    button = ui.button("Sign out", icon="logout", on_click=sign_out).classes("imgedit-sign-out")
    with button:
        ui.tooltip(f"Signed in as {session.name}")  # a phone shows only the icon
    button.props.update({"flat": True, "no-caps": True, "color": "ie-quiet"})
