"""A console whose startup fails part-way must close what it had opened.

Otherwise the SQLite connection opened by the first polls keeps its (non-daemon) thread
alive and the process never exits: under systemd it is neither running nor restarted.
"""

import pytest

from monitor.app import create_app
from monitor.keys import SOURCES
from monitor.server import serve_until_signalled
from tests.faults.faults import make_source_dirs


async def test_a_failed_startup_closes_what_it_had_opened(make_settings, tmp_path):
    make_source_dirs(tmp_path)
    settings = make_settings()
    app = create_app(settings)

    async def fail_after_the_first_polls(app):
        raise RuntimeError("startup failed after the first polls")

    app.on_startup.append(fail_after_the_first_polls)
    try:
        with pytest.raises(RuntimeError):
            await serve_until_signalled(settings, app)
        assert app[SOURCES].http is None, "sources left open: their SQLite thread would keep the process alive"
    finally:
        await app[SOURCES].close()  # leave no thread behind, whatever happened
