"""A manifest file read as YAML, remembering where every value is (line and column).

Every problem found in a manifest — YAML syntax, the JSON schema, a meaning the schema cannot
say (an unknown field in a template, a handler that does not exist) — is a :class:`ManifestError`
naming the file, the line and the place (``streams[0].primary_key``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dbkit.errors import ConfigError

Path_ = tuple[str | int, ...]


class ManifestError(ConfigError):
    """A mistake in a manifest: a config_error naming the file, line and place."""


def place(path: Iterable[str | int]) -> str:
    """``("streams", 0, "sql")`` -> ``streams[0].sql``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(the document)"


@dataclass
class Document:
    """The parsed manifest (plain JSON-like values) and the position of each value."""

    file: Path
    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        """The line of the value at ``path``, or of its nearest parent that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return mark[0]
        return None

    def where(self, path: Path_) -> str:
        """``manifest.yaml:12 (streams[0].sql)``."""
        line = self.line(path)
        return f"{self.file.name}:{line} ({place(path)})" if line else f"{self.file.name} ({place(path)})"

    def error(self, path: Path_, problem: str) -> ManifestError:
        return ManifestError(f"manifest {self.where(path)}: {problem}")


def read_document(file: Path) -> Document:
    """Parse ``file``; ManifestError when it cannot be read or is not YAML of JSON-like values."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"manifest {file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {file}: cannot be read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ManifestError(f"manifest {file.name}{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {file.name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    doc = Document(file, None)
    if node is None:
        raise ManifestError(f"manifest {file.name}: the file is empty")
    doc.data = _value(loader, node, (), doc)
    return doc


def _value(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                line = key_node.start_mark.line + 1
                raise ManifestError(
                    f"manifest {doc.file.name}:{line} ({place(path)}): key {key!r} is not text"
                )
            if key in out:
                line = key_node.start_mark.line + 1
                raise ManifestError(
                    f"manifest {doc.file.name}:{line} ({place((*path, key))}): {key!r} is given twice"
                )
            out[key] = _value(loader, value_node, (*path, key), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_value(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    value = loader.construct_object(node)
    if not (value is None or isinstance(value, str | int | float | bool)):
        raise doc.error(path, f"a {type(value).__name__} value; write it as text (in quotes)")
    return value
