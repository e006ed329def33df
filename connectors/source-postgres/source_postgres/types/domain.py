"""Domains: read as their base type."""

from __future__ import annotations

from psycopg import sql

from source_postgres.types.base import (
    PgReadHandler,
    Sql,
    compose,
)


def domain_of(base: PgReadHandler, base_type_name: str) -> PgReadHandler:
    """A domain reads as its base type (its value cast to the base type on the server)."""
    cast = sql.SQL(base_type_name)

    def render(x: Sql) -> Sql:
        return base.render(compose("CAST({} AS {})", x, cast))

    problem = None
    if base.problem is not None:
        base_problem = base.problem

        def problem(x: Sql) -> Sql:
            return base_problem(compose("CAST({} AS {})", x, cast))

    native = None
    if base.native_array is not None:
        base_native = base.native_array

        def native(a: Sql) -> Sql:
            return base_native(compose("CAST({} AS {}[])", a, cast))

    column = None
    if base.column is not None:
        base_column = base.column

        def column(x: Sql) -> Sql:
            return base_column(compose("CAST({} AS {})", x, cast))

    return base.with_(render=render, problem=problem, native_array=native, column=column)
