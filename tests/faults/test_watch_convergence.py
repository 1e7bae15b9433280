"""With hour-long poll intervals, file events alone keep every file-fed channel true.

Random sequences of what an ADW system and its operators do to the files: state files
rewritten in place or replaced by rename, agent directories and worktrees that come and
go, error logs that grow, queue commits, and the whole agents/ or trees/ directory
deleted, moved away, made again or moved back. After each step every client must come to
show what the sources say, with no poll but those the watcher asks for.
"""

import asyncio
import dataclasses
import json
import os
import random
import shutil

import pytest

from monitor.app import create_app
from tests.faults.console import same_view, source_truth
from tests.faults.workspace import AGENT_IDS, Workspace, state_record, workspace_settings
from tests.support import ProtocolClient

CHANNELS = ("adw-monitor", "workflows", "queue")
STEPS = 100


def replace_state(ws: Workspace, adw_id: str, variant: int) -> None:
    """Write the state file beside, then rename it over the old one (an atomic writer)."""
    path = ws.state_path(adw_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(state_record(adw_id, variant)))
    os.replace(staged, path)


def toggle_dir(path, away, rng: random.Random) -> None:
    """Delete ``path`` or move it to ``away``; or bring it back: moved back, or made anew."""
    if path.is_dir():
        if away.exists() or rng.random() < 0.5:
            shutil.rmtree(path)
        else:
            path.rename(away)
    elif away.is_dir() and rng.random() < 0.5:
        away.rename(path)
    else:
        path.mkdir()


def random_step(ws: Workspace, rng: random.Random) -> str:
    """Do one random thing to the sources; return its name."""
    adw_id, variant = rng.choice(AGENT_IDS), rng.randrange(40)
    if not ws.agents.is_dir() and rng.random() < 0.5:
        toggle_dir(ws.agents, ws.root / "agents.away", rng)
        return "agents back"
    steps = {
        "write in place": lambda: ws.write_state(adw_id, variant) if ws.agents.is_dir() else None,
        "replace by rename": lambda: replace_state(ws, adw_id, variant) if ws.agents.is_dir() else None,
        "remove agent": lambda: ws.remove_agent(adw_id),
        "error line": lambda: ws.log_error(adw_id, f"error {variant}"),
        "toggle tree": lambda: ws.toggle_tree(adw_id) if ws.trees.is_dir() else None,
        "queue commit": lambda: ws.queue.insert("pending", f"row {variant}", priority=variant),
        "toggle agents/": lambda: toggle_dir(ws.agents, ws.root / "agents.away", rng),
        "toggle trees/": lambda: toggle_dir(ws.trees, ws.root / "trees.away", rng),
    }
    name = rng.choices(list(steps), weights=(6, 6, 2, 3, 3, 3, 1, 1))[0]
    steps[name]()
    return name


async def until_true(client: ProtocolClient, settings, channel: str, step: str) -> None:
    """Receive until the client shows what the sources say now (health, and data while healthy)."""
    truth, problem = await source_truth(settings, channel)
    health = "error" if problem else "ok"
    while not (client.state["meta"]["source"] == health and (problem or same_view(channel, client.state, truth))):
        try:
            await client.receive()
        except TimeoutError:
            pytest.fail(f"{channel} never came to show its sources after {step!r}: the watcher missed it")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_file_events_alone_keep_clients_true(aiohttp_client, tmp_path, seed):
    ws = Workspace(tmp_path / "adw")
    settings = workspace_settings(ws, "http://127.0.0.1:9/webhook-status")
    settings = dataclasses.replace(settings, sources=dataclasses.replace(settings.sources, watch=True))
    client = await aiohttp_client(create_app(settings))
    viewers = {channel: ProtocolClient(await client.ws_connect(f"/api/v1/ws/{channel}")) for channel in CHANNELS}
    for viewer in viewers.values():
        await viewer.receive()
    rng = random.Random(seed)
    for _ in range(STEPS):
        # Off the loop, as the ADW system is another process: a commit may wait for the console's read.
        step = await asyncio.to_thread(random_step, ws, rng)
        for channel, viewer in viewers.items():
            await until_true(viewer, settings, channel, step)
