"""SQLite as a source: declared types by SQLite's affinity rules, rowid as the row locator.

SQLite stores any value in any column, so every converter checks what it gets: a value that does
not fit the declared type (text in an INTEGER column, a malformed date) is emitted as NULL with a
``meta.changes`` entry rather than passed on under the wrong type.

Discovery lists tables and views (not the internal "shadow" tables of virtual tables such as
FTS indexes, nor hidden columns), knows WITHOUT ROWID tables from SQLite itself, and reports
row estimates where ``ANALYZE`` measured them (``sqlite_stat1``). Tables without a usable key are
read in rowid order, under whichever of ``_rowid_``, ``rowid``, ``oid`` no column shadows.
SQLite may renumber such rowids on ``VACUUM``: a read interrupted before a VACUUM and resumed
after it may then repeat or skip rows of that one read (tables with an INTEGER PRIMARY KEY or
another non-NULL key are not affected); the next full read is whole again.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from orjson import Fragment

from dbkit import ConfigError, DbkitError
from dbkit.db import (
    AirbyteType,
    Capabilities,
    Database,
    TypeHandler,
    TypeRegistry,
    Unrepresentable,
    base64_bytes,
    classify_sqlite_error,
    days_in_month,
    finite_float,
    format_ymd,
    parse_json_text,
    wide_int,
)
from dbkit.source import CdcReader, CdcReplication, ColumnInfo, RowLocator, SourceDialect, TableInfo
from source_sqlite.changelog import CHANGE_LOG_TABLES, SqliteChangeLog
from source_sqlite.config import SqliteSourceConfig

_log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------ converters


def _integer(value: Any) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return wide_int(int(value))  # 1e20 stored as REAL in an INTEGER column: all its digits
    raise Unrepresentable(f"{type(value).__name__} value in an integer column")


_NUMBER_TEXT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _number(value: Any) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, float):
        return finite_float(value)
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        # numeric text SQLite kept as text (e.g. too many digits for a REAL): every digit kept
        try:
            d = Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimal literals
            raise Unrepresentable("text that is not a number in a numeric column") from None
        return Fragment(format(d, "f"))
    if isinstance(value, str):
        raise Unrepresentable("text that is not a number in a numeric column")
    raise Unrepresentable(f"{type(value).__name__} value in a numeric column")


def _string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise Unrepresentable("bytes that are not UTF-8 in a text column") from None
    raise Unrepresentable(f"{type(value).__name__} value in a text column")


def _boolean(value: Any) -> Any:
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "t", "f", "1", "0"):
        return value.lower() in ("true", "t", "1")
    raise Unrepresentable("value in a boolean column is not 0/1/true/false")


def _binary(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64_bytes(value)
    if isinstance(value, str):
        return base64_bytes(value.encode("utf-8"))
    raise Unrepresentable(f"{type(value).__name__} value in a blob column")


# Years: 4+ digits, ISO 8601 signed expanded years (+10000, -0001 = 2 BC), or " BC" after the value.
_YEAR = r"([+-]?\d{4,})"
_TIME = r"(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?"
_ZONE = r"(Z|z|[+-]\d{2}:?\d{2})"
_DATETIME = re.compile(rf"^{_YEAR}-(\d{{2}})-(\d{{2}})(?:[ T]{_TIME}{_ZONE}?)?( BC)?$")
_TIMEONLY = re.compile(rf"^{_TIME}{_ZONE}?$")


def _ymd(year: str, month: str, day: str, bc: str | None) -> tuple[str, str]:
    """A validated date in Airbyte's form, split as (date text without era, era suffix)."""
    y, m, d = int(year), int(month), int(day)
    if bc and (y <= 0 or year[0] in "+-"):
        raise Unrepresentable("not a calendar date")
    astronomical = 1 - y if bc else y  # ISO year 0 is 1 BC
    if not 1 <= m <= 12 or not 1 <= d <= days_in_month(astronomical, m):
        raise Unrepresentable("not a calendar date")
    text = format_ymd(astronomical, m, d)
    return (text[:-3], " BC") if text.endswith(" BC") else (text, "")


def _date(value: Any) -> Any:
    if isinstance(value, str):
        m = _DATETIME.match(value.strip())
        if m:
            year, month, day, hh, mm, ss, frac, zone, bc = m.groups()
            # a date, or a date and time that is exactly midnight (how some tools store dates)
            if hh is None or (
                hh == mm == "00" and ss in (None, "00") and not (frac or ".").strip(".0") and zone is None
            ):
                text, era = _ymd(year, month, day, bc)
                return text + era
    raise Unrepresentable("value in a date column is not a YYYY-MM-DD date")


def _hms(hours: str, minutes: str, seconds: str | None, fraction: str | None) -> str:
    if int(hours) > 23 or int(minutes) > 59 or (seconds is not None and int(seconds) > 59):
        raise Unrepresentable("time of day out of range")
    return f"{hours}:{minutes}:{seconds or '00'}{fraction or ''}"


def _zone(zone: str) -> str:
    if zone in ("Z", "z"):
        return "+00:00"
    text = zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    if int(text[1:3]) > 23 or int(text[4:6]) > 59:
        raise Unrepresentable("time zone offset out of range")
    return text


def _timestamp(with_zone: bool) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            m = _DATETIME.match(value.strip())
            if m:
                year, month, day, hh, mm, ss, frac, zone, bc = m.groups()
                date, era = _ymd(year, month, day, bc)
                # a date alone is its midnight, as SQLite's own date functions read it
                text = f"{date}T{_hms(hh or '00', mm or '00', ss, frac)}"
                if with_zone:
                    return text + _zone(zone or "Z") + era
                if zone is None:
                    return text + era
                raise Unrepresentable("a time zone offset in a timestamp-without-time-zone column")
        raise Unrepresentable("value in a timestamp column is not an ISO date and time")

    return convert


def _time(with_zone: bool) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            m = _TIMEONLY.match(value.strip())
            if m:
                text = _hms(*m.groups()[:4])
                zone = m.group(5)
                if with_zone:
                    return text + _zone(zone or "Z")
                if zone is None:
                    return text
        raise Unrepresentable("value in a time column is not HH:MM[:SS[.ffffff]]")

    return convert


def _any(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64_bytes(value)
    if isinstance(value, float):
        return finite_float(value)
    return value


INTEGER = TypeHandler(AirbyteType.INTEGER, _integer)
NUMBER = TypeHandler(AirbyteType.NUMBER, _number)
STRING = TypeHandler(AirbyteType.STRING, _string)
BOOLEAN = TypeHandler(AirbyteType.BOOLEAN, _boolean)
BINARY = TypeHandler(AirbyteType.BINARY, _binary, cursor=False)
DATE = TypeHandler(AirbyteType.DATE, _date)
TIMESTAMP = TypeHandler(AirbyteType.TIMESTAMP_WITHOUT_TIMEZONE, _timestamp(with_zone=False))
TIMESTAMPTZ = TypeHandler(AirbyteType.TIMESTAMP_WITH_TIMEZONE, _timestamp(with_zone=True))
TIME = TypeHandler(AirbyteType.TIME_WITHOUT_TIMEZONE, _time(with_zone=False))
TIMETZ = TypeHandler(AirbyteType.TIME_WITH_TIMEZONE, _time(with_zone=True))
JSON = TypeHandler(AirbyteType.UNKNOWN, parse_json_text, cursor=False)
ANY = TypeHandler(AirbyteType.UNKNOWN, _any, cursor=False)


def _affinity(name: str) -> TypeHandler | None:
    """SQLite's rules (https://sqlite.org/datatype3.html#determination_of_column_affinity),
    refined by the common type names people declare (BOOLEAN, DATE, DATETIME, JSON)."""
    if not name:
        return ANY
    if "int" in name:
        return INTEGER
    if "char" in name or "clob" in name or "text" in name:
        return STRING
    if "blob" in name:
        return BINARY
    if "real" in name or "floa" in name or "doub" in name:
        return NUMBER
    return NUMBER  # NUMERIC affinity


def build_types() -> TypeRegistry:
    types = TypeRegistry(default=ANY, fallback=_affinity)
    types.register(["boolean", "bool"], BOOLEAN)
    types.register("date", DATE)
    types.register(["datetime", "timestamp", "timestamp without time zone"], TIMESTAMP)
    types.register(["timestamptz", "timestamp with time zone", "datetimetz"], TIMESTAMPTZ)
    types.register(["time", "time without time zone"], TIME)
    types.register(["timetz", "time with time zone"], TIMETZ)
    types.register(["json", "jsonb"], JSON)
    # NUMERIC affinity by SQLite's rules, but people who declare these mean text
    types.register(["uuid", "guid", "string"], STRING)
    # STRICT tables' ANY keeps every value as given
    types.register("any", ANY)
    # BLOB affinity by the rules (no conversion: every digit of a number kept as text), declared
    # for exact numbers (destination-sqlite's choice for them): read as numbers
    types.register(["decimal_blob", "numeric_blob"], NUMBER)
    return types


# ------------------------------------------------------------------------------ the dialect

_CATALOG = sa.text(
    """
    SELECT m.name AS table_name, m.type AS kind, m.sql AS ddl,
           p.name AS column_name, p.type AS column_type, p."notnull" AS not_null,
           p.pk AS pk_position, p.hidden AS hidden
    FROM sqlite_schema AS m
    JOIN pragma_table_xinfo(m.name) AS p
    WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
    ORDER BY m.name, p.cid
    """
)
# the same, one relation at a time (when a broken view makes the query above fail)
_RELATIONS = sa.text(
    "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)
_COLUMNS = sa.text('SELECT name, type, "notnull", pk, hidden FROM pragma_table_xinfo(:name) ORDER BY cid')
_WITHOUT_ROWID = re.compile(r"\)\s*(?:STRICT\s*,\s*)?WITHOUT\s+ROWID", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)
# what SQLite itself knows (3.37+): which tables are WITHOUT ROWID, which are the internal
# "shadow" tables of a virtual table (FTS indexes: not user data)
_TABLE_LIST = sa.text("SELECT name, wr, type FROM pragma_table_list WHERE schema = 'main'")
# row counts measured by ANALYZE, when it was run: the first number of each stat is the table's rows
_STATS = sa.text("SELECT tbl, stat FROM sqlite_stat1")
_ROWID_NAMES = ("_rowid_", "rowid", "oid")


class SqliteSourceDialect(SourceDialect[SqliteSourceConfig]):
    name = "sqlite"
    capabilities = Capabilities(
        namespaces=False,
        max_identifier_bytes=10_000,
        identifier_case_insensitive=True,
        concurrent_reads=True,
        drop_cascade=False,
        alter_column_type=False,
    )
    types: ClassVar[TypeRegistry] = build_types()

    @property
    def path(self) -> Path:
        return Path(self.config.path).expanduser()

    def sqlalchemy_url(self) -> sa.URL:
        # read-only: a source never creates or changes the database it reads
        # a URI filename: the path percent-encoded, so that '?', '#' or '%' in it stay part of it
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        return sa.URL.create("sqlite+pysqlite", database=uri, query={"mode": "ro", "uri": "true"})

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}

    def describe_target(self) -> str:
        return f"SQLite database {self.path}"

    def schemas(self) -> list[str | None]:
        return [None]

    def list_tables(self, conn: sa.Connection) -> list[TableInfo]:
        if not self.path.exists():
            raise ConfigError(f"SQLite database {self.path} does not exist")
        grouped: dict[str, dict[str, Any]] = {}
        for row in self._catalog_rows(conn):
            if (
                row["hidden"] == 1
                or row["table_name"] in CHANGE_LOG_TABLES
                or not self.include(None, row["table_name"])
            ):
                continue
            entry = grouped.setdefault(
                row["table_name"], {"kind": row["kind"], "ddl": row["ddl"] or "", "columns": [], "pk": []}
            )
            nullable = not row["not_null"]
            entry["columns"].append(self.column_info(row["column_name"], row["column_type"] or "", nullable))
            if row["pk_position"]:
                entry["pk"].append((row["pk_position"], row["column_name"]))
        without_rowid_tables, shadow = self._table_kinds(conn, grouped)
        estimates = self._row_estimates(conn)
        tables = []
        for name, entry in grouped.items():
            if name in shadow:
                continue
            columns = entry["columns"]
            without_rowid = name in without_rowid_tables
            pk = [col for _, col in sorted(entry["pk"])]
            if pk and (without_rowid or _is_rowid_alias(columns, pk)):
                # WITHOUT ROWID primary keys and INTEGER PRIMARY KEY can never be NULL
                columns = [
                    ColumnInfo(c.name, c.type_name, c.handler, False) if c.name in pk else c for c in columns
                ]
            tables.append(
                TableInfo(
                    name=name,
                    namespace=None,
                    columns=tuple(columns),
                    primary_key=tuple(pk),
                    kind=entry["kind"],
                    row_estimate=estimates.get(name) if entry["kind"] == "table" else None,
                    extra={"rowid": entry["kind"] == "table" and not without_rowid},
                )
            )
        return tables

    def _catalog_rows(self, conn: sa.Connection) -> list[dict[str, Any]]:
        """One row per column of every relation; a view that no longer compiles (it names a
        dropped table or column) is left out with a warning instead of failing discovery."""
        try:
            return [dict(row) for row in conn.execute(_CATALOG).mappings()]
        except sa.exc.OperationalError:
            conn.rollback()
        rows: list[dict[str, Any]] = []
        for name, kind, ddl in conn.execute(_RELATIONS).all():
            try:
                columns = conn.execute(_COLUMNS, {"name": name}).all()
            except sa.exc.OperationalError as exc:
                conn.rollback()
                _log.warning("%s %r cannot be read and is left out: %s", kind, name, exc.orig)
                continue
            rows.extend(
                {
                    "table_name": name,
                    "kind": kind,
                    "ddl": ddl,
                    "column_name": column,
                    "column_type": declared,
                    "not_null": not_null,
                    "pk_position": pk,
                    "hidden": hidden,
                }
                for column, declared, not_null, pk, hidden in columns
            )
        return rows

    def _table_kinds(
        self, conn: sa.Connection, grouped: dict[str, dict[str, Any]]
    ) -> tuple[set[str], set[str]]:
        """(WITHOUT ROWID tables, shadow tables)."""
        try:
            rows = conn.execute(_TABLE_LIST).all()
        except sa.exc.OperationalError:  # SQLite before 3.37: read the DDL
            conn.rollback()
            return {
                name
                for name, entry in grouped.items()
                if _WITHOUT_ROWID.search(_COMMENTS.sub(" ", entry["ddl"]))
            }, set()
        return {row[0] for row in rows if row[1]}, {row[0] for row in rows if row[2] == "shadow"}

    def _row_estimates(self, conn: sa.Connection) -> dict[str, int]:
        try:
            rows = conn.execute(_STATS).all()
        except sa.exc.OperationalError:  # no sqlite_stat1: ANALYZE never ran
            conn.rollback()
            return {}
        out: dict[str, int] = {}
        for table, stat in rows:
            first = str(stat or "").split(" ", 1)[0]
            if first.isdigit():
                out[table] = max(out.get(table, 0), int(first))
        return out

    def row_locator(self, table: TableInfo) -> RowLocator | None:
        """The rowid, under a name no column of the table shadows (a column called ``rowid``,
        ``oid`` or ``_rowid_`` hides the real one); None for views and WITHOUT ROWID tables."""
        if not table.extra.get("rowid"):
            return None
        taken = {c.name.lower() for c in table.columns}
        alias = next((n for n in _ROWID_NAMES if n not in taken), None)
        if alias is None:
            return None
        return RowLocator("rowid", lambda t: sa.literal_column(alias))

    def cursor_beyond(
        self, column: ColumnInfo, value: sa.ColumnElement[Any]
    ) -> sa.ColumnElement[bool] | None:
        """A REAL infinity (``9e999``), whatever the column's declared type: SQLite stores any
        value in any column (its NaN is NULL). Text, which sorts above every number, is a real
        value of its own."""
        return sa.and_(sa.func.typeof(value) == "real", value >= sa.literal(float("inf")))

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        return classify_sqlite_error(exc, self.path)

    def cdc_reader(self, database: Database) -> CdcReader[Any] | None:
        """The trigger-kept change log when the config asks for CDC."""
        method = self.config.replication_method
        if not isinstance(method, CdcReplication):
            return None
        return SqliteChangeLog(database, method.options(), self.path)


def _is_rowid_alias(columns: list[ColumnInfo], pk: list[str]) -> bool:
    if len(pk) != 1:
        return False
    column = next(c for c in columns if c.name == pk[0])
    return column.type_name.strip().upper() == "INTEGER"
