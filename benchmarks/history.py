"""Realistic ``workflow_history`` (and ``task_logs``) rows for workspaces of any history size.

Every column of the console's schema is filled the way the real ADW system fills it
(tests/real_schemas.py lists the real columns): the prompt, the issue URL, tokens and
costs, and the JSON-text columns (structured input, cost and token breakdowns per phase,
anomaly flags, recommendations, similar runs), about 1.5 KB per row. Rows are inserted
oldest first, as the ADWs append them, so the newest runs have the highest rowids: run 0
(the newest) started an hour ago, each older one ~20 minutes before the next. The newest
``len(live_ids)`` rows are the workspace's live runs (running, or just ended).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from monitor.adw import PHASES, TEMPLATE_PHASES

HISTORY_COLUMNS = (
    "adw_id", "issue_number", "nl_input", "github_url", "gh_issue_state", "workflow_template", "model_used", "status",
    "start_time", "end_time", "duration_seconds", "error_message", "phase_count", "current_phase", "retry_count",
    "worktree_path", "input_tokens", "output_tokens", "total_tokens", "actual_cost_total", "estimated_cost_total",
    "structured_input", "cost_breakdown", "token_breakdown", "anomaly_flags", "optimization_recommendations",
    "similar_workflow_ids", "created_at", "updated_at")
TEMPLATES = ("adw_sdlc_complete_iso", "adw_sdlc_from_build_iso", "adw_plan_build_iso", "adw_lightweight_iso",
             "adw_sdlc_iso", "adw_plan_build_test_review_iso")
MODELS = ("sonnet", "sonnet", "opus", "haiku")
CLASSES = ("/feature", "/bug", "/chore", "/patch")
WORDS = ("cache", "checkout", "invoice", "login", "search", "report", "webhook", "export", "cart", "pagination",
         "timezone", "coupon", "inventory", "audit", "theme", "profile", "upload", "session", "retry", "locale")
ERRORS = ("Test phase failed: {n} tests failing in tests/test_{w}.py", "Build failed: type error in src/{w}/index.ts",
          "Review rejected: {w} screenshots differ from the spec", "Timed out after {n} minutes waiting for CI")
TASK_LOG_RUNS = 1000  # task_logs are written for the newest runs only (the real table is pruned)
BATCH = 5000


def iso(moment: datetime) -> str:
    """UTC ISO-8601 text with second precision, as the ADW tables store it."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def sentence(rng: random.Random, words: int) -> str:
    """``words`` random domain words, capitalised."""
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def _usage(rng: random.Random, phases: Sequence[str]) -> dict[str, tuple[float, int]]:
    return {phase: (round(rng.uniform(0.05, 1.2), 4), rng.randrange(8_000, 240_000)) for phase in phases}


def _json_columns(rng: random.Random, issue: int, title: str, template: str, usage: dict, status: str) -> tuple:
    actual = round(sum(cost for cost, _ in usage.values()), 4)
    estimate = round(actual * rng.uniform(0.7, 1.3), 2)
    tokens = sum(count for _, count in usage.values())
    flags = (["cost_over_estimate"] if actual > 1.2 * estimate else []) + (["workflow_failed"] if status == "failed"
                                                                          else [])
    advice = ["Split the plan into smaller phases to keep cost near the estimate"] if flags else []
    return (
        json.dumps({"issue_number": issue, "issue_class": rng.choice(CLASSES), "title": title, "workflow": template,
                    "model_set": rng.choice(("base", "heavy")), "labels": rng.sample(WORDS, 2)}),
        json.dumps({"estimated_total": estimate, "actual_total": actual,
                    "estimated_per_phase": {p: round(c * rng.uniform(0.7, 1.3), 2) for p, (c, _) in usage.items()},
                    "actual_per_phase": {p: c for p, (c, _) in usage.items()}}),
        json.dumps({"input_tokens": int(tokens * 0.8), "output_tokens": tokens - int(tokens * 0.8),
                    "by_phase": {p: t for p, (_, t) in usage.items()}}),
        json.dumps(flags), json.dumps(advice), estimate, actual, tokens)


def _status(rng: random.Random, live: bool) -> str:
    if live:
        return rng.choice(("running", "running", "completed", "failed"))
    return "failed" if rng.random() < 0.1 else "completed"


def history_row(rng: random.Random, index: int, adw_id: str, now: datetime, live: bool = False) -> tuple:
    """One run's row, in ``HISTORY_COLUMNS`` order (``index`` 0 is the newest; a live run may still run)."""
    issue, template, status = 1_000_000 - index, rng.choice(TEMPLATES), _status(rng, live)
    title = sentence(rng, rng.randrange(6, 14))
    phases = TEMPLATE_PHASES.get(template, PHASES)
    usage = _usage(rng, phases if status != "failed" else phases[:rng.randrange(1, len(phases) + 1)])
    start = now - timedelta(hours=1 + index / 3 + rng.uniform(0, 0.3))
    duration = rng.uniform(300, 4000)
    end = None if status == "running" else start + timedelta(seconds=duration)
    error = rng.choice(ERRORS).format(n=rng.randrange(1, 30), w=rng.choice(WORDS)) if status == "failed" else None
    structured, costs, tokens_json, flags, advice, estimate, actual, tokens = _json_columns(
        rng, issue, title, template, usage, status)
    return (adw_id, issue, f"{title} (see issue #{issue}): {sentence(rng, 30)}",
            f"https://github.com/acme/storefront/issues/{issue}", "closed" if status == "completed" else "open",
            template, rng.choice(MODELS), status, iso(start), iso(end) if end else None,
            round(duration) if end else None, error, len(usage), list(usage)[-1], rng.choice((0, 0, 0, 1, 2)),
            f"/var/lib/adw/trees/{adw_id}", int(tokens * 0.8), tokens - int(tokens * 0.8), tokens, actual, estimate,
            structured, costs, tokens_json, flags, advice, json.dumps([f"{rng.getrandbits(32):08x}" for _ in range(3)]),
            iso(start), iso(end or now))


def history_rows(count: int, live_ids: Sequence[str], now: datetime, seed: int = 11) -> Iterator[tuple]:
    """``count`` rows, oldest first (as runs are appended); the newest belong to ``live_ids`` and may still run."""
    rng = random.Random(seed)
    for index in reversed(range(count)):
        live = index < len(live_ids)
        yield history_row(rng, index, live_ids[index] if live else f"{0x10000000 + index:08x}", now, live)


def fill_history(conn: sqlite3.Connection, count: int, live_ids: Sequence[str] = (),
                 now: datetime | None = None) -> None:
    """Insert ``count`` realistic history rows (in batches) and task logs for the newest runs."""
    now = now or datetime.now(UTC)
    insert = (f"INSERT OR IGNORE INTO workflow_history ({', '.join(HISTORY_COLUMNS)})"
              f" VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})")
    batch: list[tuple] = []
    for row in history_rows(count, live_ids, now):
        batch.append(row)
        if len(batch) == BATCH:
            conn.executemany(insert, batch)
            batch = []
    conn.executemany(insert, batch)
    fill_task_logs(conn, min(count, TASK_LOG_RUNS))


def fill_task_logs(conn: sqlite3.Connection, runs: int) -> None:
    """A started and an ended task log per phase of the ``runs`` newest history rows."""
    history = conn.execute("SELECT adw_id, issue_number, workflow_template, status, start_time FROM workflow_history"
                           " ORDER BY start_time DESC LIMIT ?", (runs,)).fetchall()
    rows = []
    for adw_id, issue, template, status, start in history:
        for number, phase in enumerate(TEMPLATE_PHASES.get(template, PHASES), 1):
            ended = "failed" if status == "failed" and number == 2 else "completed"
            rows.append((adw_id, issue, template, phase, number, "started", f"{phase} started", start))
            rows.append((adw_id, issue, template, phase, number, ended, f"{phase} {ended}", start))
    conn.executemany("INSERT INTO task_logs (adw_id, issue_number, workflow_template, phase_name, phase_number,"
                     " phase_status, log_message, started_at) VALUES (?,?,?,?,?,?,?,?)", rows)
