"""The source-sql config: the SQLAlchemy URL (a secret: it holds the password), the schemas, the
read settings every SQL source has, and which tables to read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr, field_validator, model_validator

from dbkit import MASKER, SourceSettings, TableSelection, field, secret_field


class SqlUrlConfig(SourceSettings, TableSelection):
    url: SecretStr = secret_field(
        title="SQLAlchemy URL",
        description=(
            "dialect+driver://user:password@host:port/database, e.g. "
            "postgresql+psycopg://reader:secret@db.example.com:5432/shop. Kept secret: it holds the password."
        ),
        order=0,
    )
    schemas: list[str] = field(
        default_factory=list,
        title="Schemas",
        description="Schemas (MySQL: databases) to read; the URL's default schema when empty.",
        order=1,
    )

    @model_validator(mode="before")
    @classmethod
    def _mask_password(cls, data: Any) -> Any:
        """The URL's password is masked in every output from the moment the config is read
        (the whole URL is too, as a secret field), even when the config turns out invalid."""
        raw = data.get("url") if isinstance(data, Mapping) else None
        if isinstance(raw, str):
            try:
                password = sa.make_url(raw).password
            except sa.exc.ArgumentError:
                password = None
            if password:
                MASKER.add(str(password))
        return data

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        try:
            url = sa.make_url(value.get_secret_value())
        except sa.exc.ArgumentError:
            raise ValueError(
                "is not a SQLAlchemy URL (dialect+driver://user:password@host:port/database)"
            ) from None
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
