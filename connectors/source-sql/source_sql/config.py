"""The source-sql config: the SQLAlchemy URL (a secret: it holds the password), the schemas, the
read settings every SQL source has, and which tables to read."""

from __future__ import annotations

import re

import sqlalchemy as sa
from pydantic import SecretStr, field_validator

from dbkit import SourceSettings, TableSelection, field, secret_field

# SQLAlchemy's own reading of the user-info: the user name runs to a ':' or '/', the password
# to the first '@' after it (sqlalchemy.engine.url._parse_url)
_USERINFO = re.compile(r"[^:/]*(?::[^@]*)?@")
_ENCODE_AT = (
    "percent-encode the special characters of the user name and password "
    "(@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25), and every '@' "
    "in the database name or the parameters (%40)"
)


def _stray_at(text: str, url: sa.URL) -> bool:
    """Whether the URL holds an ``@`` other than the one SQLAlchemy reads as the end of
    ``user:password``, or more than one ``@`` (an ``@`` in a user name too must be encoded).

    Such an ``@`` is most often part of a password written unencoded: SQLAlchemy then takes the
    rest of the password for the host, port, database or a parameter (and prints it in errors),
    or takes the host and database for the password. A URL without user-info and host (a file:
    ``sqlite:///a@b.db``) may hold any.
    """
    rest = text.partition("://")[2]
    userinfo = _USERINFO.match(rest)
    if userinfo is None and url.host is None:
        return False
    ats = rest.count("@")
    return ats > 1 or (ats == 1 and (userinfo is None or "@" in rest[userinfo.end() :]))


class SqlUrlConfig(SourceSettings, TableSelection):
    url: SecretStr = secret_field(
        title="SQLAlchemy URL",
        description=(
            "dialect+driver://user:password@host:port/database, e.g. "
            "postgresql+psycopg://reader:secret@db.example.com:5432/shop. Kept secret: it holds the "
            "password. Percent-encode an '@' in the user name or password (%40), or anywhere after it."
        ),
        order=0,
    )
    schemas: list[str] = field(
        default_factory=list,
        title="Schemas",
        description="Schemas (MySQL: databases) to read; the URL's default schema when empty.",
        order=1,
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        try:
            url = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ValueError(
                "is not a SQLAlchemy URL (dialect+driver://user:password@host:port/database)"
                + (f"; {_ENCODE_AT}" if text.count("@") > 1 else "")
            ) from None
        if _stray_at(text, url):
            raise ValueError(f"holds an '@' besides the one that ends user:password; {_ENCODE_AT}")
        parts = [url.username, url.password, url.host, url.database, *url.query.keys()]
        parts += [v for value in url.query.values() for v in ((value,) if isinstance(value, str) else value)]
        if any(isinstance(part, str) and "\x00" in part for part in parts):
            raise ValueError(
                "holds a NUL character (%00) in its user, password, host, database or parameters, "
                "which no connection setting can hold: remove it"
            )
        try:
            url.get_dialect()
        except sa.exc.NoSuchModuleError:
            raise ValueError(
                f"names the SQLAlchemy dialect {url.drivername!r}, which is not installed"
            ) from None
        return value
