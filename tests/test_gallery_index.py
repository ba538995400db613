"""The gallery's index at scale: start-up without touching files, pages, search, favourites,
several deletes at once, and the change log views follow (imgedit.storage, imgedit.search)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from imgedit.errors import StorageFailed
from imgedit.models import ImageOrigin
from imgedit.search import ImageFilter, Period, period_start
from imgedit.storage import CHANGE_LOG, ImageStore
from tests.big_gallery import fill
from tests.test_storage import picture


def opened(data_dir: Path) -> ImageStore:
    store = ImageStore(data_dir)
    store.open()
    return store


async def test_open_reads_rows_only_and_the_background_check_hides_a_lost_file(tmp_path: Path) -> None:
    ids = fill(tmp_path, 50)
    lost = ids[10]
    (tmp_path / "images" / f"{lost}.png").unlink()
    orphan = "3" * 32
    (tmp_path / "images" / f"{orphan}.png").write_bytes(b"left by a crash")
    past = time.time() - 60
    os.utime(tmp_path / "images" / f"{orphan}.png", (past, past))

    store = opened(tmp_path)
    try:
        # Served from the rows alone: the lost image is listed until its file is looked for.
        assert len(store) == 50 and lost in store
        assert (tmp_path / "images" / f"{orphan}.png").exists()
        version = store.version
        # A write that is under way when the check runs: its file is there, its row not yet.
        in_progress = tmp_path / "images" / f"{'4' * 32}.png.tmp"
        in_progress.write_bytes(b"being written")

        await store.check_files()

        assert lost not in store and len(store) == 49
        assert [c.before.id for c in store.changes_since(version) or [] if c.before] == [lost]
        assert not (tmp_path / "images" / f"{orphan}.png").exists()  # a leftover from before: swept
        assert in_progress.exists()  # newer than this start: not ours to judge
        assert (tmp_path / "thumbs" / f"{lost}.webp").exists()  # the row keeps its thumbnail
    finally:
        store.close()


async def test_an_image_saved_while_the_start_up_check_runs_is_kept(tmp_path: Path) -> None:
    """CI once lost the first upload after a start: the check ran while the image was being
    written, and the new file's time said it was older than the start. A kernel stamps files with
    its coarse clock, up to a tick (a few ms) behind ``time.time()``: a file made within a tick of
    the start gets a time from before it. That stamp is set here on each file as it is written
    (the last tick: just before the store opened). The check runs on the loop while the write waits at
    its first fsync (the file written, not yet renamed, no row)."""
    loop = asyncio.get_running_loop()
    checked: list[bool] = []
    store: ImageStore

    def fsync(fd: int) -> None:
        os.utime(fd, (last_tick, last_tick))
        if not checked:
            checked.append(True)
            asyncio.run_coroutine_threadsafe(store.check_files(), loop).result(timeout=30)
        os.fsync(fd)

    store = ImageStore(tmp_path, fsync=fsync)
    last_tick = time.time() - 0.001
    store.open()
    try:
        record = await store.add(picture(), origin=ImageOrigin.UPLOAD, name="first.png")

        assert checked
        assert store.get(record.id).name == "first.png"
        assert (await store.read_bytes(record.id))[:4] == b"\x89PNG"
        assert store.thumb_path_of(record).exists()
    finally:
        store.close()


async def test_pages_go_newest_first_and_a_search_finds_words_in_any_case(tmp_path: Path) -> None:
    ids = fill(tmp_path, 300, prompt_every=7)
    store = opened(tmp_path)
    try:
        everything = ImageFilter()
        first = store.page(everything, after=None, limit=60)
        second = store.page(everything, after=first[-1], limit=60)
        assert [r.id for r in first + second] == list(reversed(ids))[:120]
        assert store.count(everything) == 300

        blue = ImageFilter(text="  Blue   MAKE ")
        found = store.page(blue, after=None, limit=1000)
        assert {r.id for r in found} == {ids[i] for i in range(0, 300, 7)}
        assert store.count(blue) == len(found) == 43
        assert store.count(ImageFilter(text="scale-00299")) == 1
        assert store.count(ImageFilter(text="blue green")) == 0
        assert store.count(ImageFilter(origins=frozenset({ImageOrigin.EDIT}))) == 43
        assert store.count(ImageFilter(origins=frozenset({ImageOrigin.UPLOAD}))) == 257
        newest = store.list()[0].created_at
        assert store.count(ImageFilter(since=newest - 9.5)) == 10
    finally:
        store.close()


async def test_a_star_is_kept_across_a_restart_and_the_favourites_filter_shows_it(tmp_path: Path) -> None:
    store = opened(tmp_path)
    cat = await store.add(picture(), origin=ImageOrigin.UPLOAD, name="cat.png")
    await store.add(picture(color="navy"), origin=ImageOrigin.UPLOAD, name="dog.png")
    starred = await store.set_favourite(cat.id, True)
    assert starred.favourite and store.get(cat.id).favourite
    assert [r.name for r in store.page(ImageFilter(favourites=True), after=None, limit=10)] == ["cat.png"]
    store.close()

    again = opened(tmp_path)
    try:
        assert again.get(cat.id).favourite
        assert again.count(ImageFilter(favourites=True)) == 1
        await again.set_favourite(cat.id, False)
        assert again.count(ImageFilter(favourites=True)) == 0
    finally:
        again.close()


async def test_a_star_the_disk_refuses_is_taken_back_with_a_message(tmp_path: Path) -> None:
    store = opened(tmp_path)
    try:
        cat = await store.add(picture(), origin=ImageOrigin.UPLOAD, name="cat.png")
        other = sqlite3.connect(tmp_path / "imgedit.sqlite3")
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the file: SQLite says "locked"
        try:
            store.db.query("PRAGMA busy_timeout = 0")
            with pytest.raises(
                StorageFailed, match=r"^Could not save the star of “cat.png”: another program"
            ):
                await store.set_favourite(cat.id, True)
        finally:
            other.rollback()
            other.close()
        assert not store.get(cat.id).favourite
    finally:
        store.close()


async def test_deleting_many_removes_files_and_rows_in_one_go(tmp_path: Path) -> None:
    ids = fill(tmp_path, 30)
    store = opened(tmp_path)
    try:
        version = store.version
        doomed = ids[5:25]
        deleted, problem = await store.delete_many([*doomed, "f" * 32, doomed[0]])
        assert problem is None
        assert sorted(r.id for r in deleted) == sorted(doomed)
        assert len(store) == 10
        assert not any((tmp_path / "images" / f"{i}.png").exists() for i in doomed)
        assert not any((tmp_path / "thumbs" / f"{i}.webp").exists() for i in doomed)
        changes = store.changes_since(version)
        assert changes is not None and sorted(c.before.id for c in changes if c.before) == sorted(doomed)
    finally:
        store.close()
    again = opened(tmp_path)
    try:
        assert len(again) == 10
    finally:
        again.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
async def test_deleting_many_on_a_read_only_folder_keeps_every_image_and_says_why(tmp_path: Path) -> None:
    ids = fill(tmp_path, 5)
    store = opened(tmp_path)
    os.chmod(tmp_path / "images", 0o555)
    try:
        deleted, problem = await store.delete_many(ids)
        assert deleted == []
        assert problem is not None and "not writable" in problem
        assert len(store) == 5
    finally:
        os.chmod(tmp_path / "images", 0o755)
        store.close()


async def test_a_view_far_behind_the_change_log_is_told_to_rebuild(tmp_path: Path) -> None:
    store = opened(tmp_path)
    try:
        start = store.version
        cat = await store.add(picture(), origin=ImageOrigin.UPLOAD, name="cat.png")
        assert [c.after.id for c in store.changes_since(start) or [] if c.after] == [cat.id]
        assert store.changes_since(store.version) == []
        for _ in range(CHANGE_LOG // 2 + 1):
            await store.set_favourite(cat.id, True)
            await store.set_favourite(cat.id, False)
        assert store.changes_since(start) is None
        assert store.changes_since(store.version - 1) is not None
    finally:
        store.close()


def test_today_starts_at_local_midnight() -> None:
    now = time.mktime((2026, 12, 3, 15, 30, 0, 0, 0, -1))
    assert period_start(Period.TODAY, now) == time.mktime((2026, 12, 3, 0, 0, 0, 0, 0, -1))
    assert period_start(Period.ANY, now) is None
    assert period_start(Period.WEEK, now) == now - 7 * 86400
