"""Test helpers for dbkit and for connectors built with it (real database servers, pytest fixtures)."""
