"""``monitor demo``: create a changing ADW workspace and serve the console on it."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

import structlog

from monitor.channels.registry import CHANNEL_NAMES, WEBHOOK_STATUS
from monitor.demo.history_seed import seed_history
from monitor.demo.simulator import Simulator
from monitor.demo.webhook_service import ApiCatalog, DemoDeliveries, WebhookStats, start_webhook_service
from monitor.demo.workspace import Workspace, create_workspace
from monitor.logs import configure_logging
from monitor.server import serve_until_signalled
from monitor.settings import ConfigError, Settings, settings_from_mapping

log = structlog.get_logger(__name__)


def run_demo(root: Path, host: str, port: int) -> int:
    """Run the demo until Ctrl-C; the exit status of the command."""
    configure_logging("info", "auto")
    try:
        asyncio.run(_demo(root, host, port))
    except OSError as exc:
        print(f"monitor demo: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"monitor demo: bad config: {exc}", file=sys.stderr)
        return 2
    return 0


def demo_settings(ws: Workspace, host: str, port: int, service_port: int) -> Settings:
    """Console settings for a demo workspace; MONITOR_* environment overrides still apply."""
    service = f"http://127.0.0.1:{service_port}"  # the stand-in plays the webhook service and the backend
    raw = {
        "server": {"host": host, "port": port},
        "sources": {"database": f"sqlite:///{ws.db_path.absolute()}", "agents_dir": str(ws.agents_dir.absolute()),
                    "trees_dir": str(ws.trees_dir.absolute()), "webhook_url": f"{service}/webhook-status",
                    "backend_url": service, "openapi_url": f"{service}/openapi.json"},
        # Brisk intervals so every panel visibly moves within seconds of the first run.
        "channels": {name: {"interval": 1.0, "timeout": 3.0} for name in CHANNEL_NAMES},
        "checks": [
            {"name": "webhook port", "kind": "tcp", "target": f"127.0.0.1:{service_port}"},
            {"name": "webhook health", "kind": "http", "target": f"{service}/health"},
        ],
        # The console's own history lives with the workspace (seeded with a week: history_seed.py).
        "history": {"path": str((ws.root / "history.sqlite").absolute())},
        # Alerts without addresses: they show on the page (the strip, /alerts) when the demo's day has an incident.
        "alerts": [{"name": "source down", "when": "source_down", "for": 10},
                   {"name": "check unhealthy", "when": "check_unhealthy", "for": 10},
                   {"name": "queue stalled", "when": "queue_stalled", "for": 120},
                   {"name": "webhook failing", "channel": WEBHOOK_STATUS, "field": "success_rate", "below": 80,
                    "for": 30}],
        # tac-webbuilder's client can be tried against the demo: README, "Fronting an existing tac-webbuilder".
        "compat": {"tac_webbuilder": {"backend_url": service, "allowed_origins": ["http://localhost:5173"]}},
    }
    return settings_from_mapping(raw, environ=os.environ, label="<demo>")


async def _demo(root: Path, host: str, port: int) -> None:
    rng = random.Random()
    ws = await asyncio.to_thread(create_workspace, root, rng)
    stats, api = WebhookStats(), ApiCatalog()
    service, service_port = await start_webhook_service(stats, api=api)
    stop = asyncio.Event()
    simulator = Simulator(ws, rng, DemoDeliveries(stats, rng), api=api)
    simulation = asyncio.get_running_loop().create_task(simulator.run(stop, period=1.0))
    settings = demo_settings(ws, host, port, service_port)
    await seed_history(settings, rng, ws)
    log.info("demo_started", workspace=str(ws.root.absolute()), webhook_service=f"http://127.0.0.1:{service_port}",
             hint="open the URL of the 'listening' line; Ctrl-C stops")
    try:
        await serve_until_signalled(settings)
    finally:
        stop.set()
        await simulation
        await service.cleanup()
