"""The console's history: sampling, the file (restart, roll-up, retention, recovery) and its endpoint.

Real SQLite files in tmp_path, a clock the test moves (``Clock``), and the real app for the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from monitor.demo.history_seed import seed_history
from monitor.demo.run import demo_settings
from monitor.demo.workspace import Workspace, create_workspace
from monitor.history.paths import history_path
from monitor.history.recorder import History, run_sampler
from monitor.history.store import FINE_HOURS, HOUR
from monitor.keys import BROKER, HISTORY, POLLERS
from monitor.settings import HistorySettings, settings_from_mapping

DAY = 86_400
T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()  # a UTC midnight


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: float = T0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


def state(summary: dict[str, Any], items: dict[str, Any] | None = None, source: str = "ok") -> dict[str, Any]:
    """A channel's state as the broker holds it."""
    return {"summary": summary, "items": items or {}, "meta": {"source": source}}


def queue_state(total: int, completed: int, running: int, source: str = "ok") -> dict[str, Any]:
    by_status = {"queued": total - completed - running, "ready": 0, "running": running, "completed": completed,
                 "blocked": 0, "failed": 0}
    return state({"total": total, "paused": False, "by_status": by_status}, source=source)


def checks_state(**statuses: str) -> dict[str, Any]:
    items = {name: {"name": name, "status": status} for name, status in statuses.items()}
    healthy = sum(status == "healthy" for status in statuses.values())
    return state({"healthy": healthy, "total": len(items), "health_percentage": 100.0 * healthy / len(items)}, items)


def history_state(*runs: tuple[str, float]) -> dict[str, Any]:
    """workflow-history with one item per (start_time, actual_cost_total)."""
    items = {f"run{i}": {"adw_id": f"run{i}", "start_time": start, "actual_cost_total": cost}
             for i, (start, cost) in enumerate(runs)}
    return state({"total": len(items), "success_rate": 75.0}, items)


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def values(series) -> list[float | None]:
    return [value for _, value in series.points]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def open_history(tmp_path, clock):
    """Opens Histories (default: tmp_path/history.sqlite, the test's clock); closes them after the test."""
    opened = []

    async def open_(path: Path | None = None, **settings: Any) -> History:
        history = History(HistorySettings(**settings), path or tmp_path / "history.sqlite", now=clock)
        await history.open()
        opened.append(history)
        return history

    yield open_
    for history in opened:
        await history.close()


async def test_a_sample_records_each_series_of_each_channel(open_history, clock):
    history = await open_history()
    await history.sample({"queue": queue_state(10, 4, 2), "adw-monitor": state({"running": 3, "failed": 1})})
    queue = history.recent("queue")
    assert set(queue) == {"depth", "running"} and len(queue["depth"].points) == 90
    assert queue["depth"].points[-1] == (T0, 6.0) and values(queue["running"])[-1] == 2.0
    assert values(queue["depth"])[:-1] == [None] * 89  # nothing before the console ran: gaps, not zeros
    assert queue["depth"].step == 60.0 and queue["depth"].format == ""
    assert values(history.recent("adw-monitor")["failed"])[-1] == 1.0


async def test_a_channel_in_error_records_none(open_history, clock):
    history = await open_history()
    await history.sample({"queue": queue_state(10, 4, 2)})
    clock.advance(60)
    await history.sample({"queue": queue_state(10, 4, 2, source="error"),
                          "webhook-status": state({}, source="pending")})
    assert values(history.recent("queue")["depth"])[-2:] == [6.0, None]
    assert values(history.recent("webhook-status")["success_rate"])[-1] is None
    assert await history.store.count("fine") == 2  # a gap is no row


async def test_each_check_has_a_health_series(open_history):
    history = await open_history()
    await history.sample({"system-status": checks_state(database="healthy", webhook="degraded", backend="error",
                                                        probe="unknown")})
    series = history.recent("system-status")
    assert [name for name in series] == ["health_percentage", "check:backend", "check:database", "check:webhook"]
    assert {name: values(one)[-1] for name, one in series.items()} == {
        "health_percentage": 25.0, "check:backend": 0.0, "check:database": 1.0, "check:webhook": 0.5}
    assert series["check:database"].label == "database" and series["health_percentage"].format == "percent"


async def test_cost_per_day_is_the_cost_of_runs_started_that_utc_day(open_history, clock):
    history = await open_history()
    clock.advance(10 * HOUR)
    await history.sample({"workflow-history": history_state((iso(T0 + HOUR), 1.25), (iso(T0 + 2 * HOUR), 0.5),
                                                            (iso(T0 - HOUR), 9.0), (iso(T0 + 3 * HOUR), 0.0),
                                                            ("not a time", 4.0))})
    series = history.recent("workflow-history")
    assert values(series["cost_per_day"])[-1] == 1.75 and series["cost_per_day"].format == "money"
    assert values(series["success_rate"])[-1] == 75.0


async def test_the_newest_slots_survive_a_restart(open_history, tmp_path, clock):
    first = await open_history()
    for depth in (3, 4, 5):
        await first.sample({"queue": queue_state(depth, 0, 1)})
        assert values(first.recent("queue")["depth"])[-1] == depth  # each sample shows at once (never a stale copy)
        clock.advance(60)
    await first.close()
    clock.advance(120)  # the console was down two slots
    second = await open_history()
    await second.sample({"queue": queue_state(9, 0, 1)})
    assert values(second.recent("queue")["depth"])[-6:] == [3.0, 4.0, 5.0, None, None, 9.0]


async def test_hours_roll_up_by_each_series_aggregate(open_history, clock):
    history = await open_history()
    for minute, (depth, cost, health) in enumerate([(2, 1.0, "healthy"), (4, 3.0, "degraded"), (9, 2.0, "healthy")]):
        clock.at = T0 + HOUR + minute * 60
        await history.sample({"queue": queue_state(depth, 0, 0), "system-status": checks_state(db=health),
                              "workflow-history": history_state((iso(T0), cost))})
    clock.at = T0 + 4 * DAY  # the fine points are gone: only the hourly ones answer
    await history.sample({})
    assert await history.store.count("fine") == 0
    got = await history.query("queue", T0, clock.at, HOUR)
    assert values(got["depth"])[:3] == [None, 5.0, None]
    checks = await history.query("system-status", T0, clock.at, HOUR)
    assert values(checks["check:db"])[1] == 0.5 and values(checks["health_percentage"])[1] == 0.0
    days = await history.query("workflow-history", T0, clock.at, DAY)
    assert values(days["cost_per_day"]) == [3.0, None, None, None, None]


async def test_fine_points_are_bucketed_by_step_from_the_file_as_from_memory(open_history, clock):
    history = await open_history()
    for depth in range(10):
        await history.sample({"queue": queue_state(depth, 0, 0)})
        clock.advance(60)
    clock.advance(-60)
    from_memory = await history.query("queue", T0, clock.at, 300)
    history.window.size = 1  # the range is now older than the window: the file answers
    from_file = await history.query("queue", T0, clock.at, 300)
    assert values(from_memory["depth"]) == values(from_file["depth"]) == [2.0, 7.0]


async def test_short_buckets_show_an_hours_rolled_up_point_where_its_fine_points_are_gone(open_history, clock):
    history = await open_history()
    await history.sample({"queue": queue_state(4, 0, 0)})
    clock.at = T0 + FINE_HOURS * HOUR + 2 * HOUR
    await history.sample({"queue": queue_state(8, 0, 0)})
    got = values((await history.query("queue", T0, clock.at, 600))["depth"])
    assert got[0] == 4.0 and got[-1] == 8.0 and set(got[1:-1]) == {None}


async def test_history_older_than_its_days_is_dropped(open_history, clock):
    history = await open_history(days=3)
    await history.sample({"queue": queue_state(5, 0, 0)})
    clock.advance(HOUR)
    await history.sample({"queue": queue_state(6, 0, 0)})
    assert await history.store.count("hourly") == 2  # the first hour of depth and running
    clock.advance(FINE_HOURS * HOUR + HOUR)
    await history.sample({})
    assert await history.store.count("fine") == 0 and await history.store.count("hourly") == 4  # both hours
    clock.advance(DAY)  # both hours are now more than three days old
    await history.sample({})
    assert await history.store.count("hourly") == 0
    assert values((await history.query("queue", T0, clock.at, HOUR))["depth"]) == [None] * 75


async def test_a_corrupt_file_is_set_aside_and_recreated(open_history, tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is no database" * 100)
    with structlog.testing.capture_logs() as logs:
        history = await open_history(path)
    assert [entry["event"] for entry in logs] == ["history_file_recreated"]
    assert "not a usable SQLite file" in logs[0]["reason"]
    aside = list(tmp_path.glob("history.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"this is no database" * 100
    await history.sample({"queue": queue_state(2, 1, 1)})
    assert values(history.recent("queue")["depth"])[-1] == 1.0 and await history.store.count("fine") == 2


async def test_a_file_of_another_schema_is_set_aside(open_history, tmp_path):
    path = tmp_path / "history.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE fine (x)")
    conn.close()
    with structlog.testing.capture_logs() as logs:
        history = await open_history(path)
    assert logs[0]["event"] == "history_file_recreated" and "not a history file" in logs[0]["reason"]
    assert history.store is not None and len(list(tmp_path.glob("history.sqlite.corrupt-*"))) == 1


async def test_a_missing_file_is_created_quietly(open_history, tmp_path):
    with structlog.testing.capture_logs() as logs:
        history = await open_history(tmp_path / "new" / "dir" / "history.sqlite")
    assert logs == [] and history.store is not None and (tmp_path / "new" / "dir" / "history.sqlite").exists()


async def test_a_failing_write_is_logged_once_and_retried(open_history, tmp_path, clock):
    history = await open_history()
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("DROP TABLE fine")
    conn.close()
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            await history.sample({"queue": queue_state(3, 0, 0)})
            clock.advance(60)
    assert [entry["event"] for entry in logs] == ["history_write_failed"] and history.write_errors == 3
    assert values(history.recent("queue")["depth"])[-3:] == [3.0, 3.0, 3.0]  # memory still has them


async def test_disabled_history_keeps_nothing(open_history, tmp_path):
    history = await open_history(enabled=False)
    await history.sample({"queue": queue_state(3, 0, 0)})
    assert {name: one.points for name, one in history.recent("queue").items()} == {"depth": [], "running": []}
    assert not (tmp_path / "history.sqlite").exists()


def test_the_default_path_follows_systemd_then_xdg_then_home():
    assert history_path("/srv/h.sqlite", {"STATE_DIRECTORY": "/var/lib/monitor"}) == Path("/srv/h.sqlite")
    assert history_path("", {"STATE_DIRECTORY": "/var/lib/monitor:/var/lib/other"}) == Path(
        "/var/lib/monitor/history.sqlite")
    assert history_path("", {"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}) == Path(
        "/x/state/monitor/history.sqlite")
    assert history_path("", {"XDG_STATE_HOME": "relative", "HOME": "/home/u"}) == Path(
        "/home/u/.local/state/monitor/history.sqlite")


async def test_an_empty_path_puts_the_file_in_the_state_directory(make_client, state_home):
    client = await make_client({"history": {"path": ""}})
    path = state_home / "monitor" / "history.sqlite"
    assert client.app[HISTORY].path == path and client.app[HISTORY].store is not None and path.is_file()


async def test_an_unwritable_path_leaves_the_console_serving(make_client, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with structlog.testing.capture_logs() as logs:
        client = await make_client({"history": {"path": str(tmp_path / "a-file" / "history.sqlite")}})
    assert "history_disabled" in [entry["event"] for entry in logs]
    assert client.app[HISTORY].store is None
    assert (await client.get("/queue")).status == 200
    answer = await client.get("/api/v1/queue/history")
    assert answer.status == 200 and set((await answer.json())["series"]) == {"depth", "running"}


async def test_the_endpoint_serves_bucketed_series(client, queue_table):
    for status in ("running", "completed", "queued"):
        queue_table.insert(status)
    await client.app[POLLERS]["queue"].poll()
    history = client.app[HISTORY]
    # As the sampler does (and may do again meanwhile, from the same state): the newest slot holds depth 2.
    await history.sample({"queue": client.app[BROKER].current("queue").state})
    recent = await client.get("/api/v1/queue/history", params={"since": str(history.now() - 600)})
    assert recent.status == 200 and recent.content_type == "application/json"
    body = await recent.json()
    assert body["channel"] == "queue" and body["step"] == 60 and body["until"] >= body["since"]
    depth = body["series"]["depth"]
    assert depth["label"] and depth["format"] == "" and depth["points"][-1][1] == 2.0
    assert body["series"]["running"]["points"][-1][1] == 1.0
    assert len(depth["points"]) == 11 and all(ts % 60 == 0 for ts, _ in depth["points"])
    whole_day = await (await client.get("/api/v1/queue/history")).json()  # older than memory: from the file
    assert len(whole_day["series"]["depth"]["points"]) == 1441 and whole_day["series"]["depth"]["points"][-1][1] == 2.0
    wide = await (await client.get("/api/v1/queue/history", params={"step": "7200"})).json()
    assert wide["step"] == 7200 and all(ts % 7200 == 0 for ts, _ in wide["series"]["depth"]["points"])


async def test_the_endpoint_reads_iso_times(client):
    since = dt.datetime.fromtimestamp(client.app[HISTORY].now() - 3600, dt.UTC).isoformat().replace("+00:00", "Z")
    answer = await client.get("/api/v1/system-status/history", params={"since": since, "step": "3600"})
    assert answer.status == 200 and "health_percentage" in (await answer.json())["series"]


async def test_a_negative_since_counts_back_from_the_server_s_clock(client):
    history = client.app[HISTORY]
    relative = await (await client.get("/api/v1/queue/history", params={"since": "-600"})).json()
    absolute = await (await client.get("/api/v1/queue/history", params={"since": str(history.now() - 600)})).json()
    assert len(relative["series"]["depth"]["points"]) == len(absolute["series"]["depth"]["points"]) == 11
    answer = await client.get("/api/v1/queue/history", params={"since": str(-history.now() - 60)})
    assert answer.status == 400 and "since: expected a time after 1970" in (await answer.json())["error"]


async def test_the_endpoint_404s_an_unknown_channel(client):
    answer = await client.get("/api/v1/nope/history")
    assert answer.status == 404 and "unknown channel" in await answer.text()


@pytest.mark.parametrize("params, expected", [
    ({"since": "yesterday"}, "since: expected unix seconds or an ISO-8601 time"),
    ({"since": "nan"}, "since: expected a time after 1970"),
    ({"since": "4102444800"}, "is in the future"),
    ({"step": "10"}, "step: expected seconds from 60"),
    ({"step": "86401"}, "step: expected seconds from 60"),
    ({"step": "often"}, "step: expected seconds"),
    ({"since": "0", "step": "60"}, "is more than 10000; use a larger step or a later since"),
])
async def test_the_endpoint_refuses_bad_parameters(client, params, expected):
    answer = await client.get("/api/v1/queue/history", params=params)
    assert answer.status == 400 and expected in (await answer.json())["error"]


async def test_writes_are_counted_in_metrics(client):
    await client.app[HISTORY].sample({"queue": queue_state(1, 0, 0)})
    text = await (await client.get("/metrics")).text()
    assert "monitor_history_writes_total" in text and "monitor_history_write_errors_total 0.0" in text


async def test_the_sampler_samples_at_once_and_outlives_a_failing_pass(open_history, clock):
    history = await open_history()
    clock.at = T0 + 59.99  # the next slot starts a hundredth of a second from now
    calls, second = [], asyncio.Event()

    def states():
        calls.append(clock())
        if len(calls) == 1:
            raise RuntimeError("a state no series can read")
        clock.at = T0 + 60
        second.set()
        return {"queue": queue_state(4, 1, 1)}

    with structlog.testing.capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(run_sampler(history, states))
        await asyncio.wait_for(second.wait(), timeout=30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [entry["event"] for entry in logs] == ["history_sample_failed"]
    assert history.recent("queue")["depth"].points[-1] == (T0 + 60, 3.0)


def seed_settings(tmp_path: Path) -> Any:
    return settings_from_mapping({"history": {"path": str(tmp_path / "history.sqlite")},
                                  "checks": [{"name": "webhook port", "kind": "tcp", "target": "127.0.0.1:9"}]})


async def seeded_demo(tmp_path: Path, clock: Clock) -> Workspace:
    """A fresh demo workspace and the week seeded for it, at the real time (its runs are dated by it)."""
    ws = await asyncio.to_thread(create_workspace, tmp_path / "demo", random.Random(7))
    clock.at = time.time()
    assert await seed_history(seed_settings(tmp_path), random.Random(7), ws, now=clock.at)
    return ws


def db_rows(ws: Workspace, sql: str) -> list[Any]:
    with contextlib.closing(sqlite3.connect(ws.db_path)) as conn:
        return conn.execute(sql).fetchall()


async def test_the_demo_seeds_a_week_once(open_history, tmp_path, clock):
    ws = await seeded_demo(tmp_path, clock)
    assert not await seed_history(seed_settings(tmp_path), random.Random(8), ws)  # a workspace run before keeps its own
    history = await open_history()
    depth = values(history.recent("queue")["depth"])
    assert None not in depth and all(value == int(value) for value in depth)
    checks = history.recent("system-status")
    assert set(checks) == {"health_percentage", "check:backend", "check:console", "check:database", "check:webhook",
                           "check:webhook port"}
    rates = values((await history.query("webhook-status", clock.at - 7 * DAY, clock.at, HOUR))["success_rate"])
    assert None not in rates[:-1] and all(80.0 <= rate <= 100.0 for rate in rates[:-1])


async def test_the_demo_seed_costs_each_day_what_the_workspace_runs_cost(open_history, tmp_path, clock):
    ws = await seeded_demo(tmp_path, clock)
    costs = [(dt.datetime.fromisoformat(start).timestamp(), cost) for start, cost in
             db_rows(ws, "SELECT start_time, actual_cost_total FROM workflow_history WHERE actual_cost_total > 0")]

    def spent(since: float, until: float) -> float:
        return sum(cost for started, cost in costs if since <= started < until)

    history = await open_history()
    today = clock.at - clock.at % DAY
    days = [today - n * DAY for n in range(7, 0, -1)]
    week = values((await history.query("workflow-history", days[0], clock.at, DAY))["cost_per_day"])
    assert week[:7] == pytest.approx([spent(day, day + DAY) for day in days], abs=1e-4)
    assert sum(week[:7]) > 0  # the week holds runs, so the check above compared something
    last, cost = history.recent("workflow-history")["cost_per_day"].points[-1]  # the slot before now's
    assert last == clock.at // 60 * 60 - 60 and cost == pytest.approx(spent(last - last % DAY, last + 60), abs=1e-4)


async def test_the_demo_seed_ends_where_the_workspace_stands(open_history, tmp_path, clock):
    ws = await seeded_demo(tmp_path, clock)
    queue = dict(db_rows(ws, "SELECT status, COUNT(*) FROM phase_queue GROUP BY status"))
    runs = dict(db_rows(ws, "SELECT status, COUNT(*) FROM workflow_history GROUP BY status"))
    features = dict(db_rows(ws, "SELECT status, COUNT(*) FROM planned_features GROUP BY status"))
    agents = [status for adw_id, status in db_rows(ws, "SELECT adw_id, status FROM workflow_history")
              if (ws.agents_dir / adw_id).is_dir()]
    anchors = {
        ("queue", "depth"): sum(queue.values()) - queue.get("completed", 0),
        ("queue", "running"): queue.get("running", 0),
        ("adw-monitor", "running"): agents.count("running") + agents.count("pending"),
        ("adw-monitor", "failed"): agents.count("failed"),
        ("workflow-history", "success_rate"): round(100 * runs["completed"] / (runs["completed"] + runs["failed"]), 1),
        ("planned-features", "completion_rate"):
            round(100 * features["completed"] / (sum(features.values()) - features.get("cancelled", 0)), 1),
    }
    history = await open_history()
    for (channel, name), anchor in anchors.items():
        assert history.recent(channel)[name].points[-1] == (clock.at // 60 * 60 - 60, anchor), (channel, name)
        week = values((await history.query(channel, clock.at - 7 * DAY, clock.at, HOUR))[name])
        assert all(0 <= value <= 100 for value in week if value is not None), (channel, name)


async def test_a_demo_workspace_that_cannot_be_read_is_not_seeded(open_history, tmp_path, clock):
    with structlog.testing.capture_logs() as logs:
        assert not await seed_history(seed_settings(tmp_path), random.Random(7), Workspace.at(tmp_path / "none"))
    assert [entry["event"] for entry in logs] == ["demo_history_not_seeded"]
    history = await open_history()
    assert await history.store.count("fine") == await history.store.count("hourly") == 0


def test_the_demo_keeps_its_history_in_its_workspace(tmp_path):
    settings = demo_settings(Workspace.at(tmp_path / "demo"), "127.0.0.1", 0, 9)
    assert settings.history.path == str((tmp_path / "demo" / "history.sqlite").absolute())
