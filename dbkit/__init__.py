"""dbkit: Airbyte-protocol database connectors on SQLAlchemy. The names a connector author uses."""

from dbkit.config import MASKER, SourceSettings, TableSelection, field, load_config, secret_field
from dbkit.entrypoint import main_for
from dbkit.errors import ConfigError, DbkitError, SystemFailure, TransientError

__all__ = [
    "MASKER",
    "ConfigError",
    "DbkitError",
    "SourceSettings",
    "SystemFailure",
    "TableSelection",
    "TransientError",
    "field",
    "load_config",
    "main_for",
    "secret_field",
]
