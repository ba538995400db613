"""The gallery store: files, thumbnails and SQLite rows (imgedit.storage, imgedit.imaging)."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from imgedit.database import Database, MigrationFailed
from imgedit.errors import InvalidRequest, NotFound, StorageFailed
from imgedit.imaging import THUMB_SIDE
from imgedit.models import ImageOrigin, ImageRecord, Quality
from imgedit.storage import ImageStore


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def picture(
    fmt: str = "PNG", size: tuple[int, int] = (1200, 800), color: str = "teal", **options: object
) -> bytes:
    image = Image.new("RGB", size, color)
    image.paste(Image.new("RGB", (size[0] // 4, size[1] // 4), "orange"), (0, 0))
    return encode(image, fmt, **options)


def noise_png(size: tuple[int, int]) -> bytes:
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    return encode(image, "PNG", compress_level=1)


def rows(data_dir: Path) -> list[sqlite3.Row]:
    """The images table, read straight from the SQLite file."""
    conn = sqlite3.connect(data_dir / "imgedit.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT * FROM images ORDER BY created_at"))
    finally:
        conn.close()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0.001)


async def reopen(tmp_path: Path) -> ImageStore:
    """A restart: open, then the check of the files that runs once the server is up."""
    again = ImageStore(tmp_path)
    again.open()
    await again.check_files()
    return again


# -- adding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
async def test_an_added_image_is_on_disk_with_a_thumbnail_and_a_row(
    store: ImageStore, tmp_path: Path, fmt: str, extension: str
) -> None:
    data = picture(fmt, (1200, 800))

    record = await store.add(data, origin=ImageOrigin.UPLOAD, name=f"cat.{extension}")

    image_file = tmp_path / "images" / f"{record.id}.{extension}"
    thumb_file = tmp_path / "thumbs" / f"{record.id}.webp"
    assert image_file.read_bytes() == data  # kept as uploaded: nothing lost
    assert store.path_of(record) == image_file
    with Image.open(thumb_file) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) <= THUMB_SIDE
        assert thumb.size == (480, 320)  # aspect kept
    assert (record.format, record.width, record.height) == (fmt, 1200, 800)
    assert record.name == f"cat.{extension}"

    [row] = rows(tmp_path)
    assert row["id"] == record.id
    assert (row["format"], row["width"], row["height"], row["origin"]) == (fmt, 1200, 800, "upload")
    assert row["name"] == f"cat.{extension}"
    assert store.get(record.id) == record
    assert await store.read_bytes(record.id) == data


async def test_a_small_image_gets_a_thumbnail_no_larger_than_itself(store: ImageStore) -> None:
    record = await store.add(picture("PNG", (64, 40)), origin=ImageOrigin.UPLOAD)
    with Image.open(store.thumb_path_of(record)) as thumb:
        assert thumb.size == (64, 40)


async def test_a_tall_image_is_thumbnailed_on_its_long_side(store: ImageStore) -> None:
    record = await store.add(picture("JPEG", (600, 1500)), origin=ImageOrigin.UPLOAD)
    with Image.open(store.thumb_path_of(record)) as thumb:
        assert thumb.size[1] == THUMB_SIDE
        assert thumb.size[0] < THUMB_SIDE


async def test_jpeg_bytes_are_kept_byte_for_byte(store: ImageStore) -> None:
    data = picture("JPEG", (800, 600), quality=91, comment=b"from my camera")
    record = await store.add(data, origin=ImageOrigin.UPLOAD, name="photo.jpg")
    assert store.path_of(record).read_bytes() == data
    assert record.format == "JPEG"


async def test_edit_metadata_is_stored(store: ImageStore, tmp_path: Path) -> None:
    parent = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    child = await store.add(
        picture(color="navy"),
        origin=ImageOrigin.EDIT,
        prompt="make it blue",
        parent_id=parent.id,
        provider="local",
        quality=Quality.HIGH,
    )
    assert (child.parent_id, child.prompt, child.provider, child.quality) == (
        parent.id,
        "make it blue",
        "local",
        Quality.HIGH,
    )
    row = next(r for r in rows(tmp_path) if r["id"] == child.id)
    assert (row["parent_id"], row["prompt"], row["provider"], row["quality"], row["origin"]) == (
        parent.id,
        "make it blue",
        "local",
        "high",
        "edit",
    )


async def test_the_gallery_lists_newest_first(store: ImageStore) -> None:
    added = [await store.add(picture(color=c), origin=ImageOrigin.UPLOAD) for c in ("red", "green", "blue")]
    assert [r.id for r in store.list()] == [r.id for r in reversed(added)]
    assert len(store) == 3
    assert all(r.id in store for r in added)


async def test_every_add_changes_the_version(store: ImageStore) -> None:
    before = store.version
    await store.add(picture(), origin=ImageOrigin.UPLOAD)
    assert store.version != before


# -- surviving a restart ---------------------------------------------------------------------


async def test_the_gallery_survives_a_restart(store: ImageStore, tmp_path: Path) -> None:
    added = [
        await store.add(picture("PNG"), origin=ImageOrigin.UPLOAD, name="a.png"),
        await store.add(picture("JPEG"), origin=ImageOrigin.SAMPLE, name="b"),
        await store.add(picture("WEBP"), origin=ImageOrigin.EDIT, prompt="p", quality=Quality.LOW),
    ]
    store.close()

    again = await reopen(tmp_path)
    try:
        assert again.list() == list(reversed(added))
        for record in added:
            assert again.get(record.id) == record
            assert await again.read_bytes(record.id) == await asyncio.to_thread(
                store.path_of(record).read_bytes
            )
    finally:
        again.close()


async def test_an_image_whose_file_was_deleted_is_left_out_after_a_restart(
    store: ImageStore, tmp_path: Path
) -> None:
    kept = await store.add(picture(color="red"), origin=ImageOrigin.UPLOAD)
    lost = await store.add(picture(color="blue"), origin=ImageOrigin.UPLOAD)
    store.close()
    store.path_of(lost).unlink()

    again = await reopen(tmp_path)
    try:
        assert [r.id for r in again.list()] == [kept.id]
        with pytest.raises(NotFound):
            again.get(lost.id)
    finally:
        again.close()


async def test_stray_temporary_files_are_swept_on_open(store: ImageStore, tmp_path: Path) -> None:
    record = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    store.close()
    (tmp_path / "images" / f"{'1' * 32}.png.tmp").write_bytes(b"half a picture")
    (tmp_path / "thumbs" / f"{'1' * 32}.webp.tmp").write_bytes(b"half a thumb")

    again = await reopen(tmp_path)
    try:
        assert files(tmp_path / "images") == [f"{record.id}.png"]
        assert files(tmp_path / "thumbs") == [f"{record.id}.webp"]
        assert [r.id for r in again.list()] == [record.id]
    finally:
        again.close()


# -- refusing what is not an image -------------------------------------------------------------


def truncated_png() -> bytes:
    data = noise_png((200, 200))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"hello", "notes.txt"),
        (b"", "empty.png"),
        (truncated_png(), "broken.png"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "header-only.png"),
    ],
    ids=["text", "empty", "truncated", "header-only"],
)
async def test_what_is_not_a_usable_image_is_refused_and_nothing_is_written(
    store: ImageStore, tmp_path: Path, data: bytes, name: str
) -> None:
    version = store.version

    with pytest.raises(InvalidRequest) as caught:
        await store.add(data, origin=ImageOrigin.UPLOAD, name=name)

    assert name in str(caught.value)
    assert files(tmp_path / "images") == []
    assert files(tmp_path / "thumbs") == []
    assert rows(tmp_path) == []
    assert store.list() == []
    assert store.version == version


async def test_a_refused_upload_without_a_name_still_says_what_was_wrong(store: ImageStore) -> None:
    with pytest.raises(InvalidRequest, match="not an image"):
        await store.add(b"hello", origin=ImageOrigin.UPLOAD)


# -- converting ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
async def test_other_formats_are_converted_to_png(store: ImageStore, fmt: str) -> None:
    original = Image.new("RGB", (90, 60), (255, 0, 0))
    original.paste(Image.new("RGB", (45, 60), (0, 0, 255)), (45, 0))

    record = await store.add(encode(original, fmt), origin=ImageOrigin.UPLOAD, name=f"x.{fmt.lower()}")

    assert record.format == "PNG"
    assert store.path_of(record).suffix == ".png"
    with Image.open(store.path_of(record)) as stored:
        assert stored.format == "PNG"
        assert stored.size == (90, 60)
        rgb = stored.convert("RGB")
        assert rgb.getpixel((10, 30)) == (255, 0, 0)
        assert rgb.getpixel((80, 30)) == (0, 0, 255)
    assert store.thumb_path_of(record).exists()


async def test_a_transparent_gif_keeps_its_transparency(store: ImageStore) -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.paste(1, (20, 0, 40, 40))
    record = await store.add(encode(image, "GIF", transparency=0), origin=ImageOrigin.UPLOAD)

    with Image.open(store.path_of(record)) as stored:
        rgba = stored.convert("RGBA")
        assert rgba.getpixel((5, 5))[3] == 0
        assert rgba.getpixel((30, 5)) == (0, 255, 0, 255)


async def test_an_exif_rotated_jpeg_is_stored_upright(store: ImageStore) -> None:
    # Stored landscape, left half red and right half blue, tagged "rotate 90° clockwise to view".
    sideways = Image.new("RGB", (300, 200), (255, 0, 0))
    sideways.paste(Image.new("RGB", (150, 200), (0, 0, 255)), (150, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(sideways, "JPEG", exif=exif, quality=95)

    record = await store.add(data, origin=ImageOrigin.UPLOAD, name="phone.jpg")

    assert (record.width, record.height) == (200, 300)
    with Image.open(store.path_of(record)) as stored:
        assert stored.size == (200, 300)
        assert stored.getexif().get(0x0112) in (None, 1)
        top = stored.convert("RGB").getpixel((100, 40))
        bottom = stored.convert("RGB").getpixel((100, 260))
    assert top[0] > 200 and top[2] < 60  # the left edge is now at the top
    assert bottom[2] > 200 and bottom[0] < 60
    with Image.open(store.thumb_path_of(record)) as thumb:
        assert thumb.size[1] > thumb.size[0]


# -- reading and deleting --------------------------------------------------------------------


@pytest.mark.parametrize("image_id", ["../etc/passwd", "abc", "", "0" * 32, "A" * 32, "../" + "0" * 29])
async def test_an_unknown_or_malformed_id_is_not_found(store: ImageStore, image_id: str) -> None:
    await store.add(picture(), origin=ImageOrigin.UPLOAD)
    with pytest.raises(NotFound):
        store.get(image_id)
    with pytest.raises(NotFound):
        await store.read_bytes(image_id)
    with pytest.raises(NotFound):
        await store.delete(image_id)
    assert len(store) == 1


async def test_delete_removes_the_files_and_the_row(store: ImageStore, tmp_path: Path) -> None:
    kept = await store.add(picture(color="red"), origin=ImageOrigin.UPLOAD)
    gone = await store.add(picture("JPEG", color="blue"), origin=ImageOrigin.UPLOAD)
    version = store.version

    deleted = await store.delete(gone.id)

    assert deleted == gone
    assert files(tmp_path / "images") == [f"{kept.id}.png"]
    assert files(tmp_path / "thumbs") == [f"{kept.id}.webp"]
    assert [r["id"] for r in rows(tmp_path)] == [kept.id]
    assert [r.id for r in store.list()] == [kept.id]
    assert store.version != version
    with pytest.raises(NotFound):
        store.get(gone.id)

    store.close()
    again = await reopen(tmp_path)
    try:
        assert [r.id for r in again.list()] == [kept.id]
    finally:
        again.close()


async def test_a_file_missing_under_a_running_store_is_not_found(store: ImageStore) -> None:
    record = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    store.path_of(record).unlink()
    with pytest.raises(NotFound):
        await store.read_bytes(record.id)


# -- cancellation ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_png() -> bytes:
    return noise_png((3000, 2000))


async def test_cancelling_an_add_right_away_leaves_nothing_behind(
    store: ImageStore, tmp_path: Path, large_png: bytes
) -> None:
    existing = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    before, version = store.list(), store.version

    task = asyncio.create_task(store.add(large_png, origin=ImageOrigin.UPLOAD, name="big.png"))
    await asyncio.sleep(0)  # let it start
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert files(tmp_path / "images") == [f"{existing.id}.png"]
    assert files(tmp_path / "thumbs") == [f"{existing.id}.webp"]
    assert [r["id"] for r in rows(tmp_path)] == [existing.id]
    assert store.list() == before
    assert store.version == version


async def test_cancelling_an_add_halfway_through_writing_leaves_nothing_behind(
    store: ImageStore, tmp_path: Path, large_png: bytes
) -> None:
    existing: ImageRecord = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    before, version = store.list(), store.version
    images = tmp_path / "images"

    task = asyncio.create_task(store.add(large_png, origin=ImageOrigin.UPLOAD, name="big.png"))
    # Wait until the worker thread has written the image itself (the thumbnail is still to come).
    await wait_until(lambda: len(files(images)) > 1 or task.done())
    assert not task.done(), "the add finished before it could be cancelled halfway"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert files(images) == [f"{existing.id}.png"]
    assert files(tmp_path / "thumbs") == [f"{existing.id}.webp"]
    assert [r["id"] for r in rows(tmp_path)] == [existing.id]
    assert store.list() == before
    assert store.version == version

    store.close()
    again = await reopen(tmp_path)
    try:
        assert again.list() == before
    finally:
        again.close()


async def test_reading_a_file_removed_behind_the_apps_back_drops_its_card(store: ImageStore) -> None:
    kept = await store.add(picture(color="red"), origin=ImageOrigin.UPLOAD)
    lost = await store.add(picture(color="blue"), origin=ImageOrigin.UPLOAD)
    store.path_of(lost).unlink()
    version = store.version

    with pytest.raises(NotFound, match="missing"):
        await store.read_bytes(lost.id)

    assert [r.id for r in store.list()] == [kept.id]
    assert store.version != version  # open views look again and drop the card
    with pytest.raises(NotFound):
        store.get(lost.id)


# -- durability ------------------------------------------------------------------------------


ON_LINUX = sys.platform.startswith("linux")


async def test_files_and_their_folders_reach_the_disk_before_the_row_commits(tmp_path: Path) -> None:
    synced: list[tuple[str, int]] = []

    def fsync(fd: int) -> None:
        # A second connection sees only what was committed: the row must not be there yet.
        target = os.readlink(f"/proc/self/fd/{fd}") if ON_LINUX else str(fd)
        synced.append((target, len(rows(tmp_path))))
        os.fsync(fd)

    store = ImageStore(tmp_path, fsync=fsync)
    store.open()
    try:
        record = await store.add(picture(), origin=ImageOrigin.UPLOAD, name="cat.png")
        assert len(rows(tmp_path)) == 1
    finally:
        store.close()

    assert [committed for _target, committed in synced] == [0, 0, 0, 0]
    if ON_LINUX:  # /proc names what each descriptor was
        images, thumbs = tmp_path / "images", tmp_path / "thumbs"
        assert [target for target, _committed in synced] == [
            str(images / f"{record.id}.png.tmp"),  # the image's bytes, before it gets its name
            str(images),  # its name
            str(thumbs / f"{record.id}.webp.tmp"),
            str(thumbs),
        ]


async def test_files_without_a_row_are_removed_on_open(store: ImageStore, tmp_path: Path) -> None:
    record = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    store.close()
    orphan = "2" * 32
    (tmp_path / "images" / f"{orphan}.png").write_bytes(picture())  # written, then power lost
    (tmp_path / "thumbs" / f"{orphan}.webp").write_bytes(b"thumb")
    (tmp_path / "thumbs" / f"{record.id}.png").write_bytes(b"a thumb under a name no row has")
    (tmp_path / "images" / "README.txt").write_text("not ours: left alone")

    again = await reopen(tmp_path)
    try:
        assert files(tmp_path / "images") == sorted([f"{record.id}.png", "README.txt"])
        assert files(tmp_path / "thumbs") == [f"{record.id}.webp"]
        assert [r.id for r in again.list()] == [record.id]
    finally:
        again.close()


async def test_a_row_whose_file_is_missing_stays_hidden_until_the_file_is_back(
    store: ImageStore, tmp_path: Path
) -> None:
    record = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    store.close()
    parked = tmp_path / "parked.png"
    store.path_of(record).rename(parked)

    again = await reopen(tmp_path)
    try:
        assert again.list() == []
        assert [r["id"] for r in rows(tmp_path)] == [record.id]  # the row is kept
        assert files(tmp_path / "thumbs") == [f"{record.id}.webp"]
    finally:
        again.close()

    parked.rename(store.path_of(record))
    third = await reopen(tmp_path)
    try:
        assert [r.id for r in third.list()] == [record.id]
    finally:
        third.close()


async def test_a_full_database_fails_the_add_with_a_message_and_leaves_no_file(
    store: ImageStore, tmp_path: Path
) -> None:
    kept = await store.add(picture(), origin=ImageOrigin.UPLOAD)
    [[pages]] = store.db.query("PRAGMA page_count")
    store.db.query(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"

    with pytest.raises(StorageFailed, match=r"^Could not save the result: the disk is full\.$"):
        await store.add(picture(color="navy"), origin=ImageOrigin.EDIT, prompt="x" * 20_000)

    assert files(tmp_path / "images") == [f"{kept.id}.png"]
    assert files(tmp_path / "thumbs") == [f"{kept.id}.webp"]
    assert [r.id for r in store.list()] == [kept.id]
    store.db.query("PRAGMA max_page_count = 1073741823")
    assert (await store.add(picture(color="navy"), origin=ImageOrigin.EDIT, prompt="x" * 20_000)).id in store


# -- migrations ------------------------------------------------------------------------------


def schema(path: Path) -> tuple[int, list[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return version, sorted(tables)
    finally:
        conn.close()


def test_migrations_run_once_each_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = ("CREATE TABLE a (x INTEGER);",)
    db = Database(path, migrations=first)
    db.open()
    db.execute("INSERT INTO a VALUES (1)")
    db.close()

    db = Database(path, migrations=(*first, "CREATE TABLE b (y TEXT); INSERT INTO b VALUES ('x; y');"))
    db.open()
    try:
        assert [r[0] for r in db.query("SELECT x FROM a")] == [1]  # migration 1 did not run again
        assert [r[0] for r in db.query("SELECT y FROM b")] == ["x; y"]
    finally:
        db.close()
    assert schema(path) == (2, ["a", "b"])


def test_a_failing_migration_rolls_back_and_says_which_one_failed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    good = "CREATE TABLE a (x INTEGER);"
    bad = "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    db = Database(path, migrations=(good,))
    db.open()
    db.close()

    failing = Database(path, migrations=(good, bad))
    with pytest.raises(MigrationFailed) as caught:
        failing.open()

    message = str(caught.value)
    assert "migration 2" in message
    assert "no_such_table" in message
    assert "version 1" in message
    assert schema(path) == (1, ["a"])  # neither its first table nor a bumped version
    with pytest.raises(RuntimeError, match="not open"):
        failing.query("SELECT 1")  # the half-done connection was not left behind

    fixed = Database(path, migrations=(good, "CREATE TABLE b (y INTEGER);"))
    fixed.open()  # the next start, with the migration fixed, upgrades cleanly
    fixed.close()
    assert schema(path) == (2, ["a", "b"])
