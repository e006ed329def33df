"""Templates: text with ``{{ config.FIELD }}`` references to config fields.

Parsed once when the manifest loads (a reference to a field the spec does not declare, or any
other ``{{ ... }}``, is a manifest error naming its place) and rendered for each config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr

_REFERENCE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_CONFIG_FIELD = re.compile(r"^\s*config\.([a-z_][a-z0-9_]*)\s*$")


class TemplateError(ValueError):
    """A template that is not ``text {{ config.FIELD }} text``."""


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field names, alternating (``parts[1::2]`` are fields)."""

    source: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, fields: set[str]) -> Template:
        parts: list[str] = []
        position = 0
        for match in _REFERENCE.finditer(text):
            reference = _CONFIG_FIELD.match(match.group(1))
            if reference is None:
                raise TemplateError(
                    f"{match.group(0)!r} is not a reference to a config field; write {{{{ config.FIELD }}}}"
                )
            name = reference.group(1)
            if name not in fields:
                known = ", ".join(sorted(fields)) or "(none)"
                raise TemplateError(
                    f"{{{{ config.{name} }}}}: the spec has no field {name!r} (fields: {known})"
                )
            parts.extend([text[position : match.start()], name])
            position = match.end()
        rest = text[position:]
        if "{{" in rest or "}}" in rest:
            raise TemplateError("an unmatched '{{' or '}}'")
        parts.append(rest)
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        return self.parts[1::2]

    @property
    def single_field(self) -> str | None:
        """The field name when the template is exactly one reference, else None."""
        if len(self.parts) == 3 and self.parts[0] == "" and self.parts[2] == "":
            return self.parts[1]
        return None

    def value(self, config: BaseModel) -> Any:
        """The raw value of a single-reference template (secrets revealed; None when unset)."""
        assert self.single_field is not None
        return _raw(getattr(config, self.single_field))

    def render(self, config: BaseModel) -> str | None:
        """The text, with each field's value; None when the template is a single reference to
        an unset field (the part is then left out)."""
        if self.single_field is not None and self.value(config) is None:
            return None
        out = []
        for i, part in enumerate(self.parts):
            if i % 2 == 0:
                out.append(part)
            else:
                value = _raw(getattr(config, part))
                out.append("" if value is None else _text(value))
        return "".join(out)


def _raw(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)
