"""The map of MySQL and MariaDB types, by ``information_schema.COLUMNS.DATA_TYPE``, to their
handlers; plus the names discovery gives the special cases (``bool`` for TINYINT(1), ``bit1`` for
BIT(1), ``json`` for MariaDB's checked LONGTEXT)."""

from __future__ import annotations

from collections.abc import Sequence

from dbkit.db import TypeRegistry
from source_mysql.types.base import MySqlReadHandler
from source_mysql.types.document import JSON
from source_mysql.types.numeric import BIT1, BOOLEAN_TINYINT, DECIMAL, DOUBLE, FLOAT, INTEGER, YEAR
from source_mysql.types.temporal import DATE, DATETIME, TIME, TIMESTAMP
from source_mysql.types.text import BINARY, BITS, ENUM, GEOMETRY, OTHER, SET, SPECIAL_TEXT, TEXT


def build_types() -> TypeRegistry:
    types = TypeRegistry(default=OTHER)
    reg: list[tuple[Sequence[str], MySqlReadHandler]] = [
        (("tinyint", "smallint", "mediumint", "int", "integer", "bigint"), INTEGER),
        (("bool", "boolean"), BOOLEAN_TINYINT),
        (("decimal", "numeric", "fixed"), DECIMAL),
        (("float",), FLOAT),
        (("double", "double precision", "real"), DOUBLE),
        (("year",), YEAR),
        (("bit1",), BIT1),
        (("bit",), BITS),
        (("date",), DATE),
        (("datetime",), DATETIME),
        (("timestamp",), TIMESTAMP),
        (("time",), TIME),
        (("char", "varchar", "tinytext", "text", "mediumtext", "longtext"), TEXT),
        (("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), BINARY),
        (("enum",), ENUM),
        (("set",), SET),
        (("json",), JSON),
        (
            (
                "geometry",
                "point",
                "linestring",
                "polygon",
                "multipoint",
                "multilinestring",
                "multipolygon",
                "geometrycollection",
                "geomcollection",
            ),
            GEOMETRY,
        ),
        (("uuid", "inet4", "inet6"), SPECIAL_TEXT),
    ]
    for names, handler in reg:
        for name in names:
            types.register(name, handler.with_(type_name=name))
    return types


TYPES = build_types()


def scalar(type_name: str) -> MySqlReadHandler:
    handler = TYPES.resolve(type_name)
    return handler if isinstance(handler, MySqlReadHandler) else OTHER
