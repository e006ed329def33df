"""``dbkit validate``: check a stream of Airbyte messages strictly (see
:class:`dbkit.protocol.StreamValidator`), printing each problem as it is found."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import BinaryIO, TextIO

from dbkit.config import MASKER
from dbkit.protocol import (
    AirbyteStream,
    ConfiguredCatalog,
    ProtocolInputError,
    StreamValidator,
    parse_airbyte_stream,
    parse_configured_catalog,
)
from dbkit.protocol.jsonio import read_json_file


def _read_catalog(path: str) -> ConfiguredCatalog | list[AirbyteStream]:
    """The file's configured catalog, catalog or CATALOG message; raises ProtocolInputError."""
    doc = read_json_file(path, "catalog")
    if isinstance(doc, Mapping) and doc.get("type") == "CATALOG":
        doc = doc.get("catalog")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("streams"), list):
        raise ProtocolInputError("catalog", "expected an object with a 'streams' array")
    items = doc["streams"]
    if items and all(isinstance(i, Mapping) and "stream" in i for i in items):
        return parse_configured_catalog(doc)
    return [parse_airbyte_stream(item, f"streams[{i}]") for i, item in enumerate(items)]


def validate_command(file: str | None, catalog_path: str | None, out: TextIO, err: TextIO) -> int:
    """``dbkit validate``: problems to ``out``, the summary to ``err``; exit 0, 1 (problems) or 2."""
    catalog: ConfiguredCatalog | list[AirbyteStream] | None = None
    if catalog_path:
        try:
            catalog = _read_catalog(catalog_path)
        except ProtocolInputError as exc:
            err.write(f"dbkit validate: cannot use the catalog {catalog_path}: {exc}\n")
            return 2
    validator = StreamValidator(catalog)
    reported = lines = 0
    try:
        source: BinaryIO = open(file, "rb") if file else sys.stdin.buffer  # noqa: SIM115
    except OSError as exc:
        err.write(f"dbkit validate: cannot read {file}: {exc.strerror}\n")
        return 2
    with source:
        for line in source:
            lines += 1
            validator.feed(line)
            while reported < len(validator.problems):
                out.write(MASKER.mask(str(validator.problems[reported])) + "\n")
                reported += 1
    problems = validator.finish()
    for problem in problems[reported:]:
        out.write(MASKER.mask(str(problem)) + "\n")
    out.flush()
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(validator.counts.items())) or "no messages"
    verdict = "no problems" if not problems else f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    err.write(f"{lines} line{'s' if lines != 1 else ''}: {counts}; {verdict}\n")
    return 1 if problems else 0
