"""Token buckets: a client's frames, and new connections per address."""

from __future__ import annotations

from collections import OrderedDict

MAX_ADDRESSES = 4096  # buckets remembered; the least recently seen is forgotten first, so memory stays bounded


class TokenBucket:
    """``burst`` at once, ``per_second`` sustained; time is passed in, so it is easy to test."""

    __slots__ = ("per_second", "burst", "_tokens", "_stamp")

    def __init__(self, per_second: float, burst: int, now: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False when the bucket is empty."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class AddressRates:
    """One bucket per client address, for new connections."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, now: float) -> bool:
        """Spend one of ``address``'s tokens; False when it opens connections faster than allowed."""
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._buckets.popitem(last=False)  # O(1) on the accept path, even under an address flood
            bucket = self._buckets[address] = TokenBucket(self.per_second, self.burst, now)
        else:
            self._buckets.move_to_end(address)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)
