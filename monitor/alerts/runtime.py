"""The alerts at work in the console: evaluate the rules every second, tell people, keep the state.

``Alerting`` joins the parts: the engine (what fires, repeats, resolves), the store (so a
restart does not send again), and the notifier (Apprise, retried, never blocking a poll).
The page and ``/api/v1/alerts`` read what it holds; ``alerts_ctx`` runs it for the app.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from monitor.alerts.engine import RESOLVED, AlertEngine, AlertEvent
from monitor.alerts.notify import Message, Notifier, NotifierCollector
from monitor.alerts.store import AlertStore, alerts_path
from monitor.brokers.shared import SharedBroker
from monitor.channels.registry import CHANNEL_NAMES
from monitor.display import utc as when
from monitor.keys import ALERTS, BROKER, METRICS, SETTINGS
from monitor.settings import Settings

log = structlog.get_logger(__name__)

EVALUATE_EVERY = 1.0  # seconds: a condition's "for" is honoured to within this
RECENT_EVENTS = 50
States = Callable[[], Mapping[str, Mapping[str, Any]]]


def console_url(settings: Settings) -> str:
    """Where people open the console: ``server.public_host`` when set, else the bound address."""
    server = settings.server
    if server.public_host:
        return f"http://{server.public_host}"
    host = "localhost" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"http://{f'[{host}]' if ':' in host else host}:{server.port}"


def fingerprint(url: str) -> str:
    """What the outbox keeps of a URL: its SHA-256, which finds it again in the config and tells nothing."""
    return hashlib.sha256(url.encode()).hexdigest()


def message_for(event: AlertEvent, urls: tuple[str, ...], base: str) -> Message:
    """What people are told of ``event``: what, where, since when, and a link to its panel."""
    state = {"firing": "FIRING", "repeat": "STILL FIRING", RESOLVED: "RESOLVED"}[event.kind]
    title = f"[{state}] {event.rule}: {event.summary}"
    lines = [event.summary, f"panel: {event.channel}", f"since: {when(event.since)}"]
    if event.kind == RESOLVED:
        lines.append(f"resolved: {when(event.at)}")
    lines.append(f"{base}/{event.channel}")
    return Message(title=title[:250], body="\n".join(lines), urls=urls)


def broker_states(app: web.Application) -> States:
    """Each channel's current state, as the pollers last published it."""
    broker = app[BROKER]
    return lambda: {name: broker.current(name).state for name in CHANNEL_NAMES}


def sends_alerts(app: web.Application) -> Callable[[], bool]:
    """Whether this console is the one that sends: with consoles sharing a broker, the first channel's poller."""
    broker = app[BROKER]
    if isinstance(broker, SharedBroker):
        return lambda: broker.leads(CHANNEL_NAMES[0])
    return lambda: True


class Alerting:
    """The rules of ``settings`` evaluated against the channels' states, their events sent and kept."""

    def __init__(self, settings: Settings, states: States, notifier: Notifier | None = None,
                 sends: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.states = states
        # Every console evaluates (so each page shows what fires, and a console taking over knows what
        # already fired); only the one that ``sends`` tells people and writes the state.
        self.sends = sends
        self.engine = AlertEngine(settings.alerts)
        self.store = AlertStore()
        self.notifier = notifier or Notifier()
        self.urls = {rule.name: rule.notify for rule in settings.alerts}
        self.base = console_url(settings)
        self.evaluations = 0
        self._passing = asyncio.Lock()  # one pass at a time: the loop's, or one asked for (a test, a command)

    async def open(self) -> None:
        """Load what fired before a restart, start delivering, and send what the last run could not."""
        if self.settings.alerts:
            await self.store.open(alerts_path(self.settings.history.path) if self.settings.history.enabled else None)
            self.engine.restore(await self.store.load())
        await self.notifier.start()
        by_hash = {fingerprint(url): url for urls in self.urls.values() for url in urls}
        for receiver, title, body, queued_at in await self.store.take_outbox():
            if receiver in by_hash:  # an address no longer configured is not written to
                self.notifier.send(Message(title, body, (by_hash[receiver],)), queued_at)

    async def close(self, deadline: float) -> None:
        """Deliver what is queued within ``deadline`` seconds, keep the rest for the next run, close the store."""
        await self.notifier.stop(deadline)
        await self.store.keep_outbox([(fingerprint(url), pending.title, pending.body, pending.queued_at)
                                      for url, pending in self.notifier.unsent()])
        await self.store.close()

    async def evaluate(self) -> list[AlertEvent]:
        """One pass: evaluate every rule, send each event to its rule's URLs, save state and events."""
        if not self.settings.alerts:
            return []
        async with self._passing:
            events = self.engine.evaluate(self.states())
            self.evaluations += 1
            if not self.sends():
                self.store.note(events)
                return events
            for event in events:
                log.info("alert_" + event.kind, rule=event.rule, key=event.key, channel=event.channel)
                if self.urls.get(event.rule):
                    self.notifier.send(message_for(event, self.urls[event.rule], self.base))
            await self.store.save(events, self.engine.state())
            return events

    async def report(self) -> dict[str, Any]:
        """Firing and pending alerts, and the newest events: ``GET /api/v1/alerts`` and the pages."""
        firing = [vars(alert) for alert in self.engine.firing()]
        pending = [{"rule": e.rule, "key": e.key, "summary": e.summary, "channel": e.channel, "since": e.since}
                   for e in self.engine.pending()]
        recent = [vars(event) for event in await self.store.recent(RECENT_EVENTS)]
        return {"rules": len(self.settings.alerts), "firing": firing, "pending": pending, "recent": recent}


async def run_alerting(alerting: Alerting) -> None:
    """Evaluate every ``EVALUATE_EVERY`` seconds until cancelled; a failing pass is logged, not fatal."""
    reported = False
    while True:
        try:
            await alerting.evaluate()
            reported = False
        except Exception:  # a rule that cannot read a state must not end the alerting: logged once per run of failures
            if not reported:
                log.exception("alerts_evaluation_failed")
            reported = True
        await asyncio.sleep(EVALUATE_EVERY)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the alerts while the console runs (registered after the history, which opens and repairs their file)."""
    alerting = app[ALERTS]
    await alerting.open()
    app[METRICS].registry.register(NotifierCollector(alerting.notifier))
    task = asyncio.get_running_loop().create_task(run_alerting(alerting))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await alerting.close(app[SETTINGS].server.shutdown_timeout)
