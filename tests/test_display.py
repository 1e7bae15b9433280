"""Presentation rules the server shares with the browser script."""

import pytest

from monitor.display import grouped_rows, phase_states, safe_url, show, sorted_items


def keys(pairs):
    return [key for key, _ in pairs]


def test_sort_descending_then_ascending_with_absent_values_last():
    items = {"a": {"priority": 50, "queue_position": 2}, "b": {"priority": 90, "queue_position": 9},
             "c": {"priority": 50, "queue_position": 1}, "d": {"queue_position": 0}, "e": {"priority": 50}}
    assert keys(sorted_items(items, "-priority queue_position")) == ["b", "c", "a", "e", "d"]


def test_sort_by_rank_list_puts_unknown_values_after_known_ones():
    items = {"1": {"priority": "low"}, "2": {"priority": "urgent"}, "3": {"priority": "high"}, "4": {}}
    assert keys(sorted_items(items, "priority=high,medium,low")) == ["3", "1", "2", "4"]


def test_row_groups_split_items_by_status():
    items = {"q": {"status": "queued"}, "f": {"status": "failed"}, "x": {}}
    assert keys(grouped_rows(items, "", "!status=completed,failed,blocked")) == ["q", "x"]
    assert keys(grouped_rows(items, "", "status=completed,failed,blocked")) == ["f"]


@pytest.mark.parametrize("fmt, value, shown", [
    ("money", 1.005, "$1.00"), ("money", 0.125, "$0.13"), ("duration", 3725.5, "1h 02m"),
    ("duration", 59.4, "59s"), ("percent", 100.0, "100.0%"), ("hours", 2, "2.0 h"), ("ms", 0.4, "0 ms"),
    ("time", "2026-01-02T03:04:05Z", "2026-01-02 03:04"), ("issue", 42, "#42"), ("quickwin", 2, "quick win"),
    ("quickwin", 2.5, ""), ("active", False, "no process"), ("errors", 1, "1 error"), ("", 3.0, "3"),
    ("", True, "yes"), ("counts", {"b": 1, "a": 2}, "a 2 · b 1"), ("badge", "in_progress", "in progress"),
])
def test_formats(fmt, value, shown):
    assert show(fmt, value) == shown


def test_pipeline_shows_each_phase_as_the_item_says():
    item = {"phases_completed": ["Build", "Lint"], "phases_skipped": ["Plan", "Validate"], "failed_phase": "Test",
            "current_phase": "Test"}
    assert phase_states(item) == [
        ("Plan", "skipped"), ("Validate", "skipped"), ("Build", "done"), ("Lint", "done"), ("Test", "failed"),
        ("Review", "pending"), ("Document", "pending"), ("Ship", "pending"), ("Cleanup", "pending"),
        ("Verify", "pending")]
    assert dict(phase_states({"current_phase": "Review"}))["Review"] == "current"


def test_only_http_links_are_kept():
    assert safe_url("https://github.com/acme/shop/issues/1") == "https://github.com/acme/shop/issues/1"
    assert safe_url("javascript:alert(1)") == "" and safe_url(None) == ""
