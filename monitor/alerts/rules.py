"""Alert rules: the ``[[alerts]]`` tables of the config, read and checked when the config loads.

A rule is a named condition (``when``, see ``NAMED_CONDITIONS``) or a threshold on one
summary figure of a channel (``channel`` + ``field`` + ``above`` or ``below``), held for
``for`` seconds before it fires and sent again every ``repeat`` seconds while it holds.
``notify`` lists Apprise URLs; they carry secrets, so no message here ever shows one
(each is checked at load by Apprise itself: ``monitor.alerts.services.check_url``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from monitor.alerts.fields import is_summary_field, spelled_fields
from monitor.channels.registry import CHANNEL_NAMES, is_channel
from monitor.settings_values import MAX_SECONDS

NAMED_CONDITIONS = ("workflow_failed", "source_down", "check_unhealthy", "queue_stalled", "cost_over_estimate")
THRESHOLD = ""  # ``when`` of a threshold rule
# The keys each kind of rule takes (TOML spelling: ``for`` is ``hold`` on the dataclass).
COMMON_KEYS = ("name", "when", "for", "repeat", "notify")
KEYS_OF = {
    THRESHOLD: (*COMMON_KEYS, "channel", "field", "above", "below"),
    "workflow_failed": COMMON_KEYS,
    "source_down": (*COMMON_KEYS, "channel"),
    "check_unhealthy": COMMON_KEYS,
    "queue_stalled": COMMON_KEYS,
    "cost_over_estimate": (*COMMON_KEYS, "factor"),
}
ALL_KEYS = tuple(dict.fromkeys(key for keys in KEYS_OF.values() for key in keys))


class BadAlertRule(ValueError):
    """An ``[[alerts]]`` entry is unusable; the message names the file, the rule, the key and what was expected."""


@dataclass(frozen=True)
class AlertRule:
    """One ``[[alerts]]`` rule."""

    name: str  # unique, non-empty
    when: str = THRESHOLD  # a named condition, or "" for a threshold rule
    channel: str = ""  # threshold rules (and optionally source_down: limit to one channel)
    field: str = ""  # dotted summary path of that channel, e.g. "by_status.failed"
    above: float | None = None
    below: float | None = None
    hold: float = 0.0  # TOML key "for": seconds the condition must hold before it fires
    repeat: float = 0.0  # re-notify every ``repeat`` seconds while it holds (0 = never)
    factor: float = 1.0  # cost_over_estimate: cost > estimate * factor
    # Apprise URLs: they carry secrets, so the repr leaves them out (never log or show them).
    notify: tuple[str, ...] = dataclasses.field(default=(), repr=False)


def parse_alerts(raw: Any, label: str) -> tuple[AlertRule, ...]:
    """The rules of a config's ``alerts`` array (``label``: the file, for messages); raises ``BadAlertRule``."""
    if not isinstance(raw, list):
        raise BadAlertRule(f"{label}: [[alerts]]: expected an array of tables ([[alerts]] entries)")
    rules: list[AlertRule] = []
    for index, table in enumerate(raw):
        rule = parse_rule(table, f"{label}: [[alerts]] #{index + 1}")
        if any(other.name == rule.name for other in rules):
            raise BadAlertRule(f"{label}: [[alerts]] #{index + 1} name: {rule.name!r} is used twice")
        rules.append(rule)
    return tuple(rules)


def parse_rule(table: Any, where: str) -> AlertRule:
    """One rule from its table; ``where`` (file and index) starts every message."""
    if not isinstance(table, dict):
        raise BadAlertRule(f"{where}: expected a table, got {type(table).__name__}")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadAlertRule(f"{where} name: expected a non-empty name, got {name!r}")
    where = f"{where} ({name!r})"
    when = table.get("when", THRESHOLD)
    if when not in KEYS_OF:
        raise BadAlertRule(f"{where} when: expected one of {', '.join(NAMED_CONDITIONS)} "
                           f"(or no when, with channel, field and above or below), got {when!r}")
    _check_keys(table, when, where)
    rule = AlertRule(name=name, when=when, channel=_channel(table, when, where), hold=_seconds(table, "for", where),
                     repeat=_seconds(table, "repeat", where), notify=_notify(table, where))
    if when == "cost_over_estimate":
        return dataclasses.replace(rule, factor=_factor(table, where))
    if when == THRESHOLD:
        return _threshold(rule, table, where)
    return rule


def _check_keys(table: dict[str, Any], when: str, where: str) -> None:
    allowed = KEYS_OF[when]
    for key in table:
        if key in allowed:
            continue
        if key in ALL_KEYS:
            kind = f"when = {when!r}" if when else "a threshold rule"
            raise BadAlertRule(f"{where} {key}: not used by {kind}; expected only {', '.join(allowed)}")
        raise BadAlertRule(f"{where} {key}: unknown key; expected one of {', '.join(ALL_KEYS)}")


def _channel(table: dict[str, Any], when: str, where: str) -> str:
    if "channel" not in table:
        if when == THRESHOLD:
            raise BadAlertRule(f"{where} channel: a threshold rule needs a channel; expected one of "
                               f"{', '.join(CHANNEL_NAMES)}")
        return ""
    channel = table["channel"]
    if not isinstance(channel, str) or not is_channel(channel):
        raise BadAlertRule(f"{where} channel: unknown channel; expected one of {', '.join(CHANNEL_NAMES)}, "
                           f"got {channel!r}")
    return channel


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _seconds(table: dict[str, Any], key: str, where: str) -> float:
    value = _number(table.get(key, 0.0))
    if value is None or not 0 <= value <= MAX_SECONDS:
        raise BadAlertRule(f"{where} {key}: expected seconds from 0 to {MAX_SECONDS:g}, got {table[key]!r}")
    return value


def _factor(table: dict[str, Any], where: str) -> float:
    value = _number(table.get("factor", 1.0))
    if value is None or value <= 0:
        raise BadAlertRule(f"{where} factor: expected a number above 0 (1.5 = cost over 150% of the estimate), "
                           f"got {table['factor']!r}")
    return value


def _notify(table: dict[str, Any], where: str) -> tuple[str, ...]:
    urls = table.get("notify", [])
    if not isinstance(urls, list):
        # The value is not shown: it may be a URL with its secrets, written without brackets.
        raise BadAlertRule(f"{where} notify: expected a list of Apprise URLs, got {type(urls).__name__}")
    for number, url in enumerate(urls, start=1):
        if not isinstance(url, str) or not url.strip() or "\x00" in url:
            shown = "empty text" if isinstance(url, str) else type(url).__name__
            raise BadAlertRule(f"{where} notify: expected each entry to be an Apprise URL, "
                               f"entry {number} is {shown}")
        problem = check_url(url.strip())
        if problem is not None:  # told now, at load, not at the first alert
            raise BadAlertRule(f"{where} notify: entry {number}: {problem}")
    return tuple(url.strip() for url in urls)


def check_url(url: str) -> str | None:
    """Whether Apprise can send to ``url``: None, or why not (Apprise is imported only by configs with alerts)."""
    from monitor.alerts.services import check_url as apprise_check  # noqa: PLC0415 (a heavy import, rarely needed)

    return apprise_check(url)


def _threshold(rule: AlertRule, table: dict[str, Any], where: str) -> AlertRule:
    field = table.get("field")
    if not isinstance(field, str) or not is_summary_field(rule.channel, field):
        raise BadAlertRule(f"{where} field: expected a numeric summary field of {rule.channel}: "
                           f"{spelled_fields(rule.channel)}; got {field!r}")
    bounds = {key: table[key] for key in ("above", "below") if key in table}
    if len(bounds) != 1:
        raise BadAlertRule(f"{where} above/below: a threshold rule needs exactly one of above or below, "
                           f"got {' and '.join(bounds) or 'neither'}")
    (key, value), = bounds.items()
    bound = _number(value)
    if bound is None:
        raise BadAlertRule(f"{where} {key}: expected a number, got {value!r}")
    if key == "above":
        return dataclasses.replace(rule, field=field, above=bound)
    return dataclasses.replace(rule, field=field, below=bound)
