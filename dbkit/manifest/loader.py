"""``load_manifest(path)``: a manifest file -> a source connector class.

The file is parsed as YAML (every value's line kept), validated against the JSON schema that
ships with dbkit (:func:`manifest_schema`), then checked for what the schema cannot say: templates
name declared fields, handlers and dotted paths import, regular expressions compile, stream
names are unique. Any problem is a :class:`~dbkit.manifest.document.ManifestError` (a
``config_error``) naming the file, the line and the place.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from jsonschema import Draft7Validator
from jsonschema import ValidationError as SchemaViolation

from dbkit.config import looks_secret
from dbkit.db.generic_types import GENERIC_HANDLERS, generic_types
from dbkit.db.types import TypeHandler, TypeRegistry
from dbkit.manifest.config_model import build_config_model
from dbkit.manifest.document import Document, ManifestError, Path_, place, read_document
from dbkit.manifest.model import Connection, ErrorRule, Manifest, TypeRule
from dbkit.manifest.source import ManifestDialect, ManifestSource
from dbkit.manifest.templates import Template, TemplateError
from dbkit.source.queries import QueryStream

SCHEMA_FILE = Path(__file__).with_name("schema.json")
MAX_SCHEMA_PROBLEMS = 5


@functools.cache
def manifest_schema() -> dict[str, Any]:
    """The JSON schema (Draft 7) every manifest is validated against."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator() -> Draft7Validator:
    return Draft7Validator(manifest_schema())


def load_manifest(path: str | Path) -> type[ManifestSource]:
    """The source connector a manifest describes (a class: ``load_manifest(p)()`` is the
    connector, ``main_for(load_manifest(p))`` its console script). Raises ManifestError."""
    manifest, config_model, types = parse_manifest(Path(path))
    class_name = "".join(p.capitalize() for p in re.split(r"[^a-z0-9]+", manifest.name) if p)
    dialect = type(
        f"{class_name}Dialect",
        (ManifestDialect,),
        {"manifest": manifest, "types": types, "__module__": __name__},
    )
    attributes: dict[str, Any] = {
        "name": manifest.name,
        "manifest": manifest,
        "config_model": config_model,
        "dialect_class": dialect,
        "__module__": __name__,
    }
    if manifest.documentation_url:
        attributes["documentation_url"] = manifest.documentation_url
    source: type[ManifestSource] = type(class_name, (ManifestSource,), attributes)
    return source


def parse_manifest(path: Path) -> tuple[Manifest, Any, TypeRegistry]:
    """The checked manifest, its config model and its type registry; raises ManifestError."""
    doc = read_document(path)
    _check_schema(doc)
    data: dict[str, Any] = doc.data
    fields: dict[str, Any] = data["spec"]["fields"]
    config_model = build_config_model(doc, data["name"], fields, data.get("checkpoint", {}))
    names = set(fields)
    secrets = {name for name, spec in fields.items() if spec.get("secret")}
    connection = _connection(doc, data["connection"], names, secrets)
    tables = data.get("tables", {})
    schemas = tables.get("schemas", [])
    if isinstance(schemas, str):
        template = _template(doc, ("tables", "schemas"), schemas, names)
        if template.single_field is None or fields[template.single_field]["type"] != "array":
            raise doc.error(("tables", "schemas"), "a single template must be a reference to an array field")
        schema_templates: tuple[Template, ...] = (template,)
    else:
        schema_templates = tuple(
            _template(doc, ("tables", "schemas", i), text, names) for i, text in enumerate(schemas)
        )
    types = generic_types()
    type_rules = []
    for i, rule in enumerate(data.get("types", [])):
        handler = _handler(doc, ("types", i, "handler"), rule["handler"])
        type_rules.append(TypeRule(tuple(rule["names"]), handler))
    for rule in reversed(type_rules):  # the first rule naming a type wins
        types.register(rule.names, rule.handler)
    streams = _streams(doc, data.get("streams", []))
    for i, stream in enumerate(streams):
        for column, type_name in stream.column_types.items():
            if not types.knows(type_name):  # it would read as text: say so instead
                raise doc.error(
                    ("streams", i, "columns", column),
                    f"type name {type_name!r} is not one dbkit knows, so the column would read as "
                    "text; give a database type name (e.g. integer, numeric, double, boolean, text, "
                    "date, timestamp, timestamptz, json, bytea), or a `types` rule naming it",
                )
    manifest = Manifest(
        file=path,
        name=data["name"],
        connection=connection,
        description=data.get("description", ""),
        documentation_url=data.get("documentation_url"),
        tables=tables.get("enabled", True),
        schemas=schema_templates,
        include=tuple(tables.get("include", [])),
        exclude=tuple(tables.get("exclude", [])),
        streams=streams,
        types=tuple(type_rules),
        errors=tuple(_error_rule(doc, ("errors", i), rule) for i, rule in enumerate(data.get("errors", []))),
        raw=data,
    )
    return manifest, config_model, types


# ------------------------------------------------------------------------------ the schema


def _check_schema(doc: Document) -> None:
    errors = sorted(_validator().iter_errors(doc.data), key=lambda e: doc.line(tuple(e.absolute_path)) or 0)
    if not errors:
        return
    shown = [f"{doc.where(tuple(e.absolute_path))}: {_problem(e)}" for e in errors[:MAX_SCHEMA_PROBLEMS]]
    more = f" (and {len(errors) - MAX_SCHEMA_PROBLEMS} more)" if len(errors) > MAX_SCHEMA_PROBLEMS else ""
    raise ManifestError("manifest " + "; ".join(shown) + more)


def _problem(error: SchemaViolation) -> str:
    """The schema's complaint in words, without echoing long values."""
    validator = error.validator
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"{missing[0] if missing else 'a property'!r} is required"
    if validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        schema = error.schema
        known = sorted(schema.get("properties", {})) if isinstance(schema, dict) else []
        allowed = f" (allowed: {', '.join(known)})" if known else ""
        return f"unknown key {', '.join(map(repr, extra))}{allowed}"
    if validator in ("oneOf", "anyOf"):
        if error.context:
            best = min(error.context, key=lambda e: len(e.absolute_path))
            return _problem(best)
        return "does not match any allowed form"
    if validator == "enum":
        options: Any = error.validator_value
        return f"must be one of {', '.join(map(repr, options)) if isinstance(options, list) else options}"
    if validator == "const":
        return f"must be {error.validator_value!r}"
    if validator == "type":
        return f"must be of type {error.validator_value}"
    if validator == "pattern":
        return f"does not match the pattern {error.validator_value}"
    if validator == "propertyNames":
        value = error.validator_value
        return f"a name does not match {value.get('pattern', '') if isinstance(value, dict) else value}"
    return error.message if len(error.message) < 200 else error.message[:197] + "..."


# ------------------------------------------------------------------------------ the parts


def _template(doc: Document, path: Path_, text: str, fields: set[str]) -> Template:
    try:
        return Template.parse(text, fields)
    except TemplateError as exc:
        raise doc.error(path, str(exc)) from None


def _connection(doc: Document, data: dict[str, Any], fields: set[str], secrets: set[str]) -> Connection:
    driver = data["driver"]
    try:
        sa.URL.create(driver).get_dialect()
    except sa.exc.NoSuchModuleError:
        raise doc.error(
            ("connection", "driver"), f"SQLAlchemy has no dialect {driver!r} here (is its package installed?)"
        ) from None
    parts: dict[str, Template] = {
        key: _template(doc, ("connection", key), data[key], fields)
        for key in ("host", "port", "database", "username", "password")
        if key in data
    }
    query = {
        key: _template(doc, ("connection", "query", key), value, fields)
        for key, value in data.get("query", {}).items()
    }
    holders = [(("connection", "password"), parts.get("password"))] + [
        (("connection", "query", key), template) for key, template in query.items() if looks_secret(key)
    ]
    for path, template in holders:
        plain = [name for name in (template.fields if template else ()) if name not in secrets]
        if plain:
            raise doc.error(
                path,
                f"holds a password but field(s) {', '.join(map(repr, plain))} are not secret "
                "(they would be printed unmasked): add `secret: true` to them",
            )
    return Connection(driver, parts, query)


def _import(doc: Document, path: Path_, dotted: str) -> Any:
    """``package.module:attribute`` (or ``package.module.attribute``) -> the object."""
    module_name, colon, attribute = dotted.partition(":")
    if not colon:
        module_name, _, attribute = dotted.rpartition(".")
    if not module_name or not attribute:
        raise doc.error(path, f"{dotted!r} is not a dotted path (package.module:attribute)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing as it runs
        raise doc.error(path, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    target = module
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise doc.error(path, f"module {module_name!r} has no {attribute!r}")
        target = getattr(target, name)
    return target


def _handler(doc: Document, path: Path_, name: str) -> TypeHandler:
    if name in GENERIC_HANDLERS:
        return GENERIC_HANDLERS[name]
    if "." not in name and ":" not in name:
        raise doc.error(
            path,
            f"unknown handler {name!r}: name one of {', '.join(GENERIC_HANDLERS)}, or give a dotted "
            "path (package.module:attribute) to a TypeHandler",
        )
    target = _import(doc, path, name)
    if callable(target) and not isinstance(target, TypeHandler):
        try:
            target = target()
        except Exception as exc:
            raise doc.error(path, f"{name} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(target, TypeHandler):
        raise doc.error(path, f"{name} is a {type(target).__name__}, not a dbkit.db.TypeHandler")
    return target


def _streams(doc: Document, items: list[dict[str, Any]]) -> tuple[QueryStream, ...]:
    seen: dict[tuple[str | None, str], int] = {}
    out = []
    for i, item in enumerate(items):
        path: Path_ = ("streams", i)
        key = (item.get("namespace"), item["name"])
        if key in seen:
            raise doc.error((*path, "name"), f"stream {item['name']!r} is also streams[{seen[key]}]")
        seen[key] = i
        sql = item["sql"].strip()
        if sql.endswith(";"):
            sql = sql.rstrip(";").rstrip()
        if ";" in _without_quoted(sql):
            raise doc.error((*path, "sql"), "holds more than one statement; give one SELECT")
        primary_key = tuple(item["primary_key"])
        if len(set(primary_key)) != len(primary_key):
            raise doc.error((*path, "primary_key"), "names a column twice")
        out.append(
            QueryStream(
                name=item["name"],
                sql=sql,
                primary_key=primary_key,
                cursor=item.get("cursor"),
                namespace=item.get("namespace"),
                column_types=dict(item.get("columns", {})),
                where=doc.where(path),
            )
        )
    return tuple(out)


def _without_quoted(sql: str) -> str:
    """The SQL without its quoted strings, identifiers and comments (to look for a ``;``)."""
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", "", sql, flags=re.DOTALL)


def _error_rule(doc: Document, path: Path_, data: dict[str, Any]) -> ErrorRule:
    pattern = None
    if "message" in data:
        try:
            pattern = re.compile(data["message"])
        except re.error as exc:
            raise doc.error((*path, "message"), f"not a regular expression: {exc}") from None
    classifier: Callable[[BaseException], bool] | None = None
    if "classifier" in data:
        target = _import(doc, (*path, "classifier"), data["classifier"])
        if not callable(target):
            raise doc.error((*path, "classifier"), f"{data['classifier']} is not a function")
        classifier = target
    return ErrorRule(
        failure_type=data["failure_type"],
        where=f"{doc.file.name} {place(path)}",
        sqlstate=data.get("sqlstate"),
        code=data.get("code"),
        message=pattern,
        classifier=classifier,
        hint=data.get("hint"),
    )
