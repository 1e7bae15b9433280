"""Channel readers over database queries that read only what moved.

``QueryCache`` keeps each query's rows with the token of its table (and, for a keyed
query, the keys) they were read at, and re-reads only the queries whose table moved
since: a commit to one table costs the channels that read other tables one token check.
Queries re-read together share one read transaction; rows kept from earlier reads are
each a committed state of their own table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence

from monitor.channels.base import ChannelData, reuse_rows
from monitor.sources.database import Database, RowReads, Rows, TableRead
from monitor.sources.schema import KEYS, Query
from monitor.sources.tables import WHOLE_DATABASE

WHOLE_TABLE = re.compile(r"\s*SELECT\s+\*\s+FROM\s+(\w+)\s*;?\s*", re.IGNORECASE)


def table_of(query: Query) -> str:
    """The table whose token a query's rows follow (a query run as written: the whole database)."""
    return query.table.lower() if query.table else WHOLE_DATABASE


def whole_table(query: Query) -> bool:
    """``SELECT * FROM`` its own table, required: rows a backend may read again in part (``RowReads``)."""
    match = WHOLE_TABLE.fullmatch(query.sql)
    return bool(match and query.table and match.group(1).lower() == query.table.lower() and not query.optional)


class QueryCache:
    """Each query's last rows, re-read when its table's token or its keys moved.

    A query's text may be changed between reads (workflow-history's ``{since}``): the
    new text is used the next time its table moves.
    """

    def __init__(self, db: Database, queries: Mapping[str, Query]) -> None:
        self.db = db
        self.queries = dict(queries)
        self.rows: dict[str, Rows] = {}  # by query name; an optional query that cannot run is absent
        self._stamps: dict[str, Hashable] = {}
        self._tables: dict[str, TableRead] = {}  # the last read of each whole-table query, for the next

    async def refresh(self, keys: Sequence[str] = ()) -> bool:
        """Re-read the queries that moved; True when any came back with other rows. ``keys`` go to keyed queries.

        Rows that came back the same keep the list read before, so what was derived from
        it (``RunItems.derived``) stands, and a reader with nothing new publishes nothing:
        a small table moves with every commit, mostly to come back unchanged.
        """
        tokens = await self.db.table_tokens({table_of(q) for q in self.queries.values()})
        keyed = {name for name, q in self.queries.items() if KEYS in q.sql}
        key_tuple = tuple(keys)
        stamps = {name: (tokens[table_of(q)], key_tuple if name in keyed else None)
                  for name, q in self.queries.items()}
        stale = {name: q for name, q in self.queries.items() if self._stamps.get(name) != stamps[name]}
        if not stale:
            return False
        fresh = await self._read(stale, {name: key_tuple for name in stale if name in keyed})
        changed = False
        for name in stale:
            kept = self.rows.get(name)
            if name not in fresh:
                changed = changed or kept is not None or name not in self._stamps
                self.rows.pop(name, None)
            elif kept is None:
                self.rows[name], changed = fresh[name], True
            else:
                rows, same = reuse_rows(kept, fresh[name])
                if not same:
                    self.rows[name], changed = rows, True
            self._stamps[name] = stamps[name]
        return changed


    async def _read(self, stale: dict[str, Query], keys: dict[str, tuple[str, ...]]) -> dict[str, Rows]:
        """The stale queries' rows, in one transaction; whole tables through ``RowReads`` when the backend has it."""
        kept = {name: self.rows[name] for name in stale if name in self.rows}
        if not isinstance(db := self.db, RowReads):
            return await db.fetch_many(stale, keys, kept)
        whole = [name for name, query in stale.items() if name not in keys and whole_table(query)]
        tables = {name: self._tables.pop(name, None) for name in whole}  # kept again once this read succeeds
        fresh, reads = await db.fetch_tables(stale, keys, kept, tables)
        self._tables.update(reads)
        return fresh


class DatabaseReader:
    """Builds a channel's data from its queries' rows whenever one of its tables moved."""

    def __init__(self, db: Database, queries: Mapping[str, Query],
                 build: Callable[[dict[str, Rows]], ChannelData]) -> None:
        self.cache = QueryCache(db, queries)
        self.build = build
        self._built = False  # until a build succeeds, every poll builds

    @property
    def db(self) -> Database:
        """The database read."""
        return self.cache.db

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when none of the channel's tables moved since the last build."""
        if not await self.cache.refresh() and self._built:
            return None
        self._built = False
        data = self.build(self.cache.rows)
        self._built = True
        return data
