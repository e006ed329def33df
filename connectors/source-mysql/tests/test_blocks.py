"""Full refreshes in key-range blocks (``source_mysql.blocks``) against the generic row-by-row
read of the same table: the same records, byte for byte, in the same order, with the same
changes (zero dates), on one and on two connections, and when blocks are longer than the server
allows (read again row by row); without the LOCK TABLES grant the read uses one connection and
says so."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dbkit.db import Database
from dbkit.protocol import parse_configured_catalog
from dbkit.source import PlanJob, ReadChunk, ReadContext, catalog_streams
from dbkit.testing import configured_catalog
from source_mysql import MySqlSourceConfig, MySqlSourceDialect
from source_mysql.blocks import BlockJob

pytestmark = pytest.mark.mysql

ROWS = 300


def create_table(source: Any) -> None:
    source.run(
        "CREATE TABLE blocks (k VARBINARY(4) NOT NULL, n INT NOT NULL, d DATE, note TEXT, "
        "PRIMARY KEY (k, n))",
        "INSERT INTO blocks SELECT UNHEX(LPAD(HEX(seq % 3), 2, '0')), seq, "
        "IF(seq % 10 = 0, '0000-00-00', '2024-01-01' + INTERVAL seq DAY), "
        "IF(seq % 7 = 0, CONCAT('tab\\there \"', seq, '\" é😀'), REPEAT('x', seq % 50)) FROM seq_1_to_300",
    )


def records(chunks: list[ReadChunk]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        for block in chunk.lines:
            for line in block.splitlines():
                record = orjson.loads(line)["record"]
                out.append({"data": record["data"], "meta": record.get("meta")})
    assert sum(c.records for c in chunks) == len(out)
    return out


def read(source: Any, job_of: Any, **config: Any) -> tuple[list[dict[str, Any]], Any]:
    """The records of a job's chunks (``job_of(dialect, context)``), and the job."""
    dialect = MySqlSourceDialect(MySqlSourceConfig.model_validate(source.config(**config)))
    with Database(dialect, pool_size=4) as db:
        with db.connect() as conn:
            table = next(t for t in dialect.list_tables(conn) if t.name == "blocks")
        configured = parse_configured_catalog(configured_catalog(catalog_streams([table]))).streams[0]
        context = ReadContext(
            database=db,
            configured=configured,
            table=table,
            table_clause=dialect.table_clause(table),
            columns=table.columns,
            cursor=None,
            prior_state=None,
            checkpoint_records=config.get("checkpoint_records", 10_000),
        )
        job = job_of(dialect, context)
        chunks = list(job.chunks())
    return records(chunks), job


@pytest.mark.parametrize(
    ("workers", "limit"), [(1, None), (2, None), (2, 400)], ids=["one", "two", "row-by-row"]
)
def test_blocks_give_the_generic_reads_records(source: Any, workers: int, limit: int | None) -> None:
    create_table(source)
    expected, _ = read(source, lambda d, c: PlanJob(d, c, 1000))
    assert len(expected) == ROWS
    assert sum(1 for r in expected if r["meta"]) == ROWS // 10  # the zero dates' changes
    got, job = read(
        source,
        lambda d, c: BlockJob(d, c, c.table.key_columns(), workers, block_limit=limit),
        checkpoint_records=40,
    )
    assert got == expected
    assert job.warnings == []
    if limit is None:
        assert job.row_by_row == 0
    else:
        assert job.row_by_row > 0


def test_without_lock_tables_one_connection_reads_and_says_why(source: Any) -> None:
    create_table(source)
    expected, _ = read(source, lambda d, c: PlanJob(d, c, 1000))
    user = source.user("SELECT ON {db}.*", password="pw-blocks")
    got, job = read(
        source,
        lambda d, c: BlockJob(d, c, c.table.key_columns(), 2),
        username=user,
        password="pw-blocks",
        checkpoint_records=40,
    )
    assert got == expected
    assert len(job.warnings) == 1
    assert "one connection" in job.warnings[0]
    assert "GRANT LOCK TABLES" in job.warnings[0]
