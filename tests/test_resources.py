"""The shared source connections: one HTTP session between open and close, a clear error outside."""

import pytest

from monitor.sources.resources import Sources


async def test_the_session_exists_only_between_open_and_close(make_settings):
    sources = Sources(make_settings())
    with pytest.raises(RuntimeError, match="not open"):
        sources.session()
    await sources.open()
    session = sources.session()
    await sources.open()  # opening again keeps the session it has
    assert sources.session() is session and not session.closed
    await sources.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="not open"):
        sources.session()
    await sources.close()  # closing twice is harmless
