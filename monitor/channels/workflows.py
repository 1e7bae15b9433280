"""The workflows channel: one item per agent state file, keyed by adw_id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from monitor.channels.base import ChannelData
from monitor.channels.spec import AGENTS, ChannelSpec
from monitor.sources.agentfiles import ERROR_FIELD
from monitor.sources.resources import Sources
from monitor.sources.statefiles import StateFiles, StateView, state_files

WORKFLOW_FIELDS = (
    "adw_id", "issue_number", "issue_class", "workflow_template", "branch_name", "model_set",
    "github_url", "start_time", "model_used", "nl_input", "plan_file", "worktree_path",
    "backend_port", "frontend_port", "all_adws", "estimated_cost_total", ERROR_FIELD,
)


def build_workflows(states: Mapping[str, Mapping[str, Any]]) -> ChannelData:
    """Summary and items of the workflows channel from state records by adw_id.

    ``by_template`` counts the runs that name a template; a run without one is in
    ``total`` only.
    """
    items = {adw_id: {name: state[name] for name in WORKFLOW_FIELDS if state.get(name) is not None}
             for adw_id, state in states.items()}
    templates = Counter(str(item["workflow_template"]) for item in items.values() if "workflow_template" in item)
    return ChannelData({"total": len(items), "by_template": dict(sorted(templates.items()))}, items)


class StateFilesReader:
    """A channel reader over the state files: rescans cheaply and builds only after a change."""

    def __init__(self, files: StateFiles, build: Callable[[StateView], ChannelData]) -> None:
        self.files = files
        self.build = build
        self._generation: int | None = None

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when no state file, error.log or worktree changed."""
        last, self._generation = self._generation, None  # forgotten unless this read succeeds
        await self.files.scan()
        generation = self.files.generation
        if generation == last:
            self._generation = generation
            return None
        data = self.build(self.files.view)
        self._generation = generation
        return data


def make_reader(sources: Sources) -> StateFilesReader:
    """The workflows channel's reader on the console's shared state-file scanner."""
    return StateFilesReader(state_files(sources), lambda view: build_workflows(view.states))


SPEC = ChannelSpec(name="workflows", title="Workflows", make_reader=make_reader, watches=frozenset({AGENTS}))
