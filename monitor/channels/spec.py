"""A channel declared as one unit: its name, title, reader, poll interval, queries and watched files."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from monitor.channels.base import Reader
from monitor.settings_table import ChannelSettings
from monitor.sources.resources import Sources
from monitor.sources.schema import Query

# The file sources whose changes can make a channel poll at once (monitor.watch watches them).
AGENTS = "agents"  # the agent state files under agents_dir
TREES = "trees"  # the worktrees under trees_dir
DATABASE = "database"  # the SQLite database file
WATCH_KINDS = frozenset({AGENTS, TREES, DATABASE})
# A name goes into URLs, CSS classes and MONITOR_CHANNELS_<NAME>_* variables (where - becomes _).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one spec per channel
class ChannelSpec:
    """Everything the console knows about one channel; each channel module declares one ``SPEC``."""

    name: str
    title: str
    make_reader: Callable[[Sources], Reader]
    interval: float = ChannelSettings.interval
    queries: Mapping[str, Query] = field(default_factory=dict)
    watches: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        """Freeze ``queries``; reject a name unfit for URLs and variables, and watch kinds nothing watches."""
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"channel name {self.name!r}: expected lower-case words joined by '-'")
        unknown = set(self.watches) - WATCH_KINDS
        if unknown:
            raise ValueError(f"channel {self.name!r}: unknown watch kinds {sorted(unknown)}; "
                             f"expected some of {sorted(WATCH_KINDS)}")
        object.__setattr__(self, "queries", MappingProxyType(dict(self.queries)))
        object.__setattr__(self, "watches", frozenset(self.watches))
