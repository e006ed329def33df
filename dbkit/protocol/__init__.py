"""The Airbyte protocol: message shapes, strict input parsing, fast emission, stream validation.

This package imports nothing else of dbkit's.
"""

from dbkit.protocol.arrow import (
    COLUMN_TYPES,
    COLUMNS,
    FRAME_PREFIX,
    NATIVE,
    NATIVE_TYPES,
    SEPARATOR,
    TOKEN_TYPES,
    TYPED_KINDS,
    FrameError,
    FrameHeader,
    arrow_transport,
    batch_from_lines,
    canonical_strings,
    check_columns,
    decode_body,
    encode_frame,
    frame_kind,
    frame_schema,
    parse_header,
)
from dbkit.protocol.catalog import (
    AirbyteStream,
    ConfiguredCatalog,
    ConfiguredStream,
    DestinationSyncMode,
    StreamDescriptor,
    SyncMode,
    parse_airbyte_stream,
    parse_configured_catalog,
)
from dbkit.protocol.errors import ProtocolInputError
from dbkit.protocol.jsonio import loads_exact
from dbkit.protocol.messages import change, now_ms, record_envelope, record_suffix_with_changes
from dbkit.protocol.output import MessageWriter, OutputClosedError
from dbkit.protocol.state import InputState, parse_state
from dbkit.protocol.validate import Problem, StreamValidator, record_validator, validate_lines

__all__ = [
    "COLUMNS",
    "COLUMN_TYPES",
    "FRAME_PREFIX",
    "NATIVE",
    "NATIVE_TYPES",
    "SEPARATOR",
    "TOKEN_TYPES",
    "TYPED_KINDS",
    "AirbyteStream",
    "ConfiguredCatalog",
    "ConfiguredStream",
    "DestinationSyncMode",
    "FrameError",
    "FrameHeader",
    "InputState",
    "MessageWriter",
    "OutputClosedError",
    "Problem",
    "ProtocolInputError",
    "StreamDescriptor",
    "StreamValidator",
    "SyncMode",
    "arrow_transport",
    "batch_from_lines",
    "canonical_strings",
    "change",
    "check_columns",
    "decode_body",
    "encode_frame",
    "frame_kind",
    "frame_schema",
    "loads_exact",
    "now_ms",
    "parse_airbyte_stream",
    "parse_configured_catalog",
    "parse_header",
    "parse_state",
    "record_envelope",
    "record_suffix_with_changes",
    "record_validator",
    "validate_lines",
]
