"""Child processes standing in for the demo's running ADWs, and for one leftover dev server.

A real ADW phase runs as ``uv run adws/adw_build_iso.py <issue> <adw_id>``; its stand-in
runs a script of that name (a sleeper the demo writes into the workspace's adws/) with the
same arguments, so process detection sees it exactly as it would see the real one. The
leftover dev server mentions its run's worktree (``trees/<adw_id>/…``) but runs no ADW
script: the console must not take it for the ADW.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The stand-ins exit by themselves once their parent is gone, so even a killed demo leaves
# no stray processes behind.
_SLEEPER = "import os, time\nparent = os.getppid()\nwhile os.getppid() == parent:\n    time.sleep(1)\n"


def _spawn(argv: list[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


class StandInProcesses:
    """At most one ADW stand-in per adw_id (restarted as the run moves to another script), plus one dev server."""

    def __init__(self, root: Path) -> None:
        # Absolute: the stand-ins run with the workspace as their working directory, so a
        # relative root (the default ./demo) would name their scripts twice over.
        self._root = Path(root).resolve()
        self._procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}  # adw_id -> (script, process)
        self._dev: tuple[str, subprocess.Popen[bytes]] | None = None

    def script(self, name: str) -> Path:
        """The path of stand-in script `name` (adw_build_iso), written on first use."""
        path = self._root / "adws" / f"{name}.py"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f'"""Demo stand-in for {name}: sleeps until the demo goes."""\n{_SLEEPER}',
                            encoding="utf-8")
        return path

    def live(self) -> dict[str, int]:
        """adw_id -> pid of every ADW stand-in still running."""
        return {adw_id: proc.pid for adw_id, (_, proc) in self._procs.items() if proc.poll() is None}

    def ensure(self, adw_id: str, issue: str, script: str) -> None:
        """Have the run's stand-in run `script` (`python adws/<script>.py <issue> <adw_id>`)."""
        current = self._procs.get(adw_id)
        if current is not None and current[0] == script and current[1].poll() is None:
            return
        self.kill(adw_id)  # the orchestrator runs each phase as its own process
        argv = [sys.executable, str(self.script(script)), str(issue), adw_id]
        self._procs[adw_id] = (script, _spawn(argv, cwd=self._root))

    def kill(self, adw_id: str) -> None:
        """Kill and reap the run's stand-in, if it has one."""
        current = self._procs.pop(adw_id, None)
        if current is not None:
            _stop(current[1])

    def dev_server(self) -> tuple[str, int] | None:
        """(adw_id, pid) of the leftover dev server, while it runs."""
        if self._dev is None or self._dev[1].poll() is not None:
            return None
        return self._dev[0], self._dev[1].pid

    def start_dev_server(self, adw_id: str) -> None:
        """Leave a dev server behind for run `adw_id`, replacing any other one."""
        self.stop_dev_server()
        argv = [sys.executable, "-c", _SLEEPER, f"trees/{adw_id}/app/server/server.py", "--reload"]
        self._dev = (adw_id, _spawn(argv, cwd=self._root))

    def stop_dev_server(self) -> None:
        """Kill and reap the leftover dev server, if there is one."""
        if self._dev is not None:
            _stop(self._dev[1])
            self._dev = None

    def kill_all(self) -> None:
        """Kill and reap every child."""
        for adw_id in list(self._procs):
            self.kill(adw_id)
        self.stop_dev_server()
