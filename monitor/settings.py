"""Settings: a config file and the environment, read into the sections of the settings table.

The table itself (every key's type, default, limits and help) is ``monitor.settings_table``;
its section classes are importable from here too. Every key can be overridden by an
environment variable ``MONITOR_<SECTION>_<KEY>``; anything unusable is a ``ConfigError``
naming the file, the key and what was expected.
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

from monitor.alerts.rules import AlertRule, BadAlertRule, parse_alerts
from monitor.channels.registry import CHANNEL_NAMES, channel_spec, is_channel, query_names
from monitor.config_checks import CHECK_TARGETS
from monitor.settings_table import (
    SECTIONS,
    AuthSettings,
    BrokerSettings,
    ChannelSettings,
    CheckSettings,
    HistorySettings,
    LogSettings,
    ServerSettings,
    SourcesSettings,
    TacWebbuilderSettings,
    UiSettings,
)
from monitor.settings_values import BadValue, coerce

# The table's sections are part of this module's interface: callers import them from here.
__all__ = ["SECTIONS", "AuthSettings", "BrokerSettings", "ChannelSettings", "CheckSettings", "ConfigError",
           "HistorySettings", "LogSettings", "ServerSettings", "Settings", "SourcesSettings", "TacWebbuilderSettings",
           "UiSettings",
           "DEFAULTS_LABEL", "default_channel_settings", "env_var_name", "find_config", "load_settings",
           "settings_from_mapping"]

DEFAULT_CONFIG_PATHS = (Path("config.toml"), Path("/etc/monitor/config.toml"))
DEFAULTS_LABEL = "<defaults>"  # Settings.path when no config file was read


class ConfigError(Exception):
    """A config file or override is unusable; the message names file, key and expectation."""


@dataclass(frozen=True)
class Settings:
    """Every setting of one console, as read from its config file and environment."""

    server: ServerSettings = field(default_factory=ServerSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    log: LogSettings = field(default_factory=LogSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    channels: Mapping[str, ChannelSettings] = field(default_factory=dict)
    checks: tuple[CheckSettings, ...] = ()
    alerts: tuple[AlertRule, ...] = ()  # [[alerts]]
    queries: Mapping[str, str] = field(default_factory=dict)
    tac_webbuilder: TacWebbuilderSettings | None = None  # [compat.tac_webbuilder]; None: the section is absent
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
    known = set(SECTIONS) | {"channels", "checks", "alerts", "queries", "compat"}
    for name in raw:
        if name not in known:
            raise ConfigError(f"{label}: [{name}]: unknown section; expected one of {sorted(known)}")
    built = {name: _section(cls, raw.get(name, {}), name, environ, label) for name, cls in SECTIONS.items()}
    _check_auth(built["auth"], label)
    return Settings(**built, channels=_channels(raw.get("channels", {}), environ, label),
                    checks=_checks(raw.get("checks", []), label), alerts=_alerts(raw.get("alerts", []), label),
                    queries=_queries(raw.get("queries", {}), label),
                    tac_webbuilder=_tac_webbuilder(raw.get("compat", {}), environ, label), path=label)


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


COMPAT_SECTIONS = ("tac_webbuilder",)


def _tac_webbuilder(raw: Any, environ: Mapping[str, str], label: str) -> TacWebbuilderSettings | None:
    """[compat.tac_webbuilder], or None when the config has no such section (the surface is off)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: [compat]: expected a table of compatibility sections")
    for name in raw:
        if name not in COMPAT_SECTIONS:
            raise ConfigError(f"{label}: [compat.{name}]: unknown section; expected one of {list(COMPAT_SECTIONS)}")
    if "tac_webbuilder" not in raw:
        return None
    section: TacWebbuilderSettings = _section(TacWebbuilderSettings, raw["tac_webbuilder"],
                                              "compat.tac_webbuilder", environ, label)
    if is_channel(section.prefix.lstrip("/")):  # the channel's own page would be passed to the backend
        raise ConfigError(f"{label}: [compat.tac_webbuilder] prefix: expected a path the console does not serve "
                          f"itself; {section.prefix} is a channel's page, got {section.prefix!r}")
    return dataclasses.replace(section, backend_url=section.backend_url.rstrip("/"))


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


def _alerts(raw: Any, label: str) -> tuple[AlertRule, ...]:
    try:
        return parse_alerts(raw, label)
    except BadAlertRule as exc:
        raise ConfigError(str(exc)) from None


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
