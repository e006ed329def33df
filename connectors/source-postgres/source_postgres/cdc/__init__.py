"""PostgreSQL change data capture, the low-level layer: the replication connection (:mod:`.wire`),
the pgoutput decoder (:mod:`.pgoutput`) and the assembly of decoded messages into row changes
whose values the snapshot path's type handlers convert (:mod:`.changes`).

A read: open a :class:`ReplicationConnection`, ``start`` a :class:`ReplicationStream` on a slot
and publication, and for every :class:`XLogData` it returns, ``decoder.decode(x.payload,
x.data_start)`` then ``assembler.feed(message, x.data_start)``; acknowledge (``stream.acknowledge``)
only positions the destination has made durable. The fast way to the same events: take batches
with ``stream.read_many()`` and call ``assembler.feed_payload(decoder, x.payload, x.data_start)``
for each (no message objects for Begin, Commit, Insert, Update and Delete; column values through
the shortcuts of :mod:`.converters`, identical to the snapshot handlers). The read path goes one
step further for rows: ``assembler.render_row`` gives an Insert's, Update's or Delete's row as its
record data JSON straight from the bytes, through a renderer compiled per Relation message
(:mod:`.render`; the same bytes ``orjson.dumps`` makes of the RowChange's data).
"""

from __future__ import annotations

from source_postgres.cdc.changes import (
    ChangeAssembler,
    ChangeEvent,
    RelationChanged,
    RowChange,
    TableShape,
    TablesTruncated,
    TransactionCommitted,
    TypeSource,
    toast_identity_problems,
)
from source_postgres.cdc.lsn import INVALID_LSN, format_lsn, parse_lsn
from source_postgres.cdc.pgoutput import UNCHANGED_TOAST, PgOutputDecoder, PgOutputError, PgOutputMessage
from source_postgres.cdc.toast import ToastFiller
from source_postgres.cdc.wire import (
    ReplicationConnection,
    ReplicationStream,
    SlotCreated,
    SystemIdentity,
    XLogData,
    walsender_options,
)

__all__ = [
    "INVALID_LSN",
    "UNCHANGED_TOAST",
    "ChangeAssembler",
    "ChangeEvent",
    "PgOutputDecoder",
    "PgOutputError",
    "PgOutputMessage",
    "RelationChanged",
    "ReplicationConnection",
    "ReplicationStream",
    "RowChange",
    "SlotCreated",
    "SystemIdentity",
    "TableShape",
    "TablesTruncated",
    "ToastFiller",
    "TransactionCommitted",
    "TypeSource",
    "XLogData",
    "format_lsn",
    "parse_lsn",
    "toast_identity_problems",
    "walsender_options",
]
