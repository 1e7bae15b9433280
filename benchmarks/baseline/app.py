"""A small replica of the seed console's pattern (FastAPI + uvicorn), for comparison only.

What it reproduces from the seed's incident report: one ``ConnectionManager`` whose
``broadcast`` awaits ``send_json`` of the whole payload on every socket of every endpoint;
background watchers that poll every 2 s and broadcast the whole payload when it changed;
initial data read and sent at connect; system and webhook status sent only at connect;
blocking reads on the event loop; and the seed's proposed "fixed" handler, which stops
reading and loops on ``asyncio.sleep(1)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from benchmarks.baseline.sources import SeedSources

log = logging.getLogger("seed-replica")
WATCH_INTERVAL = 2.0


class ConnectionManager:
    """Every accepted socket of every endpoint, in one set (as in the seed)."""

    def __init__(self) -> None:
        self.active_connections: set[WebSocket] = set()

    async def connect(self, websocket: WebSocket) -> None:
        """Accept and register."""
        await websocket.accept()
        self.active_connections.add(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        """Unregister."""
        self.active_connections.discard(websocket)

    async def broadcast(self, message: dict) -> None:
        """Send ``message`` to every socket, one after another."""
        for connection in list(self.active_connections):
            try:
                await connection.send_json(message)
            except Exception:  # the seed dropped a socket on any send failure
                self.disconnect(connection)


class BackgroundTaskManager:
    """Polls each watched panel every 2 s and broadcasts its whole payload when it changed."""

    def __init__(self, sources: SeedSources, manager: ConnectionManager) -> None:
        self.manager = manager
        self.readers = {"queue_update": sources.queue, "adw_monitor_update": sources.adw_monitor,
                        "workflows_update": sources.workflows, "workflow_history_update": sources.workflow_history,
                        "planned_features_update": sources.planned_features}
        self._last: dict[str, dict] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start watching."""
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for kind, read in self.readers.items():
                try:
                    data = read()
                except Exception as exc:
                    log.error("watcher %s failed: %s", kind, exc)
                    continue
                if data != self._last.get(kind):
                    self._last[kind] = data
                    await self.manager.broadcast({"type": kind, "data": data})


async def handle_websocket_connection(websocket: WebSocket, manager: ConnectionManager, initial_data: dict,
                                      error_context: str) -> None:
    """The seed's handler after its proposed fix: send initial data, then sleep instead of reading."""
    await manager.connect(websocket)
    try:
        await websocket.send_json(initial_data)
        while True:
            try:
                await asyncio.sleep(1)
                if websocket.client_state != WebSocketState.CONNECTED:
                    break
            except WebSocketDisconnect:
                break
    except Exception as exc:
        log.error("[WS] Error in %s WebSocket connection: %s", error_context, exc)
    finally:
        manager.disconnect(websocket)


def create_seed_app(sources: SeedSources) -> FastAPI:
    """The replica: eight WebSocket endpoints on one manager, plus the watchers."""
    manager = ConnectionManager()
    watchers = BackgroundTaskManager(sources, manager)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        watchers.start()
        yield
        await watchers.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.manager = manager
    panels = {"queue": ("queue_update", sources.queue), "adw-monitor": ("adw_monitor_update", sources.adw_monitor),
              "system-status": ("system_status_update", sources.system_status),
              "workflows": ("workflows_update", sources.workflows),
              "routes": ("routes_update", lambda: {"routes": [r.path for r in app.routes]}),
              "workflow-history": ("workflow_history_update", sources.workflow_history),
              "planned-features": ("planned_features_update", sources.planned_features),
              "webhook-status": ("webhook_status_update", sources.webhook_status)}
    for name, (kind, read) in panels.items():
        app.add_api_websocket_route(f"/api/v1/ws/{name}", _endpoint(manager, name, kind, read))
    return app


def _endpoint(manager: ConnectionManager, name: str, kind: str, read):
    async def endpoint(websocket: WebSocket) -> None:
        await handle_websocket_connection(websocket, manager, {"type": kind, "data": read()}, name)

    endpoint.__name__ = f"{name.replace('-', '_')}_websocket"
    return endpoint
