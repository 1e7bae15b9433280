"""The planned-features channel read from a real SQLite file; expected values worked out by hand."""

from types import SimpleNamespace

import pytest

from monitor.channels import planned_features
from monitor.settings import Settings
from monitor.sources.sqlite import SqliteDatabase
from monitor.state import ChannelState
from tests.tables import PLANNED_FEATURES, insert_sqlite


@pytest.fixture
async def reader(db_path):
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    yield planned_features.make_reader(SimpleNamespace(settings=Settings(), database=db))
    await db.close()


async def published(reader):
    """The channel state as clients see it (NULLs dropped)."""
    state = ChannelState("planned-features", "e")
    state.accept(await reader.read())
    return state.state


async def test_summary_from_rows(db_path, reader):
    insert_sqlite(db_path, "planned_features", PLANNED_FEATURES)
    summary = (await published(reader))["summary"]
    # estimated 4 + 2 + 8 + 3 + 1.5; actual 5.5 + 1.25 + 0.5 + 2; completed 2 of (6 - 1 cancelled)
    assert summary == {
        "total": 6,
        "by_status": {"planned": 1, "in_progress": 1, "completed": 2, "cancelled": 1, "blocked": 1},
        "by_priority": {"high": 2, "medium": 2, "low": 1},
        "by_type": {"session": 1, "feature": 2, "bug": 2, "enhancement": 1},
        "total_estimated_hours": 18.5,
        "total_actual_hours": 9.25,
        "completion_rate": 40.0,
    }


async def test_items_keyed_by_id_with_tags_decoded(db_path, reader):
    insert_sqlite(db_path, "planned_features", PLANNED_FEATURES)
    items = (await published(reader))["items"]
    assert sorted(items) == ["1", "2", "3", "4", "5", "6"]
    assert items["1"] == {
        "id": 1, "item_type": "feature", "title": "Login page", "status": "completed", "priority": "high",
        "estimated_hours": 4.0, "actual_hours": 5.5, "tags": ["ui", "auth"], "completed_at": "2026-02-01T10:00:00Z",
    }
    assert items["3"]["tags"] == [] and items["4"]["tags"] == "not json"
    assert "tags" not in items["5"] and "priority" not in items["5"]


async def test_empty_table_has_zero_counts_and_no_rate(reader):
    assert (await published(reader))["summary"] == {
        "total": 0,
        "by_status": {"planned": 0, "in_progress": 0, "completed": 0, "cancelled": 0},
        "by_priority": {"high": 0, "medium": 0, "low": 0},
        "by_type": {"session": 0, "feature": 0, "bug": 0, "enhancement": 0},
        "total_estimated_hours": 0.0,
        "total_actual_hours": 0.0,
    }


async def test_all_cancelled_means_no_completion_rate(db_path, reader):
    insert_sqlite(db_path, "planned_features", [{"title": "dropped", "status": "cancelled"}])
    summary = (await published(reader))["summary"]
    assert summary["total"] == 1 and summary["by_status"]["cancelled"] == 1
    assert "completion_rate" not in summary


async def test_unchanged_database_is_not_read_again(db_path, reader):
    insert_sqlite(db_path, "planned_features", PLANNED_FEATURES[:2])
    first = await reader.read()
    assert first.summary["total"] == 2
    assert await reader.read() is None
    insert_sqlite(db_path, "planned_features", PLANNED_FEATURES[2:3])
    assert (await reader.read()).summary["total"] == 3
