"""The type-mapping role of a destination: which column type each Airbyte type gets, and what an
existing column holds (for schema evolution)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import UserDefinedType

from dbkit.db.dialect import Dialect
from dbkit.db.types import AirbyteType, schema_type
from dbkit.destination.casting import INT64_MAX, INT64_MIN

JSON_TYPES = frozenset({AirbyteType.OBJECT, AirbyteType.ARRAY, AirbyteType.UNKNOWN})


class DeclaredType(UserDefinedType[Any]):
    """A column type rendered exactly as the database names it (``numeric``, ``DECIMAL_BLOB``),
    with no value processing: the loaders bind values already in the column's form."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"DeclaredType({self.name!r})"


def int64_airbyte_type(schema: Any) -> AirbyteType:
    """A property's Airbyte type for a database whose integer columns hold 64 bits: integers that
    may not fit (``airbyte_type: big_integer``, or ``minimum``/``maximum`` past int64) get
    NUMBER, whose column keeps every digit. For :meth:`TypeMapping.airbyte_type` overrides."""
    found = schema_type(schema).airbyte_type
    if found is AirbyteType.INTEGER and isinstance(schema, Mapping) and _wider_than_int64(schema):
        return AirbyteType.NUMBER
    return found


def _wider_than_int64(schema: Mapping[str, Any]) -> bool:
    if schema.get("airbyte_type") == "big_integer":
        return True
    low, high = schema.get("minimum"), schema.get("maximum")
    return (isinstance(high, int | float) and high > INT64_MAX) or (
        isinstance(low, int | float) and low < INT64_MIN
    )


class TypeMapping:
    """Airbyte types <-> column types. Stateless; made once per dialect (``dialect.types``).

    A connector overrides :meth:`column_type`, :meth:`meta_column_types` and
    :meth:`storage_type` (no portable default exists), and may override the rest."""

    def __init__(self, dialect: Dialect[Any]) -> None:
        self.dialect = dialect

    def airbyte_type(self, schema: Any) -> AirbyteType:
        """Called once per stream property when tables are planned: the Airbyte type its JSON
        schema gets a column for."""
        return schema_type(schema).airbyte_type

    def column_type(self, airbyte_type: AirbyteType) -> sa.types.TypeEngine[Any]:
        """Called per data column created or added: its SQL type for this Airbyte type."""
        raise NotImplementedError

    def meta_column_types(self) -> dict[str, sa.types.TypeEngine[Any]]:
        """Called per table built: SQL types of the four ``_airbyte_*`` metadata columns, by name."""
        raise NotImplementedError

    def raw_id_default(self) -> sa.TextClause | None:
        """A server default that fills ``_airbyte_raw_id`` (then the batch does not carry one);
        None: batches carry random UUIDs."""
        return None

    def storage_type(self, sql_type: sa.types.TypeEngine[Any]) -> AirbyteType:
        """Called per existing column of a table being evolved: the Airbyte type it holds (as
        reflected by :meth:`TableOperations.existing_columns`)."""
        raise NotImplementedError

    def widen(self, current: AirbyteType, wanted: AirbyteType) -> AirbyteType:
        """Called per existing column whose stream type changed: the type it must have to hold
        both its current values and the new ones (pure; must not lose a stored value).

        The rule (documented): the same type stays; integer widens to number; a number column
        takes integers; text and JSON columns take anything (values are stored as text / JSON);
        any other change makes the column text, which loses no value already stored.
        """
        if current == wanted:
            return current
        if {current, wanted} == {AirbyteType.INTEGER, AirbyteType.NUMBER}:
            return AirbyteType.NUMBER
        if current is AirbyteType.STRING or current in JSON_TYPES:
            return current
        return AirbyteType.STRING
