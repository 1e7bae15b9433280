"""Leaving no reference cycle behind a closed connection, so that reference counting frees it.

The collection policy (``gcpolicy.py``) freezes what lives. A frozen object that later dies
inside a cycle waits for the one full walk of the heap, which takes seconds at 10,000
connections (1.8 s measured, all deliveries waiting). A closed WebSocket left two cycles:

- aiohttp keeps the exception that ended the connection (``ws.exception()``; a vanished
  peer's "Cannot write to closing transport", its context the end of the stream). The
  tracebacks' frames hold the response, the request, the protocol: 48 objects a connection.
- asyncio's selector transport keeps its read callback, a method bound to itself, after the
  connection is lost: the transport, its socket object and their dicts, 6 objects.

The tracebacks are dropped when a WebSocket session ends (nothing reads them later: the
close was logged). Every connection's transport, HTTP ones too, is handed over when the
connection is lost (``limits.GatedConnection``), and its read callback is cleared on the
policy's next look, once asyncio is done with it. Asyncio's transport is not public API:
a transport of another kind (another event loop), or one that does not finish closing
within ``RELEASE_WITHIN`` seconds, is counted in ``cyclic`` instead, and the policy
reclaims those with a full walk, as before.
"""

from __future__ import annotations

import asyncio
import time

RELEASE_WITHIN = 120.0  # seconds a transport may take to finish closing
MAX_PENDING = 100_000  # transports waiting at most: past it, a closure counts as cyclic
CHAIN = 16  # chained exceptions followed at most


def drop_tracebacks(exc: BaseException | None) -> None:
    """Forget the tracebacks of ``exc`` and the exceptions chained to it: their frames hold the connection."""
    waiting: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while waiting and len(seen) < CHAIN:
        current = waiting.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        waiting += [current.__cause__, current.__context__]


class Releases:
    """Transports of closed connections, released from their self-cycle once asyncio is done with them."""

    def __init__(self) -> None:
        self.cyclic = 0  # closures that may have left a cycle: the policy's churn
        self.released = 0
        self._pending: dict[asyncio.BaseTransport, float] = {}  # transport -> when to give up on it

    def add(self, transport: asyncio.BaseTransport) -> None:
        """A connection was lost on ``transport``: release it on a later look, once asyncio is done with it.

        Called from the protocol's ``connection_lost``, which asyncio runs before it lets go
        of the socket: never released at once.
        """
        if not _is_selector_transport(transport) or len(self._pending) >= MAX_PENDING:
            self.cyclic += 1
        else:
            self._pending.setdefault(transport, time.monotonic() + RELEASE_WITHIN)

    def sweep(self) -> None:
        """One look: release the transports that lost their connection; give up on the slowest."""
        now = time.monotonic()
        for transport, give_up_at in list(self._pending.items()):
            if self._release(transport):
                del self._pending[transport]
            elif now >= give_up_at:
                del self._pending[transport]
                self.cyclic += 1

    @property
    def pending(self) -> int:
        """Transports still closing."""
        return len(self._pending)

    def _release(self, transport: asyncio.BaseTransport) -> bool:
        # _call_connection_lost sets _sock to None; close() and abort() removed the reader before
        # scheduling it, and nothing adds one to a closing transport: no read callback comes again.
        if transport.__dict__.get("_sock", False) is not None:
            return False
        transport.__dict__["_read_ready_cb"] = None
        self.released += 1
        return True


def _is_selector_transport(transport: asyncio.BaseTransport) -> bool:
    """A transport of asyncio's selector loop, whose attributes ``_release`` knows."""
    attributes = getattr(transport, "__dict__", None)
    return attributes is not None and "_read_ready_cb" in attributes and "_sock" in attributes
