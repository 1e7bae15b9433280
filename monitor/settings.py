"""Settings: one declarative table of every config key, parsed into frozen dataclasses.

Each section is a dataclass; its fields (type, default, ``help`` metadata) are the
table. ``config.toml`` and the docs are checked against it by the test suite.
Every key can be overridden by an environment variable ``MONITOR_<SECTION>_<KEY>``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.channels.registry import CHANNEL_NAMES, channel_spec, is_channel, query_names
from monitor.config_checks import (
    CHECK_TARGETS,
    Check,
    check_database_url,
    check_header_name,
    check_origins,
    http_url_check,
    nonempty_check,
)
from monitor.settings_values import MAX_SECONDS as MAX_SECONDS
from monitor.settings_values import BadValue, coerce

DEFAULT_CONFIG_PATHS = (Path("config.toml"), Path("/etc/monitor/config.toml"))
DEFAULTS_LABEL = "<defaults>"  # Settings.path when no config file was read


class ConfigError(Exception):
    """A config file or override is unusable; the message names file, key and expectation."""


def _opt(default: Any, help: str, choices: tuple[str, ...] = (), minimum: float | None = None,
         maximum: float | None = None, check: Check | None = None) -> Any:
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "check": check}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerSettings:
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


@dataclass(frozen=True)
class SourcesSettings:
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
    watch: bool = _opt(True, "watch agents_dir, trees_dir and the SQLite files and poll at once on a change")
    watch_debounce: float = _opt(0.005, "seconds from a file change to the poll of the channels it affects; "
                                        "changes meanwhile share that poll", minimum=0.001)
    max_file_bytes: int = _opt(1 << 20, "largest state file read; a larger one is that run's error, not the channel's",
                               minimum=1024, maximum=1 << 30)


@dataclass(frozen=True)
class ChannelSettings:
    interval: float = _opt(2.0, "seconds between polls of this channel's sources", minimum=0.05)
    timeout: float = _opt(5.0, "seconds one poll may take before it is abandoned and reported", minimum=0.01)


@dataclass(frozen=True)
class AuthSettings:
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
    level: str = _opt("info", "debug | info | warning | error", choices=("debug", "info", "warning", "error"))
    format: str = _opt("auto", "auto (JSON unless on a terminal) | json | console", choices=("auto", "json", "console"))


@dataclass(frozen=True)
class CheckSettings:
    name: str = _opt("", "the check's name, shown on its card; unique")
    kind: str = _opt("http", "http | tcp | process", choices=("http", "tcp", "process"))
    target: str = _opt("", "http: a URL; tcp: host:port; process: text to find in a process command line")
    timeout: float = _opt(2.0, "seconds before the check counts as failed", minimum=0.01)
    degraded_after: float = _opt(1.0, "seconds of latency above which a passing check is degraded", minimum=0.0)


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "sources": SourcesSettings,
    "auth": AuthSettings,
    "log": LogSettings,
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    log: LogSettings = field(default_factory=LogSettings)
    channels: Mapping[str, ChannelSettings] = field(default_factory=dict)
    checks: tuple[CheckSettings, ...] = ()
    queries: Mapping[str, str] = field(default_factory=dict)
    path: str = DEFAULTS_LABEL

    def channel(self, name: str) -> ChannelSettings:
        """Settings for one channel, falling back to that channel's defaults."""
        return self.channels.get(name) or default_channel_settings(name)


def default_channel_settings(name: str) -> ChannelSettings:
    """The default settings of channel ``name`` (its spec's interval; the table's for an unknown name)."""
    return ChannelSettings(interval=channel_spec(name).interval) if is_channel(name) else ChannelSettings()


def find_config(explicit: str | None) -> Path | None:
    """The config file to use: ``explicit``, else ./config.toml, else /etc/monitor/config.toml."""
    if explicit:
        return Path(explicit)
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (None = defaults only), apply environment overrides, validate."""
    environ = os.environ if environ is None else environ
    label = str(path) if path is not None else DEFAULTS_LABEL
    raw = _read_toml(Path(path)) if path is not None else {}
    return _build(raw, environ, label)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def settings_from_mapping(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                          label: str = "<mapping>") -> Settings:
    """Settings from an already-parsed config mapping (as tomllib would return it)."""
    return _build(dict(raw), {} if environ is None else environ, label)


def _build(raw: dict[str, Any], environ: Mapping[str, str], label: str) -> Settings:
    known = set(SECTIONS) | {"channels", "checks", "queries"}
    for name in raw:
        if name not in known:
            raise ConfigError(f"{label}: [{name}]: unknown section; expected one of {sorted(known)}")
    built = {name: _section(cls, raw.get(name, {}), name, environ, label) for name, cls in SECTIONS.items()}
    _check_auth(built["auth"], label)
    return Settings(**built, channels=_channels(raw.get("channels", {}), environ, label),
                    checks=_checks(raw.get("checks", []), label), queries=_queries(raw.get("queries", {}), label),
                    path=label)


def _check_auth(auth: AuthSettings, label: str) -> None:
    if auth.mode == "token" and len(auth.token) < 16:
        raise ConfigError(f"{label}: [auth] token: token mode needs a token of at least 16 characters "
                          "(set MONITOR_AUTH_TOKEN)")
    if auth.mode == "basic" and not (auth.username and auth.password):
        raise ConfigError(f"{label}: [auth] username/password: basic mode needs both "
                          "(set MONITOR_AUTH_PASSWORD)")
    if auth.mode == "basic" and len(auth.password) < 12:
        raise ConfigError(f"{label}: [auth] password: basic mode needs a password of at least 12 characters "
                          "(set MONITOR_AUTH_PASSWORD)")
    if auth.mode == "proxy" and not auth.trusted_proxies:
        # Trusting loopback by default would let any local process sign in as anyone.
        raise ConfigError(f"{label}: [auth] trusted_proxies: proxy mode needs auth.trusted_proxies, the "
                          "addresses of the reverse proxies that set proxy_header (e.g. [\"127.0.0.1\"])")
    for entry in auth.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"{label}: [auth] trusted_proxies: expected IP addresses or CIDR ranges, "
                              f"got {entry!r}") from None


def _checks(raw: Any, label: str) -> tuple[CheckSettings, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{label}: [[checks]]: expected an array of tables ([[checks]] entries)")
    checks, seen = [], set()
    for index, table in enumerate(raw):
        check = _section(CheckSettings, table, f"checks.{index}", {}, label)
        if not check.name or not check.target:
            raise ConfigError(f"{label}: [[checks]] #{index + 1}: expected both name and target")
        problem = CHECK_TARGETS[check.kind](check.target)
        if problem is not None:
            raise ConfigError(f"{label}: [[checks]] #{index + 1} target ({check.kind} check): {problem}")
        if check.name in seen:
            raise ConfigError(f"{label}: [[checks]] #{index + 1} name: {check.name!r} is used twice")
        seen.add(check.name)
        checks.append(check)
    return tuple(checks)


def _queries(raw: Any, label: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: [queries]: expected a table of query name = SQL text")
    known = query_names()
    for name, sql in raw.items():
        if name not in known:
            raise ConfigError(f"{label}: [queries] {name}: unknown query; expected one of {', '.join(known)}")
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"{label}: [queries] {name}: expected SQL text, got {sql!r}")
    return dict(raw)


def _channels(raw: Any, environ: Mapping[str, str], label: str) -> dict[str, ChannelSettings]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: [channels]: expected a table of channel tables")
    for name in raw:
        if not is_channel(name):
            raise ConfigError(f"{label}: [channels.{name}]: unknown channel; expected one of {list(CHANNEL_NAMES)}")
    result = {}
    for name in CHANNEL_NAMES:
        defaults = dataclasses.asdict(default_channel_settings(name))
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: [channels.{name}]: expected a table")
        result[name] = _section(ChannelSettings, {**defaults, **table}, f"channels.{name}", environ, label)
    return result


def _section(cls: type, table: Any, section: str, environ: Mapping[str, str], label: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{label}: [{section}]: expected a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(f"{label}: [{section}] {key}: unknown key; expected one of {sorted(fields)}")
    values = {}
    for name, spec in fields.items():
        env_name = env_var_name(section, name)
        if env_name in environ:
            values[name] = _coerce(environ[env_name], spec, f"{env_name} (environment)", from_text=True)
        elif name in table:
            values[name] = _coerce(table[name], spec, f"{label}: [{section}] {name}", from_text=False)
    return cls(**values)


def _coerce(value: Any, spec: dataclasses.Field[Any], where: str, from_text: bool) -> Any:
    try:
        return coerce(value, spec, from_text)
    except BadValue as exc:
        raise ConfigError(f"{where}: {exc}") from None


def env_var_name(section: str, key: str) -> str:
    """The environment variable that overrides ``[section] key``."""
    return "MONITOR_" + f"{section}_{key}".replace(".", "_").replace("-", "_").upper()
