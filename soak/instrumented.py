"""The console with one extra route for the soak: a census of what a leak would leave behind.

    python -m soak.instrumented serve --config config.toml

``GET /_soak/census`` answers the number of asyncio tasks, live Connection and
WebSocketResponse objects and threads, after a full garbage collection. Everything else
is ``monitor serve`` unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

from aiohttp import web

import monitor.server
from monitor.app import create_app
from monitor.cli import main
from monitor.connection import Connection


async def census(request: web.Request) -> web.Response:
    """Tasks, connections, WebSocket responses and threads (executor pool apart) alive right now."""
    gc.collect()
    objects = gc.get_objects()
    return web.json_response({
        "tasks": len(asyncio.all_tasks()),
        "connections": sum(isinstance(o, Connection) for o in objects),
        "websockets": sum(isinstance(o, web.WebSocketResponse) for o in objects),
        # The default executor grows to its bound on demand; any other thread is someone's.
        "pool_threads": sum(t.name.startswith("asyncio_") for t in threading.enumerate()),
        "threads": sum(not t.name.startswith("asyncio_") for t in threading.enumerate()),
    })


def create_instrumented_app(settings):
    """The console's app with the census route."""
    app = create_app(settings)
    app.router.add_get("/_soak/census", census)
    return app


if __name__ == "__main__":
    monitor.server.create_app = create_instrumented_app  # serve_until_signalled builds its app through this name
    sys.exit(main())
