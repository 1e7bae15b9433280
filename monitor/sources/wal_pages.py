"""Which small tables a SQLite commit touched, told by the pages its WAL frames hold.

In WAL mode a commit appends one frame per changed page to the ``-wal`` file: a 24-byte
header (page number, the database size on a commit frame, the WAL's two salts, two
checksums) and the page. The shared index (``-shm``) says up to which frame commits are
visible (``mxFrame``). So the headers of the frames appended since the last look name
every page changed, and a table moved if and only if one of its b-tree pages (listed by
the ``dbstat`` virtual table) is among them: any change to a b-tree writes at least one
page it already had (a new page is linked from an old one). That is exact and costs a few
small reads, where proving a small table unchanged otherwise means reading it whole.

Whatever cannot be read exactly (no WAL, a WAL restarted after a checkpoint, the index
mid-update, no ``dbstat``, thousands of frames at once) answers "unknown", and every
table counts as moved: the old behaviour, never a missed change.

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
# Page 1 holds the schema's root: a table created, altered or dropped moves with it.
SCHEMA_PAGES = frozenset({1})
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
        for frame in range(self._frame, last):  # frame numbers are 1-based: these are frames + 1
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
    """A version per small table that moves exactly when a commit touched one of its pages."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.frames = WalFrames(database)
        self.usable = True  # False once dbstat is found missing: every table then counts as moved
        self._pages: dict[str, frozenset[int]] = {}
        self._versions: dict[str, int] = {}

    def forget(self) -> None:
        """Start afresh (a new connection or file)."""
        self.frames = WalFrames(self.database)
        self._pages.clear()

    def versions(self, conn: sqlite3.Connection, tables: Collection[str]) -> dict[str, int | None]:
        """Each table's version (None: cannot be told), after the commits the WAL holds since the last call."""
        if not self.usable:
            return dict.fromkeys(tables)
        changed = self.frames.committed_pages()
        for table, pages in list(self._pages.items()):
            if changed is None or pages & changed:
                del self._pages[table]  # moved: its pages are listed again below, after the change
                self._versions[table] = self._versions.get(table, 0) + 1
        result: dict[str, int | None] = {}
        for table in tables:
            if table not in self._pages:
                listed = self._list_pages(conn, table)
                if listed is None:
                    return dict.fromkeys(tables)
                self._pages[table] = listed
                self._versions[table] = self._versions.get(table, 0) + 1
            result[table] = self._versions[table]
        return result

    def _list_pages(self, conn: sqlite3.Connection, table: str) -> frozenset[int] | None:
        try:
            named = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND lower(name) = ?",
                                 (table,)).fetchone()
            if named is None:
                return SCHEMA_PAGES  # no such table (yet): creating it writes the schema
            listed = conn.execute("SELECT pageno FROM dbstat WHERE name = ?", named)
            return SCHEMA_PAGES | frozenset(row[0] for row in listed)
        except sqlite3.OperationalError:  # built without dbstat
            self.usable = False
            return None
