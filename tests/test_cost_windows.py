"""Cost windows kept sorted between builds give the figures of a row-by-row pass."""

import datetime as dt
import math
import random

from monitor.channels.base import finite_number, parse_time
from monitor.channels.cost_windows import CostIndex, CostWindows, SortedCosts
from monitor.channels.workflow_history import WINDOW_EDGES

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def random_rows(rng: random.Random, count: int) -> list[dict]:
    """Costed runs over 70 days around NOW, some of them unreadable, in no order."""
    rows = []
    for _ in range(count):
        start = NOW - dt.timedelta(seconds=rng.randrange(-86_400, 70 * 86_400))
        text = rng.choice([start.isoformat(), start.replace(tzinfo=None).isoformat(" "),
                           start.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(), "yesterday", None])
        cost = rng.choice([round(rng.uniform(0.001, 3), 4), 0.1, float("nan"), "x", 1e-9])
        rows.append({"start_time": text, "actual_cost_total": cost})
    return rows


def reference(rows: list[dict]) -> list[tuple[dt.datetime, float]]:
    """Each readable row, the way the channel read them before the windows were kept."""
    dated = [(parse_time(row["start_time"]), row["actual_cost_total"]) for row in rows]
    return [(started, float(cost)) for started, cost in dated if started is not None and finite_number(cost)]


def reference_age_out(dated: list[tuple[dt.datetime, float]], now: dt.datetime) -> dt.datetime | None:
    return min((started + window for started, _ in dated for window in WINDOW_EDGES if started + window >= now),
               default=None)


def split(rng: random.Random, rows: list[dict]) -> list[list[dict]]:
    cuts = sorted(rng.sample(range(len(rows) + 1), 2))
    return [rows[:cuts[0]], rows[cuts[0]:cuts[1]], rows[cuts[1]:]]


def test_windows_over_segments_equal_a_row_by_row_pass():
    rng = random.Random(14)
    for _ in range(40):
        rows = random_rows(rng, rng.randrange(0, 300))
        windows, dated = CostWindows([SortedCosts.of(part) for part in split(rng, rows)]), reference(rows)
        now = NOW + dt.timedelta(seconds=rng.randrange(-3 * 86_400, 3 * 86_400))
        for days in (7, 14, 30, 60):
            since, before = now - dt.timedelta(days=days), now - dt.timedelta(days=days // 2)
            assert windows.total(since) == math.fsum(cost for started, cost in dated if started >= since)
            assert sorted(windows.costs_between(since, before)) == sorted(
                cost for started, cost in dated if since <= started < before)
        assert windows.next_age_out(now, WINDOW_EDGES) == reference_age_out(dated, now)


def test_a_start_near_the_end_of_time_never_ages_out():
    far = {"start_time": "9999-12-31T00:00:00+00:00", "actual_cost_total": 1.0}
    windows = CostWindows.of_rows([far])
    assert windows.total(NOW) == 1.0 and windows.next_age_out(NOW, WINDOW_EDGES) is None


def test_a_kept_segment_is_not_parsed_again_and_a_new_one_is():
    index, base, tail = CostIndex(), random_rows(random.Random(1), 50), random_rows(random.Random(2), 5)
    first = index.windows([base, tail])
    fresh_tail = [*tail, {"start_time": NOW.isoformat(), "actual_cost_total": 2.5}]
    second = index.windows([base, fresh_tail])
    assert second.segments[0] is first.segments[0]
    assert second.segments[1] is not first.segments[1]
    assert second.total(NOW) == first.total(NOW) + 2.5


def test_an_equal_but_new_list_is_parsed_anew():
    """Segments are known by identity: an equal list read anew is parsed anew."""
    index, rows = CostIndex(), random_rows(random.Random(3), 20)
    first = index.windows([rows])
    second = index.windows([list(rows)])
    assert second.segments[0] is not first.segments[0]
    assert second.segments[0].starts == first.segments[0].starts


def test_the_same_list_twice_counts_twice():
    rows = [{"start_time": NOW.isoformat(), "actual_cost_total": 1.25}]
    assert CostIndex().windows([rows, rows]).total(NOW - dt.timedelta(days=1)) == 2.5
