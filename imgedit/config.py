"""Settings: one frozen value built from command-line flags and ``IMGEDIT_*`` environment variables.

Flags win over the environment, the environment over defaults. Secrets (API keys, passwords)
are read from the environment only and never printed. Must not import nicegui.

Usage: ``settings = Settings.from_args(sys.argv[1:], os.environ)``
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgedit.models import Quality

DEFAULT_PRIORS: dict[Quality, float] = {Quality.LOW: 2.0, Quality.MEDIUM: 4.0, Quality.HIGH: 8.0}


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
    samples: bool = True
    """Fill an empty gallery with images drawn by the local engine."""
    eta_priors: dict[Quality, float] = field(default_factory=lambda: dict(DEFAULT_PRIORS))
    """Fallback seconds per quality for providers that give no prior of their own."""
    storage_secret: str = field(default="", repr=False)
    max_attempts: int = 3
    """Provider calls per job, first try included, before a transient failure fails the job."""
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-image-1.5"
    openai_partial_images: int = 2
    openai_input_fidelity: str | None = "high"
    sdwebui_urls: tuple[str, ...] = ()
    sdwebui_auth: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def openai_enabled(self) -> bool:
        return bool(self.openai_api_key)

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str]) -> Settings:
        args = _parser(env).parse_args(list(argv))
        if args.max_concurrent < 1:
            raise SystemExit("--max-concurrent must be at least 1")
        if args.max_attempts < 1:
            raise SystemExit("--max-attempts must be at least 1")
        priors = dict(DEFAULT_PRIORS)
        for quality in Quality:
            raw = env.get(f"IMGEDIT_ETA_{quality.upper()}")
            if raw:
                priors[quality] = max(0.1, float(raw))
        fidelity = env.get("IMGEDIT_OPENAI_INPUT_FIDELITY", "high").strip().lower()
        auth_text = env.get("IMGEDIT_SDWEBUI_AUTH", "")
        user, _, password = auth_text.partition(":")
        return cls(
            max_attempts=args.max_attempts,
            openai_api_key=env.get("OPENAI_API_KEY", "").strip(),
            openai_base_url=(env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/"),
            openai_model=env.get("IMGEDIT_OPENAI_MODEL", "gpt-image-1.5").strip() or "gpt-image-1.5",
            openai_partial_images=min(3, max(0, int(env.get("IMGEDIT_OPENAI_PARTIAL_IMAGES", "2")))),
            openai_input_fidelity=fidelity if fidelity in {"high", "low"} else None,
            sdwebui_urls=tuple(
                u.strip().rstrip("/") for u in env.get("IMGEDIT_SDWEBUI_URLS", "").split(",") if u.strip()
            ),
            sdwebui_auth=(user, password) if auth_text and password else None,
            host=args.host,
            port=args.port,
            data_dir=Path(args.data_dir),
            max_concurrent=args.max_concurrent,
            show=not args.no_show,
            samples=env.get("IMGEDIT_SAMPLES", "1") not in {"0", "false", "no"},
            eta_priors=priors,
            storage_secret=env.get("IMGEDIT_STORAGE_SECRET", ""),
        )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="imgedit: edit and generate images in the background, in your browser.",
        epilog="Every flag has an environment variable (shown in brackets); flags win. "
        "ETA priors per quality: IMGEDIT_ETA_LOW / _MEDIUM / _HIGH (seconds). "
        "Providers: OPENAI_API_KEY (+ OPENAI_BASE_URL, IMGEDIT_OPENAI_MODEL, IMGEDIT_OPENAI_PARTIAL_IMAGES, "
        "IMGEDIT_OPENAI_INPUT_FIDELITY) enables OpenAI; IMGEDIT_SDWEBUI_URLS (comma-separated, "
        "+ IMGEDIT_SDWEBUI_AUTH=user:pass) enables Stable Diffusion WebUI servers.",
    )
    parser.add_argument(
        "--host",
        default=env.get("IMGEDIT_HOST", "127.0.0.1"),
        help="interface to listen on; 0.0.0.0 serves the LAN [IMGEDIT_HOST] (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("IMGEDIT_PORT", "8080")),
        help="port to listen on [IMGEDIT_PORT] (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        default=env.get("IMGEDIT_DATA_DIR", "data"),
        help="where images, thumbnails and the database live [IMGEDIT_DATA_DIR] (default: %(default)s)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=int(env.get("IMGEDIT_MAX_CONCURRENT", "4")),
        help="jobs that run at the same time; the rest wait in the queue "
        "[IMGEDIT_MAX_CONCURRENT] (default: %(default)s)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=int(env.get("IMGEDIT_MAX_ATTEMPTS", "3")),
        help="provider calls per job before a transient failure (timeout, 429, 5xx) fails it "
        "[IMGEDIT_MAX_ATTEMPTS] (default: %(default)s)",
    )
    parser.add_argument(
        "--no-show",
        action="store_true",
        default=_truthy(env.get("IMGEDIT_NO_SHOW")),
        help="do not open a browser tab on start [IMGEDIT_NO_SHOW=1]",
    )
    return parser
