"""A state file rewritten twice within one tick of the file system's clock must still be read again.

Many file systems (ext4 before Linux 6.13 ticks at the scheduler's jiffy, 1-10 ms; ext3 and
HFS+ at 1 s; FAT at 2 s) give two quick rewrites the same mtime. When the second keeps the
size (``"current_phase": "plan"`` becoming ``"test"``), the (mtime, size, inode) signature
does not move and the console keeps showing the first for as long as the file stays put.
The test pins the mtime to play such a clock on any machine.
"""

import json
import os
import time


from monitor.sources.statefiles import StateFiles


def rewrite_in_tick(path, content: dict, tick_ns: int) -> None:
    """Rewrite in place (same inode, as ADW writers do) with the file system's clock at ``tick_ns``."""
    path.write_text(json.dumps(content))
    os.utime(path, ns=(tick_ns, tick_ns))


async def test_a_same_size_rewrite_within_one_clock_tick_is_seen(tmp_path):
    agent = tmp_path / "agents" / "a1b2c3d4"
    agent.mkdir(parents=True)
    (tmp_path / "trees").mkdir()
    files = StateFiles(tmp_path / "agents", tmp_path / "trees")
    tick = time.time_ns()
    rewrite_in_tick(agent / "adw_state.json", {"current_phase": "plan"}, tick)
    await files.scan()
    rewrite_in_tick(agent / "adw_state.json", {"current_phase": "test"}, tick)
    await files.scan()
    assert files.view.states["a1b2c3d4"]["current_phase"] == "test"
