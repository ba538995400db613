"""imgedit's composition root: read settings, build services, register pages, run the server.

python main.py [--host H] [--port P] [--data-dir D] [--max-concurrent N] [--no-show]
"""

from __future__ import annotations

import functools
import logging
import os
import sys

from imgedit import deferred_imports

deferred_imports.defer()  # before NiceGUI: its socket.io client libraries load only if used

from nicegui import app, background_tasks, ui  # noqa: E402

from imgedit import native  # noqa: E402
from imgedit.config import Settings, unknown_variables  # noqa: E402
from imgedit.services import build_services  # noqa: E402
from imgedit.ui import heap, register  # noqa: E402
from imgedit.ui.compression import Compression, cache_dir, prepare_static  # noqa: E402


def main() -> None:
    # NiceGUI's test harness runs this file too; its argv belongs to pytest.
    simulated = bool(os.environ.get("NICEGUI_USER_SIMULATION"))
    settings = Settings.from_args([] if simulated else sys.argv[1:], os.environ)
    if settings.native and (problem := native.problem_message()):
        print(problem, file=sys.stderr)
        sys.exit(native.EXIT_CODE)
    configure_logging()
    for name in unknown_variables(os.environ):
        logging.getLogger("imgedit").warning("%s is not a setting imgedit knows; it is ignored", name)
    if not settings.is_loopback and not settings.requires_login:
        warn_exposed(settings.host, settings.port)  # only with --insecure: config refuses otherwise
    services = build_services(settings)
    register(services)
    app.on_startup(services.start)
    static_cache = cache_dir(os.environ)
    if not simulated:  # the simulation serves no HTTP, and runs many apps in one process
        app.on_startup(lambda: background_tasks.create(prepare_static(static_cache), name="compress static files"))
        app.on_startup(heap.after_startup)  # last: what start-up made lives as long as the process
    app.on_shutdown(services.close)
    if settings.native:
        native.configure(app)
        print(f"imgedit: opening a window (data in {settings.data_dir.resolve()})", flush=True)
    elif not simulated:
        shown_host = "localhost" if settings.host in {"127.0.0.1", "0.0.0.0"} else settings.host
        sign_in = ", sign in with the studio password" if settings.requires_login else ""
        print(
            f"imgedit: open http://{shown_host}:{settings.port}{settings.root_path}/{sign_in} "
            f"(data in {settings.data_dir.resolve()})",
            flush=True,
        )
    ui.run(
        host=settings.host,
        port=settings.port,
        title="imgedit",
        language="en-US",
        show=settings.show,
        reload=False,
        dark=True,
        tailwind=False,  # its utilities and resets are in static/imgedit.css (68 KB less to load)
        favicon="🎨",
        show_welcome_message=True,
        storage_secret=services.session_secret,
        root_path=settings.root_path,
        gzip_middleware_factory=functools.partial(Compression, cache_dir=static_cache),
        **(native.run_options() if settings.native else {}),
    )


QUIET_LIBRARIES = ("httpx", "httpcore", "uvicorn.access", "watchfiles", "multipart", "PIL")
"""Chatter at INFO (a line per SD progress poll, per request): only their warnings are shown."""


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def warn_exposed(host: str, port: int) -> None:
    bar = "!" * 78
    print(
        f"{bar}\n"
        f"WARNING: imgedit listens on {host}:{port}, beyond this computer, WITHOUT A PASSWORD (--insecure).\n"
        "Anyone who can reach this address can see, edit and delete every image and job.\n"
        "Set IMGEDIT_PASSWORD instead, or use --host 127.0.0.1, unless you trust everyone on this network.\n"
        f"{bar}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
