"""Helpers for the browser tests: a free port, a watched page, page contents."""

from __future__ import annotations

import asyncio
import socket

from playwright.async_api import Page, expect

PANEL_CONTENTS_JS = """() => [...document.querySelectorAll('[data-channel]')].map((panel) => ({
  channel: panel.dataset.channel,
  source: panel.dataset.source,
  error: panel.querySelector('[data-meta-error]').textContent,
  summary: [...panel.querySelectorAll('[data-summary]')].map((el) => el.textContent),
  groups: [...panel.querySelectorAll('[data-rows]')].map((group) =>
    [...group.querySelectorAll(':scope > :not([data-leaving])')]  // a removed row fading out is gone already
      .map((row) => [row.dataset.key, row.textContent.replace(/\\s+/g, ' ').trim()])),
}))"""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WatchedPage:
    """A page whose console errors, uncaught exceptions and dialogs are all recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    async def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def panel(self, channel: str):
        """The locator of a panel's root element."""
        return self.page.locator(f'[data-channel="{channel}"]')

    async def expect_connection(self, channel: str, state: str, timeout: float = 5000) -> None:
        """Wait until ``channel``'s panel shows the connection ``state``."""
        await expect(self.panel(channel).locator("[data-connection]")).to_have_attribute(
            "data-connection", state, timeout=timeout)

    async def contents(self) -> list[dict]:
        """What every panel shows: source, error, summary texts and rows (key, text) by group."""
        return await self.page.evaluate(PANEL_CONTENTS_JS)


class SilentRelay:
    """A TCP relay in front of the console that can go silent: connections stay open, nothing flows.

    That is what a dead link looks like from the browser (no close, no RST, no frames).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.tasks: set[asyncio.Task] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on a free loopback port (``self.port``)."""
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def go_silent(self) -> None:
        """Stop forwarding in both directions, keeping every connection open."""
        self.flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        self.writers.append(writer)
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.writers.append(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for writer in self.writers), return_exceptions=True)
        await self.server.wait_closed()
