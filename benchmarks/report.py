"""The machine description, the medians over rounds, and the results table (markdown and JSON)."""

from __future__ import annotations

import math
import os
import platform
import statistics
from importlib import metadata
from pathlib import Path

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


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _triple(m: dict, prefix: str) -> str:
    if f"{prefix}.p50_ms" not in m:
        return "not delivered" if f"{prefix}.clients" in m else "not measured"
    return " / ".join(_fmt(m.get(f"{prefix}.p{q}_ms"), 0) for q in (50, 95, 99))


def rows(console: dict, baseline: dict, plan: dict) -> list[tuple[str, str, str, str]]:
    """(metric, target, console, baseline) rows of the results table."""
    table, largest = [], max(plan["steps"])
    for step in plan["steps"]:
        target = "≤ 20 KB at 10,000" if step == largest else ""
        table.append((f"RSS per idle connection at {step:,} (KB)", target,
                      _fmt(console.get(f"rss_per_conn_kb_{step}")), _fmt(baseline.get(f"rss_per_conn_kb_{step}"))))
    for side, label in (("client", "last client has it"), ("server", "server write loop")):
        table.append((f"1 KB fan-out to all {largest:,} clients, {label}: patch / floor (ms)", "",
                      f"{_fmt(console.get(f'fanout_patch_{side}_ms'))} / "
                      f"{_fmt(console.get(f'fanout_floor_{side}_ms'))}",
                      f"{_fmt(baseline.get(f'fanout_patch_{side}_ms'))} / "
                      f"{_fmt(baseline.get(f'fanout_floor_{side}_ms'))}"))
        table.append((f"  ratio to the floor ({label})", "≤ 1.25×" if side == "client" else "",
                      _fmt(console.get(f"fanout_ratio_{side}"), 2) + "×",
                      _fmt(baseline.get(f"fanout_ratio_{side}"), 2) + "×"))
    table.append((f"  a full garbage collection at {largest:,} connections (ms)", "",
                  _fmt(console.get("full_gc_ms")), "—"))
    table.append((f"Idle CPU, {largest:,} connections, heartbeat 30 s, {plan['idle_seconds']:g} s (% of one core)",
                  "≤ 5 % at 10,000",
                  _fmt(console.get("idle_cpu_pct"), 2), _fmt(baseline.get("idle_cpu_pct"), 2)))
    for key, label, target in (("sqlite", "SQLite commit", "p50 ≤ 50, p99 ≤ 250"),
                               ("statefile", "state file rewrite", "p50 ≤ 50, p99 ≤ 250"),
                               ("http", f"polled HTTP (interval {plan['polled_interval']:g} s)",
                                f"≤ {1000 * plan['polled_interval'] + 100:,.0f}")):
        table.append((f"Freshness, {label}, {plan['fresh_clients']:,} clients: p50 / p95 / p99 (ms)", target,
                      _triple(console, f"fresh.{key}"), _triple(baseline, f"fresh.{key}")))
    table.append(("One-row change in the 500-row queue: message / snapshot (bytes)", "",
                  f"{_fmt(console.get('fresh.sqlite.change_frame_bytes'), 0)} / "
                  f"{_fmt(console.get('fresh.sqlite.snapshot_bytes'), 0)}",
                  f"{_fmt(baseline.get('fresh.sqlite.change_frame_bytes'), 0)} / "
                  f"{_fmt(baseline.get('fresh.sqlite.snapshot_bytes'), 0)}"))
    table.append(("  share of the snapshot", "≤ 2 %", _fmt(console.get("bytes_ratio_pct"), 2) + " %",
                  _fmt(baseline.get("bytes_ratio_pct"), 1) + " %"))
    table.append(("  bytes to a socket of another channel, per queue change", "0",
                  _fmt(console.get("unrelated_bytes_per_change"), 0),
                  _fmt(baseline.get("unrelated_bytes_per_change"), 0)))
    table.append(("Other processes' CPU during the rounds (% of one core)", "≈ 0",
                  _fmt(console.get("background_cpu_pct")), _fmt(baseline.get("background_cpu_pct"))))
    table.append(("Connections accepted per second (upgrade done)", "",
                  _fmt(console.get("accept_per_s"), 0), _fmt(baseline.get("accept_per_s"), 0)))
    table.append(("  … with the 500-row snapshot received", "",
                  _fmt(console.get("ready_per_s"), 0), _fmt(baseline.get("ready_per_s"), 0)))
    return table


def render_markdown(results: dict, host: dict, plan: dict) -> str:
    """The results table with the machine and the plan, as markdown."""
    console, baseline = medians(results.get("console", [])), medians(results.get("baseline", []))
    lines = ["| metric | target | console | seed replica |", "|---|---|---|---|"]
    lines += [f"| {m} | {t} | {c} | {b} |" for m, t, c, b in rows(console, baseline, plan)]
    machine_line = (f"{host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, Linux {host['kernel']}, "
                    f"Python {host['python']}, aiohttp {host['aiohttp']}, orjson {host['orjson']}; seed replica: "
                    f"FastAPI {host['fastapi']}, Starlette {host['starlette']}, uvicorn {host['uvicorn']}, "
                    f"websockets {host['websockets']}, uvloop {host['uvloop']}")
    rounds = {kind: len(results.get(kind, [])) for kind in ("console", "baseline")}
    return "\n".join([
        "# Benchmark results", "",
        f"Machine: {machine_line}.", "",
        (f"Plan: {plan}. Rounds: {rounds}. Figures are medians over rounds; within a round, fan-out is the "
         "median of its repetitions and freshness the percentiles over every (change, client) pair."), "",
        *lines, ""])
