"""Test-suite-wide plugins (dbkit's own fixtures come from its pytest11 plugin)."""

pytest_plugins = ["pytester"]
