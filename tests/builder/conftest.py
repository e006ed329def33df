"""Helpers of the builder tests: the ``dbkit`` command as a real process, and SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_dbkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``dbkit ARGS`` as a real process (the installed console script), in a wide terminal."""
    return subprocess.run(
        [str(BIN / "dbkit"), *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
