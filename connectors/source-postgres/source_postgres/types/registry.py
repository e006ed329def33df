"""The map of scalar types by ``pg_type.typname`` (and SQL spellings) to their handlers."""

from __future__ import annotations

from collections.abc import Sequence

from dbkit.db import (
    TypeRegistry,
)
from source_postgres.types.base import (
    PgReadHandler,
    render_output,
)
from source_postgres.types.boolean import BOOLEAN
from source_postgres.types.document import HSTORE, JSON, JSONB
from source_postgres.types.numeric import FLOAT, INTEGER, MONEY, NUMERIC, OID
from source_postgres.types.temporal import DATE, TIME, TIMESTAMP, TIMESTAMPTZ, TIMETZ
from source_postgres.types.text import BITS, BYTEA, OPAQUE_TEXT, OTHER, QUOTED, TEXT


def build_types() -> TypeRegistry:
    """Scalar types by ``pg_type.typname`` (and their SQL spellings)."""
    types = TypeRegistry(default=OTHER)
    reg: list[tuple[Sequence[str], PgReadHandler]] = [
        (("int2", "int4", "int8", "smallint", "integer", "int", "bigint"), INTEGER),
        (("oid",), OID),
        (("numeric", "decimal"), NUMERIC),
        (("float4", "float8", "real", "double precision"), FLOAT),
        (("money",), MONEY),
        (("bool", "boolean"), BOOLEAN),
        (("bit", "varbit", "bit varying"), BITS),
        (("bytea",), BYTEA),
        (("text", "varchar", "character varying", "bpchar", "character", "char", "name", "citext"), TEXT),
        (('"char"', "xml", "tsvector", "tsquery"), OPAQUE_TEXT),
        (("uuid", "cidr", "macaddr", "macaddr8", "interval"), QUOTED),
        (("inet",), TEXT),  # inet::text always shows the netmask (::1/128); its output does not
        (("json",), JSON),
        (("jsonb",), JSONB),
        (("hstore",), HSTORE),
        (("date",), DATE),
        (("time", "time without time zone"), TIME),
        (("timetz", "time with time zone"), TIMETZ),
        (("timestamp", "timestamp without time zone"), TIMESTAMP),
        (("timestamptz", "timestamp with time zone"), TIMESTAMPTZ),
    ]
    # their text cast is not their output form (char(n) trims its padding, inet shows its netmask)
    output_form = {"bpchar", "character", "char", "inet"}
    for names, handler in reg:
        for name in names:
            column = render_output if name in output_form else handler.column
            types.register(name, handler.with_(type_name=name, column=column))
    return types


TYPES = build_types()


def scalar(type_name: str) -> PgReadHandler:
    """The registered handler of a scalar type (OTHER when nobody registered it)."""
    handler = TYPES.resolve(type_name)
    return handler if isinstance(handler, PgReadHandler) else OTHER
