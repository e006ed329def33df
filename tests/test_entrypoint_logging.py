"""Log records of concurrent in-process launches (dbkit sync --in-process) reach their own output."""

from __future__ import annotations

import logging
import threading
from io import BytesIO
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel

from dbkit.config import ConnectorConfig
from dbkit.entrypoint import launch


class _Config(ConnectorConfig):
    pass


class _Chatty:
    """A connector whose check logs its own name, waiting for the other launch to be running."""

    kind: ClassVar[str] = "source"
    config_model: ClassVar[type[BaseModel]] = _Config
    both_running = threading.Barrier(2)

    def __init__(self, name: str) -> None:
        self.name = name

    def spec(self) -> dict[str, Any]:
        return {"connectionSpecification": {"type": "object"}}

    def check(self, config: Any) -> None:
        self.both_running.wait(timeout=10)
        logging.getLogger("chatty").warning("hello from %s", self.name)
        self.both_running.wait(timeout=10)


def test_concurrent_launches_keep_their_logs_apart(tmp_path: Any) -> None:
    config = tmp_path / "c.json"
    config.write_bytes(b"{}")
    outputs = {"one": BytesIO(), "two": BytesIO()}
    codes: dict[str, int] = {}

    def run(name: str) -> None:
        codes[name] = launch(_Chatty(name), ["check", "--config", str(config)], stdout=outputs[name])

    threads = [threading.Thread(target=run, args=(n,)) for n in outputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert codes == {"one": 0, "two": 0}
    for name, out in outputs.items():
        logs = [
            orjson.loads(line)["log"]["message"] for line in out.getvalue().splitlines() if b'"LOG"' in line
        ]
        assert logs == [f"chatty: hello from {name}"], (name, logs)
    root = logging.getLogger()
    assert not [h for h in root.handlers if type(h).__name__ == "_LogRouter"], (
        "the router left with the launches"
    )
