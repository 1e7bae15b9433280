"""A run's ``error.log``: free text, often one multi-line traceback; only its end is read.

ADW error logs only grow, and a console that read them whole on every change would pay
for a 200 MB log on each append. The scanner reads at most ``TAIL_BYTES`` from the end
and keeps the last entry: a Python traceback (with its chained tracebacks and final
exception line) counts as one entry, any other unindented line starts a new one.
"""

from __future__ import annotations

import os

TAIL_BYTES = 64 * 1024
LAST_ERROR_CHARS = 2000
ELLIPSIS = "…"
_TRACEBACK = "Traceback (most recent call last):"
_CHAINING = ("During handling of the above exception", "The above exception was the direct cause")


def read_tail(path: str, limit: int = TAIL_BYTES) -> bytes:
    """Blocking: the last ``limit`` bytes of a file, from the first whole line in them."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= limit:
            return fh.read()
        fh.seek(size - limit)
        tail = fh.read(limit)
    cut = tail.find(b"\n")
    return tail[cut + 1:] if cut >= 0 else tail


def _continues(entry: list[str], line: str) -> bool:
    """Whether ``line`` belongs to ``entry`` rather than starting the next one."""
    if line[:1].isspace() or not entry:
        return True
    if line.startswith(_CHAINING) or entry[-1].startswith(_CHAINING):
        return True  # chained tracebacks read as one error
    in_traceback = any(e.startswith((_TRACEBACK, *_CHAINING)) for e in entry)
    if line.startswith(_TRACEBACK) and not in_traceback:
        return True  # logging.exception(): the message line, then its traceback
    # The exception line closes a traceback: it follows the indented frames.
    return in_traceback and entry[-1][:1].isspace()


def last_entry(text: str) -> str:
    """The last entry of an error log's text ("" when it has none), cut to its last 2,000 characters."""
    entry: list[str] = []
    for line in (line.rstrip() for line in text.splitlines()):
        if not line.strip():
            continue
        if _continues(entry, line):
            entry.append(line)
        else:
            entry = [line]
    return clip_tail("\n".join(entry))


def clip_tail(text: str) -> str:
    """``text`` cut to its last 2,000 characters (an ellipsis first when cut): an error's end says most."""
    return text if len(text) <= LAST_ERROR_CHARS else ELLIPSIS + text[-(LAST_ERROR_CHARS - 1):]
