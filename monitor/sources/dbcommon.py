"""What the database seam and its backends share: the row type, the error, sqlite URLs.

Its own module so the backends need not import ``database``, which imports them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from monitor.sources.schema import Query

Rows = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TableRead:
    """A whole table as read, for the next read to start from."""

    rows: Rows
    rowids: tuple[int, ...]  # each row's rowid, in the same order
    mark: Hashable  # what the backend needs to tell which rows moved since


@runtime_checkable
class RowReads(Protocol):
    """A backend that can read whole tables again by reading only the rows that moved."""

    async def fetch_tables(self, queries: Mapping[str, Query | str], keys: Mapping[str, Sequence[str]],
                           kept: Mapping[str, Rows], tables: Mapping[str, TableRead | None],
                           ) -> tuple[dict[str, Rows], dict[str, TableRead]]:
        """``fetch_many``, where the queries named in ``tables`` (``SELECT * FROM <table>``) come in
        rowid order and, from their last read, may be read in part; with each such read for the next."""


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
