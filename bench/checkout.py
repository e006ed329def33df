"""Run a command with the code of another checkout (``--before``: a git worktree of the code before
a change), for A/B benchmarks in one run.

``PYTHONPATH`` alone does not do it: dbkit and destination-postgres, which build C extensions, are
installed in the venv as editable packages found by an import hook (setuptools' ``__editable__``
finders on ``sys.meta_path``), which is asked before ``sys.path``. So ``dbkit`` stayed this
tree's whatever ``PYTHONPATH`` said. :func:`argv` runs the command in a Python whose editable
finders are removed and whose path starts with the checkout's packages. The checkout needs its
C extensions: copy this tree's ``*.so`` files into it (``bench/README.md``) or build them there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

_SHIM = (
    "import importlib, runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path"
    " if not str(getattr(f, '__module__', '')).startswith('__editable__')]\n"
    "sys.path[:0] = sys.argv[1].split(':')\n"
    "target = sys.argv[2]\n"
    "del sys.argv[1:3]\n"
    "if target.endswith('.py'):\n"
    "    sys.argv[0] = target\n"
    "    runpy.run_path(target, run_name='__main__')\n"
    "else:\n"
    "    module, _, function = target.partition(':')\n"
    "    sys.argv[0] = module\n"
    "    sys.exit(getattr(importlib.import_module(module), function)())\n"
)


def argv(tree: Path, connectors: Sequence[str], target: str, *args: str) -> list[str]:
    """``target`` (``module:function``, e.g. ``destination_mysql:run``, or a script's path) run
    with ``args`` on the code of ``tree`` and of its ``connectors/<name>`` packages."""
    paths = [str(tree.resolve())] + [str(tree.resolve() / "connectors" / name) for name in connectors]
    return [sys.executable, "-P", "-c", _SHIM, ":".join(paths), target, *args]
