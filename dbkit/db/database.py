"""Engine and connection factory over SQLAlchemy 2, with streaming reads and error classification."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from dbkit.db.dialect import Dialect
from dbkit.errors import DbkitError, SystemFailure, TransientError


class Database:
    """Owns one SQLAlchemy engine for a dialect; hands out connections.

    ``connect()`` turns driver errors into dbkit errors through the dialect's classifier.
    """

    def __init__(self, dialect: Dialect[Any], pool_size: int = 1) -> None:
        self.dialect = dialect
        with self.translate_errors():
            dialect.open()
        try:
            options: dict[str, Any] = {"pool_pre_ping": False}
            options.update(dialect.engine_options())
            if pool_size > 1 and "poolclass" not in options:
                options.setdefault("pool_size", pool_size)
                options.setdefault("max_overflow", 0)
            self.engine = sa.create_engine(dialect.sqlalchemy_url(), **options)
        except BaseException:
            dialect.close()
            raise
        event.listen(self.engine, "connect", self._on_connect)
        dialect.engine_events(self.engine)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        self.dialect.on_connect(dbapi_connection)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self.translate_errors(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        with self.translate_errors(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        try:
            yield
        except DbkitError:
            raise
        except Exception as exc:
            raise self.classify(exc) from exc

    def classify(self, exc: BaseException) -> DbkitError:
        original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
        classified = self.dialect.classify_error(original)
        if classified is not None:
            return classified
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return TransientError(
                f"lost the connection to {self.dialect.describe_target()}: {original}",
                internal=repr(original),
            )
        return SystemFailure(f"{type(original).__name__}: {original}", internal=repr(exc))

    def dispose(self) -> None:
        try:
            self.engine.dispose()
        finally:
            self.dialect.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
