"""The native window (``python main.py --native``): can it open here, and how it is set up.

pywebview shows the app in a window of its own; on Linux it needs a GUI backend (Qt through
PyQt6 + PyQt6-WebEngine, or GTK through PyGObject) and Qt needs a few system libraries. This
module answers, before anything starts, whether a window can open, with a message that names
what is missing and how to install it (``problem_message``), so a broken setup never ends in a
traceback or in a server without a window. Nothing here imports Qt or pywebview: packages are
looked up with ``importlib.util.find_spec`` and Qt's libraries with ``ldd``.

Must not import nicegui (``configure`` is handed NiceGUI's ``app``), webview or Qt.

Usage (main.py)::

    if settings.native and (problem := native.problem_message()):
        print(problem, file=sys.stderr)
        sys.exit(native.EXIT_CODE)
    if settings.native:
        native.configure(app)
    ui.run(..., **(native.run_options() if settings.native else {}))
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

WINDOW_SIZE = (1280, 860)
"""Width and height in pixels: the gallery shows four columns and the edit dialog fits whole."""
TITLE = "imgedit"
INSTALL_COMMAND = "pip install -r requirements-native.txt"
EXIT_CODE = 2
"""The exit status when the window cannot open: a usage error, like a bad flag."""
WINDOW_CLOSE_TIMEOUT = 5.0
"""Seconds a stopping server waits for the window it asked to close."""
WINDOW_EXIT_TIMEOUT = 3.0
"""Seconds a stopping server then waits for the window's process to end before it stops it."""

_PYWEBVIEW = ("webview", "pywebview")
_QT = (("qtpy", "QtPy"), ("PyQt6", "PyQt6"), ("PyQt6.QtWebEngineWidgets", "PyQt6-WebEngine"))
"""(module, pip package) pairs of pywebview's Qt backend, as ``pywebview[qt]`` installs them."""
_SYSTEM_WEBVIEW = {"darwin": ("objc", "pyobjc-core"), "win32": ("clr", "pythonnet")}
"""macOS and Windows use the system's web view through these bridges (pywebview depends on them)."""

DEBIAN_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbfile.so.1": "libxkbfile1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libnss3.so": "libnss3",
    "libasound.so.2": "libasound2",
    "libXcomposite.so.1": "libxcomposite1",
    "libXdamage.so.1": "libxdamage1",
    "libXrandr.so.2": "libxrandr2",
    "libXtst.so.6": "libxtst6",
}
"""Libraries Qt's window and web engine load that a minimal Debian/Ubuntu may lack, by package."""
_QT_BINARIES = ("plugins/platforms/libqxcb.so", "lib/libQt6WebEngineCore.so.6")

log = logging.getLogger("imgedit.native")

FindSpec = Callable[[str], ModuleSpec | None]


def _importable(module: str, find_spec: FindSpec) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def _uses_qt(platform: str, find_spec: FindSpec) -> bool:
    """Linux without PyGObject: pywebview will use Qt (and must be told, see ``configure``)."""
    return platform.startswith("linux") and not _importable("gi", find_spec)


def missing_packages(
    platform: str = sys.platform, find_spec: FindSpec = importlib.util.find_spec
) -> list[str]:
    """pip names of the packages the native window still needs here, in install order; [] if none."""
    missing = [] if _importable(_PYWEBVIEW[0], find_spec) else [_PYWEBVIEW[1]]
    if platform in _SYSTEM_WEBVIEW:
        module, package = _SYSTEM_WEBVIEW[platform]
        if not _importable(module, find_spec):
            missing.append(package)
    elif _uses_qt(platform, find_spec):
        missing += [package for module, package in _QT if not _importable(module, find_spec)]
    return missing


def missing_libraries(find_spec: FindSpec = importlib.util.find_spec) -> list[str]:
    """Shared libraries (sonames) that Qt's window or web engine cannot find on this Linux."""
    spec = _importable("PyQt6", find_spec) and find_spec("PyQt6")
    ldd = shutil.which("ldd")
    if not spec or not spec.submodule_search_locations or ldd is None:
        return []  # nothing to check with: pywebview reports what it cannot load
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt6"
    missing: list[str] = []
    for binary in _QT_BINARIES:
        if not (qt / binary).exists():
            continue
        result = subprocess.run([ldd, str(qt / binary)], capture_output=True, text=True, timeout=30)
        for line in result.stdout.splitlines():
            name, _, where = line.strip().partition(" => ")
            if where.strip() == "not found" and name not in missing:
                missing.append(name)
    return missing


def has_display(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether a window can be shown: always on macOS/Windows; on Linux an X11 or Wayland
    display, or Qt's offscreen platform (headless tests)."""
    if not platform.startswith("linux"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY") or environ.get("QT_QPA_PLATFORM"))


def problem_message(
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    find_spec: FindSpec = importlib.util.find_spec,
) -> str | None:
    """Why ``--native`` cannot open a window here, as a message for the terminal; None if it can."""
    if packages := missing_packages(platform, find_spec):
        return (
            f"imgedit: --native needs Python packages that are not installed: {', '.join(packages)}.\n"
            f"Install them with:  {INSTALL_COMMAND}\n"
            "(Linux also needs a few system libraries for Qt: see README.md, 'Native window'.)\n"
            "Or run without --native and open imgedit in your browser."
        )
    if not has_display(environ, platform):
        return (
            "imgedit: --native needs a display to open a window on, and neither DISPLAY nor "
            "WAYLAND_DISPLAY is set.\n"
            "Run it from your desktop session (or under xvfb-run), or without --native."
        )
    if _uses_qt(platform, find_spec) and (libraries := missing_libraries(find_spec)):
        known = [DEBIAN_PACKAGES[name] for name in libraries if name in DEBIAN_PACKAGES]
        hint = f"On Debian/Ubuntu:  apt-get install {' '.join(known)}\n" if known else ""
        return (
            "imgedit: --native cannot start Qt: these system libraries are missing: "
            f"{', '.join(libraries)}.\n{hint}"
            "See README.md, 'Native window', for other systems."
        )
    return None


def prepare_environment(
    environ: MutableMapping[str, str] = os.environ, euid: Callable[[], int] | None = None
) -> None:
    """Chromium (inside Qt's web engine) refuses to run as root with its sandbox on, and the
    window then fails without a word; as root, turn the sandbox off for our own local page."""
    uid = euid() if euid is not None else (os.geteuid() if hasattr(os, "geteuid") else 1)
    flags = environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if uid == 0 and "--no-sandbox" not in flags.split():
        environ["QTWEBENGINE_CHROMIUM_FLAGS"] = f"{flags} --no-sandbox".strip()
        log.warning("running as root: the native window's web engine runs without its sandbox")


def configure(app: Any, platform: str = sys.platform, find_spec: FindSpec = importlib.util.find_spec) -> None:
    """Set up NiceGUI's ``app`` for the native window, before ``ui.run``.

    On Linux without PyGObject, pywebview is told to use Qt rather than try GTK first and log a
    traceback. Each page the window loads is logged once it is live (the sign that the window
    works: a window that fails to open otherwise ends the app silently, with status 0).

    Closing the window stops the server (NiceGUI does that). The other way round is ours: when
    the server stops first (SIGTERM, Ctrl+C), the window is closed before it exits; NiceGUI
    alone would leave the window process running, showing a dead page.

    pywebview's ``ALLOW_DOWNLOADS`` stays off: with PyQt6, pywebview 6.2.1's download handler
    calls ``QWebEngineDownloadRequest.setPath`` (a Qt 5 method), and the window process dies on
    the first download. Downloads go through ``SAVE_DIALOG`` and ``save_copy`` instead.
    """
    prepare_environment()
    if _uses_qt(platform, find_spec):
        app.native.start_args["gui"] = "qt"
    app.on_connect(_log_connected)
    closed = asyncio.Event()
    app.native.on("closed", closed.set)

    async def close_window() -> None:
        window = app.native.main_window
        if window is not None and not closed.is_set():
            log.info("closing the native window")
            window.destroy()
            try:
                await asyncio.wait_for(closed.wait(), WINDOW_CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("the native window did not close within %s s", WINDOW_CLOSE_TIMEOUT)
        await asyncio.to_thread(end_window_processes, WINDOW_EXIT_TIMEOUT)

    app.on_shutdown(close_window)


def end_window_processes(within: float) -> None:
    """Wait for the window's process (NiceGUI's daemon child; imgedit starts no other) to end, and
    stop it if it has not: a closed window's process can hang on its way out (Qt WebEngine's
    teardown), and one left running would outlive the server with its web engine."""
    for child in multiprocessing.active_children():
        if not child.daemon:
            continue
        child.join(within)
        if child.is_alive():
            log.warning("the native window's process did not end within %s s; stopping it", within)
            child.kill()
            child.join(within)


def _log_connected(client: Any) -> None:
    path = getattr(getattr(client, "page", None), "path", "?")
    log.info("the native window shows %s", path)


def run_options() -> dict[str, Any]:
    """Keyword arguments for ``ui.run`` that open the window (NiceGUI then picks no browser)."""
    return {"native": True, "window_size": WINDOW_SIZE}


# -- downloads: the window and the server are on the same computer ------------------------------

SAVE_DIALOG = 30
"""``webview.FileDialog.SAVE``, for ``app.native.main_window.create_file_dialog`` (no webview import)."""


def downloads_folder(home: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """Where a save dialog starts: the desktop's Downloads folder (XDG_DOWNLOAD_DIR on Linux),
    else ``~/Downloads``, else the home folder."""
    home = home or Path.home()
    chosen = environ.get("XDG_DOWNLOAD_DIR", "") or _xdg_user_dir(home, "XDG_DOWNLOAD_DIR")
    for folder in (Path(chosen) if chosen else None, home / "Downloads"):
        if folder is not None and folder.is_dir():
            return folder
    return home


def _xdg_user_dir(home: Path, name: str) -> str:
    """One entry of ``~/.config/user-dirs.dirs`` (lines like ``XDG_DOWNLOAD_DIR="$HOME/Downloads"``)."""
    try:
        lines = (home / ".config" / "user-dirs.dirs").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip().strip('"').replace("$HOME", str(home))
    return ""


def chosen_path(answer: Sequence[str] | str | None) -> Path | None:
    """The path a save dialog answered (pywebview gives a tuple, a string or None when cancelled)."""
    if not answer:
        return None
    first = answer if isinstance(answer, str) else answer[0]
    return Path(first) if first else None


def _copy(source: Path, target: Path) -> None:
    """Copy through ``*.tmp`` and replace, so a failed copy leaves no half-written image."""
    partial = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


async def save_copy(source: Path, target: Path) -> None:
    """Copy a stored image to where the user chose, in a worker thread (never on the event loop)."""
    await asyncio.to_thread(_copy, source, target)
