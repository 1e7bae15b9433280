"""The workflows channel built from real state files, through its reader and a real poller."""

import shutil

from monitor.broker import InProcessBroker
from monitor.channels import workflows
from monitor.poller import Poller
from tests.support import write_state

SDLC_RUN = {
    "adw_id": "1a2b3c4d", "issue_number": "101", "branch_name": "feature-issue-101-adw-1a2b3c4d-dark-mode",
    "plan_file": "specs/issue-101-plan.md", "issue_class": "/feature", "worktree_path": "/srv/trees/1a2b3c4d",
    "backend_port": 9101, "frontend_port": 9201, "model_set": "base", "all_adws": ["adw_sdlc_iso", "adw_plan_iso"],
    "estimated_cost_total": 3.1, "estimated_cost_breakdown": {"plan": 0.45, "build": 0.9},
    "workflow_template": "adw_sdlc_iso", "model_used": "claude-sonnet-4-5", "start_time": "2026-01-02T10:00:00+00:00",
    "nl_input": "Add dark mode toggle", "github_url": "https://github.com/acme/storefront/issues/101",
    "status": "running", "current_phase": "build",
}


async def test_items_and_summary_from_state_files(sources, agents):
    write_state(agents, "1a2b3c4d", SDLC_RUN)
    write_state(agents, "deadbeef", {"adw_id": "deadbeef", "issue_number": "102", "workflow_template": "adw_sdlc_iso",
                                     "issue_class": "/bug", "plan_file": None, "future_field": 1})
    write_state(agents, "0badf00d", {"workflow_template": "adw_patch_iso", "issue_number": "103"})
    write_state(agents, "feedface", {"issue_number": "104"})
    data = await workflows.make_reader(sources).read()
    assert data.summary == {"total": 4, "by_template": {"adw_patch_iso": 1, "adw_sdlc_iso": 2}}
    assert data.items == {
        "1a2b3c4d": {
            "adw_id": "1a2b3c4d", "issue_number": "101", "issue_class": "/feature", "workflow_template": "adw_sdlc_iso",
            "branch_name": "feature-issue-101-adw-1a2b3c4d-dark-mode", "model_set": "base",
            "github_url": "https://github.com/acme/storefront/issues/101", "start_time": "2026-01-02T10:00:00+00:00",
            "model_used": "claude-sonnet-4-5", "nl_input": "Add dark mode toggle",
            "plan_file": "specs/issue-101-plan.md",
            "worktree_path": "/srv/trees/1a2b3c4d", "backend_port": 9101, "frontend_port": 9201,
            "all_adws": ["adw_sdlc_iso", "adw_plan_iso"], "estimated_cost_total": 3.1,
        },
        "deadbeef": {"adw_id": "deadbeef", "issue_number": "102", "workflow_template": "adw_sdlc_iso",
                     "issue_class": "/bug"},
        "0badf00d": {"adw_id": "0badf00d", "workflow_template": "adw_patch_iso", "issue_number": "103"},
        "feedface": {"adw_id": "feedface", "issue_number": "104"},
    }


async def test_empty_agents_dir_is_an_empty_channel(sources, agents):
    data = await workflows.make_reader(sources).read()
    assert data.summary == {"total": 0, "by_template": {}} and data.items == {}


async def test_unchanged_files_give_none_and_a_change_gives_data(sources, agents):
    write_state(agents, "1a2b3c4d", SDLC_RUN)
    reader = workflows.make_reader(sources)
    assert (await reader.read()).summary == {"total": 1, "by_template": {"adw_sdlc_iso": 1}}
    assert await reader.read() is None
    write_state(agents, "1a2b3c4d", {**SDLC_RUN, "workflow_template": "adw_plan_build_iso"})
    assert (await reader.read()).summary == {"total": 1, "by_template": {"adw_plan_build_iso": 1}}
    shutil.rmtree(agents / "1a2b3c4d")
    assert (await reader.read()).summary == {"total": 0, "by_template": {}}


async def test_half_written_state_file_keeps_old_values_with_a_marker(sources, agents):
    write_state(agents, "1a2b3c4d", SDLC_RUN)
    reader = workflows.make_reader(sources)
    await reader.read()
    write_state(agents, "1a2b3c4d", '{"adw_id": "1a2b3c4d", "issue_num')
    item = (await reader.read()).items["1a2b3c4d"]
    assert item["issue_number"] == "101" and item["workflow_template"] == "adw_sdlc_iso"
    assert item["state_file_error"].startswith("invalid JSON: ")
    write_state(agents, "1a2b3c4d", {**SDLC_RUN, "issue_number": "105"})
    item = (await reader.read()).items["1a2b3c4d"]
    assert item["issue_number"] == "105" and "state_file_error" not in item


async def test_vanished_agents_dir_is_channel_error_and_recovers(sources, agents):
    write_state(agents, "1a2b3c4d", SDLC_RUN)
    broker = InProcessBroker(("workflows",), 16)
    poller = Poller("workflows", workflows.make_reader(sources), broker, timeout=5.0)
    await poller.poll()
    channel = broker.current("workflows")
    assert list(channel.state["items"]) == ["1a2b3c4d"] and channel.state["meta"]["source"] == "ok"
    shutil.rmtree(agents)
    await poller.poll()
    channel = broker.current("workflows")
    assert channel.state["meta"]["source"] == "error"
    assert channel.state["meta"]["error"] == f"agents_dir not found: {agents}"
    agents.mkdir()
    await poller.poll()
    channel = broker.current("workflows")
    assert channel.state["meta"]["source"] == "ok"
    assert channel.state["summary"] == {"total": 0, "by_template": {}} and channel.state["items"] == {}
