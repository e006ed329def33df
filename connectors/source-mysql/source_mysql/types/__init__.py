"""MySQL and MariaDB types: one handler per type, rendering the same JSON in Python and on the server.

Every handler (:class:`MySqlReadHandler`, :mod:`.base`) carries its Airbyte type, whether it can
be a cursor, how a STATE value binds back (``bind``), and two paths that give identical bytes
(the tests compare them on every type case):

- ``render``, the **server path** that reads use: SQL turning the value into its JSON text (NULL
  for a value without a JSON form, ``problem`` true exactly then), so a whole record is one
  string the server builds;
- ``convert``, the **Python path**: the value's text-protocol form (``str``, or ``bytes`` for
  binary types), as the driver gives it when it converts nothing, -> the JSON value.

One module per family (:mod:`.numeric`, :mod:`.temporal`, :mod:`.text`, :mod:`.document`), all
registered by type name on one map (``TYPES``, :mod:`.registry`). The values are documented in
the README.
"""

from __future__ import annotations

from source_mysql.types.base import SESSION_SETTINGS, MySqlReadHandler, quote_identifier, sql_string
from source_mysql.types.document import JSON
from source_mysql.types.numeric import BIT1, BOOLEAN_TINYINT, DECIMAL, DOUBLE, FLOAT, INTEGER, YEAR
from source_mysql.types.registry import TYPES, build_types, scalar
from source_mysql.types.temporal import DATE, DATETIME, TIME, TIMESTAMP
from source_mysql.types.text import BINARY, BITS, ENUM, GEOMETRY, OTHER, SET, SPECIAL_TEXT, TEXT

__all__ = [
    "BINARY",
    "BIT1",
    "BITS",
    "BOOLEAN_TINYINT",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "DOUBLE",
    "ENUM",
    "FLOAT",
    "GEOMETRY",
    "INTEGER",
    "JSON",
    "OTHER",
    "SESSION_SETTINGS",
    "SET",
    "SPECIAL_TEXT",
    "TEXT",
    "TIME",
    "TIMESTAMP",
    "TYPES",
    "YEAR",
    "MySqlReadHandler",
    "build_types",
    "quote_identifier",
    "scalar",
    "sql_string",
]
