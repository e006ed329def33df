"""``dbkit init``: a new connector package from the templates in ``templates/``.

``init_connector("source-foo", Path("."))`` writes ``./source-foo/`` with the package
``source_foo`` (config model, dialect over a SQLAlchemy URL, type table, ``py.typed``,
``__main__``), its ``pyproject.toml`` (console scripts ``source-foo`` and ``dbkit-source-foo``,
the ``dbkit.connectors`` entry point), a README and a one-line acceptance test that passes as
written (on SQLite). Templates are plain files with ``{{placeholders}}``: ``name``
(``source-foo``), ``suffix`` (``foo``), ``package`` (``source_foo``), ``Class`` (``Foo``) and
``title`` (``Foo``). The generated code is ruff- and mypy --strict-clean.

With ``manifest=True`` it writes a declarative source instead (:mod:`dbkit.manifest`):
``manifest.yaml`` (a SQLite connection to change for your database, a type rule and an error
rule), a README and the acceptance test running ``dbkit run manifest.yaml``; the manifest is
loaded once written, so a template the loader refuses never reaches a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

NAME = re.compile(r"^(source|destination)-([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)$")
KINDS_WITH_TEMPLATES = ("source",)
PACKAGE_DIR = "package"
SUFFIX = ".tmpl"


class InitError(Exception):
    """A name or directory ``dbkit init`` cannot use; the message says what to do."""


@dataclass
class Created:
    root: Path
    files: list[Path] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def placeholders(name: str) -> dict[str, str]:
    """The template values of a connector name (``InitError`` when it is not one)."""
    match = NAME.match(name)
    if match is None:
        raise InitError(
            f"{name!r} is not a connector name: give source-NAME or destination-NAME, NAME in lower "
            "case letters and digits, words joined by '-' (e.g. source-foo, source-my-db)"
        )
    kind, suffix = match.groups()
    words = re.split(r"[-_]", suffix)
    return {
        "name": name,
        "kind": kind,
        "suffix": suffix,
        "package": name.replace("-", "_"),
        "Class": "".join(w.capitalize() for w in words),
        "title": " ".join(w.capitalize() for w in words),
    }


def render(text: str, values: dict[str, str]) -> str:
    """Replace every ``{{key}}``; an unknown key is a bug in a template (KeyError)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def _walk(node: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    out: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            out.extend(_walk(child, relative / child.name))
        else:
            out.append((relative / child.name, child))
    return out


def init_connector(name: str, directory: Path, manifest: bool = False) -> Created:
    """Write the connector package ``name`` (or with ``manifest``, its manifest) into
    ``directory / name``, which must not exist or be empty; returns what was written and what
    to run next."""
    values = placeholders(name)
    kind = values["kind"]
    if manifest and kind != "source":
        raise InitError("manifests describe sources only: give source-NAME with --manifest")
    if kind not in KINDS_WITH_TEMPLATES:
        raise InitError(
            "dbkit init writes sources only so far; for a destination start from "
            "connectors/destination-sqlite (a complete, small example) and dbkit's README"
        )
    root = directory / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InitError(f"{root} already exists and is not empty: choose another --dir or name")
    templates = files("dbkit.builder").joinpath("templates", "manifest" if manifest else kind)
    created = Created(root)
    for relative, source in _walk(templates, Path()):
        parts = [values["package"] if p == PACKAGE_DIR else p for p in relative.parts]
        target = root.joinpath(*parts)
        if target.name.endswith(SUFFIX):
            target = target.with_name(target.name[: -len(SUFFIX)])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(source.read_text(encoding="utf-8"), values), encoding="utf-8")
        created.files.append(target)
    if manifest:
        return _checked_manifest(created, name)
    created.next_steps = [
        f"pip install -e {root}",
        f"cd {root} && pytest",
        'echo \'{"url": "sqlite:///your.db"}\' > config.json  (any SQLAlchemy URL)',
        f"dbkit preview --source {name} --config config.json",
    ]
    return created


def _checked_manifest(created: Created, name: str) -> Created:
    from dbkit.manifest import load_manifest

    path = created.root / "manifest.yaml"
    load_manifest(path)  # a ManifestError here is a bug in the template
    created.next_steps = [
        f"cd {created.root}",
        'echo \'{"path": "your.db"}\' > config.json  (then change the connection for your database)',
        "dbkit run manifest.yaml check --config config.json",
        "dbkit preview --source manifest.yaml --config config.json",
        "pytest",
    ]
    return created
