"""The long seeded convergence run: many random trials, each replayable from its seed.

    python -m soak.convergence [--trials 200] [--steps 150] [--seed 1]

Each trial builds a fresh ADW workspace and console, runs ``--steps`` random steps
(source changes, polls, restarts, connects, reads, leaves, vanishes, resumes in every
mode), settles, and compares every client with the broker and with the sources. Prints
one line per failing trial and a JSON summary; exits 1 when any trial had a mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from monitor.logs import configure_logging
from tests.faults.scenario import run_trial
from tests.faults.steps import random_steps


async def run(trials: int, steps: int, first_seed: int) -> dict:
    """Run the trials; return the totals."""
    totals = {"trials": 0, "steps": 0, "comparisons": 0, "mismatches": 0, "failed_seeds": []}
    kinds, received = Counter(), Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="convergence-") as scratch:
        for seed in range(first_seed, first_seed + trials):
            report = await run_trial(Path(scratch) / f"seed{seed}", random_steps(random.Random(seed), steps))
            totals["trials"] += 1
            totals["steps"] += steps
            totals["comparisons"] += report.comparisons
            kinds.update(report.steps)
            received.update(report.received)
            if report.mismatches:
                totals["mismatches"] += len(report.mismatches)
                totals["failed_seeds"].append(seed)
                print(f"seed {seed}: {report.mismatches[:5]}", file=sys.stderr)
    totals["seconds"] = round(time.monotonic() - started, 1)
    totals["steps_by_kind"] = dict(sorted(kinds.items()))
    totals["received"] = dict(sorted(received.items()))
    return totals


def quiet_logs() -> None:
    """Only warnings and errors: a long run logs every socket otherwise."""
    configure_logging("warning", "console", sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the summary; 1 when anything mismatched."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1, help="seed of the first trial; trial i uses seed + i")
    args = parser.parse_args(argv)
    quiet_logs()
    totals = asyncio.run(run(args.trials, args.steps, args.seed))
    print(json.dumps(totals, indent=2))
    return 1 if totals["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
