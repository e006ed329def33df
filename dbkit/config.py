"""Connector configuration: one typed model per connector, which also generates the spec.

:func:`load_config` accepts a config exactly when it conforms to the generated spec (what the
platform checks) and to the model; its errors name every bad field and never show a value.

Secrets are declared once, with :func:`secret_field` (a ``SecretStr`` marked ``airbyte_secret``),
and every value of such a field is registered with the process-wide :data:`MASKER` as soon as a
config is loaded (even one that turns out invalid), so logs, TRACE messages, exception text and
DSNs never show it, raw or URL-encoded.
"""

from __future__ import annotations

import functools
import re
import string
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from jsonschema import Draft7Validator
from jsonschema import ValidationError as SchemaViolation
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from dbkit.errors import ConfigError
from dbkit.urls import UrlMapper

PROTOCOL_VERSION = "0.5.2"


@dataclass(frozen=True)
class DataLocation:
    """Where a config's tables live, so that ``dbkit sync`` can refuse to write into the tables it
    reads. Two configs with the same ``store`` see the same table under the same namespace and
    name; ``default_namespace`` is the namespace of a stream that has none (a destination's default
    schema or database)."""

    store: str
    default_namespace: str | None = None


_LOOPBACK = {"", "localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}  # noqa: S104 (a name, not a bind)


def server_location(
    scheme: str, host: str, port: int, database: str | None = None, *, via: str | None = None
) -> str:
    """The ``store`` of a database server (and, where namespaces live inside a database, of that
    database): loopback names and Unix socket directories count as one host; ``via`` is an SSH
    bastion the host is reached through."""
    name = host.strip().lower()
    if name in _LOOPBACK or name.startswith("/"):
        name = "localhost"
    where = f"{scheme}://{name}:{port}"
    if via:
        where = f"{where}@{via.strip().lower()}"
    return f"{where}/{database}" if database is not None else where


def file_location(path: str) -> str:
    """The ``store`` of a database file: its absolute path with symlinks resolved."""
    return "file:" + str(Path(path).expanduser().resolve())


class ConnectorConfig(BaseModel):
    """Base of every connector's config model: immutable, unknown keys refused.

    A model may declare the database URLs ``dbkit sync --source URL`` maps to its connector:
    ``url_schemes`` (``("postgresql", "postgres")``) and ``url_config``, a function
    ``(SQLAlchemy URL, kind) -> raw config`` (see :mod:`dbkit.urls` for ready ones). The raw config is
    then validated like any other.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url_schemes: ClassVar[tuple[str, ...]] = ()
    url_config: ClassVar[UrlMapper | None] = None

    def data_location(self) -> DataLocation | None:
        """Where this config's tables live (None: unknown, and ``dbkit sync`` cannot tell whether a
        destination would write into the source's tables). See :class:`DataLocation`."""
        return None


def secret_field(*, title: str, description: str = "", default: Any = ..., order: int | None = None) -> Any:
    """A ``SecretStr`` field marked ``airbyte_secret`` in the spec and masked in every output."""
    extra: dict[str, Any] = {"airbyte_secret": True}
    if order is not None:
        extra["order"] = order
    return Field(default, title=title, description=description or None, json_schema_extra=extra)


def field(
    default: Any = ...,
    *,
    title: str,
    description: str = "",
    order: int | None = None,
    examples: list[Any] | None = None,
    **constraints: Any,
) -> Any:
    """A regular config field with the UI hints the Airbyte spec uses (``order``, ``examples``)."""
    extra: dict[str, Any] = {}
    if order is not None:
        extra["order"] = order
    return Field(
        default,
        title=title,
        description=description or None,
        examples=examples,
        json_schema_extra=extra or None,
        **constraints,
    )


class SourceSettings(ConnectorConfig):
    """Settings every SQL source has (mixed into each source's config model)."""

    checkpoint_records: int = field(
        10_000,
        title="Checkpoint every N records",
        description="Emit a STATE message at least every this many records of a stream.",
        ge=1,
        order=100,
    )
    checkpoint_seconds: float = field(
        60.0,
        title="Checkpoint every T seconds",
        description="Emit a STATE message at least this often while a stream is being read.",
        gt=0,
        order=101,
    )
    max_concurrent_streams: int = field(
        1,
        title="Streams read at once",
        description="Read up to this many streams concurrently, each on its own connection.",
        ge=1,
        le=32,
        order=102,
    )
    incremental_fallback: Literal["fail", "full_refresh"] = field(
        "fail",
        title="Incremental streams without a cursor",
        description=(
            "What a stream configured as incremental without a cursor field gets (PyAirbyte's read() "
            "asks for incremental on every stream): 'fail' (a config error naming the stream) or "
            "'full_refresh' (the whole table is read on every sync, with a warning)."
        ),
        order=103,
    )


class TableSelection(ConnectorConfig):
    """Which tables a source reads (mixed into a source's config model); used by
    ``SourceDialect.include``. Patterns are shell globs on ``table`` or ``schema.table``."""

    include_tables: list[str] = field(
        default_factory=list,
        title="Include tables",
        description="Glob patterns (table or schema.table) of tables to include (all when empty).",
        order=90,
    )
    exclude_tables: list[str] = field(
        default_factory=list,
        title="Exclude tables",
        description="Glob patterns (table or schema.table) of tables to exclude.",
        order=91,
    )


class DestinationSettings(ConnectorConfig):
    """Settings every SQL destination has: the flush policy that bounds memory."""

    batch_records: int = field(
        50_000,
        title="Flush a stream every N records",
        description="Records buffered per stream before they are loaded in one batch.",
        ge=1,
        order=100,
    )
    batch_megabytes: float = field(
        64.0,
        title="Flush a stream every N megabytes",
        description="Bytes of records buffered per stream before they are loaded in one batch.",
        gt=0,
        order=101,
    )
    memory_megabytes: float = field(
        256.0,
        title="Buffer memory limit (MB)",
        description="Records buffered across all streams before the largest buffer is loaded.",
        gt=0,
        order=102,
    )
    flush_seconds: float = field(
        60.0,
        title="Flush at least every T seconds",
        description="Buffered records are loaded, and pending states echoed, at least this often.",
        gt=0,
        order=103,
    )
    parallel_loads: int | None = field(
        None,
        title="Batches loaded at once",
        description=(
            "Append and overwrite batches loaded at the same time, each on a database connection of "
            "its own, committed in order (dedup merges run one at a time). Memory: up to this many "
            "batches more in flight. Empty: the destination's default, the number that measured "
            "fastest for it."
        ),
        ge=1,
        le=16,
        order=104,
    )


# ----------------------------------------------------------------------------------- spec


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = _inline_refs(defs[name], defs)
            return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _require_tags(options: list[Any], tag: str) -> list[Any]:
    """Each option of a discriminated union must name its tag (pydantic refuses a config without it)."""
    out = []
    for option in options:
        if isinstance(option, dict) and tag in option.get("properties", {}):
            required = list(option.get("required", []))
            if tag not in required:
                option = {**option, "required": [tag, *required]}
        out.append(option)
    return out


def _simplify(node: Any) -> Any:
    """Make pydantic's schema friendlier to Airbyte UIs and plain Draft 7.

    ``anyOf[X, null]`` becomes X (the UI renders one type per field; an optional field is left
    out rather than set to null), secrets become plain strings, and a discriminated union becomes
    a ``oneOf`` whose options each require their tag (the OpenAPI ``discriminator`` keyword, which
    points into ``$defs``, is dropped).
    """
    if isinstance(node, dict):
        node = {k: _simplify(v) for k, v in node.items()}
        discriminator = node.pop("discriminator", None)
        if isinstance(discriminator, dict) and isinstance(node.get("oneOf"), list):
            tag = discriminator.get("propertyName")
            if isinstance(tag, str):
                node["oneOf"] = _require_tags(node["oneOf"], tag)
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            non_null = [s for s in any_of if s.get("type") != "null"]
            if len(non_null) == 1 and len(any_of) == 2:
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**non_null[0], **rest}
        if node.get("format") == "password":
            node.pop("format")
            node.pop("writeOnly", None)
        return node
    if isinstance(node, list):
        return [_simplify(v) for v in node]
    return node


def connection_specification(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema (Draft 7) of a config model, self-contained (no ``$ref``) as Airbyte expects.

    Secret fields carry ``airbyte_secret: true``. :func:`load_config` enforces this schema as well
    as the model, so a config is accepted exactly when the platform would accept it.
    """
    schema = model.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    out: dict[str, Any] = _simplify(_inline_refs(schema, defs))
    out["$schema"] = "http://json-schema.org/draft-07/schema#"
    return out


# ----------------------------------------------------------------------------------- loading

ConfigT = TypeVar("ConfigT", bound=BaseModel)
Problems = list[tuple[str, str]]

_UNKNOWN = "unknown field (check its spelling against the spec)"
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(config)"


def _loc(loc: Iterable[Any], raw: Any = None) -> str:
    """A pydantic error location as a path into the config the user wrote.

    Parts that are not keys of the config (the tag or class name pydantic adds for a member of a
    union) are left out: ``tunnel.SSH_PASSWORD_AUTH.tunnel_host`` reads ``tunnel.tunnel_host``.
    """
    parts = list(loc)
    kept: list[Any] = []
    node = raw
    for i, part in enumerate(parts):
        if isinstance(part, int):
            kept.append(part)
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            kept.append(part)
            node = node[part]
        elif node is None or (isinstance(node, Mapping) and i == len(parts) - 1):
            kept.append(part)  # a missing (or unknown) field, or below one
            node = None
        # else: a union member's tag or class name; not part of the user's document
    return _path(kept)


def _model_problems(exc: ValidationError, raw: Any) -> Problems:
    problems: Problems = []
    for err in exc.errors(include_input=False, include_url=False):
        where = _loc(err["loc"], raw)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "missing":
            problems.append((where, "required field is missing"))
        elif kind == "extra_forbidden":
            problems.append((where, _UNKNOWN))
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            tag = str(ctx.get("discriminator", "")).strip("'\"")
            tag_where = f"{where}.{tag}" if tag and where != "(config)" else (tag or where)
            if kind == "union_tag_not_found":
                problems.append((tag_where, "required field is missing (it selects one of the options)"))
            else:
                problems.append((tag_where, f"must be one of {ctx.get('expected_tags', 'the options')}"))
        else:
            problems.append((where, str(err["msg"])))
    return problems


@functools.lru_cache(maxsize=64)
def _spec_validator(model: type[BaseModel]) -> Draft7Validator:
    return Draft7Validator(connection_specification(model))


def _schema_problems(error: SchemaViolation) -> Problems:
    """What a spec violation means, named by path and never showing the value."""
    base = list(error.absolute_path)
    keyword: Any = error.validator
    expected: Any = error.validator_value
    instance: Any = error.instance
    if keyword == "required":
        missing = [n for n in expected if isinstance(instance, Mapping) and n not in instance]
        return [(_path([*base, n]), "required field is missing") for n in missing]
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return [(_path([*base, n]), _UNKNOWN) for n in instance if n not in known]
    where = _path(base)
    if keyword == "type":
        if instance is None:
            return [(where, "must not be null; leave the field out to use its default")]
        names = expected if isinstance(expected, list) else [expected]
        return [(where, "expected " + " or ".join(_TYPE_WORDS.get(str(n), str(n)) for n in names))]
    if keyword in ("oneOf", "anyOf"):
        chosen = _chosen_option(error)
        if chosen is not None:
            return [
                p
                for sub in error.context or ()
                if sub.relative_schema_path[0] == chosen
                for p in _schema_problems(sub)
            ]
        return [(where, "does not match any of the allowed options")]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if keyword in bounds:
        return [(where, f"must be {bounds[keyword]} {expected}")]
    if keyword in ("enum", "const"):
        allowed = expected if keyword == "enum" else [expected]
        return [(where, "must be one of " + ", ".join(orjson.dumps(a).decode() for a in allowed))]
    if keyword == "pattern":
        return [(where, f"must match the pattern {expected}")]
    if keyword in ("minLength", "maxLength", "minItems", "maxItems"):
        what = "characters" if keyword.endswith("Length") else "items"
        return [
            (where, f"must have {'at least' if keyword.startswith('min') else 'at most'} {expected} {what}")
        ]
    return [(where, f"does not satisfy the spec's {keyword!r} rule")]


def _chosen_option(error: SchemaViolation) -> int | None:
    """The ``oneOf`` option the instance picks by its tag (a ``const`` property), if it picks one."""
    instance: Any = error.instance
    options: Any = error.validator_value
    if not isinstance(instance, Mapping) or not isinstance(options, list):
        return None
    for i, option in enumerate(options):
        props = option.get("properties", {}) if isinstance(option, Mapping) else {}
        tags = [k for k, v in props.items() if isinstance(v, Mapping) and "const" in v]
        if tags and all(instance.get(k) == props[k]["const"] for k in tags):
            return i
    return None


def _overlaps(a: str, b: str) -> bool:
    def within(x: str, y: str) -> bool:
        return x == y or x.startswith((y + ".", y + "["))

    return within(a, b) or within(b, a) or "(config)" in (a, b)


_NUL = "contains a NUL character (U+0000), which no connection setting can hold: remove it"


def _nul_problems(node: Any, parts: list[Any]) -> Problems:
    """Every string of the raw config (keys included) holding U+0000. Drivers cut a C string
    there, so a setting after it would be silently dropped (``sslmode=require`` ignored, another
    port used): refused before anything connects."""
    if isinstance(node, str):
        return [(_path(parts), _NUL)] if "\x00" in node else []
    problems: Problems = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str) and "\x00" in key:
                problems.append((_path(parts), f"has a key that {_NUL}"))
            problems += _nul_problems(value, [*parts, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _nul_problems(value, [*parts, index])
    return problems


def load_config(model: type[ConfigT], raw: Any, document: str = "config") -> ConfigT:
    """Validate a raw config against its model and its spec; errors name each bad field, never its value.

    A config is accepted when it conforms to :func:`connection_specification` (what the platform
    checks) and the model accepts it. Secret values are registered with :data:`MASKER` in any
    case, so that nothing printed afterwards can show them, not even for an invalid config.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{document}: expected a JSON object")
    register_secrets_in(raw, model)
    problems: Problems = _nul_problems(raw, [])
    config: ConfigT | None = None
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        problems += _model_problems(exc, raw)
    reported = [where for where, _ in problems]
    for error in _spec_validator(model).iter_errors(raw):
        for where, problem in _schema_problems(error):
            if not any(_overlaps(where, r) for r in reported):
                problems.append((where, problem))
    if problems or config is None:
        unique = list(dict.fromkeys(f"{where}: {problem}" for where, problem in problems))
        raise ConfigError(f"{document} is invalid: " + "; ".join(unique)) from None
    register_secrets(config)
    return config


def secret_values(config: BaseModel) -> list[str]:
    """Every secret value held by a (possibly nested) config model."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(config)
    return [s for s in found if s]


def _secret_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                if isinstance(value, dict) and value.get("airbyte_secret"):
                    names.add(key)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(connection_specification(model))
    return names


_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|passphrase|secret|token|credential|authorization|(^|_)key$|(private|api|access|ssh|client)_?key)"
)
_NOT_SECRET_KEY = re.compile(r"(?i)(primary|cursor|sort|partition|foreign|distribution)_?key")


def looks_secret(name: str) -> bool:
    """Whether a config key's name says it holds a secret (password, token, ssh_key, ...), for
    configs whose model is unknown; ``primary_key``, ``cursor_key`` and the like are not."""
    return bool(_SECRET_KEY.search(name)) and not _NOT_SECRET_KEY.search(name)


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def url_secrets(text: str) -> list[str]:
    """The texts a database URL's password may be taken for, whatever the URL's shape: raw and
    percent-decoded, the user-info's password read up to the URL's *last* ``@`` (a password with
    an unencoded ``@``, ``/``, ``?``, ``#`` or ``%`` ends there, wherever a parser cuts it), and
    the value of every query parameter named like a secret (``?password=``). Empty for a text
    that is not ``scheme://...``.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or not _URL_SCHEME.fullmatch(scheme):
        return []
    found: list[str] = []
    userinfo = rest.rpartition("@")[0]
    if userinfo:
        _, colon, password = userinfo.partition(":")
        if colon:
            found += [password, urllib.parse.unquote(password)]
    for part in re.split(r"[&;]", rest.partition("?")[2]):
        key, eq, value = part.partition("=")
        if eq and looks_secret(urllib.parse.unquote_plus(key)):
            found += [value, urllib.parse.unquote_plus(value), urllib.parse.unquote(value)]
    return [s for s in dict.fromkeys(found) if s]


def register_url_secrets(text: str) -> None:
    """Register with :data:`MASKER` every text a URL's password may be taken for (:func:`url_secrets`)."""
    for secret in url_secrets(text):
        MASKER.add(secret)


def register_secrets_in(raw: Any, model: type[BaseModel]) -> None:
    """Register the values a raw (possibly invalid) config holds under a secret field's name.

    Names are the model's ``airbyte_secret`` fields plus the usual ones (``password``, ...); a
    secret given with the wrong shape (a number, a list) is registered all the same, and so is
    every form of the password of a URL held in a secret field (:func:`url_secrets`).
    """
    names = _secret_names(model) | {"password", "private_key", "ssh_key", "tunnel_user_password"}

    def register(value: Any) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                register(v)
        elif isinstance(value, list):
            for v in value:
                register(v)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            MASKER.add(str(value))
            if isinstance(value, str):
                register_url_secrets(value)

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in names or looks_secret(str(key)):
                    register(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(raw)


def register_secrets(config: BaseModel) -> None:
    """Register every secret value of a loaded config (and a secret URL's password forms)."""
    for value in secret_values(config):
        MASKER.add(value)
        register_url_secrets(value)


# ----------------------------------------------------------------------------------- masking

MASK = "****"

# postgresql://user:secret@host/db (a password holding a raw "@" is masked up to the last "@")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^\s/]+)(?P<tail>@)")
# password=secret, pwd='a secret', "password": "secret", 'passwd': 'secret'
_KV_PASSWORD = re.compile(
    r"""(?ix)
    (?P<head>\b(?:password|passwd|pwd)(?:\s*=\s*|(?P<kq>['"])\s*[:=]\s*))
    (?:(?P<q>['"])(?P<quoted>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<bare>[^'"\s,;&)}\]]+))
    """
)
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _char_forms(char: str) -> str:
    """A regex matching one character of a secret as text or percent-encoded (either hex case)."""
    if char in _UNRESERVED:
        return re.escape(char)
    encoded = "".join(
        "%" + "".join(f"[{h}{h.lower()}]" if h.isalpha() else h for h in f"{b:02X}") for b in char.encode()
    )
    forms = [re.escape(char), encoded] + ([r"\+"] if char == " " else [])
    return "(?:" + "|".join(forms) + ")"


def _secret_pattern(secret: str) -> str:
    """Every form of a secret we may print: as is, URL-encoded by any rule (``quote`` with any safe
    set, ``quote_plus``, SQLAlchemy's URL rendering, so any mix of encoded and plain characters),
    inside a ``repr()`` and inside a JSON string."""
    escaped = {repr(secret)[1:-1], orjson.dumps(secret).decode()[1:-1]} - {secret}
    forms = ["".join(_char_forms(c) for c in secret), *(re.escape(e) for e in sorted(escaped))]
    return "|".join(forms)


def _mask_kv(m: re.Match[str]) -> str:
    if m["q"] is not None:
        return m["head"] + m["q"] + MASK + m["q"]
    return m["head"] + MASK


class Masker:
    """Replaces every registered secret (in every printable form) in a text; thread-safe.

    Texts are also cleaned of passwords the masker was never told about: the password of any
    ``scheme://user:password@host`` URL and ``password=...`` style key-value pairs.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Register a secret; idempotent. The empty string is ignored."""
        if not secret:
            return
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets.add(secret)
            ordered = sorted(self._secrets, key=len, reverse=True)  # longer secrets win overlaps
            self._pattern = re.compile("|".join(f"(?:{_secret_pattern(s)})" for s in ordered))

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], text)
        return _KV_PASSWORD.sub(_mask_kv, text)


MASKER = Masker()
