"""Several load generator processes driven as one: clients split evenly, answers merged.

One load generator parses every frame on one core. On this 2-core machine it is what
limits a fan-out to ~20,000 clients, and one process cannot hold 20,000 sockets under the
hard descriptor limit (20,000) anyway. ``--loadgens 2`` runs two, each with half of the
clients; their arrival times share one clock (``time.monotonic`` is system-wide on Linux).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.procs import LoadGenerator, cpu_seconds, pin

# Answers that are per-client sizes or durations: the group's is the largest of its members'.
LARGEST = frozenset({"handshake_s", "ready_s", "first_frame_bytes", "frame_bytes"})


class LoadGroup:
    """``LoadGenerator``'s ``call`` over several of them."""

    def __init__(self, members: Sequence[LoadGenerator]) -> None:
        self.members = list(members)

    @classmethod
    async def start(cls, count: int, host: str, port: int, logs: Path, name: str) -> LoadGroup:
        """Start ``count`` load generators (logs ``loadgen-<name>[-i].log``).

        One is pinned to core 1, away from a one-process console on core 0. Several are
        left to the scheduler: on two cores one of them shares a core with the server
        whatever is pinned, and the scheduler can at least move it to the idler one.
        """
        if count < 1:
            raise ValueError(f"at least one load generator, not {count}")
        members: list[LoadGenerator] = []
        try:
            for index in range(count):
                suffix = f"-{index}" if count > 1 else ""
                members.append(await LoadGenerator.start(host, port, logs / f"loadgen-{name}{suffix}.log"))
            if count == 1:
                pin(members[0].child, 1)
        except BaseException:
            await cls(members).stop()
            raise
        return cls(members)

    @property
    def pids(self) -> list[int]:
        """The members' process ids."""
        return [member.child.pid for member in self.members]

    def cpu_seconds(self) -> float:
        """CPU seconds used by all members so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    async def call(self, command: str, answer_within: float = 300.0, **args: Any) -> dict:
        """``command`` on every member (``open`` splits its ``count``), their answers merged."""
        if command == "open":  # the clients and the handshakes in flight shared out: the same load in all
            counts = split(args.pop("count"), len(self.members))
            flight = split(args.pop("concurrency", 100), len(self.members))
            answers = await asyncio.gather(*(
                member.call(command, answer_within, count=count, concurrency=max(1, inflight), **args)
                for member, count, inflight in zip(self.members, counts, flight, strict=True)))
        else:
            answers = await asyncio.gather(*(member.call(command, answer_within, **args) for member in self.members))
        return merge(list(answers))

    async def stop(self) -> None:
        """Stop every member."""
        await asyncio.gather(*(member.stop() for member in self.members), return_exceptions=True)


def split(count: int, parts: int) -> list[int]:
    """``count`` in ``parts`` shares that differ by one at most."""
    return [count // parts + (1 if index < count % parts else 0) for index in range(parts)]


def merge(answers: list[Any], key: str = "") -> Any:
    """One answer from several: numbers summed (sizes and durations: the largest), lists joined, maps merged."""
    first = answers[0]
    if isinstance(first, dict):
        keys = dict.fromkeys(k for answer in answers for k in answer)
        return {k: merge([answer[k] for answer in answers if k in answer], k) for k in keys}
    if isinstance(first, list):
        return [item for answer in answers for item in answer]
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    return max(answers) if key in LARGEST else sum(answers)
