"""Rows and summaries built live from each panel's <template> read exactly like server-rendered ones."""

from playwright.async_api import expect

from monitor.channels.base import ChannelData
from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import BROKER

# One record carrying every field any panel shows, with values that exercise each format.
EVERY_FIELD = {
    "title": "Ship <b>it</b>", "status": "running", "queue_position": 3, "priority": 70.0,
    "error_message": "boom", "current_phase": "Test", "issue_number": 42, "adw_id": "abcd1234",
    "updated_at": "2026-01-02T03:04:05+00:00", "github_url": "https://github.com/acme/shop/issues/42",
    "issue_class": "/feature", "workflow_template": "adw_sdlc_iso", "nl_input": "Add a thing",
    "phases_completed": ["Plan", "Validate"], "phases_skipped": ["Lint"], "failed_phase": "Review",
    "phase_progress": 33.3, "pr_number": 17, "last_error": "Traceback …\nRuntimeError: x", "description": "Why",
    "tags": ["ui", "api"], "completion_notes": "Done", "completed_at": "2026-01-03T00:00:00Z",
    "generated_plan": {"total_phases": 2, "total_estimated_hours": 4.5}, "current_cost": 1.005,
    "estimated_cost_total": 2.5, "error_count": 1,
    "is_process_active": True, "kind": "http", "latency_ms": 12.5, "message": "HTTP 200",
    "target": "http://127.0.0.1:8001/health", "branch_name": "feat-42-thing", "start_time": "2026-01-02T03:04:05Z",
    "method": "GET", "path": "/api/things/{id}", "name": "get_thing", "summary": "Get a thing",
    "duration_seconds": 3725.5, "actual_cost_total": 0.125, "item_type": "bug", "estimated_hours": 1.5,
    "actual_hours": 2.0, "github_issue_number": 7, "timestamp": "2026-01-02T03:04:05Z", "issue": 42,
    "error": "bad signature", "state_file_error": "half-written JSON",
}
OTHER_VALUES = {
    **EVERY_FIELD, "status": "failed", "priority": "high", "github_url": "javascript:alert(1)",
    "phases_completed": ["Plan", "Build"], "phases_skipped": [], "is_process_active": False, "error_count": 0,
    "estimated_hours": 3,
    "duration_seconds": 59.4, "current_cost": 0, "latency_ms": 0.04, "in_progress": None,
}
SUMMARY = {
    "total": 2, "paused": True, "running": 1, "queued": 0, "completed": 1, "failed": 1,
    "by_status": {"queued": 1, "running": 2, "in_progress": 3}, "by_template": {"zeta": 1, "alpha": 2},
    "by_model": {"sonnet": 3},
    "by_method": {"POST": 1, "GET": 2}, "by_priority": {"high": 1}, "overall_status": "degraded",
    "healthy": 1, "health_percentage": 50.0, "success_rate": 66.7, "avg_duration_seconds": 59.5,
    "avg_cost": 1.0, "cost_7d": 0.005, "cost_30d": 12.345, "completion_rate": 100.0,
    "total_estimated_hours": 10.25, "total_actual_hours": 0, "status": "healthy", "uptime_seconds": 90061,
    "total_received": 10, "successful": 9,
    "last_successful": {"issue": 5, "workflow": "adw_sdlc_iso", "timestamp": "2026-01-01T00:00:00Z"},
}

# Each element as (tag, sorted attributes, children): attribute order may differ, nothing else may.
# data-changed (a change's mark) and a time's data-ago and title are added live, not content; a health
# bar is drawn from the history on its own schedule (trend.js), not from the row's item.
SHAPES_JS = """(panel) => {
  const live = (el, a) => a.name === 'data-changed' || ('ago' in el.dataset && ['data-ago', 'title'].includes(a.name));
  const attributes = (el) => [...el.attributes].filter((a) => !live(el, a)).map((a) => [a.name, a.value]);
  const shape = (el) => el.hasAttribute('data-healthbar') ? ['trend'] : [el.tagName, attributes(el).sort(),
    [...el.childNodes].map((n) => (n.nodeType === 1 ? shape(n) : n.textContent.replace(/\\s+/g, ' ')))];
  return [...panel.querySelectorAll('[data-rows] > [data-key], [data-summary]')].map(shape);
}"""


def publish_everything(broker, channel: str) -> int:
    """Add two records and a full summary to what ``channel`` shows (a read that found them); return the new seq."""
    state = broker.current(channel).state
    items = {**state["items"], "every-field": EVERY_FIELD, "other-values": OTHER_VALUES}
    broker.publish(channel, ChannelData({**state["summary"], **SUMMARY}, items))
    return broker.current(channel).seq


async def test_live_rows_and_summaries_equal_server_rendered_ones(client, open_page):
    live = await open_page(str(client.make_url("/")))
    for channel in CHANNEL_NAMES:
        await live.expect_connection(channel, "live")
    for channel in CHANNEL_NAMES:
        seq = publish_everything(client.app[BROKER], channel)
        await expect(live.panel(channel)).to_have_attribute("data-seq", str(seq))
    fresh = await open_page(str(client.make_url("/")), javascript=False)
    for channel in CHANNEL_NAMES:
        built_live = await live.panel(channel).evaluate(SHAPES_JS)
        rendered = await fresh.panel(channel).evaluate(SHAPES_JS)
        assert len(built_live) >= 3, channel
        assert built_live == rendered, channel
    assert live.problems == [] and fresh.problems == []
