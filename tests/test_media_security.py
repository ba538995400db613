"""Media routes and the Host check, as an attacker or a careless user meets them.

In-process cases talk to the app through NiceGUI's ``user`` fixture and an ASGI transport. The
Host check on the websocket path (socket.io polling and upgrade) is proved against a real
``python main.py`` on loopback, with raw HTTP so the request line and Host header are exactly
what a hostile page's browser (after DNS rebinding) would send.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nicegui import __version__ as nicegui_version
from nicegui import app
from nicegui.testing import User
from PIL import Image

from tests.app_process import running_app
from tests.conftest import app_services

ROOT = Path(__file__).resolve().parents[1]
SQLITE_MAGIC = b"SQLite format 3"
PNG_MAGIC = b"\x89PNG"
KINDS = ("images", "thumbs", "download", "previews")


def hostile_ids(data_dir: Path) -> list[str]:
    """Ids a hostile page could ask for; each must be a 404 on every media route."""
    database = data_dir / "imgedit.sqlite3"
    return [
        "../imgedit.sqlite3",
        "..%2fimgedit.sqlite3",
        "..%2Fimgedit.sqlite3",
        "%2e%2e%2fimgedit.sqlite3",
        "%2e%2e%2f%2e%2e%2fimgedit.sqlite3",
        "%252e%252e%252fimgedit.sqlite3",
        "..%252fimgedit.sqlite3",
        "....//imgedit.sqlite3",
        "..\\imgedit.sqlite3",
        "%2fetc%2fpasswd",
        "%2F" + str(database).lstrip("/").replace("/", "%2F"),
        "imgedit.sqlite3",
        "imgedit.sqlite3-wal",
        "x" * 10_000,
        "0" * 32,
        "f" * 31,
        "F" * 32,
        "0" * 32 + "%00",
        "0" * 32 + ".png",
    ]


def assert_refused(response: httpx.Response, label: str) -> None:
    assert response.status_code == 404, (label, response.status_code)
    assert response.headers.get("x-content-type-options") == "nosniff", label
    assert SQLITE_MAGIC not in response.content, label
    assert PNG_MAGIC not in response.content, label
    assert b"root:" not in response.content, label


@contextlib.asynccontextmanager
async def loopback_client() -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, addressed the way a local browser addresses it."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        yield client


# -- media routes (in process) -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_hostile_ids_get_404_and_never_file_content(user: User, kind: str, data_dir: Path) -> None:
    await user.open("/")
    async with loopback_client() as client:
        for bad in hostile_ids(data_dir):
            assert_refused(await client.get(f"/media/{kind}/{bad}"), f"{kind}/{bad[:40]}")
        # An absolute path after the prefix (double slash) is still not a file name.
        assert_refused(await client.get(f"/media/{kind}//etc/passwd"), f"{kind}//etc/passwd")
        assert_refused(await client.get(f"/media/{kind}/{data_dir}/imgedit.sqlite3"), f"{kind}/abs-db")


async def test_every_media_response_says_nosniff(user: User) -> None:
    await user.open("/")
    image = app_services().store.list()[0]
    async with loopback_client() as client:
        for kind in ("images", "thumbs", "download"):
            response = await client.get(f"/media/{kind}/{image.id}")
            assert response.status_code == 200, kind
            assert response.headers.get("x-content-type-options") == "nosniff", kind
        assert_refused(await client.get("/media/nothing-here"), "unknown media kind")


async def test_deleted_image_is_404_on_every_route(user: User) -> None:
    await user.open("/")
    store = app_services().store
    image = store.list()[0]
    await store.delete(image.id)
    async with loopback_client() as client:
        for kind in ("images", "thumbs", "download"):
            assert_refused(await client.get(f"/media/{kind}/{image.id}"), kind)


@pytest.mark.parametrize("kind", ["images", "thumbs", "download"])
async def test_image_file_removed_by_hand_is_404_and_its_card_drops_out(user: User, kind: str) -> None:
    await user.open("/")
    store = app_services().store
    image = store.list()[0]
    await user.should_see(marker=f"image-{image.id}")
    store.path_of(image).unlink()

    async with loopback_client() as client:
        assert_refused(await client.get(f"/media/{kind}/{image.id}"), kind)
        for other in ("images", "thumbs", "download"):  # and it stays gone, without a 500
            assert_refused(await client.get(f"/media/{other}/{image.id}"), other)

    assert image.id not in store
    await user.should_not_see(marker=f"image-{image.id}", retries=30)  # the gallery's 1-s tick


async def test_thumbnail_removed_by_hand_is_drawn_again_from_the_image(user: User) -> None:
    await user.open("/")
    store = app_services().store
    image = store.list()[0]
    store.thumb_path_of(image).unlink()

    async with loopback_client() as client:
        response = await client.get(f"/media/thumbs/{image.id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert response.headers.get("x-content-type-options") == "nosniff"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= max(image.width, image.height)
    assert image.id in store
    await user.should_see(marker=f"image-{image.id}")


# -- Host check (in process) -------------------------------------------------------------------


async def test_forged_host_is_refused_in_process(user: User) -> None:
    await user.open("/")
    image = app_services().store.list()[0]
    paths = [
        "/",
        f"/media/images/{image.id}",
        f"/media/thumbs/{image.id}",
        "/static/imgedit.css",
        f"/_nicegui/{nicegui_version}/static/nicegui.js",
        "/_nicegui_ws/socket.io/?EIO=4&transport=polling",
    ]
    async with loopback_client() as client:
        for path in paths:
            for host in ("attacker.example", "attacker.example:8080", "localhost.attacker.example", ""):
                response = await client.get(path, headers={"Host": host})
                assert response.status_code == 400, (path, host)
                assert "--allowed-hosts" in response.text, (path, host)
                assert response.headers["content-type"].startswith("text/plain"), (path, host)
                assert PNG_MAGIC not in response.content
            for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST."):
                if path.startswith("/_nicegui_ws/"):
                    continue  # a real session; covered against the real server
                response = await client.get(path, headers={"Host": host})
                assert response.status_code == 200, (path, host)


# -- Host policy (plain functions) -------------------------------------------------------------


def test_host_names_are_compared_without_port_case_or_trailing_dot() -> None:
    from imgedit.ui.hosts import HostPolicy

    policy = HostPolicy.for_server(host="127.0.0.1", allowed_hosts=("Photos.Example:9000",))
    for good in (
        "localhost",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]",
        "[::1]:8080",
        "photos.example",
        "photos.example.:8080",
        "127.0.0.2:80",
        "[0:0:0:0:0:0:0:1]",
    ):
        assert policy.allows(good), good
    for bad in (
        "attacker.example",
        "localhost.attacker.example",
        "photos.example.attacker",
        "",
        "[::1",
        "localhost:80:80",
        "[::2]:80",
        "0.0.0.0",
        "10.0.0.1",
        "a b",
    ):
        assert not policy.allows(bad), bad


def test_a_specific_host_is_allowed_and_a_wildcard_adds_this_machine() -> None:
    from imgedit.ui.hosts import HostPolicy

    assert HostPolicy.for_server(host="imgedit.lan", allowed_hosts=()).allows("imgedit.lan:8080")
    assert HostPolicy.for_server(host="192.168.7.9", allowed_hosts=()).allows("192.168.7.9:8080")
    assert not HostPolicy.for_server(host="127.0.0.1", allowed_hosts=()).allows(socket.gethostname() + ".x")
    for wildcard in ("0.0.0.0", "::"):
        policy = HostPolicy.for_server(host=wildcard, allowed_hosts=())
        assert policy.allows(socket.gethostname()), wildcard
        assert policy.allows(socket.getfqdn() + ":8080"), wildcard
        assert not policy.allows("attacker.example"), wildcard
    assert HostPolicy.for_server(host="127.0.0.1", allowed_hosts=("*",)).allows("attacker.example")


# -- the real stack: python main.py on loopback ------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    data_dir: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_get(server: Server, target: str, host: str | None, extra: tuple[str, ...] = ()) -> RawResponse:
    """One request exactly as written (no URL normalisation), read to the end of its answer."""
    lines = [f"GET {target} HTTP/1.1", *([f"Host: {host}"] if host is not None else []), *extra]
    if not any(line.lower().startswith("connection:") for line in extra):
        lines.append("Connection: close")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if status != 101:  # an upgraded socket stays open; anything else ends with the body
            while chunk := sock.recv(65536):
                body += chunk
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return RawResponse(status, headers, body)


def dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``python main.py`` for every real-server case in this module."""
    folder = tmp_path_factory.mktemp("media-security")
    env = {"IMGEDIT_SAMPLES": "1", "IMGEDIT_ALLOWED_HOSTS": "photos.example, Gallery.Lan"}
    with running_app(folder, env) as url:
        yield Server(port=int(url.rsplit(":", 1)[1]), data_dir=folder / "data")


def some_image_id(server: Server) -> str:
    page = raw_get(server, "/", server.host)
    ids = re.findall(rb"/media/thumbs/([0-9a-f]{32})", page.body)
    assert ids, "the samples should fill the gallery"
    return ids[0].decode()


WEBSOCKET_UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


def test_real_server_refuses_a_forged_host_on_every_layer(server: Server) -> None:
    image_id = some_image_id(server)
    targets = [
        "/",
        f"/media/images/{image_id}",
        f"/media/thumbs/{image_id}",
        f"/media/download/{image_id}",
        "/static/imgedit.css",
        f"/_nicegui/{nicegui_version}/static/nicegui.js",
        "/_nicegui_ws/socket.io/?EIO=4&transport=polling",
    ]
    for target in targets:
        for host in (f"attacker.example:{server.port}", "attacker.example", None):
            response = raw_get(server, target, host)
            assert response.status == 400, (target, host, response.status)
            assert b"Unknown host" in response.body and b"--allowed-hosts" in response.body, target
            assert PNG_MAGIC not in response.body and b"<html" not in response.body.lower(), target


def test_real_server_refuses_a_forged_host_on_the_websocket_upgrade(server: Server) -> None:
    target = "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    forged = raw_get(server, target, f"attacker.example:{server.port}", WEBSOCKET_UPGRADE)
    assert forged.status == 400, forged
    assert b"--allowed-hosts" in forged.body
    good = raw_get(server, target, server.host, WEBSOCKET_UPGRADE)
    assert good.status == 101, good


def test_real_server_serves_socketio_and_pages_to_loopback_names(server: Server) -> None:
    polling = raw_get(server, "/_nicegui_ws/socket.io/?EIO=4&transport=polling", server.host)
    assert polling.status == 200, polling
    assert polling.body.startswith(b"0{") and b'"sid"' in polling.body, polling.body[:80]
    for host in (server.host, f"localhost:{server.port}", f"[::1]:{server.port}", "localhost"):
        assert raw_get(server, "/", host).status == 200, host


def test_real_server_answers_to_the_allowed_hosts_it_was_given(server: Server) -> None:
    for host in (f"photos.example:{server.port}", "gallery.lan", f"GALLERY.LAN.:{server.port}"):
        assert raw_get(server, "/", host).status == 200, host
        polling = raw_get(server, "/_nicegui_ws/socket.io/?EIO=4&transport=polling", host)
        assert polling.status == 200 and polling.body.startswith(b"0{"), host
    assert raw_get(server, "/", "photos.example.attacker.example").status == 400


def test_real_server_raw_traversal_never_reaches_a_file(server: Server) -> None:
    image_id = some_image_id(server)
    targets = [
        "/media/images/../imgedit.sqlite3",
        "/media/../imgedit.sqlite3",
        "/media/images/../../imgedit.sqlite3",
        "/media/images/..%2fimgedit.sqlite3",
        "/media/images/%2e%2e%2fimgedit.sqlite3",
        "/media/images/%2e%2e/%2e%2e/imgedit.sqlite3",
        "/media/images/%252e%252e%252fimgedit.sqlite3",
        f"/media/images/..%2fimages%2f{image_id}.png",
        f"/media/thumbs/../images/{image_id}.png",
        "/media/download//etc/passwd",
        f"/media/images/{server.data_dir}/imgedit.sqlite3",
        "/media/images/" + "x" * 10_000,
    ]
    for target in targets:
        response = raw_get(server, target, server.host)
        assert response.status in {400, 404}, (target[:60], response.status)
        assert response.headers.get("x-content-type-options") == "nosniff", target[:60]
        assert SQLITE_MAGIC not in response.body and PNG_MAGIC not in response.body, target[:60]
        assert b"root:" not in response.body, target[:60]
