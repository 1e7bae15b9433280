"""The workflow-history channel: the newest runs of workflow_history, keyed by adw_id.

Items are the newest N rows (query ``workflow_history``, default N = 500, newest by
``start_time`` then ``id``; runs without a start time count as newest). The summary
covers the WHOLE table, not just those N: counts and means come from a GROUP BY query
(``workflow_history_totals``) and the 7/30-day costs from the costed runs of the last
month (``workflow_history_costs``). All three are overridable in ``[queries]``.

``{since}`` in the costs query is replaced by the date a day before the 30-day window
opens; it only narrows the rows read, the window itself is applied here on parsed
start times, so any ISO-8601 text (naive = UTC) or timestamp column works.

``avg_duration_seconds`` is the mean over completed runs that record a duration;
``avg_cost`` over completed runs with an ``actual_cost_total`` above 0 (the column is 0.0
until a run reports a cost, and those zeros are not costs); both are left out when no run
qualifies, as is ``success_rate`` (completed ÷ (completed + failed)) without finished
runs. ``cost_7d`` and ``cost_30d`` are sums, so 0.0 when no costed run started in the
window. ``cost_trend_7d`` and ``cost_trend_30d`` compare the mean cost of a costed run
started in the window with the window before it, in % (2 decimals; -100.0 when the
window has none; left out when the window before has none). ``total_cost`` and
``costed_runs`` cover every run that reported a cost, ``avg_cost_per_completion`` the
finished ones (completed or failed), ``avg_tokens`` and ``avg_cache_efficiency`` the runs
that used tokens. ``by_model``, ``by_template`` and ``by_status`` count the runs that
name one. Money is rounded to 4 decimals (per-run LLM costs are often below a cent).
JSON columns are decoded.

Columns an installation lacks (``model_used``, say) make only their figures absent.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from monitor.channels.base import (
    ChannelData,
    DecodedRecords,
    channel_queries,
    percentage,
)
from monitor.channels.cost_windows import CostIndex, CostWindows
from monitor.channels.history_tail import NEWEST, HistoryParts, HistoryTail, WholeHistory
from monitor.channels.spec import DATABASE, ChannelSpec
from monitor.sources.database import Database, Rows
from monitor.sources.resources import Sources
from monitor.sources.schema import Query

NEWEST_FIRST = "ORDER BY ({start_time} IS NULL) DESC, {start_time} DESC, {id:integer} DESC"
TOTALS_SELECT = (
    "SELECT status, {model_used} AS model_used, {workflow_template} AS workflow_template, COUNT(*) AS runs,"
    " COUNT({duration_seconds:real}) AS timed_runs, SUM({duration_seconds:real}) AS duration_sum,"
    " COUNT(CASE WHEN {actual_cost_total:real} > 0 THEN 1 END) AS costed_runs,"
    " SUM(CASE WHEN {actual_cost_total:real} > 0 THEN {actual_cost_total:real} END) AS cost_sum,"
    " COUNT(CASE WHEN {total_tokens:real} > 0 THEN 1 END) AS tokened_runs,"
    " SUM(CASE WHEN {total_tokens:real} > 0 THEN {total_tokens:real} END) AS token_sum,"
    " COUNT(CASE WHEN {total_tokens:real} > 0 THEN {cache_efficiency_percent:real} END) AS cache_rated_runs,"
    " SUM(CASE WHEN {total_tokens:real} > 0 THEN {cache_efficiency_percent:real} END) AS cache_efficiency_sum"
    " FROM workflow_history")
TOTALS_GROUPS = " GROUP BY status, {model_used}, {workflow_template}"
COSTS_SELECT = ("SELECT start_time, actual_cost_total FROM workflow_history"
                " WHERE actual_cost_total > 0 AND start_time >= '{since}'")
DEFAULT_QUERIES = MappingProxyType({
    # "(x IS NULL) DESC" rather than NULLS FIRST: older SQLite libraries lack the latter. The
    # newest are found by their keys first: sorting whole rows (JSON columns and all) to
    # keep 500 costs several times more than sorting the sort columns (1.8 s against 0.3 s
    # over 200k rows on SQLite). Rows sharing an adw_id only widen the outer, exact, sort.
    "workflow_history": Query(
        "workflow_history",
        f"SELECT * FROM workflow_history WHERE adw_id IN (SELECT adw_id FROM workflow_history {NEWEST_FIRST}"
        f" LIMIT {NEWEST}) {NEWEST_FIRST} LIMIT {NEWEST}", required=("adw_id",)),
    "workflow_history_totals": Query("workflow_history", TOTALS_SELECT + TOTALS_GROUPS, required=("status",)),
    # Without start times or costs there are no cost windows: the query is skipped.
    "workflow_history_costs": Query("workflow_history", COSTS_SELECT,
                                    required=("start_time", "actual_cost_total"), optional=True),
})
JSON_COLUMNS = ("structured_input", "cost_breakdown", "token_breakdown", "anomaly_flags",
                "optimization_recommendations", "similar_workflow_ids", "retry_reasons",
                "error_phase_distribution", "phase_durations")
COST_WINDOWS = {"cost_7d": dt.timedelta(days=7), "cost_30d": dt.timedelta(days=30)}
# A trend compares the mean cost of a costed run in the window with the one in the window before it.
TREND_WINDOWS = {"cost_trend_7d": dt.timedelta(days=7), "cost_trend_30d": dt.timedelta(days=30)}
# Every moment a run's start crosses a window's edge (``next_age_out``); the costs read reaches the oldest.
WINDOW_EDGES = tuple(sorted({*COST_WINDOWS.values(), *TREND_WINDOWS.values(),
                             *(2 * window for window in TREND_WINDOWS.values())}))
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def build_items(rows: Rows, records: DecodedRecords | None = None) -> dict[str, Any]:
    """Items keyed by adw_id (rows without one are skipped), JSON columns decoded (``records``: kept between reads)."""
    records = records or DecodedRecords(JSON_COLUMNS, "adw_id")
    return {str(record["adw_id"]): record for record in records.decode(rows) if record.get("adw_id") is not None}


TOTALS_COLUMNS = ("runs", "timed_runs", "duration_sum", "costed_runs", "cost_sum", "tokened_runs", "token_sum",
                  "cache_rated_runs", "cache_efficiency_sum")


def _by_status(totals: Rows) -> dict[Any, dict[str, float]]:
    """The totals rows (grouped by status, model and template) added up per status."""
    columns = TOTALS_COLUMNS
    grouped: dict[Any, Rows] = {}
    for row in totals:
        grouped.setdefault(row.get("status"), []).append(row)
    return {status: _add_up(rows, columns) for status, rows in grouped.items()}


def _count_by(totals: Rows, column: str) -> dict[str, int] | None:
    """Runs per value of ``column``; None when no run names one (or the column is missing)."""
    counts: dict[str, int] = {}
    for row in totals:
        if row.get(column) not in (None, ""):
            counts[str(row[column])] = counts.get(str(row[column]), 0) + int(row.get("runs") or 0)
    return dict(sorted(counts.items())) or None


def build_summary(totals: Rows, costs: Rows | None, now: dt.datetime) -> dict[str, Any]:
    """total, completed, failed, running, success_rate, averages, cost windows, by_model, by_template."""
    return summarize(totals, CostWindows.of_rows(costs) if costs is not None else None, now)


def summarize(totals: Rows, costs: CostWindows | None, now: dt.datetime) -> dict[str, Any]:
    """``build_summary`` with the costed runs already parsed and sorted."""
    by_status = _by_status(totals)

    def runs(status: str) -> int:
        return int(by_status.get(status, {}).get("runs") or 0)

    completed, failed = runs("completed"), runs("failed")
    summary: dict[str, Any] = {
        "total": sum(int(row.get("runs") or 0) for row in totals),
        "completed": completed,
        "failed": failed,
        "running": runs("running"),
        "success_rate": percentage(completed, completed + failed),
        "avg_duration_seconds": _mean(by_status.get("completed", {}), "duration_sum", "timed_runs", 1),
        "avg_cost": _mean(by_status.get("completed", {}), "cost_sum", "costed_runs", 4),
        "by_model": _count_by(totals, "model_used"),
        "by_template": _count_by(totals, "workflow_template"),
        "by_status": {str(status): int(row["runs"]) for status, row in sorted(by_status.items(), key=str)
                      if status is not None} or None,
        **(_whole_table_means(totals, by_status) if costs is not None else {}),
    }
    for field, window in COST_WINDOWS.items():
        summary[field] = round(costs.total(now - window), 4) if costs is not None else None
    for field, window in TREND_WINDOWS.items():
        summary[field] = _trend(costs, now, window) if costs is not None else None
    return {key: value for key, value in summary.items() if value is not None}


def _whole_table_means(totals: Rows, by_status: dict[Any, dict[str, float]]) -> dict[str, Any]:
    """Costs over every run that reported one, per finished run, and the token means (given cost columns)."""
    every = _add_up(totals, TOTALS_COLUMNS)
    finished = _add_up([by_status.get("completed", {}), by_status.get("failed", {})], TOTALS_COLUMNS)
    return {
        "costed_runs": int(every["costed_runs"]),
        "total_cost": round(every["cost_sum"], 4),
        "avg_cost_per_completion": _mean(finished, "cost_sum", "costed_runs", 4),
        "avg_tokens": _mean(every, "token_sum", "tokened_runs", 1),
        "avg_cache_efficiency": _mean(every, "cache_efficiency_sum", "cache_rated_runs", 1),
    }


def _trend(costs: CostWindows, now: dt.datetime, window: dt.timedelta) -> float | None:
    """Change of the mean cost per costed run, ``window`` against the one before, in %; None without a before."""
    before = costs.costs_between(now - 2 * window, now - window)
    if not before:
        return None
    current = costs.costs_between(now - window)
    mean_before = math.fsum(before) / len(before)
    mean_now = math.fsum(current) / len(current) if current else 0.0
    return round((mean_now - mean_before) / mean_before * 100, 2) if mean_before else None


def _mean(row: Mapping[str, Any], total: str, count: str, digits: int) -> float | None:
    """``row[total] / row[count]`` rounded, or None when nothing was counted."""
    n = int(row.get(count) or 0)
    return round(float(row[total]) / n, digits) if n and row.get(total) is not None else None


def _add_up(rows: Rows, columns: Iterable[str]) -> dict[str, float]:
    # fsum: the same total whatever order the database returns the groups in
    return {column: math.fsum(float(row.get(column) or 0) for row in rows) for column in columns}


def since_date(now: dt.datetime, window: dt.timedelta) -> str:
    """The ``{since}`` of the costs query: a date a day before the longest window opens."""
    return (now - window - dt.timedelta(days=1)).date().isoformat()


class WorkflowHistoryReader:
    """Reads the table when it moved; otherwise only re-ages the cost windows.

    Runs only leave a cost window as time passes, so the costed rows of the last read
    still hold every run of the current windows: a quiet table is not read again.
    """

    def __init__(self, source: HistoryTail | WholeHistory, clock: Clock = utc_now) -> None:
        self.source = source
        self.clock = clock
        self._data: ChannelData | None = None
        self._recheck_at: dt.datetime | None = None  # nothing can age out of a window before this
        self._items = DecodedRecords(JSON_COLUMNS, "adw_id")
        self._cost_index = CostIndex()
        self._costs: CostWindows | None = None  # the costed runs of the last build

    @property
    def db(self) -> Database:
        """The database read."""
        return self.source.db

    async def read(self) -> ChannelData | None:
        """Fresh data; None when neither the table nor the cost windows changed."""
        now = self.clock()
        if await self.source.refresh(since_date(now, max(WINDOW_EDGES))) or self._data is None:
            self._data = None  # until this build succeeds
            segments = self.source.cost_segments
            self._costs = self._cost_index.windows(segments) if segments is not None else None
            self._data = build_workflow_history(self.source.rows, now, self._items, self._costs)
            self._recheck_at = self._costs.next_age_out(now, WINDOW_EDGES) if self._costs is not None else None
            return self._data
        if self._recheck_at is None or now <= self._recheck_at or self._costs is None:
            return None  # a quiet table and no run leaving a window: nothing to recompute
        self._recheck_at = self._costs.next_age_out(now, WINDOW_EDGES)
        summary = summarize(self.source.rows["workflow_history_totals"], self._costs, now)
        if summary == self._data.summary:
            return None
        self._data = ChannelData(summary, self._data.items)
        return self._data


def build_workflow_history(rows: Mapping[str, Rows], now: dt.datetime, items: DecodedRecords | None = None,
                           costs: CostWindows | None = None) -> ChannelData:
    """The channel from the results of the three queries, as of ``now``.

    ``items``: see ``build_items``; ``costs``: the costs rows already parsed (else parsed here).
    """
    if costs is None and rows.get("workflow_history_costs") is not None:
        costs = CostWindows.of_rows(rows["workflow_history_costs"])
    summary = summarize(rows["workflow_history_totals"], costs, now)
    return ChannelData(summary, build_items(rows["workflow_history"], items))


def make_reader(sources: Sources, clock: Clock = utc_now) -> WorkflowHistoryReader:
    """The workflow-history reader on the shared database (queries overridable in [queries])."""
    queries = channel_queries(sources.settings, SPEC.queries)
    whole = WholeHistory(sources.database, queries)
    if queries != DEFAULT_QUERIES:  # an override is run as written, whatever it reads
        return WorkflowHistoryReader(whole, clock)
    parts = HistoryParts(NEWEST_FIRST, TOTALS_SELECT, TOTALS_GROUPS, COSTS_SELECT)
    tail = HistoryTail(sources.database, parts, whole, sources.settings.sources.full_read_interval)
    return WorkflowHistoryReader(tail, clock)


SPEC = ChannelSpec(name="workflow-history", title="Workflow history", make_reader=make_reader,
                   queries=DEFAULT_QUERIES, watches=frozenset({DATABASE}))
