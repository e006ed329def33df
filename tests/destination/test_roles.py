"""The portable defaults of the destination roles (dbkit.destination.type_mapping, table_ops,
bulk_load, merge_sql), run on SQLite through a dialect that overrides only the type mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from dbkit.db import AirbyteType, Capabilities
from dbkit.destination import (
    EXTRACTED_AT,
    SEQ,
    Batch,
    DedupPlan,
    DestinationDialect,
    Limits,
    NamingRules,
    TypeMapping,
    WriteContext,
    WriteOptions,
)

T = AirbyteType


class PlainTypes(TypeMapping):
    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        return sa.BigInteger() if airbyte_type is T.INTEGER else sa.Text()

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        return T.INTEGER if isinstance(sql_type, sa.Integer) else T.STRING


class Config(BaseModel):
    path: str


class PlainDialect(DestinationDialect[Config]):
    name = "plain"
    capabilities = Capabilities(namespaces=False, drop_cascade=False, max_identifier_bytes=100)
    type_mapping: ClassVar[type[TypeMapping]] = PlainTypes

    def sqlalchemy_url(self) -> sa.URL:
        return sa.URL.create("sqlite+pysqlite", database=self.config.path)


@pytest.fixture
def dialect(tmp_path: Path) -> PlainDialect:
    return PlainDialect(Config(path=str(tmp_path / "roles.db")))


@pytest.fixture
def conn(dialect: PlainDialect) -> Any:
    engine = sa.create_engine(dialect.sqlalchemy_url())
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _table(conn: sa.Connection, name: str = "t") -> sa.Table:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger),
        sa.Column("v", sa.Text),
        sa.Column("c", sa.BigInteger),
        sa.Column(EXTRACTED_AT, sa.BigInteger),
    )
    table.create(conn)
    return table


def _rows(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


def test_the_dialect_derives_its_views_of_the_capabilities(dialect: PlainDialect) -> None:
    assert dialect.naming == NamingRules.of(dialect.capabilities)
    assert dialect.naming.max_bytes == 100
    assert dialect.limits == Limits.of(dialect.capabilities)
    assert dialect.default_namespace() is None
    assert dialect.write_options() == WriteOptions()
    assert dialect.tables.dialect is dialect
    assert dialect.bulk.types is dialect.types
    assert dialect.merger.tables is dialect.tables


def test_type_mapping_widens_without_losing_values(dialect: PlainDialect) -> None:
    widen = dialect.types.widen
    assert widen(T.INTEGER, T.INTEGER) is T.INTEGER
    assert widen(T.INTEGER, T.NUMBER) is T.NUMBER
    assert widen(T.NUMBER, T.INTEGER) is T.NUMBER
    assert widen(T.STRING, T.DATE) is T.STRING
    assert widen(T.OBJECT, T.INTEGER) is T.OBJECT
    assert widen(T.DATE, T.BOOLEAN) is T.STRING
    assert dialect.types.airbyte_type({"type": "integer"}) is T.INTEGER


def test_table_operations_defaults(dialect: PlainDialect, conn: sa.Connection) -> None:
    tables = dialect.tables
    assert tables.existing_columns(conn, None, "t") is None
    table = _table(conn)
    assert list(tables.existing_columns(conn, None, "t") or {}) == ["id", "v", "c", EXTRACTED_AT]
    tables.add_column(conn, table, sa.Column("extra", sa.Text))
    assert "extra" in (tables.existing_columns(conn, None, "t") or {})
    tables.create_index(conn, table, "t_key", ["id"])
    assert [(i.name, i.columns, i.unique) for i in tables.key_indexes(conn, table)] == [
        ("t_key", ("id",), False)
    ]
    tables.create_unique_index(conn, table, "t_key", ["id"], replace=True)
    assert [(i.name, i.unique) for i in tables.key_indexes(conn, table)] == [("t_key", True)]
    tables.drop_index(conn, table, "t_key")
    assert tables.key_indexes(conn, table) == []
    with pytest.raises(Exception, match="cannot alter"):
        tables.alter_column_type(conn, table, table.c.v, WriteContext())
    assert tables.collapse_duplicates(conn, table, DedupPlan(["id"], None, None), WriteContext()) is False

    conn.execute(table.insert().values(id=1, v="old"))
    tmp = _table(conn, "t_tmp")
    conn.execute(tmp.insert().values(id=2, v="new"))
    tables.swap(conn, tmp, sa.Table("t", sa.MetaData()), WriteContext())
    assert tables.existing_columns(conn, None, "t_tmp") is None
    final = sa.Table("t", sa.MetaData(), autoload_with=conn)
    assert [r[:2] for r in _rows(conn, final)] == [(2, "new")]
    tables.drop_table(conn, final)
    assert tables.existing_columns(conn, None, "t") is None


def test_bulk_loading_and_the_default_dedup(dialect: PlainDialect, conn: sa.Connection) -> None:
    target = _table(conn)
    write = WriteContext()
    staging = dialect.tables.create_staging(conn, target, "t_stage")
    assert SEQ in staging.c
    dialect.tables.prepare_table(conn, staging, "{}", 1, write)  # the default does nothing
    assert write.column_defaults == {}

    def batch(rows: list[tuple[int, str, int, int]]) -> Batch:
        ids, values, cursors, extracted = zip(*rows, strict=True)
        return Batch(
            pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "v": pa.array(values),
                    "c": pa.array(cursors, pa.int64()),
                    EXTRACTED_AT: pa.array(extracted, pa.int64()),
                    SEQ: pa.array(range(len(rows)), pa.int64()),
                }
            ),
            0,
        )

    plan = DedupPlan(key=["id"], cursor="c", deleted_at=None, columns=["id", "v", "c", EXTRACTED_AT])
    dialect.bulk.load_batches(
        conn, staging, [batch([(1, "a", 1, 1), (2, "b", 1, 1), (1, "a2", 2, 1)])], write
    )
    dialect.merger.dedup(conn, target, staging, plan, write)
    assert [r[:2] for r in _rows(conn, target)] == [(1, "a2"), (2, "b")]

    dialect.bulk.clear_staging(conn, staging)
    assert _rows(conn, staging) == []
    dialect.bulk.load_batches(conn, staging, [batch([(2, "older", 0, 1), (3, "c", 1, 1)])], write)
    dialect.merger.dedup(conn, target, staging, plan, write)
    assert [r[:2] for r in _rows(conn, target)] == [(1, "a2"), (2, "b"), (3, "c")]
    assert dialect.merger.exact_key(conn, target, ["id"]) is False


def test_the_views_default_to_the_default_capabilities() -> None:
    assert NamingRules() == NamingRules.of(Capabilities())
    assert Limits() == Limits.of(Capabilities())
