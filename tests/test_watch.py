"""Event-assisted detection: with hour-long intervals, file changes still arrive at once."""

import shutil
from pathlib import Path

from monitor.keys import SOURCES
from monitor.watch_target import WatchTarget
from tests.support import ProtocolClient

WATCHING = {"sources": {"watch": True}, "channels": {"queue": {"interval": 3600.0}}}


async def test_sqlite_commit_reaches_a_client_without_a_scheduled_poll(make_client, queue_table):
    client = await make_client(WATCHING)
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    row = queue_table.insert(title="seen through the file watcher")
    while row not in live.state["items"]:
        await live.receive()
    queue_table.update(row, status="running")
    while live.state["items"][row]["status"] != "running":
        await live.receive()


async def test_database_created_after_start_is_picked_up(make_client, db_path, queue_table, tmp_path):
    content = db_path.read_bytes()
    db_path.unlink()
    client = await make_client(WATCHING)
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    assert live.state["meta"]["source"] == "error"
    staged = tmp_path / "staged.db"
    staged.write_bytes(content)
    staged.rename(db_path)
    while live.state["meta"]["source"] != "ok":
        await live.receive()


async def test_state_file_change_and_new_worktree_reach_clients(make_client, tmp_path):
    agents, trees = tmp_path / "agents", tmp_path / "trees"
    (agents / "1a2b3c4d").mkdir(parents=True)
    trees.mkdir()
    state = agents / "1a2b3c4d" / "adw_state.json"
    state.write_text('{"adw_id": "1a2b3c4d", "issue_number": "7", "workflow_template": "adw_plan_iso"}')
    client = await make_client({"sources": {"watch": True},
                                "channels": {"workflows": {"interval": 60.0}, "adw-monitor": {"interval": 60.0}}})
    workflows = ProtocolClient(await client.ws_connect("/api/v1/ws/workflows"))
    monitor = ProtocolClient(await client.ws_connect("/api/v1/ws/adw-monitor"))
    await workflows.receive()
    await monitor.receive()
    assert monitor.state["items"]["1a2b3c4d"]["status"] == "queued"
    state.write_text('{"adw_id": "1a2b3c4d", "issue_number": "7", "workflow_template": "adw_sdlc_iso"}')
    while workflows.state["items"]["1a2b3c4d"].get("workflow_template") != "adw_sdlc_iso":
        await workflows.receive()
    (trees / "1a2b3c4d").mkdir()
    while monitor.state["items"]["1a2b3c4d"]["status"] != "paused":
        await monitor.receive()



async def test_a_commit_reuses_the_watched_state_files_and_a_phase_tracker_change_is_seen(
        make_client, tmp_path, queue_table):
    agents = tmp_path / "agents"
    (agents / "1a2b3c4d").mkdir(parents=True)
    (agents / "1a2b3c4d" / "adw_state.json").write_text(
        '{"adw_id": "1a2b3c4d", "issue_number": "7", "workflow_template": "adw_sdlc_iso"}')
    client = await make_client({"sources": {"watch": True}, "channels": {"adw-monitor": {"interval": 3600.0}}})
    monitor = ProtocolClient(await client.ws_connect("/api/v1/ws/adw-monitor"))
    await monitor.receive()
    files = client.app[SOURCES].state_files
    files.trusted_for, scans = 3600.0, files.scans  # however slow this machine: only the watcher decides
    queue_table.insert(adw_id="1a2b3c4d", status="completed")
    while monitor.state["items"]["1a2b3c4d"]["status"] != "completed":
        await monitor.receive()
    assert files.scans == scans  # the database moved, the files did not: no rescan
    (agents / "1a2b3c4d" / "completed_phases.json").write_text('{"completed": ["Plan"], "current": "Build"}')
    while "Plan" not in monitor.state["items"]["1a2b3c4d"].get("phases_completed", []):
        await monitor.receive()


async def test_healthz_says_whether_files_are_watched(make_client, agents, trees):
    watching = await (await (await make_client(WATCHING)).get("/healthz")).json()
    assert watching["watch"] == {"active": True, "directories": 3}  # agents/, trees/, the database's directory
    polling_only = await (await (await make_client()).get("/healthz")).json()
    assert polling_only["watch"] == {"active": False, "directories": 0}

def target(path: Path, channel: str, depth: int = 0, relevant=lambda changed: True) -> WatchTarget:
    return WatchTarget(path, (channel,), depth, relevant)


def state_file(root: Path):
    return lambda changed: changed.parent == root or (
        changed.parent.parent == root and changed.name == "adw_state.json")


async def test_only_relevant_changes_trigger_their_channels(start_watch, tmp_path):
    agents, db = tmp_path / "agents", tmp_path / "db"
    (agents / "1a2b3c4d" / "phase").mkdir(parents=True)
    db.mkdir()
    watcher = start_watch([target(agents, "a", 1, state_file(agents)),
                           target(db, "b", relevant=lambda changed: changed.name == "database.db")])
    (agents / "1a2b3c4d" / "phase" / "adw_state.json").write_text("{}")  # two levels down: not ours
    (agents / "1a2b3c4d" / "raw_output.jsonl").write_text("{}")
    (db / "other.db").write_text("")
    (db / "database.db").write_text("")
    assert await watcher.trigger.batch() == {"b"}
    (agents / "1a2b3c4d" / "adw_state.json").write_text("{}")
    assert await watcher.trigger.batch() == {"a"}


async def test_a_target_created_later_is_watched_from_then_on(start_watch, tmp_path):
    agents = tmp_path / "deep" / "agents"
    watcher = start_watch([target(agents, "a", 1, state_file(agents))])
    (tmp_path / "deep").mkdir()
    assert await watcher.trigger.batch() == {"a"}  # one step closer: re-read
    agents.mkdir()
    assert await watcher.trigger.batch() == {"a"}
    (agents / "1a2b3c4d").mkdir()
    assert await watcher.trigger.batch() == {"a"}
    (agents / "1a2b3c4d" / "adw_state.json").write_text("{}")
    assert await watcher.trigger.batch() == {"a"}
    assert watcher.watch_count == 2


async def test_a_target_deleted_and_made_again_is_watched_again(start_watch, tmp_path):
    agents = tmp_path / "agents"
    (agents / "1a2b3c4d").mkdir(parents=True)
    watcher = start_watch([target(agents, "a", 1, state_file(agents))])
    shutil.rmtree(agents)
    assert await watcher.trigger.batch() == {"a"}
    (agents / "5e6f7a8b").mkdir(parents=True)
    assert await watcher.trigger.batch() == {"a"}
    (agents / "5e6f7a8b" / "adw_state.json").write_text("{}")
    assert await watcher.trigger.batch() == {"a"}
    assert watcher.watch_count == 2


async def test_a_target_moved_away_is_no_longer_followed(start_watch, tmp_path):
    agents, db = tmp_path / "agents", tmp_path / "db"
    (agents / "1a2b3c4d").mkdir(parents=True)
    db.mkdir()
    watcher = start_watch([target(agents, "a", 1, state_file(agents)), target(db, "b")])
    agents.rename(tmp_path / "agents.old")
    assert await watcher.trigger.batch() == {"a"}
    (tmp_path / "agents.old" / "1a2b3c4d" / "adw_state.json").write_text("{}")
    (db / "database.db").write_text("")
    assert await watcher.trigger.batch() == {"b"}
    assert watcher.watch_count == 2  # the parent waiting for agents/, and db/


async def test_an_overflowed_event_queue_rereads_every_target(start_watch, tmp_path):
    quiet, busy = tmp_path / "quiet", tmp_path / "busy"
    quiet.mkdir()
    busy.mkdir()
    watcher = start_watch([target(quiet, "a"), target(busy, "b", relevant=lambda changed: False)])
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for number in range(limit // 2 + 1):  # a creation and a close each: the queue overflows, unread
        (busy / str(number)).touch()
    assert await watcher.trigger.batch() == {"a", "b"}
