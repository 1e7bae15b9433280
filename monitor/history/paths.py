"""Where the history file lives when ``[history] path`` is empty: the state directory of the platform's conventions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "history.sqlite"


def history_path(configured: str, environ: Mapping[str, str] | None = None) -> Path:
    """``configured`` (``~`` expanded), else systemd's ``$STATE_DIRECTORY``, else the XDG state home's ``monitor/``."""
    environ = os.environ if environ is None else environ
    if configured:
        return Path(configured).expanduser()
    # systemd sets STATE_DIRECTORY for StateDirectory=; with several directories it lists them, colon-separated.
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory) / FILE_NAME
    xdg_state = environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg_state):  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg_state) / "monitor" / FILE_NAME
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".local" / "state" / "monitor" / FILE_NAME
