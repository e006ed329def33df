"""``SqlDestination``: spec / check / write for any SQL destination dialect."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

from dbkit.config import PROTOCOL_VERSION, connection_specification
from dbkit.db.database import Database
from dbkit.db.types import AirbyteType
from dbkit.destination.consumer import Consumer, FlushSettings
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.loader import StreamLoader
from dbkit.destination.naming import short_hash
from dbkit.destination.schema import TablePlan, plan_tables
from dbkit.protocol import ConfiguredCatalog, ConfiguredStream, MessageWriter, StreamDescriptor

ConfigT = TypeVar("ConfigT", bound=BaseModel)
MB = 1024 * 1024


class SqlDestination(Generic[ConfigT]):
    """Subclass with ``name``, ``config_model`` and ``dialect_class``; that is a whole destination."""

    kind: ClassVar[str] = "destination"
    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    dialect_class: ClassVar[type[DestinationDialect[Any]]]
    documentation_url: ClassVar[str] = "https://github.com/dbkit/dbkit#readme"
    consumer_class: ClassVar[type[Consumer]] = Consumer

    def spec(self) -> dict[str, Any]:
        return {
            "documentationUrl": self.documentation_url,
            "connectionSpecification": connection_specification(self.config_model),
            "supportsIncremental": True,
            "supported_destination_sync_modes": ["append", "overwrite", "append_dedup"],
            "protocol_version": PROTOCOL_VERSION,
        }

    def dialect(self, config: ConfigT) -> DestinationDialect[ConfigT]:
        return self.dialect_class(config)

    def settings(self, config: ConfigT) -> FlushSettings:
        return FlushSettings(
            batch_records=int(getattr(config, "batch_records", 50_000)),
            batch_bytes=int(float(getattr(config, "batch_megabytes", 64.0)) * MB),
            memory_bytes=int(float(getattr(config, "memory_megabytes", 256.0)) * MB),
            flush_seconds=float(getattr(config, "flush_seconds", 60.0)),
        )

    def loader(
        self,
        dialect: DestinationDialect[Any],
        conn: sa.Connection,
        stream: ConfiguredStream,
        plans: Mapping[StreamDescriptor, TablePlan],
        log: Callable[[str, str], None],
    ) -> StreamLoader:
        """The loader of one stream (``plans``: every stream's, for a connector whose loader
        creates more tables and must keep their names apart); a connector may return its own."""
        return StreamLoader(dialect, conn, stream, plans[stream.descriptor], log)

    def check(self, config: ConfigT) -> None:
        """Connect, and prove we may create, write and drop a table where streams will land."""
        dialect = self.dialect(config)
        namespace = dialect.default_namespace() if dialect.capabilities.namespaces else None
        name = f"_dbkit_check_{short_hash(str(id(self)))}"
        with Database(dialect) as db, db.connect() as conn, conn.begin():
            dialect.ensure_namespace(conn, namespace)
            table = sa.Table(
                name,
                sa.MetaData(),
                sa.Column("x", dialect.column_type(AirbyteType.INTEGER)),
                schema=namespace,
            )
            table.create(conn)
            conn.execute(table.insert().values(x=1))
            dialect.drop_table(conn, table)

    def write(
        self,
        config: ConfigT,
        catalog: ConfiguredCatalog,
        source: BinaryIO,
        writer: MessageWriter,
        log: Callable[[str, str], None],
    ) -> None:
        dialect = self.dialect(config)
        dialect.set_logger(log)
        plans = plan_tables(dialect, catalog)
        with Database(dialect) as db, db.connect() as conn:
            loaders: dict[Any, StreamLoader] = {}
            try:
                with db.translate_errors():
                    for stream in catalog:
                        loader = self.loader(dialect, conn, stream, plans, log)
                        loader.setup()
                        loaders[stream.descriptor] = loader
                consumer = self.consumer_class(
                    loaders,
                    writer,
                    self.settings(config),
                    log,
                    translate=db.classify,
                    background=dialect.background_loading,
                )
                consumer.run(source)
            finally:
                for loader in loaders.values():
                    loader.close()
