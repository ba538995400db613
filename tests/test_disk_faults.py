"""The data dir turns full or read-only while a job saves its result (imgedit.storage, issue 6 "Faults").

Every fault ends the same way for the user: the job FAILS with a message naming the cause, the
data dir holds exactly what it held before (no ``*.tmp``, no orphan image or thumbnail, no row),
and the store keeps serving once the disk is healthy again.

Two ways to make the fault: the store's own seams (``opener``, ``fsync``) raising the kernel's
errors, which runs everywhere; and real file systems (a small tmpfs that fills up, a read-only
bind mount), which needs permission to mount and is skipped without it.
"""

from __future__ import annotations

import errno
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image

from imgedit.editing import Studio
from imgedit.errors import StorageFailed
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobSnapshot, JobStage
from imgedit.models import ImageOrigin, ImageRecord, Quality
from imgedit.providers import ProviderRegistry
from imgedit.providers.local import LocalProvider
from imgedit.storage import ImageStore

FULL = "Could not save the result: the disk is full."
READ_ONLY = "Could not save the result: the data folder is not writable."


def png(size: tuple[int, int] = (160, 120), color: str = "teal") -> bytes:
    image = Image.new("RGB", size, color)
    image.paste(Image.new("RGB", (size[0] // 2, size[1]), "orange"), (0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class FaultyDisk:
    """The store's file seams, failing on demand with the errors a real kernel gives.

    ``fail(errno.ENOSPC, at="fsync", skip=1)`` lets one fsync through, then fails every later one
    until ``heal()``.
    """

    def __init__(self) -> None:
        self._fault: int | None = None
        self._at: Literal["open", "fsync"] = "open"
        self._skip = 0

    def fail(self, code: int, *, at: Literal["open", "fsync"], skip: int = 0) -> None:
        self._fault, self._at, self._skip = code, at, skip

    def heal(self) -> None:
        self._fault = None

    def opener(self, path: str, flags: int) -> int:
        self._maybe_fail("open", path)
        return os.open(path, flags, 0o666)

    def fsync(self, fd: int) -> None:
        self._maybe_fail("fsync", None)
        os.fsync(fd)

    def _maybe_fail(self, at: str, path: str | None) -> None:
        if self._fault is None or self._at != at:
            return
        if self._skip > 0:
            self._skip -= 1
            return
        raise OSError(self._fault, os.strerror(self._fault), path)


class App:
    """The services a job needs, built like the app builds them, over one data dir."""

    def __init__(self, data_dir: Path, disk: FaultyDisk | None = None) -> None:
        self.data_dir = data_dir
        if disk is None:
            self.store = ImageStore(data_dir)
        else:
            self.store = ImageStore(data_dir, opener=disk.opener, fsync=disk.fsync)
        self.store.open()
        durations = DurationModel({q: 1.0 for q in Quality})
        self.registry = JobRegistry(max_concurrent=1, durations=durations)
        self.studio = Studio(
            store=self.store,
            registry=self.registry,
            providers=ProviderRegistry([LocalProvider()]),
            durations=durations,
        )

    async def edit(self, source: ImageRecord) -> JobSnapshot:
        job_id = self.studio.submit_edit(source.id, "sepia and vignette", Quality.LOW, "local")
        return await self.registry.wait(job_id)

    def contents(self) -> tuple[list[str], list[str], list[str]]:
        """The image files, thumbnails and rows, as a user poking at the data dir would find them."""
        conn = sqlite3.connect(self.data_dir / "imgedit.sqlite3")
        try:
            ids = sorted(r[0] for r in conn.execute("SELECT id FROM images"))
        finally:
            conn.close()
        return (
            sorted(p.name for p in (self.data_dir / "images").iterdir()),
            sorted(p.name for p in (self.data_dir / "thumbs").iterdir()),
            ids,
        )

    async def close(self) -> None:
        await self.registry.shutdown()
        self.store.close()


@pytest.fixture
def disk() -> FaultyDisk:
    return FaultyDisk()


@pytest.fixture
async def app(tmp_path: Path, disk: FaultyDisk) -> AsyncIterator[App]:
    built = App(tmp_path / "store", disk)
    yield built
    await built.close()


# -- through the store's seams (always runs) ---------------------------------------------------


@pytest.mark.parametrize(
    ("code", "at", "message"),
    [
        (errno.ENOSPC, "fsync", FULL),  # the bytes are in the tmp file when the disk says no
        (errno.ENOSPC, "open", FULL),  # out of inodes
        (errno.EDQUOT, "fsync", "Could not save the result: the disk quota is used up."),
        (errno.EROFS, "open", READ_ONLY),
        (errno.EACCES, "open", READ_ONLY),
        (errno.EPERM, "open", READ_ONLY),
    ],
    ids=["ENOSPC-write", "ENOSPC-create", "EDQUOT", "EROFS", "EACCES", "EPERM"],
)
async def test_a_disk_fault_while_a_job_saves_fails_it_with_a_message_and_leaves_nothing(
    app: App, disk: FaultyDisk, code: int, at: Literal["open", "fsync"], message: str
) -> None:
    source = await app.store.add_upload(png(), name="source.png")
    before = app.contents()
    version = app.store.version

    disk.fail(code, at=at)
    final = await app.edit(source[0])

    assert final.stage is JobStage.FAILED
    assert final.error == message
    assert final.result_image_id is None
    assert app.contents() == before
    assert [r.id for r in app.store.list()] == [source[0].id]
    assert app.store.version == version

    disk.heal()
    again = await app.edit(source[0])  # the store keeps serving once the disk is healthy
    assert again.stage is JobStage.COMPLETED
    record, _note = await app.store.add_upload(png(color="navy"), name="later.png")
    assert [r.id for r in app.store.list()] == [record.id, again.result_image_id, source[0].id]
    images, thumbs, ids = app.contents()
    assert len(images) == len(thumbs) == len(ids) == 3


@pytest.mark.parametrize(
    ("at", "skip"),
    [("open", 0), ("fsync", 0), ("fsync", 1), ("open", 1), ("fsync", 2), ("fsync", 3)],
    ids=["image-create", "image-bytes", "image-name", "thumb-create", "thumb-bytes", "thumb-name"],
)
async def test_a_fault_at_any_step_of_a_save_leaves_nothing_behind(
    app: App, disk: FaultyDisk, at: Literal["open", "fsync"], skip: int
) -> None:
    kept = await app.store.add(png(), origin=ImageOrigin.UPLOAD)
    before = app.contents()

    disk.fail(errno.ENOSPC, at=at, skip=skip)
    with pytest.raises(StorageFailed, match=r"^Could not save the result: the disk is full\.$") as caught:
        await app.store.add(png(color="navy"), origin=ImageOrigin.EDIT, prompt="navy")

    assert not caught.value.retryable
    assert isinstance(caught.value.__cause__, OSError)  # the server log keeps the kernel's words
    assert app.contents() == before
    assert [r.id for r in app.store.list()] == [kept.id]

    # Nothing is left for the next start to clean up either.
    disk.heal()
    await app.close()
    reopened = App(app.data_dir)
    try:
        assert reopened.contents() == before
        assert [r.id for r in reopened.store.list()] == [kept.id]
    finally:
        await reopened.close()


async def test_an_upload_to_a_read_only_folder_says_so_and_names_the_file(app: App, disk: FaultyDisk) -> None:
    disk.fail(errno.EACCES, at="open")  # PermissionError, as the server log showed in defect 16

    with pytest.raises(StorageFailed) as caught:
        await app.store.add_upload(png(), name="holiday.png")

    assert str(caught.value) == "Could not save “holiday.png”: the data folder is not writable."
    assert app.contents() == ([], [], [])
    disk.heal()
    record, _note = await app.store.add_upload(png(), name="holiday.png")
    assert app.store.list() == [record]


# -- on real file systems (needs permission to mount) ------------------------------------------


class Mounts:
    """Mounts made by one test, undone in reverse order at teardown even when the test failed."""

    def __init__(self) -> None:
        self._made: list[Path] = []

    def tmpfs(self, where: Path, size: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        self._made.append(where)

    def read_only(self, where: Path) -> None:
        """Make ``where`` read-only in place (a bind mount onto itself, remounted ``ro``)."""
        self._mount("--bind", str(where), str(where))
        self._made.append(where)
        self._mount("-o", "remount,bind,ro", str(where))

    def writable(self, where: Path) -> None:
        self._mount("-o", "remount,bind,rw", str(where))

    def undo(self) -> None:
        for where in reversed(self._made):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)  # busy: detach
        self._made.clear()

    @staticmethod
    def _mount(*args: str) -> None:
        result = subprocess.run(["mount", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"mount {' '.join(args)}: {result.stderr.strip()}")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    if not sys.platform.startswith("linux"):
        pytest.skip("real disk faults use Linux mounts (tmpfs, read-only bind mounts)")
    made = Mounts()
    try:
        made.tmpfs(tmp_path / "probe", "64k")
    except (OSError, FileNotFoundError) as exc:
        pytest.skip(f"not permitted to mount file systems here (needs root / CAP_SYS_ADMIN): {exc}")
    made.undo()
    try:
        yield made
    finally:
        made.undo()


def fill(folder: Path) -> Path:
    """Write to ``folder`` until its file system refuses another byte."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with pytest.raises(OSError) as caught:
        (folder / "one-more").write_bytes(b"x" * 4096)
    assert caught.value.errno == errno.ENOSPC
    return filler


async def test_a_really_full_disk_while_a_job_saves(tmp_path: Path, mounts: Mounts) -> None:
    data_dir = tmp_path / "small"
    mounts.tmpfs(data_dir, "2m")
    app = App(data_dir)
    try:
        source = await app.store.add(png((640, 480)), origin=ImageOrigin.UPLOAD, name="source.png")
        before = app.contents()
        filler = fill(data_dir)

        final = await app.edit(source)

        assert final.stage is JobStage.FAILED
        assert final.error == FULL
        assert app.contents() == before
        assert [r.id for r in app.store.list()] == [source.id]

        filler.unlink()
        (data_dir / "one-more").unlink(missing_ok=True)
        again = await app.edit(source)
        assert again.stage is JobStage.COMPLETED
        record, _note = await app.store.add_upload(png(color="navy"), name="later.png")
        assert [r.id for r in app.store.list()] == [record.id, again.result_image_id, source.id]
    finally:
        await app.close()


async def test_a_really_read_only_images_folder_while_a_job_saves_and_an_upload_comes_in(
    tmp_path: Path, mounts: Mounts
) -> None:
    app = App(tmp_path / "store")
    images = app.data_dir / "images"
    try:
        source = await app.store.add(png(), origin=ImageOrigin.UPLOAD, name="source.png")
        before = app.contents()
        mounts.read_only(images)

        final = await app.edit(source)
        assert final.stage is JobStage.FAILED
        assert final.error == READ_ONLY
        with pytest.raises(StorageFailed) as caught:
            await app.store.add_upload(png(color="navy"), name="holiday.png")
        assert str(caught.value) == "Could not save “holiday.png”: the data folder is not writable."
        assert app.contents() == before

        mounts.writable(images)
        record, _note = await app.store.add_upload(png(color="navy"), name="holiday.png")
        assert [r.id for r in app.store.list()] == [record.id, source.id]
    finally:
        await app.close()
        mounts.undo()


async def test_deleting_from_a_really_read_only_folder_says_so_and_keeps_the_card(
    tmp_path: Path, mounts: Mounts
) -> None:
    app = App(tmp_path / "store")
    try:
        record = await app.store.add(png(), origin=ImageOrigin.UPLOAD, name="keep.png")
        before = app.contents()
        version = app.store.version
        mounts.read_only(app.data_dir / "images")

        with pytest.raises(StorageFailed) as caught:
            await app.store.delete(record.id)

        assert str(caught.value) == "Could not delete “keep.png”: the data folder is not writable."
        assert app.store.list() == [record]  # still there, and still shown
        assert app.store.version != version  # views that dropped the card look again
        assert app.contents() == before

        mounts.writable(app.data_dir / "images")
        await app.store.delete(record.id)
        assert app.contents() == ([], [], [])
    finally:
        await app.close()
        mounts.undo()
