"""The application factory: routes, shared state and the lifecycle of every resource."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web, web_response
from aiohttp.typedefs import Handler

from monitor.alerts.runtime import Alerting, alerts_ctx, broker_states, sends_alerts
from monitor.auth import auth_middleware
from monitor.broker import Broker, InProcessBroker
from monitor.brokers.shared import SharedBroker
from monitor.brokers.status import broker_status
from monitor.channels.registry import CHANNEL_NAMES, channels_watching, make_readers
from monitor.channels.spec import DATABASE
from monitor.compat.cors import compat_cors
from monitor.compat.routes import setup_compat
from monitor.gcpolicy import GcPolicy
from monitor.headers import host_guard, security_headers
from monitor.heartbeat import Heartbeat
from monitor.history.paths import history_path
from monitor.history.recorder import History, history_ctx
from monitor.hub import Hub
from monitor.keys import (
    ALERTS,
    BROKER,
    COMPAT,
    GC,
    HEARTBEAT,
    HISTORY,
    HUB,
    METRICS,
    POLLERS,
    POLLING,
    SETTINGS,
    SOURCES,
    STARTED_AT,
    WATCHER,
)
from monitor.login import setup_auth
from monitor.logs import quiet_malformed_requests
from monitor.metrics import Metrics
from monitor.pages import setup_templates
from monitor.poller import Poller
from monitor.scheduler import Polling, build_scheduler
from monitor.settings import Settings
from monitor.sources.resources import Sources
from monitor.urls import list_routes, setup_routes
from monitor.wake import Waker
from monitor.watch import start_watcher, watch_targets

log = structlog.get_logger(__name__)


def create_app(settings: Settings) -> web.Application:
    """Build the console for ``settings``; nothing touches a source until startup."""
    quiet_malformed_requests()
    # One place for the Server header of every response aiohttp builds (pages, the WebSocket
    # 101, its own 400s for unparseable requests): its default names its version, a free
    # hint for anyone matching known bugs. aiohttp has no setting for it, so the module
    # global its responses read is rebound.
    web_response.SERVER_SOFTWARE = "monitor"  # type: ignore[attr-defined]
    # Host before auth: a rebound name gets 421 without learning whether credentials would pass.
    app = web.Application(middlewares=[security_headers, request_id_middleware, host_guard, compat_cors,
                                       auth_middleware])
    app[SETTINGS] = settings
    app[STARTED_AT] = time.time()
    app[BROKER] = make_broker(settings)
    hub = app[HUB] = Hub(CHANNEL_NAMES)
    app[HEARTBEAT] = Heartbeat(settings.server.heartbeat)
    app[GC] = GcPolicy(hub)
    app[METRICS] = Metrics(hub, app[BROKER])
    app[METRICS].watch_gc(app[GC])
    app[METRICS].watch_broker(CHANNEL_NAMES, lambda: broker_status(app[BROKER], CHANNEL_NAMES))
    app[HISTORY] = History(settings.history, history_path(settings.history.path))
    app[ALERTS] = Alerting(settings, broker_states(app), sends=sends_alerts(app))
    app[BROKER].listen(hub.deliver)
    setup_templates(app)
    app.cleanup_ctx.append(broker_ctx)
    app.cleanup_ctx.append(sources_ctx)
    app.cleanup_ctx.append(pollers_ctx)
    app.cleanup_ctx.append(history_ctx)  # after the pollers: its first sample has every channel's first poll
    app.cleanup_ctx.append(alerts_ctx)  # after the history: it opens (and repairs) the file the alerts share
    app.cleanup_ctx.append(watcher_ctx)
    app.cleanup_ctx.append(heartbeat_ctx)
    app.cleanup_ctx.append(gc_ctx)
    app.on_shutdown.append(close_sockets)
    setup_auth(app)
    setup_compat(app)
    setup_routes(app)
    return app


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of the request and echo it back."""
    request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex[:12]
    # aiohttp runs each request in a task of its own, with a copy of the context: the binding
    # ends with the request, and still holds while a WebSocket is served after the handler returned.
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


def make_broker(settings: Settings) -> Broker:
    """The in-process broker, or with ``[broker] url`` the one shared through Redis."""
    if not settings.broker.url:
        return InProcessBroker(CHANNEL_NAMES, settings.server.ring_size)
    from monitor.brokers.redis import RedisBroker  # the Redis client loads only when a console shares

    return RedisBroker(CHANNEL_NAMES, settings.server.ring_size, settings.broker.url, settings.broker.lock_ttl)


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect a shared broker (load the shared states, start following and leading); close it last."""
    broker = app[BROKER]
    if not isinstance(broker, SharedBroker):
        yield
        return
    broker.rtt_observers.append(app[METRICS].broker_rtt.observe)
    await broker.start(wait=app[SETTINGS].broker.lock_ttl)
    yield
    await broker.close()


async def sources_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the connections to the monitored system."""
    sources = Sources(app[SETTINGS], own_routes=lambda: list_routes(app))
    app[SOURCES] = sources
    app[METRICS].watch_table_reads(lambda: dict(getattr(sources.database, "table_reads", {})))
    await sources.open()
    yield
    await app[SOURCES].close()


def poll_observer(metrics: Metrics, shared: SharedBroker | None) -> Callable[[str, float, bool], None]:
    """What each poll is reported to: the metrics, and a shared broker (the other consoles show its age)."""
    if shared is None:
        return metrics.observe_poll

    def observe(channel: str, seconds: float, ok: bool) -> None:
        metrics.observe_poll(channel, seconds, ok)
        if ok:
            shared.polled(channel)
    return observe


async def pollers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create one poller per channel, run the first polls, then schedule the rest."""
    settings, broker = app[SETTINGS], app[BROKER]
    shared = broker if isinstance(broker, SharedBroker) else None
    observe = poll_observer(app[METRICS], shared)
    pollers = {name: Poller(name, reader, broker, settings.channel(name).timeout, observe=observe,
                            leads=shared.leads if shared else None, view=shared.authored if shared else None)
               for name, reader in make_readers(app[SOURCES]).items()}
    app[POLLERS] = pollers
    if shared is not None:  # a channel taken over is polled at once, not at its next interval
        def poll_taken(channel: str) -> None:
            if channel in pollers:
                pollers[channel].request_poll()
        shared.on_lead = poll_taken
    await asyncio.gather(*(poller.poll() for poller in pollers.values()))
    polling = Polling(build_scheduler(settings, pollers), pollers)
    app[POLLING] = polling
    polling.start()
    epochs = sorted({broker.current(name).epoch for name in pollers})
    log.info("pollers_started", channels=sorted(pollers), epoch=",".join(epochs))
    yield
    await polling.stop()


async def watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watch the file sources so their channels poll as soon as something changes."""
    settings, pollers = app[SETTINGS], app[POLLERS]
    app[WATCHER] = None
    if not settings.sources.watch:
        yield
        return

    waker = Waker(pollers, frozenset(channels_watching(DATABASE)), app[SOURCES].database.change_token)
    files = app[SOURCES].state_files
    targets = watch_targets(settings, files.moved, waker.database_event)
    watcher = app[WATCHER] = start_watcher(targets, waker, settings.sources.watch_debounce)
    if watcher is not None:  # a database commit then leaves a fresh scan of them standing
        files.watched = lambda: watcher.alive
    yield
    files.watched = lambda: False
    if watcher is not None:
        await watcher.stop()
    await waker.stop()


async def heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
    """Ping every socket and cut the dead ones, for as long as the console runs."""
    app[HEARTBEAT].start()
    yield
    app[HEARTBEAT].stop()


async def gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keep full garbage collections away from deliveries (gcpolicy.py)."""
    task = asyncio.get_running_loop().create_task(app[GC].run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def close_sockets(app: web.Application) -> None:
    """Stop the jobs, then close every socket with 1001 under one deadline (compat clients and relays too)."""
    if POLLING in app:
        await app[POLLING].stop()
    deadline = app[SETTINGS].server.shutdown_timeout
    closing = [app[HUB].close_all(deadline)]
    if COMPAT in app:
        closing += [app[COMPAT].fanout.hub.close_all(deadline), app[COMPAT].backend.close_relays(deadline)]
    await asyncio.gather(*closing)
