"""Fixtures of the fault tests (a real console process under faults, hostile clients and restarts):
a webhook service, and witnesses of anything that went wrong unseen."""

from __future__ import annotations

import asyncio
import logging

import pytest
import structlog

# Helpers that assert: let pytest explain their failures too.
pytest.register_assert_rewrite("tests.faults.faults", "tests.faults.witnesses")

from monitor.logs import configure_logging  # noqa: E402
from tests.faults.witnesses import LogCapture  # noqa: E402
from tests.faults.workspace import AGENT_IDS, WebhookService, Workspace  # noqa: E402


@pytest.fixture
def workspace(tmp_path):
    """An ADW workspace with one running queue row and one run's state file."""
    workspace = Workspace(tmp_path / "adw")
    workspace.queue.insert("running", "a row before anything happens")
    workspace.write_state(AGENT_IDS[0], 1)
    return workspace


@pytest.fixture
async def webhook():
    """The demo webhook service on loopback, up; tests may take it down and up again."""
    service = WebhookService()
    await service.up()
    yield service
    await service.down()


@pytest.fixture
async def loop_errors():
    """Everything the event loop's exception handler is handed during the test."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


@pytest.fixture
def console_log():
    """The console's structured log, captured as JSON at debug level, then the previous config restored."""
    saved = structlog.get_config()
    root_handlers = list(logging.getLogger().handlers)
    capture = LogCapture()
    configure_logging("debug", "json", capture.stream)
    yield capture
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = root_handlers
