"""Start-up: do not load the libraries a server never uses until something uses them.

NiceGUI imports python-socketio, whose package imports its *client* classes too; they import
``aiohttp`` and ``requests`` (with urllib3 and charset_normalizer), about a quarter of a second of
``python main.py`` on a 2-core machine, for code that only a socket.io client would run.
:func:`defer` puts a stand-in module in ``sys.modules`` for each: ``import aiohttp`` then binds the
stand-in, and the first attribute anyone reads from it (``aiohttp.ClientSession``, ``from aiohttp
import web``, ``import aiohttp.web``) imports the real library, puts it in ``sys.modules`` in the
stand-in's place and answers from it. Nothing is lost; what is never used is never loaded.

Call it before NiceGUI is imported (main.py does, first thing); later it changes nothing for a
module already imported. ``importlib.util.LazyLoader`` cannot do this on Python 3.11: the import
statement itself reads ``__spec__`` of the module it finds in ``sys.modules``, which loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

UNUSED_BY_A_SERVER = ("aiohttp", "requests")
"""Imported at start-up only by socket.io's and engine.io's client modules."""

_lock = threading.RLock()


class Deferred(types.ModuleType):
    """Stands in for a module until its first attribute is read, then forwards to the real one."""

    def __getattr__(self, attribute: str) -> Any:  # only called for what the stand-in lacks
        return getattr(self._load(), attribute)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def _load(self) -> types.ModuleType:
        name = self.__name__
        with _lock:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(name) is self:
                    del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules.setdefault(name, self)  # as it was: the next use tries again
                    raise
                self.__dict__["_real"] = real
            return real


def defer(names: tuple[str, ...] = UNUSED_BY_A_SERVER) -> list[str]:
    """Put a stand-in in ``sys.modules`` for each installed, not yet imported module of
    ``names``; returns the names deferred."""
    deferred = []
    for name in names:
        if name in sys.modules or importlib.util.find_spec(name) is None:
            continue  # already loaded (nothing to save) or not installed (imports fail as usual)
        sys.modules[name] = Deferred(name)
        deferred.append(name)
    return deferred
