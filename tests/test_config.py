"""Config models: the generated spec, loading with field-named errors, and secret masking."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
from jsonschema import Draft7Validator
from pydantic import Field, SecretStr, ValidationError

from dbkit.config import (
    MASK,
    MASKER,
    ConnectorConfig,
    Masker,
    SourceSettings,
    connection_specification,
    field,
    load_config,
    register_secrets_in,
    secret_field,
    secret_values,
    url_secrets,
)
from dbkit.errors import ConfigError


class NoTunnel(ConnectorConfig):
    tunnel_method: Literal["NO_TUNNEL"] = "NO_TUNNEL"


class SshPassword(ConnectorConfig):
    tunnel_method: Literal["SSH_PASSWORD_AUTH"] = "SSH_PASSWORD_AUTH"
    tunnel_host: str = field(title="SSH host")
    tunnel_port: int = field(22, title="SSH port", ge=1, le=65535)
    tunnel_user_password: SecretStr = secret_field(title="SSH password")


class Replica(ConnectorConfig):
    host: str = field(title="Replica host")
    port: int = field(5432, title="Replica port", ge=1, le=65535)
    api_key: SecretStr | None = secret_field(title="Replica key", default=None)


class ExampleConfig(SourceSettings):
    host: str = field(title="Host", description="Server name.", order=0, examples=["db.example.com"])
    port: int = field(5432, title="Port", ge=1, le=65535, order=1)
    password: SecretStr = secret_field(title="Password", order=2)
    ssl_key: SecretStr | None = secret_field(title="SSL key", default=None)
    schemas: list[str] = field(default_factory=lambda: ["public"], title="Schemas", min_length=1)
    replica: Replica | None = field(None, title="Replica")
    replicas: list[Replica] = field(default_factory=list, title="More replicas")
    mode: Literal["fast", "safe"] = field("safe", title="Mode")
    timeout_seconds: float | None = field(None, title="Timeout", gt=0)
    tunnel: Annotated[NoTunnel | SshPassword, Field(discriminator="tunnel_method")] = field(
        default_factory=NoTunnel, title="Tunnel"
    )


SPEC = connection_specification(ExampleConfig)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Every (path, key, value) of a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


# ----------------------------------------------------------------------------------- spec


def test_spec_is_self_contained_draft7() -> None:
    assert SPEC["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(SPEC)
    text = json.dumps(SPEC)
    assert "$ref" not in text
    assert "$defs" not in text
    assert "definitions" not in text
    assert "discriminator" not in text  # OpenAPI, not Draft 7; it pointed into $defs


def test_spec_marks_every_secret_and_only_secrets() -> None:
    secrets = {
        path + "/" + key for path, key, value in walk(SPEC) if key == "airbyte_secret" and value is True
    }
    assert secrets == {
        "/properties/password/airbyte_secret",
        "/properties/ssl_key/airbyte_secret",
        "/properties/replica/properties/api_key/airbyte_secret",
        "/properties/replicas/items/properties/api_key/airbyte_secret",
        "/properties/tunnel/oneOf/1/properties/tunnel_user_password/airbyte_secret",
    }
    for path, key, _value in walk(SPEC):
        if key == "airbyte_secret":
            secret = _at(SPEC, path)
            assert secret["type"] == "string", path
            assert "format" not in secret  # pydantic's "password" format and writeOnly are dropped
            assert "writeOnly" not in secret


def _at(doc: Any, path: str) -> Any:
    for part in path.strip("/").split("/"):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def test_spec_fields_keep_ui_hints_and_defaults() -> None:
    props = SPEC["properties"]
    assert SPEC["required"] == ["host", "password"]
    assert SPEC["additionalProperties"] is False
    assert props["host"] == {
        "type": "string",
        "title": "Host",
        "description": "Server name.",
        "order": 0,
        "examples": ["db.example.com"],
    }
    assert props["port"]["default"] == 5432
    assert (props["port"]["minimum"], props["port"]["maximum"]) == (1, 65535)
    assert props["mode"]["enum"] == ["fast", "safe"]
    assert props["timeout_seconds"]["type"] == "number"  # anyOf[number, null] -> number
    assert props["replica"]["type"] == "object"
    assert props["replica"]["required"] == ["host"]
    assert props["replicas"]["items"]["properties"]["port"]["default"] == 5432
    assert props["checkpoint_records"]["default"] == 10_000  # inherited settings
    for _, key, value in walk(SPEC):
        assert not (key == "description" and value == ""), "empty descriptions are left out"


def test_spec_discriminated_union_options_require_their_tag() -> None:
    options = SPEC["properties"]["tunnel"]["oneOf"]
    assert [o["properties"]["tunnel_method"]["const"] for o in options] == ["NO_TUNNEL", "SSH_PASSWORD_AUTH"]
    assert options[0]["required"] == ["tunnel_method"]
    assert options[1]["required"] == ["tunnel_method", "tunnel_host", "tunnel_user_password"]


# secrets used here are registered with the process-wide masker: keep them distinctive
BASE: dict[str, Any] = {"host": "db", "password": "base-pw-Q1"}
SSH = {"tunnel_method": "SSH_PASSWORD_AUTH", "tunnel_host": "bastion", "tunnel_user_password": "ssh-pw-Q2"}

# (id, config, accepted?, model alone is laxer than the spec)
EQUIVALENCE: list[tuple[str, dict[str, Any], bool, bool]] = [
    ("minimal", BASE, True, False),
    (
        "every-field",
        {
            **BASE,
            "port": 1,
            "ssl_key": "ssl-key-Q3",
            "schemas": ["a", "b"],
            "replica": {"host": "r", "port": 2, "api_key": "replica-key-Q4"},
            "replicas": [{"host": "r1"}, {"host": "r2", "port": 65535}],
            "mode": "fast",
            "timeout_seconds": 0.5,
            "tunnel": SSH,
            "checkpoint_records": 5,
            "checkpoint_seconds": 1,
            "max_concurrent_streams": 32,
        },
        True,
        False,
    ),
    ("integral-float-port", {**BASE, "port": 5433.0}, True, False),
    ("no-tunnel", {**BASE, "tunnel": {"tunnel_method": "NO_TUNNEL"}}, True, False),
    ("missing-password", {"host": "db"}, False, False),
    ("missing-host", {"password": "base-pw-Q1"}, False, False),
    ("unknown-field", {**BASE, "hots": "x"}, False, False),
    ("unknown-nested-field", {**BASE, "replica": {"host": "r", "prot": 1}}, False, False),
    ("port-zero", {**BASE, "port": 0}, False, False),
    ("port-too-big", {**BASE, "port": 70000}, False, False),
    ("port-fraction", {**BASE, "port": 1.5}, False, False),
    ("port-bool", {**BASE, "port": True}, False, True),
    ("host-number", {**BASE, "host": 5}, False, False),
    ("password-number", {**BASE, "password": 12345}, False, False),
    ("schemas-empty", {**BASE, "schemas": []}, False, False),
    ("schemas-string", {**BASE, "schemas": "public"}, False, False),
    ("schemas-item-number", {**BASE, "schemas": ["a", 1]}, False, False),
    ("mode-bad", {**BASE, "mode": "turbo"}, False, False),
    ("timeout-zero", {**BASE, "timeout_seconds": 0}, False, False),
    ("replica-missing-host", {**BASE, "replica": {"port": 1}}, False, False),
    ("replicas-item-bad", {**BASE, "replicas": [{"host": "a"}, {"host": "b", "port": -1}]}, False, False),
    ("tunnel-tag-missing", {**BASE, "tunnel": {}}, False, False),
    ("tunnel-tag-bad", {**BASE, "tunnel": {"tunnel_method": "VPN"}}, False, False),
    ("tunnel-missing-password", {**BASE, "tunnel": {**SSH, "tunnel_user_password": None}}, False, False),
    ("tunnel-extra", {**BASE, "tunnel": {**SSH, "x": 1}}, False, False),
    ("checkpoint-zero", {**BASE, "checkpoint_records": 0}, False, False),
    # The model alone coerces these; the spec (what the platform checks) does not, so neither do we.
    ("port-numeric-string", {**BASE, "port": "5432"}, False, True),
    ("null-optional", {**BASE, "ssl_key": None}, False, True),
    ("null-nested-optional", {**BASE, "replica": None}, False, True),
    ("null-timeout", {**BASE, "timeout_seconds": None}, False, True),
    ("tunnel-port-string", {**BASE, "tunnel": {**SSH, "tunnel_port": "22"}}, False, True),
]


def _model_accepts(raw: dict[str, Any]) -> bool:
    try:
        ExampleConfig.model_validate(raw)
    except ValidationError:
        return False
    return True


def _load_accepts(raw: dict[str, Any]) -> bool:
    try:
        load_config(ExampleConfig, raw)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(
    ("raw", "accepted", "lax"), [c[1:] for c in EQUIVALENCE], ids=[c[0] for c in EQUIVALENCE]
)
def test_spec_and_loader_accept_the_same_configs(raw: dict[str, Any], accepted: bool, lax: bool) -> None:
    assert Draft7Validator(SPEC).is_valid(raw) is accepted
    assert _load_accepts(raw) is accepted
    assert _model_accepts(raw) is (accepted or lax)


def test_loaded_config_has_defaults_and_secrets() -> None:
    config = load_config(ExampleConfig, {**BASE, "password": "s-loaded-1", "tunnel": SSH})
    assert config.port == 5432
    assert config.schemas == ["public"]
    assert config.replica is None
    assert isinstance(config.tunnel, SshPassword)
    assert config.tunnel.tunnel_port == 22
    assert config.password.get_secret_value() == "s-loaded-1"
    assert "s-loaded-1" not in repr(config)
    assert set(secret_values(config)) == {"s-loaded-1", "ssh-pw-Q2"}


# ----------------------------------------------------------------------------------- load errors

SENTINEL = "VALUE-7f3a9-SENTINEL"

# (id, config, every "path: problem" that the message must list)
LOAD_ERRORS: list[tuple[str, Any, list[str]]] = [
    ("not-object", [1, 2], ["config: expected a JSON object"]),
    ("missing", {}, ["host: required field is missing", "password: required field is missing"]),
    (
        "wrong-type",
        {**BASE, "host": 12345, "port": SENTINEL},
        ["host: Input should be a valid string", "port: Input should be a valid integer"],
    ),
    (
        "unknown",
        {**BASE, SENTINEL.lower(): 1, "hots": SENTINEL},
        [f"{SENTINEL.lower()}: unknown field", "hots: unknown field (check its spelling against the spec)"],
    ),
    (
        "all-kinds-at-once",
        {"host": [SENTINEL], "extra": SENTINEL, "mode": SENTINEL},
        [
            "password: required field is missing",
            "host: Input should be a valid string",
            "extra: unknown field",
            "mode: Input should be 'fast' or 'safe'",
        ],
    ),
    (
        "nested",
        {**BASE, "replica": {"port": SENTINEL}},
        ["replica.host: required field is missing", "replica.port: Input should be a valid integer"],
    ),
    (
        "list-item",
        {**BASE, "replicas": [{"host": "a"}, {"host": SENTINEL, "port": 0}]},
        ["replicas[1].port: Input should be greater than or equal to 1"],
    ),
    ("list-item-type", {**BASE, "schemas": ["a", 5]}, ["schemas[1]: Input should be a valid string"]),
    (
        "union-member",
        {**BASE, "tunnel": {"tunnel_method": "SSH_PASSWORD_AUTH", "tunnel_host": SENTINEL}},
        ["tunnel.tunnel_user_password: required field is missing"],
    ),
    (
        "union-tag-bad",
        {**BASE, "tunnel": {"tunnel_method": SENTINEL}},
        ["tunnel.tunnel_method: must be one of 'NO_TUNNEL', 'SSH_PASSWORD_AUTH'"],
    ),
    (
        "union-tag-missing",
        {**BASE, "tunnel": {"tunnel_host": SENTINEL}},
        ["tunnel.tunnel_method: required field is missing"],
    ),
    (
        "null",
        {**BASE, "timeout_seconds": None},
        ["timeout_seconds: must not be null; leave the field out to use its default"],
    ),
    ("numeric-string", {**BASE, "port": "5432"}, ["port: expected an integer"]),
    (
        "nested-numeric-string",
        {**BASE, "tunnel": {**SSH, "tunnel_port": "22"}},
        ["tunnel.tunnel_port: expected an integer"],
    ),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in LOAD_ERRORS], ids=[c[0] for c in LOAD_ERRORS])
def test_load_errors_name_every_bad_field_never_the_value(raw: Any, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ExampleConfig, raw)
    error = info.value
    assert error.failure_type == "config_error"
    message = error.message
    assert message == str(error)
    for fragment in expected:
        assert fragment in message, message
    assert message.count(": ") >= len(expected)
    assert SENTINEL not in message
    assert "base-pw-Q1" not in message
    assert "12345" not in message
    assert "http" not in message  # no pydantic documentation links


def test_load_error_message_names_the_document() -> None:
    with pytest.raises(ConfigError, match=r"^destination config is invalid: host: required field is missing"):
        load_config(ExampleConfig, {"password": "base-pw-Q1"}, document="destination config")


# ----------------------------------------------------------------------------------- masking

PW = "p@ss:w/rd 12"
FORMS = {
    "raw": PW,
    "quote": urllib.parse.quote(PW),
    "quote-safe-empty": urllib.parse.quote(PW, safe=""),
    "quote-plus": urllib.parse.quote_plus(PW),
    "quote-plus-safe-slash": urllib.parse.quote_plus(PW, safe="/"),
    "lowercase-hex": urllib.parse.quote(PW, safe="").lower(),
    "repr": repr(PW),
    "json": json.dumps(PW),
    "sqlalchemy-url-escaping": PW.replace("@", "%40").replace(":", "%3A").replace("/", "%2F"),
}


def _leaks(text: str, secret: str = PW) -> list[str]:
    forms = {
        secret,
        urllib.parse.quote(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    }
    return [f for f in forms if f in text]


@pytest.mark.parametrize("form", list(FORMS.values()), ids=list(FORMS))
def test_registered_secret_is_masked_in_every_form(form: str) -> None:
    masker = Masker()
    masker.add(PW)
    quote = form[0] if form[0] in "'\"" else ""  # repr and JSON keep their quotes around the mask
    masked = masker.mask(f"error near {form} (again: {form})")
    assert masked == f"error near {quote}{MASK}{quote} (again: {quote}{MASK}{quote})"


@pytest.mark.parametrize(
    ("secret", "text", "expected"),
    [
        ("back\\slash", "{'password': 'back\\\\slash'}", f"{{'password': '{MASK}'}}"),
        ('quo"te', '{"token": "quo\\"te"}', f'{{"token": "{MASK}"}}'),
        ("tab\there", "'tab\\there'", f"'{MASK}'"),
        ("ünï", "%C3%BCn%C3%AF and %c3%bcn%c3%af", f"{MASK} and {MASK}"),
        ("a+b c", "a%2Bb+c a+b%20c", f"{MASK} {MASK}"),
    ],
)
def test_escaped_forms_are_masked(secret: str, text: str, expected: str) -> None:
    masker = Masker()
    masker.add(secret)
    assert masker.mask(text) == expected


def test_longer_secret_wins_over_its_prefix() -> None:
    masker = Masker()
    masker.add("abc")
    masker.add("abcdef")
    assert masker.mask("x abcdef y abc") == f"x {MASK} y {MASK}"


def test_empty_secret_is_ignored_and_clear_forgets() -> None:
    masker = Masker()
    masker.add("")
    assert masker.mask("nothing to hide") == "nothing to hide"
    masker.add("hide-me")
    assert masker.mask("hide-me") == MASK
    masker.clear()
    assert masker.mask("hide-me") == "hide-me"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:secret@host/db", f"postgresql://user:{MASK}@host/db"),
        ("mysql+pymysql://root:p@ss@localhost:3306/x", f"mysql+pymysql://root:{MASK}@localhost:3306/x"),
        (
            "connect to postgresql://u:s%40cret@h:5432/d failed",
            f"connect to postgresql://u:{MASK}@h:5432/d failed",
        ),
        ("postgresql://:onlypw@host", f"postgresql://:{MASK}@host"),
        ("host=h port=5 password=abc dbname=x", f"host=h port=5 password={MASK} dbname=x"),
        ("PASSWORD='a b c' next", f"PASSWORD='{MASK}' next"),
        ('{"password": "p\\"ss", "user": "u"}', f'{{"password": "{MASK}", "user": "u"}}'),
        ("{'passwd': 'x'}", f"{{'passwd': '{MASK}'}}"),
        ("Server=h;Uid=u;Pwd=abc;", f"Server=h;Uid=u;Pwd={MASK};"),
        ("?user=u&password=abc&ssl=1", f"?user=u&password={MASK}&ssl=1"),
        # left alone: no password in them
        ("postgresql://user@host:5432/db", "postgresql://user@host:5432/db"),
        ("http://host:8080/path", "http://host:8080/path"),
        ("password: required field is missing", "password: required field is missing"),
        ('password authentication failed for user "u"', 'password authentication failed for user "u"'),
    ],
)
def test_unregistered_passwords_are_masked_by_rule(text: str, expected: str) -> None:
    assert Masker().mask(text) == expected


def test_load_config_registers_secrets_with_the_process_masker() -> None:
    secret = "s3cret:valid/one 1"
    tunnel_secret = "tunnel-secret-valid-2"
    load_config(
        ExampleConfig, {**BASE, "password": secret, "tunnel": {**SSH, "tunnel_user_password": tunnel_secret}}
    )
    text = f"{secret} {urllib.parse.quote(secret)} {urllib.parse.quote_plus(secret)} {tunnel_secret}"
    assert MASKER.mask(text) == " ".join([MASK] * 4)


@pytest.mark.parametrize(
    "raw",
    [
        {"host": 5, "password": "s3cret:invalid/{n} 1"},
        {"host": "h", "password": "s3cret:invalid/{n} 1", "unknown": 1},
        {
            **BASE,
            "tunnel": {"tunnel_method": "SSH_PASSWORD_AUTH", "tunnel_user_password": "s3cret:invalid/{n} 1"},
        },
        {**BASE, "replicas": [{"api_key": "s3cret:invalid/{n} 1"}]},
        {**BASE, "password": ["s3cret:invalid/{n} 1"]},
    ],
)
def test_invalid_config_still_registers_its_secrets(
    raw: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    unique = request.node.callspec.id
    document = json.loads(json.dumps(raw).replace("{n}", unique))
    secret = f"s3cret:invalid/{unique} 1"
    with pytest.raises(ConfigError) as info:
        load_config(ExampleConfig, document)
    assert not _leaks(info.value.message, secret)
    for form in (secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret)):
        assert MASKER.mask(f"x {form} y") == f"x {MASK} y"


def test_register_secrets_in_by_name_ignores_other_fields_and_booleans() -> None:
    masker_before = MASKER.mask("plain-value-zz9")
    register_secrets_in(
        {"host": "plain-value-zz9", "password": True, "nested": [{"private_key": "pk-zz9-abc"}]},
        ExampleConfig,
    )
    assert MASKER.mask("plain-value-zz9") == masker_before == "plain-value-zz9"
    assert MASKER.mask("True") == "True"
    assert MASKER.mask("pk-zz9-abc") == MASK


# ----------------------------------------------------------------------------------- NUL characters


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"password": "pw-nul-1\x00tailQ7"}, "password:"),
        ({"host": "db\x00.example.com"}, "host:"),
        ({"schemas": ["public", "sa\x00les"]}, "schemas[1]:"),
        ({"tunnel": {**SSH, "tunnel_host": "bastion\x00"}}, "tunnel.tunnel_host:"),
        ({"replica": {"host": "r\x00"}}, "replica.host:"),
    ],
)
def test_a_nul_in_any_string_is_refused_and_named(raw: dict[str, Any], where: str) -> None:
    """Drivers cut C strings at NUL, dropping what follows (an sslmode, a port): refused first."""
    with pytest.raises(ConfigError) as info:
        load_config(ExampleConfig, {**BASE, "password": "pw-nul-1", **raw})
    message = str(info.value)
    assert f"{where} contains a NUL character" in message
    assert "\x00" not in message
    assert "pw-nul-1" not in message
    assert "tailQ7" not in message


def test_a_nul_in_a_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="has a key that contains a NUL character"):
        load_config(ExampleConfig, {**BASE, "password": "pw", "ho\x00st": "x"})


def test_every_form_of_a_url_password_is_registered_for_masking() -> None:
    """A secret field holding a URL: the password is registered in every form a parser may cut
    it to (up to the last '@', raw and decoded) and so is a ``?password=`` parameter, even when
    the config is refused; so no piece of it shows once a parser took part of it for a host."""
    assert url_secrets("postgresql://u:ab/S3cret%40x@h/db") == ["ab/S3cret%40x", "ab/S3cret@x"]
    assert url_secrets("mysql://u@h/db?user=x&password=p%2Bq+r") == ["p%2Bq+r", "p+q r", "p+q+r"]
    assert url_secrets("not a url: x:y@z") == []
    assert url_secrets("a b://u:c@d") == []
    with pytest.raises(ConfigError):
        load_config(UrlConfig, {"url": "postgresql://u:Kk7/Tt@Yy3@h:1/db", "port": "x"})
    for text in ("Kk7/Tt@Yy3", "Kk7%2FTt%40Yy3", "Kk7/Tt%40Yy3"):
        assert MASKER.mask(f"x {text} y") == f"x {MASK} y"


class UrlConfig(ConnectorConfig):
    url: SecretStr = secret_field(title="URL")
    port: int = field(1, title="Port")
