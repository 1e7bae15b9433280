"""What breaches a rule now: each rule's condition read from the channels' current states.

``states`` is ``{channel: state}`` as the broker holds each (``{"summary", "items",
"meta": {"source": "ok" | "error" | "pending", "error"?}}``). A rule yields one ``Breach``
per thing it is about (a run, a check, a channel), keyed so that the same thing keeps its
key from one evaluation to the next.

Unknown is not resolved: a channel whose source is not ``ok`` yields no breach for the
conditions on its content, and ``source_known`` tells the engine so; the engine resolves
an alert only when the channel of its breach is known. So a source going down does not
resolve a failed run's alert (``source_down`` reports the source itself).

Choices:

- ``workflow_failed``: adw-monitor's runs whose status is ``failed`` (key: the adw_id),
  and the queue's items whose status is ``failed`` (key: the run's adw_id when the item
  has one, so a run is one alert whichever channel says so; else ``queue:<queue_id>``).
  workflow-history is not read: its failed rows are the same runs, and old ones.
- ``queue_stalled``: the queue (not paused) has ready or queued items and none running.
  Held for ``for`` seconds, that is "nothing started or running for that long". The
  items' ``started_timestamp``/``updated_at`` are not compared with the console's clock:
  the ADW system writes them in its own zone and clock (often naive local times).
- ``cost_over_estimate``: adw-monitor's runs whose ``current_cost`` exceeds
  ``estimated_cost_total`` × ``factor`` (finite numbers, an estimate above 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from monitor.alerts.fields import read_field
from monitor.alerts.rules import THRESHOLD, AlertRule
from monitor.channels.base import finite_number
from monitor.channels.registry import ADW_MONITOR, QUEUE, SYSTEM_STATUS

States = Mapping[str, Mapping[str, Any]]
SUMMARY_CHARS = 200  # one line for a human; a source's error or a check's message can be long
HEALTHY_STATUSES = ("healthy", "ok")


@dataclass(frozen=True)
class Breach:
    """One thing breaching a rule now."""

    key: str  # stable identity within the rule: adw_id, channel name, check name, or "" for a single condition
    summary: str  # one line for a human: "run 1a2b3c4d (#42) failed in Build"
    channel: str  # the panel to link to; the alert resolves only while this channel's source is known


def source_known(states: States, channel: str) -> bool:
    """Whether ``channel``'s content is known: its source is ``ok`` (an error or pending source says nothing)."""
    meta = states.get(channel, {}).get("meta", {})
    return isinstance(meta, Mapping) and meta.get("source") == "ok"


def breaches(rule: AlertRule, states: States) -> list[Breach]:
    """Everything breaching ``rule`` in ``states``, one ``Breach`` per key."""
    found: dict[str, Breach] = {}
    for breach in CONDITIONS[rule.when](rule, states):
        found.setdefault(breach.key, breach)  # the first source to report a thing names it
    return list(found.values())


def clip(text: str, chars: int = SUMMARY_CHARS) -> str:
    """``text`` on one line, at most ``chars`` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[:chars - 1] + "…"


def figure(value: float) -> str:
    """A number as a message shows it: whole numbers without a point, others to 6 significant digits."""
    value = float(value)  # an int is a float to the type checker, and has no is_integer before 3.12
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def money(value: float) -> str:
    """Dollars to the cent, or to a hundredth of a cent below a dollar (runs often cost less than a cent)."""
    return f"${value:.2f}" if abs(value) >= 1 else f"${value:.4f}"


def _items(states: States, channel: str) -> list[tuple[str, dict[str, Any]]]:
    """``channel``'s items (key, item) when its source is known; none otherwise."""
    if not source_known(states, channel):
        return []
    items = states[channel].get("items", {})
    # The broker's states are JSON-shaped: dicts (a type test, cheaper than an ABC's over hundreds of runs).
    return [(str(key), item) for key, item in items.items() if type(item) is dict] if type(items) is dict else []


def _summary(states: States, channel: str) -> Mapping[str, Any] | None:
    if not source_known(states, channel):
        return None
    summary = states[channel].get("summary", {})
    return summary if isinstance(summary, Mapping) else None


def _run_name(adw_id: str, item: Mapping[str, Any]) -> str:
    issue = item.get("issue_number")
    return f"run {adw_id}" + (f" (#{issue})" if issue not in (None, "") else "")


def workflow_failed(rule: AlertRule, states: States) -> Iterator[Breach]:
    """Failed runs of adw-monitor, then failed queue items (a run's item keyed by its adw_id)."""
    for adw_id, item in _items(states, ADW_MONITOR):
        if item.get("status") == "failed":
            phase = item.get("failed_phase")
            title = item.get("title")
            text = _run_name(adw_id, item) + " failed" + (f" in {phase}" if phase else "")
            yield Breach(adw_id, clip(text + (f": {title}" if title else "")), ADW_MONITOR)
    for queue_id, item in _items(states, QUEUE):
        if item.get("status") == "failed":
            run = item.get("adw_id")
            what = item.get("title") or queue_id
            error = item.get("error_message")
            text = f"queue: {what} failed" + (f" (run {run})" if run else "") + (f": {error}" if error else "")
            yield Breach(str(run) if run else f"queue:{queue_id}", clip(text), QUEUE)


def source_down(rule: AlertRule, states: States) -> Iterator[Breach]:
    """Every channel (or only the rule's) whose source is in error."""
    for channel, state in states.items():
        meta = state.get("meta", {})
        if (rule.channel in ("", channel)) and isinstance(meta, Mapping) and meta.get("source") == "error":
            yield Breach(channel, clip(f"{channel}: source down: {meta.get('error') or 'no reason given'}"), channel)


def check_unhealthy(rule: AlertRule, states: States) -> Iterator[Breach]:
    """Every system-status check whose status is not healthy (or ok)."""
    for name, item in _items(states, SYSTEM_STATUS):
        status = item.get("status")
        if status not in HEALTHY_STATUSES:
            message = item.get("message")
            text = f"check {name} is {status}" + (f": {message}" if message else "")
            yield Breach(name, clip(text), SYSTEM_STATUS)


def queue_stalled(rule: AlertRule, states: States) -> Iterator[Breach]:
    """The queue, not paused, has ready or queued work and nothing running."""
    summary = _summary(states, QUEUE)
    if summary is None or summary.get("paused") is True:
        return
    ready, queued = read_field(summary, "by_status.ready"), read_field(summary, "by_status.queued")
    running = read_field(summary, "by_status.running")
    if ready is None or queued is None or running != 0 or ready + queued <= 0:
        return
    yield Breach("", f"queue: {figure(ready + queued)} waiting ({figure(ready)} ready, {figure(queued)} queued), "
                        "none running", QUEUE)


def cost_over_estimate(rule: AlertRule, states: States) -> Iterator[Breach]:
    """adw-monitor's runs whose cost so far exceeds their estimate × the rule's factor."""
    for adw_id, item in _items(states, ADW_MONITOR):
        cost, estimate = item.get("current_cost"), item.get("estimated_cost_total")
        if finite_number(cost) and finite_number(estimate) and estimate > 0 and cost > estimate * rule.factor:
            over = "its estimate" if rule.factor == 1 else f"{figure(rule.factor)}× its estimate"
            text = f"{_run_name(adw_id, item)} has cost {money(cost)}, over {over} of {money(estimate)}"
            yield Breach(adw_id, text, ADW_MONITOR)


def threshold(rule: AlertRule, states: States) -> Iterator[Breach]:
    """The rule's summary field, when it is a finite number above (or below) its bound."""
    summary = _summary(states, rule.channel)
    value = read_field(summary, rule.field) if summary is not None else None
    if value is None:
        return
    if rule.above is not None and value > rule.above:
        yield Breach("", f"{rule.channel}: {rule.field} = {figure(value)} (above {figure(rule.above)})", rule.channel)
    elif rule.below is not None and value < rule.below:
        yield Breach("", f"{rule.channel}: {rule.field} = {figure(value)} (below {figure(rule.below)})", rule.channel)


CONDITIONS: Mapping[str, Callable[[AlertRule, States], Iterator[Breach]]] = MappingProxyType({
    THRESHOLD: threshold,
    "workflow_failed": workflow_failed,
    "source_down": source_down,
    "check_unhealthy": check_unhealthy,
    "queue_stalled": queue_stalled,
    "cost_over_estimate": cost_over_estimate,
})
