"""Experiment (benchmarks only): an event-driven replacement for ``monitor.watch.Watcher``.

watchfiles' Rust thread sleeps in ``step`` increments and yields only after a quiet
step, so a change is seen ~1.5 steps late and every step costs a wake-up even when
nothing changes. This reads inotify events on the event loop instead: no thread, no
wake-up while idle, and channels poll ``debounce`` seconds after the first event.
Linux only, and a prototype: directories that do not exist at start are not waited for.
``benchmarks.server_entry --experiment inotify-watcher`` swaps it in.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

from monitor.watch import WatchTarget

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_ISDIR, IN_NONBLOCK, IN_CLOEXEC = 0x40000000, 0o4000, 0o2000000
WATCH_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, name length


class InotifyWatcher:
    """Same interface as ``monitor.watch.Watcher``: ``start``, ``stop``, ``trigger(channel)``."""

    def __init__(self, targets: list[WatchTarget], trigger: Callable[[str], None], debounce: float) -> None:
        self.targets = targets
        self.trigger = trigger
        self.debounce = debounce
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = -1
        self._watches: dict[int, tuple[WatchTarget, Path]] = {}
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Open the inotify descriptor, watch every target, read events on the loop."""
        self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        for target in self.targets:
            if target.path.is_dir():
                self._watch_tree(target.path, target)
        asyncio.get_running_loop().add_reader(self._fd, self._read_events)

    async def stop(self) -> None:
        """Stop reading and close the descriptor."""
        if self._timer is not None:
            self._timer.cancel()
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _watch_tree(self, path: Path, target: WatchTarget) -> None:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            return  # vanished meanwhile; the interval poll still covers it
        self._watches[wd] = (target, path)
        if target.recursive:
            for child in path.iterdir():
                if child.is_dir():
                    self._watch_tree(child, target)

    def _read_events(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + EVENT_HEADER.size <= len(data):
            wd, mask, _, length = EVENT_HEADER.unpack_from(data, offset)
            name = data[offset + EVENT_HEADER.size:offset + EVENT_HEADER.size + length].rstrip(b"\0").decode()
            offset += EVENT_HEADER.size + length
            self._on_event(wd, mask, name)

    def _on_event(self, wd: int, mask: int, name: str) -> None:
        watched = self._watches.get(wd)
        if watched is None:
            return
        target, path = watched
        if target.recursive and mask & IN_CREATE and mask & IN_ISDIR:
            self._watch_tree(path / name, target)
        if not target.relevant(path / name):
            return
        self._pending.update(target.channels)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, set()
        for channel in pending:
            self.trigger(channel)
