"""The README's connector author's guide uses the public API only, and every name it imports exists.

A guide whose example imports a name that was renamed or moved inward would send a new author to
an internal module (or to an ImportError): this test reads the Python blocks of the guide's
sections and checks each ``from dbkit... import`` against the ``__all__`` of that package.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = ("## Write your own connector", "## Test your connector")
PUBLIC = {
    "dbkit",
    "dbkit.source",
    "dbkit.destination",
    "dbkit.db",
    "dbkit.protocol",
    "dbkit.testing",
    "dbkit.testing.suites",
}


def _guide_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks: list[str] = []
    for heading in SECTIONS:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        section = text[start : end if end >= 0 else len(text)]
        blocks.extend(re.findall(r"```python\n(.*?)```", section, flags=re.S))
    return blocks


def _dbkit_imports(block: str) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dbkit":
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names if a.name.split(".")[0] == "dbkit")
    return found


def test_the_guide_has_examples_that_import_dbkit() -> None:
    imports = [i for block in _guide_blocks() for i in _dbkit_imports(block)]
    modules = {module for module, _ in imports}
    assert {"dbkit", "dbkit.source", "dbkit.destination", "dbkit.db"} <= modules


@pytest.mark.parametrize("block", _guide_blocks())
def test_every_import_of_the_guide_is_public_and_exists(block: str) -> None:
    for module, names in _dbkit_imports(block):
        assert module in PUBLIC, f"the guide imports the internal module {module}"
        exported = set(importlib.import_module(module).__all__)
        missing = [name for name in names if name not in exported]
        assert not missing, f"the guide imports {missing} from {module}, which does not export them"
