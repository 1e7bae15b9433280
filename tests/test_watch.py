"""Event-assisted detection: with hour-long intervals, file changes still arrive at once."""

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
