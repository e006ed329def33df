"""Identifier normalization: from stream and field names to table and column names.

Names are always quoted in generated SQL, so reserved words and mixed case are safe; the rules
only make names valid and readable: characters other than letters, digits and ``_`` become
``_``, a leading digit (or, for tables, a prefix the database reserves, such as SQLite's
``sqlite_``) gets a ``_`` prefix, and a name longer than the database allows (in
UTF-8 bytes) is cut and given a short hash of the *original* name. When two source names
normalize to the same name (or to names equal but for case, where the database folds case),
each one that is not already exactly that name gets its own hash suffix. The outcome depends
only on the set of names, never on their order, so a column keeps its name from sync to sync.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from dbkit.db.dialect import Capabilities

_INVALID = re.compile(r"[^\w]", re.UNICODE)
HASH_LENGTH = 8


@dataclass(frozen=True)
class NamingRules:
    """The naming view of :class:`~dbkit.db.dialect.Capabilities` (:meth:`of`), which the
    functions of this module take."""

    max_bytes: int = Capabilities.max_identifier_bytes
    case: str = "preserve"  # "preserve", "lower" or "upper"
    case_insensitive: bool = False
    reserved_table_prefixes: tuple[str, ...] = ()
    """Table names the database keeps for itself (e.g. SQLite's ``sqlite_``)."""

    def key(self, name: str) -> str:
        """What the database considers the same name."""
        return name.casefold() if self.case_insensitive else name

    @classmethod
    def of(cls, capabilities: Capabilities) -> NamingRules:
        """The naming rules a database's capabilities imply (names, their length and case)."""
        return cls(
            max_bytes=capabilities.max_identifier_bytes,
            case=capabilities.identifier_case,
            case_insensitive=capabilities.identifier_case_insensitive,
            reserved_table_prefixes=capabilities.reserved_table_prefixes,
        )


def short_hash(text: str) -> str:
    return hashlib.blake2s(text.encode("utf-8"), digest_size=4).hexdigest()


def _cut_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def normalize(name: str, rules: NamingRules, table: bool = False) -> str:
    """The database name for one source name (of a table when ``table``), ignoring collisions."""
    text = unicodedata.normalize("NFC", name)
    text = _INVALID.sub("_", text)
    if rules.case == "lower":
        text = text.lower()
    elif rules.case == "upper":
        text = text.upper()
    if not text:
        text = "_"
    if text[0].isdigit():
        text = "_" + text
    if table and any(rules.key(text).startswith(rules.key(p)) for p in rules.reserved_table_prefixes):
        text = "_" + text
    if len(text.encode("utf-8")) > rules.max_bytes:
        text = with_hash(text, name, rules)
    return text


def with_hash(text: str, original: str, rules: NamingRules, salt: str = "") -> str:
    """``text`` cut to fit, plus ``_`` and a hash of the original name (and salt)."""
    suffix = "_" + short_hash(original + salt)
    return _cut_bytes(text, rules.max_bytes - len(suffix)) + suffix


def allocate(
    names: Iterable[str], rules: NamingRules, taken: Iterable[str] = (), table: bool = False
) -> dict[str, str]:
    """Map each source name to a distinct database name (see module doc for the rule).

    ``taken`` are names the toolkit itself uses (``_airbyte_raw_id``, ...) that no source name
    may get: a source field with such a name is renamed with a hash suffix.
    """
    sources = list(dict.fromkeys(names))
    taken_keys = {rules.key(t) for t in taken}
    wanted = {s: normalize(s, rules, table) for s in sources}
    groups: dict[str, list[str]] = defaultdict(list)
    for source, target in wanted.items():
        groups[rules.key(target)].append(source)
    out: dict[str, str] = {}
    for key, members in groups.items():
        clash = len(members) > 1 or key in taken_keys
        owners = sorted((s for s in members if s == wanted[s]), key=lambda s: (s != s.lower(), s))
        owner = owners[0] if owners and key not in taken_keys else None
        for source in members:
            target = wanted[source]
            if clash and source != owner:
                target = with_hash(target, source, rules)
            out[source] = target
    # a hashed name could (very rarely) equal another name: salt until every name is unique;
    # names that kept their normalized form go first, then the rest in a fixed order
    seen: dict[str, str] = {}
    for source in sorted(sources, key=lambda s: (out[s] != wanted[s], s)):
        target = out[source]
        salt = 0
        while rules.key(target) in seen or rules.key(target) in taken_keys:
            salt += 1
            target = with_hash(wanted[source], source, rules, salt=str(salt))
        seen[rules.key(target)] = source
        out[source] = target
    return out
