"""The SQLite database file: one connection, schema migrations, thread-safe calls.

Callers on the event loop go through ``asyncio.to_thread``; start-up code may call directly.
Migrations are numbered by ``PRAGMA user_version`` so later releases (job history, queue)
append to ``MIGRATIONS`` and never edit an earlier entry. Each runs in one transaction with its
version bump: a migration that fails is rolled back whole and ``open`` raises ``MigrationFailed``.
Must not import nicegui.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

MIGRATIONS: tuple[str, ...] = (
    # 1: gallery images; files live in images/<id>.<ext> and thumbs/<id>.webp
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        origin TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        prompt TEXT,
        parent_id TEXT,
        provider TEXT,
        quality TEXT
    );
    CREATE INDEX images_created ON images (created_at);
    """,
    # 2: the job journal (every job's spec and lifecycle), results tied to their job, learned
    #    durations and app settings (e.g. the queue's paused state)
    """
    ALTER TABLE images ADD COLUMN job_id TEXT;
    CREATE UNIQUE INDEX images_job ON images (job_id) WHERE job_id IS NOT NULL;
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        prompt TEXT NOT NULL,
        quality TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT,
        source_image_id TEXT,
        width INTEGER,
        height INTEGER,
        stage TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        message TEXT NOT NULL DEFAULT '',
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        duration REAL,
        result_image_id TEXT,
        queue_order REAL NOT NULL,
        retry_of TEXT
    );
    CREATE INDEX jobs_created ON jobs (created_at);
    CREATE INDEX jobs_stage ON jobs (stage, queue_order);
    CREATE TABLE durations (
        provider TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        quality TEXT NOT NULL,
        size_bucket TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL,
        mean REAL NOT NULL,
        PRIMARY KEY (provider, model, kind, quality, size_bucket)
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: a hosted studio: who started each job, and the signed-in browser sessions
    """
    ALTER TABLE jobs ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 4: favourites (a star on a gallery card)
    """
    ALTER TABLE images ADD COLUMN favourite INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: the provider's variant a job runs (a ComfyUI workflow), "" for its default
    """
    ALTER TABLE jobs ADD COLUMN variant TEXT NOT NULL DEFAULT '';
    """,
    # 6: a failed job's error as structure (kind, provider, HTTP status, the server's code)
    """
    ALTER TABLE jobs ADD COLUMN failure_kind TEXT;
    ALTER TABLE jobs ADD COLUMN failure_provider TEXT;
    ALTER TABLE jobs ADD COLUMN failure_status INTEGER;
    ALTER TABLE jobs ADD COLUMN failure_code TEXT;
    CREATE INDEX jobs_failure ON jobs (failure_kind) WHERE failure_kind IS NOT NULL;
    """,
    # 7: region edits (the mask's id), batches (one prompt over several images), the seed and
    # the Advanced settings
    """
    ALTER TABLE jobs ADD COLUMN mask TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN batch TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN seed INTEGER;
    ALTER TABLE jobs ADD COLUMN negative_prompt TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN steps INTEGER;
    ALTER TABLE jobs ADD COLUMN guidance REAL;
    ALTER TABLE jobs ADD COLUMN strength REAL;
    """,
    # 8: variations: a job may make several images (``job_slot`` 0, 1, … of its ``variations``)
    """
    ALTER TABLE images ADD COLUMN job_slot INTEGER NOT NULL DEFAULT 0;
    DROP INDEX images_job;
    CREATE UNIQUE INDEX images_job_slot ON images (job_id, job_slot) WHERE job_id IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN variations INTEGER NOT NULL DEFAULT 1;
    """,
)


class MigrationFailed(RuntimeError):
    """A schema migration failed; it was rolled back and the database left as it was."""


class Database:
    """A SQLite file in WAL mode behind a lock; every call is short and synchronous.

    Usage: ``db = Database(path); db.open(); db.execute('INSERT ...', (...))``
    """

    def __init__(self, path: Path, *, migrations: Sequence[str] = MIGRATIONS) -> None:
        self.path = path
        self._migrations = tuple(migrations)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        with self._lock:
            cursor = self._connection.execute(sql, params)
            return cursor.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._connection.execute(sql, params))

    def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run several statements in one transaction: all or nothing."""
        with self._lock:
            conn = self._connection
            conn.execute("BEGIN")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    def _migrate(self) -> None:
        with self._lock:
            conn = self._connection
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(self._migrations[version:], start=version + 1):
                try:
                    # executescript stops at the first failing statement with the transaction
                    # still open; the rollback below is what makes the migration all or nothing.
                    conn.executescript(
                        f"BEGIN IMMEDIATE;\n{script}\n;\nPRAGMA user_version = {number};\nCOMMIT;"
                    )
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise MigrationFailed(
                        f"Could not upgrade the database {self.path} to version {number}: migration "
                        f"{number} failed ({exc}). It was rolled back; the database is still at "
                        f"version {number - 1}."
                    ) from exc
