"""Child processes standing in for the ADW orchestrators of the demo's running runs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

# Stands in for an ADW orchestrator: its command line carries the adw_id, and it exits by
# itself once its parent is gone, so even a killed demo leaves no stray processes behind.
_CHILD_CODE = "import os, time\nparent = os.getppid()\nwhile os.getppid() == parent:\n    time.sleep(1)\n"


class StandInProcesses:
    """At most one child process per adw_id, started and killed as runs go and stop."""

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}

    def live(self) -> dict[str, int]:
        """adw_id -> pid of every child process still running."""
        return {adw_id: proc.pid for adw_id, proc in self._procs.items() if proc.poll() is None}

    def ensure(self, state: dict[str, Any]) -> None:
        """Start a child for the run of this state record unless one is already running."""
        adw_id = state["adw_id"]
        proc = self._procs.get(adw_id)
        if proc is not None and proc.poll() is None:
            return
        argv = [sys.executable, "-c", _CHILD_CODE, f"{state['workflow_template']}.py", state["issue_number"], adw_id]
        self._procs[adw_id] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)

    def kill(self, adw_id: str) -> None:
        """Kill and reap the run's child, if it has one."""
        proc = self._procs.pop(adw_id, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def kill_all(self) -> None:
        """Kill and reap every child."""
        for adw_id in list(self._procs):
            self.kill(adw_id)
