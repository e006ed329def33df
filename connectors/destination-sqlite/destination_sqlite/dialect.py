"""SQLite as a destination: declared type names SQLite (and source-sqlite) understand, text for
temporal values in Airbyte's forms, numbers exact.

- Temporal values are text in Airbyte's forms; they sort correctly within a column for years
  1..9999 (a BC or five-digit year sorts as text, which matters only for a dedup cursor).
- Number columns are declared ``DECIMAL_BLOB``. A declared type naming BLOB has no affinity, so
  SQLite keeps each value as bound: an integer as INTEGER, a decimal that a double holds exactly
  as REAL, and any wider number as its exact text (a NUMERIC column would convert that text to
  a double and keep only about 15 digits). source-sqlite reads the type back as a number.
- A JSON column (NUMERIC affinity) stores a bare number as a double: such a number wider than a
  double is stored rounded with a ``TRUNCATED`` change (``Capabilities.float_json_numbers``).
- SQLite cannot change a column's declared type in place: widening rebuilds the table (rows,
  indexes and triggers kept), so that the declared type, which decides how SQLite stores values
  and how source-sqlite reads them, always matches what the column holds.
- Table swaps (overwrite, truncate refresh) and rebuilds run with ``legacy_alter_table`` on, so
  that users' views over the table survive them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from dbkit import ConfigError, DbkitError
from dbkit.db import (
    AirbyteType,
    Capabilities,
    classify_sqlite_error,
    format_date,
    format_time_micros,
    format_timestamp,
)
from dbkit.destination import (
    EXTRACTED_AT,
    GENERATION_ID,
    META,
    RAW_ID,
    BulkLoader,
    DeclaredType,
    DestinationDialect,
    TableOperations,
    TypeMapping,
    WriteContext,
    WriteOptions,
    short_hash,
)

TYPES: dict[AirbyteType, str] = {
    AirbyteType.STRING: "TEXT",
    AirbyteType.BOOLEAN: "BOOLEAN",
    AirbyteType.INTEGER: "INTEGER",
    AirbyteType.NUMBER: "DECIMAL_BLOB",
    AirbyteType.DATE: "DATE",
    AirbyteType.TIMESTAMP_WITH_TIMEZONE: "TIMESTAMPTZ",
    AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE: "TIMESTAMP",
    AirbyteType.TIME_WITH_TIMEZONE: "TIMETZ",
    AirbyteType.TIME_WITHOUT_TIMEZONE: "TIME",
    AirbyteType.BINARY: "BLOB",
    AirbyteType.OBJECT: "JSON",
    AirbyteType.ARRAY: "JSON",
    AirbyteType.UNKNOWN: "JSON",
}
_BY_NAME = {v: k for k, v in TYPES.items() if k not in (AirbyteType.OBJECT, AirbyteType.ARRAY)}
_BY_NAME.update(
    {
        "DATETIME": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
        "TIMESTAMP WITH TIME ZONE": AirbyteType.TIMESTAMP_WITH_TIMEZONE,
        "TIMESTAMP WITHOUT TIME ZONE": AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE,
        "TIME WITH TIME ZONE": AirbyteType.TIME_WITH_TIMEZONE,
        "TIME WITHOUT TIME ZONE": AirbyteType.TIME_WITHOUT_TIMEZONE,
        "BOOL": AirbyteType.BOOLEAN,
        "JSONB": AirbyteType.UNKNOWN,
        "NUMERIC": AirbyteType.NUMBER,
    }
)


def _affinity_type(name: str) -> AirbyteType:
    """What a column of a declared type not ours holds, by SQLite's affinity rules."""
    if "INT" in name:
        return AirbyteType.INTEGER
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return AirbyteType.STRING
    if "BLOB" in name:
        return AirbyteType.BINARY
    if not name:
        return AirbyteType.UNKNOWN
    return AirbyteType.NUMBER  # REAL and NUMERIC affinity


def _number(text: str | None) -> int | float | str | None:
    """Exact decimal text -> what a DECIMAL_BLOB column stores: INTEGER, REAL when a double holds
    the number exactly, else the text itself (see the module doc)."""
    if text is None:
        return None
    value = Decimal(text)
    if value == value.to_integral_value() and -(2**63) <= value < 2**63:
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else text


class SqliteTypes(TypeMapping):
    """The type-mapping role of destination-sqlite: declared type names (see the module doc)."""

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        return DeclaredType(TYPES[airbyte_type])

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        return {
            RAW_ID: DeclaredType("TEXT"),
            EXTRACTED_AT: DeclaredType("TIMESTAMPTZ"),
            META: DeclaredType("JSON"),
            GENERATION_ID: DeclaredType("INTEGER"),
        }

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        name = sql_type.name if isinstance(sql_type, DeclaredType) else str(sql_type)
        key = re.sub(r"\s+", " ", re.sub(r"\(.*\)", "", name)).strip().upper()
        return _BY_NAME.get(key) or _affinity_type(key)


class SqliteTables(TableOperations):
    """The table-operations role of destination-sqlite: catalog reads with pragmas, swaps and
    rebuilds that leave users' views alone."""

    def existing_columns(
        self, conn: sa.Connection, namespace: str | None, name: str
    ) -> dict[str, sa.types.TypeEngine[Any]] | None:
        rows = conn.execute(sa.text("SELECT name, type FROM pragma_table_xinfo(:t)"), {"t": name}).all()
        if not rows:
            return None
        return {row[0]: DeclaredType(row[1] or "") for row in rows}

    @contextmanager
    def _legacy_alter(self, conn: sa.Connection) -> Iterator[None]:
        """Renames that leave views alone: a view over the table being replaced names a table
        that is briefly missing, which modern ``ALTER TABLE ... RENAME`` refuses."""
        conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")

    def swap(self, conn: sa.Connection, tmp: sa.Table, final: sa.Table, write: WriteContext) -> None:
        with self._legacy_alter(conn):
            super().swap(conn, tmp, final, write)

    def alter_column_type(
        self, conn: sa.Connection, table: sa.Table, column: sa.Column[Any], write: WriteContext
    ) -> None:
        """Give ``column`` the declared type ``column.type`` by rebuilding the table in the caller's
        transaction (sqlite.org/lang_altertable.html#otheralter): same columns in the same order,
        NOT NULL, defaults and primary key, rows copied (each value keeps its value; the new
        column affinity applies), then the table's indexes and triggers are created again."""
        name = table.name
        info = conn.execute(
            sa.text('SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(:t)'),
            {"t": name},
        ).all()
        if any(row[5] for row in info):
            raise ConfigError(
                f"column {column.name!r} of {name!r} needs a wider type, and SQLite can only change it "
                "by rebuilding the table, which has generated columns; change the column yourself"
            )
        extras = (
            conn.execute(
                sa.text(
                    "SELECT sql FROM sqlite_schema WHERE tbl_name = :t AND type IN ('index', 'trigger') "
                    "AND sql IS NOT NULL ORDER BY type, name"
                ),
                {"t": name},
            )
            .scalars()
            .all()
        )
        new_type = column.type.compile(dialect=conn.dialect)
        columns: list[sa.Column[Any]] = []
        key = sorted((row[4], row[0]) for row in info if row[4])
        for col_name, col_type, not_null, default, _pk, _hidden in info:
            declared = new_type if col_name.casefold() == column.name.casefold() else (col_type or "")
            columns.append(
                sa.Column(
                    col_name,
                    DeclaredType(declared),
                    nullable=not not_null,
                    server_default=None if default is None else sa.text(default),
                )
            )
        rebuilt_name = f"{name}_dbkit_rebuild_{short_hash(name)}"
        rebuilt = sa.Table(rebuilt_name, sa.MetaData(), *columns)
        if key:
            rebuilt.append_constraint(sa.PrimaryKeyConstraint(*(k for _, k in key)))
        preparer = conn.dialect.identifier_preparer
        names = ", ".join(preparer.quote(row[0]) for row in info)
        old_sql, new_sql = preparer.quote(name), preparer.quote(rebuilt_name)
        with self._legacy_alter(conn):
            rebuilt.create(conn)
            conn.exec_driver_sql(f"INSERT INTO {new_sql} ({names}) SELECT {names} FROM {old_sql}")
            conn.exec_driver_sql(f"DROP TABLE {old_sql}")
            conn.exec_driver_sql(f"ALTER TABLE {new_sql} RENAME TO {old_sql}")
            for sql in extras:
                conn.exec_driver_sql(sql)


class SqliteBulkLoader(BulkLoader):
    """The bulk-loading role of destination-sqlite: ``executemany`` of positional rows."""

    def bulk_load(self, conn: sa.Connection, table: sa.Table, batch: pa.Table) -> None:
        """One ``executemany`` of positional rows (the INSERT compiled by SQLAlchemy); numbers
        bound as ``int``/``float`` (see the module doc)."""
        if batch.num_rows == 0:
            return
        names = batch.column_names
        columns = [
            self.to_python(batch.column(i), batch.schema.field(i).type) for i in range(batch.num_columns)
        ]
        for i, name in enumerate(names):
            number_column = (
                name in table.c and self.types.storage_type(table.c[name].type) is AirbyteType.NUMBER
            )
            if number_column and pa.types.is_string(batch.schema.field(i).type):
                columns[i] = [_number(v) for v in columns[i]]
        binds: dict[str, Any] = {name: sa.bindparam(f"p{i}") for i, name in enumerate(names)}
        insert = table.insert().values(binds).compile(dialect=conn.dialect)
        order = [int(key[1:]) for key in insert.positiontup or ()]
        if sorted(order) != list(range(len(names))):
            raise AssertionError(f"unexpected INSERT parameters {insert.positiontup}")
        ordered = [columns[i] for i in order]
        conn.exec_driver_sql(str(insert), list(zip(*ordered, strict=True)))

    def to_python(self, column: pa.ChunkedArray, arrow_type: pa.DataType) -> list[Any]:
        if pa.types.is_timestamp(arrow_type):
            with_zone = arrow_type.tz is not None
            return [
                None if v is None else format_timestamp(v, with_zone)
                for v in column.cast(pa.int64()).to_pylist()
            ]
        if pa.types.is_date32(arrow_type):
            return [None if v is None else format_date(v) for v in column.cast(pa.int32()).to_pylist()]
        if pa.types.is_time64(arrow_type):
            return [None if v is None else format_time_micros(v) for v in column.cast(pa.int64()).to_pylist()]
        if pa.types.is_boolean(arrow_type):
            return pc.cast(column, pa.int64()).to_pylist()  # type: ignore[no-any-return]
        return super().to_python(column, arrow_type)


class SqliteDestinationDialect(DestinationDialect[Any]):
    name = "sqlite"
    capabilities = Capabilities(
        namespaces=False,
        max_identifier_bytes=1000,
        identifier_case_insensitive=True,
        reserved_table_prefixes=("sqlite_",),
        drop_cascade=False,
        alter_column_type=True,
        timestamp_years=(-999_999, 999_999),
        float_json_numbers=True,
    )
    type_mapping: ClassVar[type[TypeMapping]] = SqliteTypes
    table_operations: ClassVar[type[TableOperations]] = SqliteTables
    bulk_loader: ClassVar[type[BulkLoader]] = SqliteBulkLoader

    @property
    def path(self) -> Path:
        return Path(self.config.path).expanduser()

    def sqlalchemy_url(self) -> sa.URL:
        return sa.URL.create("sqlite+pysqlite", database=str(self.path.resolve()))

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"timeout": 30}}

    def on_connect(self, dbapi_connection: Any) -> None:
        # let SQLAlchemy, not pysqlite, manage transactions, so DDL takes part in them
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def engine_events(self, engine: sa.Engine) -> None:
        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def describe_target(self) -> str:
        return f"SQLite database {self.path}"

    def write_options(self) -> WriteOptions:
        return WriteOptions(hard_delete=self.config.cdc_deletion_mode != "soft_delete")

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        return classify_sqlite_error(exc, self.path)
