"""The ``monitor`` command as a real process: stdout carries only the report or JSON, logs go to stderr."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.channels.registry import CHANNEL_NAMES
from tests.support import write_state

ROOT = Path(__file__).resolve().parent.parent
TABLE_LINE = re.compile(r"(?P<channel>[a-z-]+) +(?:ok|error  (?P<error>\S.*))")


def run_monitor(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m monitor`` from the working tree, without the caller's MONITOR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**env, **(environ or {})}, timeout=60)


def write_config(tmp_path: Path, database: str, agents: Path, trees: Path, extra: str = "") -> Path:
    """A config on these sources, with no webhook, backend or OpenAPI service to reach."""
    path = tmp_path / "config.toml"
    path.write_text(f'[sources]\ndatabase = "{database}"\nagents_dir = "{agents}"\ntrees_dir = "{trees}"\n'
                    'webhook_url = ""\nopenapi_url = ""\nbackend_url = ""\nwatch = false\n' + extra)
    return path


@pytest.fixture
def noisy_config(tmp_path, db_path, agents, trees):
    """Debug logging and a half-written state file, so reading the sources logs."""
    write_state(agents, "deadbeef", '{"adw_id": "deadb')
    return write_config(tmp_path, f"sqlite:///{db_path}", agents, trees, '[log]\nlevel = "debug"\nformat = "json"\n')


def assert_log_lines(stderr: str) -> None:
    lines = stderr.splitlines()
    assert lines, "nothing logged: the test no longer makes a source log"
    assert all("event" in json.loads(line) for line in lines), stderr


def test_snapshot_writes_only_json_to_stdout(noisy_config):
    done = run_monitor("snapshot", "workflows", "--config", str(noisy_config))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["meta"]["source"] == "ok"
    assert_log_lines(done.stderr)


def test_check_writes_only_its_table_to_stdout(noisy_config):
    done = run_monitor("check", "--config", str(noisy_config))
    *rows, last = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout
    assert [TABLE_LINE.fullmatch(row)["channel"] for row in rows] == list(CHANNEL_NAMES)
    assert last == f"config: {noisy_config}"
    assert_log_lines(done.stderr)


def test_check_json_on_a_usable_workspace(tmp_path, db_path, queue_table, agents, trees):
    queue_table.insert("running", "a phase")
    write_state(agents, "0badcafe", {"adw_id": "0badcafe", "issue_number": "7", "workflow_template": "adw_sdlc_iso"})
    config = write_config(tmp_path, f"sqlite:///{db_path}", agents, trees)
    done = run_monitor("check", "--json", "--config", str(config))
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    assert report == {"config": str(config), "ok": True, "channels": {name: {"ok": True} for name in CHANNEL_NAMES}}


def test_check_reports_each_failing_channel(tmp_path, agents, trees):
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/missing.db", agents, trees)
    table = run_monitor("check", "--config", str(config))
    as_json = run_monitor("check", "--json", "--config", str(config))
    assert table.returncode == as_json.returncode == 2
    errors = {m["channel"]: m["error"] for m in map(TABLE_LINE.fullmatch, table.stdout.splitlines()[:-1])}
    channels = json.loads(as_json.stdout)["channels"]
    assert "database file not found" in errors["queue"] and channels["queue"]["error"] == errors["queue"]
    assert errors["workflows"] is None and channels["workflows"] == {"ok": True}


def assert_refused(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr naming what was wrong, no traceback."""
    assert (done.returncode, done.stdout) == (2, ""), done
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("monitor: bad config: "), done.stderr
    assert all(fragment in done.stderr for fragment in fragments), done.stderr


@pytest.mark.parametrize("command", [["check"], ["check", "--json"], ["snapshot", "queue"]])
def test_a_bare_database_path_is_refused_with_its_spelling(tmp_path, agents, trees, command):
    config = write_config(tmp_path, "/var/lib/adw/db/database.db", agents, trees)
    done = run_monitor(*command, "--config", str(config))
    assert_refused(done, str(config), "[sources] database: expected sqlite:////abs/path.db or postgresql://",
                   'write "sqlite:////var/lib/adw/db/database.db"')


@pytest.mark.parametrize("extra, fragments", [
    ('[[checks]]\nname = "db port"\nkind = "tcp"\ntarget = "db:99999"\n', ["[[checks]] #1 target", "host:port"]),
    ('[server]\nhost = ""\n', ["[server] host: expected an address"]),
])
def test_other_bad_values_are_refused_in_one_line(tmp_path, db_path, agents, trees, extra, fragments):
    config = write_config(tmp_path, f"sqlite:///{db_path}", agents, trees, extra)
    assert_refused(run_monitor("check", "--config", str(config)), str(config), *fragments)


def test_a_bad_environment_override_is_refused_in_one_line(tmp_path, db_path, agents, trees):
    config = write_config(tmp_path, f"sqlite:///{db_path}", agents, trees)
    done = run_monitor("snapshot", "queue", "--config", str(config),
                       environ={"MONITOR_SOURCES_WEBHOOK_URL": "127.0.0.1:8001"})
    assert_refused(done, "MONITOR_SOURCES_WEBHOOK_URL (environment): expected an http:// or https:// URL")


def test_a_key_with_a_line_break_stays_one_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[server]\n"ho\\nst" = 1\n')
    assert_refused(run_monitor("check", "--config", str(config)), "unknown key")
