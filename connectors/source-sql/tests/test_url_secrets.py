"""source-sql never prints any part of the password in its URL, whatever the URL's shape.

A password holding ``@ : / ? # %`` or spaces, written raw or percent-encoded, in the user-info or
as a ``?password=`` parameter, is given to ``check``, ``discover`` and ``read`` against a real
PostgreSQL and a real MariaDB (where a user with exactly that password is created, so the
encoded forms log in and read). No output (protocol lines and stderr) may hold the password or
any 4-character piece of it. A raw ``@`` that SQLAlchemy would read as the end of the password
(and so take the rest of it for the host, port or database: ``'S3cret@127.0.0.1:5432'``) is a
config_error that quotes nothing of the URL.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pymysql
import pytest
import sqlalchemy as sa

from dbkit import ConfigError, load_config
from dbkit.testing import RunResult, configured_catalog
from dbkit.testing.suites import PEOPLE, MysqlSourceHarness, PostgresSourceHarness, people_table
from source_sql import SqlUrlConfig

# each with the characters a URL gives a meaning to, between distinctive letters
PASSWORDS = [
    "Tail@S3cret:Qx99",  # '@' then ':': SQLAlchemy took 'S3cret:Qx99@127.0.0.1:5432' for a port
    "Kp/Zq@Wv7?Rb#Lm%41 Hn",
    "Dr%Zt Wy/Gk:Bx?Ps#Mj&Ke=Lo",  # no '@': SQLAlchemy reads it whole even unencoded
]


def pieces(secret: str) -> set[str]:
    """The password and every 4-character piece of it (raw and percent-encoded)."""
    encoded = urllib.parse.quote(secret, safe="")
    return {secret, encoded} | {s[i : i + 4] for s in (secret, encoded) for i in range(len(s) - 3)}


def shapes(url: sa.URL, user: str, secret: str) -> dict[str, str]:
    """The URL with ``secret`` as ``user``'s password, written in every way a person might."""
    base = f"{url.drivername}://{{userinfo}}@{url.host}:{url.port}/{url.database}"
    encoded = urllib.parse.quote(secret, safe="")
    return {
        "userinfo-raw": base.format(userinfo=f"{user}:{secret}"),
        "userinfo-encoded": base.format(userinfo=f"{user}:{encoded}"),
        "query-raw": base.format(userinfo=user) + f"?password={secret}",
        "query-encoded": base.format(userinfo=user) + f"?password={encoded}",
    }


class Postgres(PostgresSourceHarness):
    command: ClassVar[str] = "source-sql"
    providers = ("local-service",)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.database.url, **overrides}

    def login(self, secret: str) -> str:
        """The user to log in as (the service trusts local logins: any password is accepted)."""
        return self.database.user


class Mariadb(MysqlSourceHarness):
    command: ClassVar[str] = "source-sql"
    providers = ("local-service",)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.database.url, **overrides}

    def login(self, secret: str) -> str:
        """A new user whose password is ``secret``, granted the test database; dropped after."""
        user = f"dbkit_pw_{secrets.token_hex(4)}"
        params = self.database.connection_params()
        with pymysql.connect(**params, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (secret,))
            cursor.execute(f"GRANT ALL ON `{self.database.database}`.* TO '{user}'@'%'")

        def drop() -> None:
            with pymysql.connect(**params, autocommit=True) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")

        self.request.addfinalizer(drop)
        return user


TARGETS = [
    pytest.param(Postgres, id="postgres", marks=[pytest.mark.postgres, pytest.mark.slow]),
    pytest.param(Mariadb, id="mariadb", marks=[pytest.mark.mysql, pytest.mark.slow]),
]


@pytest.mark.parametrize("harness_class", TARGETS)
@pytest.mark.parametrize("secret", PASSWORDS)
def test_no_piece_of_the_password_is_printed(
    harness_class: type[Postgres | Mariadb], secret: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = harness_class(request, tmp_path)
    people_table().create(source)
    stream = source.runner().discover(source.config()).raise_on_failure().stream(PEOPLE, source.namespace)
    catalog = configured_catalog([stream])
    url = sa.make_url(source.database.url)
    user = source.login(secret)
    forbidden = pieces(secret)
    runs: dict[str, Callable[[dict[str, Any]], RunResult]] = {
        "check": source.runner().check,
        "discover": source.runner().discover,
        "read": lambda config: source.runner().read(config, catalog),
    }
    logged_in = 0
    for shape, text in shapes(url, user, secret).items():
        for command, run in runs.items():
            result = run(source.config(url=text))
            printed = result.output_text()
            leaked = sorted(p for p in forbidden if p in printed)
            assert not leaked, f"{shape} {command} printed {leaked}: {printed[-2000:]}"
            if command == "read" and result.exit_code == 0:
                assert len(result.records(PEOPLE)) == len(people_table().rows)
                logged_in += 1
            elif "@" in secret and shape.endswith("-raw"):
                # an '@' SQLAlchemy would misread: refused before anything connects
                messages = [e["message"] for e in result.errors()]
                if command == "check":
                    messages = [result.connection_status["message"]]
                assert any("percent-encode" in m for m in messages), (shape, command, messages)
    # the encoded forms log in and read (the password itself works)
    assert logged_in >= 2, f"only {logged_in} shapes could read"


def test_a_raw_at_sign_is_refused_and_a_file_url_may_hold_one(tmp_path: Path) -> None:
    for url in (
        "postgresql+psycopg://reader:ab@S3cretTail99@127.0.0.1:5432/shop",
        "postgresql+psycopg://reader:a@b:S3cretTail99@127.0.0.1:5432/shop",  # once a ValueError
        "mysql+pymysql://reader:a@b/S3cretTail99@127.0.0.1:3306/shop",
        "postgresql+psycopg://reader:pw@127.0.0.1:5432/shop?application_name=me@home",
        "postgresql+psycopg://rea/der:S3cretTail99@127.0.0.1:5432/shop",
        "postgresql+psycopg://reader@127.0.0.1:5432/shop?password=S3c/ret@Tail99",
        "postgresql+psycopg://user@server:S3cretTail99@127.0.0.1:5432/shop",  # user@server: %40
    ):
        with pytest.raises(ConfigError) as info:
            load_config(SqlUrlConfig, {"url": url})
        message = str(info.value)
        assert "percent-encode" in message, message
        assert not {p for p in pieces("S3cretTail99") if p in message}, message
    for url in (
        "postgresql+psycopg://user%40server:pw@127.0.0.1:5432/shop",
        "postgresql+psycopg://reader:ab%40S3cret@127.0.0.1:5432/shop?application_name=me%40home",
        f"sqlite:///file:{tmp_path}/a@b.db?mode=ro&uri=true",
    ):
        assert load_config(SqlUrlConfig, {"url": url}).url.get_secret_value() == url
