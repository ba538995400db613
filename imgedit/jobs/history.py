"""Job history: a read-only query API over the journal's ``jobs`` table, plus deleting a row.

The journal (``imgedit/jobs/journal.py``) is the only writer of job rows; this module reads
them for the /history page and removes the rows a user deletes. Every call is synchronous and
short; callers on the event loop go through ``asyncio.to_thread``. Pages are keyset-paginated
on ``(created_at, id)``, newest first, so the thousandth page costs what the first does.
Must not import nicegui.

Usage::

    first = page(db, status={JobStage.FAILED}, search="sepia")
    more = page(db, status={JobStage.FAILED}, search="sepia", before=first.next_cursor)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from imgedit.database import Database
from imgedit.jobs.journal import settings_of
from imgedit.jobs.model import Failure, FailureKind, JobSpec, JobStage
from imgedit.models import ImageId, JobId, JobKind, Quality

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

_COLUMNS = (
    "id, kind, prompt, quality, provider, model, source_image_id, width, height, stage, attempt, "
    "message, error, created_at, started_at, finished_at, duration, result_image_id, retry_of, started_by, "
    "failure_kind, failure_provider, failure_status, failure_code, variant, mask, seed, negative_prompt, "
    "steps, guidance, strength, variations"
)
_FINISHED = tuple(stage.value for stage in JobStage if stage.is_finished)


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryRow:
    """One job as the journal last wrote it. Unknown values are ``None``."""

    id: JobId
    kind: JobKind
    prompt: str
    quality: Quality
    provider: str
    model: str | None
    source_image_id: ImageId | None
    width: int | None
    height: int | None
    stage: JobStage
    attempt: int
    message: str
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration: float | None
    """Seconds the job ran (None while it has not finished, or if it never started)."""
    result_image_id: ImageId | None
    retry_of: JobId | None
    started_by: str = ""
    """The signed-in name of whoever started it ("" when the studio has no password)."""
    variant: str = ""
    """The provider's variant it ran (a ComfyUI workflow); "" for the default."""
    mask: str = ""
    """A region edit's mask id (``ImageStore.read_mask``); "" for the whole image."""
    seed: int | None = None
    """The seed it ran with, where its provider takes one."""
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    variations: int = 1
    """How many results it asked for (siblings of ``result_image_id``, the first)."""
    failure: Failure | None = None
    """A failed job's error as structure (kind, provider, HTTP status, code); None otherwise
    (and for jobs that failed before imgedit kept it)."""

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    @property
    def spec(self) -> JobSpec:
        """What it was asked to do, to fill a dialog that runs it again."""
        return JobSpec(
            kind=self.kind,
            prompt=self.prompt,
            quality=self.quality,
            provider=self.provider,
            source_image_id=self.source_image_id,
            size=self.size,
            model=self.model or "",
            started_by=self.started_by,
            variant=self.variant,
            mask=self.mask,
            seed=self.seed,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            guidance=self.guidance,
            strength=self.strength,
            variations=self.variations,
        )


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: strictly older than this (created_at, id)."""

    created_at: float
    id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryPage:
    rows: tuple[HistoryRow, ...]
    total: int
    """How many jobs match the filters, over every page."""
    next_cursor: Cursor | None
    """Pass as ``before`` for the next page; None on the last one."""


def page(
    db: Database,
    *,
    status: Collection[JobStage | str] | None = None,
    provider: str | None = None,
    search: str | None = None,
    failure: Collection[FailureKind | str] | None = None,
    status_code: int | None = None,
    before: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> HistoryPage:
    """Jobs matching every given filter, newest first, at most ``limit`` of them.

    ``status``: stages to keep (None or empty: all). ``search``: text the prompt, the error
    message or the server's error code contains (case-insensitive for ASCII; ``%``, ``_`` and
    ``\\`` are matched as themselves). ``failure``: kinds of failure to keep (None or empty:
    any job). ``status_code``: the HTTP status a failed job's provider answered.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    where, params = _filters(
        status=status, provider=provider, search=search, failure=failure, status_code=status_code
    )
    total = db.query(f"SELECT COUNT(*) FROM jobs{_where(where)}", params)[0][0]
    if before is not None:
        # Written as a range on created_at first, so SQLite walks the jobs_created index from
        # the cursor on instead of skipping every newer row.
        where = [*where, "created_at <= ? AND (created_at < ? OR id < ?)"]
        params = [*params, before.created_at, before.created_at, before.id]
    rows = db.query(
        f"SELECT {_COLUMNS} FROM jobs{_where(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
        [*params, limit + 1],
    )
    found = tuple(_from_row(row) for row in rows[:limit])
    last = found[-1] if found else None
    more = len(rows) > limit and last is not None
    return HistoryPage(
        rows=found, total=int(total), next_cursor=Cursor(last.created_at, last.id) if more and last else None
    )


def get(db: Database, job_id: str) -> HistoryRow | None:
    rows = db.query(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
    return _from_row(rows[0]) if rows else None


def delete(db: Database, job_id: str) -> bool:
    """Remove a finished job's row; True if one went. A queued or running job is left alone:
    its next stage change would write the row again."""
    placeholders = ", ".join("?" for _ in _FINISHED)
    changed = db.execute(f"DELETE FROM jobs WHERE id = ? AND stage IN ({placeholders})", (job_id, *_FINISHED))
    return changed > 0


def providers(db: Database) -> list[str]:
    """Every provider name that appears in the history, sorted, for the filter."""
    return [row[0] for row in db.query("SELECT DISTINCT provider FROM jobs ORDER BY provider")]


def failure_kinds(db: Database) -> list[FailureKind]:
    """Every kind of failure that appears in the history, in the enum's order, for the filter."""
    found = {
        row[0] for row in db.query("SELECT DISTINCT failure_kind FROM jobs WHERE failure_kind IS NOT NULL")
    }
    return [kind for kind in FailureKind if kind.value in found]


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``, with the wildcards in ``text`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(
    *,
    status: Collection[JobStage | str] | None,
    provider: str | None,
    search: str | None,
    failure: Collection[FailureKind | str] | None = None,
    status_code: int | None = None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if status:
        stages = sorted({JobStage(s).value for s in status})
        where.append(f"stage IN ({', '.join('?' for _ in stages)})")
        params.extend(stages)
    if provider:
        where.append("provider = ?")
        params.append(provider)
    if failure:
        kinds = sorted({FailureKind(k).value for k in failure})
        where.append(f"failure_kind IN ({', '.join('?' for _ in kinds)})")
        params.extend(kinds)
    if status_code is not None:
        where.append("failure_status = ?")
        params.append(int(status_code))
    if search and search.strip():
        pattern = like_pattern(search.strip())
        where.append(
            "prompt LIKE ? ESCAPE '\\' OR error LIKE ? ESCAPE '\\' OR failure_code LIKE ? ESCAPE '\\'"
        )
        params.extend((pattern, pattern, pattern))
    return where, params


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(f'({c})' for c in conditions)}" if conditions else ""


def _from_row(row: Any) -> HistoryRow:
    return HistoryRow(
        id=JobId(row["id"]),
        kind=JobKind(row["kind"]),
        prompt=row["prompt"],
        quality=Quality(row["quality"]),
        provider=row["provider"],
        model=row["model"],
        source_image_id=ImageId(row["source_image_id"]) if row["source_image_id"] else None,
        width=row["width"],
        height=row["height"],
        stage=JobStage(row["stage"]),
        attempt=int(row["attempt"]),
        message=row["message"] or "",
        error=row["error"],
        created_at=float(row["created_at"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration=row["duration"],
        result_image_id=ImageId(row["result_image_id"]) if row["result_image_id"] else None,
        retry_of=JobId(row["retry_of"]) if row["retry_of"] else None,
        started_by=row["started_by"] or "",
        failure=_failure(row),
        **settings_of(row),
    )


def _failure(row: Any) -> Failure | None:
    try:
        kind = FailureKind(row["failure_kind"])
    except ValueError:  # NULL (not failed, or failed before migration 6) or a kind since renamed
        return None
    status = row["failure_status"]
    return Failure(
        kind=kind,
        provider=row["failure_provider"],
        status=int(status) if status is not None else None,
        code=row["failure_code"],
    )
