"""The source-postgres config: the shared PostgreSQL connection fields, the read settings every
SQL source has, and what to read (schemas, table patterns, parallel chunks)."""

from __future__ import annotations

from pydantic import field_validator

from dbkit import SourceSettings, TableSelection, field, postgres_url_config
from dbkit.db import PostgresConnection


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

    @field_validator("schemas")
    @classmethod
    def _distinct_schemas(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("schema names must not be empty")
        return list(dict.fromkeys(value))
