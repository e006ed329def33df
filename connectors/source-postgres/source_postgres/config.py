"""The source-postgres config: the shared PostgreSQL connection fields, the read settings every
SQL source has, what to read (schemas, table patterns, parallel chunks) and how
(``replication_method``: standard reads, or CDC from logical replication)."""

from __future__ import annotations

from pydantic import field_validator

from dbkit import SourceSettings, TableSelection, field, postgres_url_config
from dbkit.db import PostgresConnection
from dbkit.source import StandardReplication
from source_postgres.cdc.settings import ReplicationMethod


class PostgresSourceConfig(PostgresConnection, SourceSettings, TableSelection):
    url_schemes = ("postgresql", "postgres")
    url_config = postgres_url_config

    schemas: list[str] = field(
        default_factory=lambda: ["public"],
        title="Schemas",
        description="Schemas to read tables, views, materialized views and foreign tables from.",
        min_length=1,
        order=5,
    )
    max_parallel_chunks: int = field(
        2,
        title="Parallel chunks per stream",
        description=(
            "A full refresh of a table reads this many chunks at once, each on its own connection, "
            "under one snapshot (at most the number of CPU cores)."
        ),
        ge=1,
        le=16,
        order=103,
    )

    replication_method: ReplicationMethod = field(
        default_factory=StandardReplication,
        title="Update Method",
        description="Standard reads (full refresh and cursor incremental), or change data capture "
        "from the write-ahead log (logical replication: needs wal_level = logical, a publication "
        "and a replication slot; see the README).",
        order=6,
    )

    @field_validator("schemas")
    @classmethod
    def _distinct_schemas(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("schema names must not be empty")
        return list(dict.fromkeys(value))
