"""The SQLite shared-memory index (``-shm``), read without ever closing it under SQLite's feet.

POSIX advisory locks belong to a process and a file: closing *any* descriptor of a file
drops every lock the process holds on it. SQLite's connections in this process hold
shared locks on the ``-shm`` file (the one that says "in use"); if we opened the file to
read its header and closed it again, those locks would be gone, the monitored system's
next connection would take the index for unused and truncate it, and our connections'
memory map of it would fault (SIGBUS: the console dies). So the file is opened once and
closed only after the connections (``close``); a file replaced meanwhile (another inode:
its locks are not ours) gets a new descriptor, the old one kept until then.

Layout: https://www.sqlite.org/walformat.html (the header, native byte order, twice).
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

INDEX_HEADER_BYTES = 48  # written twice in a row; the two copies differ only while a writer updates them

WalPoint = tuple[bytes, int]  # (the WAL's salts, mxFrame): how far commits are visible


class SharedIndex:
    """The ``-shm`` file of one database, read by any thread."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-shm")
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._retired: list[int] = []  # descriptors of replaced files, closed with the rest

    def header(self) -> bytes:
        """Both copies of the index header (shorter when the file is); ``OSError`` when it cannot be read."""
        return os.pread(self._descriptor(), 2 * INDEX_HEADER_BYTES, 0)

    def point(self) -> WalPoint | None:
        """(salts, mxFrame) as the index shows them now; None when it is absent, unsettled or unreadable."""
        try:
            index = self.header()
        except OSError:
            return None
        if not settled(index, index[32:40]):
            return None
        return index[32:40], struct.unpack_from("=I", index, 16)[0]

    def close(self) -> None:
        """Close every descriptor: only once no SQLite connection of this process has the file open."""
        with self._lock:
            for fd in [*self._retired, *([self._fd] if self._fd is not None else [])]:
                os.close(fd)
            self._fd, self._identity, self._retired = None, None, []

    def _descriptor(self) -> int:
        st = os.stat(self.path)
        with self._lock:
            if self._fd is None or (st.st_dev, st.st_ino) != self._identity:
                fd = os.open(self.path, os.O_RDONLY)
                opened = os.fstat(fd)
                if self._fd is not None:
                    self._retired.append(self._fd)
                self._fd, self._identity = fd, (opened.st_dev, opened.st_ino)
            return self._fd


def settled(index: bytes, salts: bytes) -> bool:
    """Whether the index header is whole, initialised, and of the WAL generation with ``salts``."""
    if len(index) < 2 * INDEX_HEADER_BYTES or index[:INDEX_HEADER_BYTES] != index[INDEX_HEADER_BYTES:]:
        return False
    return index[12] == 1 and index[32:40] == salts
