"""Hostile config: any file or environment either loads or is refused with a ConfigError, never a crash."""

import tomllib

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.settings import ConfigError, Settings, load_settings
from monitor.sources.checks import parse_host_port
from monitor.sources.database import validate_database_url
from tests.faults.configs import CONFIG_DOCUMENTS, ENVIRONMENTS, toml_document

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load_or_refuse(path, environ) -> str:
    """``loaded`` or ``refused``; anything but a ConfigError propagates and fails the test."""
    try:
        settings = load_settings(path, environ)
    except ConfigError as exc:
        assert str(path) in str(exc) or "(environment)" in str(exc), f"the message names no file: {exc}"
        return "refused"
    assert_usable(settings)
    return "loaded"


def assert_usable(settings: Settings) -> None:
    """What loads can be used: the database URL opens and every tcp check's target parses."""
    assert validate_database_url(settings.sources.database) is None, settings.sources.database
    for check in settings.checks:
        if check.kind == "tcp":
            parse_host_port(check.target)


@FUZZ
@given(document=CONFIG_DOCUMENTS, environ=ENVIRONMENTS)
def test_config_shaped_files_load_or_are_refused(tmp_path, document, environ):
    path = tmp_path / "config.toml"
    text = toml_document(document)
    path.write_text(text, encoding="utf-8")
    try:
        tomllib.loads(text)
        event("valid TOML")
    except tomllib.TOMLDecodeError:
        event("invalid TOML")
    event(load_or_refuse(path, environ))


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_junk_files_are_refused_or_load(tmp_path, content):
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    event(load_or_refuse(path, {}))


UNUSABLE = {
    "heartbeat = nan": "[server]\nheartbeat = nan\n",
    "interval = inf": "[channels.queue]\ninterval = inf\n",
    "timeout = nan": "[channels.queue]\ntimeout = nan\n",
    "busy_timeout = inf": "[sources]\nbusy_timeout = inf\n",
    "port = 70000": "[server]\nport = 70000\n",
    "a bare database path": '[sources]\ndatabase = "/var/lib/adw/db/database.db"\n',
    "a webhook_url without scheme": '[sources]\nwebhook_url = "127.0.0.1:8001/webhook-status"\n',
    "a tcp port out of range": '[[checks]]\nname = "db"\nkind = "tcp"\ntarget = "db:99999"\n',
    "an http check on host:port": '[[checks]]\nname = "api"\nkind = "http"\ntarget = "localhost:8002"\n',
}


def test_values_a_console_cannot_run_with_are_refused(tmp_path):
    loaded = []
    for name, text in UNUSABLE.items():
        path = tmp_path / "config.toml"
        path.write_text(text)
        if load_or_refuse(path, {}) == "loaded":
            loaded.append(name)
    assert loaded == []


def test_counts_a_console_cannot_hold_are_refused(tmp_path):
    loaded = []
    for key in ("ring_size", "max_client_frame", "max_backlog_messages", "max_backlog_bytes"):
        path = tmp_path / "config.toml"
        path.write_text(f"[server]\n{key} = {10 ** 30}\n")
        if load_or_refuse(path, {}) == "loaded":
            loaded.append(key)
    assert loaded == []
