"""tac-webbuilder's client against the compat surface: every channel's original document, live.

``OriginalClient`` behaves as the React client does: it connects to
``<prefix>/api/v1/ws/<channel>``, never sends a message, and keeps only the last ``data``
of the message type it listens for. Expected documents are worked out by hand from rows
and state files in the real formats (tests/tables.py, tests/webhook_standin.py).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from aiohttp import WSMsgType

from monitor.channels.base import ChannelData
from monitor.compat.documents import DOCUMENTS, render
from monitor.compat.runs import function_name, issue_int
from monitor.keys import BROKER, COMPAT, HUB
from monitor.state import ChannelState
from tests.support import RawWebSocket, poll, write_state
from tests.tables import WORKFLOW_RUNS, insert_sqlite
from tests.webhook_standin import DEGRADED_DOCUMENT, HEALTHY_DOCUMENT, start_standin

CLIENT_ORIGIN = "http://localhost:5173"
COMPAT_SECTION = {"compat": {"tac_webbuilder": {"backend_url": "", "allowed_origins": [CLIENT_ORIGIN]}}}


class OriginalClient:
    """A socket as the original client holds it: never sends, keeps the last data of its type."""

    def __init__(self, ws, message_type: str) -> None:
        self.ws, self.message_type = ws, message_type
        self.data: Any = None
        self.messages = 0
        self.pings = 0

    async def next(self) -> Any:
        """The next message of its type (pings answered as a browser does, by itself)."""
        while True:
            msg = await self.ws.receive(timeout=5)
            if msg.type is WSMsgType.PING:
                self.pings += 1
                await self.ws.pong(msg.data)
                continue
            assert msg.type is WSMsgType.TEXT, msg
            message = json.loads(msg.data)
            assert list(message) == ["type", "data"]
            if message["type"] == self.message_type:
                self.data, self.messages = message["data"], self.messages + 1
                return self.data


@pytest.fixture
async def compat_client(make_client):
    """The console with the compat surface on (no backend)."""
    async def make(overrides: dict[str, Any] | None = None):
        return await make_client({**COMPAT_SECTION, **(overrides or {})})
    return make


async def connect(client, channel: str) -> OriginalClient:
    ws = await client.ws_connect(f"/tac/api/v1/ws/{channel}", headers={"Origin": CLIENT_ORIGIN}, autoping=False)
    return OriginalClient(ws, DOCUMENTS[channel].message_type)


async def first(client, channel: str) -> Any:
    """The document a fresh client gets on connect."""
    original = await connect(client, channel)
    data = await original.next()
    await original.ws.close()
    return data


async def test_queue_document_has_the_17_keys_in_order_nulls_explicit(compat_client, queue_table):
    queue_table.insert(status="running", title="Plan the login page", feature_id=7, phase_number=1,
                       adw_id="a1b2c3d4", priority=20, queue_position=1)
    client = await compat_client()
    await poll(client)
    data = await first(client, "queue")
    assert list(data) == ["phases", "total", "paused"] and data["total"] == 1 and data["paused"] is False
    phase = data["phases"][0]
    assert list(phase) == ["queue_id", "feature_id", "phase_number", "issue_number", "status", "current_phase",
                           "depends_on_phases", "phase_data", "created_at", "updated_at", "error_message", "adw_id",
                           "pr_number", "priority", "queue_position", "ready_timestamp", "started_timestamp"]
    # every value; created_at and updated_at are NULL in the row: the original stamps "now" (its model's default)
    assert {key: value for key, value in phase.items() if key not in ("created_at", "updated_at")} == {
        "queue_id": phase["queue_id"], "feature_id": 7, "phase_number": 1, "issue_number": None, "status": "running",
        "current_phase": "init", "depends_on_phases": [], "phase_data": {"title": "Plan the login page"},
        "error_message": None, "adw_id": "a1b2c3d4", "pr_number": None, "priority": 20, "queue_position": 1,
        "ready_timestamp": None, "started_timestamp": None}
    assert phase["created_at"][:4] == phase["updated_at"][:4] == str(dt.date.today().year)


async def test_queue_document_orders_by_feature_then_phase_and_stops_at_100(compat_client, queue_table):
    for number in range(104, 0, -1):
        queue_table.insert(feature_id=number // 10, phase_number=number % 10)
    queue_table.insert(feature_id=None, phase_number=1, title="no feature")
    queue_table.set_paused(True)
    client = await compat_client()
    await poll(client)
    data = await first(client, "queue")
    order = [(phase["feature_id"], phase["phase_number"]) for phase in data["phases"]]
    # 105 rows: numbers 1..104 as (tens, units), then a NULL feature, which PostgreSQL sorts last
    assert order == [(n // 10, n % 10) for n in range(1, 101)] and data["total"] == 100
    assert data["paused"] is True


async def test_adw_monitor_document(compat_client, agents, trees):
    write_state(agents, "a1b2c3d4", {
        "adw_id": "a1b2c3d4", "issue_number": "42", "issue_class": "/feature", "nl_input": "x" * 150,
        "workflow_template": None, "start_time": "2026-01-02T00:00:00+00:00", "worktree_path": "/w/a1b2c3d4",
        "github_url": "https://github.com/acme/shop/issues/42", "estimated_cost_total": 1.5})
    (trees / "a1b2c3d4").mkdir()
    write_state(agents, "b2c3d4e5", {"adw_id": "b2c3d4e5", "issue_number": "43",
                                     "start_time": "2026-01-03T00:00:00+00:00"})
    client = await compat_client()
    await poll(client, "adw-monitor")
    data = await first(client, "adw-monitor")
    assert list(data) == ["summary", "workflows", "last_updated"]
    # a worktree and no process: paused; neither: queued. Paused sorts before queued.
    assert data["summary"] == {"total": 2, "running": 0, "completed": 0, "failed": 0, "paused": 1}
    paused, queued = data["workflows"]
    assert list(paused) == ["adw_id", "issue_number", "pr_number", "issue_class", "title", "status",
                            "current_phase", "phase_progress", "workflow_template", "start_time", "end_time",
                            "duration_seconds", "github_url", "worktree_path", "current_cost",
                            "estimated_cost_total", "error_count", "last_error", "is_process_active",
                            "phases_completed", "total_phases"]
    assert paused["adw_id"] == "a1b2c3d4" and paused["status"] == "paused" and queued["status"] == "queued"
    assert paused["issue_number"] == "42" and paused["title"] == "x" * 100  # raw, as the state file has it
    assert paused["workflow_template"] == "" and paused["worktree_path"] == "/w/a1b2c3d4"
    assert paused["total_phases"] == 9 and paused["phases_completed"] == [] and paused["pr_number"] is None
    assert paused["estimated_cost_total"] == 1.5 and paused["current_cost"] is None
    assert paused["error_count"] == 0 and paused["is_process_active"] is False
    assert data["last_updated"]  # stamped when built


async def test_workflows_document_reads_the_issue_as_a_number(compat_client, agents):
    write_state(agents, "a1b2c3d4", {"adw_id": "a1b2c3d4", "issue_number": "42",
                                     "all_adws": ["adw_plan_iso", "adw_build_iso", "adw_test_iso"],
                                     "github_url": "https://github.com/acme/shop/issues/42"})
    write_state(agents, "b2c3d4e5", {"adw_id": "b2c3d4e5", "issue_number": "n/a"})
    client = await compat_client()
    await poll(client, "workflows")
    data = await first(client, "workflows")
    assert sorted(data, key=lambda w: w["adw_id"]) == [
        {"adw_id": "a1b2c3d4", "issue_number": 42, "phase": "test",
         "github_url": "https://github.com/acme/shop/issues/42"},
        {"adw_id": "b2c3d4e5", "issue_number": 0, "phase": "plan", "github_url": None},
    ]


async def test_workflow_history_document_and_the_originals_analytics(compat_client, db_path):
    insert_sqlite(db_path, "workflow_history", [
        {**run, "created_at": run.get("start_time") or "2026-03-01T12:00:00Z"} for run in WORKFLOW_RUNS])
    client = await compat_client()
    await poll(client, "workflow-history")
    data = await first(client, "workflow-history")
    assert list(data) == ["workflows", "total_count", "analytics"] and data["total_count"] == 8
    rows = data["workflows"]
    assert len(rows) == 8 and len(rows[0]) == 61
    # newest created first: e5 (created "now", no start time) then d4 (03-01 11:00)
    assert [row["adw_id"] for row in rows[:2]] == ["e5f6a7b8", "d4e5f6a7"]
    c3 = next(row for row in rows if row["adw_id"] == "c3d4e5f6")
    assert c3["status"] == "failed" and c3["error_message"] == "tests failed" and c3["retry_count"] == 0
    assert c3["anomaly_flags"] == [] and c3["cost_breakdown"] is None and c3["scoring_version"] == "1.0"
    assert c3["hour_of_day"] == -1 and c3["worktree_reused"] is False and c3["quality_score"] == 0.0
    analytics = data["analytics"]
    assert list(analytics) == ["total_workflows", "completed_workflows", "failed_workflows",
                               "avg_duration_seconds", "success_rate_percent", "workflows_by_model",
                               "workflows_by_template", "workflows_by_status", "avg_cost", "total_cost",
                               "avg_cost_per_completion", "cost_trend_7day", "cost_trend_30day", "avg_tokens",
                               "avg_cache_efficiency"]
    # the original's success rate is completed / every run: 4 / 8, not the console's 4 / (4 + 2)
    assert analytics["success_rate_percent"] == 50.0
    assert analytics["total_workflows"] == 8 and analytics["completed_workflows"] == 4
    assert analytics["failed_workflows"] == 2 and analytics["avg_duration_seconds"] == 250.0
    # six runs with a cost, all finished: 7.75 / 6
    assert analytics["total_cost"] == 7.75 and analytics["avg_cost_per_completion"] == 1.2917
    assert analytics["avg_cost"] == 1.2917
    assert analytics["workflows_by_status"] == {"completed": 4, "failed": 2, "pending": 1, "running": 1}
    assert analytics["workflows_by_template"] == {"adw_patch": 2, "adw_plan": 1, "adw_sdlc": 4}


async def test_planned_features_document(compat_client, db_path):
    insert_sqlite(db_path, "planned_features", [
        {"id": 1, "item_type": "feature", "title": "Login", "status": "completed", "priority": "high",
         "estimated_hours": 4.0, "actual_hours": 5.5, "tags": '["ui"]', "created_at": "2026-01-01T00:00:00"},
        {"id": 2, "item_type": "bug", "title": "Crash", "status": "in_progress", "priority": "low",
         "estimated_hours": 2.0, "created_at": "2026-01-02T00:00:00"},
        {"id": 3, "item_type": "bug", "title": "Leak", "status": "in_progress", "priority": "high",
         "created_at": "2026-01-03T00:00:00", "tags": "not json"},
    ])
    client = await compat_client()
    await poll(client, "planned-features")
    data = await first(client, "planned-features")
    # in progress before completed; within a status, high before low
    assert [f["id"] for f in data["features"]] == [3, 2, 1]
    assert len(data["features"][0]) == 19 and data["features"][0]["tags"] == []
    assert data["features"][2]["tags"] == ["ui"] and data["features"][2]["generated_plan"] is None
    # the original's completion rate: completed * 100 / every row, unrounded
    assert data["stats"] == {"by_status": {"in_progress": 2, "completed": 1}, "by_priority": {"high": 2, "low": 1},
                             "by_type": {"feature": 1, "bug": 2}, "total_estimated_hours": 6.0,
                             "total_actual_hours": 5.5, "completion_rate": 100 / 3}


async def test_webhook_status_is_the_services_own_document(compat_client, aiohttp_server):
    standin = await start_standin(aiohttp_server)
    client = await compat_client({"sources": {"webhook_url": standin.url}})
    await poll(client, "webhook-status")
    # the uptime is published in whole minutes: 7384 s → 7380 s, still "2h 3m" and 2.05 hours
    assert await first(client, "webhook-status") == {**DEGRADED_DOCUMENT,
                                                     "uptime": {"seconds": 7380, "hours": 2.05, "human": "2h 3m"}}


async def test_webhook_status_unreachable_is_an_error_document(compat_client, closed_port):
    client = await compat_client({"sources": {"webhook_url": f"http://127.0.0.1:{closed_port}/webhook-status"}})
    await poll(client, "webhook-status")
    data = await first(client, "webhook-status")
    assert list(data) == ["status", "message"] and data["status"] == "error"
    assert str(closed_port) in data["message"]


async def test_system_status_has_the_six_services(compat_client):
    client = await compat_client({"checks": [{"name": "frontend", "kind": "tcp", "target": "127.0.0.1:9"}]})
    await poll(client, "system-status")
    data = await first(client, "system-status")
    assert list(data) == ["overall_status", "timestamp", "services", "summary"]
    assert list(data["services"]) == ["backend_api", "database", "webhook", "cloudflare_tunnel", "github_webhook",
                                      "frontend"]
    services = data["services"]
    assert all(list(s) == ["name", "status", "uptime_seconds", "uptime_human", "message", "details"]
               for s in services.values())
    # the database answers; the webhook (port 9) and the frontend check (port 9) do not; no backend,
    # tunnel or GitHub check is configured: unknown, which the original's overall status ignores
    assert services["database"]["status"] == "healthy" and services["frontend"]["status"] == "error"
    assert services["backend_api"]["status"] == "unknown" and services["frontend"]["name"] == "Frontend"
    assert data["overall_status"] == "error"
    assert data["summary"] == {"healthy_services": 1, "total_services": 6, "health_percentage": 16.7}


async def test_routes_document(compat_client):
    client = await compat_client()
    await poll(client, "routes")
    data = await first(client, "routes")
    assert all(list(r) == ["path", "method", "name", "summary", "description", "tags"] for r in data)
    assert {"path": "/healthz", "method": "GET", "name": "healthz", "summary": None, "description": None,
            "tags": []} in data


def test_function_name_undoes_fastapis_operation_id():
    assert function_name("get_workflow_costs_api_v1_workflows__adw_id__costs_get", "GET",
                         "/api/v1/workflows/{adw_id}/costs") == "get_workflow_costs"
    assert function_name("customId", "GET", "/x") == "customId" and function_name(None, "GET", "/x") is None
    assert [issue_int(v) for v in ("42", " 7 ", 12.9, "4_2", "x", None)] == [42, 7, 12, 42, 0, 0]


async def test_silent_client_gets_every_change_across_heartbeats(compat_client, queue_table):
    """The seed's bug, for this client too: it never sends, and stays live through ≥ 10 heartbeats."""
    client = await compat_client({"server": {"heartbeat": 0.1}})
    original = await connect(client, "queue")
    assert (await original.next())["phases"] == []
    for number in range(1, 11):
        queue_table.insert(title=f"row {number}", feature_id=number, phase_number=1)
        await poll(client)
        assert len((await original.next())["phases"]) == number  # the whole document, every time
        while original.pings < number:  # at least one heartbeat between changes
            msg = await original.ws.receive(timeout=5)
            assert msg.type is WSMsgType.PING
            original.pings += 1
            await original.ws.pong(msg.data)
    assert original.messages == 11 and original.pings >= 10 and not original.ws.closed
    assert client.app[COMPAT].fanout.hub.count("queue") == 1
    await original.ws.close()


async def test_a_change_the_original_never_showed_sends_nothing(compat_client, agents):
    state = {"adw_id": "a1b2c3d4", "issue_number": "42", "branch_name": "feature-42"}
    write_state(agents, "a1b2c3d4", state)
    client = await compat_client()
    await poll(client, "workflows")
    original = await connect(client, "workflows")
    await original.next()
    seq = client.app[BROKER].current("workflows").seq
    write_state(agents, "a1b2c3d4", {**state, "branch_name": "feature-42-v2"})  # not in the original's document
    await poll(client, "workflows")
    write_state(agents, "a1b2c3d4", {**state, "issue_number": "43"})
    await poll(client, "workflows")
    assert client.app[BROKER].current("workflows").seq == seq + 2  # the native clients got both
    assert (await original.next())[0]["issue_number"] == 43 and original.messages == 2
    await original.ws.close()


async def test_native_protocol_is_the_same_with_the_surface_on(make_client, compat_client, queue_table):
    queue_table.insert(title="a", feature_id=1, phase_number=1)
    plain, with_compat = await make_client(), await compat_client()
    for console in (plain, with_compat):
        await poll(console)
    states = [console.app[BROKER].current("queue").state for console in (plain, with_compat)]
    assert states[0]["items"] == states[1]["items"] and states[0]["summary"] == states[1]["summary"]
    assert with_compat.app[HUB].count() == 0  # compat clients are not native clients
    assert (await plain.get("/tac/api/v1/queue")).status == 404


def test_every_channel_has_an_original_document():
    from monitor.channels.registry import CHANNEL_NAMES

    assert sorted(DOCUMENTS) == sorted(CHANNEL_NAMES)


async def test_a_compat_client_that_stops_reading_is_cut_with_1013(compat_client, queue_table):
    client = await compat_client({"server": {"max_backlog_messages": 8, "max_backlog_bytes": 200_000}})
    healthy = await connect(client, "queue")
    await healthy.next()
    stalled = await RawWebSocket.connect(client.host, client.port, "/tac/api/v1/ws/queue", rcvbuf=4096)
    hub = client.app[COMPAT].fanout.hub
    await hub.wait_until(lambda h: h.count("queue") == 2)
    for number in range(400):  # each change re-sends the whole, growing document
        if hub.count("queue") == 1:
            break
        queue_table.insert(title="x" * 20_000, feature_id=number, phase_number=1)
        await poll(client)
        assert len((await healthy.next())["phases"]) == min(number + 1, 100)  # the reader keeps up
    assert hub.count("queue") == 1 and hub.evictions == {"slow": 1}
    messages, code = await stalled.read_until_close()
    await stalled.close()
    assert code == 1013 and all(message["type"] == "queue_update" for message in messages)
    await healthy.ws.close()


async def test_metrics_and_healthz_count_compat_clients(compat_client):
    client = await compat_client()
    original = await connect(client, "queue")
    await original.next()
    metrics = await (await client.get("/metrics")).text()
    assert 'monitor_compat_ws_connections{channel="queue"} 1.0' in metrics
    assert 'monitor_compat_ws_messages_sent_total{channel="queue"} 1.0' in metrics
    assert "monitor_compat_backend_up 1.0" in metrics
    assert 'monitor_ws_connections{channel="queue"} 0.0' in metrics  # not a native client
    health = await (await client.get("/healthz")).json()
    assert health["compat"] == {"prefix": "/tac", "connections": 1, "backend": "none"}
    await original.ws.close()


async def test_shutdown_closes_compat_clients_with_1001(compat_client):
    client = await compat_client()
    original = await connect(client, "queue")
    await original.next()
    await client.app.shutdown()
    msg = await original.ws.receive(timeout=5)
    assert msg.type is WSMsgType.CLOSE and msg.data == 1001


HOSTILE_VALUES = [None, True, 1e308, -1, "", "x" * 300, [], ["a", 1, None], {}, {"nested": {"deep": [1]}}, "\u2028",
                  float("inf"), float("nan"), 2**70, 0]


@pytest.mark.parametrize("channel", sorted(DOCUMENTS))
def test_every_document_is_built_from_whatever_a_source_held(channel):
    """Source values of every type in every field the builders read: a document, never an exception."""
    fields = ("queue_id", "feature_id", "phase_number", "status", "current_phase", "phase_data", "depends_on_phases",
              "created_at", "adw_id", "issue_number", "phases_completed", "start_time", "current_cost", "all_adws",
              "github_url", "method", "path", "name", "summary", "description", "tags", "cost_breakdown",
              "token_breakdown", "worktree_reused", "anomaly_flags", "priority", "generated_plan", "timestamp",
              "target", "message")
    for index, value in enumerate(HOSTILE_VALUES):
        items = {f"k{n}": {field: HOSTILE_VALUES[(index + n + i) % len(HOSTILE_VALUES)]
                           for i, field in enumerate(fields)} for n in range(5)}
        items["odd"] = "not a record"
        summary_fields = ("total", "completed", "failed", "costed_runs", "total_cost", "avg_duration_seconds",
                          "by_model", "by_status", "by_priority", "uptime_seconds", "successful", "success_rate",
                          "total_received", "status", "last_successful", "cost_trend_7d")
        summary = {field: HOSTILE_VALUES[(index + i) % len(HOSTILE_VALUES)] for i, field in enumerate(summary_fields)}
        published = ChannelState(channel, "e")  # what a source's values become before any builder sees them
        published.accept(ChannelData({**summary, "paused": value}, items))
        state = published.state
        message = json.loads(render(channel, state).frame)
        assert message["type"] == DOCUMENTS[channel].message_type


async def test_system_status_and_webhook_status_change_live(compat_client, aiohttp_server):
    """The original sent these two once, at connect; here a change reaches a connected client."""
    standin = await start_standin(aiohttp_server)
    client = await compat_client({"sources": {"webhook_url": standin.url}})
    for channel in ("webhook-status", "system-status"):
        await poll(client, channel)
    webhook, status = await connect(client, "webhook-status"), await connect(client, "system-status")
    assert (await webhook.next())["status"] == "degraded"
    assert (await status.next())["services"]["webhook"]["status"] == "degraded"
    standin.document = HEALTHY_DOCUMENT
    for channel in ("webhook-status", "system-status"):
        await poll(client, channel)
    assert (await webhook.next())["stats"] == HEALTHY_DOCUMENT["stats"]
    changed = await status.next()
    assert changed["services"]["webhook"]["status"] == "healthy" and changed["timestamp"]
    await webhook.ws.close()
    await status.ws.close()


@pytest.mark.parametrize(("section", "complaint"), [
    ({"prefix": "/api"}, "/api is its own"),
    ({"prefix": "/queue"}, "/queue is a channel's page"),
    ({"prefix": "tac"}, "expected a path such as /tac"),
    ({"prefix": "/a/../b"}, "expected a path such as /tac"),
    ({"backend_url": "http://user:secret@127.0.0.1:8002"}, "without credentials"),
    ({"backend_url": "http://127.0.0.1:8002/?x=1"}, "without credentials, query or fragment"),
    ({"backend_url": "ftp://127.0.0.1"}, "http:// or https://"),
    ({"allowed_origins": ["http://localhost:5173/app"]}, "expected origins"),
    ({"backend_timeout": 0}, "backend_timeout"),
])
def test_a_bad_compat_section_is_a_clear_error(section, complaint):
    from monitor.settings import ConfigError, settings_from_mapping

    with pytest.raises(ConfigError, match="compat.tac_webbuilder") as raised:
        settings_from_mapping({"compat": {"tac_webbuilder": section}})
    assert complaint in str(raised.value) and "secret" not in str(raised.value)


def test_the_section_is_off_unless_present_and_its_keys_take_the_environment():
    from monitor.settings import settings_from_mapping

    assert settings_from_mapping({}).tac_webbuilder is None
    section = settings_from_mapping({"compat": {"tac_webbuilder": {}}},
                                    environ={"MONITOR_COMPAT_TAC_WEBBUILDER_PREFIX": "/ops/tac"}).tac_webbuilder
    assert section is not None and section.prefix == "/ops/tac" and section.backend_url == "http://127.0.0.1:8002"
