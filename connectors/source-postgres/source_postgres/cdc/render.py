"""Row renderers compiled once per Relation message: an Insert's, Update's or Delete's tuple
straight from the pgoutput bytes to the record's ``data`` JSON, with no dict and no value object
in between.

The general path (:meth:`source_postgres.cdc.changes.ChangeAssembler.feed_payload`) decodes a
tuple into a dict of JSON-ready values (the snapshot handlers' results, through the shortcuts of
:mod:`source_postgres.cdc.converters`), which ``orjson.dumps`` renders. A renderer gives the same
bytes: per column, the value's JSON text is made from its pgoutput text by the rule of its
converter, and the ``"name":value`` members are joined in column order:

- text-like types (no converter): ``orjson.dumps`` of the text (its escapes);
- integers: the text itself (PostgreSQL writes an integer as ``int`` then ``orjson`` would: an
  optional ``-`` and digits without leading zeros); numeric and floats (finite) and jsonb: the
  text itself, which is what their ``orjson.Fragment`` renders;
- boolean ``t`` / ``f``: ``true`` / ``false``;
- timestamptz, timestamp, date in their common shape (a four-digit year, the session's ``+00``
  offset, a fraction of up to six digits: checked by translating every digit to ``0``, one C
  call): rearranged as the converter's shortcut does (``T`` for the space, six fraction digits,
  ``+00:00``); the shortcut's range checks are left out, since PostgreSQL writes no month 13
  nor year 0000 (any other shape: BC, years past 9999, infinities, goes to the general path);
- bytea ``\\x...``: the hex bytes in base64; integer arrays ``{1,-2}``: ``[1,-2]``;
- any other converter: ``orjson.dumps`` of its result.

Anything else — an unchanged TOAST marker, a binary value, a tuple of another size, a
non-finite number, a boolean or timestamp of another form, a converter that raises (a value
nulled with a ``meta.changes`` entry), text that is not UTF-8 — makes the renderer raise, and the
caller takes the general path, which gives the exact value or the exact error. The tests compare
both paths' bytes on every message kind and value form.
"""

from __future__ import annotations

import binascii
import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from source_postgres.cdc import converters
from source_postgres.types.arrays import INTEGER_ARRAYS

Renderer = Callable[[bytes], bytes]
"""``payload -> data JSON``: the tuple that starts at offset 8 (after its column count, which the
caller has checked) of an Insert, an Update without an old tuple, or a Delete. Raises (anything)
where the general path must decide."""

_U32 = struct.Struct(">I")
_NON_FINITE = frozenset({b"NaN", b"Infinity", b"-Infinity", b"inf", b"-inf", b"nan"})
# a value's shape: every digit written as 0 (one C call, no regex)
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_STAMP_SHAPE = b"0000-00-00 00:00:00"
_FRACTIONS = [b"", *(b"." + b"0" * n for n in range(1, 7))]
# timestamptz / timestamp shapes -> what follows the text (its space made a T): the fraction's
# padding to six digits and the offset PostgreSQL's +00 becomes
_TSTZ_TAILS = {
    _STAMP_SHAPE + f + b"+00": (b"0" * (7 - len(f)) if f else b".000000") + b'+00:00"' for f in _FRACTIONS
}
_TS_TAILS = {_STAMP_SHAPE + f: (b"0" * (7 - len(f)) if f else b".000000") + b'"' for f in _FRACTIONS}
_DATE_SHAPE = b"0000-00-00"
# one dimension, integers as PostgreSQL writes them (no NULL, no leading zero, no -0)
_INTEGER_LIST = re.compile(rb"\{(?:(?:0|-?[1-9][0-9]*)(?:,(?:0|-?[1-9][0-9]*))*)?\}").fullmatch


class Fallback(Exception):
    """A value the renderer leaves to the general path."""


def _fail() -> Any:
    raise Fallback


# per converter: the statements that turn the column's bytes ``x`` into its JSON bytes ``v``
_TEXT = "v = DUMPS(x.decode())"
_INTEGER = "v = x"
_FRAGMENT = "v = x\nx.decode()"  # jsonb: its text (valid UTF-8, as the general path requires)
_NUMBER = "v = x if x not in NON_FINITE else FAIL()"
_BOOLEAN = "v = b'true' if x == b't' else b'false' if x == b'f' else FAIL()"
_STAMP = "v = b'\"' + x[:{cut}].replace(b' ', b'T', 1) + {tails}[x.translate(ZEROS)]"
_DATE_RULE = "v = b'\"' + x + b'\"' if x.translate(ZEROS) == DATE_SHAPE else FAIL()"
_INTEGER_ARRAY = "v = b'[' + x[1:-1] + b']' if INTEGER_LIST(x) is not None else DUMPS(F{i}(x.decode()))"
_BYTEA = "v = b'\"' + BASE64(HEX(x[2:]), newline=False) + b'\"' if x[:2] == b'\\\\x' else FAIL()"
_OTHER = "v = DUMPS(F{i}(x.decode()))"

_RULES: dict[Any, str] = {
    int: _INTEGER,
    orjson.Fragment: _FRAGMENT,
    converters.number: _NUMBER,
    converters.boolean: _BOOLEAN,
    converters.timestamptz: _STAMP.replace("{cut}", "-3").replace("{tails}", "TSTZ_TAILS"),
    converters.timestamp: _STAMP.replace("{cut}", "").replace("{tails}", "TS_TAILS"),
    converters.date: _DATE_RULE,
    converters.bytea: _BYTEA,
}


def _target(rule: str, i: int) -> str:
    """``rule`` assigning column ``i``'s own variable ``v{i}`` instead of ``v``."""
    return re.sub(r"^v = ", f"v{i} = ", rule.replace("{i}", str(i)), flags=re.MULTILINE)


def _indent(code: str, depth: int) -> str:
    return "".join("    " * depth + line + "\n" for line in code.splitlines())


def compile_renderer(
    columns: Sequence[tuple[str, converters.Converter | None, bool]], *, sparse: bool
) -> Renderer:
    """The renderer of a tuple of ``columns`` (name, converter, part of the key) in order, for a
    stream whose text is UTF-8. ``sparse``: a Delete's key-only old tuple, whose NULLs outside the
    key are left out (the general path's rule). Names and converters reach the code as
    constants, never as text."""
    scope: dict[str, Any] = {
        "U32": _U32.unpack_from,
        "DUMPS": orjson.dumps,
        "NON_FINITE": _NON_FINITE,
        "ZEROS": _ZEROS,
        "TSTZ_TAILS": _TSTZ_TAILS,
        "TS_TAILS": _TS_TAILS,
        "DATE_SHAPE": _DATE_SHAPE,
        "INTEGER_LIST": _INTEGER_LIST,
        "HEX": binascii.a2b_hex,
        "BASE64": binascii.b2a_base64,
        "FAIL": _fail,
    }
    lines = [
        "def render(buf):",
        "    p = 8",
    ]
    if sparse:
        lines.append("    out = []")
    names = []
    for i, (name, convert, is_key) in enumerate(columns):
        scope[f"K{i}"] = (b"{" if i == 0 else b",") + orjson.dumps(name) + b":"
        scope[f"F{i}"] = convert
        if convert is None:
            rule = _TEXT
        elif convert in INTEGER_ARRAYS:
            rule = _INTEGER_ARRAY
        else:
            rule = _RULES.get(convert, _OTHER)
        lines += [
            "    if buf[p] == 116:",
            "        s = p + 5",
            "        p = s + U32(buf, p + 1)[0]",
            "        x = buf[s:p]",
            _indent(rule.replace("{i}", str(i)) if sparse else _target(rule, i), 2).rstrip("\n"),
        ]
        if sparse:
            lines += [f"        out.append(K{i})", "        out.append(v)"]
        lines += ["    elif buf[p] == 110:", "        p += 1"]
        if not sparse:
            lines.append(f"        v{i} = b'null'")
        elif is_key:
            lines += [f"        out.append(K{i})", "        out.append(b'null')"]
        lines += ["    else:", "        FAIL()"]
        names.append(i)
    lines += ["    if p != len(buf):", "        FAIL()"]
    if sparse:
        lines += [
            "    if not out:",
            "        return b'{}'",
            "    if out[0][:1] != b'{':",  # the first column was left out
            "        out[0] = b'{' + out[0][1:]",
            "    out.append(b'}')",
            "    return b''.join(out)",
        ]
    elif columns:
        parts = ", ".join(f"K{i}, v{i}" for i in names)
        lines.append(f"    return b''.join(({parts}, b'}}'))")
    else:
        lines.append("    return b'{}'")
    code = compile("\n".join(lines) + "\n", "<pgoutput renderer>", "exec")
    exec(code, scope)  # noqa: S102 - generated from the constants above; names are in scope
    render: Renderer = scope["render"]
    return render
