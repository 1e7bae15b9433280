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
from pathlib import Path

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
INDEX_HEADER_BYTES = 48  # written twice in a row; the two copies differ only while a writer updates them
MAX_FRAMES = 4096  # beyond this many new frames, reading their headers costs more than reading the tables


class WalFrames:
    """Reads the page numbers of the frames committed since the last call."""

    def __init__(self, database: Path) -> None:
        self.wal = database.with_name(database.name + "-wal")
        self.shm = database.with_name(database.name + "-shm")
        self._salts: bytes | None = None  # the WAL generation last read
        self._frame = 0  # frames up to this one were read

    def committed_pages(self) -> set[int] | None:
        """Pages changed by commits since the last call; None when that cannot be told exactly."""
        try:
            return self._read()
        except OSError:
            self._salts = None
            return None

    def _read(self) -> set[int] | None:
        wal_fd = os.open(self.wal, os.O_RDONLY)
        try:
            header = os.pread(wal_fd, WAL_HEADER_BYTES, 0)
            index = _read_file(self.shm, 2 * INDEX_HEADER_BYTES)
            if len(header) < WAL_HEADER_BYTES or not _index_settled(index, header[16:24]):
                self._salts = None
                return None
            salts, last = header[16:24], struct.unpack_from("=I", index, 16)[0]
            if salts != self._salts or last < self._frame or last - self._frame > MAX_FRAMES:
                self._salts, self._frame = salts, last  # a new WAL generation, or too much: start from here
                return None
            pages = self._pages(wal_fd, salts, struct.unpack_from(">I", header, 8)[0], last)
            if pages is None or os.pread(wal_fd, 8, 16) != salts:  # restarted while we read
                self._salts = None
                return None
            self._frame = last
            return pages
        finally:
            os.close(wal_fd)

    def _pages(self, wal_fd: int, salts: bytes, page_size: int, last: int) -> set[int] | None:
        pages = set()
        for frame in range(self._frame, last):  # the frame numbered frame + 1 (they count from 1)
            head = os.pread(wal_fd, FRAME_HEADER_BYTES, WAL_HEADER_BYTES + frame * (FRAME_HEADER_BYTES + page_size))
            if len(head) < FRAME_HEADER_BYTES or head[8:16] != salts:
                return None
            pages.add(struct.unpack_from(">I", head, 0)[0])
        return pages


def _read_file(path: Path, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _index_settled(index: bytes, salts: bytes) -> bool:
    """Whether the shared index header is whole, initialised, and of the WAL generation with ``salts``."""
    if len(index) < 2 * INDEX_HEADER_BYTES or index[:INDEX_HEADER_BYTES] != index[INDEX_HEADER_BYTES:]:
        return False
    return index[12] == 1 and index[32:40] == salts


class TablePages:
    """A version per small table that moves whenever a commit wrote one of its pages or changed the schema.

    One per change-check connection, used on its thread only.
    """

    def __init__(self, database: Path) -> None:
        self.frames = WalFrames(database)
        self.usable = True  # False once dbstat is found missing: every table then counts as moved
        # None: not a table with pages of its own (a view, a virtual table): it moves with every commit.
        self._pages: dict[str, frozenset[int] | None] = {}
        self._versions: dict[str, int] = {}
        self._schema: int | None = None

    def versions(self, conn: sqlite3.Connection, tables: Collection[str]) -> dict[str, int | None]:
        """Each table's version (None: cannot be told), after the commits the WAL holds since the last call."""
        unknown: dict[str, int | None] = dict.fromkeys(tables)
        if not self.usable:
            return unknown
        changed = self.frames.committed_pages()
        schema = conn.execute("PRAGMA schema_version").fetchone()[0]
        if changed is None or schema != self._schema:  # the page sets may be stale: list them next time
            self._schema = schema
            for table in list(self._pages):
                self._moved(table)
            return unknown
        for table, pages in list(self._pages.items()):
            if pages is None or pages & changed:
                self._moved(table)  # its pages are listed again below, after the change
        result: dict[str, int | None] = {}
        for table in tables:
            if table not in self._pages:
                try:
                    self._pages[table] = _list_pages(conn, table)
                except sqlite3.OperationalError as exc:
                    self.usable = "dbstat" not in str(exc)  # built without dbstat: for good; else this time
                    return unknown
                self._versions[table] = self._versions.get(table, 0) + 1
            result[table] = None if self._pages[table] is None else self._versions[table]
        return result

    def _moved(self, table: str) -> None:
        del self._pages[table]
        self._versions[table] = self._versions.get(table, 0) + 1


def _list_pages(conn: sqlite3.Connection, table: str) -> frozenset[int] | None:
    """The pages of ``table``'s b-tree; None when it has none of its own (a view, a virtual table)."""
    named = conn.execute("SELECT name, type, rootpage FROM sqlite_schema WHERE lower(name) = ?", (table,)).fetchone()
    if named is None:
        return frozenset()  # gone since the count: creating it again changes the schema version
    name, kind, root = named
    if kind != "table" or not root:
        return None
    return frozenset(row[0] for row in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (name,)))
