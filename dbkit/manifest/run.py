"""``dbkit run MANIFEST COMMAND ...``: the manifest's source, run by the protocol entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from dbkit.config import MASKER
from dbkit.entrypoint import launch
from dbkit.errors import DbkitError, as_dbkit_error
from dbkit.manifest.loader import load_manifest
from dbkit.protocol import MessageWriter
from dbkit.protocol import messages as msg
from dbkit.runner.registry import ConnectorInfo


def run_command(manifest: str, arguments: Sequence[str], stdout: BinaryIO | None = None) -> int:
    """Load the manifest and run ``arguments`` (``spec``, ``check --config c.json``, ...) as its
    console script would; a manifest that does not load is a TRACE config_error (exit 1)."""
    try:
        source = load_manifest(manifest)
    except Exception as exc:
        error: DbkitError = as_dbkit_error(exc)
        writer = MessageWriter(stdout if stdout is not None else sys.stdout.buffer)
        writer.write(msg.trace_error(MASKER.mask(error.message), error.failure_type))
        writer.flush()
        return 1
    return launch(source(), list(arguments), stdout=stdout)


def manifest_connector(path: str) -> ConnectorInfo:
    """How ``dbkit sync --source MANIFEST`` runs a manifest: in process from the loaded class, as
    a subprocess ``dbkit run MANIFEST ...``. Raises ManifestError (a config_error)."""
    file = Path(path).resolve()
    source = load_manifest(file)
    return ConnectorInfo(source.name, "source", factory=lambda: source(), command=("dbkit", "run", str(file)))
