"""A reverse proxy that serves an app under a path prefix and strips it, as nginx's
``location /imgedit/ { proxy_pass http://127.0.0.1:8080/; }`` or Caddy's ``handle_path`` do.

Plain TCP: each connection's request line loses the prefix (anything outside it is a 404),
``Connection: close`` makes every request use a connection of its own, and an ``Upgrade``
(websocket) request is piped both ways as it is.

Usage: ``with prefix_proxy(8080, "/imgedit") as url: ...``  (url ends with the prefix)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.loopback import free_port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, port: int, prefix: str) -> None:
    try:
        head = await client_r.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        client_w.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    if target != prefix and not target.startswith(prefix + "/") and not target.startswith(prefix + "?"):
        client_w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await client_w.drain()
        client_w.close()
        return
    rest = target[len(prefix) :] or "/"
    if rest.startswith("?"):
        rest = "/" + rest
    headers = [h for h in lines[1:] if h]
    upgrade = any(h.lower().startswith("upgrade:") for h in headers)
    if not upgrade:
        headers = [h for h in headers if not h.lower().startswith("connection:")] + ["Connection: close"]
    server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
    server_w.write(("\r\n".join([f"{method} {rest} {version}", *headers]) + "\r\n\r\n").encode("latin-1"))
    await server_w.drain()
    await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))


@contextlib.contextmanager
def prefix_proxy(port: int, prefix: str) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    listen = free_port()
    ready = threading.Event()
    server: asyncio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, port, prefix), "127.0.0.1", listen
        )
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{listen}{prefix}"
    finally:
        assert server is not None
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
