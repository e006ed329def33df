"""The builder's subcommands of ``dbkit``: ``preview`` (a test read of any source) and ``init``
(a new connector package). :func:`add_commands` adds them to the ``dbkit`` parser and
:func:`run_command` runs one; the work is :mod:`dbkit.builder.preview` and
:mod:`dbkit.builder.init`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from dbkit.config import MASKER
from dbkit.errors import DbkitError
from dbkit.runner.endpoints import make_endpoint

COMMANDS = ("preview", "init")

PREVIEW_DESCRIPTION = """\
Test-read a source, the way Airbyte's Connector Builder does: check the connection, discover
the streams, and read the first N records of each (a read per stream, stopped as soon as it has
them: a big table previews as fast as a small one). Shows each stream's records in a table with
the fields' declared types (primary key and cursor marked), the values the source changed
(meta.changes: NULLED or TRUNCATED, and why) and the state a sync would save after those
records. Nothing is saved: no state file is read or written.

Streams are read as a first sync would read them: incremental on their default cursor where
they have one, else full refresh (--full-refresh: every stream in full). A dbkit source is asked
to checkpoint every N records (checkpoint_records), so the state shown is exactly the position
after the records shown.

Exit status: 0 when check, discover and every stream's read worked; 1 when any failed (each
error is shown with its failure_type); 2 for a usage error.
"""

PREVIEW_EPILOG = """\
examples:
  dbkit preview --source sqlite:///shop.db
  dbkit preview --source source-postgres --config pg.json --streams public.orders --limit 5
  dbkit preview --source postgresql://me@localhost/shop --json | jq '.streams[].state'
"""

INIT_DESCRIPTION = """\
Write a new connector package: pyproject.toml (the console scripts NAME and dbkit-NAME, and the
dbkit.connectors entry point), the config model, the dialect (over a SQLAlchemy URL), a type
table, py.typed, a README and a one-line acceptance test (dbkit.testing.suites) that passes as
written on SQLite. NAME is source-SOMETHING or destination-SOMETHING.

With --manifest: a declarative source instead (dbkit's manifest format, run by `dbkit run
manifest.yaml`): manifest.yaml, a README and the same one-line acceptance test.
"""

INIT_EPILOG = """\
examples:
  dbkit init source-foo                      # ./source-foo/
  dbkit init source-foo --dir connectors     # ./connectors/source-foo/
  dbkit init source-foo --manifest           # ./source-foo/manifest.yaml: no Python
then:
  pip install -e source-foo && pytest source-foo
  dbkit preview --source source-foo --config foo.json
"""


def add_commands(sub: Any) -> None:
    """Add ``preview`` and ``init`` to the ``dbkit`` subparsers ``sub``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "preview",
        help="test-read a few records of each stream of a source",
        description=PREVIEW_DESCRIPTION,
        epilog=PREVIEW_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--source", required=True, metavar="NAME_OR_URL", help="console script name or URL")
    p.add_argument("--config", metavar="FILE", help="JSON config of the source (a URL may replace it)")
    p.add_argument("--streams", metavar="A,B,...", help="preview only these streams (name or namespace.name)")
    p.add_argument("--limit", type=_positive, default=10, metavar="N", help="records per stream (default 10)")
    p.add_argument("--full-refresh", action="store_true", help="read every stream as a full refresh")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument(
        "--timeout", type=_positive, default=300, metavar="S", help="give up on a stream after S s"
    )
    p.add_argument("--in-process", action="store_true", help="run the source in a thread of this process")

    i = sub.add_parser(
        "init",
        help="write a new connector package",
        description=INIT_DESCRIPTION,
        epilog=INIT_EPILOG,
        formatter_class=fmt,
    )
    i.add_argument("name", metavar="NAME", help="source-SOMETHING or destination-SOMETHING")
    i.add_argument("--dir", default=".", metavar="D", help="where to create the NAME directory (default .)")
    i.add_argument(
        "--manifest",
        action="store_true",
        help="write a declarative source (manifest.yaml, run by `dbkit run`) instead of a Python package",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _fail(console: Console, failure_type: str | None, message: str) -> None:
    kind = f" [{failure_type}]" if failure_type else ""
    console.print(Text.assemble((f"error{kind}: ", "bold red"), MASKER.mask(message)))


def run_command(args: argparse.Namespace) -> int:
    """Run ``dbkit preview`` or ``dbkit init``; returns the exit code."""
    if args.command == "init":
        return _init(args)
    return _preview(args)


def _preview(args: argparse.Namespace) -> int:
    from dbkit.builder.preview import run_preview
    from dbkit.builder.show import show, to_json

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    missing = f"--source {args.source}: give its config with --config FILE, or use a URL"
    try:
        source = make_endpoint(args.source, args.config or None, "source", missing)
    except DbkitError as exc:
        _fail(err, exc.failure_type, exc.message)
        return 2
    streams = [s.strip() for s in args.streams.split(",") if s.strip()] if args.streams else None
    try:
        result = run_preview(
            source,
            streams=streams,
            limit=args.limit,
            full_refresh=args.full_refresh,
            in_process=args.in_process,
            timeout=float(args.timeout),
        )
    except DbkitError as exc:  # the connector cannot be started (not installed, ...)
        _fail(err, exc.failure_type, exc.message)
        return 1
    if args.json:
        sys.stdout.buffer.write(to_json(result) + b"\n")
        sys.stdout.flush()
    else:
        out = Console(highlight=False)
        show(result, out)
    return 0 if result.ok else 1


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dbkit.builder.init import InitError, init_connector

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        created = init_connector(args.name, Path(args.dir), manifest=args.manifest)
    except InitError as exc:
        _fail(err, None, str(exc))
        return 2
    out = Console(highlight=False)
    out.print(f"created {created.root} ({len(created.files)} files):")
    for path in created.files:
        out.print(f"  {path.relative_to(created.root.parent)}")
    out.print("\nnext:")
    for step in created.next_steps:
        out.print(f"  {step}")
    return 0
