"""The workflow-history channel read from a real SQLite file; expected values worked out by hand."""

import datetime as dt
from types import SimpleNamespace

import pytest

from monitor.channels import workflow_history
from monitor.channels.base import parse_time
from monitor.settings import Settings, settings_from_mapping
from monitor.sources.sqlite import SqliteDatabase
from monitor.state import ChannelState
from tests.tables import RUNS_NOW, WORKFLOW_RUNS, insert_sqlite


class Clock:
    """A settable clock for the reader."""

    def __init__(self, now: str) -> None:
        self.now = dt.datetime.fromisoformat(now)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, days: float) -> None:
        self.now += dt.timedelta(days=days)


@pytest.fixture
async def database(db_path):
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    yield db
    await db.close()


def reader_for(database, clock, settings: Settings | None = None):
    return workflow_history.make_reader(SimpleNamespace(settings=settings or Settings(), database=database), clock)


def published(data):
    """The channel state as clients see it (NULLs dropped)."""
    state = ChannelState("workflow-history", "e")
    state.accept(data)
    return state.state


async def test_summary_over_the_whole_table(db_path, database):
    insert_sqlite(db_path, "workflow_history", WORKFLOW_RUNS)
    state = published(await reader_for(database, Clock(RUNS_NOW)).read())
    # completed: a1 b2 f6 b8; failed: c3 a7; running: d4; pending: e5
    # durations of completed runs 100, 200, 400, 300; costs of completed runs 1.25 .75 3 .25
    # (avg_cost is over completed runs only: 5.25 / 4)
    # 7 days: a1 1.25 + a7 0.5 (exactly on the edge); 30 days: + b2 .75 + c3 2 + b8 .25
    # models: only a1 names one; templates: adw_sdlc a1 b2 d4 b8, adw_patch c3 a7, adw_plan f6
    # trend 7d: mean of a1 a7 (.875) against the week before, b2 b8 (.5): +75 %; 30d: nothing before
    # costed runs (all finished): 6, total 7.75, per completion 7.75 / 6; no run used tokens
    assert state["summary"] == {
        "total": 8, "completed": 4, "failed": 2, "running": 1, "success_rate": 66.7,
        "avg_duration_seconds": 250.0, "avg_cost": 1.3125, "cost_7d": 1.75, "cost_30d": 4.75,
        "by_model": {"sonnet": 1}, "by_template": {"adw_patch": 2, "adw_plan": 1, "adw_sdlc": 4},
        "by_status": {"completed": 4, "failed": 2, "pending": 1, "running": 1},
        "costed_runs": 6, "total_cost": 7.75, "avg_cost_per_completion": 1.2917, "cost_trend_7d": 75.0,
    }


async def test_items_keyed_by_adw_id_with_source_columns(db_path, database):
    insert_sqlite(db_path, "workflow_history", WORKFLOW_RUNS)
    items = published(await reader_for(database, Clock(RUNS_NOW)).read())["items"]
    assert sorted(items) == sorted(run["adw_id"] for run in WORKFLOW_RUNS)
    assert items["c3d4e5f6"] == {
        "id": 3, "adw_id": "c3d4e5f6", "issue_number": 103, "status": "failed", "workflow_template": "adw_patch",
        "start_time": "2026-02-05 08:00:00", "duration_seconds": 50.0, "actual_cost_total": 2.0,
        "error_message": "tests failed", "retry_count": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
    }


async def test_items_are_the_newest_n_but_the_summary_counts_all(db_path, database):
    insert_sqlite(db_path, "workflow_history", WORKFLOW_RUNS)
    limited = ("SELECT * FROM workflow_history"
                 " ORDER BY (start_time IS NULL) DESC, start_time DESC, id DESC LIMIT 3")
    settings = settings_from_mapping({"queries": {"workflow_history": limited}})
    state = published(await reader_for(database, Clock(RUNS_NOW), settings).read())
    # not started yet counts as newest, then by start time
    assert sorted(state["items"]) == ["a1b2c3d4", "d4e5f6a7", "e5f6a7b8"]
    assert state["summary"]["total"] == 8 and state["summary"]["cost_30d"] == 4.75


async def test_empty_table_leaves_out_undefined_fields(database):
    state = published(await reader_for(database, Clock(RUNS_NOW)).read())
    assert state["summary"] == {"total": 0, "completed": 0, "failed": 0, "running": 0,
                                "cost_7d": 0.0, "cost_30d": 0.0, "costed_runs": 0, "total_cost": 0.0}
    assert state["items"] == {}


async def test_no_completed_or_failed_runs_means_no_rate_or_duration(db_path, database):
    insert_sqlite(db_path, "workflow_history", [
        {"adw_id": "00000001", "status": "running", "start_time": "2026-03-01T00:00:00Z", "actual_cost_total": 0.1},
        {"adw_id": "00000002", "status": "pending"},
    ])
    summary = published(await reader_for(database, Clock(RUNS_NOW)).read())["summary"]
    # avg_cost is over completed runs, avg_cost_per_completion over finished ones: none here, so both
    # are left out; the windows and the total still sum; no earlier window, so no trend
    assert summary == {"total": 2, "completed": 0, "failed": 0, "running": 1, "cost_7d": 0.1, "cost_30d": 0.1,
                       "by_status": {"pending": 1, "running": 1}, "costed_runs": 1, "total_cost": 0.1}


async def test_quiet_database_is_not_read_but_cost_windows_age(db_path, database):
    insert_sqlite(db_path, "workflow_history", WORKFLOW_RUNS)
    clock = Clock(RUNS_NOW)
    reader = reader_for(database, clock)
    await reader.read()
    reads = []
    original = database.fetch_many
    database.fetch_many = lambda *args: reads.append(1) or original(*args)
    assert await reader.read() is None
    clock.advance(days=2)  # a7 leaves the 7-day window
    aged = await reader.read()
    assert (aged.summary["cost_7d"], aged.summary["cost_30d"]) == (1.25, 4.75)
    clock.advance(days=5)  # a1 leaves the 7-day window, c3 the 30-day one
    aged = await reader.read()
    assert (aged.summary["cost_7d"], aged.summary["cost_30d"]) == (0.0, 2.75)
    assert len(aged.items) == 8 and reads == []


async def test_a_commit_is_read(db_path, database):
    reader = reader_for(database, Clock(RUNS_NOW))
    await reader.read()
    insert_sqlite(db_path, "workflow_history", WORKFLOW_RUNS[:1])
    data = await reader.read()
    assert list(data.items) == ["a1b2c3d4"] and data.summary["completed"] == 1


def test_costs_query_narrows_to_a_day_before_the_month():
    since = workflow_history.since_date(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), dt.timedelta(days=30))
    assert since == "2026-01-29"


@pytest.mark.parametrize("text, expected", [
    ("2026-02-05T08:00:00Z", dt.datetime(2026, 2, 5, 8, tzinfo=dt.UTC)),
    ("2026-02-05 08:00:00", dt.datetime(2026, 2, 5, 8, tzinfo=dt.UTC)),
    ("2026-02-05T10:00:00+02:00", dt.datetime(2026, 2, 5, 8, tzinfo=dt.UTC)),
    ("yesterday", None),
    (None, None),
])
def test_start_times_parse_as_utc(text, expected):
    assert parse_time(text) == expected


async def test_a_run_that_starts_later_than_now_counts_at_once(db_path, database):
    """Naive local times east of UTC (or a skewed clock) put a new run's start ahead of the console's now."""
    insert_sqlite(db_path, "workflow_history", [
        {"adw_id": "00000001", "status": "running", "start_time": "2026-03-01T13:30:00", "actual_cost_total": 0.5},
        {"adw_id": "00000002", "status": "completed", "start_time": "2026-02-25T12:00:00Z", "actual_cost_total": 1.0,
         "duration_seconds": 60}])
    summary = published(await reader_for(database, Clock(RUNS_NOW)).read())["summary"]
    assert summary["cost_7d"] == summary["cost_30d"] == 1.5  # the run 1.5 h "ahead" is in both windows
