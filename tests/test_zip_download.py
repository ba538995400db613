"""Downloading a selection of images as one zip (``imgedit.ui.archive``), as a user gets it.

The selection is registered the way the gallery does it (``archive.download`` from the page's
client, in NiceGUI's user simulation, whose ``ui.download`` fetches the URL). The same URL is
then fetched over real HTTP from the same app served by uvicorn on loopback, to see the stream
as a browser sees it. That it is streamed is proved with a named pipe (FIFO) in place of the
second image's file: nobody can read it before the test writes into it, so the first member can
only arrive first if the archive is sent while it is being made; a zip built in advance would
never send a byte and the read would fail on its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from nicegui import Client, app, ui
from nicegui.functions.download import download as real_download
from nicegui.testing import User
from PIL import Image

from imgedit.models import ImageId, ImageOrigin, ImageRecord
from imgedit.storage import ImageStore
from tests.conftest import app_services
from tests.fakes import eventually
from tests.loopback import free_port
from tests.prefix_proxy import prefix_proxy

PASSWORD = "correct horse battery"


def png(width: int, height: int, *, noise: bool = False, shade: int = 0) -> bytes:
    """A PNG; with ``noise`` it does not compress, so its file is about width × height × 3 bytes."""
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (shade, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def add_images(store: ImageStore, names: list[str], **kwargs: Any) -> list[ImageRecord]:
    return [
        await store.add(png(32 + i, 24, shade=i * 20, **kwargs), origin=ImageOrigin.UPLOAD, name=name)
        for i, name in enumerate(names)
    ]


def archive_module() -> Any:
    return importlib.import_module("imgedit.ui.archive")  # NiceGUI re-imports the ui package per test


async def choose(user: User, records: list[ImageRecord]) -> httpx.Response:
    """What the gallery does for "Download N": the browser's fetch of the zip is the answer."""
    assert user.client is not None
    with user.client:
        await archive_module().download(app_services(), [r.id for r in records])
    return await user.download.next(timeout=10)


def opened(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive


def unzip_test(data: bytes, folder: Path) -> str:
    path = folder / "check.zip"
    path.write_bytes(data)
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@dataclass(frozen=True)
class Served:
    url: str
    server: uvicorn.Server

    @property
    def requests_in_flight(self) -> int:
        return len(self.server.server_state.tasks)


@contextlib.asynccontextmanager
async def real_server() -> AsyncIterator[Served]:
    """The running test app, also served over real sockets by uvicorn, on this event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), message="uvicorn to listen")
        assert server.started, task
        yield Served(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def fifo_in_place_of(path: Path) -> Iterator[Path]:
    """Turn an image's file into a named pipe; whatever reads it waits until the test writes."""
    path.unlink()
    os.mkfifo(path)
    try:
        yield path
    finally:
        # A reader still waiting (if the test failed early) gets an empty file instead of hanging.
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK))
        path.unlink(missing_ok=True)


def feed(fifo: Path, data: bytes) -> None:
    with open(fifo, "wb") as pipe:  # blocks until the server opens it for reading
        pipe.write(data)


# -- through the page, as the gallery calls it -----------------------------------------------------


async def test_a_selection_downloads_as_one_zip_of_the_stored_files(user: User, tmp_path: Path) -> None:
    await user.open("/")
    store = app_services().store
    records = await add_images(store, ["harbour.png", "Forest at dawn.jpg", "Straße.png"])

    response = await choose(user, records)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="imgedit-3-images.zip"'
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    archive = opened(response.content)
    assert archive.namelist() == ["harbour.png", "Forest-at-dawn.png", "Straße.png"]
    for info, record in zip(archive.infolist(), records, strict=True):
        assert info.compress_type == zipfile.ZIP_STORED  # images are compressed already
        assert archive.read(info) == store.path_of(record).read_bytes()
    assert "No errors detected" in unzip_test(response.content, tmp_path)


async def test_names_are_made_unique_and_are_never_a_path(user: User, tmp_path: Path) -> None:
    await user.open("/")
    store = app_services().store
    names = ["cat.png", "cat.png", "CAT.png", "cat (2).png", "../../etc/passwd", "a/b\\c.png", "..", "/"]
    records = await add_images(store, names)

    archive = opened((await choose(user, records)).content)

    members = archive.namelist()
    assert members[:4] == ["cat.png", "cat (2).png", "CAT (3).png", "cat-2.png"]
    assert members[4:6] == ["etc-passwd.png", "a-b-c.png"]
    assert all(m.startswith("image-") for m in members[6:]), members  # nothing left of the title
    assert len({m.casefold() for m in members}) == len(members)
    for member in members:
        assert "/" not in member and "\\" not in member and ".." not in member, member
    unpacked = tmp_path / "unpacked"
    archive.extractall(unpacked)
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(members)  # all side by side


async def test_an_image_deleted_after_choosing_is_left_out(user: User) -> None:
    await user.open("/")
    store = app_services().store
    records = await add_images(store, ["one.png", "two.png", "three.png"])
    first = await choose(user, records)
    assert first.status_code == 200

    await store.delete(records[1].id)
    again = await user.http_client.get(str(first.request.url.path))  # the same link, fetched later

    assert again.status_code == 200
    assert again.headers["content-disposition"] == 'attachment; filename="imgedit-2-images.zip"'
    archive = opened(again.content)
    assert archive.namelist() == ["one.png", "three.png"]

    await store.delete(records[0].id)
    await store.delete(records[2].id)
    gone = await user.http_client.get(str(first.request.url.path))
    assert gone.status_code == 404


async def test_an_unknown_token_is_404_and_serves_nothing(user: User) -> None:
    await user.open("/")
    for token in ("made-up", "x" * 500, "..%2fimgedit.sqlite3", "%00"):
        response = await user.http_client.get(f"/media/zip/{token}")
        assert response.status_code == 404, token
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert b"PK" not in response.content[:2]


# -- over real HTTP: streamed --------------------------------------------------------------------


async def test_the_zip_is_streamed_first_member_sent_before_the_later_files_are_read(user: User) -> None:
    await user.open("/")
    store = app_services().store
    big = await store.add(png(700, 700, noise=True), origin=ImageOrigin.UPLOAD, name="big.png")
    middle, last = await add_images(store, ["middle.png", "last.png"])
    big_bytes, middle_bytes = store.path_of(big).read_bytes(), store.path_of(middle).read_bytes()
    assert len(big_bytes) > 1_000_000  # several chunks
    link = str((await choose(user, [big, middle, last])).request.url.path)

    async with real_server() as served, httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        with fifo_in_place_of(store.path_of(middle)) as fifo:
            async with http.stream("GET", link) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"
                assert "content-length" not in response.headers
                received = b""
                chunks = response.aiter_raw()
                while big_bytes not in received:  # a zip made in advance: ReadTimeout here
                    received += await anext(chunks)
                # The server is now waiting to read the middle file. The last one vanishes
                # meanwhile; then the middle one's bytes come through the pipe.
                store.path_of(last).unlink()
                await asyncio.to_thread(feed, fifo, middle_bytes)
                async for chunk in chunks:
                    received += chunk

    archive = opened(received)
    assert archive.namelist() == ["big.png", "middle.png"]  # the vanished file is skipped
    assert archive.read("big.png") == big_bytes and archive.read("middle.png") == middle_bytes
    assert last.id not in store  # and its card drops out, as on the media routes


async def test_a_client_that_hangs_up_mid_zip_ends_its_request_and_leaves_no_file_open(user: User) -> None:
    await user.open("/")
    store = app_services().store
    first, middle, last = await add_images(store, ["first.png", "middle.png", "last.png"])
    first_bytes, middle_bytes = store.path_of(first).read_bytes(), store.path_of(middle).read_bytes()
    link = str((await choose(user, [first, middle, last])).request.url.path)

    half = len(middle_bytes) // 2
    async with real_server() as served, httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        with fifo_in_place_of(store.path_of(middle)) as fifo:
            writer = None
            try:
                async with http.stream("GET", link) as response:
                    received = b""
                    chunks = response.aiter_raw()
                    while first_bytes not in received:
                        received += await anext(chunks)
                    writer = await eventually_value(
                        lambda: reader_waiting(fifo), "the server to open the pipe"
                    )
                    os.write(writer, middle_bytes[:half])
                    while middle_bytes[:half] not in received:  # the server is reading the pipe
                        received += await anext(chunks)
                # Hung up while the server's worker thread waits for the rest of the middle
                # file: the request ends all the same (the thread is not waited for) ...
                await eventually(lambda: served.requests_in_flight == 0, message="the request to end")
                with contextlib.suppress(BrokenPipeError):  # (the server may have let go already)
                    os.write(writer, middle_bytes[half:])
            finally:
                if writer is not None:
                    os.close(writer)
            # ... and once the thread's read returns, the file is closed.
            await eventually(lambda: not open_files_in(store.images_dir), message="the file to be let go")
        store.path_of(middle).write_bytes(middle_bytes)
        complete = await http.get(link)  # and the next request is served whole

    archive = opened(complete.content)
    assert archive.namelist() == ["first.png", "middle.png", "last.png"]
    assert archive.read("middle.png") == middle_bytes


def reader_waiting(fifo: Path) -> int | None:
    """A write end of the pipe once someone has opened it for reading (else None)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return None


async def eventually_value(probe: Callable[[], int | None], message: str) -> int:
    found: list[int] = []
    await eventually(lambda: (value := probe()) is not None and not found.append(value), message=message)
    return found[0]


def open_files_in(folder: Path) -> list[Path]:
    """Files under ``folder`` this process has open (Linux ``/proc``)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if target.parent == folder:
                paths.append(target)
    return paths


async def test_behind_a_path_prefix_the_same_link_serves_the_zip(user: User) -> None:
    """Under ``--root-path`` the browser asks for ``<prefix>/media/zip/<token>`` (NiceGUI's
    ``ui.download`` adds the prefix, as for single downloads) and the proxy strips it again."""
    await user.open("/")
    store = app_services().store
    records = await add_images(store, ["one.png", "two.png"])
    link = str((await choose(user, records)).request.url.path)
    assert link.startswith("/media/zip/")  # bare: the prefix is the browser's to add

    async with real_server() as served:
        port = int(served.url.rsplit(":", 1)[1])
        with prefix_proxy(port, "/imgedit") as prefixed:
            async with httpx.AsyncClient(timeout=30) as http:
                response = await http.get(prefixed + link)

    assert response.status_code == 200
    assert opened(response.content).namelist() == ["one.png", "two.png"]


@pytest.mark.browser
async def test_headless_chromium_saves_the_zip_it_is_handed(user: User, tmp_path: Path) -> None:
    from tests.test_browser import chrome  # skips where Chromium is missing

    await user.open("/")
    store = app_services().store
    records = await add_images(store, ["harbour.png", "harbour.png", "forest.png"])
    folder = tmp_path / "Downloads"
    folder.mkdir()
    saved = folder / "imgedit-3-images.zip"
    async with real_server() as served:
        driver = await asyncio.to_thread(chrome)
        try:
            behaviour = {"behavior": "allow", "downloadPath": str(folder)}
            await asyncio.to_thread(driver.execute_cdp_cmd, "Browser.setDownloadBehavior", behaviour)
            await asyncio.to_thread(driver.get, served.url + "/")
            await eventually(lambda: browser_client(user) is not None, message="the browser's page")
            page = browser_client(user)
            assert page is not None
            # The browser fetches it, not the simulated user (whose every attribute access
            # puts its own ui.download back, so ``user`` is not touched until this is done).
            simulated, ui.download = ui.download, real_download
            try:
                with page:
                    await archive_module().download(app_services(), [r.id for r in records])
            finally:
                ui.download = simulated
            await eventually(lambda: saved.exists() and not list(folder.glob("*.crdownload")), 30, "the zip")
        finally:
            await asyncio.to_thread(driver.quit)
    assert [p.name for p in folder.iterdir()] == [saved.name]  # named by the server's Content-Disposition
    archive = opened(saved.read_bytes())
    assert archive.namelist() == ["harbour.png", "harbour (2).png", "forest.png"]
    assert [archive.read(n) for n in archive.namelist()] == [store.path_of(r).read_bytes() for r in records]


def browser_client(user: User) -> Client | None:
    """The gallery page the browser opened (connected), not the simulated user's."""
    pages = [
        c
        for c in Client.instances.values()
        if c is not user.client and c.page.path == "/" and c.has_socket_connection
    ]
    return pages[0] if pages else None


# -- a studio with a password ----------------------------------------------------------------------


@pytest.fixture
def studio_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IMGEDIT_PASSWORD", PASSWORD)
    return PASSWORD


async def sign_in(user: User, name: str) -> None:
    await user.open("/")  # the gate sends a stranger to the login page
    await user.should_see("Sign in")
    user.find("Your name").type(name)
    user.find("Password").type(PASSWORD)
    user.find("Sign in").click()
    await user.should_see(f"Signed in as {name}", retries=100)


async def test_behind_a_password_only_the_session_that_chose_can_fetch(
    studio_password: str, user: User, create_user: Callable[[], User]
) -> None:
    await sign_in(user, "Ana")
    store = app_services().store
    records = await add_images(store, ["one.png", "two.png"])
    response = await choose(user, records)
    assert response.status_code == 200 and opened(response.content).namelist() == ["one.png", "two.png"]
    link = str(response.request.url.path)

    async with real_server() as served, httpx.AsyncClient(base_url=served.url, timeout=30) as stranger:
        refused = await stranger.get(link)  # no session cookie: the gate answers, not the route
    assert refused.status_code == 401 and refused.content == b"Sign in first.\n"

    bo = create_user()
    await sign_in(bo, "Bo")
    other_session = await bo.http_client.get(link)
    assert other_session.status_code == 404  # signed in, but not the one who chose
    assert b"PK" not in other_session.content[:2]
    assert (await user.http_client.get(link)).status_code == 200


# -- the selections and the names, as plain objects --------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


IDS = [ImageId(f"{n:032x}") for n in range(1, 4)]


def test_a_token_expires_and_only_so_many_are_kept() -> None:
    archive, clock = archive_module(), Clock()
    selections = archive.Selections(ttl_s=600, limit=2, clock=clock)
    first = selections.add(IDS, session=None)
    assert list(selections.get(first, session=None).image_ids) == IDS
    clock.now += 599
    assert selections.get(first, session="anyone") is not None  # no password: no session to match
    clock.now += 1
    assert selections.get(first, session=None) is None

    tokens = [selections.add(IDS[:1], session=None) for _ in range(3)]
    assert len(selections) == 2 and selections.get(tokens[0], session=None) is None
    assert len({*tokens, first}) == 4 and all(len(t) >= 32 for t in tokens)


def test_a_token_made_in_a_signed_in_session_is_that_sessions_alone() -> None:
    selections = archive_module().Selections(clock=Clock())
    token = selections.add([*IDS, IDS[0], "../x", "F" * 32], session="session-a")
    assert list(selections.get(token, session="session-a").image_ids) == IDS  # once each, valid only
    assert selections.get(token, session="session-b") is None
    assert selections.get(token, session=None) is None


def test_unique_names_stay_quick_for_thousands_of_one_title() -> None:
    names = archive_module().UniqueNames()
    claimed = [names.claim("cat.png") for _ in range(5000)]
    assert claimed[:3] == ["cat.png", "cat (2).png", "cat (3).png"] and claimed[-1] == "cat (5000).png"
    assert names.claim("Cat (2).png") == "Cat (2) (2).png"
    assert names.claim("README") == "README" and names.claim("readme") == "readme (2)"
    assert archive_module().archive_name(1) == "imgedit-1-image.zip"


# -- the native window's path: the zip written to a chosen file ----------------------------------


async def test_the_native_save_writes_the_whole_zip_and_nothing_else(
    store: ImageStore, tmp_path: Path
) -> None:
    records = await add_images(store, ["one.png", "one.png", "gone.png"])
    store.path_of(records[2]).unlink()
    target_dir = tmp_path / "Downloads"
    target_dir.mkdir()
    target = target_dir / "imgedit-3-images.zip"

    count = await archive_module().save_zip(store, [r.id for r in records], target)

    assert count == 2
    assert [p.name for p in target_dir.iterdir()] == [target.name]  # no partial file left
    archive = opened(target.read_bytes())
    assert archive.namelist() == ["one.png", "one (2).png"]
    assert archive.read("one (2).png") == store.path_of(records[1]).read_bytes()

    with pytest.raises(OSError):
        await archive_module().save_zip(store, [records[0].id], tmp_path / "missing" / "x.zip")
    assert not (tmp_path / "missing").exists()
