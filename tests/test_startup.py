"""Start-up imports (issue 9, P6): what a server never uses is not loaded, and still works if used.

Each check runs in a fresh interpreter, the way ``python main.py`` starts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_app_loads_no_socketio_client_library_and_no_remote_provider() -> None:
    out = run_fresh(
        """
        import sys
        import main
        loaded = [name for name in ("aiohttp.client", "requests.sessions", "urllib3", "httpx",
                                    "imgedit.providers.openai", "imgedit.providers.sdwebui")
                  if name in sys.modules]
        print(loaded)
        """
    )
    assert out.strip() == "[]"


def test_a_deferred_library_loads_on_first_use_in_every_import_form() -> None:
    out = run_fresh(
        """
        import sys
        from imgedit import deferred_imports
        print(deferred_imports.defer())
        import nicegui
        import aiohttp
        print("aiohttp.client" in sys.modules)
        print(aiohttp.ClientSession.__name__)           # attribute use loads it
        print(type(sys.modules["aiohttp"]).__name__)      # the real module took the stand-in's place
        import aiohttp.web                                # a submodule of a deferred package
        print(aiohttp.web.Application.__name__)
        from requests import Session                      # from-import
        print(Session.__module__)
        print(deferred_imports.defer())                   # a second call: nothing left to defer
        """
    )
    assert out.split() == [
        "['aiohttp',", "'requests']", "False", "ClientSession", "module", "Application",
        "requests.sessions", "[]",
    ]


def test_a_missing_library_is_not_deferred_and_fails_to_import_as_usual() -> None:
    out = run_fresh(
        """
        from imgedit import deferred_imports
        print(deferred_imports.defer(("no_such_library_here",)))
        try:
            import no_such_library_here
        except ModuleNotFoundError:
            print("missing")
        """
    )
    assert out.split() == ["[]", "missing"]
