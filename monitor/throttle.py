"""The per-address throttle on guessed secrets: a doubling wait, then a lockout."""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

FIRST_DELAY, MAX_DELAY = 0.1, 5.0  # seconds an address waits after its first failure; the doubling stops here
MAX_TRACKED = 4096  # addresses remembered; more only push out the longest quiet (memory stays bounded)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    banned_until: float = 0.0
    waiting: bool = False


def failure_delay(failures: int) -> float:
    """Seconds an address waits before its next guess is checked, after ``failures`` failures."""
    return 0.0 if failures <= 0 else min(FIRST_DELAY * 2 ** min(failures - 1, 20), MAX_DELAY)


class Throttle:
    """Failed guesses per client address: a doubling wait before the next check, then a lockout."""

    class Refused(Exception):
        """The address is locked out or has a guess waiting already: answer 429, check nothing."""

        def __init__(self, retry_after: int) -> None:
            super().__init__(f"retry after {retry_after} s")
            self.retry_after = retry_after

    def __init__(self, failures: int, seconds: float, max_addresses: int = MAX_TRACKED) -> None:
        self.lockout_failures, self.lockout_seconds, self.max_addresses = failures, seconds, max_addresses
        self._table: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._table)

    def admit(self, address: str, now: float) -> float:
        """Seconds to wait before checking a guess from ``address``; raises Refused instead of checking it."""
        record = self._current(address, now)
        if record is None:
            return 0.0
        if record.banned_until > now:
            raise self.Refused(math.ceil(record.banned_until - now))
        wait = failure_delay(record.count)
        if record.waiting:  # one guess at a time: parallel guesses would skip the wait
            raise self.Refused(max(1, math.ceil(wait)))
        record.waiting = True
        return wait

    def release(self, address: str) -> None:
        """The guess admitted for ``address`` has been checked (or abandoned)."""
        if (record := self._table.get(address)) is not None:
            record.waiting = False

    def failed(self, address: str, now: float) -> int:
        """Count a failed guess; the address's failures so far (at lockout_failures it is locked out)."""
        record = self._current(address, now) or _Failures()
        self._table[address] = record
        self._table.move_to_end(address)
        record.count, record.last = record.count + 1, now
        if record.count >= self.lockout_failures:
            record.banned_until = now + self.lockout_seconds
        self._trim(now)
        return record.count

    def succeeded(self, address: str) -> None:
        """A right guess: forget the address's failures."""
        self._table.pop(address, None)

    def banned(self, now: float) -> int:
        """How many addresses are locked out at ``now``."""
        return sum(1 for record in self._table.values() if record.banned_until > now)

    def _current(self, address: str, now: float) -> _Failures | None:
        record = self._table.get(address)
        if record is not None and self._stale(record, now):
            del self._table[address]
            return None
        return record

    def _stale(self, record: _Failures, now: float) -> bool:
        return not record.waiting and record.banned_until <= now and now - record.last >= self.lockout_seconds

    def _trim(self, now: float) -> None:
        while self._table and self._stale(next(iter(self._table.values())), now):
            self._table.popitem(last=False)
        while len(self._table) > self.max_addresses:
            self._table.popitem(last=False)


def throttle_key(address: str) -> str:
    """The unit throttled: an IPv4 address, or an IPv6 /64 (one host commonly owns a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
