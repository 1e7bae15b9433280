"""Event-assisted change detection: file events make the affected channels poll at once.

The interval poll stays the safety net; this only makes changes arrive sooner. What to
watch is decided here; the watching itself is inotify read on the event loop
(``monitor.inotify_watch``). Where inotify is missing the console says so and relies on
its interval polls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import structlog

from monitor.channels.registry import channels_watching
from monitor.channels.spec import AGENTS, DATABASE, TREES
from monitor.settings import Settings
from monitor.sources.database import sqlite_path
from monitor.sources.statefiles import AGENT_FILES  # agent directories hold many other files: only these matter
from monitor.watch_target import Trigger, WatchTarget

log = structlog.get_logger(__name__)



class Watcher(Protocol):
    """What the app needs of a watcher."""

    def start(self) -> None:
        """Begin watching."""

    async def stop(self) -> None:
        """Stop watching and release what was opened."""

    @property
    def watch_count(self) -> int:
        """How many directories are watched now."""

    @property
    def alive(self) -> bool:
        """Whether changes are still being reported."""


def watch_targets(settings: Settings, files_moved: Callable[[], None] = lambda: None,
                  database_moved: Callable[[], None] = lambda: None) -> list[WatchTarget]:
    """What to watch for ``settings``: state files, worktrees (``files_moved`` on their changes), a SQLite file.

    ``database_moved`` is called on each change to the SQLite files.
    """
    sources = settings.sources
    agents = Path(sources.agents_dir).absolute()

    def agent_file(changed: Path) -> bool:
        return changed.parent == agents or (changed.parent.parent == agents and changed.name in AGENT_FILES)

    targets = [
        WatchTarget(agents, channels_watching(AGENTS), depth=1, relevant=agent_file, moved=files_moved),
        WatchTarget(Path(sources.trees_dir).absolute(), channels_watching(TREES), depth=0, moved=files_moved),
    ]
    if sources.database.startswith("sqlite:"):
        db = Path(sqlite_path(sources.database)).absolute()
        names = {db.name, f"{db.name}-wal", f"{db.name}-journal"}
        targets.append(WatchTarget(db.parent, channels_watching(DATABASE), depth=0,
                                   relevant=lambda changed: changed.name in names, moved=database_moved))
    return targets


def start_watcher(targets: list[WatchTarget], trigger: Trigger, debounce: float) -> Watcher | None:
    """Start watching with inotify; None where it is not available (interval polls only)."""
    if not sys.platform.startswith(("linux", "freebsd")):
        log.warning("watch_unavailable", reason=f"inotify is not available on {sys.platform}",
                    effect="channels poll at their intervals only")
        return None
    from monitor.inotify_watch import InotifyWatcher  # late: asyncinotify is installed on Linux and FreeBSD only

    watcher = InotifyWatcher(targets, trigger, debounce)
    try:
        watcher.start()
    except OSError as exc:  # e.g. fs.inotify.max_user_instances reached
        log.warning("watch_unavailable", reason=str(exc), effect="channels poll at their intervals only")
        return None
    return watcher
