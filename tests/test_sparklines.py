"""Trends drawn on the server (monitor/sparklines.py): the numbers trend.js must reproduce."""

from monitor.sparklines import health_slots, span_words, spark_caption, spark_path


def test_a_count_is_drawn_from_zero_and_spans_the_box():
    assert spark_path([(0, 0.0), (60, 2.0), (120, 4.0)]) == "M0.0 24.0L50.0 12.0L100.0 0.0"


def test_a_rate_is_drawn_from_its_own_lowest():
    assert spark_path([(0, 80.0), (60, 90.0)], "percent") == "M0.0 24.0L100.0 0.0"


def test_a_gap_stays_a_gap():
    assert spark_path([(0, 1.0), (60, None), (120, 1.0), (180, 0.0)]) == "M0.0 0.0h0M66.7 0.0L100.0 24.0"


def test_a_lone_point_is_a_dot():
    assert spark_path([(0, None), (60, 3.0)]) == "M100.0 0.0h0"  # a count is drawn from zero


def test_a_flat_series_is_drawn_through_the_middle():
    assert spark_path([(0, 5.0), (60, 5.0)], "percent") == "M0.0 12.0L100.0 12.0"


def test_no_known_value_draws_nothing_and_says_so():
    assert spark_path([(0, None), (60, None)]) == ""
    assert spark_path([]) == ""
    assert spark_caption([(0, None)], "") == "no data yet"


def test_the_caption_gives_the_range_in_the_figure_s_format():
    assert spark_caption([(0, 0.5), (60, 12.25)], "money") == "$0.50–$12.25"
    assert spark_caption([(0, 50.0), (60, 50.0)], "percent") == "50.0%"


def test_health_slots_by_value():
    points = [(0, 1.0), (60, 0.5), (120, 0.0), (180, None)]
    assert health_slots(points) == ["ok", "warn", "bad", "none"]


def test_the_span_in_words():
    assert span_words(60.0, 90) == "90 min"
    assert span_words(3600.0, 24) == "24 h"
    assert span_words(86_400.0, 30) == "30 days"
