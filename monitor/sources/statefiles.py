"""Agent state files (agents/<adw_id>/adw_state.json, error.log) and the trees directory.

One scan, in one worker thread, lists the agents directory and stats each agent's two
files; only a file whose (mtime_ns, size, inode) signature moved is read again, so an
unchanged workspace costs a directory listing and two stats per agent. Writers rewrite
state files in place, so a scan may meet half-written JSON: the agent then keeps its last
good record, marked with ``state_file_error`` until the file parses again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

ADW_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}")
STATE_FILE = "adw_state.json"
ERROR_LOG = "error.log"
ERROR_FIELD = "state_file_error"

Signature = tuple  # (mtime_ns, size, inode), plus a "racy" mark while the mtime may still move


class StateFilesError(Exception):
    """The agents directory itself cannot be listed; the message is fit for an operator."""


def is_adw_id(name: str) -> bool:
    """True when ``name`` has the ADW run id form: eight hex characters."""
    return ADW_ID_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class StateView:
    """What a scan found: state records and error-line counts by adw_id, and kept worktrees."""

    states: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    error_counts: Mapping[str, int] = field(default_factory=dict)
    trees: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _StateEntry:
    signature: Signature
    good: dict[str, Any] | None  # the last content that parsed; None if it never did
    record: dict[str, Any]       # what consumers see: last good content, adw_id, error marker


@dataclass(frozen=True, slots=True)
class _LogEntry:
    signature: Signature
    count: int


@dataclass(slots=True)
class _ScanResult:
    states: dict[str, _StateEntry]
    logs: dict[str, _LogEntry]
    trees: frozenset[str]
    files_read: int
    changed: bool


class _FileReads:
    """Reads whole files and counts them, so tests can prove an unchanged rescan reads none."""

    def __init__(self) -> None:
        self.count = 0

    def read(self, path: str) -> bytes:
        self.count += 1
        with open(path, "rb") as fh:
            return fh.read()


RACY_WINDOW_NS = 2_000_000_000


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:  # absent, vanished mid-scan, or not ours to see: no file as far as we care
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _entry(adw_id: str, signature: Signature, good: dict[str, Any] | None, error: str | None) -> _StateEntry:
    record = {**(good or {}), "adw_id": adw_id}
    if error is not None:
        record[ERROR_FIELD] = error
    return _StateEntry(signature, good, record)


def _read_state(adw_id: str, path: str, signature: Signature, old: _StateEntry | None,
                files: _FileReads) -> _StateEntry | None:
    try:
        raw = files.read(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        value, error = None, f"unreadable: {exc.strerror or exc}"
    else:
        value, error = _parse_state(raw)
    was_bad = old is not None and ERROR_FIELD in old.record
    if (error is not None) != was_bad:
        log.debug("state_file_invalid" if error else "state_file_recovered", adw_id=adw_id, error=error)
    if error is not None:
        return _entry(adw_id, signature, old.good if old is not None else None, error)
    return _entry(adw_id, signature, value, None)


def _parse_state(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(content, None) for a JSON object, else (None, why not)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError:  # bytes that are not UTF-8 text
        return None, "invalid JSON: not UTF-8 text"
    if not isinstance(value, dict):
        return None, "invalid JSON: not an object"
    return value, None


def count_error_lines(raw: bytes) -> int:
    """The number of non-blank lines in an error.log's content."""
    return sum(1 for line in raw.splitlines() if line.strip())


def _read_log(path: str, signature: Signature, files: _FileReads) -> _LogEntry | None:
    try:
        return _LogEntry(signature, count_error_lines(files.read(path)))
    except FileNotFoundError:
        return None
    except OSError:
        return _LogEntry(signature, 0)


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


def _refreshed(path: str, old: Any, read: Callable[[Signature], Any]) -> Any:
    """``old`` while the file's signature holds, else what ``read`` makes of it; None if gone."""
    signature = _signature(path)
    if signature is None:
        return None
    if old is not None and old.signature == signature:
        return old
    # A file read within a coarse file-system clock tick of its mtime (ext3, HFS+: 1 s;
    # FAT: 2 s) can be rewritten again, same size, without its mtime moving. Such a read
    # is remembered under a signature no file has, so the next scan reads it again, until
    # a read comes after that tick is surely over (git's "racy" entries, the same idea).
    racy = time.time_ns() - signature[0] < RACY_WINDOW_NS
    return read((*signature, "racy") if racy else signature)


def _scan(agents_dir: Path, trees_dir: Path, states: Mapping[str, _StateEntry],
          logs: Mapping[str, _LogEntry]) -> _ScanResult:
    """Blocking: one pass over both directories; the given caches are read, never changed."""
    files = _FileReads()
    new_states: dict[str, _StateEntry] = {}
    new_logs: dict[str, _LogEntry] = {}
    changed = False
    for adw_id in _list_agents(agents_dir):
        state_path = os.path.join(agents_dir, adw_id, STATE_FILE)
        log_path = os.path.join(agents_dir, adw_id, ERROR_LOG)
        old_state, old_log = states.get(adw_id), logs.get(adw_id)
        state = _refreshed(state_path, old_state,
                           lambda sig: _read_state(adw_id, state_path, sig, old_state, files))
        error_log = _refreshed(log_path, old_log, lambda sig: _read_log(log_path, sig, files))
        if state is not None:
            new_states[adw_id] = state
        if error_log is not None:
            new_logs[adw_id] = error_log
        changed = changed or _moved(state, old_state, _record_of) or _moved(error_log, old_log, _count_of)
    changed = changed or new_states.keys() != states.keys() or new_logs.keys() != logs.keys()
    return _ScanResult(new_states, new_logs, _list_trees(trees_dir), files.count, changed)


def _moved(new: Any, old: Any, value: Callable[[Any], Any]) -> bool:
    return new is not old and value(new) != value(old)


def _record_of(entry: _StateEntry | None) -> dict[str, Any] | None:
    return entry.record if entry is not None else None


def _count_of(entry: _LogEntry | None) -> int | None:
    return entry.count if entry is not None else None


class StateFiles:
    """The agents and trees directories of one ADW system, rescanned incrementally.

    ``generation`` moves whenever ``view`` changes, so several readers can each tell
    whether there is anything new for them. ``files_read`` counts every file opened.
    """

    def __init__(self, agents_dir: str | Path, trees_dir: str | Path) -> None:
        self.agents_dir = Path(agents_dir)
        self.trees_dir = Path(trees_dir)
        self.view = StateView()
        self.generation = 0
        self.files_read = 0
        self._states: dict[str, _StateEntry] = {}
        self._logs: dict[str, _LogEntry] = {}
        self._lock = asyncio.Lock()

    async def scan(self) -> bool:
        """Rescan both directories off the event loop; True when ``view`` changed."""
        async with self._lock:
            try:
                found = await asyncio.to_thread(_scan, self.agents_dir, self.trees_dir, self._states, self._logs)
            except StateFilesError:
                self._forget()
                raise
            self.files_read += found.files_read
            # Signatures are kept even when no content changed, so a touched file is read once.
            self._states, self._logs = found.states, found.logs
            if not found.changed and found.trees == self.view.trees:
                return False
            self.view = StateView({adw_id: e.record for adw_id, e in found.states.items()},
                                  {adw_id: e.count for adw_id, e in found.logs.items()}, found.trees)
            self.generation += 1
            return True

    def _forget(self) -> None:
        # A vanished directory may come back with other files under the same names.
        if self._states or self._logs or self.view.trees:
            log.info("agents_dir_lost", agents_dir=str(self.agents_dir), agents=len(self._states))
        self._states, self._logs = {}, {}
        self.view = StateView()
        self.generation += 1
