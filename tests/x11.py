"""A few X11 calls through ctypes (libX11 ships with every X server and with Qt's xcb plugin):
find a top-level window by its title and ask it to close the way a window manager's close
button does (a ``WM_DELETE_WINDOW`` message), so a test needs no window manager or xdotool;
and, through the XTEST extension (libXtst, which Qt's web engine needs anyway), real mouse
clicks and key presses, as if from the hardware.

Usage::

    with Display(":99") as display:
        for window in display.windows_named("imgedit"):
            display.request_close(window)
        display.click(640, 400)
        display.press("Tab")
"""

from __future__ import annotations

import ctypes
import ctypes.util
from types import TracebackType

_CLIENT_MESSAGE = 33
_CURRENT_TIME = 0


class _ClientMessage(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    )


class _Event(ctypes.Union):
    _fields_ = (("client", _ClientMessage), ("pad", ctypes.c_long * 24))


class _Attributes(ctypes.Structure):
    """XWindowAttributes (only ``map_state`` is read)."""

    _fields_ = (
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("border_width", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("visual", ctypes.c_void_p),
        ("root", ctypes.c_ulong),
        ("class_", ctypes.c_int),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int),
        ("map_state", ctypes.c_int),
        ("all_event_masks", ctypes.c_long),
        ("your_event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int),
        ("screen", ctypes.c_void_p),
    )


def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    lib = ctypes.CDLL(name)
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = (ctypes.c_char_p,)
    lib.XCloseDisplay.argtypes = (ctypes.c_void_p,)
    lib.XDefaultRootWindow.restype = ctypes.c_ulong
    lib.XDefaultRootWindow.argtypes = (ctypes.c_void_p,)
    lib.XQueryTree.argtypes = (
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
        ctypes.POINTER(ctypes.c_uint),
    )
    lib.XFetchName.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_void_p))
    lib.XFree.argtypes = (ctypes.c_void_p,)
    lib.XInternAtom.restype = ctypes.c_ulong
    lib.XInternAtom.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)
    lib.XSendEvent.argtypes = (
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(_Event),
    )
    lib.XFlush.argtypes = (ctypes.c_void_p,)
    lib.XSync.argtypes = (ctypes.c_void_p, ctypes.c_int)
    lib.XStringToKeysym.restype = ctypes.c_ulong
    lib.XStringToKeysym.argtypes = (ctypes.c_char_p,)
    lib.XKeysymToKeycode.restype = ctypes.c_ubyte
    lib.XKeysymToKeycode.argtypes = (ctypes.c_void_p, ctypes.c_ulong)
    lib.XSetInputFocus.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    lib.XGetWindowAttributes.argtypes = (ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_Attributes))
    return lib


_IS_VIEWABLE = 2
_REVERT_TO_PARENT = 2


def _xtest() -> ctypes.CDLL | None:
    """libXtst, or None where it is not installed."""
    name = ctypes.util.find_library("Xtst") or "libXtst.so.6"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.XTestFakeMotionEvent.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_ulong,
    )
    lib.XTestFakeButtonEvent.argtypes = (ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong)
    lib.XTestFakeKeyEvent.argtypes = (ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong)
    return lib


def has_xtest() -> bool:
    """Whether real input can be sent (libXtst is installed)."""
    return _xtest() is not None


class Display:
    """One connection to an X display, closed on exit."""

    def __init__(self, name: str) -> None:
        self._lib = _library()
        self._display = self._lib.XOpenDisplay(name.encode())
        if not self._display:
            raise OSError(f"cannot open X display {name}")

    def __enter__(self) -> Display:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._lib.XCloseDisplay(self._display)

    def _children(self, window: int) -> list[int]:
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children = ctypes.POINTER(ctypes.c_ulong)()
        count = ctypes.c_uint()
        if not self._lib.XQueryTree(
            self._display,
            window,
            ctypes.byref(root),
            ctypes.byref(parent),
            ctypes.byref(children),
            ctypes.byref(count),
        ):
            return []
        found = [children[i] for i in range(count.value)]
        if children:
            self._lib.XFree(children)
        return found

    def _name(self, window: int) -> str:
        name = ctypes.c_void_p()
        if not self._lib.XFetchName(self._display, window, ctypes.byref(name)) or not name.value:
            return ""
        text = ctypes.string_at(name.value).decode(errors="replace")
        self._lib.XFree(name)
        return text

    def windows_named(self, title: str) -> list[int]:
        """Windows (any depth) whose WM_NAME is ``title``."""
        found: list[int] = []
        pending = [self._lib.XDefaultRootWindow(self._display)]
        while pending:
            window = pending.pop()
            if self._name(window) == title:
                found.append(window)
            pending.extend(self._children(window))
        return found

    def request_close(self, window: int) -> None:
        """What a window manager's close button sends: WM_PROTOCOLS / WM_DELETE_WINDOW."""
        event = _Event()
        event.client.type = _CLIENT_MESSAGE
        event.client.window = window
        event.client.message_type = self._lib.XInternAtom(self._display, b"WM_PROTOCOLS", 0)
        event.client.format = 32
        event.client.data[0] = self._lib.XInternAtom(self._display, b"WM_DELETE_WINDOW", 0)
        event.client.data[1] = _CURRENT_TIME
        self._lib.XSendEvent(self._display, window, 0, 0, ctypes.byref(event))
        self._lib.XFlush(self._display)

    def is_viewable(self, window: int) -> bool:
        """Mapped, with every ancestor mapped: it is on the screen."""
        attributes = _Attributes()
        if not self._lib.XGetWindowAttributes(self._display, window, ctypes.byref(attributes)):
            return False
        return attributes.map_state == _IS_VIEWABLE

    def focus(self, window: int) -> None:
        """Give ``window`` the keyboard, as a window manager does when it is clicked."""
        self._lib.XSetInputFocus(self._display, window, _REVERT_TO_PARENT, _CURRENT_TIME)
        self._lib.XSync(self._display, 0)

    def _fake(self) -> ctypes.CDLL:
        xtest = _xtest()
        if xtest is None:
            raise OSError("libXtst is not installed (apt-get install -y libxtst6)")
        return xtest

    def click(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) on the screen and click the left button there."""
        xtest = self._fake()
        xtest.XTestFakeMotionEvent(self._display, -1, x, y, _CURRENT_TIME)
        xtest.XTestFakeButtonEvent(self._display, 1, 1, _CURRENT_TIME)
        xtest.XTestFakeButtonEvent(self._display, 1, 0, _CURRENT_TIME)
        self._lib.XSync(self._display, 0)

    def press(self, key: str) -> None:
        """Press and release one key, named by its X keysym ("Tab", "Return", "a")."""
        xtest = self._fake()
        code = self._lib.XKeysymToKeycode(self._display, self._lib.XStringToKeysym(key.encode()))
        if not code:
            raise ValueError(f"no key for {key!r} on this display")
        xtest.XTestFakeKeyEvent(self._display, code, 1, _CURRENT_TIME)
        xtest.XTestFakeKeyEvent(self._display, code, 0, _CURRENT_TIME)
        self._lib.XSync(self._display, 0)
