"""What a watcher is given: directories to watch, the channels each one wakes, and how to wake them.

Its own module so ``watch`` (what to watch) and ``inotify_watch`` (watching it) need not
import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Trigger = Callable[[frozenset[str]], None]  # the channels one firing wakes, at once


@dataclass(frozen=True)
class WatchTarget:
    """A directory whose changes should make ``channels`` poll now (``depth`` 1: its subdirectories too).

    ``moved`` is called on each such change, before the channels are woken.
    """

    path: Path
    channels: tuple[str, ...]
    depth: int
    relevant: Callable[[Path], bool] = lambda changed: True
    moved: Callable[[], None] = lambda: None


def nearest_existing_parent(path: Path) -> Path:
    """The closest directory above ``path`` that exists now."""
    for parent in path.absolute().parents:
        if parent.is_dir():
            return parent
    return Path("/")
