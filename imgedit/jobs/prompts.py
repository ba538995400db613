"""Prompts typed before: the newest distinct prompts of a kind, read from the journal's ``jobs``.

For the dialog's "recent" chips. Synchronous and short; callers on the event loop go through
``asyncio.to_thread``. Must not import nicegui.

Usage::

    recent(db, JobKind.EDIT)  # ['sepia and a vignette', 'blur 4', ...], newest first
"""

from __future__ import annotations

from imgedit.database import Database
from imgedit.models import JobKind

RECENT = 8
LOOK_BACK = 400
"""Rows read at most (newest first, along the created_at index): a history of a million jobs
costs what one of a thousand does, and eight distinct prompts are found long before that."""


def recent(db: Database, kind: JobKind, limit: int = RECENT) -> list[str]:
    """Up to ``limit`` distinct prompts of ``kind`` jobs, newest first."""
    rows = db.query(
        "SELECT prompt FROM jobs WHERE kind = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        (JobKind(kind).value, LOOK_BACK),
    )
    found: list[str] = []
    for row in rows:
        prompt = row["prompt"]
        if prompt and prompt not in found:
            found.append(prompt)
            if len(found) >= limit:
                break
    return found
