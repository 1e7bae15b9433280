"""How much a benchmark run measures: the full plan, the quick plan, and their options."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.servers import POLLED_INTERVAL
from benchmarks.workspace import HISTORY_ROWS


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    rounds: int = 3
    steps: tuple[int, ...] = (1000, 5000, 10000)
    concurrency: int = 100
    idle_windows: int = 5  # idle CPU: the median and spread of this many windows, at the largest step
    idle_window_seconds: float = 30.0  # one heartbeat period: every connection pings once per window
    fanout_repetitions: int = 9
    fresh_clients: tuple[int, ...] = (1000, 10000)  # SQLite freshness at each of these client counts
    fresh_changes: int = 200
    fresh_other_changes: int = 20  # state-file and polled-HTTP freshness, at the first client count
    fresh_series_limit: float = 600.0  # seconds: a series stops early (and says so) when changes take this long
    unrelated_commits: bool = False  # precede each queue commit by a commit to another table
    unrelated_lead: float = 0.02  # … this many seconds before it
    history: tuple[int, ...] = (HISTORY_ROWS,)  # workflow_history rows: one workspace (and all rounds) per size
    polled_interval: float = POLLED_INTERVAL
    servers: tuple[str, ...] = ("console", "aiohttp", "websockets")
    # The replica accepts ~50 connections/s and holds ~1 MB per socket: one round of it
    # takes as long as three of the console, so it runs fewer rounds and changes.
    baseline_rounds: int = 1
    baseline_fresh_changes: int = 10
    phases: tuple[str, ...] = ("memory", "idle", "fanout", "fresh")
    quiet_pct: float = 15.0  # other work on the machine, as a share of all cores, that a round waits out
    quiet_patience: float = 60.0
    console_settings: tuple[str, ...] = ()  # section.key=value overrides of the generated config.toml
    loadgens: int = 1  # load generator processes, the clients split evenly among them

    @property
    def idle_seconds(self) -> float:
        """The whole idle measurement."""
        return self.idle_windows * self.idle_window_seconds


QUICK = Plan(rounds=1, steps=(500, 1000, 2000), idle_windows=5, idle_window_seconds=4.0, fanout_repetitions=7,
             fresh_clients=(200, 1000), fresh_changes=10, fresh_other_changes=5, baseline_fresh_changes=5,
             quiet_patience=20.0)
