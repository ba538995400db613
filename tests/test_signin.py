"""Hosting for a team: the password rules at start-up, the password hash, the login limiter,
sessions and tickets on a real SQLite file, and the gate in front of a real server (pages,
media, uploads, socket.io polling and websocket) seen by plain HTTP clients."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from imgedit.auth import Auth, LoginLimiter, clean_name, storage_secret
from imgedit.config import Settings
from imgedit.database import Database
from imgedit.password import PasswordChecker, hash_password, parse_hash
from tests.app_process import ROOT, AppProcess, running_app

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- start-up rules ---------------------------------------------------------------------------


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IMGEDIT_", "PYTEST_", "NICEGUI_"))}
    return subprocess.run(
        [sys.executable, "-c", "from imgedit.config import Settings; import sys, os; "
         "Settings.from_args(sys.argv[1:], os.environ); print('ok')", *args],
        cwd=ROOT, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_host_beyond_loopback_needs_a_password_or_insecure() -> None:
    refused = _start(["--host", "0.0.0.0"])
    assert refused.returncode == 2
    assert "needs a password" in refused.stderr and "IMGEDIT_PASSWORD" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _start(["--host", "0.0.0.0", "--insecure"]).stdout.strip() == "ok"
    assert _start(["--host", "0.0.0.0"], {"IMGEDIT_PASSWORD": PASSWORD}).stdout.strip() == "ok"
    assert _start(["--host", "0.0.0.0", "--password", PASSWORD]).stdout.strip() == "ok"
    assert _start(["--host", "127.0.0.1"]).stdout.strip() == "ok"


def test_insecure_serving_prints_a_loud_warning(tmp_path: Path) -> None:
    app = AppProcess(tmp_path, args=("--host", "0.0.0.0", "--insecure"))
    try:
        app.wait_ready()
    finally:
        app.stop()
    assert "WITHOUT A PASSWORD" in app.log


def test_bad_password_settings_are_named_plainly() -> None:
    both = _start([], {"IMGEDIT_PASSWORD": PASSWORD, "IMGEDIT_PASSWORD_HASH": hash_password(PASSWORD)})
    assert both.returncode == 2 and "not both" in both.stderr
    bad_hash = _start([], {"IMGEDIT_PASSWORD_HASH": "secret123"})
    assert bad_hash.returncode == 2 and "IMGEDIT_PASSWORD_HASH" in bad_hash.stderr
    assert "secret123" not in bad_hash.stderr  # a mistaken plain password is not echoed
    bad_root = _start(["--root-path", "imgedit"])
    assert bad_root.returncode == 2 and "path prefix" in bad_root.stderr
    assert Settings.from_args(["--root-path", "/imgedit/"], {}).root_path == "/imgedit"


# -- the password and its hash ----------------------------------------------------------------


def test_a_hash_from_the_command_checks_the_password_it_was_made_from() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "imgedit.password"], cwd=ROOT, input=PASSWORD + "\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    printed = made.stdout.strip()
    assert PASSWORD not in printed
    settings = Settings.from_args(["--host", "0.0.0.0"], {"IMGEDIT_PASSWORD_HASH": printed})
    checker = PasswordChecker(hashed=settings.password_hash)
    assert checker.matches(PASSWORD)
    assert not checker.matches(PASSWORD + " ")
    assert not checker.matches("")
    # two hashes of one password differ (salted)
    assert parse_hash(hash_password(PASSWORD)).salt != parse_hash(printed).salt


def test_the_hash_command_refuses_a_short_password() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "imgedit.password"], cwd=ROOT, input="short\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 1 and made.stdout == "" and "8 characters" in made.stderr


def test_a_plain_password_matches_only_itself() -> None:
    checker = PasswordChecker(plain=PASSWORD)
    assert checker.matches(PASSWORD)
    for wrong in ("", PASSWORD[:-1], PASSWORD + "x", PASSWORD.upper(), "x" * 10_000):
        assert not checker.matches(wrong)


# -- the session secret -----------------------------------------------------------------------


def test_the_session_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = storage_secret(settings)
    path = tmp_path / "data" / "session-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert storage_secret(settings) == first  # the same after a restart: sessions survive it
    os.chmod(path, 0o644)
    assert storage_secret(settings) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    given = Settings(data_dir=tmp_path / "other", storage_secret="x" * 40)
    assert storage_secret(given) == "x" * 40
    assert not (tmp_path / "other" / "session-secret").exists()


# -- the login limiter ------------------------------------------------------------------------


def test_failed_logins_are_limited_per_address_and_forgiven_after_the_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for left in (4, 3, 2, 1, 0):
        assert limiter.wait_s("10.0.0.1") == 0
        assert limiter.failed("10.0.0.1") == left
        clock.now += 1
    assert limiter.wait_s("10.0.0.1") == pytest.approx(LoginLimiter.WINDOW_S - 5)
    assert limiter.wait_s("10.0.0.2") == 0  # another address is not punished
    clock.now += LoginLimiter.WINDOW_S - 5
    assert limiter.wait_s("10.0.0.1") == 0
    limiter.failed("10.0.0.2")
    limiter.succeeded("10.0.0.2")
    assert limiter.failed("10.0.0.2") == LoginLimiter.ATTEMPTS - 1


def test_the_limiter_remembers_a_bounded_number_of_addresses() -> None:
    limiter = LoginLimiter(clock=Clock())
    limiter.MAX_ADDRESSES = 100
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) == 100


# -- sign-in, tickets and sessions on a real database ----------------------------------------


@pytest.fixture
def database(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = Database(tmp_path / "imgedit.sqlite3")
    db.open()
    yield db
    db.close()


async def test_a_right_password_gives_a_one_time_ticket_and_a_lasting_session(database: Database) -> None:
    clock = Clock()
    auth = Auth(PasswordChecker(plain=PASSWORD), database, clock=clock)
    wrong = await auth.attempt("10.0.0.1", "Ana", "nope")
    assert wrong.ticket is None and wrong.message == "Wrong password."
    nameless = await auth.attempt("10.0.0.1", " \u200b\n", PASSWORD)
    assert nameless.ticket is None and "name" in nameless.message
    right = await auth.attempt("10.0.0.1", "  Ana\tLima\u202e ", PASSWORD)
    assert right.ticket
    session = await auth.redeem(right.ticket)
    assert session is not None and session.name == "Ana Lima"
    assert await auth.redeem(right.ticket) is None  # one use only
    # a restart (a new Auth on the same file) keeps the session
    again = Auth(PasswordChecker(plain=PASSWORD), database, clock=clock)
    assert again.session(session.id) == session
    await again.sign_out(session.id)
    assert again.session(session.id) is None
    assert Auth(PasswordChecker(plain=PASSWORD), database).session(session.id) is None
    # a ticket left too long expires
    late = await auth.attempt("10.0.0.1", "Bo", PASSWORD)
    clock.now += 61
    assert late.ticket and await auth.redeem(late.ticket) is None


async def test_parallel_guesses_cannot_slip_past_the_limit(database: Database) -> None:
    auth = Auth(PasswordChecker(hashed=hash_password(PASSWORD)), database, clock=Clock())
    outcomes = await asyncio.gather(*(auth.attempt("10.0.0.9", "Eve", f"guess{i}") for i in range(20)))
    checked = [o for o in outcomes if o.message.startswith("Wrong password")]
    assert len(checked) == LoginLimiter.ATTEMPTS
    assert all("Too many" in o.message for o in outcomes if o not in checked)
    refused = await auth.attempt("10.0.0.9", "Eve", PASSWORD)  # even the right one now waits
    assert refused.ticket is None and "Too many" in refused.message


def test_names_are_cleaned_of_control_and_layout_characters() -> None:
    assert clean_name("Ana\x00\x1b[31m") == "Ana [31m"
    assert clean_name("a" * 100) == "a" * 40
    assert clean_name("<b>Bo</b>") == "<b>Bo</b>"  # kept as text; never rendered as markup


# -- the gate on a real server ----------------------------------------------------------------


def _image_id(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "imgedit.sqlite3") as db:
        return str(db.execute("SELECT id FROM images LIMIT 1").fetchone()[0])


def _raw_websocket_status(port: int, path: str) -> int:
    """The status line a websocket upgrade gets (101 when accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        return int(conn.recv(1024).split(b" ", 2)[1])


def test_without_signing_in_nothing_of_the_studio_is_served(tmp_path: Path) -> None:
    app = AppProcess(tmp_path, {"IMGEDIT_PASSWORD": PASSWORD}, args=("--host", "0.0.0.0"))
    try:
        app.wait_ready()
        image = _image_id(app.data_dir)
        with httpx.Client(base_url=app.url, timeout=10) as http:
            page = http.get("/history?status=failed")
            assert page.status_code == 303
            assert page.headers["location"] == "/login?next=%2Fhistory%3Fstatus%3Dfailed"
            login = http.get("/login")
            assert login.status_code == 200 and "Sign in" in login.text
            for path in (
                f"/media/images/{image}",
                f"/media/thumbs/{image}",
                f"/media/download/{image}",
                "/media/previews/x",
                "/_nicegui/client/x/upload/y",
            ):
                answer = http.get(path)
                assert answer.status_code == 401, path
                assert answer.content == b"Sign in first.\n"
            assert http.post("/_nicegui/client/x/upload/y", content=b"x").status_code == 401
            polling = http.get("/_nicegui_ws/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert polling.status_code == 401
            # a forged session cookie is not signed with the studio's secret
            http.cookies.set("session", "eyJpZCI6ICJ4In0=.forged")
            assert http.get(f"/media/images/{image}").status_code == 401
        assert _raw_websocket_status(app.port, "/_nicegui_ws/socket.io/?EIO=4&transport=websocket") == 401
        # next= cannot send anyone off-site
        done = httpx.get(f"{app.url}/login/done", params={"ticket": "made-up", "next": "//evil.test/"})
        assert done.status_code == 303 and done.headers["location"] == "/login?expired=1"
    finally:
        app.stop()
    assert "Traceback" not in app.log
    assert PASSWORD not in app.log


def test_a_studio_without_a_password_is_open_on_loopback(tmp_path: Path) -> None:
    with running_app(tmp_path) as url:
        assert httpx.get(url + "/").status_code == 200
        assert httpx.get(f"{url}/media/images/{_image_id(tmp_path / 'data')}").status_code == 200
        assert httpx.get(url + "/login").status_code == 404  # no login page to be confused by
