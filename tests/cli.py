"""The command line as a user runs it: the real entry point, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "promise_tracker.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
