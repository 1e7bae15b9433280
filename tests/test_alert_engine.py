"""The alert engine: each condition fires once after `for`, repeats, resolves once; unknown is not resolved;
flapping is quiet; a restart (state kept in the history file) does not send again.

States are the broker's shapes (``{"summary", "items", "meta"}``), the clock is the test's, files are real.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog

from monitor.alerts.conditions import Breach, breaches
from monitor.alerts.engine import Alert, AlertEngine, AlertEntry, AlertEvent
from monitor.alerts.rules import AlertRule
from monitor.alerts.store import AlertStore
from monitor.history.recorder import History
from monitor.settings import HistorySettings

T0 = 1_772_409_600.0  # 2026-03-02T00:00:00Z
HOLD, REPEAT = 60.0, 300.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: float = T0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at

    def to(self, offset: float) -> None:
        self.at = T0 + offset


def state(summary: dict[str, Any] | None = None, items: dict[str, Any] | None = None, source: str = "ok",
          error: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": source} if error is None else {"source": source, "error": error}
    return {"summary": summary or {}, "items": items or {}, "meta": meta}


def queue(ready: int = 0, queued: int = 0, running: int = 0, failed: int = 0, paused: bool = False,
          items: dict[str, Any] | None = None, source: str = "ok") -> dict[str, Any]:
    by_status = {"queued": queued, "ready": ready, "running": running, "completed": 0, "blocked": 0, "failed": failed}
    return state({"total": ready + queued + running + failed, "paused": paused, "by_status": by_status}, items,
                 source)


def runs(source: str = "ok", **items: dict[str, Any]) -> dict[str, Any]:
    return state({"total": len(items)}, items, source)


FAILED_RUN = {"adw_id": "1a2b3c4d", "status": "failed", "issue_number": 42, "failed_phase": "Build"}
EXPENSIVE_RUN = {"adw_id": "1a2b3c4d", "status": "running", "current_cost": 3.5, "estimated_cost_total": 1.5}
# Each condition: its rule, the states that breach it (and the breach), the states that clear it.
CASES = {
    "workflow_failed": (AlertRule("failed", "workflow_failed"), {"adw-monitor": runs(**{"1a2b3c4d": FAILED_RUN})},
                        Breach("1a2b3c4d", "run 1a2b3c4d (#42) failed in Build", "adw-monitor"),
                        {"adw-monitor": runs(**{"1a2b3c4d": {**FAILED_RUN, "status": "completed"}})}),
    "source_down": (AlertRule("down", "source_down"),
                    {"queue": state(source="error", error="database file not found"), "routes": state()},
                    Breach("queue", "queue: source down: database file not found", "queue"),
                    {"queue": queue(), "routes": state()}),
    "check_unhealthy": (AlertRule("checks", "check_unhealthy"),
                        {"system-status": state(items={"db": {"status": "error", "message": "refused"},
                                                       "console": {"status": "healthy"}})},
                        Breach("db", "check db is error: refused", "system-status"),
                        {"system-status": state(items={"db": {"status": "healthy"}})}),
    "queue_stalled": (AlertRule("stalled", "queue_stalled"), {"queue": queue(ready=1, queued=2)},
                      Breach("", "queue: 3 waiting (1 ready, 2 queued), none running", "queue"),
                      {"queue": queue(ready=1, queued=2, running=1)}),
    "cost_over_estimate": (AlertRule("cost", "cost_over_estimate", factor=2.0),
                           {"adw-monitor": runs(**{"1a2b3c4d": EXPENSIVE_RUN})},
                           Breach("1a2b3c4d", "run 1a2b3c4d has cost $3.50, over 2× its estimate of $1.50",
                                  "adw-monitor"),
                           {"adw-monitor": runs(**{"1a2b3c4d": {**EXPENSIVE_RUN, "current_cost": 2.9}})}),
    "threshold": (AlertRule("failures", channel="queue", field="by_status.failed", above=0),
                  {"queue": queue(failed=3)}, Breach("", "queue: by_status.failed = 3 (above 0)", "queue"),
                  {"queue": queue(failed=0)}),
}


@pytest.mark.parametrize("condition", CASES)
def test_each_condition_fires_after_for_repeats_and_resolves_once(condition):
    rule, breached, breach, cleared = CASES[condition]
    rule = dataclasses.replace(rule, hold=HOLD, repeat=REPEAT)
    assert breaches(rule, breached) == [breach] and breaches(rule, cleared) == []
    clock = Clock()
    engine = AlertEngine([rule], now=clock)
    sent: list[tuple[float, AlertEvent]] = []
    for offset, states in [(0, breached), (30, breached), (59.9, breached), (60, breached), (61, breached),
                           (359, breached), (360, breached), (400, breached), (660, breached), (700, cleared),
                           (701, cleared), (2000, cleared)]:
        clock.to(offset)
        sent.extend((offset, event) for event in engine.evaluate(states))
        if offset == 61:
            assert engine.firing() == [Alert(rule.name, breach.key, breach.summary, breach.channel, T0, T0 + 60)]
    made = [AlertEvent(kind, rule.name, breach.key, breach.summary, breach.channel, T0, T0 + at)
            for kind, at in (("firing", 60), ("repeat", 360), ("repeat", 660), ("resolved", 700))]
    assert [event for _, event in sent] == made
    assert engine.firing() == [] and engine.pending() == []


def test_for_zero_fires_at_once_and_repeat_zero_never_repeats():
    rule, breached, _, _ = CASES["threshold"]
    clock = Clock()
    engine = AlertEngine([rule], now=clock)
    assert [event.kind for event in engine.evaluate(breached)] == ["firing"]
    clock.to(86_400)
    assert engine.evaluate(breached) == []


def test_flapping_inside_for_sends_nothing():
    rule, breached, _, cleared = CASES["workflow_failed"]
    clock = Clock()
    engine = AlertEngine([dataclasses.replace(rule, hold=HOLD)], now=clock)
    events = []
    for offset, states in [(0, breached), (20, cleared), (40, breached), (59, cleared), (70, breached),
                           (100, breached), (110, cleared), (200, cleared)]:
        clock.to(offset)
        events.extend(engine.evaluate(states))
        if offset == 100:
            assert [(entry.key, entry.since) for entry in engine.pending()] == [("1a2b3c4d", T0 + 70)]
    assert events == [] and engine.pending() == []


def test_a_source_going_down_neither_resolves_nor_repeats_nor_restarts_for():
    rule, breached, _, cleared = CASES["workflow_failed"]
    clock = Clock()
    engine = AlertEngine([dataclasses.replace(rule, repeat=REPEAT), AlertRule("stalled", "queue_stalled",
                                                                             hold=HOLD)], now=clock)
    assert [event.kind for event in engine.evaluate({**breached, "queue": queue(ready=1)})] == ["firing"]
    down = {"adw-monitor": runs(source="error"), "queue": queue(source="error")}
    for offset in (100, 400, 1000):  # the run's state is unknown: still firing, no repeat; the stall stays pending
        clock.to(offset)
        assert engine.evaluate(down) == []
    assert [alert.key for alert in engine.firing()] == ["1a2b3c4d"]
    assert [(entry.rule, entry.since) for entry in engine.pending()] == [("stalled", T0)]
    clock.to(1001)
    assert [event.kind for event in engine.evaluate({**breached, "queue": queue(ready=1)})] == ["repeat", "firing"]
    clock.to(1002)
    pending = {"adw-monitor": runs(source="pending"), "queue": queue(source="pending")}  # a restarted console
    assert engine.evaluate(pending) == []
    clock.to(1003)
    assert [(event.kind, event.rule) for event in engine.evaluate({**cleared, "queue": queue(running=1)})] == [
        ("resolved", "failed"), ("resolved", "stalled")]


def test_one_alert_per_rule_and_key():
    rule = AlertRule("failed", "workflow_failed")
    clock = Clock()
    engine = AlertEngine([rule, AlertRule("also failed", "workflow_failed")], now=clock)
    two = {"adw-monitor": runs(**{"1a2b3c4d": FAILED_RUN, "99887766": {"status": "failed"}})}
    assert sorted((e.rule, e.key) for e in engine.evaluate(two)) == [
        ("also failed", "1a2b3c4d"), ("also failed", "99887766"), ("failed", "1a2b3c4d"), ("failed", "99887766")]
    clock.to(10)
    one = {"adw-monitor": runs(**{"99887766": {"status": "failed"}})}
    assert sorted((e.kind, e.rule, e.key) for e in engine.evaluate(one)) == [
        ("resolved", "also failed", "1a2b3c4d"), ("resolved", "failed", "1a2b3c4d")]


def test_a_failed_run_is_one_alert_whichever_channel_says_so():
    rule = AlertRule("failed", "workflow_failed")
    queue_items = {"q1": {"queue_id": "q1", "status": "failed", "adw_id": "1a2b3c4d", "title": "Add login"},
                   "q2": {"queue_id": "q2", "status": "failed", "title": "Fix nav", "error_message": "boom"},
                   "q3": {"queue_id": "q3", "status": "running", "adw_id": "5e6f7a8b"}}
    states = {"adw-monitor": runs(**{"1a2b3c4d": FAILED_RUN}), "queue": queue(failed=2, items=queue_items)}
    assert breaches(rule, states) == [CASES["workflow_failed"][2],
                                      Breach("queue:q2", "queue: Fix nav failed: boom", "queue")]
    states["adw-monitor"] = runs(source="error")  # the queue still says run 1a2b3c4d failed
    assert breaches(rule, states)[0] == Breach("1a2b3c4d", "queue: Add login failed (run 1a2b3c4d)", "queue")


@pytest.mark.parametrize("rule, states", [
    (AlertRule("stalled", "queue_stalled"), {"queue": queue(ready=2, paused=True)}),  # paused on purpose
    (AlertRule("stalled", "queue_stalled"), {"queue": queue()}),  # nothing waiting
    (AlertRule("stalled", "queue_stalled"), {"queue": queue(ready=2, source="error")}),
    (AlertRule("cost", "cost_over_estimate"), {"adw-monitor": runs(a={"current_cost": 5.0,
                                                                      "estimated_cost_total": 0})}),
    (AlertRule("cost", "cost_over_estimate"), {"adw-monitor": runs(a={"current_cost": float("inf"),
                                                                      "estimated_cost_total": 1.0})}),
    (AlertRule("cost", "cost_over_estimate"), {"adw-monitor": runs(a={"current_cost": 1.0})}),
    (AlertRule("low", channel="workflow-history", field="success_rate", below=50.0),
     {"workflow-history": state({"success_rate": 40.0}, source="error")}),
    (AlertRule("low", channel="workflow-history", field="success_rate", below=50.0),
     {"workflow-history": state({})}),  # no finished runs yet: no rate, no breach
    (AlertRule("low", channel="workflow-history", field="success_rate", below=50.0), {}),
    (AlertRule("down", "source_down", channel="routes"), {"queue": state(source="error"), "routes": state()}),
    (AlertRule("checks", "check_unhealthy"), {"system-status": state(items={"db": {"status": "ok"}})}),
])
def test_what_is_no_breach(rule, states):
    assert breaches(rule, states) == []


def test_source_down_names_each_channel_and_clips_its_error():
    states = {"queue": state(source="error", error="x" * 500), "routes": state(source="error"),
              "workflows": state(source="pending")}
    found = breaches(AlertRule("down", "source_down"), states)
    assert [(b.key, b.channel) for b in found] == [("queue", "queue"), ("routes", "routes")]
    assert len(found[0].summary) == 200 and found[0].summary.endswith("…")
    assert found[1].summary == "routes: source down: no reason given"


def test_a_changed_summary_is_carried_without_a_new_alert():
    rule, _, _, _ = CASES["threshold"]
    clock = Clock()
    engine = AlertEngine([dataclasses.replace(rule, repeat=REPEAT)], now=clock)
    engine.evaluate({"queue": queue(failed=1)})
    clock.to(REPEAT)
    (event,) = engine.evaluate({"queue": queue(failed=4)})
    assert (event.kind, event.summary) == ("repeat", "queue: by_status.failed = 4 (above 0)")
    assert engine.firing()[0].summary == event.summary


# The store: the alerts' state and log in the history file.

@pytest.fixture
async def open_store(tmp_path):
    """Opens AlertStores (default: tmp_path/history.sqlite); closes them after the test."""
    opened = []

    async def open_(path: Path | None = tmp_path / "history.sqlite") -> AlertStore:
        store = AlertStore()
        await store.open(path)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


async def test_a_restart_does_not_send_again_and_still_resolves(open_store):
    rule, breached, breach, cleared = CASES["check_unhealthy"]
    rules = [dataclasses.replace(rule, hold=HOLD, repeat=REPEAT), AlertRule("stalled", "queue_stalled", hold=HOLD)]
    clock = Clock()
    engine, store = AlertEngine(rules, now=clock), await open_store()
    both = {**breached, "queue": queue(ready=1)}
    for offset in (0, 60):
        clock.to(offset)
        await store.save(engine.evaluate(both), engine.state())
    await store.close()

    clock.to(100)  # a new console: its channels pending at first, then the same breaches
    again, store = AlertEngine(rules, now=clock), await open_store()
    again.restore(await store.load())
    assert again.firing() == [Alert("checks", "db", breach.summary, "system-status", T0, T0 + 60),
                              Alert("stalled", "", "queue: 1 waiting (1 ready, 0 queued), none running", "queue",
                                    T0, T0 + 60)]
    assert again.evaluate({"system-status": state(source="pending"), "queue": queue(source="pending")}) == []
    assert again.evaluate(both) == []  # already sent before the restart
    clock.to(360)  # the repeat falls due REPEAT after the firing, restart or not
    assert [(e.kind, e.rule) for e in again.evaluate(both)] == [("repeat", "checks")]
    clock.to(400)
    events = again.evaluate({**cleared, "queue": queue(running=1)})
    assert [(e.kind, e.rule, e.since) for e in events] == [("resolved", "checks", T0), ("resolved", "stalled", T0)]
    await store.save(events, again.state())
    assert [(e.kind, e.rule) for e in await store.recent()] == [
        ("resolved", "stalled"), ("resolved", "checks"), ("firing", "stalled"), ("firing", "checks")]


async def test_pending_alerts_keep_their_start_across_a_restart(open_store):
    rule, breached, _, _ = CASES["workflow_failed"]
    rules = [dataclasses.replace(rule, hold=HOLD)]
    clock = Clock()
    engine, store = AlertEngine(rules, now=clock), await open_store()
    await store.save(engine.evaluate(breached), engine.state())
    await store.close()
    again, store = AlertEngine(rules, now=clock), await open_store()
    again.restore(await store.load())
    clock.to(60)
    assert [(e.kind, e.since) for e in again.evaluate(breached)] == [("firing", T0)]


async def test_alerts_of_rules_no_longer_configured_are_dropped(open_store):
    clock = Clock()
    engine, store = AlertEngine([CASES["threshold"][0]], now=clock), await open_store()
    await store.save(engine.evaluate(CASES["threshold"][1]), engine.state())
    renamed = AlertEngine([dataclasses.replace(CASES["threshold"][0], name="renamed")], now=clock)
    renamed.restore(await store.load())
    assert renamed.firing() == [] and renamed.state() == ()


async def test_the_log_survives_a_restart_and_keeps_the_newest_first(open_store):
    store = await open_store()
    events = [AlertEvent("firing", "r", str(n), f"s{n}", "queue", T0, T0 + n) for n in range(5)]
    await store.save(events[:3], ())
    await store.save(events[3:], ())
    await store.close()
    store = await open_store()
    assert await store.recent(2) == [events[4], events[3]] and await store.recent() == events[::-1]


async def test_nothing_new_is_no_write(open_store, tmp_path):
    store = await open_store()
    entry = AlertEntry("r", "", "s", "queue", T0)
    await store.save([], (entry,))
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("DROP TABLE alert_state")  # a write now would fail and be logged
    conn.close()
    with structlog.testing.capture_logs() as logs:
        await store.save([], (entry,))
    assert logs == []


async def test_a_failing_write_is_logged_once_and_written_later(open_store, tmp_path):
    store = await open_store()
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("ALTER TABLE alert_state RENAME TO kept_aside")
    conn.close()
    events = [AlertEvent("firing", "r", str(n), "s", "queue", T0, T0 + n) for n in range(3)]
    with structlog.testing.capture_logs() as logs:
        await store.save(events[:1], ())
        await store.save(events[1:2], ())
    assert [entry["event"] for entry in logs] == ["alerts_store_write_failed"] and store.write_errors == 2
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("ALTER TABLE kept_aside RENAME TO alert_state")
    conn.close()
    with structlog.testing.capture_logs() as logs:
        await store.save(events[2:], ())
    assert [entry["event"] for entry in logs] == ["alerts_store_writing_again"]
    await store.close()
    assert await (await open_store()).recent() == events[::-1]  # the events of the failed writes reached the file


async def test_an_unusable_file_is_one_warning_and_memory(open_store, tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is no database" * 100)
    with structlog.testing.capture_logs() as logs:
        store = await open_store(path)
    assert [entry["event"] for entry in logs] == ["alerts_store_unavailable"] and store.conn is None
    event = AlertEvent("firing", "r", "", "s", "queue", T0, T0)
    with structlog.testing.capture_logs() as logs:
        await store.save([event], ())
    assert logs == [] and await store.load() == () and await store.recent() == [event]
    assert path.read_bytes() == b"this is no database" * 100  # never changed: the history sets it aside


async def test_no_file_is_memory_without_a_word(open_store):
    with structlog.testing.capture_logs() as logs:
        store = await open_store(None)
    assert logs == [] and await store.load() == ()


async def test_the_history_keeps_its_file_with_the_alert_tables_in_it(open_store, tmp_path):
    path = tmp_path / "history.sqlite"
    store = await open_store(path)  # alerts first: the file holds only their tables
    await store.save([AlertEvent("firing", "r", "", "s", "queue", T0, T0)], ())
    for _ in range(2):  # then the history, twice: its tables beside the alerts', never set aside
        history = History(HistorySettings(), path)
        with structlog.testing.capture_logs() as logs:
            await history.open()
        await history.close()
        assert logs == [] and list(tmp_path.glob("*.corrupt-*")) == []
    await store.close()
    assert len(await (await open_store(path)).recent()) == 1
