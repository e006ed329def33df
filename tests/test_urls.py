"""dbkit.urls: what users write in ``dbkit sync --source URL`` becomes each connector's config.

SQLAlchemy's parser reads the URL; an ``@`` it would misread is refused with a message saying
how to percent-encode, quoting nothing of the password; libpq's and MySQL's SSL parameters map
onto the connectors' SSL settings (certificate files read); list settings take ``a,b`` or a
repeated key; a parameter no setting takes is refused, naming it. The connections themselves are
tested against the real servers in ``tests/sync/test_url_connections.py``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from dbkit import MASKER, PERCENT_ENCODING, ConfigError, load_config, parse_url, postgres_url_config
from dbkit.cli import endpoint
from dbkit.runner.registry import resolve
from destination_mysql.config import MySqlDestinationConfig
from destination_postgres.config import PostgresDestinationConfig
from source_mysql.config import MySqlSourceConfig
from source_postgres.config import PostgresSourceConfig

CA = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEkey-S3cret-Body\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
    for name, text in (("ca", CA), ("cert", CERT), ("key", KEY)):
        files[name].write_text(text)
    return files


def source_config(url: str) -> dict[str, Any]:
    found = resolve(url, "source").url_config
    assert found is not None
    return found


def destination_config(url: str) -> dict[str, Any]:
    found = resolve(url, "destination").url_config
    assert found is not None
    return found


def refused(url: str, kind: str = "source") -> str:
    with pytest.raises(ConfigError) as raised:
        resolve(url, kind)
    return raised.value.message


# ================================================================================= passwords


@pytest.mark.parametrize("password", ["Kp/Zq?Rb#Lm", "a:b:c", "semi;colon&amp=x", "sp ace+plus"])
def test_a_password_with_reserved_characters_other_than_at_and_percent_is_read_as_written(
    password: str,
) -> None:
    config = source_config(f"postgresql://reader:{password}@db.example.com:6432/shop")
    assert config["password"] == password
    assert (config["host"], config["port"], config["database"]) == ("db.example.com", 6432, "shop")
    assert config["username"] == "reader"


def test_a_percent_encoded_password_is_decoded() -> None:
    secret = "p@ss%w/o?r#d: Ω"
    config = source_config(f"postgresql://reader:{urllib.parse.quote(secret, safe='')}@h/shop")
    assert config["password"] == secret
    # the same encoded user name with an '@' (user@server, as some clouds name users)
    config = source_config("mysql://reader%40server:pw@h/shop")
    assert config["username"] == "reader@server"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://reader:S3cret@Tail99@db.example.com:5432/shop",  # '@' in the password
        "postgresql://reader@server:S3cretTail99@db.example.com/shop",  # '@' in the user name
        "mysql://reader:S3cret@Tail99@db.example.com/shop",
        "postgresql://reader:S3cretTail99@db.example.com/shop?application_name=a@b",
    ],
)
def test_an_at_sign_the_parser_would_misread_is_refused_with_how_to_encode(url: str) -> None:
    message = refused(url)
    assert "percent-encode" in message
    assert "%40" in message
    assert "getpass" in message  # how to encode one without showing it
    for piece in ("S3cret", "Tail99", "reader"):
        assert piece not in message


def test_a_url_the_parser_cannot_read_says_so_without_quoting_it() -> None:
    message = refused("postgresql://reader:Tail99@db.example.com:port99/shop")
    assert "port is not a number" in message
    assert "Tail99" not in message
    with pytest.raises(ConfigError, match="not a SQLAlchemy URL") as raised:
        parse_url("not-a-url secret-93d1")
    assert "secret-93d1" not in raised.value.message
    assert "getpass" in PERCENT_ENCODING


def test_a_file_url_may_hold_any_at_sign() -> None:
    assert source_config("sqlite:///data/a@b.db") == {"path": "data/a@b.db"}
    assert source_config("sqlite:////srv/x%23y.db") == {"path": "/srv/x#y.db"}


# ================================================================================= PostgreSQL


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
def test_libpq_sslmode_becomes_the_ssl_mode(mode: str) -> None:
    raw = source_config(f"postgresql://u@h/db?sslmode={mode}")
    assert raw["ssl_mode"] == {"mode": mode}
    assert load_config(PostgresSourceConfig, raw).ssl_mode.mode == mode


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verifying_modes_read_the_certificate_files(mode: str, pem_files: dict[str, Path]) -> None:
    url = (
        f"postgresql://u@h/db?sslmode={mode}&sslrootcert={pem_files['ca']}&sslcert={pem_files['cert']}"
        f"&sslkey={pem_files['key']}&sslpassword=KeyPass-S3cret"
    )
    raw = destination_config(url)
    assert raw["ssl_mode"] == {
        "mode": mode,
        "ca_certificate": CA,
        "client_certificate": CERT,
        "client_key": KEY,
        "client_key_password": "KeyPass-S3cret",
    }
    config = load_config(PostgresDestinationConfig, raw)
    assert config.ssl_mode.mode == mode
    assert "S3cret" not in repr(config)


def test_ssl_mistakes_are_config_errors_naming_the_parameter(pem_files: dict[str, Path]) -> None:
    assert "sslmode='verify_full' is not one of" in refused("postgresql://u@h/db?sslmode=verify_full")
    message = refused(f"postgresql://u@h/db?sslmode=require&sslrootcert={pem_files['ca']}")
    assert "sslrootcert" in message
    assert "verify-full" in message
    assert "add sslrootcert=PATH" in refused("postgresql://u@h/db?sslmode=verify-full")
    missing = pem_files["ca"].parent / "nowhere.pem"
    message = refused(f"postgresql://u@h/db?sslmode=verify-ca&sslrootcert={missing}")
    assert f"sslrootcert names a file that cannot be read ({missing}" in message
    assert "given 2 times" in refused("postgresql://u@h/db?sslmode=disable&sslmode=require")
    message = refused("postgresql://u@h/db?sslpassword=KeyPass-S3cret")
    assert "sslpassword" in message
    assert "KeyPass-S3cret" not in message


def test_other_libpq_parameters_become_connection_parameters() -> None:
    raw = source_config(
        "postgresql://u@h/db?application_name=nightly&connect_timeout=5&sslcrl=/etc/crl.pem"
        "&options=-c%20statement_timeout%3D5000&target_session_attrs=read-write"
    )
    assert raw["connection_parameters"] == {
        "application_name": "nightly",
        "connect_timeout": "5",
        "options": "-c statement_timeout=5000",
        "sslcrl": "/etc/crl.pem",
        "target_session_attrs": "read-write",
    }
    assert load_config(PostgresSourceConfig, raw).connection_parameters["connect_timeout"] == "5"


def test_list_settings_take_commas_or_a_repeated_key() -> None:
    assert source_config("postgresql://u@h/db?schemas=a,b")["schemas"] == ["a", "b"]
    assert source_config("postgresql://u@h/db?schema=a&schema=b&schemas=c")["schemas"] == ["a", "b", "c"]
    raw = source_config("postgresql://u@h/db?include_tables=orders*,items&exclude_tables=tmp_*")
    assert (raw["include_tables"], raw["exclude_tables"]) == (["orders*", "items"], ["tmp_*"])
    raw = source_config("postgresql://u@h/db?include_tables=orders*&include_tables=items")
    assert raw["include_tables"] == ["orders*", "items"]
    assert load_config(PostgresSourceConfig, raw).include_tables == ["orders*", "items"]
    assert destination_config("postgresql://u@h/db?schema=sales")["schema"] == "sales"
    assert "one schema" in refused("postgresql://u@h/db?schema=a,b", "destination")
    # a JSON value still works where the setting takes one
    assert source_config("postgresql://u@h/db?checkpoint_records=500")["checkpoint_records"] == 500


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://u@h/db?sslmdoe=require", "source"),
        ("postgresql://u@h/db?raw_table=true", "destination"),
        ("mysql://u@h/db?useSSL=false", "source"),
        ("sqlite:///a.db?journal=wal", "destination"),
    ],
)
def test_an_unknown_parameter_is_a_config_error_naming_it(url: str, kind: str) -> None:
    name = urllib.parse.urlsplit(url).query.split("=")[0]
    message = refused(url, kind)
    assert f"the URL parameter {name!r} is not a setting of" in message


def test_the_mapper_alone_keeps_every_query_key_for_the_check() -> None:
    """postgres_url_config leaves what it does not know to check_url_config (a connector that is
    not installed cannot be checked, and still gets its keys)."""
    raw = postgres_url_config(parse_url("postgresql://u@h/db?batch_records=10&sslmode=prefer"), "destination")
    assert raw["batch_records"] == 10
    assert raw["ssl_mode"] == {"mode": "prefer"}


# ================================================================================= MySQL


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("ssl_mode=REQUIRED", "required"),
        ("ssl-mode=preferred", "preferred"),
        ("sslMode=Required", "required"),
    ],
)
def test_mysql_ssl_mode_spellings_map_to_source_mysql(query: str, mode: str) -> None:
    raw = source_config(f"mysql://u@h/db?{query}")
    assert raw["ssl_mode"] == {"mode": mode}
    assert load_config(MySqlSourceConfig, raw).ssl_mode.mode == mode


def test_mysql_verifying_modes_read_the_files(pem_files: dict[str, Path]) -> None:
    url = (
        f"mysql://u@h/db?ssl_mode=VERIFY_IDENTITY&ssl_ca={pem_files['ca']}&ssl-cert={pem_files['cert']}"
        f"&sslKey={pem_files['key']}"
    )
    raw = source_config(url)
    assert raw["ssl_mode"] == {
        "mode": "verify_identity",
        "ca_certificate": CA,
        "client_certificate": CERT,
        "client_key": KEY,
    }
    assert load_config(MySqlSourceConfig, raw).ssl_mode.mode == "verify_identity"


def test_mysql_ssl_mistakes_are_config_errors(pem_files: dict[str, Path]) -> None:
    assert "no ssl_mode=DISABLED" in refused("mysql://u@h/db?ssl_mode=DISABLED")
    assert "not one of" in refused("mysql://u@h/db?ssl_mode=sometimes")
    assert "add ssl_ca=PATH" in refused("mysql://u@h/db?ssl_mode=VERIFY_CA")
    assert "VERIFY_IDENTITY" in refused(f"mysql://u@h/db?ssl_mode=REQUIRED&ssl_ca={pem_files['ca']}")
    assert "give one" in refused("mysql://u@h/db?ssl_mode=REQUIRED&sslMode=DISABLED")


def test_destination_mysql_takes_required_or_disabled(pem_files: dict[str, Path]) -> None:
    assert destination_config("mysql://u@h/db")["ssl"] is False
    assert destination_config("mysql://u@h/db?ssl_mode=DISABLED")["ssl"] is False
    raw = destination_config("mysql://u@h/db?ssl_mode=REQUIRED&batch_records=100")
    assert (raw["ssl"], raw["batch_records"]) == (True, 100)
    assert load_config(MySqlDestinationConfig, raw).ssl is True
    assert "REQUIRED or DISABLED, not PREFERRED" in refused(
        "mysql://u@h/db?ssl_mode=PREFERRED", "destination"
    )
    assert "not VERIFY_CA" in refused(
        f"mysql://u@h/db?ssl_mode=VERIFY_CA&ssl_ca={pem_files['ca']}", "destination"
    )


def test_the_secrets_a_url_brings_are_masked(pem_files: dict[str, Path]) -> None:
    """The key file's text and its password (read from the URL) join the masked secrets, like
    the URL's password, as soon as dbkit sync reads the URL."""
    url = (
        f"postgresql://u:Url-Pass-S3cret@h/db?sslmode=verify-full&sslrootcert={pem_files['ca']}"
        f"&sslkey={pem_files['key']}&sslpassword=KeyPass-S3cret"
    )
    found = endpoint(url, None, "destination")
    assert found.config["ssl_mode"]["client_key"] == KEY
    shown = MASKER.mask(f"failed: {KEY} / KeyPass-S3cret / Url-Pass-S3cret / {url}")
    assert "S3cret" not in shown
    assert "MIIEkey" not in shown
