"""Test helpers for dbkit and for connectors built with it (real database servers, pytest fixtures)."""

from dbkit.testing.runner import RunResult, to_line

__all__ = ["RunResult", "to_line"]
