"""Alert rules: [[alerts]] read into AlertRule, each mistake refused at load (exit 2), the field table true to life."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from monitor.adw import QUEUE_STATUSES
from monitor.alerts.fields import NOT_FIGURES, SUMMARY_FIELDS, is_summary_field, read_field
from monitor.alerts.rules import NAMED_CONDITIONS, AlertRule
from monitor.channels.adw_monitor import build_adw_monitor
from monitor.channels.base import finite_number
from monitor.channels.planned_features import build_planned_features
from monitor.channels.queue import build_queue
from monitor.channels.registry import CHANNEL_NAMES
from monitor.channels.routes import build_routes
from monitor.channels.system_status import build_system_status
from monitor.channels.webhook_status import build_webhook_status
from monitor.channels.workflow_history import build_summary as workflow_history_summary
from monitor.channels.workflows import build_workflows
from monitor.cli import main
from monitor.settings import ConfigError, load_settings
from monitor.sources.checks import CheckResult
from monitor.sources.statefiles import StateView

ROOT = Path(__file__).resolve().parent.parent
SECRET_URL = "mailto://ops:hunter2-secret@smtp.example.com?to=ops@example.com"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_every_kind_of_rule_is_read(tmp_path):
    path = write(tmp_path, f"""
[[alerts]]
name = "ADW failed"
when = "workflow_failed"
notify = ["ntfy://ops-adw", "{SECRET_URL}"]

[[alerts]]
name = "queue has failures"
channel = "queue"
field = "by_status.failed"
above = 0
for = 60
repeat = 3600

[[alerts]]
name = "success rate low"
channel = "workflow-history"
field = "success_rate"
below = 80.5

[[alerts]]
name = "queue source down"
when = "source_down"
channel = "queue"

[[alerts]]
name = "expensive"
when = "cost_over_estimate"
factor = 1.5
""")
    rules = load_settings(path, environ={}).alerts
    assert rules == (
        AlertRule("ADW failed", "workflow_failed", notify=("ntfy://ops-adw", SECRET_URL)),
        AlertRule("queue has failures", channel="queue", field="by_status.failed", above=0.0, hold=60.0,
                  repeat=3600.0),
        AlertRule("success rate low", channel="workflow-history", field="success_rate", below=80.5),
        AlertRule("queue source down", "source_down", channel="queue"),
        AlertRule("expensive", "cost_over_estimate", factor=1.5),
    )
    assert "hunter2" not in repr(rules)  # the URLs carry secrets: a rule's repr leaves them out


def test_no_alerts_is_no_rules():
    assert load_settings(None, environ={}).alerts == ()


RULE = '[[alerts]]\nname = "r"\n'
THRESHOLD = RULE + 'channel = "queue"\nfield = "total"\nabove = 5\n'


@pytest.mark.parametrize("text, expected", [
    ("alerts = 3\n", "[[alerts]]: expected an array of tables"),
    ("alerts = [3]\n", "[[alerts]] #1: expected a table, got int"),
    ('[[alerts]]\nwhen = "source_down"\n', "[[alerts]] #1 name: expected a non-empty name"),
    ('[[alerts]]\nname = " "\nwhen = "source_down"\n', "[[alerts]] #1 name: expected a non-empty name"),
    (RULE + 'when = "workflow_fail"\n', "[[alerts]] #1 ('r') when: expected one of workflow_failed, source_down"),
    (RULE + 'when = "source_down"\ncolour = "red"\n', "('r') colour: unknown key; expected one of name, when"),
    (RULE + 'when = "workflow_failed"\nchannel = "queue"\n',
     "('r') channel: not used by when = 'workflow_failed'; expected only name, when, for, repeat, notify"),
    (RULE + 'when = "workflow_failed"\nabove = 1\n', "('r') above: not used by when = 'workflow_failed'"),
    (THRESHOLD + 'factor = 2\n', "('r') factor: not used by a threshold rule"),
    (RULE + 'field = "total"\nabove = 1\n', "('r') channel: a threshold rule needs a channel; expected one of queue"),
    (RULE + 'channel = "queues"\nfield = "total"\nabove = 1\n',
     "('r') channel: unknown channel; expected one of queue, adw-monitor"),
    (RULE + 'when = "source_down"\nchannel = "nope"\n', "('r') channel: unknown channel"),
    (RULE + 'channel = "queue"\nfield = "by_status.exploded"\nabove = 0\n',
     "('r') field: expected a numeric summary field of queue: total, by_status.<queued|ready|running|completed|"
     "blocked|failed>; got 'by_status.exploded'"),
    (RULE + 'channel = "queue"\nfield = "paused"\nabove = 0\n', "field: expected a numeric summary field of queue"),
    (RULE + 'channel = "queue"\nfield = "by_status"\nabove = 0\n', "field: expected a numeric summary field"),
    (RULE + 'channel = "queue"\nabove = 0\n', "field: expected a numeric summary field of queue"),
    (RULE + 'channel = "adw-monitor"\nfield = "failed"\n', "above/below: a threshold rule needs exactly one of "
                                                           "above or below, got neither"),
    (RULE + 'channel = "adw-monitor"\nfield = "failed"\nabove = 1\nbelow = 3\n', "got above and below"),
    (RULE + 'channel = "adw-monitor"\nfield = "failed"\nabove = "1"\n', "('r') above: expected a number, got '1'"),
    (RULE + 'channel = "adw-monitor"\nfield = "failed"\nbelow = nan\n', "('r') below: expected a number, got nan"),
    (RULE + 'channel = "adw-monitor"\nfield = "failed"\nabove = true\n', "above: expected a number, got True"),
    (THRESHOLD + 'for = -1\n', "('r') for: expected seconds from 0 to 1e+06, got -1"),
    (THRESHOLD + 'repeat = -5.0\n', "('r') repeat: expected seconds from 0 to 1e+06, got -5.0"),
    (THRESHOLD + 'repeat = "1h"\n', "('r') repeat: expected seconds"),
    (RULE + 'when = "cost_over_estimate"\nfactor = 0\n', "('r') factor: expected a number above 0"),
    (RULE + 'when = "cost_over_estimate"\nfactor = -1.5\n', "('r') factor: expected a number above 0"),
    (RULE + 'when = "workflow_failed"\nnotify = [3]\n', "('r') notify: expected each entry to be an Apprise URL, "
                                                         "entry 1 is int"),
    (RULE + 'when = "workflow_failed"\nnotify = ["json://a", ""]\n', "entry 2 is empty text"),
    (RULE + 'when = "workflow_failed"\nnotify = "json://a"\n', "('r') notify: expected a list of Apprise URLs, "
                                                                "got str"),
    (THRESHOLD + RULE + 'when = "queue_stalled"\n', "[[alerts]] #2 name: 'r' is used twice"),
])
def test_a_bad_rule_is_refused_naming_file_rule_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith(f"{path}: [[alerts]]"), caught.value
    assert expected in str(caught.value), caught.value


def test_a_notification_url_never_shows_in_an_error(tmp_path):
    path = write(tmp_path, RULE + f'when = "workflow_failed"\nnotify = "{SECRET_URL}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "hunter2" not in str(caught.value)


def test_monitor_check_exits_2_on_a_bad_rule(tmp_path, capsys):
    path = write(tmp_path, RULE + 'channel = "queue"\nfield = "by_status.failed"\nabove = 0\nfor = -60\n'
                 f'notify = ["{SECRET_URL}"]\n')
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"monitor: bad config: {path}: [[alerts]] #1 ('r') for: expected seconds from 0 " \
                                 "to 1e+06, got -60\n"
    assert "hunter2" not in err


def test_the_shipped_example_rules_load(tmp_path):
    """config.toml's commented [[alerts]] example, uncommented, is a valid config."""
    lines = (ROOT / "config.toml").read_text().splitlines()
    start = lines.index("# [[alerts]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("#").removeprefix(" "))
    rules = load_settings(write(tmp_path, "\n".join(block)), environ={}).alerts
    assert {rule.when for rule in rules} == {"workflow_failed", "", "source_down"}


# The field table against what the channels really build: every number each builder puts in its summary is a
# field a rule may name, and every field named in the table is one a builder makes.

def numeric_paths(channel: str, summary: Mapping[str, Any]) -> set[str]:
    """Every number in ``summary`` by dotted path; each other key must be one the table says is no figure."""
    paths = set()
    for name, value in summary.items():
        if name in NOT_FIGURES.get(channel, ()):
            continue
        if isinstance(value, Mapping):
            paths.update(f"{name}.{key}" for key, count in value.items() if finite_number(count))
        else:
            assert finite_number(value), f"{channel} summary {name} = {value!r}: neither a figure nor NOT_FIGURES"
            paths.add(name)
    return paths


def built_summaries() -> dict[str, dict[str, Any]]:
    now = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    totals = [{"status": "completed", "model_used": "sonnet", "workflow_template": "adw_sdlc_iso", "runs": 3,
               "timed_runs": 3, "duration_sum": 900.0, "costed_runs": 3, "cost_sum": 3.0, "tokened_runs": 3,
               "token_sum": 3000.0, "cache_rated_runs": 3, "cache_efficiency_sum": 150.0},
              {"status": "failed", "model_used": "opus", "workflow_template": "adw_plan_iso", "runs": 1}]
    costs = [{"start_time": (now - dt.timedelta(days=d)).isoformat(), "actual_cost_total": 1.0} for d in (1, 9, 40)]
    state = {"adw_id": "1a2b3c4d", "issue_number": 7, "workflow_template": "adw_sdlc_iso"}
    webhook = {"status": "healthy", "uptime": {"seconds": 90}, "last_successful": {"issue": 3},
               "stats": {"total_received": 10, "successful": 7, "failed": 3, "success_rate": "70.0%"}}
    return {
        "queue": build_queue([{"queue_id": "q1", "status": "failed"}], [{"config_key": "queue_paused",
                                                                         "config_value": "false"}]).summary,
        "adw-monitor": build_adw_monitor(StateView(states={"1a2b3c4d": state}), frozenset(), {}).summary,
        "system-status": build_system_status([CheckResult("db", "tcp", "x:1", "healthy", 1.0, "ok")]).summary,
        "workflows": build_workflows({"1a2b3c4d": state}).summary,
        "routes": build_routes([{"method": "GET", "path": "/"}]).summary,
        "workflow-history": workflow_history_summary(totals, costs, now),
        "planned-features": build_planned_features({"planned_features": [
            {"id": 1, "status": "completed", "priority": "high", "item_type": "bug", "estimated_hours": 2.0,
             "actual_hours": 3.0}]}).summary,
        "webhook-status": build_webhook_status(webhook).summary,
    }


def test_the_field_table_covers_every_channel():
    assert tuple(SUMMARY_FIELDS) == CHANNEL_NAMES


@pytest.mark.parametrize("channel", CHANNEL_NAMES)
def test_every_number_a_channel_builds_is_a_field_and_back(channel):
    built = numeric_paths(channel, built_summaries()[channel])
    assert {path for path in built if not is_summary_field(channel, path)} == set()
    plain = {name for name, counts in SUMMARY_FIELDS[channel].items() if counts is None}
    maps = {name for name, counts in SUMMARY_FIELDS[channel].items() if counts is not None}
    assert plain <= built, f"the table names figures {channel} does not build: {plain - built}"
    assert maps <= {path.partition(".")[0] for path in built if "." in path}


def test_a_count_missing_from_its_map_reads_zero_and_text_reads_none():
    summary = {"total": 4, "by_status": {"failed": 2}, "overall_status": "healthy", "flag": True}
    assert read_field(summary, "by_status.failed") == 2.0
    assert read_field(summary, "by_status.ready") == 0.0
    assert read_field(summary, "by_template.adw_plan_iso") is None  # no map: unknown, not zero
    assert read_field(summary, "overall_status") is None and read_field(summary, "flag") is None
    assert is_summary_field("workflow-history", "by_model.claude-3.5-sonnet")  # open map: the data's own keys
    assert all(is_summary_field("queue", f"by_status.{status}") for status in QUEUE_STATUSES)
    assert not is_summary_field("queue", "total.x") and not is_summary_field("queue", "by_status.")


def test_named_conditions_are_documented():
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `[[alerts]]`"))
    assert all(f"`{name}`" in row for name in NAMED_CONDITIONS)
    assert re.search(r"`for`", row) and "`repeat`" in row and "`notify`" in row
    tomllib.loads((ROOT / "config.toml").read_text())
