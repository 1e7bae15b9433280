"""Queries fitted to the columns an installation has."""

import pytest

from monitor.sources.schema import MissingColumns, Query, render, render_all, verbatim

QUEUE = Query("phase_queue", "SELECT adw_id, {current_phase} AS current_phase, SUM({cost:real}) FROM phase_queue"
              " GROUP BY adw_id, {current_phase}", required=("adw_id",))


def test_present_columns_are_read_and_missing_ones_become_typed_nulls():
    assert render(QUEUE, {"phase_queue": frozenset({"adw_id", "current_phase", "cost"})}) == (
        "SELECT adw_id, current_phase AS current_phase, SUM(cost) FROM phase_queue GROUP BY adw_id, current_phase")
    assert render(QUEUE, {"phase_queue": frozenset({"adw_id"})}) == (
        "SELECT adw_id, CAST(NULL AS TEXT) AS current_phase, SUM(CAST(NULL AS REAL)) FROM phase_queue"
        " GROUP BY adw_id, CAST(NULL AS TEXT)")


def test_a_missing_table_or_required_column_names_what_is_missing():
    with pytest.raises(MissingColumns, match="table phase_queue does not exist"):
        render(QUEUE, {})
    with pytest.raises(MissingColumns, match="table phase_queue has no column adw_id"):
        render(QUEUE, {"phase_queue": frozenset({"current_phase"})})


def test_optional_queries_that_cannot_run_are_left_out():
    optional = Query("task_logs", "SELECT adw_id FROM task_logs", required=("adw_id",), optional=True)
    queries = {"queue": QUEUE, "tasks": optional, "raw": verbatim("SELECT {not_a_placeholder} FROM x")}
    rendered = render_all(queries, {"phase_queue": frozenset({"adw_id", "current_phase", "cost"})})
    assert set(rendered) == {"queue", "raw"} and rendered["raw"] == "SELECT {not_a_placeholder} FROM x"


def test_column_names_compare_without_case():
    columns = {"phase_queue": frozenset({"adw_id", "current_phase", "cost"})}
    assert render(QUEUE, columns) == render(Query("PHASE_QUEUE", QUEUE.sql, required=("ADW_ID",)), columns)


def test_only_plain_identifiers_are_accepted():
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        Query("phase_queue; DROP TABLE x", "SELECT 1")
