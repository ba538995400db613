"""``python main.py --native``: the message when the window cannot open, and the real window.

The message tests always run: a ``sitecustomize`` shim makes pywebview or Qt unimportable in
the child, and the child must print what is missing and how to install it, with status 2 and
no traceback. The window tests start the real app in a real Qt window under Xvfb, wait until
the window has loaded the gallery (the server logs it), then close the window the way a window
manager's close button does, or stop the server with SIGTERM, and check that every process of
the tree ends and the port is free. One more downloads an image through the window's save
dialog with real input (XTEST clicks and keys): card, Download, Enter in Qt's dialog, and the
stored bytes land in a fake home's Downloads. Without requirements-native.txt or Xvfb they skip
with the reason; with IMGEDIT_REQUIRE_NATIVE=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
from PIL import Image

from imgedit import native
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
LOADED = "the native window shows /"
REQUIRED = os.environ.get("IMGEDIT_REQUIRE_NATIVE") == "1"


def clean_env(**extra: str) -> dict[str, str]:
    """The user's environment without the test harness's, the developer's keys or a display."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "NICEGUI_", "IMGEDIT_", "OPENAI_"))
        and k not in {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}
    }
    env.update(extra)
    return env


# -- what main.py says when the window cannot open (always runs) ------------------------------

BLOCKER = """
import importlib.abc, sys

BLOCKED = {blocked!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def run_native_without(tmp_path: Path, *blocked: str, **env: str) -> subprocess.CompletedProcess[str]:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)))
    command = [sys.executable, "main.py", "--native", "--data-dir", str(tmp_path / "data")]
    return subprocess.run(
        command,
        cwd=ROOT,
        env=clean_env(PYTHONPATH=str(shim), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clear_refusal(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == native.EXIT_CODE, output
    assert "Traceback" not in output
    assert "Native mode is not supported" not in output
    assert "NiceGUI ready" not in output  # refused before any server started
    return result.stderr


def test_without_pywebview_native_names_the_packages_and_the_install_command(tmp_path: Path) -> None:
    message = assert_clear_refusal(run_native_without(tmp_path, "webview", "qtpy", "PyQt6", "gi"))
    assert "pywebview" in message
    assert "pip install -r requirements-native.txt" in message
    if sys.platform.startswith("linux"):
        assert "PyQt6-WebEngine" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt is the backend on Linux only")
def test_pywebview_without_a_gui_backend_is_refused_too(tmp_path: Path) -> None:
    message = assert_clear_refusal(run_native_without(tmp_path, "qtpy", "PyQt6", "gi"))
    assert "QtPy, PyQt6, PyQt6-WebEngine" in message
    assert "pip install -r requirements-native.txt" in message


# -- the checks, without processes ------------------------------------------------------------


def finder(*present: str) -> native.FindSpec:
    def find_spec(name: str) -> ModuleSpec | None:
        return ModuleSpec(name, None) if name in present else None

    return find_spec


def test_missing_packages_follow_the_platform() -> None:
    qt = ("webview", "qtpy", "PyQt6", "PyQt6.QtWebEngineWidgets")
    assert native.missing_packages("linux", finder(*qt)) == []
    assert native.missing_packages("linux", finder("webview", "gi")) == []  # GTK will do
    assert native.missing_packages("linux", finder("webview", "qtpy", "PyQt6")) == ["PyQt6-WebEngine"]
    assert native.missing_packages("linux", finder()) == ["pywebview", "QtPy", "PyQt6", "PyQt6-WebEngine"]
    assert native.missing_packages("darwin", finder("webview", "objc")) == []
    assert native.missing_packages("darwin", finder()) == ["pywebview", "pyobjc-core"]
    assert native.missing_packages("win32", finder("webview")) == ["pythonnet"]


def test_a_linux_without_a_display_is_told_so() -> None:
    everything = finder("webview", "gi")
    message = native.problem_message({}, "linux", everything)
    assert message is not None and "DISPLAY" in message
    assert native.problem_message({"DISPLAY": ":0"}, "linux", everything) is None
    assert native.problem_message({"QT_QPA_PLATFORM": "offscreen"}, "linux", everything) is None
    assert native.problem_message({}, "darwin", finder("webview", "objc")) is None


def test_as_root_the_web_engine_runs_without_its_sandbox_once() -> None:
    env: dict[str, str] = {"QTWEBENGINE_CHROMIUM_FLAGS": "--disable-gpu"}
    native.prepare_environment(env, euid=lambda: 0)
    native.prepare_environment(env, euid=lambda: 0)
    assert env["QTWEBENGINE_CHROMIUM_FLAGS"] == "--disable-gpu --no-sandbox"
    user: dict[str, str] = {}
    native.prepare_environment(user, euid=lambda: 1000)
    assert user == {}


def _hang() -> None:
    time.sleep(60)  # a window process stuck on its way out


def test_a_window_process_that_does_not_end_is_stopped_with_the_server() -> None:
    """The server's last step on shutdown: a window process still running after its window was
    asked to close (Qt WebEngine can hang in its teardown) is stopped, not left behind."""
    import multiprocessing

    stuck = multiprocessing.get_context("spawn").Process(target=_hang, daemon=True)
    stuck.start()
    try:
        started = time.monotonic()
        native.end_window_processes(0.5)
        assert not stuck.is_alive(), "the stuck window process was stopped"
        assert stuck.exitcode == -signal.SIGKILL
        assert time.monotonic() - started < 10
    finally:
        if stuck.is_alive():
            stuck.kill()


def test_downloads_start_in_the_desktops_downloads_folder(tmp_path: Path) -> None:
    assert native.downloads_folder(tmp_path, {}) == tmp_path  # no Downloads folder: home
    (tmp_path / "Downloads").mkdir()
    assert native.downloads_folder(tmp_path, {}) == tmp_path / "Downloads"
    (tmp_path / "Bilder" / "Heruntergeladen").mkdir(parents=True)
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "user-dirs.dirs").write_text(
        '# written by xdg-user-dirs-update\nXDG_DOWNLOAD_DIR="$HOME/Bilder/Heruntergeladen"\n'
    )
    assert native.downloads_folder(tmp_path, {}) == tmp_path / "Bilder" / "Heruntergeladen"


async def test_a_saved_copy_is_whole_and_leaves_nothing_else(tmp_path: Path) -> None:
    source = tmp_path / "image.png"
    source.write_bytes(b"\x89PNG" + bytes(range(256)) * 100)
    target = tmp_path / "out" / "saved.png"
    target.parent.mkdir()
    assert native.chosen_path(None) is None
    assert native.chosen_path(()) is None
    assert native.chosen_path((str(target),)) == target
    await native.save_copy(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["saved.png"]
    with pytest.raises(FileNotFoundError):
        await native.save_copy(tmp_path / "gone.png", target.parent / "other.png")
    assert [p.name for p in target.parent.iterdir()] == ["saved.png"]


# -- the real window under Xvfb ----------------------------------------------------------------

WHY_NOT = (
    "native packages missing (pip install -r requirements-native.txt)"
    if native.missing_packages()
    else "Xvfb not found (apt-get install -y xvfb)"
    if shutil.which("Xvfb") is None
    else native.problem_message({"DISPLAY": ":0"})
    if sys.platform.startswith("linux")
    else "the window test drives X11 (Linux only)"
)
needs_window = pytest.mark.skipif(
    not sys.platform.startswith("linux") or (bool(WHY_NOT) and not REQUIRED),
    reason=f"native window test: {WHY_NOT}",
)


def wait_for(condition: object, within: float, what: str) -> None:
    """Poll ``condition`` (a callable) until it is true; fail with ``what`` after ``within`` s."""
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {within} s)")
        time.sleep(0.05)  # polling other processes with a deadline


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A fresh X server; ``-displayfd`` tells us its display number once it accepts clients."""
    if WHY_NOT and REQUIRED:
        pytest.fail(f"IMGEDIT_REQUIRE_NATIVE=1 but {WHY_NOT}")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()  # blocks until Xvfb is ready
    assert number, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an exited child that a reaper has not collected yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_is_free(port: int) -> bool:
    """Nothing listens and a new server could bind it (as uvicorn does, through TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class NativeApp:
    """``python main.py --native`` on a display, with its log; ``tree`` is every process it started."""

    def __init__(self, folder: Path, display: str, **extra_env: str) -> None:
        self.port = free_port()
        self.log_path = folder / "native.log"
        env = clean_env(DISPLAY=display, QTWEBENGINE_CHROMIUM_FLAGS="--disable-gpu", **extra_env)
        command = [sys.executable, "main.py", "--native", "--port", str(self.port)]
        command += ["--data-dir", str(folder / "data")]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.tree: set[int] = set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_loaded(self, within: float = 45.0) -> None:
        def loaded() -> bool:
            assert self.process.poll() is None, f"exited before the window loaded:\n{self.log()}"
            return LOADED in self.log()

        wait_for(loaded, within, f"the window did not load the gallery:\n{self.log()}")
        self.tree = descendants(self.process.pid)
        assert len(self.tree) >= 2, "expected the window process and its web engine"

    def wait_gone(self, within: float) -> int:
        code = self.process.wait(timeout=within)
        wait_for(
            lambda: not any(is_running(pid) for pid in self.tree),
            within,
            f"processes left behind: {sorted(pid for pid in self.tree if is_running(pid))}",
        )
        wait_for(lambda: port_is_free(self.port), 5.0, f"port {self.port} still taken")
        return code

    def kill(self) -> None:
        for pid in [self.process.pid, *self.tree]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def native_app(tmp_path: Path, xvfb: str) -> Iterator[NativeApp]:
    app = NativeApp(tmp_path, xvfb)
    yield app
    app.kill()


def screenshot(display: str, name: str) -> None:
    from PIL import ImageGrab

    ARTIFACTS.mkdir(exist_ok=True)
    ImageGrab.grab(xdisplay=display).save(ARTIFACTS / name)


@needs_window
def test_closing_the_window_stops_the_whole_app(native_app: NativeApp, xvfb: str) -> None:
    from PIL import ImageChops, ImageGrab

    from tests.x11 import Display

    native_app.wait_loaded()
    # Close once the page is drawn and still, as a person would: pywebview is done setting up
    # the page then (closing in the very instant it loads races NiceGUI's drop handler set-up).
    frames: list[Image.Image] = []

    def drawn_and_still() -> bool:
        frames[:] = [*frames[-1:], ImageGrab.grab(xdisplay=xvfb)]
        colours = frames[-1].convert("RGB").getcolors(maxcolors=4096)
        return (
            len(frames) == 2
            and (colours is None or len(colours) > 50)  # the gallery, not a blank window
            and ImageChops.difference(frames[0].convert("RGB"), frames[1].convert("RGB")).getbbox() is None
        )

    wait_for(drawn_and_still, 20.0, "the window never showed a still gallery")
    with Display(xvfb) as display:
        windows = display.windows_named(native.TITLE)
        assert windows, "no window titled imgedit"
        screenshot(xvfb, "native-window.png")
        started = time.monotonic()
        for window in windows:
            display.request_close(window)
    assert native_app.wait_gone(within=15.0) == 0, native_app.log()
    assert time.monotonic() - started < 10
    assert "Traceback" not in native_app.log()


@needs_window
def test_stopping_the_server_closes_the_window(native_app: NativeApp, xvfb: str) -> None:
    from tests.x11 import Display

    native_app.wait_loaded()
    native_app.process.terminate()  # what a service manager, a logout or `kill` does
    native_app.wait_gone(within=15.0)
    with Display(xvfb) as display:
        assert display.windows_named(native.TITLE) == []


# -- a download through the window's save dialog, driven by real input -------------------------

MAGENTA_TITLE = "Harbour at dusk"
MAGENTA_FILE = "Harbour-at-dusk.png"  # routes.download_names: the title, spaces as "-"


def magenta_box(shot: Image.Image) -> tuple[int, int, int, int] | None:
    """Where full-strength magenta is in a screenshot (the seeded picture, undimmed), or None."""
    from PIL import ImageChops

    red, green, blue = shot.convert("RGB").split()
    mask = ImageChops.multiply(
        ImageChops.multiply(
            red.point(lambda v: 255 if v > 230 else 0), green.point(lambda v: 255 if v < 30 else 0)
        ),
        blue.point(lambda v: 255 if v > 230 else 0),
    )
    return mask.getbbox()


@needs_window
def test_download_in_the_window_saves_the_image_through_the_save_dialog(tmp_path: Path, xvfb: str) -> None:
    """Click the card, Tab to Download, Enter; the save dialog opens in ~/Downloads with the
    image's title as the file name, Enter saves it: the stored image's bytes, nothing else."""
    from io import BytesIO

    from PIL import ImageChops, ImageGrab

    from imgedit.models import ImageOrigin
    from imgedit.storage import ImageStore
    from tests.x11 import Display, has_xtest

    if not has_xtest():
        why = "libXtst not found (apt-get install -y libxtst6)"
        if REQUIRED:
            pytest.fail(f"IMGEDIT_REQUIRE_NATIVE=1 but {why}")
        pytest.skip(f"native window test: {why}")

    # One image, one colour nothing else on the page has: the test finds its card on the screen.
    picture = BytesIO()
    Image.new("RGB", (320, 240), (255, 0, 255)).save(picture, "PNG")
    store = ImageStore(tmp_path / "data")
    store.open()
    record = store.add_sync(picture.getvalue(), origin=ImageOrigin.UPLOAD, name=MAGENTA_TITLE)
    stored = store.path_of(record).read_bytes()
    store.close()
    home = tmp_path / "home"
    downloads = home / "Downloads"
    downloads.mkdir(parents=True)
    app = NativeApp(tmp_path, xvfb, HOME=str(home), XDG_DOWNLOAD_DIR=str(downloads))
    try:
        app.wait_loaded()
        card: list[tuple[int, int, int, int] | None] = [None]

        def card_drawn() -> bool:
            card[0] = magenta_box(ImageGrab.grab(xdisplay=xvfb))
            return card[0] is not None

        wait_for(card_drawn, 15.0, "the seeded image's card was not drawn")
        left, top, right, bottom = card[0] or (0, 0, 0, 0)
        with Display(xvfb) as display:
            windows = [w for w in display.windows_named(native.TITLE) if display.is_viewable(w)]
            assert windows, "no window titled imgedit on the screen"
            display.focus(windows[0])
            display.click((left + right) // 2, (top + bottom) // 2)

            # The image dialog is open (its picture is elsewhere, the card is dimmed) and has
            # stopped moving for longer than Quasar's 300 ms transition: the keyboard focus is in
            # it. (Two equal frames were not enough: a loaded machine can stall a frame mid-way.)
            frames: list[tuple[float, Image.Image]] = []

            def still_since(since: float) -> bool:
                now = time.monotonic()
                frames[:] = [*frames, (now, ImageGrab.grab(xdisplay=xvfb))]
                newest = frames[-1][1]
                while ImageChops.difference(frames[0][1], newest).getbbox() is not None:
                    frames.pop(0)
                return now - frames[0][0] >= since

            def dialog_settled() -> bool:
                box = magenta_box(ImageGrab.grab(xdisplay=xvfb))
                return box is not None and box != card[0] and still_since(0.5)

            wait_for(dialog_settled, 20.0, "the image dialog did not open")
            for _ in range(2):  # View, then Download: each Tab moves the focus ring, seen on screen
                before = ImageGrab.grab(xdisplay=xvfb)
                display.press("Tab")
                wait_for(
                    lambda before=before: (
                        ImageChops.difference(before, ImageGrab.grab(xdisplay=xvfb)).getbbox() is not None
                    ),
                    10.0,
                    "Tab moved no focus ring",
                )
                frames.clear()
                wait_for(lambda: still_since(0.3), 10.0, "the screen did not settle after Tab")
            display.press("Return")  # activate Download

            saving: list[int] = []

            def save_dialog_shown() -> bool:
                saving[:] = [w for w in display.windows_named("Save file") if display.is_viewable(w)]
                return bool(saving)

            wait_for(save_dialog_shown, 30.0, "no save dialog opened")
            display.focus(saving[0])
            display.press("Return")  # the file name is filled in; Enter saves

            target = downloads / MAGENTA_FILE
            wait_for(target.exists, 10.0, f"{MAGENTA_FILE} was not saved in Downloads")
            wait_for(lambda: not save_dialog_shown(), 5.0, "the save dialog stayed open")
        assert target.read_bytes() == stored
        assert sorted(p.name for p in downloads.iterdir()) == [MAGENTA_FILE]  # no partial copy left
        assert "Traceback" not in app.log(), app.log()
    except AssertionError:
        screenshot(xvfb, "native-download-failed.png")
        raise
    finally:
        app.kill()
