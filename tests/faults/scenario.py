"""Random runs of an ADW system and its console, then the verdict: does every client show the truth?

A run is a list of steps ``(kind, a, b)``: a source change, a poll, a server stop or
start, or something a client does (connect, read, leave, vanish, resume in one of the
resume modes). ``a`` and ``b`` are small integers the step interprets (which row, which
viewer, which variant), so a run is plain data that hypothesis can shrink and a seed can
replay. After the run everything settles (files completed, services up, every channel
polled, every client read up to the broker's seq) and each client's state is compared
with the broker's and with the channel read straight from the sources.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.adw import PHASES, QUEUE_STATUSES
from tests.faults.console import Console, same_view, source_truth
from tests.faults.steps import AFFECTS, STATE_FILES, Step
from tests.faults.viewers import RESUME_MODES, Viewer
from tests.faults.workspace import AGENT_IDS, WebhookService, Workspace, workspace_settings

MAX_VIEWERS = 12
BIG_TITLE = "x" * 12_000
BURST_ROWS = 8  # big patches in a row: a viewer with a 4 KiB receive buffer that isn't reading falls behind
SMALL_RCVBUF = 4096
CATCH_UP_ROUNDS = 8  # each round a slow client gets at least what the socket buffers hold
QUEUE_PHASES = ("init", *PHASES, "Completed")  # phase_queue.current_phase as its writers leave it


@dataclass
class TrialReport:
    """What one run did and every way a client or the console failed to show the truth."""

    steps: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    comparisons: int = 0


def wire(state) -> object:
    """``state`` as it would read back from the wire."""
    return orjson.loads(orjson.dumps(state))


class Trial:
    """One ADW workspace, its webhook service, the console on it and its viewers."""

    def __init__(self, workspace: Workspace, webhook: WebhookService, console: Console) -> None:
        self.ws, self.webhook, self.console = workspace, webhook, console
        self.viewers: list[Viewer] = []
        self.channels: tuple[str, ...] = ()
        self.dirty: set[str] = set()
        self.report = TrialReport()

    @classmethod
    async def open(cls, root: Path) -> Trial:
        """A workspace with a little in it, the console started, one viewer per channel."""
        workspace, webhook = Workspace(root), WebhookService()
        await webhook.up()
        workspace.queue.insert("running", "first row")
        workspace.write_state(AGENT_IDS[0], 1)
        trial = cls(workspace, webhook, Console(workspace_settings(workspace, webhook.url)))
        await trial.console.start()
        trial.channels = trial.console.channels
        for channel in trial.channels:
            await trial.add_viewer(channel, rcvbuf=None)
        await trial.add_viewer("queue", rcvbuf=SMALL_RCVBUF)
        return trial

    async def close(self) -> None:
        """Drop every client, stop the console and the service."""
        for viewer in self.viewers:
            viewer.vanish()
        await self.console.stop()
        await self.webhook.down()

    async def add_viewer(self, channel: str, rcvbuf: int | None) -> None:
        """A new client of ``channel``, connected when the console is up."""
        viewer = Viewer(channel, rcvbuf)
        self.viewers.append(viewer)
        if self.console.running:
            await self.connect(viewer, "")

    async def connect(self, viewer: Viewer, query: str) -> None:
        """Connect ``viewer``; one with a small receive buffer also gets a small path from the server."""
        if await viewer.connect(self.console.port, query) and viewer.rcvbuf:
            await self.console.throttle(viewer.channel, viewer.link.sock.getsockname()[1])

    async def step(self, kind: str, a: int, b: int) -> None:
        """Carry out one step."""
        self.report.steps[kind] += 1
        self.dirty.update(AFFECTS.get(kind, ()))
        await getattr(self, f"_{kind}")(a, b)

    async def _add_row(self, a: int, b: int) -> None:
        self.ws.queue.insert(QUEUE_STATUSES[a % 6], BIG_TITLE if b % 8 == 0 else f"row {a}.{b}", priority=b)

    async def _change_row(self, a: int, b: int) -> None:
        ids = self.ws.queue_ids()
        if ids:
            self.ws.queue.update(ids[a % len(ids)], status=QUEUE_STATUSES[b % 6],
                                 current_phase=QUEUE_PHASES[b % len(QUEUE_PHASES)],
                                 adw_id=AGENT_IDS[a % 4] if b % 3 == 0 else None)

    async def _remove_row(self, a: int, b: int) -> None:
        ids = self.ws.queue_ids()
        if ids:
            self.ws.queue.delete(ids[a % len(ids)])

    async def _pause(self, a: int, b: int) -> None:
        self.ws.queue.set_paused(a % 2 == 1)

    async def _write_state(self, a: int, b: int) -> None:
        self.ws.write_state(AGENT_IDS[a % 4], b)

    async def _half_state(self, a: int, b: int) -> None:
        self.ws.write_state(AGENT_IDS[a % 4], b, half=True)

    async def _complete_state(self, a: int, b: int) -> None:
        self.ws.complete_state(AGENT_IDS[a % 4])

    async def _remove_agent(self, a: int, b: int) -> None:
        self.ws.remove_agent(AGENT_IDS[a % 4])

    async def _error_line(self, a: int, b: int) -> None:
        self.ws.log_error(AGENT_IDS[a % 4], f"ERROR step {b} failed")

    async def _toggle_tree(self, a: int, b: int) -> None:
        self.ws.toggle_tree(AGENT_IDS[a % 4])

    async def _history(self, a: int, b: int) -> None:
        self.ws.upsert_run(AGENT_IDS[a % 4], b)

    async def _feature(self, a: int, b: int) -> None:
        self.ws.upsert_feature(1 + a % 5, b)

    async def _task_log(self, a: int, b: int) -> None:
        self.ws.log_task(AGENT_IDS[a % 4], b)

    async def _webhook_down(self, a: int, b: int) -> None:
        await self.webhook.down()

    async def _webhook_up(self, a: int, b: int) -> None:
        await self.webhook.up()

    async def _webhook_event(self, a: int, b: int) -> None:
        if b % 3:
            self.webhook.stats.record_success(100 + a, AGENT_IDS[a % 4], "adw_sdlc_complete_iso")
        else:
            self.webhook.stats.record_failure(100 + a, f"bad signature #{b}")

    async def _burst(self, a: int, b: int) -> None:
        """Big rows come and go, each published at once: slow viewers fall behind, the state stays small."""
        if not self.console.running:
            return
        rows = []
        for n in range(BURST_ROWS):
            rows.append(self.ws.queue.insert("queued", BIG_TITLE + f" {a}.{b}.{n}"))
            await self.console.poll("queue")
        for row in rows:
            self.ws.queue.delete(row)
            await self.console.poll("queue")
        self.dirty.discard("queue")

    async def _poll(self, a: int, b: int) -> None:
        if self.console.running and self.channels:
            channel = self.channels[a % len(self.channels)]
            await self.console.poll(channel)
            self.dirty.discard(channel)
            await self._judge_published((channel,))

    async def _poll_all(self, a: int, b: int) -> None:
        if self.console.running:
            await self.console.poll_all()
            self.dirty.clear()
            await self._judge_published(self.channels)

    async def _judge_published(self, channels: tuple[str, ...]) -> None:
        """Right after a poll, what the console publishes must be what the sources say."""
        for channel in channels:
            if not (channel in STATE_FILES and self.ws.half_written):
                await self._judge(channel, self.console.current(channel).state, "after a poll")

    async def _stop(self, a: int, b: int) -> None:
        if not self.console.running:
            return
        # Some clients take their close frame; the rest have stopped reading and get cut.
        takers = [v for i, v in enumerate(self.viewers) if v.connected and (i + b) % 3]
        await asyncio.gather(self.console.stop(), *(viewer.read_until_closed() for viewer in takers))

    async def _start(self, a: int, b: int) -> None:
        if not self.console.running:
            await self.console.start()  # its first polls read every source
            self.dirty.clear()

    def _viewer(self, a: int) -> Viewer | None:
        return self.viewers[a % len(self.viewers)] if self.viewers else None

    async def _connect(self, a: int, b: int) -> None:
        if len(self.viewers) >= MAX_VIEWERS or not self.channels:
            return
        if b % 2:  # a slow client, where the bursts are
            await self.add_viewer("queue", SMALL_RCVBUF)
        else:
            await self.add_viewer(self.channels[a % len(self.channels)], None)

    async def _read(self, a: int, b: int) -> None:
        viewer = self._viewer(a)
        if viewer is None or not viewer.connected or not self.console.running:
            return
        view = self.console.current(viewer.channel)
        if not await viewer.read_until(view.epoch, view.seq):
            return
        self._compare(viewer, view.state, "while running")
        # Polled since its sources last changed, a channel must show them (or their failure) now.
        if viewer.channel not in self.dirty and not (viewer.channel in STATE_FILES and self.ws.half_written):
            await self._judge(viewer.channel, viewer.state, "at a read")

    async def _leave(self, a: int, b: int) -> None:
        viewer = self._viewer(a)
        if viewer is not None:
            await viewer.leave()

    async def _vanish(self, a: int, b: int) -> None:
        viewer = self._viewer(a)
        if viewer is not None:
            viewer.vanish()

    async def _resume(self, a: int, b: int) -> None:
        viewer = self._viewer(a)
        if viewer is None or not self.console.running:
            return
        viewer.vanish()
        mode = RESUME_MODES[b % len(RESUME_MODES)]
        self.report.steps[f"resume {mode}"] += 1
        await self.connect(viewer, viewer.resume_query(mode, a, self.console.epochs[:-1]))

    def _compare(self, viewer: Viewer, state: dict, when: str) -> None:
        self.report.comparisons += 1
        if viewer.state != wire(state):
            self.report.mismatches.append(f"{viewer.channel} at seq {viewer.seq} ({when}): client != console")

    async def _judge(self, channel: str, state: dict, when: str) -> None:
        """Hold ``state`` to the sources: the same health, and while healthy the same data."""
        truth, problem = await source_truth(self.console.settings, channel)
        self.report.comparisons += 1
        health = state["meta"]["source"]
        if health != ("error" if problem else "ok"):
            self.report.mismatches.append(f"{channel} ({when}): shows {health}, sources say {problem or 'ok'}")
        elif problem is None and not same_view(channel, state, truth):
            self.report.mismatches.append(f"{channel} ({when}): differs from its sources")

    async def settle(self) -> None:
        """Finish what was half done, bring everything up, poll, and read every client to the end."""
        self.ws.complete_all()
        await self.webhook.up()
        if not self.console.running:
            await self.console.start()
        for viewer in self.viewers:
            if not viewer.connected:
                await self.connect(viewer, viewer.resume_query("good", 0, []))
        await self.console.poll_all()
        for viewer in self.viewers:
            await self._catch_up(viewer)

    async def _catch_up(self, viewer: Viewer) -> None:
        for _ in range(CATCH_UP_ROUNDS):  # cut off for being slow, a client resumes, as a browser does
            view = self.console.current(viewer.channel)
            if await viewer.read_until(view.epoch, view.seq):
                self._compare(viewer, view.state, "settled")
                return
            await self.connect(viewer, viewer.resume_query("good", 0, []))
        self.report.mismatches.append(f"{viewer.channel}: client never caught up")

    async def verdict(self) -> TrialReport:
        """Compare every channel with its sources and collect every client's protocol breaches."""
        for channel in self.channels:
            state = self.console.current(channel).state
            if state["meta"]["source"] != "ok":
                self.report.mismatches.append(f"{channel}: source {state['meta']} after settling")
            await self._judge(channel, state, "settled")
        for viewer in self.viewers:
            self.report.mismatches.extend(viewer.violations)
            self.report.received.update(viewer.received)
        return self.report


async def run_trial(root: Path, steps: list[Step]) -> TrialReport:
    """Run ``steps`` on a fresh workspace under ``root``, settle, and judge."""
    trial = await Trial.open(root)
    try:
        for kind, a, b in steps:
            await trial.step(kind, a, b)
        await trial.settle()
        return await trial.verdict()
    finally:
        await trial.close()
