"""``SqlDestination``: spec / check / write for any SQL destination dialect."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar

import sqlalchemy as sa

from dbkit.config import PROTOCOL_VERSION, DestinationSettings, connection_specification
from dbkit.db.database import Database
from dbkit.db.types import AirbyteType
from dbkit.destination.consumer import Consumer, FlushPolicy
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.loader import StreamLoader
from dbkit.destination.naming import short_hash
from dbkit.destination.schema import TablePlan, plan_tables
from dbkit.destination.write import Log, WriteContext
from dbkit.errors import DbkitError
from dbkit.protocol import ConfiguredCatalog, ConfiguredStream, MessageWriter, StreamDescriptor

ConfigT = TypeVar("ConfigT", bound=DestinationSettings)
MB = 1024 * 1024


class SqlDestination(Generic[ConfigT]):
    """Subclass with ``name``, ``config_model`` (a :class:`DestinationSettings`) and
    ``dialect_class``; that is a whole destination."""

    kind: ClassVar[str] = "destination"
    name: ClassVar[str]
    config_model: ClassVar[type[DestinationSettings]]
    dialect_class: ClassVar[type[DestinationDialect[Any]]]
    documentation_url: ClassVar[str] = "https://github.com/dbkit/dbkit#readme"
    arrow_transport: ClassVar[bool] = True
    """Takes ``--transport arrow`` (:mod:`dbkit.protocol.arrow`); ``dbkit sync`` then lets records
    travel in Arrow frames when the other end declares it too."""
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
        """Called once per command: the dialect for this config."""
        return self.dialect_class(config)

    def flush_policy(self, config: ConfigT) -> FlushPolicy:
        """Called once per write: when buffered records are loaded (from the config)."""
        return FlushPolicy(
            batch_records=config.batch_records,
            batch_bytes=int(config.batch_megabytes * MB),
            memory_bytes=int(config.memory_megabytes * MB),
            flush_seconds=config.flush_seconds,
        )

    def loader(
        self,
        dialect: DestinationDialect[Any],
        conn: sa.Connection,
        stream: ConfiguredStream,
        plans: Mapping[StreamDescriptor, TablePlan],
        write: WriteContext,
    ) -> StreamLoader:
        """Called once per stream of a write: its loader (``plans``: every stream's, for a
        connector whose loader creates more tables and must keep their names apart); a
        connector may return its own."""
        return StreamLoader(dialect, conn, stream, plans[stream.descriptor], write)

    def check(self, config: ConfigT) -> None:
        """Connect, and prove we may create, write and drop a table where streams will land."""
        dialect = self.dialect(config)
        namespace = dialect.default_namespace() if dialect.capabilities.namespaces else None
        name = f"_dbkit_check_{short_hash(str(id(self)))}"
        with Database(dialect) as db, db.connect() as conn, conn.begin():
            dialect.tables.ensure_namespace(conn, namespace)
            table = sa.Table(
                name,
                sa.MetaData(),
                sa.Column("x", dialect.types.column_type(AirbyteType.INTEGER)),
                schema=namespace,
            )
            table.create(conn)
            conn.execute(table.insert().values(x=1))
            dialect.tables.drop_table(conn, table)

    def write(
        self,
        config: ConfigT,
        catalog: ConfiguredCatalog,
        source: BinaryIO,
        writer: MessageWriter,
        log: Log,
    ) -> None:
        dialect = self.dialect(config)
        write = WriteContext(options=dialect.write_options(), log=log)
        plans = plan_tables(dialect, catalog)
        background = dialect.capabilities.background_loading
        count = (config.parallel_loads or dialect.capabilities.parallel_loads) if background else 1
        if (config.parallel_loads or 1) > count:
            log("INFO", f"{self.name} loads one batch at a time: parallel_loads is ignored")
        with Database(dialect, pool_size=count) as db, db.connect() as conn:
            lanes = Lanes(db, conn, count)
            loaders: dict[Any, StreamLoader] = {}
            try:
                with db.translate_errors():
                    for stream in catalog:
                        loader = self.loader(dialect, conn, stream, plans, write)
                        loader.lanes = lanes
                        loader.setup()
                        loaders[stream.descriptor] = loader
                consumer = self.consumer_class(
                    loaders,
                    writer,
                    self.flush_policy(config),
                    log,
                    translate=db.classify,
                    background=background,
                    lanes=count if any(loader.shared_loads for loader in loaders.values()) else 1,
                )
                consumer.run(source)
            finally:
                try:
                    for loader in loaders.values():
                        loader.close()
                finally:
                    lanes.close()


class Lanes:
    """A write's connections, one per loading lane (:mod:`dbkit.destination.executor`): lane 0
    is the write's own connection, each other one is opened the first time its lane loads (by
    that lane's thread, the only one to use it) and closed by :meth:`close`."""

    def __init__(self, db: Database, main: sa.Connection, count: int) -> None:
        self.db = db
        self._conns: list[sa.Connection | None] = [main] + [None] * (count - 1)

    def __len__(self) -> int:
        return len(self._conns)

    def __getitem__(self, lane: int) -> sa.Connection:
        conn = self._conns[lane]
        if conn is None:
            try:
                with self.db.translate_errors():
                    conn = self._conns[lane] = self.db.engine.connect()
            except DbkitError as exc:
                raise type(exc)(
                    f"{exc.message} (opening connection {lane + 1} of {len(self)} for parallel loads; "
                    "parallel_loads: 1 loads on one connection)",
                    internal=exc.internal,
                    stream=exc.stream,
                ) from exc
        return conn

    def close(self) -> None:
        """Close the lanes' own connections (not lane 0's)."""
        for k, conn in enumerate(self._conns[1:], 1):
            if conn is not None:
                self._conns[k] = None
                with contextlib.suppress(Exception):  # a connection already lost: nothing to release
                    conn.close()
