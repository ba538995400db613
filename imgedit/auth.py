"""Signing in to a hosted studio: the session secret, sessions, one-time tickets and a login limiter.

A studio with a password (``IMGEDIT_PASSWORD`` or ``IMGEDIT_PASSWORD_HASH``) lets a browser in only
once it has signed in. The browser's identity is the ``id`` in NiceGUI's signed session cookie
(signed with the storage secret); a signed-in session is a row in the ``sessions`` table, so a
restart keeps people signed in and signing out ends the session on the server, not just in the
browser. Signing in happens over the page's websocket, which cannot set a cookie, so a correct
password earns a one-time ticket (a minute, one use) that the ``/login/done`` route turns into a
fresh session id: the id a browser had before signing in is never the one it is trusted under.

Failed logins are limited per client address: ``LoginLimiter.ATTEMPTS`` failures within
``WINDOW_S``, then that address waits until the oldest of them leaves the window.

Must not import nicegui.

Usage::

    auth = Auth.from_settings(settings, db)          # None when the studio has no password
    outcome = await auth.attempt(address, name, typed_password)
    session_id = await auth.redeem(outcome.ticket)   # in the HTTP route; sets the cookie's id
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgedit.config import Settings
from imgedit.database import Database
from imgedit.password import PasswordChecker

log = logging.getLogger(__name__)

Clock = Callable[[], float]
SECRET_FILE = "session-secret"
NAME_MAX = 40
TICKET_TTL_S = 60.0


def storage_secret(settings: Settings) -> str:
    """``IMGEDIT_STORAGE_SECRET``, or the secret kept in the data dir (made once, mode 0600)."""
    if settings.storage_secret:
        return settings.storage_secret
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # tighten a copy restored with looser permissions
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= 32:
            return secret
        raise RuntimeError(f"{path} is too short to sign sessions; delete it to make a new one") from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    return secret


def clean_name(raw: str) -> str:
    """A display name: printable characters only, runs of space collapsed, at most ``NAME_MAX``."""
    kept = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in raw)
    return " ".join(kept.split())[:NAME_MAX].strip()


class LoginLimiter:
    """Counts failed logins per client address and says how long an address must wait."""

    ATTEMPTS = 5
    WINDOW_S = 600.0
    MAX_ADDRESSES = 10_000
    """Addresses remembered at once; the least recently failed are forgotten first."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, address: str) -> float:
        """Seconds before ``address`` may try again (0 when it may try now)."""
        failures = self._recent(address)
        if len(failures) < self.ATTEMPTS:
            return 0.0
        return max(0.0, failures[-self.ATTEMPTS] + self.WINDOW_S - self._clock())

    def failed(self, address: str) -> int:
        """Count a failure; returns how many tries ``address`` has left before it must wait."""
        failures = self._recent(address)
        failures.append(self._clock())
        while len(failures) > self.ATTEMPTS:
            failures.popleft()
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)
        return self.ATTEMPTS - len(failures)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        horizon = self._clock() - self.WINDOW_S
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    ticket: str | None = None
    """Set when the password was right: redeem it at ``/login/done`` within a minute."""
    message: str = ""
    """Why not, in plain words, when there is no ticket."""


class Auth:
    """The studio's sign-in: checks passwords, hands out tickets and keeps the signed-in sessions."""

    def __init__(
        self,
        checker: PasswordChecker,
        db: Database,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self._checker = checker
        self._db = db
        self._clock = clock
        self._wall = wall
        self.limiter = LoginLimiter(clock=clock)
        self._tickets: dict[str, tuple[str, float]] = {}
        self._sessions: dict[str, Session] = {
            row["id"]: Session(row["id"], row["name"], float(row["created_at"]))
            for row in db.query("SELECT id, name, created_at FROM sessions")
        }

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> Auth | None:
        if not settings.requires_login:
            return None
        checker = PasswordChecker(plain=settings.password, hashed=settings.password_hash)
        return cls(checker, db)

    # -- signing in --------------------------------------------------------------------------

    async def attempt(self, address: str, name: str, password: str) -> LoginOutcome:
        wait = self.limiter.wait_s(address)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            unit = "minute" if minutes == 1 else "minutes"
            return LoginOutcome(message=f"Too many wrong passwords. Try again in {minutes} {unit}.")
        who = clean_name(name)
        if not who:
            return LoginOutcome(message="Type your name: it is shown on the jobs you start.")
        # Counted as a failure before the check, so tries sent in parallel cannot slip past the
        # limit while scrypt runs (~0.1 s of CPU, never on the event loop); undone on success.
        left = self.limiter.failed(address)
        if not await asyncio.to_thread(self._checker.matches, password):
            log.warning("failed sign-in from %s", address)
            if left <= 0:
                return LoginOutcome(message="Wrong password. Too many tries: wait 10 minutes.")
            return LoginOutcome(message="Wrong password.")
        self.limiter.succeeded(address)
        self._drop_stale_tickets()
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (who, self._clock() + TICKET_TTL_S)
        return LoginOutcome(ticket=ticket)

    async def redeem(self, ticket: str) -> Session | None:
        """Turn a ticket into a new signed-in session (once); None if unknown or expired."""
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] < self._clock():
            return None
        session = Session(secrets.token_urlsafe(32), entry[0], self._wall())
        await asyncio.to_thread(
            self._db.execute,
            "INSERT INTO sessions (id, name, created_at) VALUES (?, ?, ?)",
            (session.id, session.name, session.created_at),
        )
        self._sessions[session.id] = session
        log.info("%s signed in", session.name)
        return session

    async def sign_out(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        await asyncio.to_thread(self._db.execute, "DELETE FROM sessions WHERE id = ?", (session_id,))
        if session is not None:
            log.info("%s signed out", session.name)

    def session(self, session_id: object) -> Session | None:
        """The signed-in session with this id (from the signed cookie), if there is one."""
        return self._sessions.get(session_id) if isinstance(session_id, str) else None

    def _drop_stale_tickets(self) -> None:
        now = self._clock()
        for ticket in [t for t, (_, expiry) in self._tickets.items() if expiry < now]:
            del self._tickets[ticket]
