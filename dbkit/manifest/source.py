"""The source a manifest describes: dbkit's generic SQL dialect, configured by the manifest.

:class:`ManifestDialect` is a :class:`~dbkit.source.GenericSqlDialect` (reflection, the generic
type handlers, exact state values, classified errors, custom SQL streams) whose URL, schemas,
table patterns, type overrides, custom SQL streams and error rules come from the manifest;
:class:`ManifestSource` is an :class:`~dbkit.source.SqlSource` with the manifest's config model.
:func:`dbkit.manifest.load_manifest` makes one subclass of each per manifest.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import ClassVar

import sqlalchemy as sa

from dbkit.db.mysql import mysql_code
from dbkit.errors import ConfigError, DbkitError, TransientError
from dbkit.manifest.config_model import ManifestSourceConfig
from dbkit.manifest.model import ErrorRule, Manifest
from dbkit.source.connector import SqlSource
from dbkit.source.generic import GenericSqlDialect, reason
from dbkit.source.queries import QueryStream


class ManifestDialect(GenericSqlDialect[ManifestSourceConfig]):
    """The generic SQL dialect, configured by :attr:`manifest` (set on each manifest's subclass)."""

    manifest: ClassVar[Manifest]

    # ------------------------------------------------------------------ connection
    def sqlalchemy_url(self) -> sa.URL:
        connection = self.manifest.connection
        parts: dict[str, str] = {}
        for key, template in connection.parts.items():
            text = template.render(self.config)
            if text is not None:
                parts[key] = text
        port: int | None = None
        if "port" in parts:
            try:
                port = int(parts["port"])
            except ValueError:
                raise ConfigError(
                    f"the port ({', '.join(connection.parts['port'].fields) or 'connection.port'}) "
                    "must be a number"
                ) from None
        query = {}
        for key, template in connection.query.items():
            text = template.render(self.config)
            if text is not None:
                query[key] = text
        return sa.URL.create(
            connection.driver,
            username=parts.get("username"),
            password=parts.get("password"),
            host=parts.get("host"),
            port=port,
            database=parts.get("database"),
            query=query,
        )

    def classify_error(self, exc: BaseException) -> DbkitError | None:
        for rule in self.manifest.errors:
            if _matches(rule, exc):
                text = reason(exc)
                message = f"{rule.hint}: {text}" if rule.hint else f"{text} (as {rule.where} says)"
                kind = ConfigError if rule.failure_type == "config_error" else TransientError
                return kind(message, internal=repr(exc))
        return super().classify_error(exc)

    # ------------------------------------------------------------------ discovery
    def configured_schemas(self) -> list[str]:
        out: list[str] = []
        for template in self.manifest.schemas:
            if template.single_field is not None:
                value = template.value(self.config)
                if isinstance(value, list):
                    out.extend(str(v) for v in value if v)
                    continue
            text = template.render(self.config)
            if text:
                out.append(text)
        return out

    def reads_tables(self) -> bool:
        return self.manifest.tables

    def include(self, namespace: str | None, name: str) -> bool:
        full = f"{namespace}.{name}" if namespace else name

        def hit(patterns: Sequence[str]) -> bool:
            return any(fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(name, p) for p in patterns)

        if self.manifest.include and not hit(self.manifest.include):
            return False
        if hit(self.manifest.exclude):
            return False
        return super().include(namespace, name)

    def query_streams(self) -> Sequence[QueryStream]:
        return self.manifest.streams


def _matches(rule: ErrorRule, exc: BaseException) -> bool:
    if rule.sqlstate is not None:
        sqlstate = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
        if not sqlstate.startswith(rule.sqlstate):
            return False
    if rule.code is not None and mysql_code(exc) != rule.code:
        return False
    if rule.message is not None and not rule.message.search(reason(exc)):
        return False
    if rule.classifier is not None:
        try:
            return bool(rule.classifier(exc))
        except Exception:
            return False
    return True


class ManifestSource(SqlSource[ManifestSourceConfig]):
    """A manifest's source; :func:`dbkit.manifest.load_manifest` makes one subclass per manifest."""

    manifest: ClassVar[Manifest]
