"""/metrics moves when clients connect and patches flow; /healthz reports each channel."""

import sqlite3

from tests.support import ProtocolClient, poll


def sample(text, name, **labels):
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not in metrics")


async def test_metrics_follow_connections_and_patches(client, queue_table):
    before = await (await client.get("/metrics")).text()
    assert sample(before, "monitor_ws_connections", channel="queue") == 0
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    queue_table.insert()
    await poll(client)
    await live.receive()
    after = await (await client.get("/metrics")).text()
    assert sample(after, "monitor_ws_connections", channel="queue") == 1
    patches_before = sample(before, "monitor_patches_total", channel="queue")
    assert sample(after, "monitor_patches_total", channel="queue") > patches_before
    assert sample(after, "monitor_ws_messages_sent_total", channel="queue") == 2
    assert sample(after, "monitor_ws_bytes_sent_total", channel="queue") > 0
    assert sample(after, "monitor_ws_resumes_total", outcome="snapshot") == 1
    assert sample(after, "monitor_poll_duration_seconds_count", channel="queue") >= 2
    await live.ws.close()


async def test_poll_errors_and_resume_outcomes_are_counted(client, db_path, queue_table):
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    await live.ws.close()
    again = ProtocolClient(await client.ws_connect(f"/api/v1/ws/queue?epoch={live.epoch}&seq={live.seq}"))
    again.epoch, again.seq, again.state = live.epoch, live.seq, live.state
    stale = ProtocolClient(await client.ws_connect("/api/v1/ws/queue?epoch=abc&seq=1"))
    await stale.receive()
    db_path.unlink()
    await poll(client)
    await again.receive()
    text = await (await client.get("/metrics")).text()
    assert sample(text, "monitor_ws_resumes_total", outcome="current") == 1
    assert sample(text, "monitor_ws_resumes_total", outcome="fallback") == 1
    assert sample(text, "monitor_poll_errors_total", channel="queue") == 1


async def test_healthz_reports_source_state_per_channel(client, db_path):
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["channels"]["queue"]["source"] == "ok"
    assert body["channels"]["queue"]["last_good_poll_age_s"] >= 0
    db_path.unlink()
    await poll(client)
    body = await (await client.get("/healthz")).json()
    assert body["channels"]["queue"]["source"] == "error"


async def test_whole_table_reads_are_counted_by_how_much_they_read(make_client, db_path, queue_table):
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # a commit's pages then name its rows
    conn.close()
    client = await make_client()
    for n in range(4):  # the first polls list the pages; the later ones go by them
        queue_table.insert("queued", f"phase {n}")
        await poll(client)
    text = await (await client.get("/metrics")).text()
    assert sample(text, "monitor_table_reads_total", kind="partial") >= 1
    assert sample(text, "monitor_table_reads_total", kind="whole") >= 1
