"""The machine description, the medians over rounds, and the results tables (markdown)."""

from __future__ import annotations

import math
import os
import platform
import statistics
from importlib import metadata
from pathlib import Path

from benchmarks.report_rows import DASH, LABELS, history_rows, main_rows

PACKAGES = ("aiohttp", "orjson", "fastapi", "starlette", "uvicorn", "websockets", "uvloop")


def machine() -> dict:
    """CPU model, cores, memory, kernel and the versions that matter to the numbers."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().split()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(int(meminfo[1]) / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(), **versions}


def _flatten(data: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = float(value)
    return flat


def medians(rounds: list[dict]) -> dict[str, float]:
    """Each metric's median over the rounds that measured it."""
    flats = [_flatten(r) for r in rounds]
    keys = sorted({key for flat in flats for key in flat})
    result = {}
    for key in keys:
        values = [flat[key] for flat in flats if key in flat and not math.isnan(flat[key])]
        if values:
            result[key] = statistics.median(values)
    return result


def _table(columns: list[str], rows: list) -> list[str]:
    lines = ["| metric | target | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    return lines + [f"| {metric} | {target} | " + " | ".join(cells) + " |" for metric, target, cells in rows]


def machine_line(host: dict) -> str:
    """The machine and the versions, in one sentence."""
    return (f"{host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, Linux {host['kernel']}, "
            f"Python {host['python']}, aiohttp {host['aiohttp']}, orjson {host['orjson']}, websockets "
            f"{host['websockets']}, uvloop {host['uvloop']} (load generator); seed replica: FastAPI {host['fastapi']}, "
            f"Starlette {host['starlette']}, uvicorn {host['uvicorn']}")


def size_section(size: str, rounds: dict[str, list[dict]], plan: dict) -> list[str]:
    """One history size's table: a column per server, medians over its rounds."""
    kinds = [kind for kind in rounds if rounds[kind]]
    ms = [medians(rounds[kind]) for kind in kinds]
    counts = ", ".join(f"{LABELS.get(kind, kind)} {len(rounds[kind])}" for kind in kinds)
    rows = [row for row in main_rows(ms, plan) if any(cell != DASH for cell in row[2])]  # rows measured
    return [f"## workflow_history: {int(size):,} rows", "", f"Rounds: {counts}.", "",
            *_table([LABELS.get(kind, kind) for kind in kinds], rows), ""]


def history_section(results: dict, plan: dict) -> list[str]:
    """SQLite freshness and CPU per commit across history sizes, for each server that reads the sources."""
    by_size = {size: {kind: medians(rounds) for kind, rounds in per_kind.items() if rounds}
               for size, per_kind in results.items()}
    lines = ["## Across history sizes", ""]
    for kind in dict.fromkeys(kind for per_kind in by_size.values() for kind in per_kind):
        rows = history_rows(by_size, kind, plan)
        if any(cell != DASH for _, _, cells in rows for cell in cells):
            lines += [f"{LABELS.get(kind, kind)}:", "",
                      *_table([f"{int(size):,} rows" for size in by_size], rows), ""]
    return lines


def render_markdown(results: dict, host: dict, plan: dict) -> str:
    """The results tables (one per history size, then across sizes) with the machine and the plan, as markdown."""
    lines = ["# Benchmark results", "", f"Machine: {machine_line(host)}.", "",
             (f"Plan: {plan}. Figures are medians over rounds; within a round, fan-out is the median of its "
              "repetitions, freshness per change is over the changes of the series (first and last client of "
              "each), and \"every (change, client)\" over every pair. Every client JSON-decodes every frame; "
              "freshness runs from the committed change to the parsed frame."), ""]
    for size, rounds in results.items():
        lines += size_section(size, rounds, plan)
    if len(results) > 1:
        lines += history_section(results, plan)
    return "\n".join(lines)
