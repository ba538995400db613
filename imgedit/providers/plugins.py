"""Providers as plug-ins: a provider is its module plus one entry in ``PLUGINS``.

An entry names the environment variables the provider reads (each with its parse rule and a
line of help, its key being the provider's keyword argument), the values that make it
configured, and how to build it: the provider's class, imported only when it is configured (so
an offline start-up loads no remote provider), called with the shared HTTP client and the values. ``Settings.providers`` keeps the parsed values
per provider name; the services build what is configured, in ``PLUGINS`` order (the first one
configured is the dialog's default; the local engine, always there, comes last); the redactor
asks each entry which of its values are secrets. Nothing outside a provider's entry and module
knows its settings. Must not import nicegui.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgedit.config import _choice, _text, _url, _urls, _whole

if TYPE_CHECKING:
    import httpx

    from imgedit.providers.base import Provider

Values = Mapping[str, Any]
Builder = Callable[[Values, "httpx.AsyncClient | None"], "Provider"]


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable of a provider: parsed with ``parse`` into ``values[key]``."""

    key: str
    env: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    """Its value is blanked out of every message and log line."""


@dataclass(frozen=True, slots=True)
class Plugin:
    name: str
    variables: tuple[Variable, ...]
    build: Builder
    needs: tuple[str, ...] = ()
    """Keys that must all be set for the provider to be offered; none: always offered."""
    remote: bool = True
    """Talks to a server over HTTP (then the services make the shared client)."""

    def configured(self, values: Values) -> bool:
        return all(values.get(key) for key in self.needs)

    def secrets(self, values: Values) -> list[str]:
        """The values of its secret variables (of a ``(user, password)`` pair, the password)."""
        found = []
        for variable in self.variables:
            value = values.get(variable.key)
            if variable.secret and value:
                found.append(str(value[-1] if isinstance(value, tuple) else value))
        return found

    def urls(self, values: Values) -> list[str]:
        """Every URL among its values (their credentials are secrets too)."""
        found = []
        for value in values.values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, str) and "://" in item:
                    found.append(item)
        return found


def _user_password(raw: str) -> tuple[str, str]:
    user, _, password = raw.strip().partition(":")
    if not password:
        raise ValueError("expected user:password")
    return user, password


def _folder(raw: str) -> Path:
    return Path(raw.strip()).expanduser()


def _openai(values: Values, http: httpx.AsyncClient | None) -> Provider:
    from imgedit.providers.openai import OpenAIProvider

    try:
        return OpenAIProvider(client=_needed(http), **values)
    except ValueError as exc:  # the message never contains the key itself
        raise SystemExit(f"imgedit: OPENAI_API_KEY cannot be used: {exc}") from None


def _sdwebui(values: Values, http: httpx.AsyncClient | None) -> Provider:
    from imgedit.providers.sdwebui import SdWebUiProvider

    return SdWebUiProvider(client=_needed(http), **values)


def _comfyui(values: Values, http: httpx.AsyncClient | None) -> Provider:
    from imgedit.providers.comfyui import ComfyUIProvider
    from imgedit.providers.comfyui_workflow import WorkflowError

    try:
        return ComfyUIProvider(client=_needed(http), **values)
    except WorkflowError as exc:  # refused at start-up, naming the file and the missing mark
        raise SystemExit(f"imgedit: {exc}") from None


def _local(values: Values, http: httpx.AsyncClient | None) -> Provider:
    from imgedit.providers.local import LocalProvider

    return LocalProvider()


def _needed(http: httpx.AsyncClient | None) -> httpx.AsyncClient:
    if http is None:
        raise ValueError("a remote provider is configured: it needs the HTTP client")
    return http


PLUGINS: tuple[Plugin, ...] = (
    Plugin(
        "openai",
        (
            Variable("api_key", "OPENAI_API_KEY", _text, "enables the OpenAI Images API", secret=True),
            Variable("base_url", "OPENAI_BASE_URL", _url, "an OpenAI-compatible server"),
            Variable("model", "IMGEDIT_OPENAI_MODEL", _text, "OpenAI image model"),
            Variable("partial_images", "IMGEDIT_OPENAI_PARTIAL_IMAGES", _whole(0, 3), "live previews per job"),
            Variable(
                "input_fidelity",
                "IMGEDIT_OPENAI_INPUT_FIDELITY",
                _choice("high", "low", none="none"),
                "input fidelity of edits",
            ),
        ),
        _openai,
        needs=("api_key",),
    ),
    Plugin(
        "sdwebui",
        (
            Variable("urls", "IMGEDIT_SDWEBUI_URLS", _urls, "Stable Diffusion WebUI servers, comma-separated"),
            Variable(
                "auth", "IMGEDIT_SDWEBUI_AUTH", _user_password, "user:password for SD WebUI --api-auth", secret=True
            ),
        ),
        _sdwebui,
        needs=("urls",),
    ),
    Plugin(
        "comfyui",
        (
            Variable("urls", "IMGEDIT_COMFYUI_URLS", _urls, "ComfyUI servers, comma-separated"),
            Variable(
                "workflow_folder",
                "IMGEDIT_COMFYUI_WORKFLOWS",
                _folder,
                "a folder of your own ComfyUI workflows (API format, marked imgedit:prompt, imgedit:output, …)",
            ),
        ),
        _comfyui,
        needs=("urls",),
    ),
    Plugin("local", (), _local, remote=False),
)
"""In the order the dialog offers them: the first configured is the default."""
