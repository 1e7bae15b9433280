"""The ADW domain, in one place: phases and their order, what each workflow template runs,
statuses, priority order, and what makes a process an ADW.

Facts of the real system (tac-webbuilder): the ADWs write ten phases, capitalised, in
this order; other writers use lower case (``phase_queue.current_phase`` is ``'init'``
until a phase starts, and ``'Completed'`` after some workflows end), so names are
compared case-insensitively everywhere. Channels, templates and the browser (through
the pipeline markup the server renders) all use these definitions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

PHASES = ("Plan", "Validate", "Build", "Lint", "Test", "Review", "Document", "Ship", "Cleanup", "Verify")
_BY_LOWER = {phase.lower(): phase for phase in PHASES}
_ALIASES = {"doc": "Document", "docs": "Document", "documentation": "Document"}

# The phases each workflow template runs, in order; a template not listed runs all ten.
# The single-phase scripts run their one phase; "from_build" starts at Build.
TEMPLATE_PHASES: dict[str, tuple[str, ...]] = {
    "adw_sdlc_complete_iso": PHASES,
    "adw_plan_build_test_iso": PHASES,  # forwards to adw_sdlc_complete_iso
    "adw_sdlc_complete_zte_iso": PHASES[:-1],
    "adw_sdlc_from_build_iso": PHASES[2:],
    "adw_sdlc_iso": ("Plan", "Build", "Lint", "Test", "Review", "Document"),
    "adw_sdlc_zte_iso": ("Plan", "Build", "Test", "Review", "Document", "Ship"),
    "adw_plan_build_iso": ("Plan", "Build"),
    "adw_plan_build_test_review_iso": ("Plan", "Build", "Test", "Review"),
    "adw_plan_build_document_iso": ("Plan", "Build", "Document"),
    "adw_plan_build_review_iso": ("Plan", "Build", "Review"),
    "adw_lightweight_iso": ("Plan", "Build", "Ship"),
    "adw_plan_iso": ("Plan",),
    "adw_plan_iso_optimized": ("Plan",),
    "adw_validate_iso": ("Validate",),
    "adw_build_iso": ("Build",),
    "adw_lint_iso": ("Lint",),
    "adw_test_iso": ("Test",),
    "adw_review_iso": ("Review",),
    "adw_document_iso": ("Document",),
    "adw_ship_iso": ("Ship",),
    "adw_cleanup_iso": ("Cleanup",),
    "adw_verify_iso": ("Verify",),
}

RUN_STATUSES = ("running", "completed", "failed", "paused", "queued")
FINAL_RUN_STATUSES = ("completed", "failed")
QUEUE_STATUSES = ("queued", "ready", "running", "completed", "blocked", "failed")
QUEUE_ATTENTION_STATUSES = ("failed", "blocked")
HISTORY_STATUSES = ("pending", "running", "completed", "failed")
TASK_PHASE_STATUSES = ("started", "completed", "failed", "skipped")
FEATURE_STATUSES = ("planned", "in_progress", "completed", "cancelled")
FEATURE_PRIORITIES = ("high", "medium", "low")
FEATURE_TYPES = ("session", "feature", "bug", "enhancement")

# phase_queue.priority: lower is more urgent; the hopper takes work by (priority, queue_position).
QUEUE_ORDER = "priority queue_position"
PRIORITY_NAMES = ((10, "urgent"), (20, "high"), (50, "normal"), (70, "low"))
DEFAULT_PRIORITY = 50

ADW_ID = re.compile(r"[0-9a-fA-F]{8}")
ADW_SCRIPT = re.compile(r"adw_[A-Za-z0-9_]+\.py")


def canonical_phase(name: object) -> str | None:
    """The phase ``name`` denotes, spelled as the ADWs write it; None for anything else ('init', …)."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    return _BY_LOWER.get(key) or _ALIASES.get(key)


def template_phases(template: object) -> tuple[str, ...]:
    """The phases workflow ``template`` runs, in order (all ten when it is unknown)."""
    if isinstance(template, str):
        return TEMPLATE_PHASES.get(template.strip().lower(), PHASES)
    return PHASES


def in_order(phases: Iterable[str]) -> list[str]:
    """Canonical phase names in pipeline order (unknown names dropped, duplicates merged)."""
    wanted = {canonical_phase(phase) for phase in phases}
    return [phase for phase in PHASES if phase in wanted]


def priority_name(priority: object) -> str | None:
    """The hopper's name for a numeric priority (urgent … background); None when not a number."""
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        return None
    return next((name for limit, name in PRIORITY_NAMES if priority <= limit), "background")


def is_adw_id(text: str) -> bool:
    """True when ``text`` has the ADW run id form: eight hex characters."""
    return ADW_ID.fullmatch(text) is not None


def adw_ids_of_command(argv: Sequence[str]) -> frozenset[str]:
    """The run ids an ADW command line carries (lower case); empty for any other process.

    A process is an ADW when one argument is an ADW script (a file named ``adw_*.py``,
    run directly, by python or through ``uv run``); the run ids are the arguments that
    are exactly an adw_id. A dev server or tool that merely mentions an id in a path
    (``trees/<adw_id>/…``) is not an ADW.
    """
    if not any(ADW_SCRIPT.fullmatch(os.path.basename(arg)) for arg in argv):
        return frozenset()
    return frozenset(arg.lower() for arg in argv if is_adw_id(arg))
