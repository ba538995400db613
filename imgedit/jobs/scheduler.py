"""The scheduler: queue order, the global slots, per-provider capacity, pause and moves.

It knows job ids and which provider each job needs, nothing else. A job starts when it is the
first queued job whose provider has room (so a local job is not held behind one waiting for a
busy Stable Diffusion server) and a global slot is free; a job waiting for its provider holds
no slot. Paused, nothing new starts; running jobs go on. Positions are computed in one pass.
Must not import nicegui.

Usage::

    scheduler = Scheduler(limit=4, capacity_of=lambda provider: None)
    scheduler.add(job_id, "local")
    for job_id in scheduler.start_ready(): ...   # now holding a slot
    scheduler.release(job_id)
"""

from __future__ import annotations

from collections.abc import Callable

from imgedit.models import JobId


class Scheduler:
    """Decides which queued job starts next; the registry runs them."""

    def __init__(self, *, limit: int, capacity_of: Callable[[str], int | None] = lambda _p: None) -> None:
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._limit = limit
        self._capacity_of = capacity_of
        self._queue: list[JobId] = []
        self._provider: dict[JobId, str] = {}
        self._running: dict[JobId, str] = {}
        self.paused = False

    # -- what it holds ---------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return self._limit

    def capacity_of(self, provider: str) -> int | None:
        """How many of ``provider``'s jobs may run at once; None: no limit of its own."""
        return self._capacity_of(provider)

    @property
    def queued(self) -> list[JobId]:
        """Queued jobs in the order they will be considered."""
        return list(self._queue)

    @property
    def running(self) -> int:
        return len(self._running)

    def holds_slot(self, job_id: JobId) -> bool:
        return job_id in self._running

    def positions(self) -> dict[JobId, int]:
        """1-based queue position of every queued job, in one pass."""
        return {job_id: index for index, job_id in enumerate(self._queue, start=1)}

    def waiting_for_provider(self) -> set[JobId]:
        """Queued jobs whose provider is at capacity: they wait for it, not for a global slot."""
        use = self._provider_use()
        return {j for j in self._queue if not self._has_room(self._provider[j], use)}

    # -- changes -------------------------------------------------------------------------

    def add(self, job_id: JobId, provider: str, *, front: bool = False) -> None:
        self._provider[job_id] = provider
        if front:
            self._queue.insert(0, job_id)
        else:
            self._queue.append(job_id)

    def remove(self, job_id: JobId) -> None:
        """Forget a job wherever it is (queued or holding a slot)."""
        if job_id in self._queue:
            self._queue.remove(job_id)
        self._running.pop(job_id, None)
        self._provider.pop(job_id, None)

    release = remove

    def start_ready(self) -> list[JobId]:
        """Take every job that may start now out of the queue; they hold a slot from here on."""
        if self.paused:
            return []
        started: list[JobId] = []
        use = self._provider_use()
        for job_id in list(self._queue):
            if len(self._running) >= self._limit:
                break
            provider = self._provider[job_id]
            if not self._has_room(provider, use):
                continue
            self._queue.remove(job_id)
            self._running[job_id] = provider
            use[provider] = use.get(provider, 0) + 1
            started.append(job_id)
        return started

    def move(self, job_id: JobId, index: int) -> None:
        """Put a queued job at ``index`` (0 = the front) of the queue."""
        if job_id not in self._queue:
            raise ValueError("only a queued job can be moved")
        self._queue.remove(job_id)
        self._queue.insert(max(0, min(index, len(self._queue))), job_id)

    def set_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._limit = limit  # lowering it lets running jobs finish; fewer start afterwards

    # -- inside ------------------------------------------------------------------------------

    def _provider_use(self) -> dict[str, int]:
        use: dict[str, int] = {}
        for provider in self._running.values():
            use[provider] = use.get(provider, 0) + 1
        return use

    def _has_room(self, provider: str, use: dict[str, int]) -> bool:
        capacity = self._capacity_of(provider)
        return capacity is None or use.get(provider, 0) < capacity
