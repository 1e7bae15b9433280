"""Helpers of the fault tests: channel health at a glance, live streams to await, misbehaving peers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import BROKER, POLLERS, SETTINGS
from tests.faults.console import same_view, source_truth
from tests.support import ProtocolClient, merged

DB_CHANNELS = ("queue", "adw-monitor", "workflow-history", "planned-features")
STATE_FILE_CHANNELS = ("adw-monitor", "workflows")


def fast_polling(webhook_url: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings overrides: the given webhook service, every channel polled by the scheduler every 50 ms."""
    channels = {name: {"interval": 0.05, "timeout": 1.0} for name in CHANNEL_NAMES}
    return merged({"sources": {"webhook_url": webhook_url}, "channels": channels}, overrides or {})


def make_source_dirs(root: Path) -> None:
    """The agents and trees directories the test settings point at."""
    for directory in ("agents", "trees"):
        (root / directory).mkdir(exist_ok=True)


def state_of(client, channel: str) -> dict[str, Any]:
    """The channel's state as the broker holds it."""
    return client.app[BROKER].current(channel).state


def health(client) -> dict[str, str]:
    """``meta.source`` of every channel that has a reader."""
    return {name: state_of(client, name)["meta"]["source"] for name in client.app[POLLERS]}


def failing_only(client, failing: tuple[str, ...]) -> None:
    """Exactly the channels in ``failing`` are in error; every other channel is ok."""
    shown = health(client)
    assert shown == {name: "error" if name in failing else "ok" for name in shown}


async def poll_all(client) -> None:
    """Poll every channel now (and wait for any scheduled poll in flight)."""
    await asyncio.gather(*(poller.poll() for poller in client.app[POLLERS].values()))


async def matches_sources(client, channel: str) -> None:
    """The channel as published equals the channel read straight from its sources."""
    truth, problem = await source_truth(client.app[SETTINGS], channel)
    assert problem is None, problem
    assert same_view(channel, state_of(client, channel), truth)


async def watch(client, channel: str) -> ProtocolClient:
    """A live client of ``channel`` that has its first snapshot."""
    live = ProtocolClient(await client.ws_connect(f"/api/v1/ws/{channel}"))
    await live.receive()
    return live


async def until(live: ProtocolClient, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Read ``live``'s stream until its state satisfies ``predicate``."""
    while not predicate(live.state):
        await live.receive()


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HangingService:
    """Accepts connections, reads what it is sent, and never answers."""

    def __init__(self) -> None:
        self.accepted = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._all_closed = asyncio.Event()
        self._accepted = asyncio.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        """A status URL on this service."""
        return f"http://127.0.0.1:{self.port}/webhook-status"

    async def start(self) -> HangingService:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(writer)
        self._all_closed.clear()
        async with self._accepted:
            self._accepted.notify_all()
        try:
            while await reader.read(65536):
                pass  # the request arrives; the answer never does
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            if not self.writers:
                self._all_closed.set()

    async def until_accepted(self, count: int) -> None:
        """Wait until ``count`` connections have been accepted in all."""
        async with self._accepted:
            await asyncio.wait_for(self._accepted.wait_for(lambda: self.accepted >= count), timeout=10)

    async def until_clients_hung_up(self) -> None:
        """Wait until every connection the clients opened has been closed by them."""
        await asyncio.wait_for(self._all_closed.wait(), timeout=10)

    def stop_listening(self) -> None:
        """Accept no more connections; those held stay open until their clients close them."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and drop what is still held."""
        self.stop_listening()
        for writer in list(self.writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
