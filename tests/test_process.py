"""The console as a real process: serve, check, snapshot, and a clean shutdown on SIGTERM."""

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path, db_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\nport = 0\nshutdown_timeout = 5.0\n[sources]\ndatabase = "sqlite:///{db_path}"\n'
                    f'agents_dir = "{tmp_path}/agents"\ntrees_dir = "{tmp_path}/trees"\n'
                    'webhook_url = "http://127.0.0.1:9/webhook-status"\n')
    return path


async def start_console(config: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines = []
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        assert line, f"console exited early: {lines}"
        lines.append(line.decode())
        event = json.loads(line)
        if event["event"] == "listening":
            return process, event["port"], lines


async def test_sigterm_closes_every_socket_with_1001_and_exits_0(tmp_path, db_path):
    process, port, _ = await start_console(write_config(tmp_path, db_path))
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws/{name}")
                   for name in ("queue", "workflows", "webhook-status")]
        for ws in sockets:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "snapshot"
        process.send_signal(signal.SIGTERM)
        closes = [await ws.receive(timeout=15) for ws in sockets]
        assert [msg.data for msg in closes] == [1001, 1001, 1001]
        for ws in sockets:
            await ws.close()
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    rest = (await process.stderr.read()).decode()
    assert '"event": "stopped"' in rest and "Traceback" not in rest


async def run_cli(*args):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def test_snapshot_prints_the_channel_state(tmp_path, db_path, queue_table):
    queue_table.insert("running", "shown by snapshot")
    code, out, _ = await run_cli("snapshot", "queue", "--config", str(write_config(tmp_path, db_path)))
    state = json.loads(out)
    assert code == 0 and state["summary"]["by_status"]["running"] == 1
    assert [item["title"] for item in state["items"].values()] == ["shown by snapshot"]


async def test_check_reports_an_unusable_database(tmp_path, db_path):
    config = write_config(tmp_path, db_path)
    db_path.unlink()
    code, out, _ = await run_cli("check", "--config", str(config))
    assert code == 2 and "queue" in out and "database file not found" in out
