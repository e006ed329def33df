"""Errors raised while parsing protocol inputs (config, catalog, state, message streams)."""

from __future__ import annotations


class ProtocolInputError(ValueError):
    """An input document does not have the shape the Airbyte protocol requires.

    ``where`` names the document and the field path (``catalog: streams[2].sync_mode``) so that a
    person can find the mistake; the message never repeats the offending value, which could be a
    secret.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
