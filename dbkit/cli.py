"""The ``dbkit`` command: ``dbkit sync``, ``dbkit validate`` and ``dbkit run``.

``main(argv)`` returns the exit code (the console script exits with it). This module parses the
arguments and turns ``dbkit sync``'s into a :class:`dbkit.runner.SyncRequest`; the sync itself is
:func:`dbkit.runner.run_sync`, shown by :class:`dbkit.runner.display.Reporter` (with ``rich``, on
stderr); ``dbkit validate`` is :func:`dbkit.validate_cli.validate_command`. Everything printed
passes through the secret masker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from rich.console import Console

from dbkit.builder.commands import COMMANDS as BUILDER_COMMANDS
from dbkit.builder.commands import add_commands as add_builder_commands
from dbkit.builder.commands import run_command as run_builder_command
from dbkit.config import MASKER
from dbkit.errors import ConfigError, DbkitError, SystemFailure
from dbkit.runner import Endpoint, SyncAborted, SyncRequest, run_sync
from dbkit.runner.display import Reporter
from dbkit.runner.endpoints import make_endpoint
from dbkit.runner.interrupt import Interrupt, SyncInterrupted, stop_signals
from dbkit.runner.registry import lookup
from dbkit.runner.result import SyncResult
from dbkit.runner.state import SyncState
from dbkit.validate_cli import validate_command
from dbkit.version import version_text

DEFAULT_STATE_FILE = "dbkit-state.json"
DEFAULT_DEMO_DIR = "dbkit-demo"

SYNC_DESCRIPTION = """\
Run a source into a destination the way a platform does, keep the state the destination
acknowledged between runs, show live progress and print a summary.

Without --source/--destination it runs the embedded demo: it creates ./dbkit-demo/source.db
(a small shop: customers, products, orders, order_items, an event log and a view; thousands
of rows) on the first run and syncs it into ./dbkit-demo/warehouse.db (state in
./dbkit-demo/state.json). Every later run first simulates activity in the source (new orders,
updated customers and orders, ...), prints what changed, then syncs: the incremental streams
read only the new and changed rows.

Steps: `check` on both connectors and `discover` on the source (at once); the configured
catalog; then `read` piped into `write`. RECORD, STATE and STREAM_STATUS lines go to the
destination unchanged; every STATE the destination echoes is saved to the state file at once
(atomically), so an interrupted or failed sync resumes from the last acknowledged position.
"""

SYNC_EPILOG = """\
connectors:
  A connector is named by its console script (source-sqlite, destination-sqlite, and every
  other installed connector package: source-postgres, destination-postgres, ...) with a JSON
  config file, or given as a URL whose parts become its config (each connector declares the
  URL schemes it takes):
    sqlite:///relative/file.db      sqlite:////absolute/file.db        -> {"path": ...}
    postgresql://user:pass@host:5432/db?schema=public                  -> host, port, database,
                                                                          username, password, schema(s)
  Other URL query parameters become config keys (?checkpoint_records=1000). A config file given
  as well provides the other keys. A source may also be a manifest (a .yaml file, see
  `dbkit run --help`) with its --source-config: it runs as `dbkit run MANIFEST`. Any other
  command on PATH can be named too (no URL support).
  Connectors run as subprocesses found next to this Python or on PATH, with their config,
  catalog and state in a private temporary directory. When records travel as Arrow frames
  between two dbkit connectors installed with this Python, read and write run in threads of
  this process instead (same protocol, over OS pipes; faster: no interpreter started for them);
  --in-process asks for threads always, --subprocess for subprocesses always.

sync modes:
  A stream that supports incremental reads and has a suggested cursor (updated_at, ...) is read
  incrementally with it, into append_dedup when it has a primary key, else append. Every other
  stream is a full refresh into overwrite (the new table replaces the old one only when the
  stream is complete). --full-refresh makes every stream full refresh + overwrite.
  Overwrite streams get a new generation each sync (the first: the time in milliseconds, so a
  stream whose state was deleted never reuses a generation the destination holds, whose rows
  it would keep); one whose previous sync did not finish and
  left a saved position resumes it instead (same generation, same position), as a platform's
  next attempt does. --refresh A,B refreshes those streams in their usual mode, as a platform's
  Refresh does: a new generation that replaces their rows when the sync ends, their saved state
  dropped (of a CDC connection's GLOBAL state, only their part); a refresh that does not finish
  is continued by the next sync.

state file:
  JSON: a sync counter, and per stream its sync mode, generation, last acknowledged state,
  whether its last sync finished, and the counts of that sync. Delete it (or a stream's entry)
  to start over. Default: ./dbkit-state.json (./dbkit-demo/state.json for the demo).

output:
  Live progress on stderr when it is a terminal (per stream a bar and the time left where the
  source estimated its rows, records read, acknowledged, rows/s; fitted to the terminal's
  width), else one line per stream status change; connector logs with their level; each
  error's message (its stack trace with -v); a summary table at the end. Secrets (fields a
  connector declares secret, keys named like password/secret/token/key, URL passwords) are
  masked in everything printed.

stopping:
  Ctrl-C, SIGTERM or SIGHUP stops the source at its next checkpoint; the destination commits
  and acknowledges what it received, which is saved; one summary. A second signal stops the
  destination at once (a destination running in a thread, the Arrow path's default: at its
  next write, as a thread cannot be killed). No connector process outlives dbkit sync.

exit status:
  0 when every stream completed and was acknowledged; 1 when a connector failed, reported an
  error, or a stream did not finish (the state file still holds everything acknowledged: run
  again to resume); 2 for a usage error; 130 when stopped by Ctrl-C (SIGINT), 143 by SIGTERM,
  129 by SIGHUP (128 + the signal's number; what was acknowledged is saved: run again to resume).
  With --json, stdout holds only the result document (status succeeded/partial/failed), whatever
  the exit status.

examples:
  dbkit sync
  dbkit sync --source sqlite:///shop.db --destination sqlite:///warehouse.db --state-file s.json
  dbkit sync --source source-postgres --source-config pg.json \\
             --destination destination-sqlite --destination-config wh.json --streams orders,customers
"""

VALIDATE_DESCRIPTION = """\
Check a stream of Airbyte messages (one JSON object per line), strictly: each line is JSON; its
type is a protocol message type with its payload in the right shape; records name a stream of
the catalog and their data conforms to the stream's json_schema (Airbyte's date and time forms
included); states name known streams; stream statuses go STARTED -> COMPLETE/INCOMPLETE and no
record follows a stream's final status. The catalog comes from --catalog (a configured catalog,
a catalog, or a CATALOG message) or else from a CATALOG message in the stream.

Prints each problem as `line N: ...` on stdout and a summary (message counts per type) on
stderr. Exit status: 0 when there is no problem, 1 otherwise, 2 when an input cannot be read.
"""

RUN_DESCRIPTION = """\
Run the source a manifest describes, as a connector speaking the Airbyte protocol on stdout:

  dbkit run MANIFEST spec
  dbkit run MANIFEST check    --config config.json
  dbkit run MANIFEST discover --config config.json
  dbkit run MANIFEST read     --config config.json --catalog catalog.json [--state state.json]

A mistake in the manifest (YAML, the schema, an unknown field, handler or dotted path) is a
TRACE config_error naming its line and place, and exit status 1. The format: docs/manifest.md.
"""

BUILD_IMAGE_DESCRIPTION = """\
Write the Docker build context of a connector image (docker/Dockerfile: pinned base, hashed
locks, numeric user, AIRBYTE_ENTRYPOINT) with the metadata the Airbyte platform needs to add
it as a custom connector: metadata.yaml (Airbyte's connector metadata), definition.json (the
API body that creates a custom definition: name, Docker repository, tag, documentation URL)
and build.sh (the docker build command).

CONNECTOR is a shipped connector (source-postgres), a connector package directory (what
`dbkit init` writes: its pyproject.toml declares the console script dbkit-<directory name>),
or a source manifest (a .yaml file, or a directory holding manifest.yaml), which becomes a small
generated package whose console script runs it. Needs dbkit's source checkout.

examples:
  dbkit build-image source-postgres --tag 0.1.0
  dbkit build-image connectors/manifest-mariadb/manifest.yaml --repository me/source-mariadb --build
"""


def build_image_command(args: argparse.Namespace) -> int:
    """``dbkit build-image``: 0 when the context is written (and built, with --build), 1 when not."""
    from dbkit import image

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        target = image.resolve_target(args.target, image.checkout())
        out = Path(args.out) if args.out else Path("build") / f"image-{target.name}"
        context = image.write_context(
            args.target, out, repository=args.repository, tag=args.tag, force=args.force
        )
    except DbkitError as exc:
        console.print(f"[red]build-image:[/] {MASKER.mask(exc.message)}", markup=True)
        return 1
    command = " ".join(context.build_command())
    console.print(
        f"wrote the build context of {context.image} to {out}/\n"
        f"  build it:  (cd {out} && {command})   or {out}/build.sh\n"
        f"  add it to Airbyte: Settings > Sources > + New connector > Add a new Docker connector, "
        f"with {out}/definition.json (name, Docker repository, tag, documentation URL)",
        markup=False,
    )
    if args.build:
        try:
            image.build(context)
        except DbkitError as exc:
            console.print(f"[red]build-image:[/] {MASKER.mask(exc.message)}", markup=True)
            return 1
        console.print(f"built {context.image}", markup=False)
    return 0


# ================================================================================= argument parsing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbkit", description="dbkit: run and check Airbyte-protocol database connectors"
    )
    parser.add_argument("--version", action="version", version=version_text("dbkit"))
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{sync,validate,run,build-image,preview,init}"
    )
    fmt = argparse.RawDescriptionHelpFormatter

    s = sub.add_parser(
        "sync",
        help="run a source into a destination",
        description=SYNC_DESCRIPTION,
        epilog=SYNC_EPILOG,
        formatter_class=fmt,
    )
    s.add_argument("--source", metavar="NAME_OR_URL", help="source connector: console script name or URL")
    s.add_argument("--source-config", metavar="FILE", help="JSON config of the source")
    s.add_argument("--destination", metavar="NAME_OR_URL", help="destination connector: name or URL")
    s.add_argument("--destination-config", metavar="FILE", help="JSON config of the destination")
    s.add_argument(
        "--state-file",
        metavar="FILE",
        help=f"where the acknowledged state is kept between runs (default ./{DEFAULT_STATE_FILE}; "
        f"./{DEFAULT_DEMO_DIR}/state.json for the demo)",
    )
    s.add_argument(
        "--streams",
        metavar="A,B,...",
        help="sync only these streams (names, or namespace.name); the others keep their saved state",
    )
    s.add_argument(
        "--full-refresh",
        action="store_true",
        help="read every stream in full and replace its table (full_refresh + overwrite)",
    )
    s.add_argument(
        "--refresh",
        metavar="A,B,...",
        help="refresh these streams: read them again from the start and replace their rows in the "
        "destination (a new generation); the other streams keep their state",
    )
    placement = s.add_mutually_exclusive_group()
    placement.add_argument(
        "--in-process",
        dest="in_process",
        action="store_const",
        const=True,
        help="run the connectors in threads of this process (over OS pipes) instead of subprocesses "
        "(the default for the Arrow path between dbkit connectors installed here)",
    )
    placement.add_argument(
        "--subprocess",
        dest="in_process",
        action="store_const",
        const=False,
        help="run the connectors as subprocesses, whatever the protocol (each with its own memory, "
        "crashes and signals; the default for the JSON path and for other connectors)",
    )
    s.add_argument(
        "--protocol",
        choices=("auto", "arrow", "json"),
        default="auto",
        help="how records travel from the source to the destination: arrow (Arrow record batches, "
        "when both connectors are dbkit connectors that can), json (Airbyte JSON lines, what any "
        "other client sees), or auto (arrow when both ends can, else json; the default)",
    )
    s.add_argument(
        "--no-progress",
        action="store_true",
        help="no live display; print one line per stream status change instead",
    )
    s.add_argument(
        "--demo-dir",
        metavar="DIR",
        help=f"directory of the embedded demo (default ./{DEFAULT_DEMO_DIR}); only without --source",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout at the end (per stream: mode, status, records read "
        "and acknowledged, seconds, errors; totals; the state file), for schedulers and CI; "
        "nothing else goes to stdout (the JSON schema: dbkit/runner/sync_result.schema.json)",
    )
    s.add_argument("-v", "--verbose", action="store_true", help="show stack traces and debug logs")

    v = sub.add_parser(
        "validate",
        help="check a stream of Airbyte messages",
        description=VALIDATE_DESCRIPTION,
        formatter_class=fmt,
    )
    v.add_argument("--catalog", metavar="FILE", help="configured catalog, catalog or CATALOG message (JSON)")
    v.add_argument("file", nargs="?", metavar="FILE", help="messages, one per line (default: stdin)")

    r = sub.add_parser(
        "run",
        help="run a source manifest: spec | check | discover | read",
        description=RUN_DESCRIPTION,
        formatter_class=fmt,
    )
    r.add_argument("manifest", metavar="MANIFEST", help="the manifest (YAML)")
    r.add_argument("arguments", nargs=argparse.REMAINDER, help="the connector command and its options")

    b = sub.add_parser(
        "build-image",
        help="write a connector image's build context and its Airbyte metadata",
        description=BUILD_IMAGE_DESCRIPTION,
        formatter_class=fmt,
    )
    b.add_argument(
        "target",
        metavar="CONNECTOR",
        help="a shipped connector's name, a connector package directory, or a source manifest (.yaml)",
    )
    b.add_argument("--out", metavar="DIR", help="where to write the context (default ./build/image-NAME)")
    b.add_argument("--repository", metavar="REPO", help="the image's Docker repository (default dbkit/NAME)")
    b.add_argument("--tag", metavar="TAG", help="the image's tag (default: dbkit's version)")
    b.add_argument("--force", action="store_true", help="replace a context dbkit build-image wrote before")
    b.add_argument("--build", action="store_true", help="then run docker build (needs a Docker engine)")
    add_builder_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dbkit`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        from dbkit.manifest.run import run_command

        return run_command(args.manifest, args.arguments)
    if args.command == "build-image":
        return build_image_command(args)
    if args.command == "validate":
        return validate_command(args.file, args.catalog, sys.stdout, sys.stderr)
    if args.command in BUILDER_COMMANDS:
        return run_builder_command(args)
    return sync_command(args)


# ================================================================================= sync: inputs


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


def endpoint(name_or_url: str, config_file: str | None, kind: str) -> Endpoint:
    """The connector named on the command line with its config (file, URL, or file + URL)."""
    return make_endpoint(
        name_or_url,
        config_file or None,
        kind,
        f"--{kind} {name_or_url}: give its config with --{kind}-config FILE, or use a URL",
    )


def sync_command(args: argparse.Namespace) -> int:
    """``dbkit sync``: 0 when every stream finished, 1 when not (or it could not start), 2 for a
    usage error, 128 + the signal's number when stopped by SIGINT (130), SIGTERM (143) or
    SIGHUP (129) (:mod:`dbkit.runner.interrupt`). With ``--json`` the result document goes to
    stdout whatever the outcome."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 110)
    reporter = Reporter(console, live=console.is_terminal and not args.no_progress, verbose=args.verbose)
    with stop_signals(Interrupt()) as interrupt:  # until the summary is printed: one summary
        return _sync(args, reporter, interrupt)


def _sync(args: argparse.Namespace, reporter: Reporter, interrupt: Interrupt) -> int:
    demo = args.source is None and args.destination is None
    started = dt.datetime.now(dt.UTC)
    try:
        request = _demo_request(args, reporter) if demo else _request(args)
    except (UsageError, DbkitError) as exc:
        error = exc if isinstance(exc, DbkitError) else ConfigError(str(exc))
        reporter.fail(error.message)
        if args.json:
            sides = (MASKER.mask(args.source or ""), MASKER.mask(args.destination or ""))
            state_path = Path(args.state_file or DEFAULT_STATE_FILE)
            _print_json(SyncResult.not_started((*sides, state_path), error, started, _now()))
        return 2
    request.streams = [s.strip() for s in args.streams.split(",") if s.strip()] if args.streams else None
    request.full_refresh = args.full_refresh
    request.refresh = [s.strip() for s in args.refresh.split(",") if s.strip()] if args.refresh else None
    request.in_process = args.in_process
    request.protocol = args.protocol
    try:
        progress = run_sync(request, reporter, interrupt)
    except SyncInterrupted as exc:
        reporter.close()
        shown = f"{interrupt.shown or exc} before any data moved: nothing to resume"
        reporter.stopped(shown)
        return _not_started(
            args, request, SystemFailure(shown), started, exc.exit_code, interrupt.name or None
        )
    except SyncAborted as exc:
        reporter.aborted(exc)
        return _not_started(args, request, exc, started, 1)
    except DbkitError as exc:
        reporter.fail(exc.message)
        return _not_started(args, request, exc, started, 1)
    finally:
        reporter.close()
    reporter.summary(progress, request)
    if args.json:
        _print_json(SyncResult.of(progress, request, started, _now()))
    if progress.interrupted_by is not None:
        return interrupt.exit_code
    if progress.ok and demo:
        reporter.say(
            "Run `dbkit sync` again: it simulates new activity in the source and syncs only the changes."
        )
    return 0 if progress.ok else 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _print_json(result: SyncResult) -> None:
    """``--json``: the result document, the only thing this command writes to stdout."""
    sys.stdout.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _not_started(
    args: argparse.Namespace,
    request: SyncRequest,
    error: DbkitError,
    started: dt.datetime,
    code: int,
    interrupted_by: str | None = None,
) -> int:
    if args.json:
        _print_json(SyncResult.not_started(request, error, started, _now(), interrupted_by))
    return code


def _request(args: argparse.Namespace) -> SyncRequest:
    """The request of ``--source``/``--destination`` (and their configs); raises UsageError."""
    if args.source is None or args.destination is None:
        raise UsageError("give both --source and --destination (or neither, for the demo)")
    if args.demo_dir:
        raise UsageError("--demo-dir applies only to the demo (without --source/--destination)")
    return SyncRequest(
        source=endpoint(args.source, args.source_config, "source"),
        destination=endpoint(args.destination, args.destination_config, "destination"),
        state_path=Path(args.state_file or DEFAULT_STATE_FILE),
    )


def _demo_request(args: argparse.Namespace, reporter: Reporter) -> SyncRequest:
    """The demo's request; creates the demo source on the first run, and simulates activity in
    it before every later one (reported through ``reporter``). Raises UsageError."""
    from dbkit.runner.demo import DemoLayout, create_source
    from dbkit.runner.demo_activity import simulate_activity

    if args.source_config or args.destination_config:
        raise UsageError("--source-config/--destination-config need --source/--destination")
    source_info, destination_info = lookup("source-sqlite"), lookup("destination-sqlite")
    if source_info is None or destination_info is None:
        raise UsageError(
            "the demo needs the source-sqlite and destination-sqlite connectors: "
            "pip install -e connectors/source-sqlite -e connectors/destination-sqlite"
        )
    layout = DemoLayout(Path(args.demo_dir or DEFAULT_DEMO_DIR))
    state_path = Path(args.state_file) if args.state_file else layout.state
    if not layout.source.exists():
        started = time.monotonic()
        counts = create_source(layout.source)
        shown = ", ".join(f"{table} {n:,}" for table, n in counts.items())
        reporter.say(
            f"Created the demo source {layout.source} ({shown}) in {time.monotonic() - started:.2f} s"
        )
    elif state_path.exists() and SyncState.load(state_path).sync_count > 0:
        activity = simulate_activity(layout.source)
        reporter.say(f"Simulated activity in {layout.source} at {activity.at}:")
        for line in activity.lines():
            reporter.say(f"  {line}")
    return SyncRequest(
        source=Endpoint(source_info, {"path": str(layout.source)}, f"source-sqlite ({layout.source})"),
        destination=Endpoint(
            destination_info, {"path": str(layout.warehouse)}, f"destination-sqlite ({layout.warehouse})"
        ),
        state_path=state_path,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
