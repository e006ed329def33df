"""A write that stops on an error while its stdin is still open (the normal pipeline case: the
source is still sending) exits 1 with its TRACE, having committed and echoed what came before the
bad line. It used to abort at interpreter exit (``Fatal Python error: _enter_buffered_busy``,
exit 134), because the reader thread held the buffered stdin's lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CATALOG = {
    "streams": [
        {
            "stream": {
                "name": "items",
                "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "supported_sync_modes": ["full_refresh"],
            },
            "sync_mode": "full_refresh",
            "destination_sync_mode": "append",
        }
    ]
}
LINES = [
    {"type": "RECORD", "record": {"stream": "items", "data": {"id": 1}, "emitted_at": 1}},
    {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "items"}, "stream_state": {"n": 1}},
        },
    },
]


@pytest.mark.parametrize("attempt", range(3))
def test_an_error_with_stdin_still_open_exits_1_after_committing(tmp_path: Path, attempt: int) -> None:
    script = Path(sys.executable).parent / "destination-sqlite"
    assert script.exists(), "destination-sqlite is not installed (scripts/test.sh installs every connector)"
    (tmp_path / "config.json").write_text(json.dumps({"path": str(tmp_path / "w.db")}))
    (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen(
            [script, "write", "--config", "config.json", "--catalog", "catalog.json"],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in LINES) + b"not json\n")
            proc.stdin.flush()
            out = proc.stdout.read()  # stdin stays open: the process must stop by itself
            code = proc.wait(timeout=60)
        finally:
            proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
    err = (tmp_path / "stderr.txt").read_bytes()
    assert code == 1, f"exit {code}: {err.decode(errors='replace')[-500:]}"
    messages = [json.loads(line) for line in out.splitlines() if line.strip()]
    states = [m for m in messages if m["type"] == "STATE"]
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert [s["state"]["stream"]["stream_state"] for s in states] == [{"n": 1}]
    assert "line 3" in errors[0]["message"]
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)
