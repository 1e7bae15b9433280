"""Benchmark-only tracing of a change's way through the console: trigger, read, publish.

Installed by ``benchmarks.server_entry`` after the pollers exist, it wraps each poller's
``request_poll`` and reader, and the broker's ``deliver``, on those instances only, and
records ``(time.monotonic(), event, channel)``; garbage collections are recorded too
(``gc_start``/``gc_stop`` with the generation in place of the channel). ``GET /_bench/trace?since=T`` returns the
events after T, so the driver can split freshness into watch, read and publish stages.
``GET /_bench/cpu`` returns the process's CPU time and the part of it spent serving the
trace, so a series of changes can be charged the server's CPU without the benchmark's own.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from typing import Any

from aiohttp import web

from monitor.broker import InProcessBroker
from monitor.keys import BROKER, POLLERS

TRACE = web.AppKey("bench_trace", deque)
GC_CALLBACK = web.AppKey("bench_gc_callback", object)
HOOKS_CPU = web.AppKey("bench_hooks_cpu", list)
KEPT_EVENTS = 20_000


def add_tracing(app: web.Application) -> None:
    """Record trigger/read/publish events once the pollers exist; serve them at /_bench/trace."""
    app[TRACE] = deque(maxlen=KEPT_EVENTS)
    app[HOOKS_CPU] = [0.0]
    app.on_startup.append(_install)
    app.on_cleanup.append(_uninstall_gc_callback)
    app.router.add_get("/_bench/trace", serve_trace)
    app.router.add_get("/_bench/cpu", serve_cpu)


async def _install(app: web.Application) -> None:
    events = app[TRACE]
    for name, poller in app[POLLERS].items():
        poller.request_poll = _recording(events, "trigger", name, poller.request_poll)
        poller.reader.read = _recording_async(events, "read", name, poller.reader.read)
    broker = app[BROKER]
    assert isinstance(broker, InProcessBroker), "tracing splits the in-process broker's publish"
    deliver = broker.deliver  # called after the change was diffed, encoded and applied

    def traced_deliver(channel: str, frame: bytes | None) -> None:
        if frame is None:  # an unchanged read: nothing is published
            deliver(channel, frame)
            return
        events.append((time.monotonic(), "publish", channel))
        deliver(channel, frame)
        events.append((time.monotonic(), "delivered", channel))

    broker.deliver = traced_deliver

    def gc_event(phase: str, info: dict) -> None:
        events.append((time.monotonic(), f"gc_{phase}", f"gen{info['generation']}"))

    app[GC_CALLBACK] = gc_event
    gc.callbacks.append(gc_event)


async def _uninstall_gc_callback(app: web.Application) -> None:
    if GC_CALLBACK in app and app[GC_CALLBACK] in gc.callbacks:
        gc.callbacks.remove(app[GC_CALLBACK])


def _recording(events: deque, event: str, channel: str, function):
    def recorded(*args: Any, **kwargs: Any):
        events.append((time.monotonic(), event, channel))
        return function(*args, **kwargs)

    return recorded


def _recording_async(events: deque, event: str, channel: str, function):
    async def recorded(*args: Any, **kwargs: Any):
        events.append((time.monotonic(), f"{event}_start", channel))
        try:
            return await function(*args, **kwargs)
        finally:
            events.append((time.monotonic(), f"{event}_end", channel))

    return recorded


async def serve_trace(request: web.Request) -> web.Response:
    """The recorded events after ``since`` (a monotonic time), oldest first; its CPU time is counted apart."""
    started = time.process_time()
    since = float(request.query.get("since", "0"))
    recent = []
    for event in reversed(request.app[TRACE]):  # newest first: stop at the first older event
        if event[0] <= since:
            break
        recent.append(event)
    recent.reverse()
    response = web.json_response(recent)
    request.app[HOOKS_CPU][0] += time.process_time() - started
    return response


async def serve_cpu(request: web.Request) -> web.Response:
    """This process's CPU seconds (all threads, nanosecond resolution) and those the trace hook used."""
    return web.json_response({"cpu": time.process_time(), "hooks_cpu": request.app[HOOKS_CPU][0]})


def gc_pauses(events: list, start: float, end: float) -> dict[str, float]:
    """Seconds spent in collections of each generation that started between ``start`` and ``end``."""
    pauses: dict[str, float] = {}
    begun: dict[str, float] = {}
    for moment, event, generation in events:
        if event == "gc_start" and start <= moment <= end:
            begun[generation] = moment
        elif event == "gc_stop" and generation in begun:
            pauses[generation] = pauses.get(generation, 0.0) + moment - begun.pop(generation)
    return pauses


def stages(events: list, channel: str, changed_at: float) -> dict[str, float]:
    """Seconds from the change to the first trigger, read start/end and publish of ``channel`` after it."""
    firsts: dict[str, float] = {}
    for moment, event, name in events:
        if name == channel and moment >= changed_at and event not in firsts:
            firsts[event] = moment
    if "publish" not in firsts:
        return {}
    publish = firsts["publish"]
    # The read that led to the publish is the last one that started before it.
    read_start = max((m for m, e, n in events if n == channel and e == "read_start" and m <= publish), default=None)
    read_end = max((m for m, e, n in events if n == channel and e == "read_end" and m <= publish), default=None)
    result = {"publish": publish - changed_at, "delivered": firsts.get("delivered", publish) - changed_at}
    if "trigger" in firsts:
        result["trigger"] = firsts["trigger"] - changed_at
    if read_start is not None and read_end is not None:
        result |= {"read_start": read_start - changed_at, "read_end": read_end - changed_at}
    return result
