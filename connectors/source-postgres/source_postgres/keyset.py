"""Full refresh of a table with a primary key: chunks of key ranges, read in parallel.

The coordinator finds each chunk's upper key inside the snapshot (``ORDER BY key OFFSET n-1
LIMIT 1``, an index-only walk of ``n`` entries); workers read ``key > lower AND key <= upper``.
The STATE after a chunk is the keyset position of the generic full refresh
(``{"by": [key columns], "after": [upper key as text]}``): a resumed read continues strictly
after it, so it repeats nothing and, within the rows that exist when it resumes, misses nothing.
Key values travel as their text (``col::text``) and come back as ``CAST(text AS <column type>)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from psycopg import sql

from dbkit.source import ColumnInfo, FullRefreshState
from source_postgres.parallel import Chunk, SnapshotGroup
from source_postgres.types import Sql, compose

LineSql = Callable[[], Sql]


def key_after(columns: Sequence[ColumnInfo], values: Sequence[str], strict: bool = True) -> Sql:
    """``(k1, k2) > (CAST(v1 AS t1), CAST(v2 AS t2))`` (``<=`` when not strict)."""
    left = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    right = sql.SQL(", ").join(
        compose("CAST({} AS {})", sql.Literal(v), sql.SQL(c.type_name))
        for c, v in zip(columns, values, strict=True)
    )
    op = sql.SQL(">" if strict else "<=")
    if len(columns) == 1:
        return compose("{} {} {}", left, op, right)
    return compose("({}) {} ({})", left, op, right)


class KeysetPlan:
    """Chunks of about ``rows`` rows in key order, from ``after`` (a STATE's key) or the start."""

    def __init__(
        self,
        group: SnapshotGroup,
        table: Sql,
        key: Sequence[ColumnInfo],
        line: LineSql,
        rows: Callable[[], int],
        after: Sequence[str] | None,
    ) -> None:
        self.group = group
        self.table = table
        self.key = list(key)
        self.line = line
        self.rows = rows
        self.after = list(after) if after is not None else None

    def state(self, after: Sequence[str]) -> FullRefreshState:
        return FullRefreshState(by=[c.name for c in self.key], after=list(after))

    def _upper(self, after: Sequence[str] | None, n: int) -> list[str] | None:
        where = compose("WHERE {}", key_after(self.key, after)) if after is not None else sql.SQL("")
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.key)
        # aliased: ORDER BY "k" would otherwise sort by the output column "k" (its text)
        texts = sql.SQL(", ").join(
            compose("{}::text AS {}", sql.Identifier(c.name), sql.Identifier(f"_dbkit_key{i}"))
            for i, c in enumerate(self.key)
        )
        query = compose(
            "SELECT {} FROM {} {} ORDER BY {} OFFSET {} LIMIT 1",
            texts,
            self.table,
            where,
            names,
            sql.Literal(max(0, n - 1)),
        )
        row = self.group.coordinator.execute(query).fetchone()
        return None if row is None else [str(v) for v in row]

    def chunks(self) -> Iterator[Chunk]:
        after = self.after
        while True:
            upper = self._upper(after, self.rows())
            conditions = []
            if after is not None:
                conditions.append(key_after(self.key, after))
            if upper is not None:
                conditions.append(key_after(self.key, upper, strict=False))
            where = compose("WHERE {}", sql.SQL(" AND ").join(conditions)) if conditions else sql.SQL("")
            query = compose("SELECT {} FROM {} {}", self.line(), self.table, where)
            # the last chunk needs no state of its own: the read's final state follows it
            yield Chunk(query, self.state(upper) if upper is not None else None)
            if upper is None:
                return
            after = upper
