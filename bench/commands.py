"""Start ``python -m toolkit`` in a folder, as the command-line benches do (stderr kept
for the last line of a failure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_toolkit(args: list[str], folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
