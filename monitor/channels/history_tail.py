"""workflow-history read by its tail: a commit re-reads the newest rows, not the whole history.

A *rebase* splits the table at ``cut``, the id of the ``NEWEST_ROWS``-th newest row, and
keeps what lies below it: the newest 500 runs there, their totals and their costed rows.
Every read after a commit reads only the *tail* (the rows from ``cut`` up, new ones
included), its totals and costs and the ids of the newest 500 among the base's and the
tail's, all in one transaction. Totals and costs rows simply add up (``build_summary``
sums the rows of a group), so the channel is exact as long as the base stands still:
rows appended in id order, recent rows changed or deleted, as the ADWs write them. (A row
committed with an id below the cut, say by a PostgreSQL transaction held open across 64
other inserts, is an old row: seen at the next rebase.) A small table
(``SMALL_TABLE_ROWS``) is all tail: read whole on every commit. A replaced database file
(``Database.generation``) is rebased at once.

The base is read again (a rebase) when the tail has grown past ``TAIL_LIMIT`` rows, and
once ``full_read_interval`` has passed since the last rebase if the table moved meanwhile
(at the next poll, commit or not): so a change to an old row, or its deletion, is seen
within that interval and a poll, as the table tokens promise. (Counting the rows to catch
deletions at once would walk an index per commit: 16 ms at 200k rows on SQLite.) A table
without an ``id`` column, and ``[queries]`` overrides, are read in full whenever the table
moved (``WholeHistory``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from monitor.channels.base import same_rows
from monitor.channels.dbreader import QueryCache
from monitor.sources.database import Database, Rows
from monitor.sources.schema import MissingColumns, Query
from monitor.sources.tables import NEWEST_ROWS, SMALL_TABLE_ROWS

TAIL_LIMIT = SMALL_TABLE_ROWS  # tail rows past which a rebase is cheaper than reading them on every commit
NEWEST = 500
TABLE = "workflow_history"
EVERYTHING = -(2 ** 62)  # the cut of a small table: all of it is tail, read on every commit
SINCE = "{since}"
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Base:
    """What a rebase kept: the rows below ``cut``."""

    cut: int
    newest: dict[Any, dict[str, Any]]  # the base's newest 500 rows by id
    totals: Rows
    costs: Rows | None  # None: no cost columns
    at: float  # monotonic time of the rebase


class HistoryParts(NamedTuple):
    """The pieces of workflow-history's default queries that a base or a tail restricts."""

    newest_first: str  # ORDER BY …
    totals_select: str  # SELECT … FROM workflow_history
    totals_groups: str  # GROUP BY …
    costs_select: str  # SELECT … FROM workflow_history WHERE …, with {since}


def split_queries(parts: HistoryParts, since: str, where: str) -> dict[str, Query]:
    """The totals and costs queries restricted by ``where`` (on ``id``): base or tail."""
    return {
        "totals": Query(TABLE, f"{parts.totals_select} WHERE {where}{parts.totals_groups}",
                        required=("status", "adw_id", "id")),
        "costs": Query(TABLE, f"{parts.costs_select.replace(SINCE, since)} AND {where}",
                       required=("start_time", "actual_cost_total", "id"), optional=True),
    }


class WholeHistory:
    """Every query re-read whenever the table moved: for ``[queries]`` overrides and tables without id."""

    def __init__(self, db: Database, queries: Mapping[str, Query]) -> None:
        self.db = db
        self.queries = dict(queries)
        self.cache = QueryCache(db, queries)

    @property
    def rows(self) -> dict[str, Rows]:
        """Each query's rows as last read."""
        return self.cache.rows

    @property
    def cost_segments(self) -> tuple[Rows, ...] | None:
        """The costs rows as one segment (None: no costs query result)."""
        costs = self.cache.rows.get("workflow_history_costs")
        return (costs,) if costs is not None else None

    async def refresh(self, since: str) -> bool:
        """Re-read if the table moved; True when read. ``since`` goes into the costs query."""
        costs = self.queries["workflow_history_costs"]
        # {since} only narrows the rows read: kept rows from an earlier {since} are a superset.
        self.cache.queries["workflow_history_costs"] = dataclasses.replace(costs, sql=costs.sql.replace(SINCE, since))
        return await self.cache.refresh()


class NotIntegerIds(MissingColumns):
    """``id`` holds something other than integers (SQLite types values, not columns): no tail to split off."""


def integer_ids(values: Iterable[Any]) -> list[int]:
    """``values`` if every one is an integer; else ``NotIntegerIds``. They go into SQL text."""
    ids = list(values)
    if any(type(value) is not int for value in ids):
        raise NotIntegerIds("workflow_history.id holds values that are not integers")
    return ids


class HistoryTail:
    """The default queries answered from a kept base and a tail read on every commit."""

    def __init__(self, db: Database, parts: HistoryParts,
                 whole: WholeHistory, full_read_interval: float, clock: Clock = time.monotonic) -> None:
        self.db, self.parts, self.whole = db, parts, whole
        self.full_read_interval, self.clock = full_read_interval, clock
        self.rows: dict[str, Rows] = {}
        # the costs rows of ``rows`` in parts: the base's list stands still between rebases
        self.cost_segments: tuple[Rows, ...] | None = None
        self.tail_limit = TAIL_LIMIT
        self.rebases = 0
        self._base: Base | None = None
        self._generation = -1  # the database's when the base was read
        self._token: Any = None
        self._behind = False  # the table moved since the rebase and only its tail was read

    async def refresh(self, since: str) -> bool:
        """Read the tail (rebasing first when due) if the table moved, or rebase if that is due; True when read."""
        token = (await self.db.table_tokens({TABLE}))[TABLE]
        # A change to an old row may move the token (PostgreSQL's counters) with no later commit
        # to wake a rebase: a table read only by its tail is rebased once due, commit or not.
        if token == self._token and self.rows and not (self._behind and self._rebase_due()):
            return False
        self._token = None  # until this read succeeds: a failed one is read again at the next poll
        try:
            rows, segments = await self._read(since)
        except MissingColumns:  # NotIntegerIds too
            # No id column, ids not integers (or no table): read it all; what is missing there is the channel's error.
            self._base, self._behind = None, False
            switched = self.rows is not self.whole.rows
            read = await self.whole.refresh(since)
            self.rows, self.cost_segments = self.whole.rows, self.whole.cost_segments
            self._token = token
            return read or switched
        self._token = token
        if rows.keys() == self.rows.keys() and all(same_rows(self.rows[name], rows[name]) for name in rows):
            return False  # a small table moves with every commit, mostly to come back unchanged
        self.rows, self.cost_segments = rows, segments
        return True

    async def _read(self, since: str) -> tuple[dict[str, Rows], tuple[Rows, ...] | None]:
        """The base (rebased when due) and a fresh tail; ``_behind`` says whether the base predates the table."""
        if self.db.generation != self._generation:
            self._base = None  # another file under the same name: nothing kept from the old one holds
        rebased = self._rebase_due()
        if rebased:
            await self._rebase(since)
        rows, fits = await self._read_tail(since)
        if not fits:  # the tail outgrew the base: rebase and read again
            rebased = True
            await self._rebase(since)
            rows, _ = await self._read_tail(since)
        self._behind = not rebased
        base = self._base
        assert base is not None  # read by _rebase when missing
        return self._compose(base, rows), self._cost_segments(base, rows)

    def _rebase_due(self) -> bool:
        base = self._base
        return base is None or self.clock() - base.at >= self.full_read_interval

    def _queries(self, where: str, since: str) -> dict[str, Query]:
        return split_queries(self.parts, since, where)

    async def _rebase(self, since: str) -> None:
        """Read the base anew below a fresh cut."""
        generation = self.db.generation
        cut = await self._cut()
        queries = self._queries(f"id < {cut}", since)
        queries["newest"] = Query(TABLE, f"SELECT * FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE id < {cut}"
                                         f" {self.parts.newest_first} LIMIT {NEWEST})", required=("adw_id", "id"))
        rows = await self.db.fetch_many(queries)  # any cut splits consistently
        newest = dict(zip(integer_ids(row["id"] for row in rows["newest"]), rows["newest"], strict=True))
        self._base, self._generation = Base(cut, newest, rows["totals"], rows.get("costs"), self.clock()), generation
        self.rebases += 1

    async def _cut(self) -> int:
        """The id of the ``NEWEST_ROWS``-th newest row; ``EVERYTHING`` for a small table."""
        queries = {"cut": Query(TABLE, f"SELECT min(id) AS cut FROM (SELECT id FROM {TABLE} ORDER BY id DESC"
                                       f" LIMIT {NEWEST_ROWS}) AS newest_ids", required=("id",)),
                   "rows": Query(TABLE, f"SELECT count(*) AS n FROM (SELECT 1 FROM {TABLE}"
                                        f" LIMIT {SMALL_TABLE_ROWS + 1}) AS capped")}
        rows = await self.db.fetch_many(queries)
        cut = rows["cut"][0]["cut"]
        if cut is None or rows["rows"][0]["n"] <= SMALL_TABLE_ROWS:
            return EVERYTHING
        return integer_ids([cut])[0]

    async def _read_tail(self, since: str) -> tuple[dict[str, Rows], bool]:
        """A fresh tail (and the order of the newest); and whether the tail is still small."""
        base = self._base
        assert base is not None
        newest_first = self.parts.newest_first
        ids = ", ".join(map(str, base.newest)) or "NULL"  # integers, checked at the rebase
        queries = self._queries(f"id >= {base.cut}", since)
        queries["newest"] = Query(TABLE, f"SELECT * FROM {TABLE} WHERE id >= {base.cut}", required=("adw_id", "id"))
        queries["order"] = Query(TABLE, f"SELECT id FROM {TABLE} WHERE id >= {base.cut} OR id IN ({ids})"
                                        f" {newest_first} LIMIT {NEWEST}", required=("id",))
        rows = await self.db.fetch_many(queries)
        return rows, len(rows["newest"]) <= self.tail_limit

    @staticmethod
    def _cost_segments(base: Base, rows: Mapping[str, Rows]) -> tuple[Rows, ...] | None:
        """The costs of ``_compose``, as the base's list and the tail's."""
        if base.costs is None or "costs" not in rows:
            return None
        return base.costs, rows["costs"]

    @staticmethod
    def _compose(base: Base, rows: Mapping[str, Rows]) -> dict[str, Rows]:
        """The three queries' rows: the newest 500 in the database's order, totals and costs of base and tail."""
        by_id = {**base.newest, **{row["id"]: row for row in rows["newest"]}}
        composed = {"workflow_history": [by_id[row["id"]] for row in rows["order"] if row["id"] in by_id],
                    "workflow_history_totals": [*base.totals, *rows["totals"]]}
        if base.costs is not None and "costs" in rows:
            composed["workflow_history_costs"] = [*base.costs, *rows["costs"]]
        return composed

