"""dbkit: a toolkit for Airbyte-protocol database connectors.

(Minimal version from the DEST helper's branch: the names its connectors import; the PKG
helper's file is the full public surface.)
"""

from dbkit.config import DestinationSettings, field, load_config
from dbkit.entrypoint import main_for
from dbkit.errors import ConfigError, DbkitError, SystemFailure, TransientError

__all__ = [
    "ConfigError",
    "DbkitError",
    "DestinationSettings",
    "SystemFailure",
    "TransientError",
    "field",
    "load_config",
    "main_for",
]
