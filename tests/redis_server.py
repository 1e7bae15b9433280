"""A throwaway Redis server for the tests: ``redis-server`` on a free loopback port in a temporary directory.

Fixtures: ``redis_server`` (one server per session, emptied before each test that asks for
``redis_url``) and ``make_redis_server`` (a dedicated server a test may stop and start on
the same port). No persistence: a restarted server comes back empty, as after a crash.
Without ``redis-server`` the fixtures skip, except under CI (``CI=true``), where a missing
Redis must fail the run instead of silently shrinking it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

START_TIMEOUT = 10.0  # seconds a server may take to answer PING after it was started


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where redis-server must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on loopback, without persistence, that can be stopped and started again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="monitor-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL a console's ``[broker] url`` names this server by."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port and wait until it answers PING."""
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 -- the child process holds it open
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        with redis.Redis(port=self.port, socket_timeout=1.0) as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"redis-server did not start:\n{tail}") from None
                    time.sleep(0.02)  # a child process's start has no event to await

    def stop(self) -> None:
        """Stop the server (its data is gone) and wait until it has exited."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def flush(self) -> None:
        """Empty every database of the server."""
        with redis.Redis(port=self.port, socket_timeout=5.0) as client:
            client.flushall()

    def remove(self) -> None:
        """Stop the server if it runs, and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def started_server() -> RedisServer:
    """A freshly started server (skips or fails when redis-server is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not found; install it (apt-get install redis-server)")
    server = RedisServer(str(binary))
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for the whole session."""
    server = started_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def make_redis_server() -> Iterator[Callable[[], RedisServer]]:
    """Start dedicated servers (for tests that stop and restart them); removed afterwards."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        servers.append(started_server())
        return servers[-1]

    yield make
    for server in servers:
        server.remove()
