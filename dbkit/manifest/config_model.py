"""A manifest's ``spec`` -> a config model, on dbkit's own config machinery.

The model is a :class:`~dbkit.config.SourceSettings` and :class:`~dbkit.config.TableSelection`
with the manifest's fields added (secrets as ``secret_field``: ``airbyte_secret`` in the spec and
masked everywhere), so its spec, its validation (:func:`dbkit.config.load_config`) and the
masking of its secrets are exactly those of a hand-written connector's config.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import SecretStr, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from dbkit.config import SourceSettings, TableSelection, field, secret_field
from dbkit.manifest.document import Document

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list[str]}
RESERVED = frozenset(SourceSettings.model_fields) | frozenset(TableSelection.model_fields)


class ManifestSourceConfig(SourceSettings, TableSelection):
    """Base of every manifest's config model."""


def build_config_model(
    doc: Document, name: str, fields: dict[str, Any], checkpoint: dict[str, Any]
) -> type[ManifestSourceConfig]:
    """The config model of a manifest's ``spec.fields`` (and ``checkpoint`` defaults)."""
    definitions: dict[str, Any] = {}
    for position, (field_name, spec) in enumerate(fields.items()):
        path = ("spec", "fields", field_name)
        if field_name in RESERVED:
            raise doc.error(
                path,
                f"{field_name!r} is one of the settings every source has ({', '.join(sorted(RESERVED))}); "
                "choose another name",
            )
        definitions[field_name] = _field(doc, path, spec, position)
    for key, setting in (("records", "checkpoint_records"), ("seconds", "checkpoint_seconds")):
        if key in checkpoint:
            inherited = SourceSettings.model_fields[setting]
            definitions[setting] = (inherited.annotation, _with_default(inherited, checkpoint[key]))
    model_name = "".join(part.capitalize() for part in re.split(r"[^a-z0-9]+", name) if part) + "Config"
    model: type[ManifestSourceConfig] = create_model(
        model_name, __base__=ManifestSourceConfig, __module__=__name__, **definitions
    )
    return model


def _with_default(inherited: FieldInfo, default: Any) -> FieldInfo:
    """A copy of an inherited setting's field (title, constraints, order) with another default."""
    return FieldInfo.merge_field_infos(inherited, default=default)


def _field(doc: Document, path: tuple[str, ...], spec: dict[str, Any], position: int) -> tuple[Any, Any]:
    kind = spec["type"]
    secret = bool(spec.get("secret"))
    if secret and kind != "string":
        raise doc.error((*path, "secret"), "only a string field can be a secret")
    annotation: Any = _TYPES[kind]
    if "enum" in spec:
        adapter = TypeAdapter(annotation)
        for i, value in enumerate(spec["enum"]):
            try:
                adapter.validate_python(value, strict=True)
            except ValidationError:
                raise doc.error((*path, "enum", i), f"{value!r} is not of type {kind}") from None
        if kind == "array" or secret:
            raise doc.error((*path, "enum"), f"a{' secret' if secret else 'n array'} field cannot have enum")
        annotation = Literal[tuple(spec["enum"])]
    if secret:
        annotation = SecretStr
    constraints: dict[str, Any] = {}
    if "pattern" in spec:
        if kind != "string":
            raise doc.error((*path, "pattern"), "only a string field can have a pattern")
        try:
            re.compile(spec["pattern"])
        except re.error as exc:
            raise doc.error((*path, "pattern"), f"not a regular expression: {exc}") from None
        constraints["pattern"] = spec["pattern"]
    for key, constraint in (("minimum", "ge"), ("maximum", "le")):
        if key in spec:
            if kind not in ("integer", "number"):
                raise doc.error((*path, key), f"only a number field can have a {key}")
            constraints[constraint] = spec[key]
    has_default = "default" in spec
    required = spec.get("required", not has_default)
    if required and has_default:
        raise doc.error((*path, "required"), "a field with a default is not required; drop one of the two")
    default: Any = ...
    if has_default:
        default = spec["default"]
        if default is not None:
            try:
                TypeAdapter(_TYPES[kind] if not secret else str).validate_python(default, strict=True)
            except ValidationError:
                raise doc.error((*path, "default"), f"{default!r} is not of type {kind}") from None
            if "enum" in spec and default not in spec["enum"]:
                raise doc.error((*path, "default"), f"{default!r} is not one of its enum values")
        else:
            annotation = annotation | None
    elif not required:
        default = None
        annotation = annotation | None
    order = spec.get("order", position)
    title = spec.get("title", path[-1].replace("_", " ").capitalize())
    description = spec.get("description", "")
    if secret:
        return annotation, secret_field(title=title, description=description, default=default, order=order)
    return annotation, field(
        default,
        title=title,
        description=description,
        order=order,
        examples=spec.get("examples"),
        **constraints,
    )
