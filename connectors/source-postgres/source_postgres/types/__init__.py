"""PostgreSQL types: one handler per type, rendering the same JSON in Python and on the server.

Every handler (:class:`PgReadHandler`, :mod:`.base`) carries

- its Airbyte type and JSON schema, and whether it can be a cursor;
- ``convert``: the **Python path**. It takes the value in PostgreSQL's *text output form* (what
  psycopg returns with the text loader, and what logical decoding sends), under the session
  settings :meth:`source_postgres.dialect.PostgresSourceDialect.on_connect` fixes (TimeZone UTC,
  DateStyle ISO, IntervalStyle iso_8601, extra_float_digits 1, bytea_output hex, lc_monetary C),
  and returns the JSON-ready value; a value without a JSON form raises
  :class:`~dbkit.db.types.Unrepresentable` (a partly representable one, such as an array holding
  a NaN, carries the rest as its ``replacement``);
- ``render``: the **server path**. SQL that turns the (non-NULL) value into its JSON text, NULL
  for a value without a JSON form (so NULL in gives NULL out), and ``problem``: SQL that is true
  when the value (or a part of it) is emitted as null. The two paths give identical bytes: the
  tests compare them on every type case.

One module per type family (:mod:`.numeric`, :mod:`.boolean`, :mod:`.text`, :mod:`.document`,
:mod:`.temporal`); scalar handlers are registered by type name on one map (``TYPES``,
:mod:`.registry`); arrays, domains, composites, enums and ranges are built from their parts'
handlers by :func:`array_of`, :func:`domain_of`, :func:`composite_of` (see
:mod:`source_postgres.catalog`).

Values (documented in the README): NaN and infinite numbers and floats, and infinite dates and
timestamps, are null with a ``NULLED``/``SOURCE_SERIALIZATION_ERROR`` change; timestamps always
show six fraction digits, ``timestamptz`` in UTC as ``+00:00``; years before 1 carry `` BC``,
years after 9999 a leading ``+``; money is its exact number; bytea base64; json is kept as
written (on one line), jsonb as PostgreSQL normalizes it; hstore an object of strings;
composites an object; ranges their text; arrays nested JSON arrays.
"""

from __future__ import annotations

from source_postgres.types.arrays import array_of, parse_array
from source_postgres.types.base import (
    SESSION_SETTINGS,
    PgReadHandler,
    Render,
    Sql,
    compose,
    json_string,
    text_form,
    text_literal,
)
from source_postgres.types.boolean import BOOLEAN
from source_postgres.types.composite import composite_of, parse_record
from source_postgres.types.document import HSTORE, JSON, JSONB, parse_hstore
from source_postgres.types.domain import domain_of
from source_postgres.types.numeric import FLOAT, INTEGER, MONEY, NUMERIC, NUMERIC_BOUNDED, OID
from source_postgres.types.registry import TYPES, build_types, scalar
from source_postgres.types.temporal import DATE, TIME, TIMESTAMP, TIMESTAMPTZ, TIMETZ
from source_postgres.types.text import BITS, BYTEA, ENUM, OPAQUE_TEXT, OTHER, QUOTED, RANGE, TEXT

__all__ = [
    "BITS",
    "BOOLEAN",
    "BYTEA",
    "DATE",
    "ENUM",
    "FLOAT",
    "HSTORE",
    "INTEGER",
    "JSON",
    "JSONB",
    "MONEY",
    "NUMERIC",
    "NUMERIC_BOUNDED",
    "OID",
    "OPAQUE_TEXT",
    "OTHER",
    "QUOTED",
    "RANGE",
    "SESSION_SETTINGS",
    "TEXT",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIMETZ",
    "TYPES",
    "PgReadHandler",
    "Render",
    "Sql",
    "array_of",
    "build_types",
    "compose",
    "composite_of",
    "domain_of",
    "json_string",
    "parse_array",
    "parse_hstore",
    "parse_record",
    "scalar",
    "text_form",
    "text_literal",
]
