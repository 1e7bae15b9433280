"""``python -m benchmarks.run [--quick]``: measure the console beside its peers, write the table.

Servers: the console, plain aiohttp and the ``websockets`` library (``benchmarks.peers``),
and on request the seed replica. Each round starts a fresh server and a fresh load
generator on one generated workspace, alternating the servers' order between rounds;
with ``--history`` every size gets its own workspace and all its rounds. Every child
process is stopped on the way out, error or not. Results go under
``benchmarks/results/<timestamp>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.loadgen import raise_open_file_limit
from benchmarks.plan import QUICK, Plan
from benchmarks.report import machine, render_markdown
from benchmarks.rounds import Bench, run_round
from benchmarks.servers import STARTERS
from benchmarks.webhook_stub import WebhookStub
from benchmarks.workspace import WorkspaceChanges, create_workspace

RESULTS_DIR = Path(__file__).resolve().parent / "results"


async def run_rounds(bench: Bench, results: dict[str, list[dict]], written: Callable[[], None]) -> None:
    """Every round for every server of the plan, in alternating order; ``written`` after each."""
    plan = bench.plan
    for index in range(1, plan.rounds + 1):
        order = plan.servers if index % 2 else tuple(reversed(plan.servers))
        for kind in (k for k in order if k != "baseline" or index <= plan.baseline_rounds):
            started = time.monotonic()
            results[kind].append(await run_round(bench, kind, index))
            print(f"round {index} {kind}: {time.monotonic() - started:.0f} s", flush=True)
            written()


async def run(plan: Plan, out: Path) -> dict:
    """Every history size, every round, every server; returns {history rows: {server: [round results]}}."""
    raise_open_file_limit()
    results: dict[str, dict[str, list[dict]]] = {}
    stub = WebhookStub()
    await stub.start()
    try:
        for size in plan.history:
            with tempfile.TemporaryDirectory(prefix="monitor-bench-") as root:
                started = time.monotonic()
                workspace = await asyncio.to_thread(create_workspace, Path(root), history_rows=size)
                print(f"workspace with {size:,} history rows: {time.monotonic() - started:.0f} s", flush=True)
                logs = out / f"history-{size}" if len(plan.history) > 1 else out
                results[str(size)] = {kind: [] for kind in plan.servers}
                bench = Bench(plan, WorkspaceChanges(workspace), stub, logs)
                await run_rounds(bench, results[str(size)], lambda: write_outputs(out, results, plan))
    finally:
        await stub.stop()
    return results


def write_outputs(out: Path, results: dict, plan: Plan) -> None:
    """results.json (every round's numbers) and results.md (the tables)."""
    host, plan_dict = machine(), dataclasses.asdict(plan)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"machine": host, "plan": plan_dict, "history": results}, indent=2))
    (out / "results.md").write_text(render_markdown(results, host, plan_dict))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(","))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="benchmark the console against DESIGN §6, beside its peers")
    parser.add_argument("--quick", action="store_true", help="smaller, shorter run (a few minutes)")
    parser.add_argument("--rounds", type=int, help="rounds per server (default: 3, quick: 1)")
    parser.add_argument("--servers", help=f"comma-separated, of {','.join(STARTERS)} (default: console,aiohttp,"
                                          "websockets)")
    parser.add_argument("--phases", default="memory,idle,fanout,fresh", help="which measurements to run")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle CPU measurement")
    parser.add_argument("--idle-windows", type=int, help="idle CPU windows (default 5)")
    parser.add_argument("--idle-window-seconds", type=float, help="length of one idle window (default 30, quick 4)")
    parser.add_argument("--history", type=_ints, help="workflow_history rows, e.g. 120,50000,200000 (default 120)")
    parser.add_argument("--fresh-clients", type=_ints, help="SQLite freshness client counts (default 1000,10000)")
    parser.add_argument("--fresh-changes", type=int, help="one-row commits per client count (default 200)")
    parser.add_argument("--fresh-other-changes", type=int, help="state-file and polled-HTTP changes (default 20)")
    parser.add_argument("--fresh-series-limit", type=float, help="seconds one series of changes may take (600)")
    parser.add_argument("--steps", type=_ints, help="memory steps, the last one also idle and fan-out")
    parser.add_argument("--fanout-repetitions", type=int, help="1 KB fan-outs at the last step (default 9)")
    parser.add_argument("--loadgens", type=_positive, help="load generator processes sharing the clients (default 1)")
    parser.add_argument("--unrelated-commits", action="store_true",
                        help="commit to another table 20 ms before each queue commit")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a console config key (TOML value), e.g. sources.watch_debounce=0.02")
    return parser.parse_args()


def plan_from(args: argparse.Namespace) -> Plan:
    """The quick or full plan with the command line's overrides."""
    plan = QUICK if args.quick else Plan()
    given = {"rounds": args.rounds, "idle_windows": args.idle_windows, "idle_window_seconds": args.idle_window_seconds,
             "history": args.history, "fresh_clients": args.fresh_clients, "fresh_changes": args.fresh_changes,
             "fresh_other_changes": args.fresh_other_changes, "fresh_series_limit": args.fresh_series_limit,
             "steps": args.steps, "fanout_repetitions": args.fanout_repetitions, "loadgens": args.loadgens,
             "servers": tuple(args.servers.split(",")) if args.servers else None}
    plan = dataclasses.replace(plan, **{key: value for key, value in given.items() if value is not None})
    unknown = set(plan.servers) - set(STARTERS)
    if unknown:
        raise SystemExit(f"unknown servers {sorted(unknown)}; choose from {','.join(STARTERS)}")
    return dataclasses.replace(plan, phases=tuple(args.phases.split(",")), console_settings=tuple(args.set),
                               unrelated_commits=args.unrelated_commits,
                               idle_windows=0 if args.no_idle else plan.idle_windows)


def main() -> None:
    """Parse the options and run the suite."""
    plan = plan_from(parse_args())
    out = RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S")
    asyncio.run(run(plan, out))
    print((out / "results.md").read_text())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
