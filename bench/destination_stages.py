"""Benchmark: the CPU of a destination's decoding stages, one thread, no database.

    .venv/bin/python bench/destination_stages.py [--records 200000] [--reps 4] [--rounds 3] [TREE ...]

Reads ``--records`` RECORD lines of destination_mysql.py's input (generated there if missing) and
times, with ``process_time`` in one thread, what the consumer and the batch builder do to them:
the envelope decode of every line (the consumer's fast path: ``decode_envelope``, or the stream's
line decoder where the checkout has ``TypedDecoder.line_decoder``) and the typed parts of batches
of 50,000 (``BatchBuilder.parts``: typed decode, Arrow columns, ``_airbyte_*`` columns), with the
MySQL destination's limits; the records are freed inside the timed part. Each TREE (a checkout,
e.g. a git worktree of the code before a change; default: this one) runs in a process of its own
(:mod:`bench.checkout`), the trees alternating ``--rounds`` times; each prints the minimum over
``--reps`` repetitions.

Wall-clock figures of the whole connector move with the machine's load by more than most changes
to these stages (bench/README.md); the minimum CPU of one thread moves far less, so it is the
measure to judge a change of the decoding by. It does not see what threads cost each other (the
GIL, caches, context switches): a change that passes here is then checked end to end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

BATCH = 50_000


def measure(records: int, reps: int) -> None:
    """In the process of one tree (on ``sys.path`` first): print the minimum CPU seconds."""
    from dbkit.destination.batch import BatchBuilder, BatchColumn
    from dbkit.destination.casting import Limits
    from dbkit.destination.records import decode_envelope
    from destination_mysql.dialect import MySqlDestinationDialect

    bench = _bench_module()
    columns = [BatchColumn(name, name, _airbyte_type(schema)) for name, schema, _ in bench.COLUMNS]
    builder = BatchBuilder(
        columns, Limits.of(MySqlDestinationDialect.capabilities), sync_id=7, generation_id=1
    )
    lines: list[bytes] = []
    with open(bench.DATA / f"mysql_first_1000000_v{bench.FORMAT_VERSION}.jsonl", "rb") as source:
        for line in source:
            if line.startswith(b'{"type":"RECORD"'):
                lines.append(line.rstrip(b"\n"))
                if len(lines) >= records:
                    break
    line_decoder = getattr(builder.decoder, "line_decoder", None)
    decode: Any = line_decoder() if line_decoder is not None else None
    if decode is None:
        decode = decode_envelope
    best = {"decode": 1e9, "build": 1e9, "total": 1e9}
    gc.disable()
    for _ in range(reps):
        started = time.process_time()
        buffered = [decode(line).record for line in lines]
        decoded = time.process_time()
        for start in range(0, len(buffered), BATCH):
            for _part in builder.parts(buffered[start : start + BATCH]):
                pass
        del buffered
        built = time.process_time()
        for key, value in (
            ("decode", decoded - started),
            ("build", built - decoded),
            ("total", built - started),
        ):
            best[key] = min(best[key], value)
    gc.enable()
    import dbkit

    where = Path(dbkit.__file__).resolve().parent.parent
    print(f"{where}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items()) + f" ({records:,} records)")


def _bench_module() -> Any:
    """bench/destination_mysql.py (its input and columns), under another name than the
    connector's package ``destination_mysql``."""
    spec = importlib.util.spec_from_file_location("bench_destination_mysql", HERE / "destination_mysql.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


def _airbyte_type(schema: dict[str, Any]) -> Any:
    from dbkit.db.types import AirbyteType

    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kind = next(k for k in kinds if k != "null")
    if "airbyte_type" in schema:
        return AirbyteType(schema["airbyte_type"])
    if schema.get("format") == "date":
        return AirbyteType.DATE
    return AirbyteType({"integer": "integer", "number": "number", "string": "string",
                        "boolean": "boolean", "object": "object"}[kind])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs="*", type=Path, help="checkouts to compare (default: this one)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.records, args.reps)
        return
    bench = _bench_module()
    if not (bench.DATA / f"mysql_first_1000000_v{bench.FORMAT_VERSION}.jsonl").exists():
        bench.generate(1_000_000, second=False)
    trees = args.trees or [HERE.parent]
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for _ in range(args.rounds):
        for tree in trees:
            tree = tree.resolve()
            flags = ["--measure", "--records", str(args.records), "--reps", str(args.reps)]
            subprocess.run(bench.checkout_argv(tree, ["destination-mysql"], __file__, *flags), check=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
