"""The log destination fails (full disk, vanished pipe): the console must keep serving regardless."""

import errno
import io
import logging

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from monitor.app import create_app
from monitor.logs import configure_logging
from tests.faults.faults import failing_only, fast_polling, make_source_dirs, poll_all, until, watch
from tests.support import connections


class FullDisk(io.TextIOBase):
    """A log destination that fails every write."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def isatty(self) -> bool:
        return False


@pytest.fixture
def unwritable_log():
    """The console logs to a destination that fails every write; the previous config is restored."""
    saved, root_handlers = structlog.get_config(), list(logging.getLogger().handlers)
    configure_logging("debug", "json", FullDisk())
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = root_handlers


async def test_console_keeps_serving_when_its_log_cannot_be_written(make_settings, tmp_path, webhook, queue_table,
                                                                   unwritable_log, loop_errors, caplog):
    make_source_dirs(tmp_path)
    client = TestClient(TestServer(create_app(make_settings(fast_polling(webhook.url)))))
    try:
        await client.start_server()
        live = await watch(client, "queue")
        await webhook.down()
        await poll_all(client)  # a source error is logged
        failing_only(client, ("webhook-status",))
        queue_table.insert("running", "still delivered")
        await until(live, lambda state: state["summary"]["total"] == 1)
        assert (await client.get("/healthz")).status == 200
        await live.ws.close()
        await connections(client, "queue", 0)
    finally:
        await client.close()  # also after a failed start, which `monitor serve` skips (RELIABILITY.md)
    assert loop_errors == []
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
