"""The rowids on a SQLite table b-tree leaf page, read from the page's bytes.

A commit in WAL mode writes whole pages; when the page is a table leaf, its cells name
the rows it holds. Those of the pages a commit wrote are the rows it may have changed
(``wal_pages.TablePages.rows_changed``). Anything that does not parse as a well-formed
leaf reads as "not a leaf": the caller then falls back to reading the whole table.

Layout: https://www.sqlite.org/fileformat2.html#b_tree_pages (big-endian; page 1 starts
after the 100-byte database header; a leaf's header is 8 bytes, then 2-byte cell
offsets; a table leaf cell is a varint payload size, then a varint rowid).
"""

from __future__ import annotations

import struct

TABLE_LEAF = 0x0D
TABLE_INTERIOR = 0x05
DATABASE_HEADER_BYTES = 100
LEAF_HEADER_BYTES = 8


def page_kind(image: bytes, page: int) -> int:
    """The b-tree page type byte (0x0D table leaf, 0x05 table interior, 0x0A/0x02 index); -1 when out of range."""
    start = DATABASE_HEADER_BYTES if page == 1 else 0
    return image[start] if len(image) > start else -1


def leaf_rowids(image: bytes, page: int) -> frozenset[int] | None:
    """The rowids of the cells of a table leaf page; None when ``image`` is not a well-formed one."""
    start = DATABASE_HEADER_BYTES if page == 1 else 0
    if page_kind(image, page) != TABLE_LEAF or len(image) < start + LEAF_HEADER_BYTES:
        return None
    count = struct.unpack_from(">H", image, start + 3)[0]
    pointers = start + LEAF_HEADER_BYTES
    if pointers + 2 * count > len(image):
        return None
    rowids = set()
    for offset in struct.unpack_from(f">{count}H", image, pointers):
        _, after_size = read_varint(image, offset)
        rowid, _ = read_varint(image, after_size)
        if after_size < 0 or rowid is None:
            return None
        rowids.add(rowid - (1 << 64) if rowid >= 1 << 63 else rowid)  # a 64-bit two's-complement integer
    return frozenset(rowids)


def read_varint(data: bytes, offset: int) -> tuple[int | None, int]:
    """(value, offset after it) of the SQLite varint at ``offset``; (None, -1) when it runs off the end."""
    value = 0
    for index in range(9):
        if offset < 0 or offset + index >= len(data):
            return None, -1
        byte = data[offset + index]
        if index == 8:
            return (value << 8) | byte, offset + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, offset + index + 1
    return None, -1  # not reached: the ninth byte always ends it
