"""Which small tables a SQLite commit touched, told by the pages its WAL frames hold.

In WAL mode a commit appends one frame per changed page to the ``-wal`` file: a 24-byte
header (page number, the database size on a commit frame, the WAL's two salts, two
checksums) and the page. The shared index (``-shm``) says up to which frame commits are
visible (``mxFrame``). So the headers of the frames appended since the last look name
every page changed, and a table counts as moved when one of its b-tree pages (listed by
the ``dbstat`` virtual table) is among them: any change to a b-tree writes at least one
page it already had (a new page is linked from an old one), so no change is missed. A
page freed by one table and reused by another may move both: a read too many, never one
too few. A change of ``PRAGMA schema_version`` (a table created, altered, dropped) moves
every table. This costs a few small reads, where proving a small table unchanged
otherwise means reading it whole.

Whatever cannot be read exactly (no WAL, a WAL restarted after a checkpoint, the index
mid-update, no ``dbstat``, thousands of frames at once, a view or a virtual table)
answers "unknown", and those tables count as moved: the old behaviour.

File layouts: https://www.sqlite.org/fileformat2.html#walformat (the WAL file, big-endian)
and https://www.sqlite.org/walformat.html (the shared index header, native byte order).
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from monitor.sources.btree_pages import TABLE_INTERIOR, TABLE_LEAF, leaf_rowids, page_kind
from monitor.sources.shm_file import SharedIndex, WalPoint, settled

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
MAX_FRAMES = 4096  # beyond this many new frames, reading their headers costs more than reading the tables
MAX_IMAGES = 64  # pages whose images are read to name the rows a commit changed; more: "every row"
MAX_ROWIDS = 256  # more rows named than this: a whole read is about as cheap
ROW_LOG = 32  # versions of a table whose changed rows are remembered


@dataclass(frozen=True, slots=True)
class Commits:
    """What the commits since the last look wrote: page numbers, and the latest image of each when few."""

    pages: frozenset[int]
    images: dict[int, bytes] | None
    point: WalPoint  # (WAL salts, mxFrame) read up to


class WalFrames:
    """Reads the page numbers of the frames committed since the last call."""

    def __init__(self, database: Path, index: SharedIndex | None = None) -> None:
        """``index``: the database's shared index, opened once (``shm_file``); one of its own by default."""
        self.wal = database.with_name(database.name + "-wal")
        self.index = index or SharedIndex(database)
        self._salts: bytes | None = None  # the WAL generation last read
        self._frame = 0  # frames up to this one were read

    def committed_pages(self) -> Commits | None:
        """Pages changed by commits since the last call; None when that cannot be told exactly."""
        try:
            return self._read()
        except OSError:
            self._salts = None
            return None

    def _read(self) -> Commits | None:
        wal_fd = os.open(self.wal, os.O_RDONLY)
        try:
            header = os.pread(wal_fd, WAL_HEADER_BYTES, 0)
            index = self.index.header()
            if len(header) < WAL_HEADER_BYTES or not settled(index, header[16:24]):
                self._salts = None
                return None
            salts, last = header[16:24], struct.unpack_from("=I", index, 16)[0]
            if salts != self._salts or last < self._frame or last - self._frame > MAX_FRAMES:
                self._salts, self._frame = salts, last  # a new WAL generation, or too much: start from here
                return None
            page_size = struct.unpack_from(">I", header, 8)[0]
            latest = self._pages(wal_fd, salts, page_size, last)
            images = _images(wal_fd, latest, page_size) if latest is not None else None
            if latest is None or os.pread(wal_fd, 8, 16) != salts:  # restarted while we read
                self._salts = None
                return None
            self._frame = last
            return Commits(frozenset(latest), images, (salts, last))
        finally:
            os.close(wal_fd)

    def _pages(self, wal_fd: int, salts: bytes, page_size: int, last: int) -> dict[int, int] | None:
        """Each page written since the last look, with the offset of its latest image."""
        latest = {}
        for frame in range(self._frame, last):  # the frame numbered frame + 1 (they count from 1)
            offset = WAL_HEADER_BYTES + frame * (FRAME_HEADER_BYTES + page_size)
            head = os.pread(wal_fd, FRAME_HEADER_BYTES, offset)
            if len(head) < FRAME_HEADER_BYTES or head[8:16] != salts:
                return None
            latest[struct.unpack_from(">I", head, 0)[0]] = offset + FRAME_HEADER_BYTES
        return latest


def _images(wal_fd: int, latest: dict[int, int], page_size: int) -> dict[int, bytes] | None:
    """The latest image of each page, when there are few; else None."""
    if len(latest) > MAX_IMAGES:
        return None
    images = {page: os.pread(wal_fd, page_size, offset) for page, offset in latest.items()}
    return images if all(len(image) == page_size for image in images.values()) else None


class TablePages:
    """A version per small table that moves whenever a commit wrote one of its pages or changed the schema.

    It also remembers, for each of a table's last ``ROW_LOG`` versions, the rowids the
    commits may have changed (``rows_changed``). One per change-check connection, used on
    its thread only, or on the event loop while no probe runs.
    """

    def __init__(self, database: Path, index: SharedIndex | None = None) -> None:
        self.frames = WalFrames(database, index)
        self.usable = True  # False once dbstat is found missing: every table then counts as moved
        # None: not a table with pages of its own (a view, a virtual table): it moves with every commit.
        self._pages: dict[str, frozenset[int] | None] = {}
        self._overflow: dict[str, frozenset[int]] = {}  # pages a row's in-place overwrite may change alone
        self._versions: dict[str, int] = {}
        self._rows: dict[str, dict[int, frozenset[int] | None]] = {}  # version -> rowids changed to reach it
        self._schema: int | None = None
        self.point: tuple[bytes, int] | None = None  # the WAL position the versions stand at

    def versions(self, conn: sqlite3.Connection, tables: Collection[str]) -> dict[str, int | None]:
        """Each table's version (None: cannot be told), after the commits the WAL holds since the last call."""
        unknown: dict[str, int | None] = dict.fromkeys(tables)
        if not self.usable:
            return unknown
        commits = self.frames.committed_pages()
        schema = conn.execute("PRAGMA schema_version").fetchone()[0]
        self.point = commits.point if commits is not None else None
        if commits is None or schema != self._schema:  # the page sets may be stale: list them next time
            self._schema = schema
            for table in list(self._pages):
                self._moved(table, None)
            return unknown
        moved = [table for table, pages in self._pages.items() if pages is None or pages & commits.pages]
        leaves = _leaf_scan(commits.images) if moved and commits.images is not None else None
        for table in moved:
            self._moved(table, self._changed_rows(table, commits.pages, leaves))
        # Moved tables are listed again at once, asked about or not: a table listed only later
        # would take in commits it never saw, and its log would say they changed nothing.
        for table in [*moved, *(table for table in tables if table not in self._pages and table not in moved)]:
            try:
                self._pages[table], self._overflow[table] = _list_pages(conn, table)
            except sqlite3.OperationalError as exc:
                self.usable = "dbstat" not in str(exc)  # built without dbstat: for good; else this time
                self.point = None
                return unknown
            self._bump(table, frozenset() if table in moved else None)  # listing again changes no row
        return {table: None if self._pages[table] is None else self._versions[table] for table in tables}

    def version(self, table: str) -> int | None:
        """The table's version as the last call left it; None when it has none (not listed, or no pages)."""
        return self._versions.get(table) if self._pages.get(table) is not None else None

    def rows_changed(self, table: str, since: int, version: int) -> frozenset[int] | None:
        """The rowids commits may have changed between two versions of ``table``; None when not known.

        None too when the version has not moved: a caller reading anyway wants the whole table
        (the periodic full read that catches what the pages cannot show).
        """
        if since >= version:
            return None
        log = self._rows.get(table, {})
        changed: set[int] = set()
        for step in range(since + 1, version + 1):
            rowids = log.get(step)
            if rowids is None:
                return None
            changed |= rowids
        return frozenset(changed) if len(changed) <= MAX_ROWIDS else None

    def _changed_rows(self, table: str, written: frozenset[int], leaves: LeafScan | None) -> frozenset[int] | None:
        """The rowids on every table leaf the commits wrote: any row of ``table`` they changed is on one.

        Leaves of other tables add rows that are read again for nothing, never one too few.
        An overflow page of the table, or one of its pages that is no b-tree page now, may
        hold a change no leaf shows: unknown.
        """
        own = self._pages.get(table)
        if leaves is None or leaves.rowids is None or own is None:
            return None
        if self._overflow.get(table, frozenset()) & written or leaves.other_pages & own:
            return None
        return leaves.rowids if len(leaves.rowids) <= MAX_ROWIDS else None

    def _moved(self, table: str, rowids: frozenset[int] | None) -> None:
        del self._pages[table]
        self._overflow.pop(table, None)
        self._bump(table, rowids)

    def _bump(self, table: str, rowids: frozenset[int] | None) -> None:
        version = self._versions.get(table, 0) + 1
        self._versions[table] = version
        log = self._rows.setdefault(table, {})
        log[version] = rowids
        log.pop(version - ROW_LOG, None)


class LeafScan(NamedTuple):
    """The written pages' images, parsed once for every table they moved."""

    rowids: frozenset[int] | None  # on every table leaf written; None when one did not parse
    other_pages: frozenset[int]  # written pages that are no table b-tree page (overflow, index, free)


def _leaf_scan(images: dict[int, bytes]) -> LeafScan:
    rowids: set[int] | None = set()
    other = set()
    for page, image in images.items():
        kind = page_kind(image, page)
        if kind == TABLE_LEAF:
            on_page = leaf_rowids(image, page)
            rowids = None if on_page is None or rowids is None else rowids | on_page
        elif kind != TABLE_INTERIOR:
            other.add(page)
    return LeafScan(frozenset(rowids) if rowids is not None else None, frozenset(other))


def _list_pages(conn: sqlite3.Connection, table: str) -> tuple[frozenset[int] | None, frozenset[int]]:
    """The pages of ``table``'s b-tree (None when it has none of its own: a view, a virtual table), and
    which of them are overflow pages."""
    named = conn.execute("SELECT name, type, rootpage FROM sqlite_schema WHERE lower(name) = ?", (table,)).fetchone()
    if named is None:
        return frozenset(), frozenset()  # gone since the count: creating it again changes the schema version
    name, kind, root = named
    if kind != "table" or not root:
        return None, frozenset()
    listed = conn.execute("SELECT pageno, pagetype FROM dbstat WHERE name = ?", (name,)).fetchall()
    return frozenset(page for page, _ in listed), frozenset(page for page, kind in listed if kind == "overflow")
