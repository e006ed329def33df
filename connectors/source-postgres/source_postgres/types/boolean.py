"""boolean: ``t``/``f`` in text form, ``true``/``false`` in JSON."""

from __future__ import annotations

from typing import Any

from dbkit.db import (
    AirbyteType,
    Unrepresentable,
)
from source_postgres.types.base import (
    PgReadHandler,
    render_text,
    render_to_json_array,
    text_form,
)


def _boolean(value: Any) -> Any:
    text = text_form(value)
    if text in ("t", "true"):
        return True
    if text in ("f", "false"):
        return False
    raise Unrepresentable("not a boolean")


BOOLEAN = PgReadHandler(
    AirbyteType.BOOLEAN, _boolean, render=render_text, column=render_text, native_array=render_to_json_array
)
