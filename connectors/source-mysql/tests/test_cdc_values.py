"""Binlog values equal snapshot values: every type case of the acceptance table (edge values,
zero dates, TIME past 24 h, bit, set, enum, float32, JSON, decimal(65,30), every charset) is
inserted, updated and deleted on a throwaway MariaDB with a row binlog, and each change's record
data (insert image, update before/after images, delete image) is byte for byte what the server
renders for the same row. Also: ALTER TABLE between changes, and the binlog's traps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbkit import ConfigError, Database
from dbkit.protocol import StreamDescriptor
from dbkit.source import ColumnInfo, Operation, TableInfo
from source_mysql import MySqlSourceConfig, MySqlSourceDialect
from source_mysql.cdc.reader import BinlogPosition, MySqlCdcReader
from source_mysql.encoder import ServerRecordEncoder

from .test_acceptance import TYPE_CASES
from .test_cdc import MySqlCdc

pytestmark = [pytest.mark.slow]


def changes_of(
    reader: MySqlCdcReader, start: BinlogPosition, tables: dict[StreamDescriptor, TableInfo]
) -> list[Any]:
    upper = reader.current_position()
    out = []
    for batch in reader.changes(start, upper, tables):
        out.extend(batch.changes)
    return out


def reader_of(dialect: MySqlSourceDialect, db: Database) -> MySqlCdcReader:
    reader = dialect.cdc_reader(db)
    assert isinstance(reader, MySqlCdcReader)
    return reader


def test_binlog_values_equal_snapshot_values_on_every_type_case(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = MySqlCdc(request, tmp_path)
    config = MySqlSourceConfig.model_validate(source.cdc_config())
    dialect = MySqlSourceDialect(config)
    with Database(dialect) as db:
        reader = reader_of(dialect, db)
        start = reader.current_position()
        names = []
        for index, case in enumerate(TYPE_CASES):
            table = f"dbkit_bv_{index:03d}"
            source.execute(*source.literal_table_sql(table, case))
            names.append(table)
        with db.connect() as conn:
            infos = {t.name: t for t in dialect.list_tables(conn)}
            # the snapshot path's bytes of every row, before and after an update of its key
            expected: dict[str, bytes] = {}
            for table in names:
                info = infos[table]
                t = dialect.table_clause(info)
                server = ServerRecordEncoder(list(info.columns))
                row = conn.execute(sa.select(*server.select_list()).select_from(t)).one()
                data, _ = server.encode([row])
                expected[table] = data[0]
        tables = {infos[n].descriptor: infos[n] for n in names}
        for table in names:
            source.execute(
                f"UPDATE {source.qualified(table)} SET id = 2", f"DELETE FROM {source.qualified(table)}"
            )
        changes = changes_of(reader, start, tables)
        mismatches = []
        by_stream: dict[StreamDescriptor, list[Any]] = {}
        for change in changes:
            by_stream.setdefault(change.stream, []).append(change)
        for table, case in zip(names, TYPE_CASES, strict=True):
            info = infos[table]
            found = by_stream.get(info.descriptor, [])
            ops = [c.operation for c in found]
            # insert; the key update: delete of id 1, update to id 2; the delete of id 2
            want_ops = [Operation.INSERT, Operation.DELETE, Operation.UPDATE, Operation.DELETE]
            if ops != want_ops:
                mismatches.append(f"{case.name}: operations {ops}")
                continue
            columns: list[ColumnInfo] = list(info.columns)
            encoder = reader.encoder(info, columns)
            datas, problems = encoder.encode([c.image for c in found])
            want_id1 = expected[table]
            want_id2 = want_id1.replace(b'{"id":1,', b'{"id":2,', 1)
            for data, want in zip(datas, (want_id1, want_id1, want_id2, want_id2), strict=True):
                if data != want:
                    mismatches.append(f"{case.name}: binlog {data!r} != snapshot {want!r}")
            if case.change is not None and not all(i in problems for i in range(4)):
                mismatches.append(f"{case.name}: no change recorded for the nulled value: {problems}")
        assert not mismatches, "\n".join(mismatches)


def test_alter_table_between_changes(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """With binlog_row_metadata = FULL, rows logged before and after ADD/DROP COLUMN decode against
    the columns they were logged with; without it, the read stops with a config_error saying so."""
    source = MySqlCdc(request, tmp_path)
    config = MySqlSourceConfig.model_validate(source.cdc_config())
    dialect = MySqlSourceDialect(config)
    table = source.qualified("dbkit_altered")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, a VARCHAR(10), b INT, c INT)")

    def run(metadata: str) -> list[Any]:
        source.run(f"SET GLOBAL binlog_row_metadata = {metadata}")
        with Database(dialect) as db:
            reader = reader_of(dialect, db)
            start = reader.current_position()
            source.execute(
                f"INSERT INTO {table} (id, a, b, c) VALUES (1, 'one', 10, 100)",
                f"ALTER TABLE {table} DROP COLUMN b",
                f"INSERT INTO {table} (id, a, c) VALUES (2, 'two', 200)",
                f"ALTER TABLE {table} ADD COLUMN d VARCHAR(5) AFTER id",
                f"INSERT INTO {table} (id, d, a, c) VALUES (3, 'new', 'three', 300)",
            )
            with db.connect() as conn:
                info = next(t for t in dialect.list_tables(conn) if t.name == "dbkit_altered")
            return [c.image for c in changes_of(reader, start, {info.descriptor: info})]

    try:
        images = run("FULL")
    finally:
        source.run("SET GLOBAL binlog_row_metadata = NO_LOG")
    assert images == [
        {"id": "1", "a": "one", "b": "10", "c": "100"},
        {"id": "2", "a": "two", "c": "200"},
        {"id": "3", "d": "new", "a": "three", "c": "300"},
    ]
    source.execute(f"DROP TABLE {table}")
    source.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, a VARCHAR(10), b INT, c INT)")
    with pytest.raises(ConfigError, match="binlog_row_metadata = FULL"):
        run("NO_LOG")
