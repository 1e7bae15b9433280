"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory.

Fixtures: ``postgres_server`` (one server per session), ``postgres_url`` (a database on
it), ``postgres_db_url`` (a fresh database with the ADW schema for each test) and
``make_postgres_server`` (a dedicated server a test may stop and start).

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` OS
user. Without server binaries the fixtures skip, except under CI (``CI=true``), where a
missing PostgreSQL must fail the run instead of silently shrinking it.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.demo.schema import POSTGRES_SCHEMA

SCHEMA_TEMPLATE = "adw_schema"
SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
"""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: pg_config's answer, then the Debian layout."""
    candidates = []
    if shutil.which("pg_config"):
        answer = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(answer.stdout.strip()))
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    candidates.extend(versions)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where PostgreSQL must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, run as a non-root user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        self._database_numbers = itertools.count(1)
        if os.geteuid() == 0:
            self._run_as_postgres_user()

    def _run_as_postgres_user(self) -> None:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(self.root, ignore_errors=True)
            unavailable("running as root and there is no 'postgres' OS user to run the server as")
        os.chown(self.root, account.pw_uid, account.pw_gid)
        self._as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["sudo", "-u", "postgres"]

    def _server_command(self, *args: str) -> None:
        command = [*self._as_user, *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{tail}")

    def initialise(self) -> None:
        """Create the cluster: trust auth, no fsync, listening on loopback only."""
        self._server_command(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                             "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(SERVER_SETTINGS.format(port=self.port, sockets=self.root))

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._server_command(str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                             "-l", str(self.root / "server.log"))

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and wait until it is down."""
        self._server_command(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        """Stop the server if it runs, and delete its directory."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL the console would be configured with to read ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql as a client would; its output, or an error with psql's message."""
        result = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
            capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout

    def create_database(self, template: str = "template1") -> str:
        """A new, empty database cloned from ``template``; its name."""
        name = f"test_{next(self._database_numbers)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name


def started_server() -> PostgresServer:
    """A freshly initialised and started server (skips or fails when PostgreSQL is missing)."""
    bindir = find_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                    "install postgresql (e.g. apt-get install postgresql)")
    server = PostgresServer(bindir)
    try:
        server.initialise()
        server.start()
    except BaseException:
        server.remove()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session, with the ADW schema as a template database."""
    server = started_server()
    try:
        server.psql(f"CREATE DATABASE {SCHEMA_TEMPLATE}")
        server.psql(POSTGRES_SCHEMA, database=SCHEMA_TEMPLATE)
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://postgres@127.0.0.1:PORT/monitor``: an empty database on the session server."""
    postgres_server.psql("CREATE DATABASE monitor")
    return postgres_server.url("monitor")


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> str:
    """A fresh database holding the five ADW tables (empty), for this test alone."""
    return postgres_server.url(postgres_server.create_database(template=SCHEMA_TEMPLATE))


@pytest.fixture
def make_postgres_server() -> Iterator[Callable[[], PostgresServer]]:
    """Start dedicated servers (for tests that stop and restart them); removed afterwards."""
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        servers.append(started_server())
        return servers[-1]

    yield make
    for server in servers:
        server.remove()
