"""The destination-postgres config: the shared PostgreSQL connection fields, the flush policy,
and where and how streams land."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from dbkit import DataLocation, DestinationSettings, field, postgres_url_config
from dbkit.db import PostgresConnection


class PostgresDestinationConfig(PostgresConnection, DestinationSettings):
    url_schemes = ("postgresql", "postgres")
    url_config = postgres_url_config

    schema_name: str = field(
        "public",
        alias="schema",
        title="Default schema",
        description="Schema of the streams that have no namespace (created when missing).",
        min_length=1,
        order=5,
    )
    drop_cascade: bool = field(
        False,
        title="Drop tables with CASCADE",
        description=(
            "When a refresh replaces a table, or a column must change type, objects that depend on it "
            "(views, foreign keys) are dropped with it. Off: the sync stops with an error naming them."
        ),
        order=20,
    )
    cdc_deletion_mode: Literal["hard_delete", "soft_delete"] = field(
        "hard_delete",
        title="CDC deletion mode",
        description=(
            "hard_delete removes a row deleted at the source; soft_delete keeps it with "
            "_ab_cdc_deleted_at set."
        ),
        order=21,
    )
    raw_tables: bool = field(
        False,
        title="Also write raw JSON tables",
        description=(
            "Besides the typed table, keep every record untouched in <table>_raw (_airbyte_data jsonb "
            "plus the _airbyte_* columns; the same _airbyte_raw_id as in the typed table)."
        ),
        order=22,
    )

    def data_location(self) -> DataLocation:
        return replace(super().data_location(), default_namespace=self.schema_name)
