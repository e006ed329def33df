"""Composite types: an object of the attributes, each rendered by its own type's handler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    Sql,
    compose,
    json_string,
    text_form,
    text_literal,
)


def parse_record(text: str) -> list[str | None]:
    """PostgreSQL's composite text (``(1,"a b",,"")``) -> field texts (None for NULL)."""
    if not (text.startswith("(") and text.endswith(")")):
        raise Unrepresentable("malformed composite text")
    body = text[1:-1]
    fields: list[str | None] = []
    pos = 0
    n = len(body)
    while True:
        if pos < n and body[pos] == '"':
            pos += 1
            out = []
            while True:
                ch = body[pos]
                if ch == "\\":
                    out.append(body[pos + 1])
                    pos += 2
                elif ch == '"':
                    if pos + 1 < n and body[pos + 1] == '"':
                        out.append('"')
                        pos += 2
                    else:
                        pos += 1
                        break
                else:
                    out.append(ch)
                    pos += 1
            fields.append("".join(out))
        else:
            start = pos
            while pos < n and body[pos] != ",":
                pos += 1
            fields.append(body[start:pos] if pos > start else None)
        if pos >= n:
            return fields
        pos += 1  # the comma


def composite_of(attributes: Sequence[tuple[str, PgReadHandler]]) -> PgReadHandler:
    """Composite types: an object of the attributes, each rendered by its own type's handler."""
    names = [name for name, _ in attributes]
    handlers = [handler for _, handler in attributes]
    properties = {name: handler.json_schema(True) for name, handler in attributes}

    def render(x: Sql) -> Sql:
        parts: list[Sql] = []
        for i, (name, handler) in enumerate(attributes):
            key = ("{" if i == 0 else ",") + json_string(name) + ":"
            field_sql = compose("({}).{}", x, sql.Identifier(name))
            parts.append(compose("{} || coalesce({}, 'null')", text_literal(key), handler.render(field_sql)))
        body = sql.SQL(" || ").join(parts) if parts else text_literal("{")
        return compose("CASE WHEN num_nulls({}) = 0 THEN {} || '}}' END", x, body)

    problems = [(name, h.problem) for name, h in attributes if h.problem is not None]
    problem = None
    if problems:

        def problem(x: Sql) -> Sql:
            terms = [
                compose("coalesce({}, false)", p(compose("({}).{}", x, sql.Identifier(name))))
                for name, p in problems
            ]
            return compose("({})", sql.SQL(" OR ").join(terms))

    def convert(value: Any) -> Any:
        fields = parse_record(text_form(value))
        if len(fields) != len(names):
            raise Unrepresentable("composite text has another number of fields than the type")
        out: dict[str, Any] = {}
        nulled = False
        for name, handler, text in zip(names, handlers, fields, strict=True):
            if text is None or handler.convert is None:
                out[name] = text
                continue
            try:
                out[name] = handler.convert(text)
            except Unrepresentable as exc:
                nulled = True
                out[name] = exc.replacement
        if nulled:
            raise Unrepresentable("an attribute has no JSON form", replacement=out)
        return out

    return PgReadHandler(
        AirbyteType.OBJECT,
        convert,
        cursor=False,
        render=render,
        problem=problem,
        schema_extra={"properties": properties},
        type_name="record",
    )
