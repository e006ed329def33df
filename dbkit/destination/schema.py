"""Table plans: which tables and columns a catalog's streams get, and their creation/evolution.

Evolution rule (documented in the README): a new field becomes a new column; a column whose
type changed is widened so that it holds both old and new values (see
``TypeMapping.widen``); a column missing from the new schema is kept and left NULL for
new rows. No stored value is ever dropped or rewritten lossily.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from dbkit.db.types import AirbyteType
from dbkit.destination.batch import EXTRACTED_AT, GENERATION_ID, META, META_COLUMNS, RAW_ID, BatchColumn
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.merge import RN, SEQ
from dbkit.destination.naming import NamingRules, allocate, normalize, short_hash, with_hash
from dbkit.destination.write import WriteContext
from dbkit.errors import ConfigError
from dbkit.protocol import ConfiguredCatalog, ConfiguredStream, StreamDescriptor

CDC_DELETED_AT = "_ab_cdc_deleted_at"
TMP_SUFFIX = "_airbyte_tmp"


@dataclass(frozen=True)
class TablePlan:
    descriptor: StreamDescriptor
    namespace: str | None
    name: str
    tmp_name: str
    columns: tuple[BatchColumn, ...]
    key: tuple[str, ...]  # target column names of the primary key
    cursor: str | None  # target column name of the cursor
    deleted_at: str | None

    def column_for(self, field: str) -> BatchColumn | None:
        for c in self.columns:
            if c.field == field:
                return c
        return None


def _top_level(paths: Sequence[Sequence[str]], what: str, stream: ConfiguredStream) -> list[str]:
    out = []
    for path in paths:
        if len(path) != 1:
            raise ConfigError(
                f"stream {stream.descriptor}: {what} {list(path)} is a nested field; only top-level fields "
                "are supported",
                stream=stream.descriptor,
            )
        out.append(path[0])
    return out


def plan_tables(
    dialect: DestinationDialect[Any], catalog: ConfiguredCatalog
) -> dict[StreamDescriptor, TablePlan]:
    """Table and column names for every stream; names are allocated per schema, collision-free."""
    rules = dialect.naming
    default_ns = dialect.default_namespace()
    by_namespace: dict[str | None, list[ConfiguredStream]] = defaultdict(list)
    namespaces = {}
    for stream in catalog:
        raw_ns = stream.descriptor.namespace or default_ns
        ns = None if raw_ns is None or not dialect.capabilities.namespaces else _schema_name(raw_ns, rules)
        namespaces[stream.descriptor] = ns
        by_namespace[ns].append(stream)
    plans = {}
    for ns, streams in by_namespace.items():
        # two source namespaces may land in one schema; same-named streams then get hashed names
        counts = Counter(s.descriptor.name for s in streams)
        table_names = allocate(
            [s.descriptor.name for s in streams if counts[s.descriptor.name] == 1], rules, table=True
        )
        for stream in streams:
            name = stream.descriptor.name
            if counts[name] > 1:
                table = with_hash(normalize(name, rules, table=True), str(stream.descriptor), rules)
            else:
                table = table_names[name]
            plans[stream.descriptor] = _plan_one(dialect, stream, ns, table)
    return plans


def _schema_name(namespace: str, rules: NamingRules) -> str:
    return allocate([namespace], rules)[namespace]


def _plan_one(
    dialect: DestinationDialect[Any], stream: ConfiguredStream, ns: str | None, name: str
) -> TablePlan:
    rules = dialect.naming
    properties = stream.stream.properties
    # the metadata columns, and the columns the dedup SQL adds, are never a source field's name
    names = allocate(list(properties), rules, taken=(*META_COLUMNS, SEQ, RN))
    columns = tuple(
        BatchColumn(field, names[field], dialect.types.airbyte_type(schema))
        for field, schema in properties.items()
    )
    key_fields = _top_level(stream.effective_primary_key, "primary key", stream)
    cursor_fields = _top_level(
        [stream.effective_cursor_field] if stream.effective_cursor_field else [], "cursor", stream
    )
    for f in [*key_fields, *cursor_fields]:
        if f not in names:
            raise ConfigError(
                f"stream {stream.descriptor}: field {f!r} (primary key or cursor) is not in the "
                "stream's schema",
                stream=stream.descriptor,
            )
    if stream.destination_sync_mode.value == "append_dedup" and not key_fields:
        raise ConfigError(
            f"stream {stream.descriptor} is append_dedup but has no primary key; set one or use append",
            stream=stream.descriptor,
        )
    tmp = name + TMP_SUFFIX
    if len(tmp.encode()) > rules.max_bytes:
        tmp = _tmp_name(name, rules)
    return TablePlan(
        descriptor=stream.descriptor,
        namespace=ns,
        name=name,
        tmp_name=tmp,
        columns=columns,
        key=tuple(names[f] for f in key_fields),
        cursor=names[cursor_fields[0]] if cursor_fields else None,
        deleted_at=names.get(CDC_DELETED_AT),
    )


def _tmp_name(name: str, rules: NamingRules) -> str:
    suffix = f"{TMP_SUFFIX}_{short_hash(name)}"
    head = name.encode()[: rules.max_bytes - len(suffix)].decode(errors="ignore")
    return head + suffix


def index_name(table: str, purpose: str, nonce: str, rules: NamingRules) -> str:
    suffix = f"_{purpose}_{short_hash(table + purpose + nonce)}"
    head = table.encode()[: rules.max_bytes - len(suffix)].decode(errors="ignore")
    return head + suffix


def build_table(
    dialect: DestinationDialect[Any],
    plan: TablePlan,
    name: str,
    storage: dict[str, AirbyteType] | None = None,
) -> sa.Table:
    """The SQLAlchemy table of a plan: data columns, then the four ``_airbyte_*`` columns."""
    meta_types = dialect.types.meta_column_types()
    columns: list[sa.Column[Any]] = [
        sa.Column(c.name, dialect.types.column_type((storage or {}).get(c.name, c.airbyte_type)))
        for c in plan.columns
    ]
    raw_default = dialect.types.raw_id_default()
    columns.append(sa.Column(RAW_ID, meta_types[RAW_ID], server_default=raw_default, nullable=False))
    columns.append(sa.Column(EXTRACTED_AT, meta_types[EXTRACTED_AT], nullable=False))
    columns.append(sa.Column(META, meta_types[META], nullable=False))
    columns.append(sa.Column(GENERATION_ID, meta_types[GENERATION_ID]))
    return sa.Table(name, sa.MetaData(), *columns, schema=plan.namespace)


def ensure_table(
    conn: sa.Connection, dialect: DestinationDialect[Any], plan: TablePlan, name: str, write: WriteContext
) -> tuple[sa.Table, dict[str, AirbyteType], TablePlan]:
    """Create the table, or evolve an existing one.

    Returns the table, each data column's storage type, and the plan with the column names the
    table really has (use it, not the plan passed in, to build batches).

    An existing table keeps its columns' names as stored (where the database folds case, a
    field whose name differs only by case uses the existing column). A table from an older
    layout gets the ``_airbyte_*`` columns it lacks, nullable (its old rows have no value).
    """
    tables, types, log = dialect.tables, dialect.types, write.log
    tables.ensure_namespace(conn, plan.namespace)
    found = tables.existing_columns(conn, plan.namespace, name)
    if found is None:
        table = build_table(dialect, plan, name)
        table.create(conn)
        return table, {c.name: c.airbyte_type for c in plan.columns}, plan
    rules = dialect.naming
    by_key = {rules.key(col_name): col_name for col_name in found}
    plan = _with_stored_names(plan, by_key, rules)
    existing = {col_name: found[col_name] for col_name in found}
    storage: dict[str, AirbyteType] = {}
    wanted_columns: list[sa.Column[Any]] = []
    altered: list[str] = []
    for column in plan.columns:
        if column.name not in existing:
            storage[column.name] = column.airbyte_type
            wanted_columns.append(sa.Column(column.name, types.column_type(column.airbyte_type)))
            continue
        current = types.storage_type(existing[column.name])
        target = types.widen(current, column.airbyte_type)
        storage[column.name] = target
        if target != current:
            altered.append(column.name)
    table = build_table(dialect, plan, name, storage)
    # columns of the existing table that the stream no longer has are kept
    for col_name, sa_type in existing.items():
        if col_name not in table.c:
            table.append_column(sa.Column(col_name, sa_type))
    for new_column in wanted_columns:
        tables.add_column(conn, table, table.c[new_column.name])
        log("INFO", f"{plan.descriptor}: added column {new_column.name!r}")
    for meta in META_COLUMNS:
        if meta not in existing:
            tables.add_column(conn, table, sa.Column(meta, table.c[meta].type, nullable=True))
            log("INFO", f"{plan.descriptor}: added column {meta!r} (older table layout)")
    for col_name in altered:
        if dialect.capabilities.alter_column_type:
            tables.alter_column_type(conn, table, table.c[col_name], write)
        log("INFO", f"{plan.descriptor}: column {col_name!r} widened to {storage[col_name].value}")
    return table, storage, plan


def _with_stored_names(plan: TablePlan, stored: dict[str, str], rules: NamingRules) -> TablePlan:
    """The plan with each column named as the existing table spells it (same name for the database)."""

    def name(column: str) -> str:
        return stored.get(rules.key(column), column)

    columns = tuple(BatchColumn(c.field, name(c.name), c.airbyte_type) for c in plan.columns)
    if all(a.name == b.name for a, b in zip(columns, plan.columns, strict=True)):
        return plan
    return replace(
        plan,
        columns=columns,
        key=tuple(name(k) for k in plan.key),
        cursor=None if plan.cursor is None else name(plan.cursor),
        deleted_at=None if plan.deleted_at is None else name(plan.deleted_at),
    )
