"""Browser fixtures: Debian's Chromium, driven by Playwright in the test's own event loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from monitor.app import create_app
from tests.browser.axe_source import AXE_JS, AXE_VERSION, FETCH_COMMAND
from tests.browser.support import WatchedPage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def missing_part(message: str) -> None:
    """Skip for a part this machine lacks, except in CI, where a missing part must fail the run."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_chromium() -> None:
    """Skip without Chromium (fail in CI)."""
    if not CHROMIUM.exists():
        missing_part(f"Chromium not found at {CHROMIUM} (the browser tests never download one)")


@pytest.fixture(scope="session")
def axe_source() -> str:
    """The pinned axe-core script (``axe.min.js``) that ``make test`` fetched; skips without it (fails in CI)."""
    if not AXE_JS.exists():
        missing_part(f"axe-core {AXE_VERSION} not found at {AXE_JS}: run `{FETCH_COMMAND}` first")
    return AXE_JS.read_text(encoding="utf-8")


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
