"""The destination framework: consumer, typed batches, loaders, merge SQL, naming, schema."""

from dbkit.destination.connector import SqlDestination
from dbkit.destination.consumer import Consumer, FlushSettings
from dbkit.destination.dialect import DestinationDialect
from dbkit.destination.loader import StreamLoader
from dbkit.destination.naming import NamingRules

__all__ = ["Consumer", "DestinationDialect", "FlushSettings", "NamingRules", "SqlDestination", "StreamLoader"]
