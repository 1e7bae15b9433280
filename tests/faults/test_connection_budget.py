"""A descriptor flood against a real console process whose open-file limit is 256, so exhaustion comes quickly.

Before the connection budget, idle connections took every descriptor: /healthz stopped
answering, sources failed with "Too many open files", and asyncio logged a traceback per
failed accept. Now each address gets a quarter of the connections, descriptors stay in
reserve for the console's own polls, and refusals are logged as counts.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.faults.process import ConsoleProcess, write_config

OPEN_FILES = 256
FD_RESERVE = 96  # so 160 client connections at most, 40 from one address
PER_ADDRESS = (OPEN_FILES - FD_RESERVE) // 4
# `monitor serve` in a process whose hard limit on descriptors is OPEN_FILES, set before anything is imported.
LIMITED_SERVE = ("-c", "import resource, runpy, sys; "
                       f"resource.setrlimit(resource.RLIMIT_NOFILE, ({OPEN_FILES}, {OPEN_FILES})); "
                       "sys.argv = ['monitor', 'serve', *sys.argv[1:]]; "
                       "runpy.run_module('monitor', run_name='__main__', alter_sys=True)")
FLOODERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")  # every 127/8 address is loopback on Linux
BURST = 150  # concurrent connection attempts per flooding address in one round
ROUNDS = 6
BOUND = 60  # seconds any single wait may take before the test fails instead of hanging


async def hold(port: int, source: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` idle connections from ``source``, opened one after another (so accepted in that order)."""
    held = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        held.append(writer)
    return held


async def attempt(port: int, source: str) -> bytes:
    """One connection from ``source`` that sends nothing: the status line the server answered before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        async with asyncio.timeout(BOUND):
            return (await reader.read()).split(b"\r\n", 1)[0]
    finally:
        writer.close()


async def flood(port: int) -> list[bytes]:
    """A round of concurrent attempts from every flooding address; their status lines."""
    attempts = [attempt(port, source) for source in FLOODERS for _ in range(BURST)]
    return await asyncio.gather(*attempts)


async def health(http: aiohttp.ClientSession, port: int) -> dict[str, str]:
    """``/healthz`` from 127.0.0.1: each channel's source state."""
    async with asyncio.timeout(BOUND), http.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.status == 200
        return {name: channel["source"] for name, channel in (await response.json())["channels"].items()}


async def queue_titles(http: aiohttp.ClientSession, port: int) -> set[str]:
    """The titles the queue channel publishes."""
    async with asyncio.timeout(BOUND), http.get(f"http://127.0.0.1:{port}/api/v1/queue") as response:
        return {item["title"] for item in (await response.json())["data"]["items"].values()}


def logged(console: ConsoleProcess, event: str) -> list[dict]:
    """The console's log events called ``event``."""
    return [line for line in map(json.loads, console.log_text().splitlines()) if line.get("event") == event]


async def test_a_descriptor_flood_leaves_the_console_answering_polling_and_logging_counts(
        tmp_path, workspace, webhook, monkeypatch):
    monkeypatch.setenv("MONITOR_SERVER_FD_RESERVE", str(FD_RESERVE))
    monkeypatch.setenv("MONITOR_SERVER_HEADER_TIMEOUT", "3600")  # the held connections stay held throughout
    # queue and adw-monitor poll all the while; adw-monitor opens files on every poll
    config = write_config(tmp_path / "config.toml", workspace, webhook.url,
                          intervals={"queue": 0.2, "adw-monitor": 0.2})
    console = ConsoleProcess(config, argv=LIMITED_SERVE)
    port = await console.start()
    held = [writer for source in FLOODERS for writer in await hold(port, source, PER_ADDRESS)]
    answers: list[bytes] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(ROUNDS):
            answers += await flood(port)
            assert set((await health(http, port)).values()) == {"ok"}
        workspace.queue.insert("queued", "during the flood")
        async with asyncio.timeout(BOUND):
            while "during the flood" not in await queue_titles(http, port):
                pass  # the queue's next poll (every 0.2 s) brings it
    for writer in held:
        writer.close()
    assert await console.stop() == 0
    assert set(answers) == {b"HTTP/1.1 429 Too Many Requests"}
    refused = logged(console, "connections_refused")
    assert 1 <= len(refused) <= 6 and sum(event["count"] for event in refused) == len(answers)
    assert len(logged(console, "accept_failed")) <= 2
    assert "Too many open files" not in console.log_text() and "Traceback" not in console.log_text()
