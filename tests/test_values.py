"""Legal but unusual source values (NaN, Infinity, huge integers, deep or big files) on every view."""

import decimal
import json
import re
import sqlite3

from monitor.channels.base import ChannelData
from monitor.probe import read_channel
from monitor.state import ChannelState
from monitor.values import to_json_value
from tests.support import poll, write_state

RUN = {"adw_id": "1a2b3c4d", "issue_number": "42", "workflow_template": "adw_sdlc_iso", "backend_port": 9101}
OTHER = {"adw_id": "deadbeef", "issue_number": "7", "workflow_template": "adw_plan_iso"}
STATE_CHANNELS = ("adw-monitor", "workflows")
EMBEDDED = re.compile(r'<script type="application/json" data-state>(.*?)</script>', re.S)


def strict(text):
    """Parse JSON as a strict client does: NaN, Infinity and -Infinity are errors."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


async def views(client, channel):
    """The channel's state from its page, the dashboard, the JSON API and a socket; all must agree."""
    for path in ("/", f"/{channel}"):
        response = await client.get(path)
        assert response.status == 200, path
        # Every panel's embedded state must parse: one bad one stops the live updates after it.
        states = [strict(text) for text in EMBEDDED.findall(await response.text())]
    response = await client.get(f"/api/v1/{channel}")
    assert response.status == 200
    api = strict(await response.text())["data"]
    ws = await client.ws_connect(f"/api/v1/ws/{channel}")
    snapshot = strict(await ws.receive_str(timeout=5))
    await ws.close()
    assert snapshot["type"] == "snapshot" and snapshot["data"] == api == states[0]
    return api


async def poll_all(client, channels):
    for channel in channels:
        await poll(client, channel)


async def test_the_rule_for_numbers_json_clients_cannot_hold():
    assert to_json_value({"a": float("nan"), "b": float("inf"), "c": float("-inf")}) == {
        "a": "NaN", "b": "Infinity", "c": "-Infinity"}
    safe = 2 ** 53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
    assert to_json_value([2 ** 64, -(2 ** 64), safe + 1, safe, -safe]) == [
        "18446744073709551616", "-18446744073709551616", "9007199254740992", safe, -safe]
    assert to_json_value([decimal.Decimal("NaN"), decimal.Decimal("-Infinity"), 1e20, True]) == [
        "NaN", "-Infinity", 1e20, True]


async def test_nan_and_infinity_in_a_state_file_reach_every_view_as_strings(client, agents):
    text = json.dumps({**RUN, "estimated_cost_total": float("nan"), "backend_port": float("inf"),
                       "frontend_port": float("-inf")})
    write_state(agents, RUN["adw_id"], text)
    await poll_all(client, STATE_CHANNELS)
    monitor, workflows = [await views(client, name) for name in STATE_CHANNELS]
    assert monitor["meta"]["source"] == "ok" and workflows["meta"]["source"] == "ok"
    assert monitor["items"]["1a2b3c4d"]["estimated_cost_total"] == "NaN"
    item = workflows["items"]["1a2b3c4d"]
    assert (item["estimated_cost_total"], item["backend_port"], item["frontend_port"]) == (
        "NaN", "Infinity", "-Infinity")


async def test_a_nan_read_again_publishes_no_patch():
    state = ChannelState("workflows", "e")
    state.accept(ChannelData({}, {"r": {"cost": float("nan")}}))
    # A source hands over a fresh NaN object each read (PostgreSQL, arithmetic); NaN != NaN.
    assert state.accept(ChannelData({}, {"r": {"cost": float("nan")}})) is None
    assert state.state["items"] == {"r": {"cost": "NaN"}}


async def test_an_infinite_cost_in_the_database_reaches_every_view_as_a_string(client, db_path):
    with sqlite3.connect(db_path) as conn:  # SQLite reads the literal 9e999 as +Inf and stores it so
        conn.execute("INSERT INTO workflow_history (adw_id, status, workflow_template, actual_cost_total)"
                     " VALUES ('1a2b3c4d', 'completed', 'adw_sdlc_iso', 9e999)")
    conn.close()
    await poll(client, "workflow-history")
    history = await views(client, "workflow-history")
    assert history["meta"]["source"] == "ok"
    assert history["items"]["1a2b3c4d"]["actual_cost_total"] == "Infinity"
    assert history["summary"]["avg_cost"] == "Infinity"


async def test_an_integer_beyond_64_bits_in_a_state_file_reaches_every_view_as_a_string(client, agents):
    write_state(agents, RUN["adw_id"], {**RUN, "backend_port": 2 ** 64, "estimated_cost_total": 2 ** 64})
    await poll_all(client, STATE_CHANNELS)
    monitor, workflows = [await views(client, name) for name in STATE_CHANNELS]
    assert monitor["meta"]["source"] == "ok" and workflows["meta"]["source"] == "ok"
    assert workflows["items"]["1a2b3c4d"]["backend_port"] == "18446744073709551616"
    assert monitor["items"]["1a2b3c4d"]["estimated_cost_total"] == "18446744073709551616"


async def test_the_snapshot_command_reads_the_same_values(make_settings, agents):
    write_state(agents, RUN["adw_id"], json.dumps({**RUN, "backend_port": float("nan"), "frontend_port": 2 ** 64}))
    state, problem = await read_channel(make_settings(), "workflows")
    assert problem is None
    assert strict(json.dumps(state))["items"]["1a2b3c4d"]["backend_port"] == "NaN"
    assert state["items"]["1a2b3c4d"]["frontend_port"] == "18446744073709551616"


async def test_a_state_file_nested_100000_deep_marks_only_its_run(client, agents):
    write_state(agents, RUN["adw_id"], RUN)
    write_state(agents, OTHER["adw_id"], OTHER)
    await poll_all(client, STATE_CHANNELS)
    write_state(agents, RUN["adw_id"], '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    await poll_all(client, STATE_CHANNELS)
    for name in STATE_CHANNELS:
        state = await views(client, name)
        assert state["meta"]["source"] == "ok"
        run, other = state["items"]["1a2b3c4d"], state["items"]["deadbeef"]
        assert run["state_file_error"] == "invalid JSON: nested deeper than 64 levels"
        assert run["workflow_template"] == "adw_sdlc_iso" and "state_file_error" not in other


async def test_a_state_file_over_max_file_bytes_is_not_read(make_client, agents):
    client = await make_client({"sources": {"max_file_bytes": 1024}})
    write_state(agents, OTHER["adw_id"], OTHER)
    write_state(agents, RUN["adw_id"], {**RUN, "nl_input": "x" * 2000})
    await poll_all(client, STATE_CHANNELS)
    for name in STATE_CHANNELS:
        state = await views(client, name)
        assert state["meta"]["source"] == "ok" and list(state["items"]) == ["deadbeef"]  # never good: not a run
    write_state(agents, RUN["adw_id"], RUN)
    await poll_all(client, STATE_CHANNELS)
    write_state(agents, RUN["adw_id"], {**RUN, "nl_input": "x" * 2000})
    await poll_all(client, STATE_CHANNELS)
    for name in STATE_CHANNELS:
        run = (await views(client, name))["items"]["1a2b3c4d"]
        assert run["state_file_error"].startswith("too large: ") and "max_file_bytes (1024)" in run["state_file_error"]


async def test_data_that_cannot_be_encoded_is_the_channels_error_and_every_view_serves(client, db_path):
    deep = "[" * 300 + "]" * 300  # parses, but no client-side encoder goes 300 levels deep
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO workflow_history (adw_id, status, cost_breakdown) VALUES ('1a2b3c4d', 'running', ?)",
                     (deep,))
    conn.close()
    await poll(client, "workflow-history")
    history = await views(client, "workflow-history")
    assert history["meta"]["source"] == "error" and history["items"] == {}
    assert history["meta"]["error"].startswith("source data cannot be sent to clients: ")
    await poll(client, "workflow-history")  # the database is unchanged: still that read, still the error
    assert (await views(client, "workflow-history"))["meta"]["source"] == "error"
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE workflow_history SET cost_breakdown = '{\"plan\": 0.5}'")
    conn.close()
    await poll(client, "workflow-history")
    history = await views(client, "workflow-history")
    assert history["meta"]["source"] == "ok" and history["items"]["1a2b3c4d"]["cost_breakdown"] == {"plan": 0.5}


async def test_an_unpaired_surrogate_in_a_state_file_marks_only_its_run(client, agents):
    write_state(agents, OTHER["adw_id"], OTHER)
    write_state(agents, RUN["adw_id"], RUN)
    await poll_all(client, STATE_CHANNELS)
    write_state(agents, RUN["adw_id"], json.dumps(RUN)[:-1] + ', "nl_input": "half an emoji \\ud83d"}')
    await poll_all(client, STATE_CHANNELS)
    for name in STATE_CHANNELS:
        state = await views(client, name)
        assert state["meta"]["source"] == "ok"
        assert state["items"]["1a2b3c4d"]["state_file_error"] == "invalid JSON: text with an unpaired surrogate"
