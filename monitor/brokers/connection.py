"""Connecting to the shared Redis, and the pace of reconnecting when it is away."""

from __future__ import annotations

import random

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

BACKOFF_FIRST, BACKOFF_CAP = 0.05, 5.0  # seconds between reconnection attempts: doubling, capped, jittered
CONNECTION_ERRORS = (RedisError, OSError)  # Redis away, refusing, or too slow: the broker's own failure


def backoff_delay(attempt: int) -> float:
    """Seconds before reconnection attempt ``attempt`` (0, 1, ...): half fixed, half random, so consoles spread out."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(attempt, 16))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def connect(url: str, timeout: float) -> Redis:
    """A client for ``url`` that fails at once when Redis is away (the broker does its own retrying)."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          retry=Retry(NoBackoff(), 0), retry_on_error=[])
