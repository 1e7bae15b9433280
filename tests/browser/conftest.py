"""Browser fixtures: Debian's Chromium, driven by Playwright in the test's own event loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from monitor.app import create_app
from tests.browser.support import WatchedPage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def require_chromium() -> None:
    """Skip without Chromium, except in CI, where a missing browser must fail the run."""
    if CHROMIUM.exists():
        return
    message = f"Chromium not found at {CHROMIUM} (the browser tests never download one)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser():
    """A headless Chromium, closed after the test."""
    require_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def open_page(browser):
    """Open a URL in a fresh browser context (scripts on or off) as a ``WatchedPage``."""
    contexts = []

    async def open_(url: str, javascript: bool = True, before=None) -> WatchedPage:
        context = await browser.new_context(java_script_enabled=javascript, viewport={"width": 1600, "height": 1000})
        contexts.append(context)
        watched = WatchedPage(await context.new_page())
        if before is not None:
            await before(watched.page)
        await watched.page.goto(url)
        return watched

    yield open_
    for context in contexts:
        await context.close()


@pytest.fixture
def make_client(aiohttp_client, make_settings):
    """The console with its security headers, started on loopback with settings overrides."""

    async def make(overrides=None):
        return await aiohttp_client(create_app(make_settings(overrides)))

    return make
