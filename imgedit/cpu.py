"""CPU-bound image work (Pillow decode, transform, encode) off the event loop, in its own pool.

``asyncio.to_thread`` shares one default pool with disk and database calls; a burst of big
Pillow jobs there makes a thumbnail read or a journal write wait behind them. Image work goes
through ``run`` instead: a bounded pool sized to the machine's cores, so CPU work never queues
in front of I/O and never oversubscribes the cores.

Usage::

    from imgedit import cpu
    thumb = await cpu.run(imaging.thumbnail, data)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""One thread per core (Pillow releases the GIL in its C loops), never more than 8."""

_pool: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The shared pool for image work, made on first use."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="imgedit-cpu")
    return _pool


async def run(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``function`` in the image pool and wait for it; context variables go along."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await loop.run_in_executor(executor(), call)
