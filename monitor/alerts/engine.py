"""The alert engine: from what breaches each rule now, when an alert fires, repeats and resolves.

One alert per (rule, key). A breach first seen at ``t`` is pending; still there at an
evaluation at ``t + for`` or later, it fires (one ``firing`` event); while it holds, it is
sent again every ``repeat`` seconds (``repeat`` events); once it is gone, one ``resolved``
event. A pending breach that goes away sends nothing, so flapping inside ``for`` is quiet.

Gone means gone from a known source: while the channel of an alert's breach is not
``ok`` (in error, or pending after a restart) the alert neither resolves nor repeats, and
a pending one keeps its start (``conditions.source_known``). Pure and synchronous: the
time comes from the injected clock, and ``state``/``restore`` move the alerts in and out
(``store`` keeps them in a file, so a restart does not send again what was sent).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.alerts.conditions import Breach, breaches, source_known
from monitor.alerts.rules import AlertRule

FIRING, REPEAT, RESOLVED = "firing", "repeat", "resolved"
EVENT_KINDS = (FIRING, REPEAT, RESOLVED)


@dataclass(frozen=True)
class AlertEvent:
    """Something to tell people: an alert fired, still holds, or is over."""

    kind: str  # "firing" | "repeat" | "resolved"
    rule: str
    key: str
    summary: str
    channel: str
    since: float  # when the condition began (unix seconds)
    at: float  # when this event happened


@dataclass(frozen=True)
class Alert:
    """One firing alert, for the page and the API."""

    rule: str
    key: str
    summary: str
    channel: str
    since: float
    fired_at: float


@dataclass(frozen=True)
class AlertEntry:
    """One alert's state: pending (``fired_at`` None) or firing; what ``state`` hands out and ``restore`` takes."""

    rule: str
    key: str
    summary: str
    channel: str
    since: float  # first seen
    fired_at: float | None = None
    last_sent: float | None = None  # the firing or the latest repeat

    def event(self, kind: str, at: float) -> AlertEvent:
        """This alert's event of ``kind`` at ``at``."""
        return AlertEvent(kind, self.rule, self.key, self.summary, self.channel, self.since, at)


class AlertEngine:
    """Holds every pending and firing alert of ``rules`` and turns each evaluation into events."""

    def __init__(self, rules: Sequence[AlertRule], now: Callable[[], float] = time.time) -> None:
        self.rules = tuple(rules)
        self.now = now
        # rule name -> key -> alert: a rule's alerts are looked through without the others'.
        self._entries: dict[str, dict[str, AlertEntry]] = {rule.name: {} for rule in self.rules}

    def evaluate(self, states: Mapping[str, Mapping[str, Any]]) -> list[AlertEvent]:
        """Read every rule's breaches in ``states`` (``{channel: state}``); the events this evaluation makes."""
        now = self.now()
        events: list[AlertEvent] = []
        for rule in self.rules:
            found = {breach.key: breach for breach in breaches(rule, states)}
            events.extend(self._hold(rule, found, now))
            events.extend(self._release(rule, found, states, now))
        return events

    def _hold(self, rule: AlertRule, found: Mapping[str, Breach], now: float) -> list[AlertEvent]:
        """Start, fire or repeat the alert of each breach found."""
        events, held = [], self._entries[rule.name]
        for key, breach in found.items():
            entry = held.get(key)
            if entry is None:
                entry = AlertEntry(rule.name, key, breach.summary, breach.channel, since=now)
            elif (entry.summary, entry.channel) != (breach.summary, breach.channel):
                # the same thing in other words ("3 failed", then "4 failed"), or reported by another channel
                entry = dataclasses.replace(entry, summary=breach.summary, channel=breach.channel)
            if entry.fired_at is None and now - entry.since >= rule.hold:
                entry = dataclasses.replace(entry, fired_at=now, last_sent=now)
                events.append(entry.event(FIRING, now))
            elif entry.fired_at is not None and rule.repeat > 0 and now - (entry.last_sent or 0.0) >= rule.repeat:
                entry = dataclasses.replace(entry, last_sent=now)
                events.append(entry.event(REPEAT, now))
            held[key] = entry
        return events

    def _release(self, rule: AlertRule, found: Mapping[str, Breach], states: Mapping[str, Mapping[str, Any]],
                 now: float) -> list[AlertEvent]:
        """Drop the alerts of ``rule`` no longer breached where that is known; the fired ones resolve."""
        events, held = [], self._entries[rule.name]
        for key, entry in list(held.items()):
            if key in found or not source_known(states, entry.channel):
                continue
            del held[key]
            if entry.fired_at is not None:
                events.append(entry.event(RESOLVED, now))
        return events

    def firing(self) -> list[Alert]:
        """Every firing alert, oldest condition first."""
        fired = [Alert(e.rule, e.key, e.summary, e.channel, e.since, e.fired_at)
                 for e in self._all() if e.fired_at is not None]
        return sorted(fired, key=lambda alert: (alert.since, alert.rule, alert.key))

    def pending(self) -> list[AlertEntry]:
        """Every alert whose condition holds but not yet for its rule's ``for``, oldest first."""
        waiting = [entry for entry in self._all() if entry.fired_at is None]
        return sorted(waiting, key=lambda entry: (entry.since, entry.rule, entry.key))

    def state(self) -> tuple[AlertEntry, ...]:
        """Every pending and firing alert, to save (``restore`` takes it back)."""
        return tuple(self._all())

    def _all(self) -> list[AlertEntry]:
        return [entry for held in self._entries.values() for entry in held.values()]

    def restore(self, entries: Iterable[AlertEntry]) -> None:
        """Take back saved alerts (replacing any held); those of rules no longer configured are dropped."""
        self._entries = {rule.name: {} for rule in self.rules}
        for entry in entries:
            if entry.rule in self._entries:
                self._entries[entry.rule][entry.key] = entry
