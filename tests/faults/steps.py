"""The steps of a random run: what kinds there are, how often each comes up, which channels each touches.

A step is ``(kind, a, b)``; ``a`` and ``b`` are small integers the step interprets (which
row, which viewer, which variant), so a run is plain data: hypothesis can shrink it and a
seed can replay it.
"""

from __future__ import annotations

import random

Step = tuple[str, int, int]
SOURCE_STEPS = ("add_row", "change_row", "remove_row", "pause", "write_state", "half_state", "complete_state",
                "remove_agent", "error_line", "toggle_tree", "history", "feature", "task_log",
                "webhook_down", "webhook_up", "webhook_event", "burst")
CONSOLE_STEPS = ("poll", "poll_all", "stop", "start")
CLIENT_STEPS = ("connect", "read", "leave", "vanish", "resume")
STEP_KINDS = SOURCE_STEPS + CONSOLE_STEPS + CLIENT_STEPS
# How often each kind comes up, relative to a source change (2): clients read and resume
# often, the server restarts rarely, so most steps find it up.
WEIGHTS = {**dict.fromkeys(SOURCE_STEPS, 2), "burst": 1, "poll": 6, "poll_all": 4, "stop": 1, "start": 2,
           "connect": 3, "read": 10, "leave": 2, "vanish": 2, "resume": 6}
WEIGHTED_KINDS = tuple(kind for kind in STEP_KINDS for _ in range(WEIGHTS[kind]))
# Which channels each source change can move; a channel is "dirty" until it is polled again.
QUEUE_ROWS, STATE_FILES = ("queue", "adw-monitor"), ("workflows", "adw-monitor")
AFFECTS = {"add_row": QUEUE_ROWS, "change_row": QUEUE_ROWS, "remove_row": QUEUE_ROWS, "pause": ("queue",),
           "write_state": STATE_FILES, "half_state": STATE_FILES, "complete_state": STATE_FILES,
           "remove_agent": STATE_FILES, "error_line": ("adw-monitor",), "toggle_tree": ("adw-monitor",),
           "history": ("workflow-history", "adw-monitor"), "feature": ("planned-features",),
           "task_log": ("adw-monitor",), "webhook_down": ("webhook-status", "system-status"),
           "webhook_up": ("webhook-status", "system-status"),
           "webhook_event": ("webhook-status", "system-status"),  # a failure can make the service degraded
           "burst": ("queue",)}

def random_steps(rng: random.Random, count: int) -> list[Step]:
    """``count`` steps drawn by ``WEIGHTS``, for seeded runs."""
    return [(rng.choice(WEIGHTED_KINDS), rng.randrange(64), rng.randrange(64)) for _ in range(count)]
