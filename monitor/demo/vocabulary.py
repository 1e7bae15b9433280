"""The demo's shared vocabulary: work items, phase failures, the workspace layout and small helpers.

Both the seeding (`workspace`) and the live simulation (`simulator`, `backlog`) speak it;
the ADW runs themselves are `records`' job.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The orchestrators carry on when one of these fails, and still mark it completed.
NON_CRITICAL = frozenset({"Validate", "Document", "Verify"})
WorkItem = tuple[str, str, str, str]  # (title, issue class, method and path of the endpoint the change ships)
_NAMED_ITEMS: tuple[WorkItem, ...] = (
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
# The same kinds of change on other resources, so that no two pieces of work a day brings need
# share a title: each title is one piece of work (its retries aside) wherever it shows.
_ITEM_PATTERNS: tuple[WorkItem, ...] = (
    ("Add filters to the {r} list", "/feature", "GET", "/api/{r}"),
    ("Export {r} to a spreadsheet", "/feature", "GET", "/api/{r}/export"),
    ("Show change history of {r}", "/feature", "GET", "/api/{r}/{{id}}/history"),
    ("Archive {r} older than a year", "/feature", "POST", "/api/{r}/archive"),
    ("Notify owners when {r} change status", "/feature", "POST", "/api/{r}/{{id}}/notify"),
    ("Restore deleted {r} within 30 days", "/feature", "POST", "/api/{r}/{{id}}/restore"),
    ("Totals on the {r} page lag behind", "/bug", "GET", "/api/{r}/totals"),
    ("Saving {r} with accented names fails", "/bug", "POST", "/api/{r}"),
    ("Double submit creates two {r}", "/bug", "POST", "/api/{r}/submit"),
    ("Speed up the {r} summary query", "/patch", "GET", "/api/{r}/summary"),
    ("Cap the page size of the {r} endpoint", "/patch", "GET", "/api/{r}/page"),
    ("Validate {r} payloads against a schema", "/chore", "POST", "/api/{r}/validate"),
    ("Index {r} by creation date", "/chore", "GET", "/api/{r}/recent"),
)
_RESOURCES = ("invoices", "customers", "shipments", "refunds", "subscriptions", "suppliers", "coupons", "carts",
              "payouts", "warehouses", "tickets", "bundles", "price lists", "loyalty points")
WORK_ITEMS: tuple[WorkItem, ...] = _NAMED_ITEMS + tuple(
    (title.format(r=resource), issue_class, method, path.format(r=resource.replace(" ", "-")))
    for title, issue_class, method, path in _ITEM_PATTERNS for resource in _RESOURCES)
# How long each phase runs, in seconds: about a fifth of a real ADW's, so a run takes five to ten
# minutes and the panels keep moving. Seeded and simulated runs take the same time.
PHASE_SECONDS = {"Plan": (36.0, 96.0), "Validate": (12.0, 24.0), "Build": (60.0, 180.0), "Lint": (12.0, 24.0),
                 "Test": (48.0, 120.0), "Review": (36.0, 72.0), "Document": (24.0, 48.0), "Ship": (12.0, 36.0),
                 "Cleanup": (6.0, 12.0), "Verify": (12.0, 24.0)}
LAUNCH_SECONDS = (3.0, 10.0)  # from the webhook's launch to the orchestrator's first phase
FAILURES = {
    "Plan": "claude CLI exited 1 (context window exceeded)",
    "Validate": "plan references missing module app/billing.py",
    "Build": "2 type errors remain after 3 fix attempts",
    "Lint": "ruff reported 14 errors that are not auto-fixable",
    "Test": "3 tests still failing after 3 resolution attempts",
    "Review": "blocker found, migration missing for new column",
    "Document": "screenshot capture timed out",
    "Ship": "PR merge blocked, required check 'e2e' failed",
    "Cleanup": "git worktree remove failed (directory busy)",
    "Verify": "post-deploy health check returned 502",
}


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

    @property
    def scripts_dir(self) -> Path:
        """Where the stand-in ADW scripts (adws/adw_*.py) live, as in the real repository."""
        return self.root / "adws"

    def agent_ids(self) -> set[str]:
        """The adw_ids that have an agent state directory."""
        return {path.name for path in self.agents_dir.iterdir() if path.is_dir()}


def utc_iso(moment: datetime) -> str:
    """ISO-8601 UTC text with second precision, as the ADW tables store it."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def seconds_between(start: datetime, end: datetime) -> int:
    """end - start in seconds as their `utc_iso` texts read (each cut to the second), so the two agree."""
    return int((end.replace(microsecond=0) - start.replace(microsecond=0)).total_seconds())


def new_adw_id(rng: random.Random) -> str:
    """Eight lowercase hex characters, the ADW run id format."""
    return f"{rng.getrandbits(32):08x}"


def slug(title: str) -> str:
    """A branch-friendly form of a title."""
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split()[:5])


def phase_script(phase: str) -> str:
    """The ADW script that runs `phase` (adw_build_iso for Build)."""
    return f"adw_{phase.lower()}_iso"


def phase_seconds(rng: random.Random, phase: str) -> float:
    """How long one run of `phase` takes (`PHASE_SECONDS`)."""
    return rng.uniform(*PHASE_SECONDS[phase])


def phase_actuals(rng: random.Random, estimate: float) -> tuple[float, int]:
    """An actual (cost in $, tokens used) for a phase estimated at `estimate`."""
    cost = round(estimate * rng.uniform(0.6, 1.5), 4)
    return cost, int(cost / 6.0 * 1_000_000 * rng.uniform(0.9, 1.1))


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """Insert `row` (column -> value) into `table`; return the new rowid."""
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
    rowid = conn.execute(sql, tuple(row.values())).lastrowid
    if rowid is None:  # only a statement that inserted no row leaves it unset
        raise sqlite3.DatabaseError(f"INSERT INTO {table} inserted no row")
    return rowid


def work_item_for(text: str) -> tuple[str, str, str, str]:
    """The work item a queue title or nl_input talks about (a stable fallback otherwise)."""
    return next((item for item in WORK_ITEMS if text.startswith(item[0])), WORK_ITEMS[len(text) % len(WORK_ITEMS)])
