"""The Host check: answer only to the names this server is reachable by (DNS-rebinding guard).

A web page on any site can make the browser resolve its own name to 127.0.0.1 and then read the
answers as same-origin; the one thing it cannot change is the Host header, which carries the
page's name. So every request (pages, ``/media``, ``/static``, ``/_nicegui`` and the socket.io
polling and websocket endpoint under ``/_nicegui_ws``) whose Host is not one of ours gets a 400.

Allowed: loopback names and addresses (any port); ``settings.host`` when it is a specific name
or address; ``settings.allowed_hosts`` (``*`` turns the check off); and, when the server listens
on every interface (``0.0.0.0`` / ``::``), this machine's host name, FQDN and interface addresses.

It is a pure ASGI middleware, so it sees http and websocket scopes alike: NiceGUI mounts the
socket.io app inside its FastAPI app, below the middleware stack. Must not import nicegui.

Usage: ``app.add_middleware(HostCheck, policy=HostPolicy.for_server(host=..., allowed_hosts=...))``
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_LOGGED_LIMIT = 20
"""Refused names logged once each, up to this many, so a flood cannot fill the log."""


def host_name(header: str) -> str | None:
    """The name in a Host header, lower-cased, without port, brackets or trailing dot;
    addresses in their canonical form. ``None`` if it is not a well-formed host."""
    text = header.strip().lower()
    if text.startswith("["):
        inside, bracket, port = text[1:].partition("]")
        if not bracket or (port and not re.fullmatch(r":\d{1,5}", port)):
            return None
        return _address(inside)
    name, _, port = text.partition(":")
    if port and not port.isdigit():
        return None  # also refuses a bare IPv6 address, which a Host header must bracket
    name = name.removesuffix(".")
    address = _address(name)
    if address is not None:
        return address
    return name if _NAME.fullmatch(name) else None


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True, slots=True)
class HostPolicy:
    """Which Host headers this server answers to. ``names=None`` allows any."""

    names: frozenset[str] | None

    @classmethod
    def for_server(cls, *, host: str, allowed_hosts: Iterable[str]) -> HostPolicy:
        allowed = [entry.strip() for entry in allowed_hosts if entry.strip()]
        if "*" in allowed:
            return cls(names=None)
        names = {name for entry in [host, *allowed] if (name := host_name(entry)) is not None}
        if host.strip() in WILDCARDS:
            names |= this_machine()
        names -= {"0.0.0.0", "::"}
        return cls(names=frozenset(names))

    def allows(self, header: str) -> bool:
        if self.names is None:
            return True
        name = host_name(header)
        return name is not None and (_is_loopback(name) or name in self.names)


def this_machine() -> set[str]:
    """Names and addresses another machine may use to reach this one, for a wildcard bind."""
    names: set[str] = set()
    hostname = socket.gethostname()
    for name in (hostname, socket.getfqdn()):
        if (normalized := host_name(name)) is not None:
            names.add(normalized)
    try:
        for *_, sockaddr in socket.getaddrinfo(hostname, None):
            if (address := _address(str(sockaddr[0]))) is not None:
                names.add(address)
    except OSError:
        pass  # a host name that does not resolve: the interfaces below still count
    names.update(_interface_addresses())
    return names


def _interface_addresses() -> set[str]:
    try:
        import ifaddr  # NiceGUI's own dependency; it lists the same addresses in its banner
    except ImportError:
        return set()
    addresses: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]  # IPv6 comes as (address, flow, scope)
            if (address := _address(raw)) is not None:
                addresses.add(address)
    return addresses


class HostCheck:
    """ASGI middleware: a 400 with a short plain-text reason for every request to an unknown Host."""

    def __init__(self, app: ASGIApp, *, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy
        self._logged: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        host = header(scope, b"host")
        if self.policy.allows(host):
            await self.app(scope, receive, send)
            return
        self._log_once(host)
        body = f"Unknown host {host[:100]!r}; add it with --allowed-hosts (IMGEDIT_ALLOWED_HOSTS).\n"
        await refuse(scope, send, body.encode("utf-8", "replace"))

    def _log_once(self, header: str) -> None:
        if header not in self._logged and len(self._logged) < _LOGGED_LIMIT:
            self._logged.add(header)
            log.warning("refused a request for unknown host %r; add it with --allowed-hosts", header[:100])


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


async def refuse(
    scope: Scope,
    send: Send,
    body: bytes,
    *,
    status: int = 400,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer an http or websocket request with ``status`` and a short plain-text ``body``."""
    all_headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
        *headers,
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": all_headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})  # the server answers 403
