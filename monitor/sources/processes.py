"""Which ADW runs are alive: ADW processes found in /proc/<pid>/cmdline.

A process is an ADW when it runs an ADW script with the run's id among its arguments
(``monitor.adw.adw_ids_of_command``); a dev server left in ``trees/<adw_id>/`` that
merely mentions the id in a path is not.

Linux only. Where /proc cannot be listed the answer is "unknown": an empty set, logged
once, never an error on a channel (runs then show as paused or queued, not running).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import structlog

from monitor.adw import adw_ids_of_command

log = structlog.get_logger(__name__)


def adw_ids_in(cmdline: bytes) -> frozenset[str]:
    """The run ids of an ADW command line (NUL-separated, as in /proc); empty for other processes."""
    argv = [arg.decode("utf-8", "replace") for arg in cmdline.split(b"\0") if arg]
    return adw_ids_of_command(argv)


def _process_dirs(proc_dir: Path, own_pid: int) -> list[str] | None:
    try:
        with os.scandir(proc_dir) as entries:
            return [e.name for e in entries if e.name.isdigit() and e.name != str(own_pid)]
    except OSError:
        return None


def _read_cmdline(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:  # the process exited meanwhile, or is hidden from us
        return b""


def command_lines(proc_dir: Path = Path("/proc"), own_pid: int | None = None) -> Iterator[tuple[int, bytes]] | None:
    """Blocking: (pid, raw command line) of every other live process; None when /proc can't be listed."""
    pids = _process_dirs(proc_dir, os.getpid() if own_pid is None else own_pid)
    if pids is None:
        return None
    return ((int(pid), cmdline) for pid in pids
            if (cmdline := _read_cmdline(os.path.join(proc_dir, pid, "cmdline"))))


def scan_processes(known: Iterable[str], proc_dir: Path = Path("/proc"),
                   own_pid: int | None = None) -> frozenset[str] | None:
    """Blocking: the ``known`` adw_ids some live ADW process carries; None = can't tell."""
    wanted = {adw_id.lower(): adw_id for adw_id in known}
    if not wanted:
        return frozenset()
    lines = command_lines(proc_dir, own_pid)
    if lines is None:
        return None
    found: set[str] = set()
    for _, cmdline in lines:
        found.update(wanted[word] for word in adw_ids_in(cmdline) if word in wanted)
    return frozenset(found)


class ProcessScanner:
    """Finds the live processes of ADW runs, off the event loop."""

    def __init__(self, proc_dir: str | Path = "/proc") -> None:
        self.proc_dir = Path(proc_dir)
        self.available = True  # False once /proc turned out not to be listable

    async def live_adw_ids(self, known: Collection[str]) -> frozenset[str]:
        """The ``known`` adw_ids some live process carries; empty when that can't be told."""
        if not known:
            return frozenset()
        found = await asyncio.to_thread(scan_processes, frozenset(known), self.proc_dir, os.getpid())
        if found is None:
            if self.available:
                log.info("process_scan_unavailable", proc_dir=str(self.proc_dir))
            self.available = False
            return frozenset()
        self.available = True
        return found
