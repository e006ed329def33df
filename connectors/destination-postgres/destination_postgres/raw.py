"""Raw tables (``raw_tables: true``): every record, untouched, next to its typed row.

Each stream also gets ``<table>_raw`` in the typed table's schema: ``_airbyte_raw_id``,
``_airbyte_extracted_at``, ``_airbyte_meta``, ``_airbyte_generation_id`` (the values of the
record's typed row, the same ``_airbyte_raw_id`` included) and ``_airbyte_data jsonb``, the
record's ``data`` as it came. Every record is kept, also in append_dedup mode (where the typed
table keeps only the newest row per key) and also the rows the typed table holds with changes.

- A batch's raw rows are loaded (COPY) in the transaction that loads its typed rows: both or
  neither are committed, before the STATEs covering them are echoed.
- Refreshes (overwrite, truncate refresh) load the raw rows where the typed rows go (the rule of
  :mod:`dbkit.destination.generations`, decided by the typed table): into ``<raw>_airbyte_tmp``,
  swapped in with the typed table in one transaction (an interrupted refresh leaves both old
  tables visible and is resumed by the next attempt of the same generation), or straight into
  the raw table when the typed table is absent, empty or already at the generation. Merge
  refreshes (``0 < minimum_generation_id < generation_id``) delete the older generations of both
  tables.
- Name: ``<table>_raw``; when that does not fit 63 bytes or is the name of another stream's table
  in the schema, the table name cut to fit plus ``_raw_`` and a hash of the stream.
- ``_airbyte_data`` is jsonb, which normalizes what JSON leaves open (whitespace, key order,
  duplicate keys: the last wins) and cannot hold a NUL character or a lone UTF-16 surrogate: NUL
  is removed and a lone surrogate becomes U+FFFD. Should PostgreSQL still refuse a record's JSON
  (a number past numeric's range), its exact text is stored as a JSON string instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from psycopg import sql

from dbkit import ConfigError, SystemFailure
from dbkit.destination import (
    EXTRACTED_AT,
    GENERATION_ID,
    MAX_REFUSED_VALUES,
    META,
    RAW_ID,
    TMP_SUFFIX,
    Batch,
    DeclaredType,
    RawRecord,
    Slot,
    StreamLoader,
    TablePlan,
    Target,
    ValueRefused,
    WriteContext,
    delete_old_generations,
    held,
    is_current,
    loads_lenient,
    materialize,
    refresh_minimum,
    short_hash,
    to_json_text,
)
from dbkit.protocol import ConfiguredStream, StreamDescriptor
from destination_postgres.copy import copy_batches
from destination_postgres.dialect import PostgresDestinationDialect
from destination_postgres.driver import driver, execute, qualified, shown
from destination_postgres.types import META_TYPES

RAW_SUFFIX = "_raw"
DATA = "_airbyte_data"
RAW_COLUMNS = (RAW_ID, EXTRACTED_AT, META, GENERATION_ID, DATA)
MAX_BYTES = PostgresDestinationDialect.capabilities.max_identifier_bytes
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abAB][0-9a-fA-F]{2}|[dD][c-fC-F][0-9a-fA-F]{2})")


def _cut(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _fits(name: str) -> bool:
    return len(name.encode("utf-8")) <= MAX_BYTES


def _tmp(name: str) -> str:
    if _fits(name + TMP_SUFFIX):
        return name + TMP_SUFFIX
    suffix = f"{TMP_SUFFIX}_{short_hash(name)}"
    return _cut(name, MAX_BYTES - len(suffix)) + suffix


def raw_table_names(plans: Mapping[StreamDescriptor, TablePlan]) -> dict[StreamDescriptor, tuple[str, str]]:
    """Each stream's raw table and raw temporary table, distinct from every typed table and
    temporary table of the same schema (and from each other)."""
    taken: dict[str | None, set[str]] = {}
    for plan in plans.values():
        taken.setdefault(plan.namespace, set()).update((plan.name, plan.tmp_name))
    out: dict[StreamDescriptor, tuple[str, str]] = {}
    for descriptor, plan in sorted(plans.items(), key=lambda item: str(item[0])):
        used = taken[plan.namespace]
        name = plan.name + RAW_SUFFIX
        salt = 0
        while not _fits(name) or name in used or _tmp(name) in used:
            suffix = f"{RAW_SUFFIX}_{short_hash(str(descriptor) + (str(salt) if salt else ''))}"
            name = _cut(plan.name, MAX_BYTES - len(suffix)) + suffix
            salt += 1
        used.update((name, _tmp(name)))
        out[descriptor] = (name, _tmp(name))
    return out


def raw_data(record: RawRecord) -> str:
    """The JSON text of a record's ``data`` that jsonb stores (see the module doc)."""
    blob = bytes(record.data)
    if not _UNSTORABLE_ESCAPE.search(blob):
        try:
            return blob.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return to_json_text(_storable(loads_lenient(blob)))


def _storable(value: Any) -> Any:
    """``value`` with every string (keys too) made storable, at any depth (no recursion: a
    record may nest deeper than Python recurses)."""
    if not isinstance(value, dict | list):
        return _text(value) if isinstance(value, str) else value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else ((None, item) for item in source)
        for key, item in pairs:
            if isinstance(item, dict | list):
                copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, copy))
            else:
                copy = _text(item) if isinstance(item, str) else item
            if key is None:
                target.append(copy)
            else:
                target[_text(key)] = copy
    return root


def _text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def raw_rows(parts: Sequence[Batch], records: Sequence[RawRecord]) -> pa.Table:
    """The raw table's rows of a batch: the metadata of its typed rows, and the records' data."""
    tables = [part.table.select([RAW_ID, EXTRACTED_AT, META, GENERATION_ID]) for part in parts]
    table = pa.concat_tables(tables) if tables else pa.table({})
    if table.num_rows != len(records):
        raise AssertionError(f"{table.num_rows} typed rows for {len(records)} records")
    return table.append_column(DATA, pa.array([raw_data(r) for r in materialize(records)], pa.string()))


def ensure_raw_table(
    conn: sa.Connection, dialect: PostgresDestinationDialect, namespace: str | None, name: str
) -> sa.Table:
    """Create a raw table unless it exists; an existing table without the raw columns stops the
    sync with a config_error."""
    types = {**META_TYPES, DATA: "jsonb"}
    required = {RAW_ID, EXTRACTED_AT, META, DATA}
    existing = dialect.tables.existing_columns(conn, namespace, name)
    table_sql = qualified(namespace, name)
    if existing is None:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(
                sql.Identifier(c), sql.SQL(types[c]), sql.SQL(" NOT NULL" if c in required else "")
            )
            for c in RAW_COLUMNS
        )
        execute(conn, sql.SQL("CREATE TABLE {} ({})").format(table_sql, columns))
    else:
        missing = [c for c in RAW_COLUMNS if c not in existing]
        if missing:
            raise ConfigError(
                f"table {shown(namespace, name)} should be a raw table (raw_tables is on) but it lacks "
                f"the column(s) {', '.join(missing)}: rename or drop it, or turn raw_tables off"
            )
    return sa.Table(
        name, sa.MetaData(), *(sa.Column(c, DeclaredType(types[c])) for c in RAW_COLUMNS), schema=namespace
    )


def load_raw(conn: sa.Connection, table: sa.Table, rows: pa.Table, write: WriteContext) -> None:
    """COPY raw rows in the caller's transaction (under a savepoint): a record whose JSON
    PostgreSQL still refuses is stored as its exact text, a JSON string."""
    cursor = driver(conn).cursor()
    for _ in range(MAX_REFUSED_VALUES + 1):
        try:
            with conn.begin_nested():
                copy_batches(
                    cursor, qualified(table.schema, table.name), [Batch(rows, 0)], rows.column_names, None
                )
            return
        except ValueRefused as refused:
            if refused.column != DATA:
                raise SystemFailure(
                    f"{shown(table.schema, table.name)}: PostgreSQL refused a value of column "
                    f"{refused.column!r} of a raw row ({refused.detail})"
                ) from None
            index = rows.column_names.index(DATA)
            texts = rows.column(index).to_pylist()
            texts[refused.row] = to_json_text(texts[refused.row])
            rows = rows.set_column(index, DATA, pa.array(texts, pa.string()))
            write.log(
                "WARN",
                f"{shown(table.schema, table.name)}: PostgreSQL refused a record's JSON "
                f"({refused.detail}); its text is stored as a JSON string",
            )
    raise SystemFailure(
        f"{shown(table.schema, table.name)}: PostgreSQL refused the JSON of more than "
        f"{MAX_REFUSED_VALUES} records of one batch"
    )


class RawTableLoader(StreamLoader):
    """A stream's loader that also keeps every record in its raw table (see the module doc)."""

    def __init__(
        self,
        dialect: PostgresDestinationDialect,
        conn: sa.Connection,
        stream: ConfiguredStream,
        plan: TablePlan,
        write: WriteContext,
        raw_name: str,
        raw_tmp_name: str,
    ) -> None:
        super().__init__(dialect, conn, stream, plan, write)
        self.pg = dialect
        self.raw_name = raw_name
        self.raw_tmp_name = raw_tmp_name
        self.raw: sa.Table | None = None
        self._records: Sequence[RawRecord] = ()

    def setup(self) -> None:
        """The typed table's setup decides where a refresh loads; the raw table follows it: the
        final raw table, or its temporary table (resumed only when the typed one is and it
        holds nothing older than the refresh keeps)."""
        conn, plan = self.conn, self.plan
        super().setup()
        with self.transaction():
            self.lock()
            name = self.raw_name
            if self.replaces:
                name = self.raw_tmp_name
                found = held(conn, self.tables, plan.namespace, name)
                keep = found is not None and is_current(found, refresh_minimum(self.stream))
                if not (self.target_kind is Target.RESUME and keep):
                    self.tables.drop_table(conn, sa.Table(name, sa.MetaData(), schema=plan.namespace))
            self.raw = ensure_raw_table(conn, self.pg, plan.namespace, name)

    @property
    def shared_loads(self) -> bool:
        """One load at a time: a load keeps its records on the loader for the raw table."""
        return False

    def load(
        self, records: Sequence[RawRecord], parts: Iterator[Batch] | None = None, slot: Slot | None = None
    ) -> None:
        self._records = records
        try:
            super().load(records, parts, slot)
        finally:
            self._records = ()

    def _load_parts(self, parts: Iterator[Batch], slot: Slot) -> None:
        conn = self.lanes[slot.lane]
        assert self.target is not None
        assert self.raw is not None
        built: list[Batch] = []

        def kept() -> Iterator[Batch]:
            for part in parts:
                built.append(part)
                yield part

        with self.transaction(conn):
            if self.dedup:
                self._stage_and_merge(kept())
            else:
                self.bulk.load_batches(conn, self.target, kept(), self.write)
            load_raw(conn, self.raw, raw_rows(built, self._records), self.write)
            slot.wait_turn()  # (its loads are not shared: the turn is there)

    def complete(self) -> None:
        """Swap in both refreshed tables, or drop both tables' older generations, in one
        transaction."""
        if self.completed:
            return
        self.completed = True
        assert self.target is not None
        assert self.raw is not None
        conn, plan = self.conn, self.plan
        with self.transaction():
            if self.replaces or self.drops_old_generations:
                self.lock()
            if self.replaces:
                final = sa.Table(plan.name, sa.MetaData(), schema=plan.namespace)
                self.tables.swap(conn, self.target, final, self.write)
                raw_final = sa.Table(self.raw_name, sa.MetaData(), schema=plan.namespace)
                self.tables.swap(conn, self.raw, raw_final, self.write)
                self.log("INFO", f"{plan.descriptor}: refreshed table and raw table swapped in")
            elif self.drops_old_generations:
                assert self.stream.minimum_generation_id is not None
                for table in (self.target, self.raw):
                    conn.execute(delete_old_generations(table, self.stream.minimum_generation_id))
