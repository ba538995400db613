"""Run ``static/imgedit.js``'s pure functions under node, for tests that hold them to the Python.

Importing this module skips the importing test module where node is missing, except in CI
(``IMGEDIT_REQUIRE_BROWSER=1``), where that is a failure.

Usage: ``from tests.node import run_script``; ``run_script(RUNNER, cases)`` with a RUNNER that
``require``s ``process.argv[1]`` (the script) and reads the JSON cases from stdin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "static" / "imgedit.js"
NODE = shutil.which("node")
if NODE is None and os.environ.get("IMGEDIT_REQUIRE_BROWSER") != "1":
    pytest.skip("node is not installed (apt-get install -y nodejs)", allow_module_level=True)


def run_script(runner: str, cases: Any, script: Path = SCRIPT) -> Any:
    """``runner`` under node with ``script`` as its argument and ``cases`` as JSON on stdin."""
    assert NODE is not None, "node is not installed (apt-get install -y nodejs)"
    done = subprocess.run(
        [NODE, "-e", runner, str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)
