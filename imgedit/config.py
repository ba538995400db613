"""Settings: one frozen value built from command-line flags and environment variables.

Flags win over the environment, the environment over defaults. Every variable, flag or not, is
read by one parser (``_OPTIONS``) with one rule per type, and a bad value stops start-up with a
usage message in argparse's form (``python main.py: error: IMGEDIT_PORT: 'abc' is not a whole
number``), never a traceback. Secrets (API keys, passwords) come from the environment only and
are never printed. Must not import nicegui.

Usage: ``settings = Settings.from_args(sys.argv[1:], os.environ)``
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgedit.models import Quality

DEFAULT_PRIORS: dict[Quality, float] = {Quality.LOW: 2.0, Quality.MEDIUM: 4.0, Quality.HIGH: 8.0}
"""Seconds per quality for a provider that gives no prior of its own (every built-in one does)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything the composition root needs to build the services and start the server."""

    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    """Host names (Host header) the server answers to besides the loopback names and ``host``."""
    port: int = 8080
    data_dir: Path = Path("data")
    max_concurrent: int = 4
    show: bool = True
    resume: bool = True
    """Resume the jobs the last run left queued or running (else show them as interrupted)."""
    samples: bool = True
    """Fill an empty gallery with images drawn by the local engine."""
    stall_timeout: float = 600.0
    """Seconds a running job may go without any word from its provider before it is failed."""
    storage_secret: str = field(default="", repr=False)
    """Signs browser sessions; when empty, one is generated once and kept in the data dir."""
    password: str = field(default="", repr=False)
    """The studio's shared password; with it (or ``password_hash``) every page asks to sign in."""
    password_hash: str = field(default="", repr=False)
    """The password as ``python -m imgedit.password`` prints it, so the plain text need not be kept."""
    insecure: bool = False
    """Serve beyond loopback without a password (a loud warning, on purpose)."""
    root_path: str = ""
    """The path prefix a reverse proxy serves imgedit under, e.g. ``/imgedit`` ("" for none)."""
    native: bool = False
    """Open in a native window (pywebview) instead of a browser tab."""
    max_attempts: int = 3
    """Provider calls per job, first try included, before a transient failure fails the job."""
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Per provider name, the values its plug-in read from the environment
    (``imgedit/providers/plugins.py``); nothing here knows what they mean."""

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def requires_login(self) -> bool:
        return bool(self.password or self.password_hash)

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str]) -> Settings:
        parser = _parser()
        args = parser.parse_args(list(argv))
        values: dict[str, Any] = {}
        for option in _OPTIONS:
            given = getattr(args, option.dest, None) if option.flag else None
            if given is not None:
                values[option.dest] = given  # argparse already checked it with the same rule
                continue
            value = _from_env(env, option.env, option.parse, parser)
            if value is not _UNSET:
                values[option.dest] = value
        if values.pop("no_show", False):
            values["show"] = False
        if values.pop("no_resume", False):
            values["resume"] = False
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        values["providers"] = _provider_values(env, parser)
        settings = cls(**values)
        if settings.password and settings.password_hash:
            parser.error("give either IMGEDIT_PASSWORD (--password) or IMGEDIT_PASSWORD_HASH, not both")
        if not settings.is_loopback and not settings.requires_login and not settings.insecure:
            parser.error(
                f"--host {settings.host} serves imgedit beyond this computer, so it needs a password: "
                "set IMGEDIT_PASSWORD (or IMGEDIT_PASSWORD_HASH from 'python -m imgedit.password'), "
                "or pass --insecure to serve it to anyone who can reach it"
            )
        if settings.native and settings.requires_login:
            parser.error("--native is a window for this computer only; it takes no password")
        if settings.native and (settings.root_path or not settings.is_loopback):
            parser.error("--native is a window for this computer only; it takes no --root-path or --host")
        return settings


# -- one rule per kind of value ---------------------------------------------------------------


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw.strip()!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{value} is out of range (expected {span})")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw.strip()!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > 7 * 24 * 3600:
        raise ValueError(f"{raw.strip()!r} is out of range (expected seconds from 0 to a week)")
    return value


def _boolean(raw: str) -> bool:
    word = raw.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{raw.strip()!r} is not one of 1/0, true/false, yes/no, on/off")


def _text(raw: str) -> str:
    return raw.strip()


def _url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected a URL starting with http:// or https://")
    return url


def _urls(raw: str) -> tuple[str, ...]:
    return tuple(_url(part) for part in raw.split(",") if part.strip())


def _root_path(raw: str) -> str:
    path = raw.strip().rstrip("/")
    if not path:
        return ""
    if not path.startswith("/") or path.startswith("//") or not re.fullmatch(r"[A-Za-z0-9/._~-]+", path):
        raise ValueError(f"{raw.strip()!r} is not a path prefix like /imgedit")
    return path


def _password_hash(raw: str) -> str:
    from imgedit.password import parse_hash  # the one place that knows the format

    parse_hash(raw.strip())
    return raw.strip()


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


def _choice(*choices: str, none: str | None = None) -> Callable[[str], str | None]:
    def parse(raw: str) -> str | None:
        word = raw.strip().lower()
        if word == none:
            return None
        if word not in choices:
            allowed = ", ".join([*choices, *([none] if none else [])])
            raise ValueError(f"{raw.strip()!r} is not one of {allowed}")
        return word

    return parse


@dataclass(frozen=True, slots=True)
class _Option:
    dest: str
    env: str
    parse: Callable[[str], Any]
    help: str
    flag: str | None = None
    metavar: str | None = None


_OPTIONS: tuple[_Option, ...] = (
    _Option(
        "host", "IMGEDIT_HOST", _text, "interface to listen on; 0.0.0.0 serves the LAN", "--host", "HOST"
    ),
    _Option("port", "IMGEDIT_PORT", _whole(1, 65535), "port to listen on", "--port", "PORT"),
    _Option(
        "allowed_hosts",
        "IMGEDIT_ALLOWED_HOSTS",
        _names,
        "more host names the server answers to, comma-separated (loopback names always work)",
        "--allowed-hosts",
        "NAMES",
    ),
    _Option(
        "data_dir", "IMGEDIT_DATA_DIR", _text, "images, thumbnails and the database", "--data-dir", "DIR"
    ),
    _Option(
        "max_concurrent",
        "IMGEDIT_MAX_CONCURRENT",
        _whole(1, 256),
        "jobs that run at the same time; the rest wait in the queue",
        "--max-concurrent",
        "N",
    ),
    _Option(
        "max_attempts",
        "IMGEDIT_MAX_ATTEMPTS",
        _whole(1, 10),
        "provider calls per job before a transient failure (timeout, 429, 5xx) fails it",
        "--max-attempts",
        "N",
    ),
    _Option(
        "stall_timeout",
        "IMGEDIT_STALL_TIMEOUT",
        _seconds,
        "seconds a running job may go without a word from its provider before it is failed",
        "--stall-timeout",
        "SECONDS",
    ),
    _Option("no_show", "IMGEDIT_NO_SHOW", _boolean, "do not open a browser tab on start", "--no-show"),
    _Option(
        "no_resume",
        "IMGEDIT_NO_RESUME",
        _boolean,
        "show jobs the last run left unfinished as interrupted (Retry, Dismiss) instead of resuming them",
        "--no-resume",
    ),
    _Option(
        "password",
        "IMGEDIT_PASSWORD",
        _text,
        "the password everyone signs in with (prefer the environment: a flag shows in ps)",
        "--password",
        "PASSWORD",
    ),
    _Option(
        "password_hash",
        "IMGEDIT_PASSWORD_HASH",
        _password_hash,
        "the password as 'python -m imgedit.password' prints it",
    ),
    _Option(
        "insecure",
        "IMGEDIT_INSECURE",
        _boolean,
        "allow a --host beyond this computer without a password (anyone who reaches it can delete everything)",
        "--insecure",
    ),
    _Option(
        "root_path",
        "IMGEDIT_ROOT_PATH",
        _root_path,
        "path prefix when served behind a reverse proxy, e.g. /imgedit",
        "--root-path",
        "PREFIX",
    ),
    _Option("native", "IMGEDIT_NATIVE", _boolean, "open in a native window instead of a browser tab", "--native"),
    _Option("samples", "IMGEDIT_SAMPLES", _boolean, "draw sample images into an empty gallery (default on)"),
    _Option("storage_secret", "IMGEDIT_STORAGE_SECRET", _text, "secret that signs browser sessions"),
)


_UNSET = object()


def _from_env(
    env: Mapping[str, str], name: str, parse: Callable[[str], Any], parser: argparse.ArgumentParser
) -> Any:
    """The variable ``name`` parsed by its rule, ``_UNSET`` if it is not set (or blank); a bad
    value stops start-up with a usage message naming it."""
    raw = env.get(name, "")
    if not raw.strip():
        return _UNSET
    try:
        return parse(raw)
    except ValueError as exc:
        parser.error(f"{name}: {exc}")


def _provider_values(env: Mapping[str, str], parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """Each provider plug-in's variables, parsed by its own rules (a bad one stops start-up)."""
    from imgedit.providers.plugins import PLUGINS

    found: dict[str, dict[str, Any]] = {}
    for plugin in PLUGINS:
        values: dict[str, Any] = {}
        for variable in plugin.variables:
            value = _from_env(env, variable.env, variable.parse, parser)
            if value is not _UNSET:
                values[variable.key] = value
        found[plugin.name] = values
    return found


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """``IMGEDIT_*`` variables that are set but mean nothing to imgedit (a typo, or a removed one)."""
    from imgedit.providers.plugins import PLUGINS

    known = {o.env for o in _OPTIONS} | {"IMGEDIT_REQUIRE_BROWSER", "IMGEDIT_REQUIRE_NATIVE"}
    known |= {v.env for plugin in PLUGINS for v in plugin.variables}
    return sorted(name for name in env if name.startswith("IMGEDIT_") and name not in known)


def _argparse_type(option: _Option) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return option.parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _parser() -> argparse.ArgumentParser:
    from imgedit.providers.plugins import PLUGINS

    environment_only = ", ".join(
        [o.env for o in _OPTIONS if o.flag is None] + [v.env for p in PLUGINS for v in p.variables]
    )
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="imgedit: edit and generate images in the background, in your browser.",
        epilog="Every flag has an environment variable (shown in brackets); flags win. "
        f"Read from the environment only: {environment_only}. See README.md.",
    )
    for option in _OPTIONS:
        flag = option.flag
        if flag is None:
            continue
        default = (
            Settings.__dataclass_fields__[option.dest].default
            if option.parse is not _boolean
            else None
        )
        if default not in (None, (), ""):
            option = _Option(
                option.dest,
                option.env,
                option.parse,
                f"{option.help} (default: {default})",
                option.flag,
                option.metavar,
            )
        if option.parse is _boolean:
            parser.add_argument(
                flag,
                dest=option.dest,
                action="store_true",
                default=None,
                help=f"{option.help} [{option.env}=1]",
            )
        else:
            parser.add_argument(
                flag,
                dest=option.dest,
                type=_argparse_type(option),
                default=None,
                metavar=option.metavar,
                help=f"{option.help} [{option.env}]",
            )
    return parser
