"""The channel registry: every channel declared once, in the wire contract's order, and no import cycles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import monitor
from monitor.channels import adw_monitor, planned_features, queue, workflow_history
from monitor.channels.registry import (
    CHANNEL_NAMES,
    CHANNELS,
    channel_spec,
    channels_watching,
    is_channel,
    make_readers,
    query_names,
)
from monitor.channels.spec import ChannelSpec
from monitor.settings import ConfigError, Settings, settings_from_mapping
from tests.imports import find_cycles, import_graph

# The wire contract (README): these eight channels, in dashboard order.
WIRE_CONTRACT = ("queue", "adw-monitor", "system-status", "workflows", "routes", "workflow-history",
                 "planned-features", "webhook-status")
MONITOR = Path(monitor.__file__).parent


def test_registry_order_is_the_wire_contracts():
    assert CHANNEL_NAMES == WIRE_CONTRACT == tuple(spec.name for spec in CHANNELS)
    assert all(channel_spec(name).name == name and is_channel(name) for name in WIRE_CONTRACT)
    assert not is_channel("nope")
    with pytest.raises(KeyError):
        channel_spec("nope")


def test_every_spec_builds_a_reader(sources):
    for spec in CHANNELS:
        assert callable(spec.make_reader(sources).read), spec.name
    assert tuple(make_readers(sources)) == CHANNEL_NAMES


def test_query_names_are_the_database_channels_defaults():
    modules = (queue, adw_monitor, workflow_history, planned_features)
    assert query_names() == tuple(name for module in modules for name in module.DEFAULT_QUERIES)
    assert {spec.name for spec in CHANNELS if spec.queries} == {module.SPEC.name for module in modules}


def test_channels_watching_each_kind_of_file():
    assert channels_watching("agents") == ("adw-monitor", "workflows")
    assert channels_watching("trees") == ("adw-monitor",)
    assert channels_watching("database") == ("queue", "adw-monitor", "workflow-history", "planned-features")
    with pytest.raises(ValueError):
        channels_watching("logs")


def test_a_spec_rejects_a_watch_kind_nothing_watches():
    with pytest.raises(ValueError, match="unknown watch kinds"):
        ChannelSpec(name="x", title="X", make_reader=lambda sources: None, watches=frozenset({"logs"}))


def test_settings_reject_an_unknown_channel():
    with pytest.raises(ConfigError, match=r"\[channels.nope\]: unknown channel"):
        settings_from_mapping({"channels": {"nope": {"interval": 1.0}}})


def test_settings_use_a_specs_default_interval():
    parsed, bare = settings_from_mapping({}), Settings()
    for spec in CHANNELS:
        assert parsed.channel(spec.name).interval == bare.channel(spec.name).interval == spec.interval
    assert [parsed.channel(name).interval for name in ("routes", "system-status", "webhook-status", "queue")] \
        == [30.0, 5.0, 5.0, 2.0]


def test_a_channel_name_is_written_only_in_its_own_module():
    home = {spec.name: Path(sys.modules[spec.make_reader.__module__].__file__) for spec in CHANNELS}
    for path in MONITOR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in home and node not in _original_keys(path, tree):
                assert path == home[node.value], f"{path}:{node.lineno} names channel {node.value!r}"


def _original_keys(path, tree):
    """Keys of tac-webbuilder's own documents (its adw-monitor's "workflows"): a word of its format, not a channel."""
    if path.parent.name != "compat":
        return set()
    return {key for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys}


def test_import_graph_skips_type_checking_and_counts_late_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    (package / "b.py").write_text("from . import c\n")
    (package / "c.py").write_text("def late():\n    import pkg.b\n")
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.a": set(), "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.b"}}
    assert find_cycles(graph) == [["pkg.b", "pkg.c", "pkg.b"]]


def test_monitor_has_no_import_cycles():
    assert find_cycles(import_graph(MONITOR)) == []


@pytest.mark.parametrize("name", ["Queue", "queue_x", "-queue", "queue-", "a--b", "", "queue/x"])
def test_a_spec_rejects_a_name_unfit_for_urls_and_variables(name):
    with pytest.raises(ValueError, match="channel name"):
        ChannelSpec(name=name, title="X", make_reader=lambda sources: None)


def test_the_browser_code_names_no_channel():
    scripts = " ".join(path.read_text(encoding="utf-8") for path in (MONITOR / "static").glob("*.js"))
    assert [name for name in CHANNEL_NAMES if f"'{name}'" in scripts or f'"{name}"' in scripts] == []
