"""Wall mode in Chromium at 1080p and 4K: nothing scrolls, every "+N" is right, attention first, loud when dead."""

import asyncio

import pytest
from playwright.async_api import expect

from monitor.channels.registry import CHANNEL_NAMES
from monitor.history.series import SERIES
from monitor.keys import ALERTS, BROKER, HISTORY, POLLERS
from tests.browser.support import free_port
from tests.browser.test_reconnect import REFUSED_WHILE_DOWN, start_console
from tests.tables import fill_sqlite

SCREENS = {"1080p": {"width": 1920, "height": 1080}, "4K": {"width": 3840, "height": 2160}}
# Per panel: does it scroll or run off the side, and per visible row group how many rows it
# has, how many are shown, the text of its "+N more", and whether the shown rows come first.
LAYOUT_JS = """() => [...document.querySelectorAll('[data-channel]')].map((panel) => ({
  channel: panel.dataset.channel,
  scrolls: panel.scrollHeight > panel.clientHeight + 1,
  overflows: panel.scrollWidth > panel.clientWidth + 1,
  groups: [...panel.querySelectorAll('[data-rows]')].filter((g) => g.getClientRects().length).map((group) => {
    const rows = [...group.children], shown = rows.map((row) => row.getClientRects().length > 0);
    const more = (group.tagName === 'TBODY' ? group.parentElement : group).nextElementSibling;
    return { rows: rows.length, shown: shown.filter(Boolean).length, more: more.hidden ? '' : more.textContent,
             prefix: shown.indexOf(false) < 0 || shown.slice(shown.indexOf(false)).every((s) => !s),
             statuses: rows.filter((_, i) => shown[i])
               .map((row) => row.querySelector('[data-field=status]')?.dataset.value) };
  }),
}))"""


async def busy_console(client, queue_table) -> None:
    """Every table filled, and far more queue rows than a wall can show, the ones needing attention last in."""
    for position in range(40):
        status = ("queued", "running", "completed")[position % 3]
        queue_table.insert(status=status, title=f"phase {position}", queue_position=position)
    queue_table.insert(status="blocked", title="waits on a failed phase", queue_position=90)
    queue_table.insert(status="failed", title="broke late", queue_position=99)
    await asyncio.gather(*(poller.poll() for poller in client.app[POLLERS].values()))


async def open_wall(open_page, url: str, screen: dict, clock: bool = False):
    async def prepare(page):
        await page.set_viewport_size(screen)
        if clock:
            await page.clock.install()

    watched = await open_page(url, before=prepare)
    for channel in CHANNEL_NAMES:
        await watched.expect_connection(channel, "live")
    return watched


@pytest.mark.parametrize("screen", SCREENS.values(), ids=SCREENS.keys())
async def test_no_panel_scrolls_and_every_more_counts_what_it_hides(client, queue_table, db_path, open_page, screen):
    fill_sqlite(db_path)
    await busy_console(client, queue_table)
    watched = await open_wall(open_page, f"http://127.0.0.1:{client.port}/?wall=1", screen)
    await watched.page.evaluate("document.fonts.ready")
    layout = await watched.page.evaluate(LAYOUT_JS)
    assert [p["channel"] for p in layout if p["scrolls"] or p["overflows"]] == []
    for panel in layout:
        for group in panel["groups"]:
            hidden = group["rows"] - group["shown"]
            assert group["more"] == (f"+{hidden} more" if hidden else ""), panel["channel"]
            assert group["prefix"], panel["channel"]  # rows are cut from the end only
    queue = next(p for p in layout if p["channel"] == "queue")["groups"]
    assert len(queue) == 1 and queue[0]["shown"] >= 2  # the wall has no tabs: only what needs attention
    assert queue[0]["statuses"][:3] == ["failed", "failed", "blocked"]  # tables.py brings a failed row too
    assert watched.problems == []


async def test_a_row_that_changes_on_the_wall_is_marked(client, queue_table, open_page):
    changing = queue_table.insert(status="queued", title="about to start", queue_position=1)
    await client.app[POLLERS]["queue"].poll()
    watched = await open_wall(open_page, f"http://127.0.0.1:{client.port}/?wall=1", SCREENS["1080p"])
    queue_table.update(changing, status="failed", error_message="it broke")
    await client.app[POLLERS]["queue"].poll()
    row = watched.panel("queue").locator("[data-rows] > [data-key]").first
    await expect(row).to_have_attribute("data-changed", "")
    await expect(row.locator("[data-field=status]")).to_have_text("failed")
    assert watched.problems == []


async def test_a_dead_console_on_the_wall_is_loud_within_a_heartbeat_and_shows_nothing_green(make_settings, open_page):
    settings = make_settings({"server": {"port": free_port(), "heartbeat": 1.0}})
    runner = await start_console(settings)
    watched = await open_wall(open_page, f"http://127.0.0.1:{settings.server.port}/?wall=1", SCREENS["1080p"],
                              clock=True)
    await runner.cleanup()
    await watched.expect_connection("queue", "reconnecting")
    await watched.page.clock.run_for(3_000)  # heartbeat + 2 s
    await expect(watched.page.locator("[data-offline-banner]")).to_be_visible()
    assert await watched.page.locator("[data-shown=live]").count() == 0
    for channel in CHANNEL_NAMES:
        panel = watched.panel(channel)
        await expect(panel).to_have_attribute("data-stale", "")
        assert "grayscale(1)" in await panel.evaluate("element => getComputedStyle(element).filter")
    assert [problem for problem in watched.problems if not REFUSED_WHILE_DOWN.match(problem)] == []


WIPE_TRENDS_JS = """() => {
  for (const path of document.querySelectorAll('[data-trend] path')) path.setAttribute('d', '');
  for (const svg of document.querySelectorAll('[data-rows] [data-healthbar]')) svg.replaceChildren(); }"""
DRAWN_JS = """() => ({ sparks: [...document.querySelectorAll('[data-trend]')].map((el) =>
    [el.dataset.trend, el.querySelector('path').getAttribute('d'), el.querySelector('[data-trend-range]').textContent]),
  bars: [...document.querySelectorAll('[data-rows] [data-healthbar]')].map((svg) =>
    [...svg.children].map((rect) => rect.getAttribute('class')).join()) })"""
ALL_REDRAWN_JS = """() => [...document.querySelectorAll('[data-trend] path')].every((path) => path.getAttribute('d'))
  && [...document.querySelectorAll('[data-rows] [data-healthbar]')].every((svg) => svg.children.length)"""


async def test_trends_redrawn_live_read_like_the_rendered_ones(make_client, open_page):
    # An hour a slot: no new slot begins while the test runs, so server and script see the same slots.
    client = await make_client({"history": {"step": 3600.0}})
    history = client.app[HISTORY]
    now_slot = history.window.slot_index(history.now())
    checks = list(client.app[BROKER].current("system-status").state["items"])
    for back in range(6):  # every trend of every panel, each check's health in all four states
        values = {spec.name: float((back * 7) % 5) for channel in CHANNEL_NAMES for spec in SERIES[channel]}
        for channel in CHANNEL_NAMES:
            history.window.put(channel, now_slot - back, {name: values[name] for name in
                                                          (spec.name for spec in SERIES[channel])})
        health = {f"check:{key}": (1.0, 0.5, 0.0, None)[(back + i) % 4] for i, key in enumerate(checks)}
        history.window.put("system-status", now_slot - back, {"health_percentage": 50.0, **health})
    watched = await open_wall(open_page, f"http://127.0.0.1:{client.port}/", SCREENS["1080p"], clock=True)
    rendered = await watched.page.evaluate(DRAWN_JS)
    # lines, not dots (cost per day is a day a point: today's alone)
    assert all("L" in path for name, path, _ in rendered["sparks"] if name != "cost_per_day")
    assert rendered["bars"] and all(rendered["bars"])
    await watched.page.evaluate(WIPE_TRENDS_JS)
    await watched.page.clock.run_for(3_600_000)  # a step: every panel fetches its trends again
    await watched.page.wait_for_function(ALL_REDRAWN_JS)
    assert await watched.page.evaluate(DRAWN_JS) == rendered
    assert watched.problems == []


async def test_a_firing_alert_joins_the_strip_and_notifies_a_browser_that_asked(make_client, queue_table, open_page):
    client = await make_client({"alerts": [{"name": "queue has failures", "channel": "queue",
                                            "field": "by_status.failed", "above": 0}]})

    async def prepare(page):
        await page.context.grant_permissions(["notifications"])
        await page.clock.install()
        # Shown notifications are recorded: headless Chromium shows none a test could see.
        await page.add_init_script("window.shown = []; window.Notification = class extends Notification {"
                                   " constructor(title, options) { super(title, options); shown.push(title); } };")

    watched = await open_page(f"http://127.0.0.1:{client.port}/", before=prepare)
    strip = watched.page.locator("[data-alerts]")
    await expect(strip).to_be_hidden()  # nothing fires
    await expect(watched.page.locator("[data-notify]")).to_be_hidden()  # permission is granted already
    await watched.page.clock.run_for(5_000)  # the strip's first look: what fires now is not news
    failed = queue_table.insert(status="failed", title="broke")
    await client.app[POLLERS]["queue"].poll()
    await client.app[ALERTS].evaluate()
    await watched.page.clock.run_for(5_000)
    await expect(strip).to_be_visible()
    await expect(strip.locator("[data-alert]")).to_have_text(
        ["queue has failures queue: by_status.failed = 1 (above 0)"])
    assert await watched.page.evaluate("window.shown") == ["queue has failures"]
    queue_table.delete(failed)
    await client.app[POLLERS]["queue"].poll()
    await client.app[ALERTS].evaluate()
    await watched.page.clock.run_for(5_000)
    await expect(strip).to_be_hidden()
    assert watched.problems == []
