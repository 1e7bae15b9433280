"""Change detection on Linux: inotify events read on the event loop.

No thread and no wake-up while nothing changes; channels poll ``debounce`` seconds after
the first relevant event, so a burst of writes costs one poll and a change is never held
back by later ones. A target directory that is missing (or goes away) is waited for by
watching its nearest existing parent for the next path component.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import structlog
from asyncinotify import Event, Inotify, Mask, Watch

from monitor.watch_target import Trigger, WatchTarget, nearest_existing_parent

log = structlog.get_logger(__name__)

WATCH_MASK = (Mask.MODIFY | Mask.ATTRIB | Mask.CLOSE_WRITE | Mask.MOVED_FROM | Mask.MOVED_TO
              | Mask.CREATE | Mask.DELETE | Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.ONLYDIR)
# A path that vanishes or is swapped while being placed is looked at again, this many times.
PLACEMENT_ATTEMPTS = 8


class Kind(Enum):
    """What a watched directory is to its target."""

    ROOT = "root"          # the target directory itself
    CHILD = "child"        # a subdirectory of a target with depth 1
    ANCESTOR = "ancestor"  # the nearest existing parent of a missing target


@dataclass(eq=False)
class Role:
    """One reason a directory is watched; several roles can share a watch descriptor."""

    index: int             # of the target in the watcher's list
    target: WatchTarget
    kind: Kind
    path: Path
    watch: Watch | None = None

    @property
    def awaited_name(self) -> str:
        """For an ancestor: the name whose appearance brings the target closer."""
        return self.target.path.relative_to(self.path).parts[0]


class InotifyWatcher:
    """Watches targets and calls ``trigger(channels)`` with the channels a burst of changes affects."""

    def __init__(self, targets: list[WatchTarget], trigger: Trigger, debounce: float) -> None:
        self.targets = targets
        self.trigger = trigger
        self.debounce = debounce
        self._inotify: Inotify | None = None
        self._roles: dict[int, list[Role]] = {}
        self._placed: dict[int, Role] = {}              # by target index
        self._children: dict[int, dict[str, Role]] = {}  # by target index, then directory name
        self._pending: set[str] = set()
        self._warned: set[int | None] = set()  # errnos already logged, so a full watch table logs once
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Open the inotify instance, watch every target, and read events on the loop."""
        inotify = self._inotify = Inotify()
        for index in range(len(self.targets)):
            self._place(index, announce=False)  # the first polls read everything anyway
        self._task = asyncio.get_running_loop().create_task(self._read_forever(inotify))

    async def stop(self) -> None:
        """Stop reading and release the inotify instance."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inotify is not None:
            self._inotify.close()
        self._roles.clear()

    @property
    def watch_count(self) -> int:
        """How many directories are watched now."""
        return len(self._roles)

    @property
    def alive(self) -> bool:
        """Whether events are still being read (False once reading failed or stopped)."""
        return self._task is not None and not self._task.done()

    @property
    def _opened(self) -> Inotify:
        if self._inotify is None:
            raise RuntimeError("InotifyWatcher.start() was not called")
        return self._inotify

    async def _read_forever(self, inotify: Inotify) -> None:
        try:
            async for event in inotify:
                try:
                    self._dispatch(event)
                except Exception:  # one odd event must not end change detection for good
                    log.exception("watch_event_failed", mask=int(event.mask), name=str(event.name))
        except OSError as exc:
            log.error("watch_failed", error=str(exc), effect="channels poll at their intervals only")

    def _dispatch(self, event: Event) -> None:
        mask = event.mask
        if Mask.Q_OVERFLOW in mask:
            # Events were dropped: anything may have changed, directories included.
            log.warning("watch_queue_overflow")
            for index in range(len(self.targets)):
                self._place(index)
            return
        watch = event.watch
        if watch is None:
            return
        if Mask.IGNORED in mask:
            for role in self._roles.pop(watch.wd, []):
                self._on_watch_gone(role)
            return
        name = None if event.name is None else str(event.name)
        for role in list(self._roles.get(watch.wd, ())):
            if role.kind is Kind.ANCESTOR:
                self._on_ancestor_event(role, mask, name)
            elif role.kind is Kind.ROOT:
                self._on_root_event(role, mask, name)
            elif name is not None and role.target.relevant(role.path / name):
                self._schedule(role.target)

    def _on_root_event(self, role: Role, mask: Mask, name: str | None) -> None:
        if Mask.MOVE_SELF in mask:
            self._place(role.index)  # the path no longer names this directory
            return
        if name is None:
            return  # DELETE_SELF: the IGNORED that follows re-places the target
        if role.target.depth and Mask.ISDIR in mask:
            index = role.index
            if mask & (Mask.CREATE | Mask.MOVED_TO):
                self._add_child(index, role.path / name)
            elif mask & (Mask.DELETE | Mask.MOVED_FROM):
                self._drop_child(index, name)
        if role.target.relevant(role.path / name):
            self._schedule(role.target)

    def _on_ancestor_event(self, role: Role, mask: Mask, name: str | None) -> None:
        if Mask.MOVE_SELF in mask or name == role.awaited_name:
            self._place(role.index)

    def _on_watch_gone(self, role: Role) -> None:
        index = role.index
        if role.kind is Kind.CHILD:
            self._children.get(index, {}).pop(role.path.name, None)
        elif self._placed.get(index) is role:
            del self._placed[index]
            self._place(index)

    def _place(self, index: int, announce: bool = True) -> None:
        """Watch the target, or its nearest existing parent while it is missing; poll its channels."""
        target = self.targets[index]
        self._unplace(index)
        for _ in range(PLACEMENT_ATTEMPTS):
            role = self._try_place(index)
            if role is not None:
                break
        else:
            log.warning("watch_gave_up", path=str(target.path))
            return
        self._placed[index] = role
        if role.kind is Kind.ROOT and target.depth:
            for child in _subdirectories(target.path):
                self._add_child(index, child)
        if announce:  # the directory appeared, vanished or was replaced: read what it holds again
            self._schedule(target)

    def _try_place(self, index: int) -> Role | None:
        target = self.targets[index]
        if target.path.is_dir():
            return self._add(Role(index, target, Kind.ROOT, target.path))
        parent = nearest_existing_parent(target.path)
        role = self._add(Role(index, target, Kind.ANCESTOR, parent))
        if role is not None and (target.path.is_dir() or nearest_existing_parent(target.path) != parent):
            self._drop(role)  # it moved on before the watch was in place: its event is lost
            return None
        return role

    def _unplace(self, index: int) -> None:
        placed = self._placed.pop(index, None)
        if placed is not None:
            self._drop(placed)
        for child in self._children.pop(index, {}).values():
            self._drop(child)

    def _add_child(self, index: int, path: Path) -> None:
        if path.name in self._children.get(index, {}):
            return  # seen both in the listing and as a creation event
        role = self._add(Role(index, self.targets[index], Kind.CHILD, path))
        if role is not None:
            self._children.setdefault(index, {})[path.name] = role

    def _drop_child(self, index: int, name: str) -> None:
        role = self._children.get(index, {}).pop(name, None)
        if role is not None:
            self._drop(role)

    def _add(self, role: Role) -> Role | None:
        """Add the watch for ``role``; None when the path is gone or cannot be watched."""
        try:
            watch = role.watch = self._opened.add_watch(role.path, WATCH_MASK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            # Out of watches (ENOSPC) or not allowed: the interval poll still covers the path.
            if exc.errno not in self._warned:
                self._warned.add(exc.errno)
                hint = "raise fs.inotify.max_user_watches" if exc.errno == errno.ENOSPC else None
                log.warning("watch_unavailable", path=str(role.path), error=str(exc), hint=hint)
            return None
        self._roles.setdefault(watch.wd, []).append(role)
        return role

    def _drop(self, role: Role) -> None:
        watch = role.watch
        if watch is None:
            return  # its watch was never added
        roles = self._roles.get(watch.wd)
        if roles is None or role not in roles:
            return
        roles.remove(role)
        if not roles:
            del self._roles[watch.wd]
            with contextlib.suppress(OSError):  # already gone with its directory
                self._opened.rm_watch(watch)

    def _schedule(self, target: WatchTarget) -> None:
        target.moved()
        self._pending.update(target.channels)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, set()
        self.trigger(frozenset(pending))


def _subdirectories(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return [Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []
