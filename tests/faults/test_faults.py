"""Faults in the real sources: each shows as an error on the channels it touches, and heals by itself.

Polls run from the scheduler (every 50 ms) as in production; a test also polls by hand
where it must know that a poll ran during the fault. Recovery is awaited on a client's
live stream, never by sleeping. Every test ends with no traceback, no exception event,
no stdlib error record and nothing for the loop's exception handler.
"""

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import threading

import pytest

from tests.faults.faults import (
    DB_CHANNELS,
    STATE_FILE_CHANNELS,
    HangingService,
    failing_only,
    fast_polling,
    free_port,
    make_source_dirs,
    matches_sources,
    poll_all,
    state_of,
    until,
    watch,
)
from tests.faults.witnesses import assert_nothing_unhandled
from tests.faults.workspace import WebhookService, create_database, state_record
from tests.support import QueueTable


@pytest.fixture
def start_console(make_client, webhook, tmp_path):
    """A console on the test sources and a live webhook service, polled by the scheduler every 50 ms."""
    make_source_dirs(tmp_path)

    async def start(overrides: dict | None = None):
        client = await make_client(fast_polling(webhook.url, overrides))
        await poll_all(client)
        return client

    return start


@pytest.fixture
async def hanging():
    """A webhook service that accepts connections and never answers."""
    service = await HangingService().start()
    yield service
    await service.close()


def write_state(agents, adw_id: str, variant: int) -> None:
    (agents / adw_id).mkdir(parents=True, exist_ok=True)
    (agents / adw_id / "adw_state.json").write_text(json.dumps(state_record(adw_id, variant)))


async def test_database_locked_longer_than_the_poll_timeout(start_console, db_path, console_log, loop_errors, caplog):
    client = await start_console({"sources": {"busy_timeout": 3.0},
                                  "channels": {name: {"timeout": 0.3} for name in (*DB_CHANNELS, "system-status")}})
    failing_only(client, ())
    live = await watch(client, "queue")
    threads = threading.active_count()
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO phase_queue (queue_id, status) VALUES ('written-under-lock', 'running')")
    for _ in range(3):
        await poll_all(client)
        failing_only(client, DB_CHANNELS)
    assert state_of(client, "queue")["meta"]["error"] == "source did not answer within 0.3 s"
    assert state_of(client, "system-status")["items"]["database"]["status"] == "error"
    writer.execute("COMMIT")
    writer.close()
    await until(live, lambda state: "written-under-lock" in state["items"])
    await poll_all(client)
    failing_only(client, ())
    for channel in DB_CHANNELS:
        await matches_sources(client, channel)
    assert_nothing_unhandled(console_log, loop_errors, caplog)
    await client.close()  # an abandoned query's thread lives out the busy timeout, not the console
    assert threading.active_count() <= threads, "SQLite threads left behind by abandoned polls"


async def test_database_file_replaced_then_deleted_then_restored(start_console, tmp_path, db_path, queue_table,
                                                                 console_log, loop_errors, caplog):
    client = await start_console()
    live = await watch(client, "queue")
    queue_table.insert("running", "row of the first file")
    await until(live, lambda state: state["summary"]["total"] == 1)
    replacement = tmp_path / "replacement.db"
    create_database(replacement)
    QueueTable(replacement).insert("queued", "row of the new file")
    os.replace(replacement, db_path)
    await until(live, lambda state: [i["title"] for i in state["items"].values()] == ["row of the new file"])
    moved_away = db_path.rename(tmp_path / "away.db")
    await poll_all(client)
    failing_only(client, DB_CHANNELS)
    assert "database file not found" in state_of(client, "queue")["meta"]["error"]
    moved_away.rename(db_path)
    await until(live, lambda state: state["meta"]["source"] == "ok")
    await poll_all(client)
    failing_only(client, ())
    await matches_sources(client, "queue")
    assert_nothing_unhandled(console_log, loop_errors, caplog)


async def test_agents_directory_deleted_and_recreated(start_console, tmp_path, console_log, loop_errors, caplog):
    agents = tmp_path / "agents"
    write_state(agents, "a1b2c3d4", 1)
    client = await start_console()
    live = await watch(client, "workflows")
    assert list(live.state["items"]) == ["a1b2c3d4"]
    shutil.rmtree(agents)
    await poll_all(client)
    failing_only(client, STATE_FILE_CHANNELS)
    assert "agents_dir not found" in state_of(client, "workflows")["meta"]["error"]
    write_state(agents, "b2c3d4e5", 2)
    await until(live, lambda state: state["meta"]["source"] == "ok" and list(state["items"]) == ["b2c3d4e5"])
    await poll_all(client)
    failing_only(client, ())
    for channel in STATE_FILE_CHANNELS:
        await matches_sources(client, channel)
    assert_nothing_unhandled(console_log, loop_errors, caplog)


async def test_webhook_service_that_never_answers(start_console, hanging, console_log, loop_errors, caplog):
    client = await start_console({"sources": {"webhook_url": hanging.url},
                                  "channels": {"webhook-status": {"timeout": 0.4}, "system-status": {"timeout": 0.4}}})
    live = await watch(client, "webhook-status")
    failing_only(client, ("webhook-status",))
    assert "timed out" in state_of(client, "webhook-status")["meta"]["error"]
    assert state_of(client, "system-status")["items"]["webhook"]["status"] == "error"
    assert hanging.accepted >= 2
    hanging.stop_listening()
    service = WebhookService()
    service.port = hanging.port  # the real service comes back where the hung one was
    await service.up()
    try:
        await until(live, lambda state: state["meta"]["source"] == "ok")
        await poll_all(client)
        failing_only(client, ())
        assert state_of(client, "system-status")["items"]["webhook"]["status"] in ("healthy", "degraded")
        await matches_sources(client, "webhook-status")
        await hanging.until_clients_hung_up()  # every abandoned request closed its connection
    finally:
        await service.down()
    assert_nothing_unhandled(console_log, loop_errors, caplog)


async def test_health_check_targets_refusing_connections(start_console, webhook, console_log, loop_errors, caplog):
    tcp_port, http_port = free_port(), free_port()
    checks = [{"name": "broker", "kind": "tcp", "target": f"127.0.0.1:{tcp_port}", "timeout": 0.5},
              {"name": "api", "kind": "http", "target": f"http://127.0.0.1:{http_port}/health", "timeout": 0.5}]
    client = await start_console({"checks": checks})
    failing_only(client, ())  # a failing check is the channel's data, not its error
    live = await watch(client, "system-status")
    items = live.state["items"]
    assert (items["broker"]["status"], items["api"]["status"]) == ("error", "error")
    assert "refused" in items["broker"]["message"] and "refused" in items["api"]["message"]
    assert live.state["summary"]["overall_status"] == "error"
    listener = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", tcp_port)
    api = WebhookService()
    api.port = http_port
    await api.up()
    try:
        await until(live, lambda state: state["summary"]["overall_status"] != "error")
    finally:
        await api.down()
        listener.close()
        await listener.wait_closed()
    assert {live.state["items"][name]["status"] for name in ("broker", "api")} <= {"healthy", "degraded"}
    assert_nothing_unhandled(console_log, loop_errors, caplog)


async def test_shutdown_with_a_poll_in_flight_logs_no_error(start_console, hanging, caplog):
    client = await start_console({"sources": {"webhook_url": hanging.url}})
    await hanging.until_accepted(hanging.accepted + 1)  # a scheduled poll now waits on the service
    await client.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

