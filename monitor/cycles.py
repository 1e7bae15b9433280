"""Leaving no reference cycle behind a closed connection, so that reference counting frees it.

The collection policy (``gcpolicy.py``) freezes what lives. A frozen object that later dies
inside a cycle waits for the one full walk of the heap, which takes seconds at 10,000
connections (1.8 s measured, all deliveries waiting). A closed WebSocket left two cycles:

- aiohttp keeps the exception that ended the connection (``ws.exception()``; a vanished
  peer's "Cannot write to closing transport", its context the end of the stream). The
  tracebacks' frames hold the response, the request, the protocol: 48 objects a connection.
- asyncio's selector transport keeps its read callback, a method bound to itself, after the
  connection is lost: the transport, its socket object and their dicts, 6 objects.

The tracebacks are dropped when the session ends (nothing reads them later: the close was
logged). The read callback is cleared on the policy's next look after the transport has
lost its connection. Asyncio's transport is not public API: a transport of another kind
(another event loop), or one that does not finish closing within ``PATIENCE`` looks, is
counted in ``cyclic`` instead, and the policy reclaims those with a full walk, as before.
"""

from __future__ import annotations

import asyncio

PATIENCE = 120  # looks (about seconds) a transport may take to lose its connection
MAX_PENDING = 100_000  # transports waiting at most: past it, a closure counts as cyclic
CHAIN = 16  # chained exceptions followed at most


def drop_tracebacks(exc: BaseException | None) -> None:
    """Forget the tracebacks of ``exc`` and the exceptions chained to it: their frames hold the connection."""
    seen = 0
    while exc is not None and seen < CHAIN:
        exc.__traceback__ = None
        exc, seen = exc.__cause__ or exc.__context__, seen + 1


class Releases:
    """Transports of closed connections, released from their self-cycle once asyncio is done with them."""

    def __init__(self) -> None:
        self.cyclic = 0  # closures that may have left a cycle: the policy's churn
        self.released = 0
        self._pending: dict[asyncio.BaseTransport, int] = {}  # transport -> looks waited

    def add(self, transport: asyncio.BaseTransport | None) -> None:
        """A connection closed on ``transport``: release it now if asyncio is done with it, else on a later look."""
        if transport is None:
            return
        if not _is_selector_transport(transport) or len(self._pending) >= MAX_PENDING:
            self.cyclic += 1
        elif not self._release(transport):
            self._pending.setdefault(transport, 0)

    def sweep(self) -> None:
        """One look: release the transports that lost their connection; give up on the slowest."""
        for transport, waited in list(self._pending.items()):
            if self._release(transport):
                del self._pending[transport]
            elif waited + 1 >= PATIENCE:
                del self._pending[transport]
                self.cyclic += 1
            else:
                self._pending[transport] = waited + 1

    @property
    def pending(self) -> int:
        """Transports still closing."""
        return len(self._pending)

    def _release(self, transport: asyncio.BaseTransport) -> bool:
        # _call_connection_lost sets _sock to None last: from then on the loop never calls back.
        if transport.__dict__.get("_sock", False) is not None:
            return False
        transport.__dict__["_read_ready_cb"] = None
        self.released += 1
        return True


def _is_selector_transport(transport: asyncio.BaseTransport) -> bool:
    """A transport of asyncio's selector loop, whose attributes ``_release`` knows."""
    attributes = getattr(transport, "__dict__", None)
    return attributes is not None and "_read_ready_cb" in attributes and "_sock" in attributes
