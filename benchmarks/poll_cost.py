"""Poll-cost benchmark: what one poll costs when nothing changed, and after a small change.

Workspace: 500 queue rows, 1,000 agent state files, 10,000 realistic workflow_history rows
(``benchmarks.history``, with task logs for the newest runs) and 200 planned features.
For each file- or database-backed channel it times the reader's ``read()`` — the whole poll
minus publishing — in three situations:
  unchanged: the sources are as at the last read (should skip the full read),
  one row:   one phase_queue / workflow_history / planned_features row was updated,
  one file:  one adw_state.json was rewritten.

``--history 120,50000,200000`` measures instead what one committed change costs as the
history grows, with commits to every table the console reads, not only the queue: in
turn a one-row ``phase_queue`` update, a ``planned_features`` update, a ``task_logs``
insert and a ``workflow_history`` update, and after each, every channel that watches the
database polls once (reads and publishes, as the file watcher makes them; the state
files count as watched, as they are by default). The table gives each channel's poll
time after each kind of commit, the process CPU time of all the polls, and the CPU per
commit over the whole mixed series, per history size.

Run: ``python -m benchmarks.poll_cost [--repeat 30] [--history N,N,...]``; prints a
markdown table and writes benchmarks/results/poll_cost.json (or poll_cost_history.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.history import fill_history
from monitor.channels.registry import channel_spec, channels_watching
from monitor.demo.schema import SQLITE_SCHEMA
from monitor.settings import Settings, settings_from_mapping
from monitor.sources.agentfiles import RACY_WINDOW_NS
from monitor.sources.resources import Sources
from monitor.state import ChannelState

CHANNELS = ("queue", "adw-monitor", "workflows", "workflow-history", "planned-features")


def build_workspace(root: Path, history_rows: int = 10_000, journal: str = "delete") -> tuple[Path, Path, list[str]]:
    """Create the database (journal mode ``journal``) and 1,000 agent directories; return (db, agents, adw ids)."""
    db, agents = root / "database.db", root / "agents"
    ids = [f"{0xa0000000 + i:08x}" for i in range(1000)]
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.executescript(SQLITE_SCHEMA)
    conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', '2026-01-01T00:00:00Z')")
    conn.executemany("INSERT INTO phase_queue (queue_id, status, phase_data, priority, issue_number) "
                     "VALUES (?,?,?,?,?)",
                     [(str(uuid.uuid4()), "queued", json.dumps({"title": f"phase {i}", "content": "x" * 200}), 50, i)
                      for i in range(500)])
    fill_history(conn, history_rows, ids[:40])
    conn.executemany("INSERT INTO planned_features (item_type, title, status, priority, estimated_hours) "
                     "VALUES (?,?,?,?,?)", [("feature", f"feature {i}", "planned", "medium", 3.0) for i in range(200)])
    conn.commit()
    conn.close()
    for adw_id in ids:
        (agents / adw_id).mkdir(parents=True)
        (agents / adw_id / "adw_state.json").write_text(json.dumps(
            {"adw_id": adw_id, "issue_number": "1", "workflow_template": "adw_sdlc_iso", "branch_name": f"b-{adw_id}"}))
    return db, agents, ids


async def settle() -> None:
    """Wait until the files just written are past the racy window, as an installation's mostly are.

    Files younger than ``RACY_WINDOW_NS`` are read again on every scan; measured straight
    after the build, all 1,000 would be, and the numbers would be those of a fresh start.
    """
    await asyncio.sleep(RACY_WINDOW_NS / 1e9 + 0.2)


async def time_read(reader) -> tuple[float, bool]:
    """Seconds one read took, and whether it returned data (False = "unchanged")."""
    started = time.perf_counter()
    data = await reader.read()
    return time.perf_counter() - started, data is not None


COMMITS = {  # one-row commits to each table the console reads, as its writers make them (updated_at set)
    "queue": "UPDATE phase_queue SET priority = ?, updated_at = ? WHERE rowid = 1",
    "planned_features": "UPDATE planned_features SET actual_hours = ?, updated_at = ? WHERE id = 1",
    "task_logs": "INSERT INTO task_logs (adw_id, phase_name, phase_number, phase_status, log_message, started_at)"
                 " VALUES ('a0000000', 'Build', 3, 'started', 'commit ' || ?, ?)",
    # a live run's progress: the newest row
    "workflow_history": "UPDATE workflow_history SET retry_count = ?, updated_at = ?"
                        " WHERE id = (SELECT max(id) FROM workflow_history)",
}
CHANNEL_TABLE = {"queue": "queue", "workflow-history": "workflow_history", "planned-features": "planned_features",
                 "adw-monitor": "queue"}


def commit(db: Path, table: str, n: int) -> None:
    """Commit one row to ``table`` (a key of ``COMMITS``)."""
    with sqlite3.connect(db) as conn:
        conn.execute(COMMITS[table], (n, datetime.now(UTC).isoformat(timespec="seconds")))
    conn.close()


def touch_row(db: Path, channel: str, n: int) -> None:
    """Update one row that ``channel`` reads."""
    commit(db, CHANNEL_TABLE[channel], n)


def touch_file(agents: Path, adw_id: str, n: int) -> None:
    """Rewrite one state file."""
    (agents / adw_id / "adw_state.json").write_text(json.dumps(
        {"adw_id": adw_id, "issue_number": str(n), "workflow_template": "adw_sdlc_iso"}))


async def measure(channel: str, sources: Sources, db: Path, agents: Path, ids: list[str], repeat: int) -> dict:
    """Median and p95 milliseconds per situation for one channel."""
    reader = channel_spec(channel).make_reader(sources)
    await reader.read()
    results: dict[str, list[float]] = {"unchanged": [], "one row": [], "one file": []}
    for n in range(repeat):
        seconds, _ = await time_read(reader)
        results["unchanged"].append(seconds)
        if channel in ("workflows", "adw-monitor"):
            touch_file(agents, ids[n % len(ids)], n + 2)
            results["one file"].append((await time_read(reader))[0])
        if channel != "workflows":
            touch_row(db, channel, n + 2)
            results["one row"].append((await time_read(reader))[0])
    return {case: summarize(values) for case, values in results.items() if values}


def summarize(values: list[float]) -> dict:
    """Median and 95th percentile in milliseconds."""
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[math.ceil(0.95 * len(ordered)) - 1] * 1000, 3), "n": len(ordered)}  # nearest rank


async def run(repeat: int) -> dict:
    """Build the workspace and measure every channel."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db, agents, ids = await asyncio.to_thread(build_workspace, root)
        await settle()
        sources = Sources(_settings(root, db, agents))
        await sources.open()
        try:
            return {channel: await measure(channel, sources, db, agents, ids, repeat) for channel in CHANNELS}
        finally:
            await sources.close()


async def poll_once(reader, state: ChannelState) -> float:
    """Seconds one poll took: the read and the publish of what it read."""
    started = time.perf_counter()
    state.accept(await reader.read())
    return time.perf_counter() - started


async def commit_cost(sources: Sources, db: Path, repeat: int) -> dict:
    """Per kind of commit and per database channel: the poll after it; and all the polls together."""
    # As in the console, whose file watcher (on by default) vouches for the state files.
    sources.state_files.watched = lambda: True
    readers = {name: channel_spec(name).make_reader(sources) for name in channels_watching("database")}
    states = {name: ChannelState(name, "bench") for name in readers}
    for name, reader in readers.items():
        states[name].accept(await reader.read())
    walls = {table: {name: [] for name in readers} for table in COMMITS}
    cpu: dict[str, list[float]] = {table: [] for table in COMMITS}
    for n in range(repeat):
        for table in COMMITS:  # the queue's commits interleaved with every other table's
            commit(db, table, n + 2)
            started = time.process_time()  # the whole process: the database threads included
            for name, reader in readers.items():
                walls[table][name].append(await poll_once(reader, states[name]))
            cpu[table].append(time.process_time() - started)
    result = {table: {**{name: summarize(values) for name, values in walls[table].items()},
                      "CPU, all polls": summarize(cpu[table])} for table in COMMITS}
    every = [seconds for values in cpu.values() for seconds in values]
    mean = round(1000 * sum(every) / len(every), 3)
    result["every commit"] = {"CPU, all polls": summarize(every) | {"mean_ms": mean}}
    return result


async def run_history(sizes: list[int], repeat: int, journal: str = "delete") -> dict:
    """``commit_cost`` in a fresh workspace of each history size."""
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            db, agents, _ = await asyncio.to_thread(build_workspace, root, size, journal)
            await settle()
            sources = Sources(_settings(root, db, agents))
            await sources.open()
            try:
                results[f"{size:,} history rows"] = await commit_cost(sources, db, repeat)
            finally:
                await sources.close()
    return results


def _settings(root: Path, db: Path, agents: Path) -> Settings:
    return settings_from_mapping({"sources": {
        "database": f"sqlite:///{db}", "agents_dir": str(agents), "trees_dir": str(root / "trees"),
        "webhook_url": ""}})


def history_table(results: dict) -> str:
    """The history results as a markdown table: a row per (commit, channel), a column per size, median / p95 ms."""
    sizes = list(results)
    first = results[sizes[0]]
    lines = ["| after a one-row commit to … | channel | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 2) + "|"]
    for table, channels in first.items():
        for channel in channels:
            cells = [f"{results[size][table][channel]['median_ms']} / {results[size][table][channel]['p95_ms']}"
                     for size in sizes]
            lines.append(f"| {table} | {channel} | " + " | ".join(cells) + " |")
    means = [str(results[size]["every commit"]["CPU, all polls"]["mean_ms"]) for size in sizes]
    lines.append("| every commit (mean) | CPU, all polls | " + " | ".join(means) + " |")
    return "\n".join(lines)


def table(results: dict) -> str:
    """The results as a markdown table."""
    lines = ["| channel | unchanged (median / p95 ms) | one row changed | one file changed |", "|---|---|---|---|"]
    for channel, cases in results.items():
        cells = [f"{c['median_ms']} / {c['p95_ms']}" if (c := cases.get(k)) else "—"
                 for k in ("unchanged", "one row", "one file")]
        lines.append(f"| {channel} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--history", help="history sizes, e.g. 120,50000,200000: the cost of one commit as it grows")
    parser.add_argument("--journal", choices=("delete", "wal"), default="delete",
                        help="the database's journal mode (wal: a commit is told apart by the pages it wrote)")
    args = parser.parse_args()
    if args.history:
        results = asyncio.run(run_history([int(size) for size in args.history.split(",")], args.repeat, args.journal))
        text, name = history_table(results), "poll_cost_history.json"
    else:
        results = asyncio.run(run(args.repeat))
        text, name = table(results), "poll_cost.json"
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
