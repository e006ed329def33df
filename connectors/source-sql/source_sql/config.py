"""The source-sql config: the SQLAlchemy URL (a secret: it holds the password), the schemas, the
read settings every SQL source has, and which tables to read."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import SecretStr, field_validator

from dbkit import ConfigError, SourceSettings, TableSelection, field, parse_url, secret_field


class SqlUrlConfig(SourceSettings, TableSelection):
    url: SecretStr = secret_field(
        title="SQLAlchemy URL",
        description=(
            "dialect+driver://user:password@host:port/database, e.g. "
            "postgresql+psycopg://reader:secret@db.example.com:5432/shop. Kept secret: it holds the "
            "password. Percent-encode an '@' in the user name or password (%40), or anywhere after it, "
            "and a '%' (%25)."
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
        try:  # SQLAlchemy's reading, refusing an '@' it would misread (the shared rule)
            url = parse_url(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(exc.message) from None
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
