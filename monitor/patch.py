"""RFC 7396 JSON Merge Patch: compute the patch between two states and apply one.

States follow the wire contract: JSON objects whose records carry no ``null`` values
(absent means null), so a merge patch can express every change between two of them.
"""

from __future__ import annotations

from typing import Any

Json = Any


def diff(old: Json, new: Json) -> Json:
    """Return the merge patch that turns ``old`` into ``new``, or ``None`` when equal."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return None if old == new else _strip_nulls(new)
    patch: dict[str, Json] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = _strip_nulls(value)
            continue
        before = old[key]
        if before is value:
            continue
        if isinstance(before, dict) and isinstance(value, dict):
            sub = diff(before, value)
            if sub is not None:
                patch[key] = sub
        elif before != value or type(before) is not type(value):
            patch[key] = _strip_nulls(value)
    return patch or None


def apply(target: Json, patch: Json) -> Json:
    """Apply ``patch`` to ``target`` and return the result; neither input is modified."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = apply(result.get(key), value)
        else:
            result[key] = value
    return result


def _strip_nulls(value: Json) -> Json:
    """Drop ``None`` members of objects, recursively: a merge patch cannot carry them."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value
