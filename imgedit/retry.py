"""Retrying provider calls: the one place for backoff, jitter and Retry-After.

A call is retried when it raises an ``ImgEditError`` whose ``retryable`` is true, up to
``max_attempts`` calls in all. The wait before attempt n+1 is ``base * 2**(n-1)`` seconds with
full jitter in [50 %, 100 %], capped at ``max_delay``, and never shorter than the server's
``retry_after``. A server that asks for a wait longer than ``max_wait`` fails the job at once,
with its advice in the message. Cancelling the caller during a wait cancels the wait.
Must not import nicegui.

Usage::

    result = await call_with_retries(lambda: provider.edit(request, sink), RetryPolicy(), on_wait=show)
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from imgedit.errors import ImgEditError, ProviderError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
OnWait = Callable[[int, int, float, ImgEditError], Awaitable[None] | None]
"""``on_wait(next_attempt, max_attempts, seconds, error)`` before each wait."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. ``RetryPolicy(max_attempts=1)`` never retries."""

    max_attempts: int = 3
    base_delay: float = 2.0
    max_delay: float = 30.0
    max_wait: float = 120.0
    """A Retry-After longer than this is not waited for: the job fails and says when to retry."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, failed_attempt: int, error: ImgEditError) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        backoff: float = min(self.base_delay * 2.0 ** (failed_attempt - 1), self.max_delay)
        jittered = backoff * (0.5 + 0.5 * self.rng.random())
        advised: float | None = error.retry_after if isinstance(error, ProviderError) else None
        if advised is not None and math.isfinite(advised):
            return max(jittered, advised)
        return jittered


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_wait: OnWait | None = None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``call()``; on a retryable ImgEditError wait and try again, up to the policy's limit."""
    attempt = 1
    while True:
        try:
            return await call()
        except ImgEditError as error:
            if not error.retryable or attempt >= policy.max_attempts:
                raise
            seconds = policy.delay(attempt, error)
            if seconds > policy.max_wait:
                raise _with_advice(
                    error, f"{error} The server asks to wait {math.ceil(seconds)} s; try again later."
                ) from error
            attempt += 1
            if on_wait is not None:
                waiting = on_wait(attempt, policy.max_attempts, seconds, error)
                if waiting is not None:
                    await waiting
            await sleep(seconds)


def _with_advice(error: ImgEditError, message: str) -> ImgEditError:
    """``error`` again with ``message``: same class, and a provider error keeps what it knew."""
    if isinstance(error, ProviderError):
        return type(error)(
            message,
            retry_after=error.retry_after,
            provider=error.provider,
            status=error.status,
            code=error.code,
        )
    return type(error)(message)
