"""The job journal: every job's spec and lifecycle in SQLite, so a restart loses nothing.

One writer thread owns every write (rows are taken from the record on the event loop, written
in order off it), so the loop never waits for the disk and no two writes race. At start-up the
journal hands back the jobs that were queued or running when the process stopped (cleanly or
by ``kill -9``), in the order they were to run, plus settings such as the queue's paused state
and the learned durations. A write that fails (disk full) is logged and the job goes on.
Must not import nicegui.

Usage::

    journal = JobJournal(store.db)
    registry = JobRegistry(..., journal=journal)
    for row in journal.unfinished(): registry.submit(row.spec, job_id=row.id, ...)
    await journal.flush(); journal.close()
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from imgedit.database import Database
from imgedit.jobs.model import Failure, JobRecord, JobSpec, JobStage
from imgedit.models import ImageId, JobId, JobKind, Quality

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, kind, prompt, quality, provider, model, source_image_id, width, height, stage, attempt, message, "
    "error, created_at, started_at, finished_at, duration, result_image_id, queue_order, retry_of, started_by, "
    "variant, failure_kind, failure_provider, failure_status, failure_code, mask, batch, seed, "
    "negative_prompt, steps, guidance, strength, variations"
)
_UPSERT = (
    f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 34)}) "
    "ON CONFLICT(id) DO UPDATE SET stage=excluded.stage, attempt=excluded.attempt, "
    "message=excluded.message, error=excluded.error, started_at=excluded.started_at, "
    "finished_at=excluded.finished_at, duration=excluded.duration, "
    "result_image_id=excluded.result_image_id, queue_order=excluded.queue_order, "
    "failure_kind=excluded.failure_kind, failure_provider=excluded.failure_provider, "
    "failure_status=excluded.failure_status, failure_code=excluded.failure_code"
)
UNFINISHED = tuple(s.value for s in JobStage if not s.is_finished)


@dataclass(frozen=True, kw_only=True, slots=True)
class JournalRow:
    """A job as the journal kept it: enough to run it again or to show it as interrupted."""

    id: JobId
    spec: JobSpec
    stage: JobStage
    attempt: int
    created_at: float
    queue_order: float
    retry_of: JobId | None


class JobJournal:
    """Writes jobs, their queue order and settings through one thread; reads them at start-up."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-journal")
        self._closed = False

    # -- writing (from the event loop; returns at once) -----------------------------------------

    def save(self, record: JobRecord) -> None:
        """Record the job as it is now (called at submit and at every stage change)."""
        spec = record.spec
        width, height = spec.size or (None, None)
        duration = (
            record.finished_mono - record.started_mono
            if record.finished_mono is not None and record.started_mono is not None
            else None
        )
        row = (
            record.id,
            spec.kind.value,
            spec.prompt,
            spec.quality.value,
            spec.provider,
            spec.model,
            spec.source_image_id,
            width,
            height,
            record.stage.value,
            record.attempt,
            record.message,
            record.error,
            record.created_wall,
            record.started_wall,
            record.finished_wall,
            duration,
            record.result,
            record.order,
            record.retry_of,
            spec.started_by,
            spec.variant,
            *_failure_columns(record.failure),
            spec.mask,
            spec.batch,
            spec.seed,
            spec.negative_prompt,
            spec.steps,
            spec.guidance,
            spec.strength,
            spec.variations,
        )
        self._submit(self._db.execute, _UPSERT, row)

    def save_order(self, queued: Sequence[JobId]) -> None:
        """The queue's order after a move: position i is queue_order i, in one transaction."""
        statements = [("UPDATE jobs SET queue_order = ? WHERE id = ?", (i, j)) for i, j in enumerate(queued)]
        self._submit(self._db.execute_many, statements)

    def save_setting(self, key: str, value: str) -> None:
        self._submit(
            self._db.execute,
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def save_durations(self, rows: Iterable[tuple[str, str, str, str, str, int, float]]) -> None:
        statements = [
            (
                "INSERT INTO durations (provider, model, kind, quality, size_bucket, count, mean) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(provider, model, kind, quality, size_bucket) "
                "DO UPDATE SET count = excluded.count, mean = excluded.mean",
                row,
            )
            for row in rows
        ]
        if statements:
            self._submit(self._db.execute_many, statements)

    def mark_interrupted(self, ids: Sequence[JobId], message: str, finished_at: float) -> None:
        statements = [
            (
                "UPDATE jobs SET stage = ?, message = ?, finished_at = ? WHERE id = ?",
                (JobStage.INTERRUPTED.value, message, finished_at, job_id),
            )
            for job_id in ids
        ]
        self._submit(self._db.execute_many, statements)

    async def flush(self) -> None:
        """Wait until everything saved so far is on disk."""
        if not self._closed:
            await asyncio.wrap_future(self._writer.submit(lambda: None))

    def close(self) -> None:
        """Finish the writes under way; later saves are dropped (the process is stopping)."""
        self._closed = True
        self._writer.shutdown(wait=True)

    def _submit(self, write: Any, *args: Any) -> None:
        if self._closed:
            log.debug("job journal closed; a late write is dropped")
            return

        def run() -> None:
            try:
                write(*args)
            except (sqlite3.Error, OSError):
                log.warning("could not write to the job journal; the job goes on", exc_info=True)

        self._writer.submit(run)

    # -- reading (start-up, before serving) -------------------------------------------------------

    def unfinished(self) -> list[JournalRow]:
        """Jobs that were queued or running when the process stopped: running ones first, then
        the queue in its order."""
        marks = ", ".join("?" * len(UNFINISHED))
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM jobs WHERE stage IN ({marks}) "
            "ORDER BY started_at IS NULL, queue_order, created_at",
            UNFINISHED,
        )
        return [_row(r) for r in rows]

    def setting(self, key: str) -> str | None:
        rows = self._db.query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def durations(self) -> list[tuple[str, str, str, str, str, int, float]]:
        rows = self._db.query(
            "SELECT provider, model, kind, quality, size_bucket, count, mean FROM durations"
        )
        return [tuple(r) for r in rows]

    def next_order(self) -> float:
        rows = self._db.query("SELECT max(queue_order) AS top FROM jobs")
        top = rows[0]["top"] if rows else None
        return float(top) + 1 if top is not None else 0.0


def settings_of(row: Any) -> dict[str, Any]:
    """A jobs row's settings beyond prompt, quality and provider (variant, area, seed, Advanced,
    variations), as ``JobSpec`` (and ``history.HistoryRow``) name them."""
    return {
        "variant": row["variant"] or "",
        "mask": row["mask"] or "",
        "seed": int(row["seed"]) if row["seed"] is not None else None,
        "negative_prompt": row["negative_prompt"] or "",
        "steps": int(row["steps"]) if row["steps"] is not None else None,
        "guidance": float(row["guidance"]) if row["guidance"] is not None else None,
        "strength": float(row["strength"]) if row["strength"] is not None else None,
        "variations": int(row["variations"] or 1),
    }


def _row(row: sqlite3.Row) -> JournalRow:
    width, height = row["width"], row["height"]
    spec = JobSpec(
        kind=JobKind(row["kind"]),
        prompt=row["prompt"],
        quality=Quality(row["quality"]),
        provider=row["provider"],
        model=row["model"] or "",
        source_image_id=ImageId(row["source_image_id"]) if row["source_image_id"] else None,
        size=(int(width), int(height)) if width and height else None,
        started_by=row["started_by"] or "",
        batch=row["batch"] or "",
        **settings_of(row),
    )
    return JournalRow(
        id=JobId(row["id"]),
        spec=spec,
        stage=JobStage(row["stage"]),
        attempt=int(row["attempt"]),
        created_at=float(row["created_at"]),
        queue_order=float(row["queue_order"]),
        retry_of=JobId(row["retry_of"]) if row["retry_of"] else None,
    )


def _failure_columns(failure: Failure | None) -> tuple[str | None, str | None, int | None, str | None]:
    if failure is None:
        return None, None, None, None
    return failure.kind.value, failure.provider, failure.status, failure.code
