"""Server-rendered pages, their security headers and the static bundle."""

import re
from pathlib import Path

import pytest

from monitor.app import create_app
from monitor.channels.registry import CHANNEL_NAMES
from monitor.headers import CONTENT_SECURITY_POLICY
from monitor.keys import HISTORY, POLLERS
from monitor.pages import STATIC_DIR

# was 20 KB, then 24; the offline state, wall fitting and sparklines (issue 16), then the alerts strip (issue 17)
SCRIPT_BUDGET_BYTES = 36 * 1024


@pytest.fixture
async def console(aiohttp_client, make_settings):
    """The console with its security headers."""
    return await aiohttp_client(create_app(make_settings()))


@pytest.mark.parametrize("path", ["/", *(f"/{name}" for name in CHANNEL_NAMES)])
async def test_every_page_renders_its_panels_with_a_row_template(console, path):
    response = await console.get(path)
    page = await response.text()
    channels = CHANNEL_NAMES if path == "/" else (path[1:],)
    assert response.status == 200 and response.content_type == "text/html"
    for channel in channels:
        assert f'data-channel="{channel}"' in page
    assert page.count("<template data-row-template>") == len(channels)
    assert page.count('<script type="application/json" data-state>') == len(channels)


async def test_unknown_page_is_404(console):
    response = await console.get("/no-such-panel")
    assert response.status == 404


@pytest.mark.parametrize("path", ["/", "/queue", "/no-such-panel", "/static/live.js"])
async def test_security_headers_on_every_response(console, path):
    response = await console.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "style-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_security_headers_cover_auth_refusals(aiohttp_client, make_settings):
    settings = make_settings({"auth": {"mode": "token", "token": "a-test-token-of-32-characters-x"}})
    console = await aiohttp_client(create_app(settings))
    for path, status in (("/", 303), ("/api/v1/queue", 401)):
        response = await console.get(path, allow_redirects=False)
        assert response.status == status
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def test_pages_carry_no_inline_script_or_style(console):
    page = await (await console.get("/")).text()
    assert "<style" not in page and " style=" not in page and " on" + "click=" not in page
    scripts = page.count("<script")
    states = page.count('<script type="application/json" data-state>')
    assert scripts == states + page.count('<script type="module" src="/static/')


async def test_static_files_are_served_with_their_types(console):
    script = await console.get("/static/live.js")
    style = await console.get("/static/monitor.css")
    assert script.status == 200 and script.content_type in ("text/javascript", "application/javascript")
    assert style.status == 200 and style.content_type == "text/css"
    assert script.headers["Cache-Control"] == "no-cache"  # an upgraded console is picked up on reload


def test_script_bundle_fits_the_budget():
    scripts = list(Path(STATIC_DIR).glob("*.js"))
    assert scripts and sum(path.stat().st_size for path in scripts) <= SCRIPT_BUDGET_BYTES


async def test_markup_from_a_source_is_escaped(console, queue_table):
    queue_table.insert(title="<img src=x onerror=alert(1)>")
    await console.app[POLLERS]["queue"].poll()
    page = await (await console.get("/queue")).text()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_failed_and_blocked_phases_lead_the_first_queue_tab(console, queue_table):
    """What needs someone is the first thing on the queue, not behind the "Completed" label."""
    urgent = queue_table.insert(title="urgent", status="queued", priority=10)
    failed = queue_table.insert(title="broken", status="failed", priority=50, error_message="boom")
    blocked = queue_table.insert(title="stuck", status="blocked", priority=90)
    done = queue_table.insert(title="shipped", status="completed")
    await console.app[POLLERS]["queue"].poll()
    page = await (await console.get("/queue")).text()
    active, completed = page.split('id="queue-active"')[1].split('id="queue-done"')
    assert re.findall(r'<tr data-key="([^"]+)"', active) == [failed, blocked, urgent]
    assert re.findall(r'<tr data-key="([^"]+)"', completed.split("<template")[0]) == [done]


async def test_the_navigation_marks_the_current_page(console):
    queue_page = await (await console.get("/queue")).text()
    assert re.findall(r'<a href="(/[^"]*)" aria-current="page"', queue_page) == ["/queue"]
    dashboard = await (await console.get("/")).text()
    assert re.findall(r'<a href="(/[^"]*)" aria-current="page"', dashboard) == ["/"]


async def test_wall_mode_is_asked_for_by_query_or_set_by_default(make_client):
    console = await make_client()
    assert 'class="wall"' in await (await console.get("/?wall=1")).text()
    assert 'class="wall"' not in await (await console.get("/")).text()
    walled = await make_client({"ui": {"wall": True}})
    assert 'class="wall"' in await (await walled.get("/queue")).text()
    assert 'class="wall"' not in await (await walled.get("/?wall=0")).text()


async def test_a_bad_wall_value_is_refused_with_what_would_do(console):
    response = await console.get("/?wall=maybe")
    assert response.status == 400
    assert "wall: expected 1 or 0" in await response.text()


async def test_without_scripts_the_wall_shows_the_server_s_guess_and_how_many_it_left_out(console, queue_table):
    for position in range(9):
        queue_table.insert(status="failed" if position < 2 else "queued", title=f"phase {position}",
                           queue_position=position)
    await console.app[POLLERS]["queue"].poll()
    page = await (await console.get("/queue?wall=1")).text()
    active = page.split('id="queue-active"')[1].split("</div>")[0]
    assert 'data-fit="2"' in active  # rows past the second are hidden by CSS until the script measures
    assert '<p class="more" data-more>+7 more</p>' in active + page.split('id="queue-active"')[1][:20000]
    assert page.index("phase 0") < page.index("phase 1") < page.index("phase 2")  # failed ones first


async def test_panels_draw_their_trends_from_the_history(console):
    history = console.app[HISTORY]
    now_slot = history.window.slot_index(history.now())
    for back in range(3):
        history.window.put("queue", now_slot - back, {"running": float(back), "depth": 4.0})
    history.window.put("system-status", now_slot, {"check:console": 1.0})
    page = await (await console.get("/")).text()
    running = page.split('data-trend="running"')[1]
    assert '<path d="M97.8 0.0L98.9 12.0L100.0 24.0"/>' in running.split("</dd>")[0]
    assert "90 min: <span data-trend-range>0–2</span>" in running
    assert '<rect x="89" width=".8" height="1" class="ok"/>' in page


async def test_every_fit_a_wall_page_uses_has_its_rule_in_the_stylesheet(console):
    page = await (await console.get("/?wall=1")).text()
    css = (Path(STATIC_DIR) / "monitor.css").read_text()
    fits = set(re.findall(r'data-fit="(\d+)"', page))
    assert fits and all(f'[data-fit="{n}"] > :nth-child(n+{int(n) + 1})' in css for n in fits)
