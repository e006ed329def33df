"""Airbyte source-postgres CDC states (the shapes its connector writes) -> where dbkit resumes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dbkit import ConfigError
from dbkit.protocol import StreamDescriptor
from source_postgres.cdc.airbyte_state import airbyte_cdc_state, is_airbyte_shared_state, resume_lsn

KEY = '["db_name",{"server":"db_name"}]'
USERS = StreamDescriptor("users", "public")
ORDERS = StreamDescriptor("orders", "public")


def shared(offset: dict[str, Any]) -> dict[str, Any]:
    return {"state": {KEY: orjson.dumps(offset).decode()}}


def test_a_finished_transaction_resumes_at_its_commit() -> None:
    offset = {"transaction_id": None, "lsn_proc": 23896935, "lsn_commit": 23896935, "lsn": 23896935,
              "txId": 505, "ts_usec": 1659422332985000}  # fmt: skip
    streams = {
        USERS: {"stream_name": "users", "stream_namespace": "public", "cursor_field": []},
        ORDERS: {"state_type": "ctid", "ctid": "(3,12)", "relation_filenode": 16408, "version": 2},
    }
    state = airbyte_cdc_state(shared(offset), streams)
    assert state.resume_lsn == 23896935
    assert state.snapshots == {USERS: True, ORDERS: False}


def test_an_offset_inside_a_transaction_reads_it_again() -> None:
    lsn, reason = resume_lsn({"lsn_proc": 30729536, "lsn_commit": 30729648, "lsn": 30729536, "txId": 739})
    assert lsn == 30729647
    assert "inside" in reason


def test_the_snapshot_offset_resumes_at_its_lsn() -> None:
    assert resume_lsn({"transaction_id": None, "lsn": 181856448, "txId": 7266, "ts_usec": 1})[0] == 181856448


def test_primary_key_initial_load_is_unfinished() -> None:
    pk = {"state_type": "primary_key", "pk_name": "id", "pk_val": "41", "version": 2}
    state = airbyte_cdc_state(shared({"lsn": 5}), {USERS: pk, ORDERS: None})
    assert state.snapshots == {USERS: False, ORDERS: False}


def test_recognizes_only_airbyte_shapes() -> None:
    assert is_airbyte_shared_state(shared({"lsn": 5}))
    assert not is_airbyte_shared_state({"v": 1, "mode": "cdc", "position": {"lsn": "0/1"}})
    assert not is_airbyte_shared_state(None)


@pytest.mark.parametrize(
    ("shared_state", "expected"),
    [
        ({"state": {}}, "one Debezium offset"),
        ({"state": {KEY: "not json"}}, "not a JSON object"),
        (shared({"lsn_commit": "0/16B3748"}), "not an LSN"),
        (shared({"txId": 5}), "no LSN"),
    ],
)
def test_other_shapes_are_config_errors(shared_state: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        airbyte_cdc_state(shared_state, {})
