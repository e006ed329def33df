"""Any database SQLAlchemy reaches, from one URL: dbkit's generic SQL dialect
(:class:`dbkit.source.GenericSqlDialect`: reflection, the generic type handlers, exact state
values, classified driver errors, exact JSON) given the config's URL and schemas."""

from __future__ import annotations

import sqlalchemy as sa

from dbkit.source import GenericSqlDialect
from source_sql.config import SqlUrlConfig


class SqlUrlDialect(GenericSqlDialect[SqlUrlConfig]):
    name = "sql"

    def sqlalchemy_url(self) -> sa.URL:
        return sa.make_url(self.config.url.get_secret_value())

    def configured_schemas(self) -> list[str]:
        return list(self.config.schemas)
