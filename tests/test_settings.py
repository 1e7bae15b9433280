"""Settings: the declarative table, TOML parsing, environment overrides, clear errors."""

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.settings import SECTIONS, ChannelSettings, ConfigError, env_var_name, load_settings

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_names_every_key_with_a_comment():
    text = (ROOT / "config.toml").read_text()
    parsed = tomllib.loads(text)
    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            assert spec.name in parsed[section], f"config.toml lacks [{section}] {spec.name}"
            line = next(ln for ln in text.splitlines() if re.match(rf"{spec.name}\s*=", ln))
            assert "#" in line, f"[{section}] {spec.name} has no comment"
    for channel, table in parsed["channels"].items():
        assert set(table) == {f.name for f in dataclasses.fields(ChannelSettings)}, channel
    load_settings(ROOT / "config.toml", environ={})


def test_environment_overrides_every_kind_of_key(tmp_path):
    path = write(tmp_path, "[server]\nport = 8080\n")
    settings = load_settings(path, environ={
        "MONITOR_SERVER_PORT": "9001", "MONITOR_SERVER_HEARTBEAT": "2.5",
        "MONITOR_AUTH_TOKEN": "s3cret", "MONITOR_CHANNELS_ADW_MONITOR_INTERVAL": "0.5",
    })
    assert settings.server.port == 9001 and settings.server.heartbeat == 2.5
    assert settings.auth.token == "s3cret"
    assert settings.channel("adw-monitor").interval == 0.5
    assert env_var_name("channels.adw-monitor", "interval") == "MONITOR_CHANNELS_ADW_MONITOR_INTERVAL"


@pytest.mark.parametrize("text, expected", [
    ("[server]\nport = 'eighty'\n", "[server] port: expected an integer"),
    ("[server]\nport = -1\n", "[server] port: expected a number >= 0"),
    ("[server]\nprot = 1\n", "[server] prot: unknown key"),
    ("[auth]\nmode = 'magic'\n", "[auth] mode: expected one of none | token | basic | proxy"),
    ("[channels.queue]\ninterval = 'fast'\n", "[channels.queue] interval: expected a number"),
    ("[channels.nope]\ninterval = 1\n", "[channels.nope]: unknown channel"),
    ("[bogus]\n", "[bogus]: unknown section"),
    ("server = 3\n", "[server]: expected a table"),
    ("[server\n", "not valid TOML"),
    ("[[checks]]\nname = 'db'\n", "expected both name and target"),
    ("[queries]\nphase_queu = 'SELECT 1'\n", "[queries] phase_queu: unknown query"),
])
def test_bad_config_names_the_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="MONITOR_SERVER_HEARTBEAT .*expected a number"):
        load_settings(None, environ={"MONITOR_SERVER_HEARTBEAT": "soon"})


def test_cli_exits_2_on_bad_config(tmp_path):
    path = write(tmp_path, "[server]\nheartbeat = 'often'\n")
    for command in ("serve", "check"):
        done = subprocess.run([sys.executable, "-m", "monitor", command, "--config", str(path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 2
        assert str(path) in done.stderr and "[server] heartbeat" in done.stderr and "expected a number" in done.stderr


def test_cli_exits_2_on_missing_config_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "monitor", "check", "--config", str(tmp_path / "none.toml")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "file not found" in done.stderr
