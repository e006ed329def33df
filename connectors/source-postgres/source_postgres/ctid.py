"""Full refresh by physical position (ctid): tables without a primary key, materialized views,
and partitioned tables without one (each leaf partition in turn).

Chunks are ranges of tuple ids (``ctid >= '(p,o)' AND ctid < '(p2,o2)'``, a TID range scan),
a few pages each, read in parallel under the read's one snapshot and emitted in order. The STATE
after a chunk says how far the read got and what it read under::

    {"v": 1, "mode": "full_refresh", "by": ["ctid"],
     "relation": {"oid": 16385, "filenode": 16385},   # the relation (leaf) being read
     "ctid_below": "(1234,0)",                        # every row below this tid was emitted
     "done": [{"oid": ..., "filenode": ...}],         # leaves (partitions) read whole
     "snapshot_xmin": 7731}                           # xmin of the snapshot they were read in

A resumed read (under a new snapshot) reads every page from ``ctid_below`` on, and, of the pages
below it and of the ``done`` leaves, the rows written since the old snapshot: those whose
``xmin`` is not older than its ``snapshot_xmin`` (``0 <= age(xmin) <= age(snapshot_xmin)``). Any row
version the old read could not see was written by a transaction at least that new — inserted,
updated (HOT or not), moved, or in a subtransaction; freezing keeps a tuple's raw xmin — so a
resume may repeat a row that changed, never lose one. A relation whose identity changed (VACUUM
FULL, CLUSTER, TRUNCATE, REFRESH MATERIALIZED VIEW rewrite it: new filenode) is read again whole,
with a warning; so is everything when the saved xmin is too old for 32-bit xid arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from dbkit.source import FullRefreshState
from source_postgres.parallel import Chunk, SnapshotGroup
from source_postgres.types import Sql, compose

Tid = tuple[int, int]
LineSql = Callable[[], Sql]
MAX_TUPLES_PER_PAGE = 291
XID_SAFE_AGE = 2**31 - 50_000_000  # beyond this, 32-bit xid comparisons are not trusted
_TID = re.compile(r"^\((\d+),(\d+)\)$")

LEAVES = sql.SQL(
    """
    SELECT c.oid::bigint, pg_relation_filenode(c.oid)::bigint, n.nspname::text, c.relname::text,
           c.relkind::text, c.reltuples::float8, c.relpages::bigint,
           (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::bigint,
           has_table_privilege(c.oid, 'SELECT')
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = {0} AND c.relkind <> 'p'
       OR c.oid IN (SELECT relid FROM pg_partition_tree({0}) WHERE isleaf AND relid <> {0})
    ORDER BY c.oid
    """
)
SNAPSHOT = sql.SQL(
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
    " pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
)


def tid_text(tid: Tid) -> str:
    return f"({tid[0]},{tid[1]})"


def parse_tid(text: Any) -> Tid:
    m = _TID.match(str(text))
    if m is None:
        raise ValueError(f"not a tuple id: {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Leaf:
    """A relation with storage: the table itself, or one leaf partition."""

    oid: int
    filenode: int
    table: Sql
    relkind: str
    reltuples: float
    relpages: int
    pages: int
    readable: bool

    @property
    def ident(self) -> dict[str, int]:
        return {"oid": self.oid, "filenode": self.filenode}


def leaves(group: SnapshotGroup, oid: int) -> list[Leaf]:
    rows = group.coordinator.execute(LEAVES.format(sql.Literal(oid))).fetchall()
    return [
        Leaf(
            oid=int(row[0]),
            filenode=int(row[1]) if row[1] is not None else 0,  # a foreign partition has no storage
            table=sql.Identifier(row[2], row[3]),
            relkind=row[4],
            reltuples=float(row[5]),
            relpages=int(row[6]),
            pages=int(row[7]),
            readable=bool(row[8]),
        )
        for row in rows
    ]


@dataclass
class Prior:
    """A ctid STATE read back: where the earlier read stopped and under which snapshot."""

    xmin: int
    done: list[dict[str, int]]
    relation: dict[str, int] | None
    below: Tid | None

    @staticmethod
    def parse(state: Mapping[str, Any]) -> Prior:
        def ident(value: Any) -> dict[str, int]:
            return {"oid": int(value["oid"]), "filenode": int(value["filenode"])}

        relation = state.get("relation")
        return Prior(
            xmin=int(state["snapshot_xmin"]),
            done=[ident(d) for d in state.get("done") or []],
            relation=ident(relation) if relation is not None else None,
            below=parse_tid(state["ctid_below"]) if relation is not None else None,
        )


@dataclass
class Pass:
    """Part of the work: a leaf's range read whole (``full``) or only its rows changed since."""

    leaf: Leaf
    start: Tid
    stop: Tid | None  # None: to the end of the leaf
    full: bool


class CtidPlan:
    """The chunks of a ctid read (see the module doc). ``rows()`` sizes each next chunk."""

    def __init__(
        self,
        group: SnapshotGroup,
        oid: int,
        line: LineSql,
        rows: Callable[[], int],
        prior: Mapping[str, Any] | None,
        warn: Callable[[str], None],
    ) -> None:
        self.group = group
        self.line = line
        self.rows = rows
        self.warn = warn
        self.leaves = leaves(group, oid)
        row = group.coordinator.execute(SNAPSHOT).fetchone()
        assert row is not None
        self.xmin, self.xmax = int(row[0]), int(row[1])
        self.prior: Prior | None = None
        if prior is not None:
            try:
                self.prior = Prior.parse(prior)
            except (KeyError, TypeError, ValueError):
                warn("the saved ctid position is malformed; reading the table whole again")
        if self.prior is not None and self.xmax - self.prior.xmin >= XID_SAFE_AGE:
            warn("the saved ctid position is too old to compare transaction ids; reading it whole again")
            self.prior = None
        # measured when a leaf's turn comes: a plan with an unreadable leaf is not used at all
        # (and counting rows of a leaf the user may not read directly would fail)
        self.density: dict[int, float] = {}

    def unreadable(self) -> list[Leaf]:
        return [leaf for leaf in self.leaves if not leaf.readable or leaf.relkind not in ("r", "m")]

    def _density(self, leaf: Leaf) -> float:
        """Rows per page: from the statistics, or counted on the first pages."""
        if leaf.reltuples > 0 and leaf.relpages > 0:
            return leaf.reltuples / leaf.relpages
        pages = min(leaf.pages, 4)
        if pages == 0:
            return float(MAX_TUPLES_PER_PAGE)
        query = compose(
            "SELECT count(*) FROM {} WHERE ctid < {}::tid", leaf.table, sql.Literal(tid_text((pages, 0)))
        )
        row = self.group.coordinator.execute(query).fetchone()
        count = int(row[0]) if row is not None else 0
        return max(1.0, count / pages)

    # ------------------------------------------------------------------ passes
    def passes(self) -> list[Pass]:
        prior = self.prior
        if prior is None:
            return [Pass(leaf, (0, 0), None, True) for leaf in self.leaves]
        changed: list[Pass] = []
        whole: list[Pass] = []
        known = {d["oid"]: d for d in prior.done}
        if prior.relation is not None:
            known[prior.relation["oid"]] = prior.relation
        for leaf in self.leaves:
            if leaf.ident in prior.done:
                changed.append(Pass(leaf, (0, 0), None, False))
            elif leaf.ident == prior.relation and prior.below is not None:
                changed.append(Pass(leaf, (0, 0), prior.below, False))
                whole.append(Pass(leaf, prior.below, None, True))
            else:
                if leaf.oid in known:
                    self.warn(
                        f"{leaf.table.as_string(None)} was rewritten since the saved position (VACUUM FULL, "
                        "CLUSTER, TRUNCATE or a refresh): reading it whole again"
                    )
                whole.append(Pass(leaf, (0, 0), None, True))
        return changed + whole

    def _ranges(self, leaf: Leaf, start: Tid, stop: Tid | None) -> Iterator[tuple[Tid, Tid | None]]:
        density = self.density.get(leaf.oid)
        if density is None:
            density = self.density[leaf.oid] = self._density(leaf)
        current = start
        while True:
            rows = max(1, self.rows())
            page, offset = current
            if density > rows:  # several chunks per page
                last_offset = min(MAX_TUPLES_PER_PAGE, int(density * 1.1) + 1)
                following = max(offset, 1) + rows
                upper: Tid = (page, following) if following <= last_offset else (page + 1, 0)
            else:
                upper = (page + max(1, int(rows / density)), 0)
            if stop is not None and upper >= stop:
                yield current, stop
                return
            if stop is None and upper[0] >= leaf.pages:
                yield current, None
                return
            yield current, upper
            current = upper

    def state(self, done: Sequence[Leaf], leaf: Leaf | None, below: Tid | None) -> FullRefreshState:
        return FullRefreshState(
            by=["ctid"],
            position={
                "relation": leaf.ident if leaf is not None else None,
                "ctid_below": tid_text(below) if below is not None else None,
                "done": [d.ident for d in done],
                "snapshot_xmin": self.xmin,
            },
        )

    def chunks(self) -> Iterator[Chunk]:
        prior = self.prior
        work = self.passes()
        # leaves the old read had finished are finished for this snapshot too once their changed
        # rows are read (all changed passes come first)
        done: list[Leaf] = [p.leaf for p in work if not p.full and p.stop is None]
        age = None
        if prior is not None:
            # a frozen tuple keeps its raw xmin: more than 2**31 transactions old, its age()
            # wraps below zero, and it is old, not changed
            age = compose("age(xmin) BETWEEN 0 AND age({}::xid)", sql.Literal(str(prior.xmin % 2**32)))
        for item in work:
            for lower, upper in self._ranges(item.leaf, item.start, item.stop):
                conditions = [compose("ctid >= {}::tid", sql.Literal(tid_text(lower)))]
                if upper is not None:
                    conditions.append(compose("ctid < {}::tid", sql.Literal(tid_text(upper))))
                if not item.full and age is not None:
                    conditions.append(age)
                query = compose(
                    "SELECT {} FROM {} WHERE {}",
                    self.line(),
                    item.leaf.table,
                    sql.SQL(" AND ").join(conditions),
                )
                if not item.full:
                    yield Chunk(query, None, full=False)
                elif upper is not None:
                    yield Chunk(query, self.state(done, item.leaf, upper))
                else:
                    done.append(item.leaf)
                    yield Chunk(query, self.state(done, None, None))
