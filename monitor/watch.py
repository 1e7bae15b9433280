"""Event-assisted change detection: file events make the affected channels poll at once.

The interval poll stays the safety net; this only makes changes arrive sooner. A watched
directory may not exist yet or may vanish: its nearest existing parent is watched
(non-recursively) until it appears, then the directory itself again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
import watchfiles

from monitor.settings import Settings
from monitor.sources.database import sqlite_path

log = structlog.get_logger(__name__)

# Agent directories also hold many per-phase output files; only these matter to us.
AGENT_FILES = frozenset({"adw_state.json", "error.log"})


@dataclass(frozen=True)
class WatchTarget:
    """A path whose changes should make ``channels`` poll now."""

    path: Path
    channels: tuple[str, ...]
    recursive: bool
    relevant: Callable[[Path], bool] = lambda changed: True


def watch_targets(settings: Settings) -> list[WatchTarget]:
    """What to watch for ``settings``: state files, worktrees, and a SQLite database's files."""
    sources = settings.sources
    agents = Path(sources.agents_dir).absolute()
    targets = [
        WatchTarget(agents, ("adw-monitor", "workflows"), recursive=True,
                    relevant=lambda changed: changed.name in AGENT_FILES or changed.parent == agents),
        WatchTarget(Path(sources.trees_dir).absolute(), ("adw-monitor",), recursive=False),
    ]
    if sources.database.startswith("sqlite:"):
        db = Path(sqlite_path(sources.database)).absolute()
        names = {db.name, f"{db.name}-wal", f"{db.name}-journal"}
        targets.append(WatchTarget(db.parent, ("queue", "adw-monitor", "workflow-history", "planned-features"),
                                   recursive=False, relevant=lambda changed: changed.name in names))
    return targets


class Watcher:
    """Watches targets and calls ``trigger(channel)`` for each channel a change affects."""

    def __init__(self, targets: list[WatchTarget], trigger: Callable[[str], None], debounce: float) -> None:
        self.targets = targets
        self.trigger = trigger
        self.step_ms = max(1, int(debounce * 1000))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """Start one watching task per target."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch_forever(t)) for t in self.targets]

    async def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()

    async def _watch_forever(self, target: WatchTarget) -> None:
        while not self._stop.is_set():
            try:
                if target.path.is_dir():
                    await self._watch_existing(target)
                else:
                    await self._wait_for_creation(target)
            except (OSError, RuntimeError) as exc:
                # A directory can vanish between the check and the watch; look again shortly.
                log.debug("watch_restart", path=str(target.path), error=str(exc))
                await _wait_or_timeout(self._stop, 1.0)

    async def _watch_existing(self, target: WatchTarget) -> None:
        async for changes in self._awatch(target.path, target.recursive):
            if any(target.relevant(Path(path)) for _, path in changes):
                for channel in target.channels:
                    self.trigger(channel)
            if not target.path.is_dir():
                for channel in target.channels:
                    self.trigger(channel)
                return

    async def _wait_for_creation(self, target: WatchTarget) -> None:
        parent = _nearest_existing_parent(target.path)
        async for _ in self._awatch(parent, recursive=False):
            if target.path.is_dir() or not parent.is_dir() or _nearest_existing_parent(target.path) != parent:
                for channel in target.channels:
                    self.trigger(channel)
                return

    def _awatch(self, path: Path, recursive: bool):
        return watchfiles.awatch(path, watch_filter=None, debounce=1000, step=self.step_ms,
                                 stop_event=self._stop, recursive=recursive, rust_timeout=1000,
                                 yield_on_timeout=True, ignore_permission_denied=True)


def _nearest_existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.is_dir():
            return parent
    return Path("/")


async def _wait_or_timeout(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass
