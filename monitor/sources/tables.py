"""Per-table change tokens: a commit re-reads only the channels whose tables moved.

Each backend has one exact, near-free token for the whole database (SQLite's
``data_version``, PostgreSQL's transaction snapshot): unchanged, nothing was committed.
When it moves, each table asked about is probed:

- a **small** table (at most ``SMALL_TABLE_ROWS`` rows, counted with a bounded scan) is
  taken to have moved: reading it costs about what proving it unchanged would;
- a **large** table is compared by a cheap signature the backend computes from indexes
  and its newest rows (SQLite: the newest rows themselves, rowids included; PostgreSQL:
  the statistics counters of inserted, updated and deleted rows). Inserts and changes to
  recent rows move it; a change to an older row (or its deletion) may not.

So that nothing stays wrong for long, a large table whose signature stood still through a
commit counts as *unverified*; once it has been so for ``full_read_interval`` seconds its
token moves anyway and its channels read it in full. Backends whose signature lags the
data (PostgreSQL flushes its counters up to a second after a commit) probe an unverified
table again on each call, at most once per ``REPROBE_SECONDS``.

A table the probe cannot read (missing, no rowid) counts as small. ``WHOLE_DATABASE`` (the
table of queries run as written, which may read anything) has the database's own token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass

WHOLE_DATABASE = ""  # the "table" of queries run as written: its token is the database's
SMALL_TABLE_ROWS = 2000
NEWEST_ROWS = 64  # how many of a large table's newest rows its SQLite signature covers
REPROBE_SECONDS = 1.0

# The probe: for each table, its signature (None = small or unreadable: moves on every commit).
Probe = Callable[[Collection[str]], Awaitable[dict[str, Hashable | None]]]
Clock = Callable[[], float]


@dataclass(slots=True)
class _TableState:
    gate: Hashable  # the database token at the last probe
    signature: Hashable | None
    epoch: int = 0  # moves whenever the table may have changed
    unverified_since: float | None = None
    probed_at: float = 0.0


class TableTokens:
    """Tokens per table that move whenever the table's rows may have changed."""

    def __init__(self, full_read_interval: float, signature_lags: bool = False, clock: Clock = time.monotonic) -> None:
        self.full_read_interval = full_read_interval
        self.signature_lags = signature_lags
        self.clock = clock
        self._tables: dict[str, _TableState] = {}
        self._generation = 0  # in every token: epochs restart after ``forget``
        self._probing = asyncio.Lock()  # readers asking at once share one probe

    def forget(self) -> None:
        """Start afresh (a new connection or file): every table counts as moved once."""
        self._tables.clear()
        self._generation += 1

    async def tokens(self, tables: Collection[str], gate: Hashable, probe: Probe) -> dict[str, Hashable]:
        """A token per table in ``tables`` (lower-case names), given the database token ``gate``."""
        async with self._probing:
            return await self._tokens(tables, gate, probe)

    async def _tokens(self, tables: Collection[str], gate: Hashable, probe: Probe) -> dict[str, Hashable]:
        now = self.clock()
        stale = [t for t in tables if t != WHOLE_DATABASE and self._needs_probe(t, gate, now)]
        if stale:
            signatures = await probe(stale)
            for table in stale:
                self._update(table, gate, signatures.get(table), now)
        tokens: dict[str, Hashable] = {}
        for table in tables:
            if table == WHOLE_DATABASE:
                tokens[table] = gate
                continue
            self._age(self._tables[table], now)
            tokens[table] = (self._generation, self._tables[table].epoch)
        return tokens

    def _needs_probe(self, table: str, gate: Hashable, now: float) -> bool:
        state = self._tables.get(table)
        if state is None or state.gate != gate:
            return True
        return (self.signature_lags and state.unverified_since is not None
                and now - state.probed_at >= REPROBE_SECONDS)

    def _update(self, table: str, gate: Hashable, signature: Hashable | None, now: float) -> None:
        state = self._tables.get(table)
        if state is None:
            self._tables[table] = _TableState(gate, signature, probed_at=now)
            return
        committed, state.gate, state.probed_at = state.gate != gate, gate, now
        if signature is None or signature != state.signature:
            if committed or signature != state.signature:
                state.epoch += 1
            state.signature, state.unverified_since = signature, None
        elif committed and state.unverified_since is None:
            state.unverified_since = now  # a commit the signature cannot place: maybe an older row

    def _age(self, state: _TableState, now: float) -> None:
        if state.unverified_since is not None and now - state.unverified_since >= self.full_read_interval:
            state.epoch += 1
            state.unverified_since = None
