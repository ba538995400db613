"""Keeping secrets out of what people and logs see.

Owns ``Redactor``: it knows every configured secret (API keys, passwords, the storage secret,
credentials inside provider URLs) and blanks them, and any ``user:password@`` in a URL, out of
a text. The job registry passes every message and error through it before storing or showing
it; ``install_log_redaction`` does the same for every log record, whoever logs it (httpx included).
Must not import nicegui.

Usage::

    redactor = Redactor.from_settings(settings)
    redactor('Incorrect API key provided: sk-abc…')   # 'Incorrect API key provided: [redacted]…'
    install_log_redaction(redactor)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from imgedit.config import Settings

MASK = "[redacted]"
MIN_SECRET_CHARS = 4
"""Shorter "secrets" would blank ordinary words; such a password is refused nowhere, only not hunted."""

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


class Redactor:
    """Blanks known secrets and URL credentials out of text. Cheap: a few ``str.replace`` calls."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        # Longest first, so a secret that contains another is blanked whole.
        self._secrets = sorted(unique, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings, *, more: Iterable[str] = ()) -> Redactor:
        from imgedit.providers.plugins import PLUGINS

        secrets = [settings.storage_secret, settings.password, *more]
        for plugin in PLUGINS:  # each provider says which of its values are secret
            values = settings.providers.get(plugin.name, {})
            secrets.extend(plugin.secrets(values))
            for url in plugin.urls(values):
                secrets.extend(_url_secrets(url))
        return cls(secrets)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "://" in text and "@" in text:
            text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
        return text


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    for value in (parts.password, parts.username):
        if value:
            found += [value, unquote(value)]
    return found


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Rewrite a log record's message (arguments merged in) and traceback through ``redactor``."""
    message = record.getMessage()
    cleaned = redactor(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        # Handlers format a traceback once and cache it on the record: clean that text up front.
        record.exc_text = redactor(logging.Formatter().formatException(record.exc_info))


_installed: list[Redactor] = []


def install_log_redaction(redactor: Redactor) -> None:
    """Redact every log record as it is made, whoever logs it and whichever handler writes it
    (a filter on one logger would miss records from httpx, uvicorn or a test's capture)."""
    if _installed:
        _installed[0] = redactor  # the factory below reads the newest one
        return
    _installed.append(redactor)
    make = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redact_record(record, _installed[0])
        return record

    logging.setLogRecordFactory(factory)
