"""The queue channel read from a real SQLite file, end to end to a WebSocket client."""

import operator
import os
import sqlite3

from monitor.channels.base import DecodedRecords, reuse_rows
from monitor.channels.dbreader import QueryCache
from monitor.channels.queue import DEFAULT_QUERIES, JSON_COLUMNS, add_title
from monitor.keys import BROKER, POLLERS
from monitor.sources.sqlite_thread import reuse_identical
from tests.support import ProtocolClient, poll


def queue_state(client):
    return client.app[BROKER].current("queue").state


async def test_summary_and_items_from_rows(client, queue_table):
    a = queue_table.insert("queued", "Plan the thing", priority=10, depends_on_phases="[1, 2]")
    queue_table.insert("running", "Build it")
    queue_table.insert("failed", "Test it", error_message="boom")
    queue_table.set_paused(True)
    await poll(client)
    state = queue_state(client)
    assert state["summary"] == {
        "total": 3, "paused": True,
        "by_status": {"queued": 1, "ready": 0, "running": 1, "completed": 0, "blocked": 0, "failed": 1},
    }
    item = state["items"][a]
    assert item["title"] == "Plan the thing" and item["priority"] == 10
    assert item["depends_on_phases"] == [1, 2] and item["phase_data"] == {"title": "Plan the thing"}
    assert "error_message" not in item  # NULL columns are absent, never null
    assert state["meta"]["source"] == "ok"


async def test_insert_update_delete_arrive_as_patches(client, queue_table):
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    row = queue_table.insert("queued", "one")
    await poll(client)
    added = await live.receive()
    assert added["type"] == "patch" and added["patch"]["items"][row]["title"] == "one"
    queue_table.update(row, status="running")
    await poll(client)
    changed = await live.receive()
    assert changed["patch"]["items"] == {row: {"status": "running"}}
    queue_table.delete(row)
    await poll(client)
    removed = await live.receive()
    assert removed["patch"]["items"] == {row: None}
    assert live.state == queue_state(client)


async def test_unchanged_database_is_not_read_and_sends_nothing(client, queue_table):
    queue_table.insert()
    await poll(client)
    reader = client.app[POLLERS]["queue"].reader
    reads = []
    original = reader.db.fetch_tables  # what every read of a channel goes through on SQLite
    reader.db.fetch_tables = lambda *args: reads.append(1) or original(*args)
    seq = client.app[BROKER].current("queue").seq
    await poll(client)
    await poll(client)
    assert reads == [] and client.app[BROKER].current("queue").seq == seq
    queue_table.insert()
    await poll(client)
    assert reads == [1] and client.app[BROKER].current("queue").seq == seq + 1


async def test_missing_database_is_an_error_and_recovers(client, db_path, queue_table):
    moved = db_path.with_suffix(".away")
    os.rename(db_path, moved)
    await poll(client)
    meta = queue_state(client)["meta"]
    assert meta["source"] == "error" and "not found" in meta["error"]
    assert (await client.get("/healthz")).status == 200
    os.rename(moved, db_path)
    queue_table.insert(title="back")
    await poll(client)
    state = queue_state(client)
    assert state["meta"]["source"] == "ok" and "error" not in state["meta"]
    assert [i["title"] for i in state["items"].values()] == ["back"]


async def test_database_locked_by_a_writer_is_an_error_and_recovers(client, db_path, queue_table):
    queue_table.insert()
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE phase_queue SET status = 'running'")
    try:
        await poll(client)
        meta = queue_state(client)["meta"]
        assert meta["source"] == "error" and "locked" in meta["error"]
    finally:
        writer.execute("COMMIT")
        writer.close()
    await poll(client)
    state = queue_state(client)
    assert state["meta"]["source"] == "ok"
    assert [i["status"] for i in state["items"].values()] == ["running"]


async def test_corrupt_database_is_an_error_and_recovers(client, db_path, queue_table):
    good = db_path.read_bytes()
    db_path.write_bytes(b"this is not a database" * 100)
    await poll(client)
    assert queue_state(client)["meta"]["source"] == "error"
    db_path.write_bytes(good)
    await poll(client)
    assert queue_state(client)["meta"]["source"] == "ok"


async def test_replaced_database_file_is_followed(client, db_path, queue_table, tmp_path):
    await poll(client)
    replacement = tmp_path / "new.db"
    conn = sqlite3.connect(db_path)
    conn.execute(f"VACUUM INTO '{replacement}'")
    conn.close()
    QueueTable = type(queue_table)
    QueueTable(replacement).insert(title="in the new file")
    os.replace(replacement, db_path)
    await poll(client)
    assert [i["title"] for i in queue_state(client)["items"].values()] == ["in the new file"]


async def test_error_in_one_channel_leaves_others_serving(make_client, db_path, tmp_path):
    (tmp_path / "agents").mkdir()
    client = await make_client()
    await poll(client, "workflows")
    db_path.unlink()
    await poll(client)
    response = await client.get("/api/v1/workflows")
    assert response.status == 200
    assert (await response.json())["data"]["meta"]["source"] == "ok"
    assert queue_state(client)["meta"]["source"] == "error"


def test_an_unchanged_row_keeps_its_record_and_a_changed_one_is_decoded_again():
    records = DecodedRecords(JSON_COLUMNS, "queue_id", add_title)
    first = records.decode([{"queue_id": "a", "phase_data": '{"title": "one"}'}, {"queue_id": "b", "status": "x"}])
    again = records.decode([{"queue_id": "a", "phase_data": '{"title": "one"}'}, {"queue_id": "b", "status": "y"}])
    assert again[0] is first[0] and first[0]["title"] == "one"
    assert again[1] is not first[1] and again[1]["status"] == "y"


async def test_a_row_changed_after_many_reads_is_published_with_its_change(client, queue_table):
    row = queue_table.insert("queued", "one")
    await poll(client)
    await poll(client)  # the row's record is now the one handed over before
    queue_table.update(row, phase_data='{"title": "two"}')
    await poll(client)
    assert queue_state(client)["items"][row]["title"] == "two"


def test_a_value_equal_in_python_but_not_in_json_is_a_change():
    records = DecodedRecords(("phase_data",), "queue_id")
    first = records.decode([{"queue_id": "a", "phase_data": {"x": True}, "n": 1}])  # PostgreSQL: decoded json
    assert records.decode([{"queue_id": "a", "phase_data": {"x": 1}, "n": 1}])[0] is not first[0]
    again = records.decode([{"queue_id": "a", "phase_data": {"x": 1}, "n": 1.0}])
    assert again[0]["n"] == 1.0 and isinstance(again[0]["n"], float)


def test_rows_read_again_keep_the_unchanged_ones_and_say_whether_all_were():
    kept = [{"queue_id": "a", "n": 1}, {"queue_id": "b", "n": 2}]
    merged, same = reuse_rows(kept, [{"queue_id": "a", "n": 1}, {"queue_id": "b", "n": 2}])
    assert same and all(map(operator.is_, merged, kept))
    merged, same = reuse_rows(kept, [{"queue_id": "a", "n": 1}, {"queue_id": "b", "n": 2.0}])  # 2 → 2.0 is a change
    assert not same and merged[0] is kept[0] and merged[1] is not kept[1] and merged[1]["n"] == 2.0
    merged, same = reuse_rows(kept, [{"queue_id": "a", "n": 1}])
    assert not same and merged == [{"queue_id": "a", "n": 1}]
    merged, same = reuse_rows(kept, [*kept, {"queue_id": "c", "n": 3}])
    assert not same and [row["queue_id"] for row in merged] == ["a", "b", "c"]


def test_the_reading_thread_hands_back_an_identical_row_as_the_kept_object():
    names = ["queue_id", "n", "note"]
    kept = reuse_identical(names, [("a", 1, None), ("b", 2, "x")], [])
    again = reuse_identical(names, [("a", 1, None), ("b", 2.0, "x"), ("c", 3, None)], kept)  # 2 → 2.0: a change
    assert again[0] is kept[0] and again[1] is not kept[1] and again[1]["n"] == 2.0 and again[2]["queue_id"] == "c"
    assert reuse_identical(["queue_id", "m", "note"], [("a", 1, None)], kept)[0] == {"queue_id": "a", "m": 1,
                                                                                      "note": None}
    assert reuse_identical(names, [("a", "1", None)], kept)[0] is not kept[0]  # "1" is not 1


async def test_a_one_row_commit_reads_back_the_other_rows_as_the_same_objects(sources, db_path, queue_table):
    queue_table.insert("queued", "one")
    queue_table.insert("queued", "two")
    cache = QueryCache(sources.database, {"phase_queue": DEFAULT_QUERIES["phase_queue"]})
    await cache.refresh()
    before = cache.rows["phase_queue"]
    queue_table.update(before[1]["queue_id"], status="running")
    assert await cache.refresh()
    after = cache.rows["phase_queue"]
    assert after[0] is before[0] and after[1] is not before[1] and after[1]["status"] == "running"
