"""A state file rewritten twice within one tick of the file system's clock must still be read again.

Many file systems (ext4 before Linux 6.13 ticks at the scheduler's jiffy, 1-10 ms; ext3 and
HFS+ at 1 s; FAT at 2 s) give two quick rewrites the same mtime. When the second keeps the
size (``"current_phase": "plan"`` becoming ``"test"``), the (mtime, size, inode) signature
does not move and the console keeps showing the first for as long as the file stays put.
The tests pin the mtime to play such a clock on any machine, and step the wall clock the
source reads by hand.
"""

import json
import os
import time

import pytest

from monitor.sources import agentfiles
from monitor.sources.statefiles import StateFiles


class HandClock:
    """The wall clock as the state-file source reads it, moved only by the test."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def time_ns(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """Replace the source's view of the wall clock (and only its view)."""
    hand = HandClock()
    monkeypatch.setattr(agentfiles, "time", hand)
    return hand


@pytest.fixture
def agent(tmp_path):
    """One agent directory, and the StateFiles that watches it."""
    (tmp_path / "agents" / "a1b2c3d4").mkdir(parents=True)
    (tmp_path / "trees").mkdir()
    return tmp_path / "agents" / "a1b2c3d4" / "adw_state.json", StateFiles(tmp_path / "agents", tmp_path / "trees")


def rewrite_in_tick(path, content: dict, tick_ns: int) -> None:
    """Rewrite in place (same inode, as ADW writers do) with the file system's clock at ``tick_ns``."""
    path.write_text(json.dumps(content))
    os.utime(path, ns=(tick_ns, tick_ns))


async def test_a_same_size_rewrite_within_one_clock_tick_is_seen(agent, clock):
    path, files = agent
    rewrite_in_tick(path, {"current_phase": "plan"}, clock.now)
    await files.scan()
    rewrite_in_tick(path, {"current_phase": "test"}, clock.now)
    await files.scan()  # at once, as after a file event
    assert files.view.states["a1b2c3d4"]["current_phase"] == "test"


async def test_a_same_tick_rewrite_is_seen_by_a_scan_after_the_window(agent, clock):
    path, files = agent
    rewrite_in_tick(path, {"current_phase": "plan"}, clock.now)
    await files.scan()
    rewrite_in_tick(path, {"current_phase": "test"}, clock.now)
    clock.now += 3_000_000_000  # the next interval poll, with no file event to hurry it
    await files.scan()
    assert files.view.states["a1b2c3d4"]["current_phase"] == "test"
