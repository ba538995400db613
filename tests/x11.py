"""A few X11 calls through ctypes (libX11 ships with every X server and with Qt's xcb plugin):
find a top-level window by its title and ask it to close the way a window manager's close
button does (a ``WM_DELETE_WINDOW`` message), so a test needs no window manager or xdotool.

Usage::

    with Display(":99") as display:
        for window in display.windows_named("imgedit"):
            display.request_close(window)
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
    return lib


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
