"""CPU-bound image work (Pillow decode, transform, encode) off the event loop, in its own pool.

``asyncio.to_thread`` shares one default pool with disk and database calls; a burst of big
Pillow jobs there makes a thumbnail read or a journal write wait behind them. Image work goes
through ``run`` instead: a bounded pool sized to the machine's cores, so CPU work never queues
in front of I/O and never oversubscribes the cores.

Usage::

    from imgedit import cpu
    thumb = await cpu.run(imaging.thumbnail, data)

``submit`` hands back the ``concurrent.futures.Future`` itself, for callers that must tell "never
started" (``future.cancel()`` succeeds) from "running" (stop it cooperatively and wait).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""One thread per core (Pillow releases the GIL in its C loops), never more than 8."""

_pool: ThreadPoolExecutor | None = None


THREAD_NAME_PREFIX = "imgedit-cpu"
"""Its threads' names start with this (``imgedit-cpu_0``, ...): visible in a profiler or a test."""


def executor() -> ThreadPoolExecutor:
    """The shared pool for image work, made on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix=THREAD_NAME_PREFIX)
    return _pool


def submit(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue ``function`` in the image pool (with the caller's context variables); do not wait."""
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return executor().submit(call)


async def run(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``function`` in the image pool and wait for it; context variables go along.

    Cancelling the caller drops the call if it has not started yet; a call already running
    finishes in its thread (Python cannot stop a thread), its result unused.
    """
    return await asyncio.wrap_future(submit(function, *args, **kwargs))
