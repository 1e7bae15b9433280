"""The settings table: every config key of every section, with its type, default, limits and help.

Each section is a frozen dataclass whose fields are the table (``monitor.settings`` reads
config files and the environment into them). ``config.toml``, README.md and the docs are
checked against this table by the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.brokers.url import check_broker_url
from monitor.config_checks import (
    Check,
    check_backend_base,
    check_database_url,
    check_header_name,
    check_origins,
    check_path_prefix,
    http_url_check,
    nonempty_check,
)


def _opt(default: Any, help: str, choices: tuple[str, ...] = (), minimum: float | None = None,
         maximum: float | None = None, check: Check | None = None) -> Any:
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "check": check}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerSettings:
    """[server]: where the console listens and how it treats its clients."""

    host: str = _opt("127.0.0.1", "address to listen on; loopback by default",
                     check=nonempty_check("an address to listen on, e.g. 127.0.0.1 or ::"))
    port: int = _opt(8080, "TCP port to listen on", minimum=0, maximum=65535)
    heartbeat: float = _opt(30.0, "seconds between WebSocket pings; a peer silent for heartbeat*1.5 is dropped",
                            minimum=0.01)
    shutdown_timeout: float = _opt(5.0, "seconds shutdown waits for sockets to close with 1001", minimum=0.0)
    ring_size: int = _opt(512, "recent patches kept per channel for resume", minimum=1, maximum=1_000_000)
    max_backlog_messages: int = _opt(256, "frames queued for one slow client before it is closed with 1013", minimum=1,
                                     maximum=1_000_000)
    max_backlog_bytes: int = _opt(4 * 1024 * 1024, "bytes queued for one slow client before it is closed with 1013",
                                  minimum=1024, maximum=1 << 30)
    max_client_frame: int = _opt(4096, "largest client frame accepted, in bytes; larger frames close with 1009",
                                 minimum=16, maximum=16 << 20)
    close_grace: float = _opt(5.0, "seconds a refused or evicted client gets to take its close frame "
                                   "before the socket is cut", minimum=0.0)
    allowed_origins: tuple[str, ...] = _opt((), "extra origins allowed to open WebSockets (scheme://host[:port]); "
                                                "same-origin is always allowed", check=check_origins)
    allowed_hosts: tuple[str, ...] = _opt((), "Host header values answered (names or addresses, no port); empty = the "
                                              "bound address, localhost, 127.0.0.1, ::1 and public_host; anything else "
                                              "gets 421")
    public_host: str = _opt("", "the name browsers use to reach the console (e.g. behind a proxy); "
                                "allowed as Host and Origin")
    max_connections: int = _opt(0, "most client connections open at once; 0 = the open-file limit less fd_reserve",
                                minimum=0, maximum=10_000_000)
    max_connections_per_address: int = _opt(0, "most connections open from one client address; "
                                               "0 = a quarter of max_connections", minimum=0, maximum=10_000_000)
    connections_per_second_per_address: float = _opt(
        20.0, "new connections per second from one client address (bursts of twice that); more get 429; 0 = no limit",
        minimum=0.0)
    fd_reserve: int = _opt(256, "descriptors kept back from clients for the console's own sources, files and logs",
                           minimum=16, maximum=1_000_000)
    header_timeout: float = _opt(60.0, "seconds a client may take to send a request's headers "
                                       "(nginx: client_header_timeout)", minimum=0.1)
    keepalive_timeout: float = _opt(75.0, "seconds an idle keep-alive HTTP connection is kept open "
                                          "(nginx: keepalive_timeout)", minimum=0.1)
    client_messages_per_second: float = _opt(10.0, "client WebSocket frames allowed per second, sustained; "
                                                   "more gets an error and close 1008", minimum=0.1)
    client_message_burst: int = _opt(20, "client WebSocket frames allowed in a burst above the sustained rate",
                                     minimum=1, maximum=1_000_000)
    workers: int = _opt(1, "processes serving the port together, one per core (SO_REUSEPORT); more than 1 needs "
                           "[broker] url; monitor serve --workers overrides it", minimum=1, maximum=64)


@dataclass(frozen=True)
class SourcesSettings:
    """[sources]: where the monitored ADW system keeps its data."""

    database: str = _opt("sqlite:////var/lib/adw/db/database.db",
                         "SQLAlchemy-style URL: sqlite:////abs/path.db or postgresql://user@host:5432/db",
                         check=check_database_url)
    agents_dir: str = _opt("/var/lib/adw/agents", "directory of agents/<adw_id>/adw_state.json",
                           check=nonempty_check("a directory path (agents/<adw_id>/adw_state.json)"))
    trees_dir: str = _opt("/var/lib/adw/trees", "directory of trees/<adw_id>/ worktrees",
                          check=nonempty_check("a directory path (trees/<adw_id>/)"))
    webhook_url: str = _opt("http://127.0.0.1:8001/webhook-status", "webhook service status endpoint",
                            check=http_url_check("no webhook service"))
    backend_url: str = _opt("http://127.0.0.1:8002", "the ADW backend's base URL, checked on system-status; "
                                                     "empty = no backend check",
                            check=http_url_check("no backend check"))
    openapi_url: str = _opt("http://127.0.0.1:8002/openapi.json", "OpenAPI document for the routes channel; "
                                                                  "empty = this console's own routes",
                            check=http_url_check("this console's own routes"))
    busy_timeout: float = _opt(0.2, "seconds a database read waits on a writer's lock before the poll reports it",
                               minimum=0.0)
    full_read_interval: float = _opt(60.0, "seconds a large table (over 2,000 rows) may go unread after commits its "
                                           "cheap signature did not show (a change to an older row) before it is "
                                           "read in full", minimum=1.0)
    watch: bool = _opt(True, "watch agents_dir, trees_dir and the SQLite files and poll at once on a change")
    watch_debounce: float = _opt(0.001, "seconds from a file change to the poll of the channels it affects; "
                                        "changes meanwhile share that poll (a database commit's channels "
                                        "then wait until the commit is visible)", minimum=0.001)
    max_file_bytes: int = _opt(1 << 20, "largest state file read; a larger one is that run's error, not the channel's",
                               minimum=1024, maximum=1 << 30)


@dataclass(frozen=True)
class ChannelSettings:
    """[channels.<name>]: one channel's poll interval and timeout."""

    interval: float = _opt(2.0, "seconds between polls of this channel's sources", minimum=0.05)
    timeout: float = _opt(5.0, "seconds one poll may take before it is abandoned and reported", minimum=0.01)


@dataclass(frozen=True)
class AuthSettings:
    """[auth]: who may see the console."""

    mode: str = _opt("none", "none | token | basic | proxy", choices=("none", "token", "basic", "proxy"))
    token: str = _opt("", "token mode: the shared token; better from MONITOR_AUTH_TOKEN")
    username: str = _opt("", "basic mode: the user name")
    password: str = _opt("", "basic mode: the password; better from MONITOR_AUTH_PASSWORD")
    proxy_header: str = _opt("X-Forwarded-User", "proxy mode: the header carrying the signed-in user",
                             check=check_header_name)
    trusted_proxies: tuple[str, ...] = _opt((), "reverse proxies (addresses or CIDR ranges) whose proxy_header and "
                                                "X-Forwarded-For/-Proto are trusted; proxy mode needs it set")
    session_hours: float = _opt(12.0, "token mode: hours a browser's sign-in cookie stays valid", minimum=0.01)
    lockout_failures: int = _opt(10, "failed sign-ins from one address (each answered a little later) "
                                     "before it is locked out", minimum=1, maximum=1_000_000)
    lockout_seconds: float = _opt(300.0, "seconds an address stays locked out after lockout_failures failed sign-ins",
                                  minimum=1.0)


@dataclass(frozen=True)
class LogSettings:
    """[log]: how much the console logs, and in which format."""

    level: str = _opt("info", "debug | info | warning | error", choices=("debug", "info", "warning", "error"))
    format: str = _opt("auto", "auto (JSON unless on a terminal) | json | console", choices=("auto", "json", "console"))


@dataclass(frozen=True)
class UiSettings:
    """[ui]: how the pages look."""

    wall: bool = _opt(False, "wall mode by default: type sized for across a room, panels that never scroll "
                             "(each list shows what fits and \"+N more\"), no search boxes; ?wall=0 or ?wall=1 "
                             "overrides it per page")


@dataclass(frozen=True)
class HistorySettings:
    """[history]: the console's own record of each channel's summary figures (sparklines, trends)."""

    enabled: bool = _opt(True, "record each channel's summary figures every step, for sparklines and "
                               "GET /api/v1/<channel>/history")
    path: str = _opt("", "the history's SQLite file; empty = $STATE_DIRECTORY/history.sqlite under systemd, else "
                         "$XDG_STATE_HOME/monitor/history.sqlite, else ~/.local/state/monitor/history.sqlite")
    days: int = _opt(30, "days of hourly history kept (points of every step are kept two days)", minimum=1,
                     maximum=3650)
    step: float = _opt(60.0, "seconds between two samples of every channel's figures", minimum=1.0)


@dataclass(frozen=True)
class BrokerSettings:
    """[broker]: how consoles share channels; by default each process is alone (the in-process broker)."""

    url: str = _opt("", "a Redis every console shares (redis://host:6379/0, rediss://..., unix:///path.sock): one "
                        "poller per channel across them, and resume on any of them; empty = in-process, alone",
                    check=check_broker_url)
    lock_ttl: float = _opt(5.0, "seconds a channel's poller lock lives unless its holder renews it (every third of "
                                "that); a console that stops renewing is replaced within twice this", minimum=0.1,
                           maximum=3600.0)


@dataclass(frozen=True)
class CheckSettings:
    """[[checks]]: one extra health check on system-status."""

    name: str = _opt("", "the check's name, shown on its card; unique")
    kind: str = _opt("http", "http | tcp | process", choices=("http", "tcp", "process"))
    target: str = _opt("", "http: a URL; tcp: host:port; process: text to find in a process command line")
    timeout: float = _opt(2.0, "seconds before the check counts as failed", minimum=0.01)
    degraded_after: float = _opt(1.0, "seconds of latency above which a passing check is degraded", minimum=0.0)


@dataclass(frozen=True)
class TacWebbuilderSettings:
    """[compat.tac_webbuilder]: tac-webbuilder's own web client, served under a prefix; off unless present."""

    prefix: str = _opt("/tac", "path the client's API lives under: its VITE_API_BASE_PATH becomes <prefix>/api/v1",
                       check=check_path_prefix)
    backend_url: str = _opt("http://127.0.0.1:8002", "the tac-webbuilder backend that every other request under the "
                                                     "prefix is passed to; empty = none (404)",
                            check=check_backend_base)
    allowed_origins: tuple[str, ...] = _opt((), "the client's own origins (scheme://host[:port]), answered for "
                                                "CORS and allowed to open WebSockets under the prefix",
                                            check=check_origins)
    backend_timeout: float = _opt(30.0, "seconds the backend may take to answer a request's headers or a WebSocket "
                                        "handshake before the client gets 504", minimum=0.1)


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "sources": SourcesSettings,
    "auth": AuthSettings,
    "log": LogSettings,
    "ui": UiSettings,
    "history": HistorySettings,
    "broker": BrokerSettings,
}
