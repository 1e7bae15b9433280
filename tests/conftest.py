"""Shared fixtures: a real SQLite database, settings for it, the console under test, and the
sources, agent/worktree directories and loopback ports that channel tests share."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.app import create_app
from monitor.channels.registry import CHANNEL_NAMES
from monitor.demo.schema import SQLITE_SCHEMA
from monitor.settings import Settings, settings_from_mapping
from monitor.sources.resources import Sources
from tests.support import QueueTable, Triggers, merged

pytest_plugins = ["tests.pgserver", "tests.redis_server"]


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory of the test's own: a console with an empty [history] path never writes to ~/.local/state."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(path))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """An ADW database file with the five tables and the queue not paused."""
    path = tmp_path / "database.db"
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_SCHEMA)
    conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', '2026-01-01T00:00:00Z')")
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def queue_table(db_path: Path) -> QueueTable:
    """Writes phase_queue rows into the test database."""
    return QueueTable(db_path)


@pytest.fixture
def make_settings(tmp_path: Path, db_path: Path) -> Callable[..., Settings]:
    """Settings for the test database; polls only when a test asks (hour-long intervals, no file watching)."""

    def make(overrides: dict[str, Any] | None = None) -> Settings:
        raw = {
            "server": {"host": "127.0.0.1", "port": 0, "heartbeat": 30.0, "close_grace": 2.0},
            "sources": {"database": f"sqlite:///{db_path}", "agents_dir": str(tmp_path / "agents"),
                        "trees_dir": str(tmp_path / "trees"), "webhook_url": "http://127.0.0.1:9/webhook-status",
                        "openapi_url": "", "backend_url": "", "watch": False},
            "channels": {name: {"interval": 3600.0, "timeout": 2.0} for name in CHANNEL_NAMES},
            "history": {"path": str(tmp_path / "history.sqlite")},
        }
        return settings_from_mapping(merged(raw, overrides or {}), label="<test>")

    return make


@pytest.fixture
def make_client(aiohttp_client, make_settings):
    """Start the console (real sockets on loopback) with settings overrides."""

    async def make(overrides: dict[str, Any] | None = None):
        return await aiohttp_client(create_app(make_settings(overrides)))

    return make


@pytest.fixture
async def client(make_client):
    """The console on the test database with default test settings."""
    return await make_client()


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    """The agents directory `make_settings` points at, created empty."""
    path = tmp_path / "agents"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    """The worktrees directory `make_settings` points at, created empty."""
    path = tmp_path / "trees"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
async def sources(make_settings):
    """Sources for the default test settings (not opened); closed after the test."""
    opened = Sources(make_settings())
    yield opened
    await opened.close()


@pytest.fixture
async def open_sources(make_settings):
    """Opens Sources for settings overrides (and an own-route table); closes them after the test."""
    opened = []

    async def open_(overrides, own_routes=list):
        sources = Sources(make_settings(overrides), own_routes=own_routes)
        await sources.open()
        opened.append(sources)
        return sources

    yield open_
    for sources in opened:
        await sources.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
async def start_watch():
    """Starts an inotify watcher on targets (its ``trigger`` collects the channels); stops it after the test."""
    from monitor.inotify_watch import InotifyWatcher  # Linux only: imported when a test watches

    started = []

    def start(targets):
        watcher = InotifyWatcher(targets, Triggers(), 0.005)
        watcher.start()
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        await watcher.stop()
