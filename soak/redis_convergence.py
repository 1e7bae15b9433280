"""Many consoles through Redis: seeded trials of changes, leader kills and resumes on random consoles.

    python -m soak.redis_convergence [--trials 30] [--steps 40] [--seed 1] [--consoles 3]

Each trial starts a fresh redis-server and ``--consoles`` real ``monitor serve`` processes
sharing it (``[broker] lock_ttl`` 1 s, the queue polled every 0.2 s), with bare-socket
WebSocket clients of the queue spread over them. Random steps: commit a queue change (half
of them awaited on every console), SIGKILL the queue's poller (found by ``/healthz``), time
the takeover and start it again, and move a client to a random console with
``?epoch=&seq=`` after a change it missed. Every client checks the protocol as it reads;
every patch (epoch, seq) must be the same bytes on every console. After the trial every
client, a fresh snapshot from every console and the database must agree. Prints a JSON
report; exits 1 on any mismatch. Trial i uses seed + i; ``--seed S --trials 1`` replays one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from monitor.adw import QUEUE_STATUSES
from soak.convergence import quiet_logs
from soak.redis_cluster import CHANNEL, HARD_WAIT, LOCK_TTL, Cluster
from tests.faults.console import same_view, source_truth
from tests.faults.viewers import Viewer
from tests.faults.workspace import WebhookService, workspace_settings

CLIENTS = 9
STEP_WEIGHTS = {"change": 0.6, "reconnect": 0.3, "kill_leader": 0.1}


class Client(Viewer):
    """A queue viewer that remembers its console and how its last resume was answered."""

    def __init__(self, home: int, patches: dict[tuple[str, int], bytes], mismatches: list[str]) -> None:
        super().__init__(CHANNEL)
        self.home, self.patches, self.mismatches = home, patches, mismatches
        self.first: str | None = None  # type of the first message since the last connect

    async def connect(self, port: int, query: str = "") -> bool:
        """Open the socket; the next message's type tells how the resume was answered."""
        self.first = None
        return await super().connect(port, query)

    def apply(self, message: dict) -> None:
        """Apply it, and hold every patch to what any other console sent at the same (epoch, seq)."""
        if self.first is None:
            self.first = message.get("type")
        if message.get("type") == "patch":
            key, body = (message["epoch"], message["seq"]), orjson.dumps(message["patch"])
            if self.patches.setdefault(key, body) != body:
                self.mismatches.append(f"patch {key} differs between consoles")
        super().apply(message)


class Trial:
    """One cluster, its clients and the tallies of one seeded run."""

    def __init__(self, cluster: Cluster, rng: random.Random, totals: Counter) -> None:
        self.cluster, self.rng, self.totals = cluster, rng, totals
        self.settings = workspace_settings(cluster.workspace, cluster.webhook_url)
        self.rows: list[str] = []
        self.patches: dict[tuple[str, int], bytes] = {}
        self.mismatches: list[str] = []
        self.clients: list[Client] = []
        self.takeovers: list[float] = []

    async def open_clients(self, count: int) -> None:
        """``count`` clients, each on a random console, caught up."""
        for _ in range(count):
            client = Client(self.rng.choice(self.cluster.live()), self.patches, self.mismatches)
            await self.attach(client, "")
            self.clients.append(client)

    async def attach(self, client: Client, query: str) -> None:
        """Connect ``client`` to its home console with ``query`` and read to the pong."""
        if not await client.connect(self.cluster.consoles[client.home].port, query):
            self.mismatches.append(f"console {client.home} refused a client")
        elif not await client.sync():
            self.mismatches.append(f"client on console {client.home} lost its socket before the pong")

    async def run(self, steps: int) -> None:
        """The random steps, then the verdict."""
        kinds, weights = list(STEP_WEIGHTS), list(STEP_WEIGHTS.values())
        for _ in range(steps):
            kind = self.rng.choices(kinds, weights)[0]
            self.totals[f"step_{kind}"] += 1
            await getattr(self, f"_{kind}")()
        await self.verdict()

    async def _change(self, awaited: bool | None = None) -> None:
        """Commit one queue change; half the time wait until every console shows it."""
        table, rng = self.cluster.workspace.queue, self.rng
        if self.rows and rng.random() < 0.15:
            await asyncio.to_thread(table.delete, self.rows.pop(rng.randrange(len(self.rows))))
        elif self.rows and rng.random() < 0.5:
            await asyncio.to_thread(table.update, rng.choice(self.rows), status=rng.choice(QUEUE_STATUSES))
        else:
            self.rows.append(await asyncio.to_thread(table.insert, rng.choice(QUEUE_STATUSES),
                                                     f"row {self.totals['changes']}"))
        self.totals["changes"] += 1
        if awaited if awaited is not None else rng.random() < 0.5:
            await self.until_every_console_shows_the_database()

    async def _reconnect(self) -> None:
        """A client leaves, (usually) misses a change, and resumes on a random console."""
        client = self.rng.choice(self.clients)
        if self.rng.random() < 0.5:
            await client.leave()  # applies what was in flight: it resumes from there
        else:
            client.vanish()
        if self.rng.random() < 0.7:
            await self._change(awaited=True)
        was = client.home
        client.home = self.rng.choice(self.cluster.live())
        self.totals["moved_to_another_console"] += client.home != was
        await self.resume(client)

    async def resume(self, client: Client) -> None:
        """Resume ``client`` on its home console from the (epoch, seq) it has applied; count the answer."""
        client.expect_snapshot = False
        query = "" if client.epoch is None else f"?epoch={client.epoch}&seq={client.seq}"  # None: a breach reset it
        await self.attach(client, query)
        self.totals["reconnects"] += 1
        outcome = {"patch": "ring", "pong": "current", "snapshot": "snapshot"}.get(client.first, "none")
        self.totals[f"resume_{outcome}"] += 1

    async def _kill_leader(self) -> None:
        """SIGKILL the queue's poller, time the takeover, move its clients, start it again."""
        dead, seconds = await self.cluster.kill_leader()
        self.totals["leader_kills"] += 1
        self.takeovers.append(seconds)
        for client in self.clients:
            if client.home == dead:  # its socket died with the process: it resumes wherever it lands
                client.vanish()
                client.home = self.rng.choice(self.cluster.live())
                self.totals["moved_to_another_console"] += 1
                await self.resume(client)
        if self.rng.random() < 0.5:
            await self._change()  # a change while the killed console is still down
        await self.cluster.restart(dead)

    async def until_every_console_shows_the_database(self) -> None:
        """Wait (bounded) until every live console's queue equals the database's; a mismatch if never."""
        truth, problem = await source_truth(self.settings, CHANNEL)
        deadline = time.monotonic() + HARD_WAIT
        while time.monotonic() < deadline:
            views = [await self.cluster.view(i) for i in self.cluster.live()]
            if problem is None and all(v is not None and same_view(CHANNEL, v["data"], truth) for v in views):
                return
            await asyncio.sleep(0.02)  # the change travels through other processes: only their state tells
        self.mismatches.append(f"a change never reached every console within {HARD_WAIT} s ({problem or 'ok'})")

    async def verdict(self) -> None:
        """One last change, every client read to its console's seq, then all compared."""
        await self.cluster.leader()
        await self._change(awaited=True)
        fresh = []
        for index in self.cluster.live():
            snapshot = Client(index, self.patches, self.mismatches)
            await self.attach(snapshot, "")
            fresh.append((index, snapshot))
            await snapshot.leave()
        truth, _ = await source_truth(self.settings, CHANNEL)
        first, reference = fresh[0]
        for client in self.clients:
            await client.read_until(reference.epoch, reference.seq)
        for name, seen in [(f"console {i}", s) for i, s in fresh] + [("client", c) for c in self.clients]:
            self.totals["comparisons"] += 1
            if (seen.epoch, seen.seq, seen.state) != (reference.epoch, reference.seq, reference.state):
                self.mismatches.append(f"{name} at {seen.epoch}/{seen.seq} != console {first} "
                                       f"at {reference.epoch}/{reference.seq}")
            elif not same_view(CHANNEL, seen.state, truth):
                self.mismatches.append(f"{name} differs from the database")
        for client in self.clients:
            self.mismatches.extend(client.violations)
            self.totals["patches_applied"] += client.received["patch"]
            await client.leave()


async def run_trial(root: Path, seed: int, steps: int, consoles: int, webhook_url: str, totals: Counter) -> Trial:
    """One seeded trial on a fresh Redis and fresh consoles, torn down whatever happens."""
    cluster = Cluster(root, consoles, webhook_url)
    trial = Trial(cluster, random.Random(seed), totals)
    try:
        await cluster.start()
        trial.rows.append(await asyncio.to_thread(cluster.workspace.queue.insert, "running", "first row"))
        await trial.until_every_console_shows_the_database()
        await trial.open_clients(CLIENTS)
        await trial.run(steps)
    except Exception as exc:  # noqa: BLE001 -- any failure of a trial is its mismatch, and the run goes on
        trial.mismatches.append(f"trial aborted: {type(exc).__name__}: {exc}")
    finally:
        for client in trial.clients:
            client.vanish()
        totals["tracebacks"] += cluster.tracebacks()
        await cluster.close()
    return trial


async def run(trials: int, steps: int, first_seed: int, consoles: int) -> dict:
    """Run the trials; the report."""
    totals: Counter = Counter()
    takeovers: list[float] = []
    failed: list[int] = []
    started = time.monotonic()
    webhook = WebhookService()
    await webhook.up()
    try:
        with tempfile.TemporaryDirectory(prefix="redis-convergence-") as scratch:
            for seed in range(first_seed, first_seed + trials):
                trial = await run_trial(Path(scratch) / f"seed{seed}", seed, steps, consoles, webhook.url, totals)
                takeovers += trial.takeovers
                totals["trials"] += 1
                if trial.mismatches:
                    totals["mismatches"] += len(trial.mismatches)
                    failed.append(seed)
                    print(f"seed {seed}: {trial.mismatches[:5]}", file=sys.stderr)
    finally:
        await webhook.down()
    return report(totals, takeovers, failed, steps, time.monotonic() - started)


def report(totals: Counter, takeovers: list[float], failed: list[int], steps: int, seconds: float) -> dict:
    """The figures of the run."""
    ms = sorted(round(t * 1000, 1) for t in takeovers)
    return {
        "trials": totals["trials"], "steps": totals["trials"] * steps, "seconds": round(seconds, 1),
        "steps_by_kind": {k: totals[f"step_{k}"] for k in STEP_WEIGHTS},
        "changes": totals["changes"], "leader_kills": totals["leader_kills"],
        "takeover_ms": {"p50": statistics.median(ms) if ms else None, "max": ms[-1] if ms else None,
                        "bound": 2 * LOCK_TTL * 1000,
                        "over_bound": sum(t > 2 * LOCK_TTL * 1000 for t in ms)},
        "reconnects": totals["reconnects"], "moved_to_another_console": totals["moved_to_another_console"],
        "resumes": {k: totals[f"resume_{k}"] for k in ("ring", "current", "snapshot", "none")},
        "patches_applied": totals["patches_applied"], "comparisons": totals["comparisons"],
        "tracebacks_in_console_logs": totals["tracebacks"],
        "mismatches": totals["mismatches"], "failed_seeds": failed,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report; 1 when anything mismatched."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1, help="seed of the first trial; trial i uses seed + i")
    parser.add_argument("--consoles", type=int, default=3)
    args = parser.parse_args(argv)
    quiet_logs()
    figures = asyncio.run(run(args.trials, args.steps, args.seed, args.consoles))
    print(json.dumps(figures, indent=2))
    return 1 if figures["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
