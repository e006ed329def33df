"""Declarative sources: a YAML manifest describes a database source, dbkit runs it.

``load_manifest(path)`` returns the source connector class a manifest describes (on dbkit's
generic SQL dialect, :class:`dbkit.source.GenericSqlDialect`); ``dbkit run MANIFEST spec | check
| discover | read`` speaks the protocol with it, and ``dbkit sync --source MANIFEST`` syncs it.
The format is the JSON schema :func:`manifest_schema` (``dbkit/manifest/schema.json``),
described in ``docs/manifest.md``.
"""

from dbkit.manifest.document import ManifestError
from dbkit.manifest.loader import load_manifest, manifest_schema
from dbkit.manifest.source import ManifestDialect, ManifestSource

__all__ = ["ManifestDialect", "ManifestError", "ManifestSource", "load_manifest", "manifest_schema"]
