"""``SqlSource``: spec / check / discover / read for any SQL source dialect."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from dbkit.config import PROTOCOL_VERSION, SourceSettings, connection_specification
from dbkit.db.database import Database
from dbkit.protocol import AirbyteStream, ConfiguredCatalog, InputState, MessageWriter
from dbkit.source.cdc.read import CdcRead
from dbkit.source.dialect import SourceDialect
from dbkit.source.discover import CdcCatalog, catalog_streams
from dbkit.source.reader import ReadOptions, SourceReader, StreamOutcome

ConfigT = TypeVar("ConfigT", bound=SourceSettings)

_LOG = logging.getLogger("dbkit.source.check")
_LEVELS = {"ERROR": logging.ERROR, "WARN": logging.WARNING, "INFO": logging.INFO, "DEBUG": logging.DEBUG}


def _check_log(level: str, text: str) -> None:
    """A CDC reader's log during ``check``: LOG messages of the check (the entry point turns
    Python logging into LOG messages)."""
    _LOG.log(_LEVELS.get(level, logging.INFO), "%s", text)


class SqlSource(Generic[ConfigT]):
    """Subclass with ``name``, ``config_model`` and ``dialect_class``; that is a whole source."""

    kind: ClassVar[str] = "source"
    name: ClassVar[str]
    config_model: ClassVar[type[SourceSettings]]
    dialect_class: ClassVar[type[SourceDialect[Any]]]
    documentation_url: ClassVar[str] = "https://github.com/dbkit/dbkit#readme"

    def spec(self) -> dict[str, Any]:
        return {
            "documentationUrl": self.documentation_url,
            "connectionSpecification": connection_specification(self.config_model),
            "supportsIncremental": True,
            "protocol_version": PROTOCOL_VERSION,
        }

    def dialect(self, config: ConfigT) -> SourceDialect[ConfigT]:
        return self.dialect_class(config)

    def read_options(self, config: ConfigT) -> ReadOptions:
        """How ``read`` runs, from the config's :class:`~dbkit.config.SourceSettings` fields."""
        return ReadOptions.from_settings(config)

    def check(self, config: ConfigT) -> None:
        dialect = self.dialect(config)
        with Database(dialect) as db, db.connect() as conn:
            dialect.check_readable(conn)
            cdc = dialect.cdc_reader(db)
            if cdc is not None:
                cdc.log = _check_log
                try:
                    cdc.check(dialect.list_tables(conn))
                finally:
                    cdc.close()

    def discover(self, config: ConfigT) -> list[AirbyteStream]:
        dialect = self.dialect(config)
        with Database(dialect) as db, db.connect() as conn:
            tables = dialect.list_tables(conn)
            cdc = dialect.cdc_reader(db)
        resumable = {str(t.descriptor): dialect.is_resumable(t) for t in tables}
        about = CdcCatalog(cdc.position_column, cdc.meta_schema) if cdc is not None else None
        return catalog_streams(tables, resumable, about)

    def read(
        self,
        config: ConfigT,
        catalog: ConfiguredCatalog,
        state: InputState,
        writer: MessageWriter,
        log: Callable[[str, str], None],
    ) -> list[StreamOutcome]:
        dialect = self.dialect(config)
        options = self.read_options(config)
        pool_size = options.max_concurrent_streams * dialect.connections_per_stream() + 1
        with Database(dialect, pool_size=pool_size) as db:
            reader = SourceReader(dialect, db, catalog, state, writer, options, log)
            cdc = dialect.cdc_reader(db)
            if cdc is not None:
                return CdcRead(reader, cdc).run()
            return reader.run()
