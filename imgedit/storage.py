"""The gallery's images: files on disk, one row each in SQLite, an in-memory index for reads.

Layout under the data dir: ``images/<id>.<ext>`` (originals and results), ``thumbs/<id>.webp``,
``imgedit.sqlite3``. Files are addressed by id only; no user-given path reaches the filesystem.
Writes run in worker threads and are durable before they are visible: ``*.tmp``, fsync, replace,
fsync the folder, for the image and then its thumbnail, and only then the row commits. So after
a power loss a row always has its files; files without a row are swept at the next ``open``.
A disk that refuses a write (full, read-only) becomes ``StorageFailed`` with nothing left behind.
Reads of the index are plain lookups on the event loop: a dict by id and a list kept newest
first, so a page of a 10,000-image gallery (``page``) costs what the page costs. Every change
bumps ``version`` and goes into a short log (``changes_since``), so a view applies what changed
without looking at the whole gallery. ``open`` loads the rows in one query and touches no file;
``check_files`` (run in the background once the server is up) hides rows whose file has gone
and sweeps files no row claims. Must not import nicegui.

Usage::

    store = ImageStore(Path('data')); store.open()
    record = await store.add(png_bytes, origin=ImageOrigin.UPLOAD, name='cat.png')
    store.list()  # newest first
    store.page(ImageFilter(text="cat"), after=None, limit=60)
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import dataclasses
import errno
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from imgedit import cpu, imaging
from imgedit.database import Database
from imgedit.errors import NotFound, StorageFailed
from imgedit.models import ImageId, ImageOrigin, ImageRecord, JobId, Quality, is_valid_id, new_image_id
from imgedit.search import ImageFilter, haystack

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, created_at, origin, width, height, format, name, prompt, parent_id, provider, quality, job_id, favourite, "
    "job_slot"
)
CHANGE_LOG = 4096
"""Changes kept for ``changes_since``; a view further behind than this rebuilds instead."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the gallery: added (no ``before``), removed (no ``after``) or altered."""

    version: int
    before: ImageRecord | None
    after: ImageRecord | None


def order_key(record: ImageRecord) -> tuple[float, str]:
    """The gallery's order, newest first; ties (same clock tick) broken by id, stably."""
    return (-record.created_at, record.id)


Fsync = Callable[[int], None]
"""Flushes a file descriptor to the disk: ``os.fsync``, or a test's recorder."""
Opener = Callable[[str, int], int]
"""Opens a path with flags and returns a descriptor, as ``open(..., opener=...)`` expects."""


class ImageStore:
    """Owns the image files and their rows; the only code that touches ``images/`` and ``thumbs/``."""

    def __init__(self, data_dir: Path, *, fsync: Fsync = os.fsync, opener: Opener | None = None) -> None:
        self.data_dir = data_dir
        self._fsync = fsync
        self._opener = opener
        self.images_dir = data_dir / "images"
        self.thumbs_dir = data_dir / "thumbs"
        self.masks_dir = data_dir / "masks"
        """Region edits' masks (``imgedit.masks``' kept form), named by their content's hash."""
        self.db = Database(data_dir / "imgedit.sqlite3")
        self._records: dict[ImageId, ImageRecord] = {}
        self._order: list[ImageRecord] = []
        """The shown images, newest first (``order_key``)."""
        self._text: dict[ImageId, str] = {}
        """Each shown image's ``haystack``, so a search does not case-fold 10,000 prompts again."""
        self._by_job: dict[JobId, dict[int, ImageRecord]] = {}
        """Each job's images by slot (a job of several variations has several)."""
        self._undoing: set[asyncio.Future[None]] = set()
        self._loaded: list[ImageRecord] = []
        """The rows ``open`` read, for ``check_files`` to look for on disk."""
        self._opened_wall = 0.0
        self._writing: set[str] = set()
        """The ids whose files this run wrote or writes: ``check_files`` never removes them,
        whatever their files' times say (a kernel may stamp a file up to a clock tick before
        ``time.time()``). Kept for the run (32 characters an image): a sweep that read the rows
        before a write's row went in may look at its file after the write is over."""
        self._sweeping = threading.Lock()
        """Held while the sweep decides on a file and removes it, and while a write claims its id."""
        self._changes: deque[Change] = deque(maxlen=CHANGE_LOG)
        self._checking: asyncio.Task[None] | None = None
        self.version = 0
        """Bumped on every change, so views can tell cheaply whether to look again."""

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders and database and load the index: one query, no file touched.

        Start-up time does not grow with the gallery's files; ``check_files`` looks at them.
        """
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        self.db.open()
        self._opened_wall = time.time()
        records = [_from_row(row) for row in self.db.query(f"SELECT {_COLUMNS} FROM images")]
        records.sort(key=order_key)
        self._loaded = records
        self._order = list(records)
        for record in records:
            self._records[record.id] = record
            self._index_job(record)
        self.version += 1

    def check_in_background(self) -> None:
        """Start ``check_files`` on the running loop (the server answers meanwhile)."""
        self._checking = asyncio.get_running_loop().create_task(self._check_logged())

    async def stop_checking(self) -> None:
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking

    async def _check_logged(self) -> None:
        try:
            await self.check_files()
        except Exception:
            log.exception("could not check the gallery's files; every image stays shown")

    async def check_files(self) -> None:
        """Look for the files of the rows ``open`` loaded (each folder listed once, all of it in a
        worker thread): a row whose image file is gone drops out of the gallery (the row is kept,
        in case the file comes back); a file of ours that no row claims (a ``*.tmp``, or a write
        the row never followed, from before this start) is removed."""
        loaded, self._loaded = self._loaded, []
        missing = await asyncio.to_thread(self._look_for_files, loaded, self._opened_wall)
        for image_id in missing:
            self.forget_missing(image_id)

    def _look_for_files(self, loaded: builtins.list[ImageRecord], before: float) -> builtins.list[ImageId]:
        images, thumbs = _file_names(self.images_dir), _file_names(self.thumbs_dir)
        missing = [r.id for r in loaded if f"{r.id}.{r.extension}" not in images]
        # Every committed row claims its files; a write after this query has files newer than
        # ``before``, which the sweep leaves alone.
        rows = self.db.query("SELECT id, format FROM images")
        self._sweep(
            self.images_dir, images - {f"{row['id']}.{_extension(row['format'])}" for row in rows}, before
        )
        self._sweep(self.thumbs_dir, thumbs - {f"{row['id']}.webp" for row in rows}, before)
        return missing

    def _sweep(self, folder: Path, names: set[str], before: float) -> None:
        """Remove files this store made but no row claims, left from before ``before``; anything
        else in the folder is not ours. A file this run is writing (its file comes before its row)
        stays: it is claimed before its file exists, and the claim is checked right before the
        removal under the same lock. Its time is no proof: the kernel may stamp a new file a clock
        tick earlier than ``before``. (The time still keeps a fresh file of another run.)"""
        for name in names:
            if not (name.endswith(".tmp") or is_valid_id(name.partition(".")[0])):
                continue
            path = folder / name
            with self._sweeping:
                if name.partition(".")[0] in self._writing:
                    continue
                try:
                    if path.stat().st_mtime >= before:
                        continue
                    log.info("removing %s: no image row refers to it", path)
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("could not remove %s: %s", path, exc)

    def close(self) -> None:
        self.db.close()

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[ImageRecord]:
        """Every image, newest first."""
        return list(self._order)

    def page(self, flt: ImageFilter, *, after: ImageRecord | None, limit: int) -> builtins.list[ImageRecord]:
        """Up to ``limit`` images that match, newest first, starting below ``after`` (None: the top)."""
        start = 0 if after is None else bisect.bisect_right(self._order, order_key(after), key=order_key)
        found: list[ImageRecord] = []
        everything = not flt.active
        text = self._text
        for record in self._order[start:] if start else self._order:
            if everything or flt.matches(record, text.get(record.id)):
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def count(self, flt: ImageFilter) -> int:
        """How many images match (every image when nothing is filtered)."""
        if not flt.active:
            return len(self._order)
        text = self._text
        return sum(1 for r in self._order if flt.matches(r, text.get(r.id)))

    def providers(self) -> builtins.list[str]:
        """The providers that made the gallery's images, by name, for the provider filter."""
        return sorted({r.provider for r in self._order if r.provider})

    def changes_since(self, version: int) -> builtins.list[Change] | None:
        """What changed after ``version``, oldest first; None when that is further back than the
        log remembers (the caller rebuilds its view)."""
        if version == self.version:
            return []
        found: list[Change] = []
        for change in reversed(self._changes):
            if change.version <= version:
                break
            found.append(change)
        found.reverse()
        if not found or found[0].version != version + 1:
            return None  # further back than the log, or a change that was not logged
        return found

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._records

    def get(self, image_id: str) -> ImageRecord:
        record = self._records.get(ImageId(image_id)) if is_valid_id(image_id) else None
        if record is None:
            raise NotFound("That image is no longer in the gallery.")
        return record

    def path_of(self, record: ImageRecord) -> Path:
        return self.images_dir / f"{record.id}.{record.extension}"

    def thumb_path_of(self, record: ImageRecord) -> Path:
        return self.thumbs_dir / f"{record.id}.webp"

    async def read_bytes(self, image_id: str) -> bytes:
        record = self.get(image_id)
        try:
            return await asyncio.to_thread(self.path_of(record).read_bytes)
        except FileNotFoundError:
            self.forget_missing(record.id)
            raise NotFound("That image's file is missing from the data folder.") from None

    async def save_mask(self, kept: bytes) -> str:
        """Keep a mask (already in ``imgedit.masks``' kept form) durably; its id (content hash).
        A job names its mask by this id, so a restart finds it again."""
        from imgedit.masks import mask_id

        name = mask_id(kept)
        path = self.masks_dir / f"{name}.png"

        def write() -> None:
            with _storage_errors("Could not keep the selected area"):
                self.masks_dir.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    self._write_file(path, kept)

        await asyncio.to_thread(write)
        return name

    async def read_mask(self, name: str) -> bytes:
        """A kept mask's bytes; ``NotFound`` if the id is not a mask's (or its file is gone)."""
        if len(name) != 64 or not all(c in "0123456789abcdef" for c in name):
            raise NotFound("That selected area is not known.")
        try:
            return await asyncio.to_thread((self.masks_dir / f"{name}.png").read_bytes)
        except FileNotFoundError:
            raise NotFound(
                "The selected area's file is missing from the data folder; select it again."
            ) from None

    def made_by(self, job_id: JobId, slot: int = 0) -> ImageRecord | None:
        """The image a job made (its variation ``slot``) and the gallery still shows, if any."""
        record = self._by_job.get(job_id, {}).get(slot)
        return record if record is not None and record.id in self._records else None

    def results_of(self, job_id: JobId) -> builtins.list[ImageRecord]:
        """Every image a job made that the gallery still shows, by slot (its variations)."""
        slots = self._by_job.get(job_id, {})
        return [slots[slot] for slot in sorted(slots) if slots[slot].id in self._records]

    def siblings(self, record: ImageRecord) -> builtins.list[ImageRecord]:
        """The shown images its job made, itself included, by slot; just itself for an upload."""
        if record.job_id is None:
            return [record]
        return self.results_of(record.job_id) or [record]

    def _index_job(self, record: ImageRecord) -> None:
        if record.job_id is not None:
            self._by_job.setdefault(record.job_id, {})[record.job_slot] = record

    def forget_missing(self, image_id: ImageId) -> None:
        """Hide an image whose file has gone (deleted behind the app's back): its card drops out
        everywhere; the row stays, so the image comes back if the file does."""
        record = self._records.get(image_id)
        if record is not None:
            log.warning("image %s has no file any more; leaving it out of the gallery", image_id)
            self._hide(record)

    # -- the in-memory index -------------------------------------------------------------------

    def _show(self, record: ImageRecord) -> None:
        self._records[record.id] = record
        bisect.insort(self._order, record, key=order_key)
        self._text[record.id] = haystack(record)
        self._index_job(record)
        self._changed(None, record)

    def _hide(self, record: ImageRecord) -> None:
        if self._records.pop(record.id, None) is None:
            return
        index = bisect.bisect_left(self._order, order_key(record), key=order_key)
        if index < len(self._order) and self._order[index].id == record.id:
            del self._order[index]
        self._text.pop(record.id, None)
        self._changed(record, None)

    def _replace(self, before: ImageRecord, after: ImageRecord) -> None:
        """Swap a record for an altered copy (same id and time, so the same place)."""
        if self._records.get(before.id) is None:
            return
        self._records[after.id] = after
        index = bisect.bisect_left(self._order, order_key(before), key=order_key)
        if index < len(self._order) and self._order[index].id == before.id:
            self._order[index] = after
        self._index_job(after)
        self._changed(before, after)

    def _changed(self, before: ImageRecord | None, after: ImageRecord | None) -> None:
        self.version += 1
        self._changes.append(Change(self.version, before, after))

    # -- writing -----------------------------------------------------------------------------

    async def add(
        self,
        data: bytes,
        *,
        origin: ImageOrigin,
        name: str = "",
        prompt: str | None = None,
        parent_id: ImageId | None = None,
        provider: str | None = None,
        quality: Quality | None = None,
        job_id: JobId | None = None,
        job_slot: int = 0,
        created_at: float | None = None,
    ) -> ImageRecord:
        """Validate ``data``, write it with its thumbnail and row, and index it.

        Cancelling the caller leaves nothing behind: the worker thread is waited for and undone.
        Raises ``InvalidRequest`` for data that is not a usable image. A ``job_id`` that already
        has its image in ``job_slot`` (a resumed job) gets that image back; nothing is written
        twice. ``created_at`` (default now) places it in the gallery's order: a job's later
        variations sit right after its first.
        """
        if job_id is not None and (existing := self.made_by(job_id, job_slot)) is not None:
            return existing
        details = _Details(
            origin=origin,
            name=name,
            prompt=prompt,
            parent_id=parent_id,
            provider=provider,
            quality=quality,
            job_id=job_id,
            job_slot=job_slot,
            created_at=created_at,
        )
        record, _note = await self._add(data, details)
        return record

    async def add_upload(self, data: bytes, *, name: str) -> tuple[ImageRecord, str]:
        """``add`` for a user's upload; also returns what was changed on the way in ("" if nothing)."""
        return await self._add(data, _Details(origin=ImageOrigin.UPLOAD, name=imaging.display_name(name)))

    async def _add(self, data: bytes, details: _Details) -> tuple[ImageRecord, str]:
        image_id = new_image_id()
        # Pixels in the image pool (cancelling here leaves nothing behind), files in a disk thread:
        # a disk thread never waits on image work, so disk calls never queue behind Pillow.
        prepared = await cpu.run(imaging.normalize_with_thumbnail, data, details.name or "the image")
        write = asyncio.ensure_future(asyncio.to_thread(self._write, image_id, prepared, details))
        try:
            record, note = await asyncio.shield(write)
        except asyncio.CancelledError:
            # The undo runs to its end even if the caller is cancelled again while it waits.
            undo = asyncio.ensure_future(self._undo(write, image_id))
            self._undoing.add(undo)
            undo.add_done_callback(self._undoing.discard)
            await asyncio.shield(undo)
            raise
        self._show(record)
        return record, note

    def add_sync(
        self, data: bytes, *, origin: ImageOrigin, name: str = "", prompt: str | None = None
    ) -> ImageRecord:
        """``add`` for start-up code that runs before the event loop serves anyone."""
        details = _Details(origin=origin, name=name, prompt=prompt)
        prepared = imaging.normalize_with_thumbnail(data, name or "the image")
        record, _note = self._write(new_image_id(), prepared, details)
        self._show(record)
        return record

    async def _undo(self, write: asyncio.Future[tuple[ImageRecord, str]], image_id: ImageId) -> None:
        with contextlib.suppress(Exception):
            await write
        try:
            await asyncio.to_thread(self._erase, image_id)
        except (OSError, sqlite3.Error):
            # Whatever stays is a file without a row (swept at the next start) or a row hidden
            # for want of its file; the caller was cancelled and has nobody to tell.
            log.warning("could not undo the cancelled save of image %s", image_id, exc_info=True)

    async def delete(self, image_id: str) -> ImageRecord:
        """Remove an image, its thumbnail and its row. Results made from it stay.

        The card drops out at once; if the disk refuses, it comes back and ``StorageFailed`` says why.
        """
        record = self.get(image_id)
        self._hide(record)
        try:
            with _storage_errors(f"Could not delete “{record.title}”"):
                await asyncio.to_thread(self._erase, record.id)
        except StorageFailed:
            self._show(record)
            raise
        return record

    async def delete_many(self, image_ids: Collection[str]) -> tuple[builtins.list[ImageRecord], str | None]:
        """Remove several images at once (their cards drop out at once, their rows go in one
        transaction). Returns what was deleted and, if the disk refused some, why; those come back.
        Ids no longer in the gallery are skipped."""
        records = [self._records[ImageId(i)] for i in dict.fromkeys(image_ids) if i in self._records]
        for record in records:
            self._hide(record)
        erased, problem = await asyncio.to_thread(self._erase_many, [r.id for r in records])
        deleted = [r for r in records if r.id in erased]
        for record in records:
            if record.id not in erased:
                self._show(record)
        return deleted, problem

    async def set_favourite(self, image_id: str, favourite: bool) -> ImageRecord:
        """Star or unstar an image; every view sees it at once. The disk's refusal puts it back
        and raises ``StorageFailed``."""
        record = self.get(image_id)
        if record.favourite == favourite:
            return record
        changed = dataclasses.replace(record, favourite=favourite)
        self._replace(record, changed)
        try:
            with _storage_errors(f"Could not save the star of “{record.title}”"):
                await asyncio.to_thread(
                    self.db.execute,
                    "UPDATE images SET favourite = ? WHERE id = ?",
                    (int(favourite), record.id),
                )
        except BaseException:
            current = self._records.get(record.id)
            if current is not None:
                self._replace(current, dataclasses.replace(current, favourite=record.favourite))
            raise
        return changed

    # -- worker-thread parts -------------------------------------------------------------------

    def _write(
        self, image_id: ImageId, prepared: tuple[imaging.NormalizedImage, bytes], details: _Details
    ) -> tuple[ImageRecord, str]:
        """Files then row, for an image already checked and thumbnailed (``normalize_with_thumbnail``)."""
        normalized, thumb = prepared
        record = ImageRecord(
            id=image_id,
            created_at=time.time() if details.created_at is None else details.created_at,
            width=normalized.width,
            height=normalized.height,
            format=normalized.format,
            origin=details.origin,
            name=details.name,
            prompt=details.prompt,
            parent_id=details.parent_id,
            provider=details.provider,
            quality=details.quality,
            job_id=details.job_id,
            job_slot=details.job_slot,
        )
        failure = f"Could not save {details.what}"
        with self._sweeping:
            self._writing.add(image_id)
        try:
            with _storage_errors(failure):
                self._write_file(self.path_of(record), normalized.data)
            with _storage_errors(failure):
                self._write_file(self.thumb_path_of(record), thumb)
                self._insert(record)
        except BaseException:
            # The row is the last step, so a failed write has at most files to take back.
            self._remove_files(image_id)
            raise
        return record, normalized.note

    def _insert(self, record: ImageRecord) -> None:
        if record.job_id is not None:
            # A row of the same job and slot whose file had gone (so ``add`` did not find it)
            # makes way.
            self.db.execute(
                "DELETE FROM images WHERE job_id = ? AND job_slot = ?", (record.job_id, record.job_slot)
            )
        self.db.execute(
            f"INSERT INTO images ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.created_at,
                record.origin.value,
                record.width,
                record.height,
                record.format,
                record.name,
                record.prompt,
                record.parent_id,
                record.provider,
                record.quality.value if record.quality else None,
                record.job_id,
                int(record.favourite),
                record.job_slot,
            ),
        )

    def _write_file(self, path: Path, data: bytes) -> None:
        """Atomic and durable: the bytes reach the disk under a temporary name, then the name."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb", opener=self._opener) as file:
                file.write(data)
                file.flush()
                self._fsync(file.fileno())
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        self._sync_folder(path.parent)

    def _sync_folder(self, folder: Path) -> None:
        """Make a rename in ``folder`` durable (POSIX keeps names in the directory's own data)."""
        if os.name == "nt":
            return  # Windows cannot open a directory for fsync; NTFS journals the rename itself
        fd = os.open(folder, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def _remove_files(self, image_id: ImageId) -> None:
        """Best effort: a folder that refused the write may refuse this too; then the next
        start sweeps what is left, as it has no row."""
        for folder in (self.images_dir, self.thumbs_dir):
            for path in folder.glob(f"{image_id}.*"):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("could not remove %s: %s", path, exc)

    def _erase(self, image_id: ImageId) -> None:
        self._unlink(image_id)
        self.db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def _unlink(self, image_id: ImageId) -> None:
        for folder in (self.images_dir, self.thumbs_dir):
            for path in folder.glob(f"{image_id}.*"):
                path.unlink(missing_ok=True)

    def _erase_many(self, image_ids: builtins.list[ImageId]) -> tuple[set[ImageId], str | None]:
        erased: list[ImageId] = []
        problem: str | None = None
        for image_id in image_ids:
            try:
                with _storage_errors(f"Could not delete {len(image_ids) - len(erased)} of the images"):
                    self._unlink(image_id)
            except StorageFailed as exc:
                problem = str(exc)
                break
            erased.append(image_id)
        try:
            with _storage_errors("Could not delete the images"):
                self.db.execute_many(("DELETE FROM images WHERE id = ?", (i,)) for i in erased)
        except StorageFailed as exc:
            # Files gone, rows kept: the rows stay hidden (no file) and the next start forgets nothing.
            return set(), str(exc)
        return set(erased), problem


@dataclass(frozen=True, kw_only=True, slots=True)
class _Details:
    """What is known of a new image besides its pixels."""

    origin: ImageOrigin
    name: str = ""
    prompt: str | None = None
    parent_id: ImageId | None = None
    provider: str | None = None
    quality: Quality | None = None
    job_id: JobId | None = None
    job_slot: int = 0
    created_at: float | None = None

    @property
    def what(self) -> str:
        """The image as a message names it: an upload by its file name, anything else as "the result"."""
        return f"“{self.name}”" if self.origin is ImageOrigin.UPLOAD and self.name else "the result"


@contextlib.contextmanager
def _storage_errors(failure: str) -> Iterator[None]:
    """Translate the disk's refusals (from the files or from SQLite) into ``StorageFailed``.

    ``failure`` opens the message: "Could not save “cat.png”" + ": the disk is full."
    """
    try:
        yield
    except OSError as exc:
        log.warning("%s: %s", failure, exc)
        raise StorageFailed(f"{failure}: {_os_reason(exc)}") from exc
    except sqlite3.OperationalError as exc:
        reason = _sqlite_reason(exc)
        if reason is None:
            raise
        log.warning("%s: %s", failure, exc)
        raise StorageFailed(f"{failure}: {reason}") from exc


_NOT_WRITABLE = "the data folder is not writable."
_OS_REASONS = {
    errno.ENOSPC: "the disk is full.",
    errno.EDQUOT: "the disk quota is used up.",
    errno.EROFS: _NOT_WRITABLE,
    errno.EACCES: _NOT_WRITABLE,
    errno.EPERM: _NOT_WRITABLE,
    errno.ENOENT: "the data folder is missing.",
}


def _os_reason(exc: OSError) -> str:
    if exc.errno in _OS_REASONS:
        return _OS_REASONS[exc.errno]
    return f"the disk reported an error ({exc.strerror or exc})."


# SQLite's primary result codes (the low byte of ``sqlite_errorcode``) that mean the disk said no.
_SQLITE_REASONS = {
    5: "another program is holding the database; try again.",
    13: "the disk is full.",
    8: _NOT_WRITABLE,
    14: _NOT_WRITABLE,
    10: "the disk reported an error.",
}


def _sqlite_reason(exc: sqlite3.OperationalError) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else _SQLITE_REASONS.get(code & 0xFF)


def _file_names(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def _extension(image_format: str) -> str:
    return {"JPEG": "jpg"}.get(image_format, image_format.lower())


_ORIGINS = {origin.value: origin for origin in ImageOrigin}
_QUALITIES = {quality.value: quality for quality in Quality}


def _from_row(row: sqlite3.Row) -> ImageRecord:
    """A record from a row of ``_COLUMNS``, by position: start-up makes 10,000 of these."""
    (
        image_id,
        created_at,
        origin,
        width,
        height,
        image_format,
        name,
        prompt,
        parent,
        provider,
        quality,
        job,
        fav,
        slot,
    ) = row
    return ImageRecord(
        id=image_id,
        created_at=created_at,
        origin=_ORIGINS[origin],
        width=width,
        height=height,
        format=image_format,
        name=name,
        prompt=prompt,
        parent_id=parent or None,
        provider=provider,
        quality=_QUALITIES[quality] if quality else None,
        job_id=job or None,
        favourite=bool(fav),
        job_slot=slot,
    )
