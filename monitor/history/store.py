"""The history file: a SQLite database of the console's own, every statement run off the event loop (aiosqlite).

Tables: ``series`` (channel, name and rollup aggregate of each series), ``fine`` (one
point per series per sampler step, kept ``FINE_HOURS``), ``hourly`` (each complete hour
rolled up by its series' aggregate, kept ``[history] days``) and ``meta`` (the schema
version, and the hour up to which ``fine`` has been rolled up). A point is only written
when it has a value: a missing point reads as a gap. Opening the file is ``recovery``'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiosqlite

from monitor.history.series import series_spec

HOUR = 3600
FINE_HOURS = 48  # fine points are kept this long; hourly ones after that
SCHEMA_VERSION = "1"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, name TEXT NOT NULL,
                                   aggregate TEXT NOT NULL, UNIQUE (channel, name));
CREATE TABLE IF NOT EXISTS fine (series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                                 PRIMARY KEY (series, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                                   PRIMARY KEY (series, ts)) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '{SCHEMA_VERSION}');
"""
TABLES = {"meta": ("key", "value"), "series": ("id", "channel", "name", "aggregate"),
          "fine": ("series", "ts", "value"), "hourly": ("series", "ts", "value")}
POINT_TABLES = ("fine", "hourly")
# The value of a group of points by their series' aggregate (series.AGGREGATES); SQLite's AVG, MAX and MIN skip NULLs.
AGGREGATED = "CASE s.aggregate WHEN 'max' THEN MAX(p.value) WHEN 'min' THEN MIN(p.value) ELSE AVG(p.value) END"
ROLL_UP = f"""
INSERT OR REPLACE INTO hourly (series, ts, value)
SELECT p.series, (p.ts / {HOUR}) * {HOUR} AS hour, {AGGREGATED}
FROM fine p JOIN series s ON s.id = p.series
WHERE p.ts >= :start AND p.ts < :end GROUP BY p.series, hour
"""
# The points a query buckets. Coarse (buckets of an hour or more): the hourly points of the hours rolled up,
# then the fine points of the hour under way, so each hour weighs the same. Fine (shorter buckets): the fine
# points, and the hourly point of each hour without any (older than FINE_HOURS, or seeded by the demo).
COARSE_POINTS = """
    SELECT series, ts, value FROM hourly WHERE ts >= :hourly_since AND ts < :rolled
    UNION ALL
    SELECT series, ts, value FROM fine WHERE ts >= :rolled AND ts >= :since AND ts <= :until"""
FINE_POINTS = f"""
    SELECT series, ts, value FROM hourly h WHERE ts >= :hourly_since AND ts <= :until
        AND NOT EXISTS (SELECT 1 FROM fine f WHERE f.series = h.series AND f.ts >= h.ts AND f.ts < h.ts + {HOUR})
    UNION ALL
    SELECT series, ts, value FROM fine WHERE ts >= :since AND ts <= :until"""
BUCKETED = f"""
WITH p(series, ts, value) AS ({{points}})
SELECT s.name, CAST(p.ts / :step AS INTEGER) AS bucket, {AGGREGATED}
FROM p JOIN series s ON s.id = p.series
WHERE s.channel = :channel
GROUP BY p.series, bucket
"""

Row = tuple[str, str, int, float]  # (channel, series name, unix seconds, value)


class HistoryStore:
    """An open history file; every method runs its statements on aiosqlite's thread."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self._ids: dict[tuple[str, str], int] = {}

    async def load_ids(self) -> None:
        """Read the ids of the series already in the file."""
        rows = await self.conn.execute_fetchall("SELECT channel, name, id FROM series")
        self._ids = {(channel, name): series_id for channel, name, series_id in rows}

    async def _ids_for(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        missing = [key for key in dict.fromkeys(keys) if key not in self._ids]
        for channel, name in missing:
            spec = series_spec(channel, name)
            await self.conn.execute("INSERT OR IGNORE INTO series (channel, name, aggregate) VALUES (?, ?, ?)",
                                    (channel, name, spec.aggregate if spec else "mean"))
        if missing:
            await self.load_ids()
        return self._ids

    async def write(self, rows: Sequence[Row], table: str = "fine") -> None:
        """Write points (a point already there is replaced) and commit."""
        if table not in POINT_TABLES:
            raise ValueError(f"no point table {table!r}")
        ids = await self._ids_for((channel, name) for channel, name, _, _ in rows)
        await self.conn.executemany(f"INSERT OR REPLACE INTO {table} (series, ts, value) VALUES (?, ?, ?)",
                                    [(ids[(channel, name)], ts, value) for channel, name, ts, value in rows])
        await self.conn.commit()

    async def rolled_until(self) -> int | None:
        """The hour (unix seconds) up to which fine points have been rolled up; None: never."""
        rows = list(await self.conn.execute_fetchall("SELECT value FROM meta WHERE key = 'rolled_until'"))
        try:
            return int(rows[0][0]) if rows else None
        except (TypeError, ValueError):  # edited by hand: rolling up the two days of fine points again is harmless
            return None

    async def roll_up_and_prune(self, start: int, end: int, fine_before: int, hourly_before: int) -> None:
        """Roll the fine points of the hours in [start, end) up into hourly ones, drop the expired, commit."""
        await self.conn.execute(ROLL_UP, {"start": start, "end": end})
        await self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rolled_until', ?)", (str(end),))
        await self.conn.execute("DELETE FROM fine WHERE ts < ?", (fine_before,))
        await self.conn.execute("DELETE FROM hourly WHERE ts < ?", (hourly_before,))
        await self.conn.commit()

    async def fine_since(self, since: int) -> list[Row]:
        """Every fine point from ``since`` on, oldest first."""
        rows = await self.conn.execute_fetchall(
            "SELECT s.channel, s.name, p.ts, p.value FROM series s JOIN fine p ON p.series = s.id AND p.ts >= ? "
            "ORDER BY p.ts", (since,))
        return [(channel, name, ts, value) for channel, name, ts, value in rows]

    async def bucketed(self, channel: str, since: float, until: float, step: float, rolled: int,
                       digits: int) -> dict[str, dict[int, float]]:
        """``channel``'s values by series and bucket index, rounded to ``digits`` (``rolled``: hourly points end)."""
        points = COARSE_POINTS if step >= HOUR else FINE_POINTS
        params = {"channel": channel, "hourly_since": since - since % HOUR, "rolled": rolled, "since": since,
                  "until": until, "step": float(step)}
        rows = await self.conn.execute_fetchall(BUCKETED.format(points=points), params)
        result: dict[str, dict[int, float]] = {}
        for name, bucket, value in rows:
            if value is not None:
                result.setdefault(name, {})[bucket] = round(value, digits)
        return result

    async def count(self, table: str) -> int:
        """How many points ``table`` holds (tests and the benchmark)."""
        if table not in POINT_TABLES:
            raise ValueError(f"no point table {table!r}")
        rows = list(await self.conn.execute_fetchall(f"SELECT COUNT(*) FROM {table}"))
        return int(rows[0][0])

    async def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (so its size is the file's)."""
        await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        """Close the file."""
        await self.conn.close()
