"""Token buckets: a client's frames, and new connections per address."""

from __future__ import annotations

MAX_ADDRESSES = 4096  # buckets remembered; full (idle) ones are forgotten first, so memory stays bounded


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

    def full(self, now: float) -> bool:
        """True when the bucket has refilled, so forgetting it changes nothing."""
        return self._tokens + (now - self._stamp) * self.per_second >= self.burst


class AddressRates:
    """One bucket per client address, for new connections."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, address: str, now: float) -> bool:
        """Spend one of ``address``'s tokens; False when it opens connections faster than allowed."""
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_ADDRESSES:
                self._forget_full(now)
            bucket = self._buckets[address] = TokenBucket(self.per_second, self.burst, now)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        self._buckets = {a: b for a, b in self._buckets.items() if not b.full(now)}
        while len(self._buckets) >= MAX_ADDRESSES:  # all busy: an address flood; drop the oldest
            del self._buckets[next(iter(self._buckets))]
