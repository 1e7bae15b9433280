"""What the database seam and its backends share: the row type, the error, sqlite URLs.

Its own module so the backends need not import ``database``, which imports them.
"""

from __future__ import annotations

from typing import Any

Rows = list[dict[str, Any]]


class DatabaseError(Exception):
    """A database read failed; the message is fit to show an operator."""


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///`` URL (``sqlite:////abs`` is absolute)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite:/// URL: {url!r}")
    path = url[len("sqlite:///"):]
    if not path:
        raise ValueError(f"sqlite URL names no file: {url!r}")
    return path
