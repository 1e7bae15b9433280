"""PostgreSQL through asyncpg: a small lazy pool, read-only snapshots, a cheap change token.

Change token: the cluster's current transaction snapshot (``pg_current_snapshot()``,
``xmin:xmax:in-progress xids``) plus the postmaster start time. Every commit of a
writing transaction changes it: the committer's xid either was in progress at the last
token (and leaves the in-progress list) or was assigned after it (and moves ``xmax``);
xids are 64-bit, so a value never repeats. Our own reads are READ ONLY and take no xid,
so they leave it alone. Writes to other databases of the cluster change it too, which
only costs a probe. The statistics counters are no substitute for it: ``xact_commit`` counts
read-only commits (our own polls included) and all ``pg_stat_*`` counters are flushed
lazily, so a committed change can show up in the tables before it shows up there.

Per-table tokens (``sources.tables``) use that token as their gate. A large table's
signature is its inserted, updated and deleted row counters (``pg_stat_user_tables``):
exact but late by up to about a second, so an unverified table is probed again.

Errors become ``DatabaseError`` naming the URL with its password masked. A lost connection
drops the pool and the read is tried once more on a fresh one, so a server restart
costs at most the reads made while it is down. A read cancelled by the poll timeout
hands its connection to a background task that waits for the server to cancel the
query before returning it to the pool, so the poll ends at once and the pool stays usable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import errno
import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import structlog

from monitor.redact import redact_url
from monitor.sources.dbcommon import DatabaseError, Rows
from monitor.sources.schema import KEYS, Columns, MissingColumns, Query, render_all, tables_of
from monitor.sources.tables import SMALL_TABLE_ROWS, TableTokens

log = structlog.get_logger(__name__)

T = TypeVar("T")
POOL_MIN, POOL_MAX = 0, 2
SETTLE_TIMEOUT = 10.0  # how long a cancelled read's connection may take to become usable again
CLOSE_TIMEOUT = 5.0
SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text AS snapshot, pg_postmaster_start_time() AS started"
OLD_SNAPSHOT_SQL = "SELECT txid_current_snapshot()::text AS snapshot, pg_postmaster_start_time() AS started"
KEYS_SQL = "(SELECT unnest($1::text[]))"
COUNTERS_SQL = ("SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_catalog.pg_stat_user_tables"
                " WHERE relid = to_regclass($1)")
# The columns of the named tables as unqualified names resolve them (search_path), dropped ones excluded.
COLUMNS_SQL = (
    "SELECT t.name AS table_name, a.attname AS column_name FROM unnest($1::text[]) AS t(name)"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(t.name) WHERE a.attnum > 0 AND NOT a.attisdropped"
)


class ConnectionLost(Exception):
    """The connection broke under a read (not a refusal to connect)."""


def describe(exc: BaseException) -> str:
    """What went wrong, in words an operator can act on."""
    if isinstance(exc, (asyncpg.PostgresError, ConnectionLost)):
        return str(exc).strip() or type(exc).__name__
    # Several addresses for one host make asyncio raise a plain OSError listing them all.
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, (ConnectionError, asyncpg.ConnectionDoesNotExistError)):
        return "connection lost"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "host unreachable"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).strip() or type(exc).__name__


def plain(value: Any) -> Any:
    """A column value as SQLite would give it (uuid as text, intervals as seconds, numeric as float)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)  # NUMERIC money columns: the same arithmetic as SQLite's REAL
    return value


async def _decode_json_columns(conn: asyncpg.Connection) -> None:
    """Connection setup: json and jsonb columns arrive decoded, not as text."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: our sessions only ever run read-only SELECTs, so there is nothing to reset."""


class PostgresDatabase:
    """A PostgreSQL database read through a small asyncpg pool, connected on first use."""

    def __init__(self, url: str, connect_timeout: float = 10.0, full_read_interval: float = 60.0) -> None:
        self.url = url
        self.label = redact_url(url)
        self._connect_timeout = connect_timeout
        self._secrets = _secrets_in(url)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._snapshot_sql = SNAPSHOT_SQL
        self._settling: set[asyncio.Task[None]] = set()
        self._tables = TableTokens(full_read_interval, signature_lags=True)

    @property
    def generation(self) -> int:
        """Always 0: a reconnection reaches the same database (a restarted server shows in ``change_token``)."""
        return 0

    async def change_token(self) -> tuple[str, Any]:
        """(transaction snapshot, server start time): moves on every committed write."""
        try:
            row = await self._read(lambda conn: conn.fetchrow(self._snapshot_sql))
        except DatabaseError as exc:
            if not isinstance(exc.__cause__, asyncpg.UndefinedFunctionError):
                raise
            self._snapshot_sql = OLD_SNAPSHOT_SQL  # PostgreSQL 12 and older
            row = await self._read(lambda conn: conn.fetchrow(self._snapshot_sql))
        return row["snapshot"], row["started"]

    async def table_tokens(self, tables: Collection[str]) -> dict[str, Hashable]:
        """A token per table that moves whenever its rows may have changed (``sources.tables``)."""
        gate = await self.change_token()
        return await self._tables.tokens(tables, gate, lambda names: self._read(lambda conn: _probe(conn, names)))

    async def fetch_many(self, queries: Mapping[str, Query | str],
                         keys: Mapping[str, Sequence[str]] | None = None,
                         kept: Mapping[str, Rows] | None = None) -> dict[str, Rows]:
        """Run the queries in one READ ONLY, REPEATABLE READ transaction: one consistent state.

        ``Query`` objects are fitted to the tables' columns as the catalog lists them in
        that same transaction; optional ones that cannot run are left out of the result.
        ``keys`` gives keyed queries their keys. ``kept`` is not used: every row is fresh.
        """
        return await self._read(lambda conn: _read_all(conn, queries, keys or {}))

    async def close(self) -> None:
        """Let cancelled reads settle briefly, then close the pool."""
        if self._settling:
            await asyncio.wait(self._settling, timeout=CLOSE_TIMEOUT)
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except Exception:  # closing must not fail: whatever is left is cut off
            pool.terminate()

    async def _read(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            try:
                return await self._on_connection(work)
            except ConnectionLost:
                # A server restart leaves idle connections dead: try once on fresh ones.
                return await self._on_connection(work)
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, ConnectionLost) else exc  # the driver's own error
            raise DatabaseError(self._message(exc)) from cause

    async def _on_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = await self._get_pool()
        conn = await pool.acquire()
        try:
            result = await work(conn)
        except asyncio.CancelledError:
            self._settle_later(pool, conn)
            raise
        except Exception as exc:
            if _answered(exc, conn):
                await _settle(pool, conn)
                raise
            _terminate(conn)
            self._drop_pool(pool, exc)
            raise ConnectionLost(describe(exc)) from exc
        await _release(pool, conn)
        return result

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=POOL_MIN, max_size=POOL_MAX, timeout=self._connect_timeout,
                    reset=_keep_session, init=_decode_json_columns, server_settings={"application_name": "monitor"},
                    # No cached plans: SELECT * must survive the monitored schema gaining columns.
                    statement_cache_size=0)
            return self._pool

    def _drop_pool(self, pool: asyncpg.Pool, reason: BaseException) -> None:
        if self._pool is pool:
            self._pool = None
            log.info("postgres_pool_dropped", database=self.label, reason=describe(reason))
        pool.terminate()

    def _settle_later(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        task = asyncio.get_running_loop().create_task(_settle(pool, conn))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _message(self, exc: BaseException) -> str:
        text = describe(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f"{self.label}: {text}"


async def _table_columns(conn: asyncpg.Connection, tables: frozenset[str]) -> Columns:
    if not tables:
        return {}
    found: dict[str, set[str]] = {}
    for row in await conn.fetch(COLUMNS_SQL, sorted(tables)):
        found.setdefault(row["table_name"], set()).add(row["column_name"].lower())
    return {table: frozenset(names) for table, names in found.items()}


async def _probe(conn: asyncpg.Connection, tables: Collection[str]) -> dict[str, Hashable | None]:
    """Each table's signature: None when small or unreadable, else its row counters."""
    signatures: dict[str, Hashable | None] = {}
    for table in tables:
        name = '"' + table.replace('"', '""') + '"'
        try:
            rows = await conn.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {SMALL_TABLE_ROWS + 1}) AS t")
            counters = await conn.fetchrow(COUNTERS_SQL, name) if rows > SMALL_TABLE_ROWS else None
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise
            counters = None  # no such table (yet): read it whenever anything moved
        signatures[table] = tuple(counters) if counters is not None else None
    return signatures


async def _read_all(conn: asyncpg.Connection, queries: Mapping[str, Query | str],
                    keys: Mapping[str, Sequence[str]]) -> dict[str, Rows]:
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    columns = await _table_columns(conn, tables_of(queries.values()))
    result = {}
    for name, sql in render_all(queries, columns).items():
        params = [list(keys.get(name, ()))] if KEYS in sql else []
        records = await conn.fetch(sql.replace(KEYS, KEYS_SQL), *params)
        result[name] = [{key: plain(value) for key, value in record.items()} for record in records]
    await conn.execute("COMMIT")
    return result


async def _settle(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """End a failed read's transaction and return its connection; drop it if that fails."""
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT):
            # asyncpg first waits for the server to cancel an interrupted query.
            await conn.execute("ROLLBACK")
    except BaseException as exc:
        _terminate(conn)  # unusable, or out of time: closed rather than returned
        if not isinstance(exc, Exception):
            raise
    finally:
        await _release(pool, conn)


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    try:
        await pool.release(conn)
    except asyncpg.InterfaceError:
        _terminate(conn)  # another read dropped the pool meanwhile


def _answered(exc: Exception, conn: asyncpg.Connection) -> bool:
    """Whether ``exc`` is the server's answer (or our refusal to run) on a connection still open."""
    if isinstance(exc, MissingColumns):
        return True
    if not isinstance(exc, asyncpg.PostgresError) or isinstance(exc, asyncpg.PostgresConnectionError):
        return False
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False  # asyncpg already took the broken connection back from us


def _terminate(conn: asyncpg.Connection) -> None:
    try:
        conn.terminate()
    except asyncpg.InterfaceError:
        pass  # asyncpg already took the broken connection back from us


def _secrets_in(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]  # no telling where a password would be: hide the whole URL
    secrets = [parts.password] if parts.password else []
    secrets += parse_qs(parts.query).get("password", [])
    return [s for s in secrets if s]
