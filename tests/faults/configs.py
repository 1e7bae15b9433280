"""Random config files: TOML shaped like config.toml (its sections and keys, any values), and plain junk.

The documents are written by a small TOML emitter of our own, so hypothesis can shape
them as data; most of them parse, so validation (not just the parser) gets exercised.
"""

from __future__ import annotations

import dataclasses
import math
import re

from hypothesis import strategies as st

from monitor.channels.registry import CHANNEL_NAMES
from monitor.settings import SECTIONS, ChannelSettings, CheckSettings, env_var_name

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
SECTION_KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}
CHECK_KEYS = [f.name for f in dataclasses.fields(CheckSettings)]
CHANNEL_KEYS = [f.name for f in dataclasses.fields(ChannelSettings)]


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    def escape(char: str) -> str:
        if char in ESCAPES:
            return ESCAPES[char]
        return f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
    return '"' + "".join(escape(char) for char in text) + '"'


def toml_key(key: str) -> str:
    """A bare key when it may be one, else a quoted key."""
    return key if BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value) -> str:
    """One TOML value; tables nested in values are written inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(document: dict) -> str:
    """A TOML document: plain keys first, then one table per dict, ``[[checks]]`` for a list of dicts."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in document.items()
             if not isinstance(v, dict) and not (k == "checks" and _tables(v))]
    for key, value in document.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_key(key)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
        elif key == "checks" and _tables(value):
            for table in value:
                lines.append("[[checks]]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _tables(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
PLAUSIBLE = st.sampled_from([
    "none", "token", "basic", "proxy", "debug", "json", "console", "http", "tcp", "process", "127.0.0.1", "::1",
    "0.0.0.0", "10.0.0.0/8", "not-an-ip", "sqlite:////tmp/x.db", "sqlite:///", "postgresql://u@h:5432/db",
    "mysql://x", "http://127.0.0.1:1/health", "host:99999", "x" * 16, "SELECT 1", ""])
NUMBERS = st.one_of(st.integers(-5, 70_000), st.sampled_from([2 ** 63 - 1, -(2 ** 63), 10 ** 30]),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.booleans(), NUMBERS, TEXT, PLAUSIBLE)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)


def table_of(keys: list[str]) -> st.SearchStrategy:
    """A table with some of ``keys`` (and sometimes an unknown one), any values."""
    return st.dictionaries(st.sampled_from([*keys, "unknown_key"]), VALUES, max_size=4)


SECTION_TABLES = {name: table_of(keys) for name, keys in SECTION_KEYS.items()}
CONFIG_DOCUMENTS = st.fixed_dictionaries({}, optional={
    **{name: table | VALUES for name, table in SECTION_TABLES.items()},
    "channels": st.dictionaries(st.sampled_from([*CHANNEL_NAMES, "nope"]), table_of(CHANNEL_KEYS) | VALUES, max_size=3),
    "checks": st.lists(table_of(CHECK_KEYS), max_size=3) | VALUES,
    "queries": st.dictionaries(TEXT, VALUES, max_size=2),
    "bogus": VALUES,
})
ENV_NAMES = st.sampled_from([env_var_name(section, key) for section, keys in SECTION_KEYS.items() for key in keys]
                            + [env_var_name(f"channels.{name}", key) for name in CHANNEL_NAMES for key in CHANNEL_KEYS])
ENVIRONMENTS = st.dictionaries(ENV_NAMES, st.one_of(TEXT, PLAUSIBLE, NUMBERS.map(str)), max_size=3)
