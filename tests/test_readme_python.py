"""The README's Python examples (section "Use dbkit from Python") run, in order, in an empty
directory, and print what the README shows (its ``# ...`` lines at the left margin)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use dbkit from Python"


def examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def shown_output(block: str) -> list[str]:
    """What the block prints: its lines that start with ``# `` (at the left margin), in order."""
    return [line[2:] for line in block.splitlines() if line.startswith("# ")]


def test_the_section_has_the_examples_the_issue_asks_for() -> None:
    code = "\n".join(examples())
    for call in ("dbkit.sync(", "dbkit.read(", "dbkit.read_batches(", "duckdb.sql("):
        assert call in code


def test_the_python_examples_run_and_print_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for number, block in enumerate(examples(), 1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"README.md example {number}", "exec"), namespace)  # noqa: S102
        assert printed.getvalue().splitlines() == shown_output(block), f"example {number}"
    assert (tmp_path / "warehouse.db").exists()
    assert namespace["result"].ok
