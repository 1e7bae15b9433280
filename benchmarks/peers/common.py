"""What both peers share: arguments, the queue snapshot, the frames, the control hooks, the announcement."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sqlite3
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

EPOCH = "peer"
JSON_COLUMNS = ("phase_data", "depends_on_phases")
Hook = Callable[[str, int], Awaitable[dict]]


def parse_args(description: str) -> argparse.Namespace:
    """``--db`` (the workspace database the snapshot is read from) and ``--heartbeat``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", required=True, help="SQLite database holding phase_queue")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between pings")
    return parser.parse_args()


def _queue_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(row) for row in conn.execute("SELECT * FROM phase_queue ORDER BY queue_position")]
    finally:
        conn.close()
    for row in rows:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


def queue_snapshot(db: Path) -> str:
    """The queue's snapshot message, as the console's first frame: every row, with a summary."""
    rows = _queue_rows(db)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    data = {"summary": {"total": len(rows), "by_status": counts}, "items": rows}
    return orjson.dumps({"type": "snapshot", "channel": "queue", "epoch": EPOCH, "seq": 1, "data": data}).decode()


def padding(marker: str, size: int) -> str:
    """``marker`` followed by filler, ``size`` characters long."""
    return marker + "x" * max(0, size - len(marker))


def patch_text(marker: str, size: int, seq: int) -> str:
    """A patch message of about ``size`` bytes carrying ``marker``, shaped like the console's."""
    patch = {"summary": {"bench": padding(marker, size - 90)}}
    return orjson.dumps({"type": "patch", "channel": "queue", "epoch": EPOCH, "seq": seq, "patch": patch}).decode()


def floor_frame(marker: str, size: int) -> bytes:
    """A complete unmasked WebSocket text frame of about ``size`` bytes carrying ``marker``."""
    payload = orjson.dumps({"type": "bench", "channel": "queue", "pad": padding(marker, size - 44)})
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def write_all(transports: list, frame: bytes) -> dict:
    """Write ``frame`` straight to every transport; the floor a fan-out cannot beat."""
    started = time.monotonic()
    for transport in transports:
        transport.write(frame)
    return {"t0": started, "t1": time.monotonic(), "n": len(transports)}


def _handler(hook: Hook) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def run_hook(request: web.Request) -> web.Response:
        query = request.query
        return web.json_response(await hook(query["marker"], int(query.get("size", "1024"))))

    return run_hook


def add_control_routes(app: web.Application, patch: Hook, floor: Hook) -> None:
    """``POST /_bench/patch|floor?marker=&size=`` (timings), ``POST /_bench/gc`` and ``GET /_bench/cpu``."""
    app.router.add_post("/_bench/patch", _handler(patch))
    app.router.add_post("/_bench/floor", _handler(floor))
    app.router.add_post("/_bench/gc", full_collection)
    app.router.add_get("/_bench/cpu", process_cpu)


async def full_collection(request: web.Request) -> web.Response:
    """Time one full garbage collection."""
    started = time.monotonic()
    gc.collect()
    return web.json_response({"seconds": time.monotonic() - started, "objects": len(gc.get_objects())})


async def process_cpu(request: web.Request) -> web.Response:
    """This process's CPU seconds (every thread), at nanosecond resolution."""
    return web.json_response({"cpu": time.process_time(), "hooks_cpu": 0.0})


async def start_site(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1:``port``; return the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, runner.addresses[0][1]


def announce(port: int, control_port: int | None = None) -> None:
    """The ``listening`` line the driver waits for (with the control hooks' port when separate)."""
    event = {"event": "listening", "port": port}
    if control_port is not None:
        event["control_port"] = control_port
    print(json.dumps(event), file=sys.stderr, flush=True)


async def until_terminated() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
