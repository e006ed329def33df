"""``SqlSource``: spec / check / discover / read for any SQL source dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from dbkit.config import PROTOCOL_VERSION, connection_specification
from dbkit.db.database import Database
from dbkit.protocol import AirbyteStream, ConfiguredCatalog, InputState, MessageWriter
from dbkit.source.dialect import SourceDialect
from dbkit.source.discover import catalog_streams
from dbkit.source.reader import ReadSettings, SourceReader, StreamOutcome

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class SqlSource(Generic[ConfigT]):
    """Subclass with ``name``, ``config_model`` and ``dialect_class``; that is a whole source."""

    kind: ClassVar[str] = "source"
    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
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

    def settings(self, config: ConfigT) -> ReadSettings:
        return ReadSettings(
            checkpoint_records=int(getattr(config, "checkpoint_records", 10_000)),
            checkpoint_seconds=float(getattr(config, "checkpoint_seconds", 60.0)),
            max_concurrent_streams=int(getattr(config, "max_concurrent_streams", 1)),
        )

    def check(self, config: ConfigT) -> None:
        dialect = self.dialect(config)
        with Database(dialect) as db, db.connect() as conn:
            dialect.check_readable(conn)

    def discover(self, config: ConfigT) -> list[AirbyteStream]:
        dialect = self.dialect(config)
        with Database(dialect) as db, db.connect() as conn:
            tables = dialect.list_tables(conn)
        resumable = {str(t.descriptor): dialect.is_resumable(t) for t in tables}
        return catalog_streams(tables, resumable)

    def read(
        self,
        config: ConfigT,
        catalog: ConfiguredCatalog,
        state: InputState,
        writer: MessageWriter,
        log: Callable[[str, str], None],
    ) -> list[StreamOutcome]:
        dialect = self.dialect(config)
        settings = self.settings(config)
        pool_size = settings.max_concurrent_streams * dialect.connections_per_stream() + 1
        with Database(dialect, pool_size=pool_size) as db:
            reader = SourceReader(dialect, db, catalog, state, writer, settings, log)
            return reader.run()
