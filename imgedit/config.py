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
    port: int = 8080
    data_dir: Path = Path("data")
    max_concurrent: int = 4
    show: bool = True
    samples: bool = True
    """Fill an empty gallery with images drawn by the local engine."""
    eta_priors: dict[Quality, float] = field(default_factory=lambda: dict(DEFAULT_PRIORS))
    """Fallback seconds per quality for providers that give no prior of their own."""
    storage_secret: str = field(default="", repr=False)

    @classmethod
    def from_args(cls, argv: Sequence[str], env: Mapping[str, str]) -> Settings:
        args = _parser(env).parse_args(list(argv))
        if args.max_concurrent < 1:
            raise SystemExit("--max-concurrent must be at least 1")
        priors = dict(DEFAULT_PRIORS)
        for quality in Quality:
            raw = env.get(f"IMGEDIT_ETA_{quality.upper()}")
            if raw:
                priors[quality] = max(0.1, float(raw))
        return cls(
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
        "ETA priors per quality: IMGEDIT_ETA_LOW / _MEDIUM / _HIGH (seconds).",
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
        "--no-show",
        action="store_true",
        default=_truthy(env.get("IMGEDIT_NO_SHOW")),
        help="do not open a browser tab on start [IMGEDIT_NO_SHOW=1]",
    )
    return parser
