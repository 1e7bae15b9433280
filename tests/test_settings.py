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


BAD_VALUES = [
    ("[sources]\ndatabase = '/var/lib/adw/db/database.db'\n",
     '[sources] database: expected sqlite:////abs/path.db or postgresql://user@host:5432/db; '
     'for the file /var/lib/adw/db/database.db write "sqlite:////var/lib/adw/db/database.db"'),
    ("[sources]\ndatabase = 'db/database.db'\n", 'for the file db/database.db write "sqlite:///db/database.db"'),
    ("[sources]\ndatabase = 'sqlite://database.db'\n", "[sources] database: expected sqlite:////abs/path.db"),
    ("[sources]\ndatabase = 'mysql://u:hunter2@h/db'\n", "got 'mysql://u:***@h/db'"),
    ("[sources]\ndatabase = 'postgresql://u@h:99999/db'\n", "[sources] database: expected sqlite:////abs/path.db"),
    ("[sources]\ndatabase = ''\n", "[sources] database: expected sqlite:////abs/path.db"),
    ("[sources]\nwebhook_url = '127.0.0.1:8001/webhook-status'\n",
     "[sources] webhook_url: expected an http:// or https:// URL"),
    ("[sources]\nopenapi_url = 'file:///tmp/openapi.json'\n",
     "[sources] openapi_url: expected an http:// or https:// URL"),
    ("[sources]\nbackend_url = 'http://'\n", "[sources] backend_url: expected an http:// or https:// URL with a host"),
    ("[sources]\nbackend_url = 'http://host:70000'\n", "[sources] backend_url: expected an http:// or https:// URL"),
    ("[sources]\nagents_dir = ''\n", "[sources] agents_dir: expected a directory path"),
    ("[sources]\ntrees_dir = ' '\n", "[sources] trees_dir: expected a directory path"),
    ('[sources]\ntrees_dir = "a\\u0000b"\n', "[sources] trees_dir: expected text without NUL characters"),
    ("[server]\nhost = ''\n", "[server] host: expected an address to listen on"),
    ("[server]\nallowed_origins = ['ops.example.com']\n", "[server] allowed_origins: expected origins such as"),
    ("[auth]\nproxy_header = 'X User'\n", "[auth] proxy_header: expected an HTTP header name"),
    ("[[checks]]\nname = 'api'\nkind = 'http'\ntarget = 'localhost:8002'\n",
     "[[checks]] #1 target (http check): expected an http:// or https:// URL"),
    ("[[checks]]\nname = 'db'\nkind = 'tcp'\ntarget = 'db:99999'\n",
     "[[checks]] #1 target (tcp check): expected host:port with a port from 1 to 65535"),
    ("[[checks]]\nname = 'db'\nkind = 'tcp'\ntarget = 'http://db:5432'\n",
     "[[checks]] #1 target (tcp check): expected host:port"),
    ("[[checks]]\nname = 'adw'\nkind = 'process'\ntarget = '  '\n",
     "[[checks]] #1 target (process check): expected text"),
]


@pytest.mark.parametrize("text, expected", BAD_VALUES)
def test_bad_values_name_the_key_and_the_expected_form(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value)


@pytest.mark.parametrize("name, value, expected", [
    ("MONITOR_SOURCES_DATABASE", "/srv/adw.db", 'write "sqlite:////srv/adw.db"'),
    ("MONITOR_SOURCES_WEBHOOK_URL", "localhost:8001", "expected an http:// or https:// URL"),
    ("MONITOR_SOURCES_BACKEND_URL", "ftp://h", "expected an http:// or https:// URL"),
    ("MONITOR_SOURCES_AGENTS_DIR", "", "expected a directory path"),
    ("MONITOR_SERVER_HOST", "", "expected an address to listen on"),
    ("MONITOR_SERVER_ALLOWED_ORIGINS", "https://ok.example.com,bad", "expected origins such as"),
])
def test_bad_environment_values_are_validated_like_the_file(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={name: value})
    assert str(caught.value).startswith(f"{name} (environment): ") and expected in str(caught.value)


def test_every_usable_form_loads(tmp_path):
    path = write(tmp_path, """
[server]
host = "::"
allowed_origins = ["https://ops.example.com", "http://10.0.0.5:8080/"]
[sources]
database = "postgresql://adw:secret@db.internal:5432/adw"
webhook_url = "https://hooks.example.com/webhook-status"
backend_url = ""
openapi_url = ""
[[checks]]
name = "api"
kind = "http"
target = "http://[::1]:8002/health"
[[checks]]
name = "pg"
kind = "tcp"
target = "[::1]:5432"
[[checks]]
name = "adw"
kind = "process"
target = "adw_sdlc_iso.py"
""")
    settings = load_settings(path, environ={"MONITOR_SOURCES_DATABASE": "sqlite:///relative/database.db"})
    assert settings.sources.database == "sqlite:///relative/database.db" and len(settings.checks) == 3
    assert settings.sources.backend_url == settings.sources.openapi_url == ""
