"""The dashboard in a real browser: server-rendered, then kept live row by row."""

import datetime as dt

from playwright.async_api import expect

from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import POLLERS

XSS_TITLE = "<img src=x onerror=alert(1)>"


async def poll_queue(client) -> None:
    await client.app[POLLERS]["queue"].poll()


def titles(watched, group: str = "queue-active"):
    return watched.page.locator(f"#{group} [data-rows] > [data-key] [data-field=title]")


async def test_dashboard_renders_every_panel_from_server_state_without_javascript(make_client, queue_table, open_page):
    # The hopper's meaning: a lower priority value is more urgent (10 urgent … 90 background).
    background = queue_table.insert(title="background", priority=90, queue_position=1)
    urgent = queue_table.insert(title="urgent", priority=10, queue_position=2)
    done = queue_table.insert(title="shipped", status="completed", queue_position=3)
    client = await make_client()
    watched = await open_page(str(client.make_url("/")), javascript=False)
    panels = watched.page.locator("[data-channel]")
    assert await panels.evaluate_all("els => els.map(el => el.dataset.channel)") == list(CHANNEL_NAMES)
    rows = watched.page.locator("#queue-active [data-rows] > [data-key]")
    assert await rows.evaluate_all("els => els.map(el => el.dataset.key)") == [urgent, background]
    await expect(titles(watched)).to_have_text(["urgent", "background"])
    await expect(titles(watched, "queue-done")).to_have_text(["shipped"])
    assert await watched.page.locator(f'[data-key="{done}"] [data-field=status]').text_content() == "completed"
    await expect(watched.panel("queue").locator("[data-connection]")).to_have_text("offline")
    assert watched.problems == []


async def test_database_changes_reach_the_open_page_in_order_without_reload(client, queue_table, open_page):
    first = queue_table.insert(title="first", queue_position=1)
    second = queue_table.insert(title="second", queue_position=2)
    await poll_queue(client)
    watched = await open_page(str(client.make_url("/")))
    await watched.expect_connection("queue", "live")
    await watched.page.locator(f'[data-key="{first}"]').evaluate("row => { row.dataset.probe = 'untouched' }")

    urgent = queue_table.insert(title="urgent", priority=10, queue_position=3)  # default priority is 50
    await poll_queue(client)
    await expect(titles(watched)).to_have_text(["urgent", "first", "second"])
    queue_table.update(second, priority=5)
    await poll_queue(client)
    await expect(titles(watched)).to_have_text(["second", "urgent", "first"])
    queue_table.delete(urgent)
    await poll_queue(client)
    await expect(titles(watched)).to_have_text(["second", "first"])
    await expect(watched.page.locator(f'[data-key="{urgent}"]')).to_have_count(0)
    assert await watched.page.locator(f'[data-key="{first}"]').get_attribute("data-probe") == "untouched"
    assert watched.problems == []


async def test_a_finished_row_moves_to_the_completed_tab(client, queue_table, open_page):
    row = queue_table.insert(title="almost done", status="running")
    await poll_queue(client)
    watched = await open_page(str(client.make_url("/")))
    await watched.expect_connection("queue", "live")
    queue_table.update(row, status="completed")
    await poll_queue(client)
    done_tab = watched.page.get_by_role("tab", name="Completed")
    await done_tab.click()
    await expect(done_tab).to_have_attribute("aria-selected", "true")
    await expect(titles(watched, "queue-done")).to_have_text(["almost done"])
    status = watched.page.locator(f'[data-key="{row}"] [data-field=status]')
    await expect(status).to_have_attribute("data-value", "completed")
    assert watched.problems == []


async def test_a_source_failure_shows_on_its_own_panel_only(client, queue_table, db_path, open_page):
    queue_table.insert(title="still shown")
    await poll_queue(client)
    watched = await open_page(str(client.make_url("/")))
    await watched.expect_connection("queue", "live")
    others_before = [panel for panel in await watched.contents() if panel["channel"] != "queue"]
    db_path.unlink()
    await poll_queue(client)
    queue_error = watched.panel("queue").locator("[data-meta-error]")
    await expect(queue_error).to_be_visible()
    await expect(queue_error).to_contain_text("database file not found")
    await expect(watched.panel("queue")).to_have_attribute("data-source", "error")
    await expect(titles(watched)).to_have_text(["still shown"])  # the last good state stays
    others_after = [panel for panel in await watched.contents() if panel["channel"] != "queue"]
    assert others_after == others_before
    assert not any("database file not found" in panel["error"] for panel in others_after)
    assert watched.problems == []


async def test_markup_in_a_title_is_shown_as_text_and_never_runs(client, queue_table, open_page):
    rendered = queue_table.insert(title=XSS_TITLE + " rendered", queue_position=1)
    await poll_queue(client)
    watched = await open_page(str(client.make_url("/")))
    await watched.expect_connection("queue", "live")
    live = queue_table.insert(title=XSS_TITLE + " live", queue_position=2)
    await poll_queue(client)
    for key, suffix in ((rendered, "rendered"), (live, "live")):
        title = watched.page.locator(f'[data-key="{key}"] [data-field=title]')
        await expect(title).to_have_text(f"{XSS_TITLE} {suffix}")
        await expect(title).to_be_visible()
    assert await watched.panel("queue").locator("img").count() == 0
    assert watched.dialogs == []
    assert watched.problems == []


async def test_paused_updates_wait_and_apply_on_resume(client, queue_table, open_page):
    queue_table.insert(title="before pause", queue_position=1)
    await poll_queue(client)
    watched = await open_page(str(client.make_url("/")))
    await watched.expect_connection("queue", "live")
    pause = watched.page.get_by_role("button", name="Pause live updates")
    await pause.focus()
    await watched.page.keyboard.press("Enter")
    await expect(pause).to_have_attribute("aria-pressed", "true")
    queue_table.insert(title="during pause", queue_position=2)
    await poll_queue(client)
    await expect(watched.page.locator("[data-pause-note]")).to_have_text("Paused: 1 update waiting")
    await expect(titles(watched)).to_have_text(["before pause"])
    await pause.click()
    await expect(pause).to_have_attribute("aria-pressed", "false")
    await expect(titles(watched)).to_have_text(["before pause", "during pause"])
    await expect(watched.page.locator("[data-announcer]")).to_have_text("Phase queue: 1 added")
    assert watched.problems == []


async def test_route_search_and_method_filter_narrow_the_rows(client, open_page):
    watched = await open_page(str(client.make_url("/routes")))
    await watched.expect_connection("routes", "live")
    showing = watched.panel("routes").locator("[data-showing]")
    total = await watched.panel("routes").locator("[data-rows] > [data-key]").count()
    await expect(showing).to_have_text(f"showing {total} of {total} routes")
    await watched.page.get_by_label("Method").select_option("POST")
    visible = watched.panel("routes").locator("[data-rows] > [data-key]:visible [data-field=method]")
    await expect(visible.first).to_have_text("POST")
    assert set(await visible.all_text_contents()) == {"POST"}
    await watched.page.get_by_label("Search").fill("logout")
    await expect(showing).to_have_text(f"showing 1 of {total} routes")
    paths = watched.panel("routes").locator("[data-rows] > [data-key]:visible [data-field=path]")
    await expect(paths).to_have_text(["/logout"])
    assert watched.problems == []


async def test_a_change_is_marked_and_a_removed_row_leaves(client, queue_table, open_page):
    """A changed row and figure are highlighted for a few seconds; a removed row fades out and is gone."""
    keep = queue_table.insert(title="stays", queue_position=1)
    going = queue_table.insert(title="goes", queue_position=2)
    await poll_queue(client)
    watched = await open_page(f"http://127.0.0.1:{client.port}/")
    await watched.expect_connection("queue", "live")
    rows = watched.panel("queue").locator("#queue-active [data-rows] > [data-key]")
    await expect(rows).to_have_count(2)
    assert await watched.panel("queue").locator("[data-changed]").count() == 0  # the first snapshot is no change
    queue_table.update(keep, status="ready")
    queue_table.delete(going)
    await poll_queue(client)
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-changed", "")
    await expect(watched.panel("queue").locator("[data-summary='by_status.ready']")).to_have_attribute(
        "data-changed", "")
    await expect(watched.panel("queue").locator("[data-leaving]")).to_have_count(0)  # faded, then removed
    await expect(rows.first).not_to_have_attribute("data-changed", "", timeout=10_000)  # the mark goes
    assert watched.problems == []


async def test_times_say_how_long_ago_and_their_zone_on_hover(client, queue_table, open_page):
    queue_table.insert(title="aware", queue_position=1, updated_at="2026-03-01T11:55:00+00:00")
    queue_table.insert(title="naive", queue_position=2, updated_at="2026-03-01 09:00:00")  # read as UTC
    await poll_queue(client)

    async def frozen(page):
        await page.clock.install(time=dt.datetime(2026, 3, 1, 12, 0, 30, tzinfo=dt.UTC))

    watched = await open_page(f"http://127.0.0.1:{client.port}/", before=frozen)
    await watched.expect_connection("queue", "live")
    times = watched.panel("queue").locator("#queue-active [data-field=updated_at]")
    await expect(times).to_have_text(["2026-03-01 11:55", "2026-03-01 09:00"])  # the absolute time stays
    await watched.page.clock.run_for(1_000)
    await expect(times.nth(0)).to_have_attribute("data-ago", "5 min ago")
    await expect(times.nth(1)).to_have_attribute("data-ago", "3 h ago")
    assert "(2026-03-01T11:55:00+00:00)" in await times.nth(0).get_attribute("title")
    assert watched.problems == []
