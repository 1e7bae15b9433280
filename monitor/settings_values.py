"""Value parsing for the settings table: coerce a TOML or environment value to its field's type and limits."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

MAX_SECONDS = 1_000_000.0

# Field annotations are strings (``from __future__ import annotations``); map them to the type they name.
_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool,
                           "tuple": tuple, "tuple[str, ...]": tuple}


class BadValue(Exception):
    """A value does not fit its field; the message says what was expected (the caller adds where)."""


def coerce(value: Any, spec: dataclasses.Field[Any], from_text: bool) -> Any:
    """``value`` converted to ``spec``'s type and checked against its metadata; raises BadValue."""
    kind = _KINDS[str(spec.type)]
    converted = _convert(value, kind, from_text)
    if converted is None:
        raise BadValue(f"expected {_describe(kind)}, got {value!r}")
    choices, minimum = spec.metadata["choices"], spec.metadata["minimum"]
    if choices and converted not in choices:
        raise BadValue(f"expected one of {' | '.join(choices)}, got {value!r}")
    if kind is float and not math.isfinite(converted):
        raise BadValue(f"expected a finite number, got {value!r}")
    if minimum is not None and converted < minimum:
        raise BadValue(f"expected a number >= {minimum}, got {value!r}")
    # Seconds beyond about eleven days overflow the scheduler's and the event loop's clocks.
    maximum = spec.metadata["maximum"] if spec.metadata["maximum"] is not None else (
        MAX_SECONDS if kind is float else None)
    if maximum is not None and converted > maximum:
        raise BadValue(f"expected a number <= {maximum}, got {value!r}")
    if kind is str and "\x00" in converted:  # no path, URL or header can carry one; the value may be a secret
        raise BadValue("expected text without NUL characters")
    problem = spec.metadata["check"](converted) if spec.metadata["check"] else None
    if problem is not None:
        raise BadValue(problem)
    return converted


def _convert(value: Any, kind: type, from_text: bool) -> Any:
    if kind is tuple:
        if from_text:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None
    if from_text and kind is not str:
        try:
            return kind(value) if kind is not bool else {"true": True, "false": False}.get(value.lower())
        except ValueError:
            return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return value
    return None


def _describe(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            tuple: "a list of strings"}[kind]
