"""Test helpers for dbkit and for connectors built with it (real database servers, pytest fixtures)."""

from dbkit.testing.runner import ConnectorRunner, RunResult, configured_catalog

__all__ = ["ConnectorRunner", "RunResult", "configured_catalog"]
