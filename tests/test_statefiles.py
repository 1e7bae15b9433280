"""The state-file source on real directories: records, error counts, worktrees, faults, cost."""

import asyncio
import json
import os
import shutil
import time

import pytest

from monitor.sources.errorlog import TAIL_BYTES, last_entry
from monitor.sources.statefiles import StateFiles, StateFilesError, is_adw_id
from tests.support import write_state

GOOD = {"adw_id": "1a2b3c4d", "issue_number": "42", "workflow_template": "adw_sdlc_iso", "backend_port": 9101}


@pytest.fixture
def files(agents, trees):
    return StateFiles(agents, trees)


def write_error_log(agents, adw_id, text):
    path = agents / adw_id / "error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_adw_id_form():
    assert is_adw_id("1a2b3c4d") and is_adw_id("ABCDEF12")
    assert not is_adw_id("1a2b3c4") and not is_adw_id("1a2b3c4d5") and not is_adw_id("1a2b3c4g")


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "adws/adw_test_iso.py", line 9, in run\n'
    "    resolve()\n"
    "ValueError: no fix\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "adws/adw_test_iso.py", line 12, in <module>\n'
    "    main()\n"
    "RuntimeError: Test phase failed\n"
)


def test_last_entry_of_an_error_log():
    assert last_entry("") == "" and last_entry("\n  \n") == ""
    assert last_entry("one\n\n  \ntwo\nthree\n") == "three"
    assert last_entry("first\n" + TRACEBACK) == "first\n" + TRACEBACK.replace("\n\n", "\n").strip()
    assert last_entry(TRACEBACK + "later, one line\n") == "later, one line"
    assert last_entry("x" * 5000) == "…" + "x" * 1999


async def test_a_big_error_log_is_read_by_its_tail(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    write_error_log(agents, "1a2b3c4d", "old failure\n" * (3 * TAIL_BYTES // 12) + "Error: the last one\n")
    await files.scan()
    assert files.view.errors == {"1a2b3c4d": "Error: the last one"}


async def test_records_error_counts_and_trees(files, agents, trees):
    write_state(agents, "1a2b3c4d", GOOD)
    write_state(agents, "deadbeef", {"issue_number": "7"})
    write_error_log(agents, "deadbeef", "2026-01-01T00:00:00Z ERROR plan failed\n\nsecond\n")
    write_state(agents, "notes", GOOD)          # not an adw_id: ignored
    write_state(agents, "1a2b3c4d5", GOOD)      # nine hex digits: ignored
    (agents / "cafebabe").write_text("a file, not a dir")
    (agents / "0badf00d").mkdir()               # an agent dir without a state file yet
    (trees / "deadbeef").mkdir()
    (trees / "scratch").mkdir()
    (trees / "feedface").write_text("a file, not a worktree")
    assert await files.scan() is True
    assert files.view.states == {
        "1a2b3c4d": {"adw_id": "1a2b3c4d", "issue_number": "42", "workflow_template": "adw_sdlc_iso",
                     "backend_port": 9101},
        "deadbeef": {"adw_id": "deadbeef", "issue_number": "7"},
    }
    assert files.view.errors == {"deadbeef": "second"}
    assert files.view.trees == {"deadbeef"}


async def test_unknown_fields_pass_through_and_adw_id_comes_from_the_dir(files, agents):
    write_state(agents, "1a2b3c4d", {"adw_id": "ffffffff", "surprise": {"nested": [1, 2]}, "status": "pending"})
    await files.scan()
    assert files.view.states == {"1a2b3c4d": {"adw_id": "1a2b3c4d", "surprise": {"nested": [1, 2]},
                                              "status": "pending"}}


async def test_half_written_file_keeps_the_last_good_record(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    write_state(agents, "1a2b3c4d", json.dumps({**GOOD, "issue_number": "43"})[:30])
    assert await files.scan() is True
    record = files.view.states["1a2b3c4d"]
    error = record.pop("state_file_error")
    assert record == GOOD and error.startswith("invalid JSON: ")
    write_state(agents, "1a2b3c4d", {**GOOD, "issue_number": "43"})
    assert await files.scan() is True
    assert files.view.states["1a2b3c4d"] == {**GOOD, "issue_number": "43"}


async def test_state_file_that_never_parsed_is_not_a_run(files, agents):
    write_state(agents, "1a2b3c4d", "")
    write_state(agents, "deadbeef", "[1, 2]")
    await files.scan()
    assert files.view.states == {}
    write_state(agents, "deadbeef", {"issue_number": "9"})
    assert await files.scan() is True
    assert files.view.states == {"deadbeef": {"adw_id": "deadbeef", "issue_number": "9"}}


async def test_agent_dir_removed_and_added(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    write_error_log(agents, "1a2b3c4d", "boom\n")
    await files.scan()
    shutil.rmtree(agents / "1a2b3c4d")
    write_state(agents, "deadbeef", {"issue_number": "9"})
    assert await files.scan() is True
    assert files.view.states == {"deadbeef": {"adw_id": "deadbeef", "issue_number": "9"}}
    assert files.view.errors == {}


async def test_error_log_growth_is_seen(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    write_error_log(agents, "1a2b3c4d", "one\n")
    await files.scan()
    with open(agents / "1a2b3c4d" / "error.log", "a", encoding="utf-8") as fh:
        fh.write("two\nthree\n")
    assert await files.scan() is True
    assert files.view.errors == {"1a2b3c4d": "three"}


async def test_worktree_coming_and_going_is_a_change(files, agents, trees):
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    (trees / "1a2b3c4d").mkdir()
    assert await files.scan() is True and files.view.trees == {"1a2b3c4d"}
    (trees / "1a2b3c4d").rmdir()
    assert await files.scan() is True and files.view.trees == frozenset()


async def test_missing_trees_dir_means_no_worktrees(agents, tmp_path):
    files = StateFiles(agents, tmp_path / "no-trees")
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    assert files.view.trees == frozenset() and list(files.view.states) == ["1a2b3c4d"]


async def test_vanished_agents_dir_is_an_error_and_recovers(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    shutil.rmtree(agents)
    with pytest.raises(StateFilesError, match=f"agents_dir not found: {agents}"):
        await files.scan()
    assert files.view.states == {}
    agents.mkdir()
    assert await files.scan() is False  # empty but fine, and still empty
    write_state(agents, "1a2b3c4d", GOOD)
    assert await files.scan() is True and files.view.states == {"1a2b3c4d": GOOD}


def age_files(*paths, seconds: int) -> None:
    """Set the mtime of ``paths`` to ``seconds`` ago: a file written long ago, not this instant."""
    past = time.time_ns() - seconds * 1_000_000_000
    for path in paths:
        os.utime(path, ns=(past, past))


async def test_touched_but_unchanged_file_is_read_once_and_is_no_change(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    generation, reads = files.generation, files.files_read
    path = agents / "1a2b3c4d" / "adw_state.json"
    age_files(path, seconds=3600)  # touched, but long enough ago that its mtime is settled
    assert await files.scan() is False
    assert await files.scan() is False
    assert files.files_read == reads + 1 and files.generation == generation


async def test_rescan_of_a_thousand_unchanged_agents_reads_no_file(files, agents):
    for number in range(1000):
        adw_id = f"{number:08x}"
        write_state(agents, adw_id, {"issue_number": str(number)})
        write_error_log(agents, adw_id, "one error\n")
    age_files(*agents.glob("*/*"), seconds=3600)  # unchanged agents are old ones
    assert await files.scan() is True
    assert files.files_read == 2000 and len(files.view.states) == 1000
    generation = files.generation
    assert await files.scan() is False
    assert files.files_read == 2000 and files.generation == generation
    write_state(agents, "000003e7", {"issue_number": "changed"})
    assert await files.scan() is True
    assert files.files_read == 2001 and files.view.states["000003e7"]["issue_number"] == "changed"


def write_phases(agents, adw_id, text):
    path = agents / adw_id / "completed_phases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def nested(depth):
    """A JSON object ``depth`` levels deep (the object itself is level 1)."""
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


async def test_state_file_nested_too_deep_marks_only_its_run(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    write_state(agents, "deadbeef", {"issue_number": "9"})
    await files.scan()
    write_state(agents, "1a2b3c4d", nested(100_000))  # json.loads itself gives up (RecursionError)
    write_state(agents, "deadbeef", nested(65))       # parses, but is deeper than any state file
    assert await files.scan() is True
    for adw_id, good in (("1a2b3c4d", GOOD), ("deadbeef", {"issue_number": "9"})):
        record = files.view.states[adw_id]
        assert record.pop("state_file_error") == "invalid JSON: nested deeper than 64 levels"
        assert record == {**good, "adw_id": adw_id}
    write_state(agents, "deadbeef", nested(64))
    assert await files.scan() is True and "state_file_error" not in files.view.states["deadbeef"]


async def test_state_file_over_the_size_bound_is_not_read(agents, trees):
    files = StateFiles(agents, trees, max_file_bytes=200)
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    reads = files.files_read
    write_state(agents, "1a2b3c4d", {**GOOD, "nl_input": "x" * 200})
    assert await files.scan() is True and files.files_read == reads
    record = files.view.states["1a2b3c4d"]
    assert record.pop("state_file_error").startswith("too large: ")
    assert record == GOOD


async def test_oversized_or_too_deep_phase_tracker_file_is_ignored(agents, trees):
    files = StateFiles(agents, trees, max_file_bytes=200)
    write_state(agents, "1a2b3c4d", GOOD)
    write_phases(agents, "1a2b3c4d", json.dumps({"completed": ["Plan"]}))
    await files.scan()
    write_phases(agents, "1a2b3c4d", json.dumps({"completed": ["Plan"] * 100}))
    await files.scan()
    assert files.view.phases == {"1a2b3c4d": {"completed": ["Plan"]}}  # its last good content
    write_phases(agents, "deadbeef", nested(100))
    write_state(agents, "deadbeef", {"issue_number": "9"})
    await files.scan()
    assert "deadbeef" not in files.view.phases and "deadbeef" in files.view.states


async def test_unusual_json_a_state_file_may_hold(files, agents):
    write_state(agents, "1a2b3c4d", '{"cost": NaN, "big": 18446744073709551616, "text": "half \\ud83d"}')
    write_state(agents, "deadbeef", '{"big": ' + "9" * 5000 + "}")
    write_state(agents, "cafef00d", '{"cost": NaN, "big": 18446744073709551616, "emoji": "\\ud83d\\ude00"}')
    await files.scan()
    assert files.view.states.keys() == {"cafef00d"}  # the other two never parsed: not runs
    record = files.view.states["cafef00d"]
    assert record["big"] == 2 ** 64 and record["cost"] != record["cost"] and record["emoji"] == "😀"


async def test_a_watched_scan_stands_until_the_watcher_reports_a_change(files, agents):
    files.watched = lambda: True
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    write_state(agents, "1a2b3c4d", {**GOOD, "issue_number": "43"})  # a change no watcher reported
    assert await files.scan() is False and files.scans == 1
    files.moved()
    assert await files.scan() is True and files.view.states["1a2b3c4d"]["issue_number"] == "43"


async def test_an_unwatched_scan_always_reads(files, agents):
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    write_state(agents, "1a2b3c4d", {**GOOD, "issue_number": "43"})
    assert await files.scan() is True and files.scans == 2


async def test_a_cancelled_scan_leaves_the_reported_change_to_the_next(files, agents):
    files.watched = lambda: True
    write_state(agents, "1a2b3c4d", GOOD)
    await files.scan()
    write_state(agents, "1a2b3c4d", {**GOOD, "issue_number": "43"})
    files.moved()
    scan = asyncio.create_task(files.scan())
    await asyncio.sleep(0)  # the scan has started its thread
    scan.cancel()
    with pytest.raises(asyncio.CancelledError):
        await scan
    assert await files.scan() is True and files.view.states["1a2b3c4d"]["issue_number"] == "43"
