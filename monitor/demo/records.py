"""The demo's shared vocabulary: work items, failure texts, the workspace layout and record builders.

Both the seeding (`workspace`) and the live simulation (`simulator`, `backlog`) build their
rows and files here, so seeded and live records look alike.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from monitor.demo.schema import ADW_PHASES

# template -> the phases it skips; every template walks the same nine phases in order
TEMPLATES = {
    "adw_sdlc_iso": frozenset(),
    "adw_plan_build_iso": frozenset({"review", "doc"}),
    "adw_plan_build_test_iso": frozenset({"review", "doc", "ship"}),
    "adw_patch_iso": frozenset({"plan", "validate", "doc"}),
}
MODELS = {"base": "claude-sonnet-4-5", "heavy": "claude-opus-4-1"}
PHASE_SCRIPTS = {"plan": "adw_plan_iso", "build": "adw_build_iso", "test": "adw_test_iso",
                 "review": "adw_review_iso", "doc": "adw_document_iso", "ship": "adw_ship_iso"}
_PHASE_COST = {"plan": 0.45, "validate": 0.15, "build": 0.9, "lint": 0.1, "test": 0.6,
               "review": 0.5, "doc": 0.25, "ship": 0.1, "cleanup": 0.05}
REPO_URL = "https://github.com/acme/storefront"
# (title, issue class, method and path of the endpoint the change ships)
WORK_ITEMS = (
    ("Add dark mode toggle to settings", "/feature", "PUT", "/api/settings/theme"),
    ("Fix pagination off-by-one on orders list", "/bug", "GET", "/api/orders"),
    ("Export monthly report as CSV", "/feature", "GET", "/api/reports/export"),
    ("Rate-limit the login endpoint", "/feature", "POST", "/api/auth/login"),
    ("Bump aiohttp and pin transitive deps", "/chore", "GET", "/api/version"),
    ("Handle empty cart at checkout", "/bug", "POST", "/api/checkout"),
    ("Show shipping estimate on product page", "/feature", "GET", "/api/products/{id}/shipping"),
    ("Correct VAT rounding for EU invoices", "/patch", "GET", "/api/invoices/{id}"),
    ("Add webhook retry with backoff", "/feature", "POST", "/api/webhooks/{id}/retry"),
    ("Search products by SKU", "/feature", "GET", "/api/products/search"),
    ("Stale cache after price update", "/bug", "POST", "/api/prices"),
    ("Remove deprecated v1 coupon code path", "/chore", "DELETE", "/api/v1/coupons/{code}"),
    ("Bulk-archive old customer notes", "/feature", "POST", "/api/notes/archive"),
    ("Fix timezone drift in order timestamps", "/patch", "GET", "/api/orders/{id}"),
    ("Add audit log for admin actions", "/feature", "GET", "/api/admin/audit"),
    ("Wishlist items vanish on logout", "/bug", "GET", "/api/wishlist"),
    ("Paginate the reviews endpoint", "/feature", "GET", "/api/products/{id}/reviews"),
    ("Password reset email has broken link", "/bug", "POST", "/api/auth/reset"),
    ("Add inventory low-stock alerts", "/feature", "GET", "/api/inventory/alerts"),
    ("Upgrade Node base image", "/chore", "GET", "/api/health/deep"),
    ("Support gift cards at checkout", "/feature", "POST", "/api/giftcards/redeem"),
    ("Fix N+1 query on category page", "/patch", "GET", "/api/categories/{id}"),
    ("Add feature flags admin page", "/feature", "PATCH", "/api/admin/flags/{name}"),
    ("Returns form rejects valid order ids", "/bug", "POST", "/api/returns"),
)
FAILURES = {
    "plan": "plan: claude CLI exited 1 (context window exceeded)",
    "validate": "validate: plan references missing module app/billing.py",
    "build": "build: 2 type errors remain after 3 fix attempts",
    "lint": "lint: ruff reported 14 errors that are not auto-fixable",
    "test": "test: 3 tests still failing after 3 resolution attempts",
    "review": "review: blocker found, migration missing for new column",
    "doc": "doc: screenshot capture timed out",
    "ship": "ship: PR merge blocked, required check 'e2e' failed",
    "cleanup": "cleanup: git worktree remove failed (directory busy)",
}
TAGS = ("frontend", "backend", "api", "database", "infra", "ux", "security", "testing", "docs")
_PATTERNS = ("api_endpoint", "db_migration", "ui_component", "background_job", "config_change", "test_fixture")


@dataclass(frozen=True)
class Workspace:
    """Where a demo workspace lives: its database file, agent state dirs and worktrees."""

    root: Path
    db_path: Path
    agents_dir: Path
    trees_dir: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        """The workspace layout under `root` (nothing is created)."""
        root = Path(root)
        return cls(root, root / "db" / "database.db", root / "agents", root / "trees")

    def agent_ids(self) -> set[str]:
        """The adw_ids that have an agent state directory."""
        return {path.name for path in self.agents_dir.iterdir() if path.is_dir()}


def utc_iso(moment: datetime) -> str:
    """ISO-8601 UTC text with second precision, as the ADW tables store it."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def new_adw_id(rng: random.Random) -> str:
    """Eight lowercase hex characters, the ADW run id format."""
    return f"{rng.getrandbits(32):08x}"


def slug(title: str) -> str:
    """A branch-friendly form of a title."""
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split()[:5])


def phase_actuals(rng: random.Random, estimate: float) -> tuple[float, int]:
    """An actual (cost in $, tokens used) for a phase estimated at `estimate`."""
    cost = round(estimate * rng.uniform(0.6, 1.5), 4)
    return cost, int(cost / 6.0 * 1_000_000 * rng.uniform(0.9, 1.1))


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """Insert `row` (column -> value) into `table`; return the new rowid."""
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
    return conn.execute(sql, tuple(row.values())).lastrowid


def new_state(ws: Workspace, rng: random.Random, adw_id: str, issue: int, item: tuple,
              start: datetime) -> dict[str, Any]:
    """A fresh adw_state.json record for a run on work `item` that started at `start`."""
    title, issue_class, _, _ = item
    template = "adw_patch_iso" if issue_class == "/patch" else rng.choice(sorted(set(TEMPLATES) - {"adw_patch_iso"}))
    model_set = "heavy" if rng.random() < 0.25 else "base"
    factor = 2.5 if model_set == "heavy" else 1.0
    breakdown = {p: round(_PHASE_COST[p] * factor, 2) for p in ADW_PHASES if p not in TEMPLATES[template]}
    state = {
        "adw_id": adw_id, "issue_number": str(issue),
        "branch_name": f"{issue_class.strip('/')}-issue-{issue}-adw-{adw_id}-{slug(title)}",
        "plan_file": None, "issue_class": issue_class, "worktree_path": str(ws.trees_dir / adw_id),
        "backend_port": 9100 + rng.randrange(15), "frontend_port": 9200 + rng.randrange(15),
        "model_set": model_set, "all_adws": [template],
        "estimated_cost_total": round(sum(breakdown.values()), 2), "estimated_cost_breakdown": breakdown,
        "workflow_template": template, "model_used": MODELS[model_set], "start_time": utc_iso(start),
        "nl_input": f"{title} (see issue #{issue})", "github_url": f"{REPO_URL}/issues/{issue}",
    }
    if rng.random() < 0.4:  # older ADW writers also kept status and current_phase in the file
        state.update(status="pending", current_phase="init")
    return state


def write_state(ws: Workspace, state: dict[str, Any]) -> None:
    """Rewrite a run's adw_state.json in place."""
    path = ws.agents_dir / state["adw_id"] / "adw_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Deliberately not atomic (no temp file + rename): real ADW writers truncate and
    # rewrite in place, so the console must cope with meeting half-written JSON.
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2))


def append_error(ws: Workspace, adw_id: str, when: datetime, message: str) -> None:
    """Append one line to a run's error.log."""
    path = ws.agents_dir / adw_id / "error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{utc_iso(when)} ERROR {message}\n")


def insert_task_log(conn: sqlite3.Connection, state: dict[str, Any], phase: str, status: str, when: datetime,
                    cost: float = 0.0, tokens: int = 0, duration: float | None = None,
                    error: str | None = None) -> None:
    """Record one phase event (started|completed|failed|skipped) of a run in task_logs."""
    insert_row(conn, "task_logs", {
        "adw_id": state["adw_id"], "issue_number": int(state["issue_number"]),
        "workflow_template": state["workflow_template"], "phase_name": phase,
        "phase_number": ADW_PHASES.index(phase) + 1, "phase_status": status, "log_message": f"{phase} {status}",
        "error_message": error, "started_at": utc_iso(when - timedelta(seconds=duration or 0)),
        "completed_at": None if status == "started" else utc_iso(when),
        "duration_seconds": duration, "tokens_used": tokens, "cost_usd": cost,
    })


def history_row(state: dict[str, Any], status: str, phase: str, start: datetime, end: datetime | None,
                cost: float, phase_count: int, now: datetime) -> dict[str, Any]:
    """The workflow_history row (column -> value) of a run described by its state record."""
    return {
        "adw_id": state["adw_id"], "issue_number": int(state["issue_number"]), "nl_input": state["nl_input"],
        "github_url": state["github_url"], "workflow_template": state["workflow_template"],
        "model_used": state["model_used"], "status": status, "start_time": utc_iso(start),
        "end_time": utc_iso(end) if end else None,
        "duration_seconds": round((end - start).total_seconds(), 1) if end else None,
        "error_message": FAILURES[phase] if status == "failed" else None,
        "phase_count": phase_count, "current_phase": phase, "retry_count": 0,
        "actual_cost_total": round(cost, 4), "estimated_cost_total": state["estimated_cost_total"],
        "created_at": utc_iso(start), "updated_at": utc_iso(end or now),
    }


def queue_row(rng: random.Random, now: datetime, phase: tuple[int, int, int, str], status: str,
              position: int, fresh: bool = False) -> dict[str, Any]:
    """A phase_queue row for phase (feature_id, phase_number, issue, title); `fresh` = created now."""
    feature_id, phase_number, issue, title = phase
    created = now if fresh else now - timedelta(hours=rng.uniform(1, 72))
    updated = now if fresh else now - timedelta(minutes=rng.uniform(0, 50))
    return {
        "queue_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "feature_id": feature_id,
        "phase_number": phase_number, "issue_number": issue, "status": status,
        "depends_on_phases": json.dumps(list(range(1, phase_number))),
        "phase_data": json.dumps({
            "title": f"{title} (phase {phase_number})",
            "content": f"Phase {phase_number} of '{title}': implement, test and document the change.",
            "externalDocs": rng.sample(["docs/api.md", "docs/architecture.md", "README.md", "docs/testing.md"], 2),
            "predicted_patterns": rng.sample(_PATTERNS, 2),
        }),
        "created_at": utc_iso(created), "updated_at": utc_iso(updated),
        "error_message": "Dependency phase failed" if status == "blocked" else None,
        "priority": rng.choice((10, 25, 50, 50, 50, 75, 90)), "queue_position": position,
        "ready_timestamp": None if status in ("queued", "blocked") else utc_iso(created + timedelta(minutes=5)),
        "current_phase": "init",
    }


def feature_row(rng: random.Random, now: datetime, item: tuple, status: str, parent_id: int | None,
                session: int | None, fresh: bool = False) -> dict[str, Any]:
    """A planned_features row for work `item` (a feature, bug or enhancement); `fresh` = created now."""
    title, issue_class, _, _ = item
    estimate = rng.choice((0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0))
    created = now if fresh else now - timedelta(days=rng.uniform(0, 20))
    started = min(created + timedelta(hours=2), now) if status in ("in_progress", "completed") else None
    hours = round(estimate * rng.uniform(0.6, 1.6), 1)
    completed = min(started + timedelta(hours=hours), now) if status == "completed" and started else None
    return {
        "item_type": {"/bug": "bug", "/patch": "bug", "/chore": "enhancement"}.get(issue_class, "feature"),
        "title": title, "description": f"{title}. Acceptance criteria in the linked issue.", "status": status,
        "priority": rng.choice(("high", "medium", "medium", "low")), "estimated_hours": estimate,
        "actual_hours": hours if completed else None, "session_number": session,
        "github_issue_number": rng.randrange(100, 400), "parent_id": parent_id,
        "tags": json.dumps(rng.sample(TAGS, rng.randint(1, 3))),
        "completion_notes": "Shipped behind a feature flag." if completed else None,
        "created_at": utc_iso(created), "updated_at": utc_iso(completed or started or created),
        "started_at": utc_iso(started) if started else None, "completed_at": utc_iso(completed) if completed else None,
    }


def work_item_for(text: str) -> tuple[str, str, str, str]:
    """The work item a queue title or nl_input talks about (a stable fallback otherwise)."""
    return next((item for item in WORK_ITEMS if text.startswith(item[0])), WORK_ITEMS[len(text) % len(WORK_ITEMS)])
