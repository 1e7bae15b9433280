"""The rows of the results tables: one cell per server, from each server's medians over rounds."""

from __future__ import annotations

LABELS = {"console": "console", "console-workers2": "console --workers 2 (+ redis-server)",
          "aiohttp": "plain aiohttp", "websockets": "websockets library", "baseline": "seed replica"}
FRESH_TARGETS = {1000: "last: p50 ≤ 25, p99 ≤ 60", 10000: "last: p99 ≤ 250"}
Row = tuple[str, str, list[str]]
DASH = "—"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, or a dash."""
    return DASH if value is None else f"{value:,.{digits}f}"


def joined(m: dict, keys: list[str], digits: int = 0) -> str:
    """Several figures as ``a / b / c``; a dash when none was measured."""
    if not any(key in m for key in keys):
        return DASH
    return " / ".join(fmt(m.get(key), digits) for key in keys)


def memory_rows(ms: list[dict], plan: dict) -> list[Row]:
    """RSS per idle connection at each step, and the first frame every client receives."""
    largest, table = max(plan["steps"]), []
    for step in plan["steps"]:
        target = "≤ 15 at 10,000" if step == largest else ""
        table.append((f"RSS per idle connection at {step:,} (KB)", target,
                      [fmt(m.get(f"rss_per_conn_kb_{step}")) for m in ms]))
    table.append(("First frame at connect, the queue snapshot (bytes)", "",
                  [fmt(m.get("snapshot_bytes"), 0) for m in ms]))
    table.append((f"Clients held at {largest:,} (upgraded, still open)", "", [fmt(m.get(f"open_{largest}"), 0)
                                                                            for m in ms]))
    return table


def fanout_rows(ms: list[dict], plan: dict) -> list[Row]:
    """The hooked 1 KB fan-out against the floor, seen by the last client and by the server's loop."""
    largest, table = max(plan["steps"]), []
    for side, label in (("client", "last client has it"), ("server", "server write loop")):
        table.append((f"1 KB fan-out to all {largest:,} clients, {label}: change / floor (ms)", "",
                      [joined(m, [f"fanout_patch_{side}_ms", f"fanout_floor_{side}_ms"], 1) for m in ms]))
        table.append((f"  ratio to the floor ({label})", "≤ 1.15×" if side == "client" else "",
                      [fmt(m.get(f"fanout_ratio_{side}"), 2) + "×" if f"fanout_ratio_{side}" in m else DASH
                       for m in ms]))
    table.append((f"1 KB change to all {largest:,} clients, publish call → last client: p50 / p99 over the "
                   "repetitions (ms)", "", [joined(m, ["fanout_published_last_ms.p50", "fanout_published_last_ms.p99"],
                                                   1) for m in ms]))
    table.append(("  … publish call → first client: p50 / p99 (ms)", "",
                  [joined(m, ["fanout_published_first_ms.p50", "fanout_published_first_ms.p99"], 2) for m in ms]))
    table.append((f"  a full garbage collection at {largest:,} connections (ms)", "",
                  [fmt(m.get("full_gc_ms")) for m in ms]))
    table.append(("  clients missing a fan-out / frames not valid JSON", "0 / 0",
                  [joined(m, ["fanout_missing", "fanout_bad_json"]) for m in ms]))
    return table


def idle_rows(ms: list[dict], plan: dict) -> list[Row]:
    """Idle CPU: median, min and max of the windows, and the mean over all of them."""
    largest, windows, seconds = max(plan["steps"]), plan["idle_windows"], plan["idle_window_seconds"]
    return [
        (f"Idle CPU, {largest:,} connections, heartbeat 30 s: median / min / max of {windows} × {seconds:g} s "
         "windows (% of one core)", "median ≤ 3 at 10,000",
         [joined(m, ["idle_median_pct", "idle_min_pct", "idle_max_pct"], 2) for m in ms]),
        (f"  mean over the {windows * seconds:g} s", "", [fmt(m.get("idle_cpu_pct"), 2) for m in ms]),
    ]


def _last_first(m: dict, prefix: str, which: str) -> str:
    return joined(m, [f"{prefix}.{which}_ms.{q}" for q in ("p50", "p95", "p99", "max")])


def cpu_label(plan: dict) -> str:
    """What the server's CPU is charged per: one commit, or a change of two commits."""
    if plan.get("unrelated_commits"):
        return "server CPU per change: a commit to another table, then the queue commit (ms)"
    return "server CPU per commit (ms)"


def sqlite_rows(ms: list[dict], clients: int, plan: dict) -> list[Row]:
    """One-row queue commit → clients: per change (first, last), per client, collections, CPU."""
    p = f"fresh.sqlite_{clients}"
    after = f" ({1000 * plan['unrelated_lead']:g} ms after another table's)" if plan.get("unrelated_commits") else ""
    return [
        (f"SQLite commit{after} → last of {clients:,} clients, per change: p50 / p95 / p99 / max (ms)",
         FRESH_TARGETS.get(clients, ""), [_last_first(m, p, "last") for m in ms]),
        ("  … → first client, per change: p50 / p95 / p99 / max (ms)", "", [_last_first(m, p, "first") for m in ms]),
        ("  … span, first → last client, per change: p50 / p95 / p99 / max (ms)", "",
         [_last_first(m, p, "span") for m in ms]),
        (f"Freshness, SQLite commit, {clients:,} clients, every (change, client): p50 / p95 / p99 (ms)", "",
         [joined(m, [f"{p}.p50_ms", f"{p}.p95_ms", f"{p}.p99_ms"]) for m in ms]),
        ("  changes measured / meeting a full collection; longest full collection met (ms)", "",
         [joined(m, [f"{p}.changes", f"{p}.gc.changes_with_full", f"{p}.gc.full_max_ms"]) for m in ms]),
        (f"  {cpu_label(plan)}", "", [fmt(m.get(f"{p}.server_cpu_per_change_ms")) for m in ms]),
        ("  deliveries missing / frames not valid JSON", "0 / 0",
         [joined(m, [f"{p}.missing", f"{p}.bad_json"]) for m in ms]),
    ]


def fresh_rows(ms: list[dict], plan: dict) -> list[Row]:
    """SQLite freshness at every client count; state file and polled HTTP at the first."""
    table, first = [], plan["fresh_clients"][0]
    for clients in plan["fresh_clients"]:
        table += sqlite_rows(ms, clients, plan)
    for key, label, target in (("statefile", "state file rewrite", ""),
                               ("http", f"polled HTTP (interval {plan['polled_interval']:g} s)",
                                f"≤ {1000 * plan['polled_interval'] + 100:,.0f}")):
        p = f"fresh.{key}_{first}"
        table.append((f"Freshness, {label}, {first:,} clients, every (change, client): p50 / p95 / p99 (ms)", target,
                      [joined(m, [f"{p}.p50_ms", f"{p}.p95_ms", f"{p}.p99_ms"]) for m in ms]))
    return table


def bytes_rows(ms: list[dict], plan: dict) -> list[Row]:
    """What a one-row change sends, to its channel and to another."""
    p = f"fresh.sqlite_{plan['fresh_clients'][0]}"
    return [
        ("One-row change in the 500-row queue: message / snapshot (bytes)", "",
         [joined(m, [f"{p}.change_frame_bytes", f"{p}.snapshot_bytes"]) for m in ms]),
        ("  share of the snapshot", "≤ 2 %",
         [fmt(m.get("bytes_ratio_pct"), 2) + " %" if "bytes_ratio_pct" in m else DASH for m in ms]),
        ("  bytes to a socket of another channel, per queue change", "0",
         [fmt(m.get("unrelated_bytes_per_change"), 0) for m in ms]),
    ]


def run_rows(ms: list[dict]) -> list[Row]:
    """The machine's other load, and the accept rates."""
    return [
        ("Other processes' CPU during the rounds (% of one core)", "≈ 0",
         [fmt(m.get("background_cpu_pct")) for m in ms]),
        ("Connections accepted per second (upgrade done)", "", [fmt(m.get("accept_per_s"), 0) for m in ms]),
        ("  … with the snapshot received and parsed", "", [fmt(m.get("ready_per_s"), 0) for m in ms]),
        ("  … the load generator's CPU meanwhile (% of one core; near 100: the clients set the pace)", "",
         [fmt(m.get("loadgen_cpu_pct_connecting"), 0) for m in ms]),
    ]


def main_rows(ms: list[dict], plan: dict) -> list[Row]:
    """Every row of one history size's table."""
    return (memory_rows(ms, plan) + fanout_rows(ms, plan) + idle_rows(ms, plan) + fresh_rows(ms, plan)
            + bytes_rows(ms, plan) + run_rows(ms))


def history_rows(by_size: dict[str, dict], kind: str, plan: dict) -> list[Row]:
    """One server's SQLite freshness and CPU per commit, one cell per history size."""
    table, sizes = [], list(by_size)
    for clients in plan["fresh_clients"]:
        p = f"fresh.sqlite_{clients}"
        cells = [by_size[size].get(kind, {}) for size in sizes]
        table += [
            (f"commit → last of {clients:,} clients, per change: p50 / p99 / max (ms)",
             FRESH_TARGETS.get(clients, ""), [joined(m, [f"{p}.last_ms.{q}" for q in ("p50", "p99", "max")])
                                              for m in cells]),
            ("  every (change, client): p99 (ms)", "", [fmt(m.get(f"{p}.p99_ms"), 0) for m in cells]),
            (f"  {cpu_label(plan)}", "", [fmt(m.get(f"{p}.server_cpu_per_change_ms")) for m in cells]),
            ("  changes meeting a full collection / longest (ms)", "",
             [joined(m, [f"{p}.gc.changes_with_full", f"{p}.gc.full_max_ms"]) for m in cells]),
        ]
    return table
