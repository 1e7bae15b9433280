"""Agent state files (agents/<adw_id>/adw_state.json, completed_phases.json, error.log) and
the trees directory.

One scan, in one worker thread, lists the agents directory and stats each agent's three
files; only a file whose (mtime_ns, size, inode) signature moved is read again, so an
unchanged workspace costs a directory listing and three stats per agent. Writers rewrite
state files in place, so a scan may meet half-written JSON: the agent then keeps its last
good record, marked with ``state_file_error`` until the file parses again (the phase
tracker's file likewise keeps its last good content). The same holds for a file over
``max_file_bytes`` (not read at all), nested deeper than ``agentfiles.MAX_DEPTH`` or
holding text no UTF-8 encoder can write (an unpaired surrogate escape): one run's error,
never the channel's. Of error.log only the end is read (``errorlog``). Reading one agent's files is
``agentfiles``' job; this module lists the directories and keeps what the last scan saw.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from monitor.adw import is_adw_id
from monitor.sources.agentfiles import (
    MAX_FILE_BYTES,
    FileReads,
    LogEntry,
    PhasesEntry,
    StateEntry,
    read_log,
    read_phases,
    read_state,
    refreshed,
)

log = structlog.get_logger(__name__)

STATE_FILE = "adw_state.json"
PHASES_FILE = "completed_phases.json"  # the ADWs' phase tracker: {"completed": [...], "current": ...}
ERROR_LOG = "error.log"
AGENT_FILES = frozenset({STATE_FILE, PHASES_FILE, ERROR_LOG})  # an agent directory's files read here
TRUSTED_FOR = 1.0  # seconds a scan stands while a watcher reports no change under either directory

Entry = TypeVar("Entry", StateEntry, LogEntry, PhasesEntry)


class StateFilesError(Exception):
    """The agents directory itself cannot be listed; the message is fit for an operator."""


@dataclass(frozen=True)
class StateView:
    """What a scan found by adw_id: state records, phase-tracker records, the last entry of
    each non-empty error.log; and the kept worktrees."""

    states: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    phases: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    trees: frozenset[str] = frozenset()


@dataclass(slots=True)
class _ScanResult:
    states: dict[str, StateEntry]
    logs: dict[str, LogEntry]
    phases: dict[str, PhasesEntry]
    trees: frozenset[str]
    files_read: int
    changed: bool


def _list_dirs(directory: Path) -> list[str]:
    with os.scandir(directory) as entries:
        return [e.name for e in entries if is_adw_id(e.name) and e.is_dir()]


def _list_agents(agents_dir: Path) -> list[str]:
    try:
        return _list_dirs(agents_dir)
    except FileNotFoundError:
        raise StateFilesError(f"agents_dir not found: {agents_dir}") from None
    except NotADirectoryError:
        raise StateFilesError(f"agents_dir is not a directory: {agents_dir}") from None
    except OSError as exc:
        raise StateFilesError(f"agents_dir cannot be listed: {agents_dir}: {exc.strerror or exc}") from None


def _list_trees(trees_dir: Path) -> frozenset[str]:
    try:
        return frozenset(_list_dirs(trees_dir))
    except OSError:  # a system that keeps no worktrees has no trees dir: nothing is kept
        return frozenset()


@dataclass(frozen=True, slots=True)
class _Caches:
    """What the last scan kept, by adw_id; a scan reads these, never changes them."""

    states: Mapping[str, StateEntry] = field(default_factory=dict)
    logs: Mapping[str, LogEntry] = field(default_factory=dict)
    phases: Mapping[str, PhasesEntry] = field(default_factory=dict)


def _scan(agents_dir: Path, trees_dir: Path, old: _Caches, max_file_bytes: int) -> _ScanResult:
    """Blocking: one pass over both directories."""
    files = FileReads(max_file_bytes)
    found = _ScanResult({}, {}, {}, frozenset(), 0, False)
    for adw_id in _list_agents(agents_dir):
        moved = _scan_agent(adw_id, os.path.join(agents_dir, adw_id), old, files, found)
        found.changed = found.changed or moved
    found.changed = found.changed or any(
        new.keys() != before.keys()
        for new, before in ((found.states, old.states), (found.logs, old.logs), (found.phases, old.phases)))
    found.trees, found.files_read = _list_trees(trees_dir), files.count
    return found


def _scan_agent(adw_id: str, base: str, old: _Caches, files: FileReads, found: _ScanResult) -> bool:
    """Blocking: refresh one agent's three files into ``found``; True when what consumers see moved."""
    state_path, log_path, phases_path = (os.path.join(base, name) for name in (STATE_FILE, ERROR_LOG, PHASES_FILE))
    old_state, old_log, old_phases = old.states.get(adw_id), old.logs.get(adw_id), old.phases.get(adw_id)
    state = refreshed(state_path, old_state, lambda sig: read_state(adw_id, state_path, sig, old_state, files))
    last_log = refreshed(log_path, old_log, lambda sig: read_log(log_path, sig, files))
    phases = refreshed(phases_path, old_phases, lambda sig: read_phases(phases_path, sig, old_phases, files))
    _keep(found.states, adw_id, state)
    _keep(found.logs, adw_id, last_log)
    _keep(found.phases, adw_id, phases)
    return (_moved(state, old_state, _record_of) or _moved(last_log, old_log, _last_of)
            or _moved(phases, old_phases, _good_of))


def _keep(kept: dict[str, Entry], adw_id: str, entry: Entry | None) -> None:
    if entry is not None:
        kept[adw_id] = entry


def _moved(new: Entry | None, old: Entry | None, value: Callable[[Entry | None], object]) -> bool:
    return new is not old and value(new) != value(old)


def _record_of(entry: StateEntry | None) -> dict[str, Any] | None:
    return entry.record if entry is not None else None


def _last_of(entry: LogEntry | None) -> str | None:
    return entry.last if entry is not None else None


def _good_of(entry: PhasesEntry | None) -> dict[str, Any] | None:
    return entry.good if entry is not None else None


class StateFiles:
    """The agents and trees directories of one ADW system, rescanned incrementally.

    ``generation`` moves whenever ``view`` changes, so several readers can each tell
    whether there is anything new for them. ``files_read`` counts every file opened.

    While a live watcher reports every change under both directories (``watched``, ``moved``),
    a scan less than ``trusted_for`` seconds old stands: a commit to the database wakes
    adw-monitor, and rescanning 1,000 agent directories then costs 15 ms of CPU for nothing.
    Changes the watcher cannot see (a network file system) still show within that second.
    """

    def __init__(self, agents_dir: str | Path, trees_dir: str | Path, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.agents_dir = Path(agents_dir)
        self.trees_dir = Path(trees_dir)
        self.max_file_bytes = max_file_bytes
        self.view = StateView()
        self.generation = 0
        self.files_read = 0
        self._caches = _Caches()
        self._lock = asyncio.Lock()
        # Whether a watcher is alive that calls ``moved`` on every change under both directories.
        self.watched: Callable[[], bool] = lambda: False
        self.trusted_for = TRUSTED_FOR
        self.scans = 0
        self._moved = True
        self._scanned_at = 0.0

    def moved(self) -> None:
        """Something changed under the agents or trees directory: the next scan reads."""
        self._moved = True

    async def scan(self) -> bool:
        """Rescan both directories off the event loop (unless a recent scan stands); True when ``view`` changed."""
        async with self._lock:
            now = time.monotonic()
            if not self._moved and self.watched() and now - self._scanned_at < self.trusted_for:
                return False
            # Cleared before the scan: a change made while it runs makes the next one read.
            self._moved, self._scanned_at = False, now
            self.scans += 1
            try:
                found = await asyncio.to_thread(_scan, self.agents_dir, self.trees_dir, self._caches,
                                                self.max_file_bytes)
            except StateFilesError:
                self._moved = True
                self._forget()
                raise
            except BaseException:  # cancelled by the poll's timeout, say: what the watcher reported still stands
                self._moved = True
                raise
            self.files_read += found.files_read
            # Signatures are kept even when no content changed, so a touched file is read once.
            self._caches = _Caches(found.states, found.logs, found.phases)
            if not found.changed and found.trees == self.view.trees:
                return False
            # A file that never parsed is not a run (yet): a writer may be creating it.
            self.view = StateView({adw_id: e.record for adw_id, e in found.states.items() if e.good is not None},
                                  {adw_id: e.last for adw_id, e in found.logs.items() if e.last},
                                  {adw_id: e.good for adw_id, e in found.phases.items() if e.good is not None},
                                  found.trees)
            self.generation += 1
            return True

    def _forget(self) -> None:
        # A vanished directory may come back with other files under the same names.
        if self._caches.states or self._caches.logs or self.view.trees:
            log.info("agents_dir_lost", agents_dir=str(self.agents_dir), agents=len(self._caches.states))
        self._caches = _Caches()
        self.view = StateView()
        self.generation += 1


def state_files(sources: Any) -> StateFiles:
    """The console's shared scanner of ``sources`` (one of its own for bare test namespaces)."""
    shared = getattr(sources, "state_files", None)
    if isinstance(shared, StateFiles):
        return shared
    paths = sources.settings.sources
    return StateFiles(paths.agents_dir, paths.trees_dir, paths.max_file_bytes)
