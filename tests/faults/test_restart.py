"""SIGKILL and restart on the same port: every client reconnects, gets the new epoch, and shows the sources.

Includes what changed while the console was down. The clients resume with the epoch
and seq they had; a restarted console has a new epoch, so each must get a snapshot.
"""

import asyncio
import sys

import aiohttp

from monitor.channels.registry import CHANNEL_NAMES
from monitor.settings import load_settings
from tests.faults.console import same_view, source_truth
from tests.faults.process import ROOT, ConsoleProcess, write_config
from tests.faults.viewers import Viewer
from tests.faults.workspace import AGENT_IDS, Workspace


async def published(http: aiohttp.ClientSession, port: int, channel: str) -> dict:
    """``GET /api/v1/<channel>``: epoch, seq and data as the console publishes them."""
    async with http.get(f"http://127.0.0.1:{port}/api/v1/{channel}") as response:
        return await response.json()


async def settle(viewer: Viewer, http: aiohttp.ClientSession, port: int) -> dict:
    """Read ``viewer`` up to the console's current seq of its channel; that published state."""
    while True:
        now = await published(http, port, viewer.channel)
        assert await viewer.read_until(now["epoch"], now["seq"]), viewer.violations
        if (await published(http, port, viewer.channel))["seq"] == now["seq"]:
            return now


def change_everything_while_down(workspace: Workspace, webhook) -> None:
    """A new row, a changed row, a removed row, a new run, an error line, a webhook delivery."""
    (before,) = workspace.queue_ids()
    added = workspace.queue.insert("queued", "added while down")
    workspace.queue.update(added, status="ready")
    workspace.queue.delete(before)
    workspace.write_state(AGENT_IDS[1], 6)
    workspace.log_error(AGENT_IDS[0], "ERROR lost the worktree")
    workspace.upsert_run(AGENT_IDS[1], 2)
    workspace.upsert_feature(1, 3)
    webhook.stats.record_failure(7, "signature mismatch")


async def test_clients_converge_after_sigkill_and_restart(tmp_path, workspace, webhook):
    config = write_config(tmp_path / "config.toml", workspace, webhook.url, intervals={"queue": 0.2})
    console = ConsoleProcess(config)
    port = await console.start()
    viewers = [Viewer(channel) for channel in CHANNEL_NAMES]
    async with aiohttp.ClientSession() as http:
        for viewer in viewers:
            assert await viewer.connect(port)
            await settle(viewer, http, port)
        epoch = viewers[0].epoch
        assert await console.kill() == -9
        for viewer in viewers:
            await viewer.read_until_closed()  # the connection just ends: no close frame from a killed process
        change_everything_while_down(workspace, webhook)
        write_config(config, workspace, webhook.url, port=port, intervals={"queue": 0.2})
        assert await console.start() == port
        for viewer in viewers:
            assert await viewer.connect(port, viewer.resume_query("good", 0, []))
        settings = load_settings(config, environ={})
        for viewer in viewers:
            state = await settle(viewer, http, port)
            assert viewer.epoch == state["epoch"] != epoch
            assert viewer.state == state["data"]
            truth, problem = await source_truth(settings, viewer.channel)
            assert problem is None and same_view(viewer.channel, viewer.state, truth), viewer.channel
        titles = {item["title"] for item in viewers[0].state["items"].values()}
        assert "added while down" in titles and len(titles) == 1
        workspace.queue.insert("running", "after the restart")
        queue = viewers[0]
        while len(queue.state["items"]) < 2:  # the scheduler's next poll brings it
            assert await queue.read_until(queue.epoch, queue.seq + 1)
    for viewer in viewers:
        viewer.vanish()
        assert viewer.violations == [] and viewer.received["snapshot"] == 2
    assert await console.stop() == 0
    assert "Traceback" not in console.log_text()


async def test_a_console_that_cannot_start_exits(tmp_path, workspace, webhook):
    config = write_config(tmp_path / "config.toml", workspace, webhook.url, intervals={"queue": float("inf")})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        status = await asyncio.wait_for(process.wait(), timeout=10)  # only a guard against the hang
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the console neither started nor exited") from None
    assert status != 0
