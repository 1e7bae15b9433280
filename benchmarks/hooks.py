"""Benchmark-only routes loaded into the console process by ``benchmarks.server_entry``.

``POST /_bench/floor`` writes one pre-built WebSocket frame straight to the transport of
every connection of a channel: the floor a fan-out cannot beat. ``POST /_bench/patch``
publishes a ~1 KB patch through the console's own path (channel state, broker, hub), so
both are measured on the same sockets in the same process. With a shared (Redis) broker
the patch is published by the channel's poller through Redis to every console's clients;
another console answers 409 (the driver asks again on a new connection). Never part of the product.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import orjson
from aiohttp import web

from monitor.broker import InProcessBroker
from monitor.brokers.shared import SharedBroker
from monitor.channels.base import ChannelData
from monitor.connection import text_frame
from monitor.keys import BROKER, HUB

HOOKS_ENV = "MONITOR_BENCH_HOOKS"
HEAP_BASE = web.AppKey("bench_heap_base", object)


def padding(marker: str, size: int) -> str:
    """``marker`` followed by filler, ``size`` characters long."""
    return marker + "x" * max(0, size - len(marker))


def add_bench_routes(app: web.Application) -> None:
    """Register the benchmark hooks on the console's application."""
    app.router.add_post("/_bench/floor", floor)
    app.router.add_post("/_bench/patch", publish_patch)
    app.router.add_post("/_bench/heap", heap_snapshot)
    app.router.add_post("/_bench/gc", full_collection)


async def floor(request: web.Request) -> web.Response:
    """Write a pre-built frame of ``size`` bytes straight to every transport of ``channel``."""
    channel, marker, size = _arguments(request)
    payload = orjson.dumps({"type": "bench", "channel": channel, "pad": padding(marker, size - 44)})
    frame = text_frame(payload)
    transports = [c.transport for c in request.app[HUB].connections(channel)]
    started = time.monotonic()
    for transport in transports:
        transport.write(frame)
    finished = time.monotonic()
    return web.json_response({"t0": started, "t1": finished, "n": len(transports), "payload_bytes": len(payload)})


async def publish_patch(request: web.Request) -> web.Response:
    """Publish a patch of about ``size`` bytes on ``channel`` through broker and hub; time the publish."""
    channel, marker, size = _arguments(request)
    broker, hub = request.app[BROKER], request.app[HUB]
    if isinstance(broker, SharedBroker):
        return _publish_shared(broker, channel, hub.count(channel), padding(marker, size - 120))
    assert isinstance(broker, InProcessBroker), "the fan-out hook times the in-process broker"
    state = broker.current(channel).state
    summary = {**state["summary"], "bench": padding(marker, size - 120)}
    published = time.monotonic()
    frame = broker.apply(channel, ChannelData(summary, state["items"]))  # out of t0..t1: diff and encoding
    started = time.monotonic()
    broker.deliver(channel, frame)
    finished = time.monotonic()
    backlogged = sum(1 for c in hub.connections(channel) if c.backlog_size)
    return web.json_response({"t0": started, "t1": finished, "tp": published, "n": hub.count(channel),
                              "backlogged": backlogged, "seq": broker.current(channel).seq})


def _publish_shared(broker: SharedBroker, channel: str, here: int, pad: str) -> web.Response:
    """Publish through the shared broker, from the channel's poller only: diff, then the write to Redis (queued)."""
    if not broker.leads(channel):
        raise web.HTTPConflict(text=f"not {channel}'s poller: ask again on a new connection")
    state = broker.authored(channel).state
    started = time.monotonic()  # t0 = tp: nothing of the publish is left out
    broker.publish(channel, ChannelData({**state["summary"], "bench": pad}, state["items"]))
    finished = time.monotonic()
    return web.json_response({"t0": started, "t1": finished, "tp": started, "n": here})


async def full_collection(request: web.Request) -> web.Response:
    """Time one full garbage collection: the pause any poll may meet once enough objects were promoted."""
    started = time.monotonic()
    gc.collect()
    return web.json_response({"seconds": time.monotonic() - started, "objects": len(gc.get_objects())})


async def heap_snapshot(request: web.Request) -> web.Response:
    """With PYTHONTRACEMALLOC set: ``?take=base`` keeps a baseline, ``?take=diff`` returns the top growth since it."""
    if not tracemalloc.is_tracing():
        raise web.HTTPConflict(text="start the server with PYTHONTRACEMALLOC=<frames>")
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if request.query.get("take") == "base":
        request.app[HEAP_BASE] = snapshot
        return web.json_response({"traced_bytes": tracemalloc.get_traced_memory()[0]})
    group = request.query.get("by", "lineno")
    growth = snapshot.compare_to(request.app[HEAP_BASE], group)[:int(request.query.get("top", "25"))]
    return web.json_response([{"where": str(stat.traceback), "bytes": stat.size_diff, "count": stat.count_diff}
                              for stat in growth])


def _arguments(request: web.Request) -> tuple[str, str, int]:
    query = request.query
    return query.get("channel", "queue"), query["marker"], int(query.get("size", "1024"))
