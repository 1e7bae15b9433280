"""`monitor demo`: one command gives a console whose eight channels all keep changing."""

import asyncio
import json
import signal
import sys

import aiohttp

from monitor.channels.registry import CHANNEL_NAMES
from tests.test_process import ROOT


async def first_data_patch(session, port, channel):
    async with session.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws/{channel}") as ws:
        assert json.loads((await ws.receive(timeout=30)).data)["type"] == "snapshot"
        while True:
            # a bound, not a target: the slowest channels (planned features, ADW runs, routes) first move after
            # ~30 s of the demo's day on an idle machine
            message = json.loads((await ws.receive(timeout=120)).data)
            if message["type"] == "patch" and ({"items", "summary"} & message["patch"].keys()):
                return channel


async def test_demo_moves_every_channel_and_stops_cleanly(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "demo", "--dir", str(tmp_path / "demo"), "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
            assert line, "demo exited early"
            event = json.loads(line)
            port = event.get("port") if event["event"] == "listening" else None
        async with aiohttp.ClientSession() as session:
            moved = await asyncio.gather(*(first_data_patch(session, port, c) for c in CHANNEL_NAMES))
        assert sorted(moved) == sorted(CHANNEL_NAMES)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        assert (tmp_path / "demo" / "db" / "database.db").is_file()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
