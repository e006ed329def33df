"""A deliberately broken destination: it echoes each STATE as soon as it arrives."""

from __future__ import annotations

import sys
from typing import Any

from dbkit.destination import Consumer
from dbkit.entrypoint import launch
from dbkit.protocol import messages as msg
from destination_sqlite import SqliteDestination


class EarlyConsumer(Consumer):
    def _state(self, state: Any) -> None:
        self.writer.write(msg.echo_state(state, 0))  # the bug: nothing is committed yet
        self.writer.flush()


class EchoesEarlyDestination(SqliteDestination):
    consumer_class = EarlyConsumer


if __name__ == "__main__":
    sys.exit(launch(EchoesEarlyDestination()))
