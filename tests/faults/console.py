"""The console served in this process, restartable on one port, and the truth to hold it to.

A restart builds a new application on the same settings, so it opens a new epoch, exactly
as a restarted process does. The truth is ``monitor.probe.read_channel``: the channel's
state read straight from the sources by a reader that shares nothing with the console.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
from aiohttp.test_utils import TestServer

from monitor.app import create_app
from monitor.keys import BROKER, HUB, POLLERS
from monitor.probe import read_channel
from monitor.settings import Settings
from monitor.state import ChannelView


class Console:
    """One console at a time on a fixed loopback port; ``epochs`` lists every epoch it opened."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port: int | None = None
        self.server: TestServer | None = None
        self.epochs: list[str] = []

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self.server is not None

    @property
    def app(self):
        """The running application."""
        assert self.server is not None, "the console is stopped"
        return self.server.app

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels that have a reader (the others stay pending)."""
        return tuple(self.app[POLLERS])

    async def start(self) -> None:
        """Start a new application (a new epoch); the first polls run before it listens."""
        server = TestServer(create_app(self.settings), port=self.port)
        await server.start_server()
        self.server, self.port = server, server.port
        self.epochs.append(self.current(self.channels[0] if self.channels else "queue").epoch)

    async def stop(self) -> None:
        """Shut down as the process would: jobs stop, sockets close with 1001."""
        server, self.server = self.server, None
        if server is not None:
            await server.close()

    def current(self, channel: str) -> ChannelView:
        """The state the broker holds for ``channel``, at its (epoch, seq)."""
        return self.app[BROKER].current(channel)

    async def poll(self, channel: str) -> None:
        """Poll one channel now."""
        await self.app[POLLERS][channel].poll()

    async def poll_all(self) -> None:
        """Poll every channel now, concurrently."""
        await asyncio.gather(*(poller.poll() for poller in self.app[POLLERS].values()))

    async def throttle(self, channel: str, client_port: int, sndbuf: int = 4096) -> None:
        """Shrink the server's send buffer towards one client, as a slow network path would.

        Loopback otherwise buffers megabytes, and a client that stops reading would never
        be found slow.
        """
        def find(hub):
            for connection in hub.connections(channel):
                transport = connection.transport
                peer = transport.get_extra_info("peername") if transport is not None else None
                if peer and peer[1] == client_port:
                    return transport
            return None

        try:
            await asyncio.wait_for(self.app[HUB].wait_until(lambda hub: find(hub) is not None), timeout=10)
        except TimeoutError:  # it was cut off before we looked: nothing to throttle
            return
        find(self.app[HUB]).get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)

    def connection_count(self) -> int:
        """Sockets registered in the hub, all channels."""
        return self.app[HUB].count()


def _fold_check(item: dict[str, Any]) -> dict[str, Any]:
    # Latency is a fresh measurement on every read, and "degraded" only says one was slow.
    item = {key: value for key, value in item.items() if key != "latency_ms"}
    if item.get("status") == "degraded":
        item["status"] = "healthy"
        item["message"] = str(item.get("message", "")).split("; slower than")[0]
    return item


def comparable(channel: str, state: dict[str, Any]) -> dict[str, Any]:
    """The summary and items of ``state`` as a client sees them on the wire, measurements aside."""
    wire = orjson.loads(orjson.dumps({"summary": state.get("summary", {}), "items": state.get("items", {})}))
    if channel == "system-status":
        was_slow = any(item.get("status") == "degraded" for item in wire["items"].values())
        wire["items"] = {name: _fold_check(item) for name, item in wire["items"].items()}
        if was_slow:
            wire["summary"] = {"total": wire["summary"].get("total")}
    return wire


async def source_truth(settings: Settings, channel: str) -> tuple[dict[str, Any], str | None]:
    """(comparable state, problem) of ``channel`` read straight from the sources."""
    state, problem = await read_channel(settings, channel)
    return comparable(channel, state), problem


def same_view(channel: str, seen: dict[str, Any] | None, truth: dict[str, Any]) -> bool:
    """True when a client's state shows what ``truth`` (comparable form) shows."""
    if seen is None:
        return False
    mine = comparable(channel, seen)
    if channel == "system-status" and truth["summary"].keys() != mine["summary"].keys():
        mine["summary"] = {"total": mine["summary"].get("total")}
        truth = {**truth, "summary": {"total": truth["summary"].get("total")}}
    return mine == truth
