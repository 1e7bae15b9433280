"""The Redis keys of a shared channel and the Lua scripts that change them atomically.

Per channel: ``monitor:<channel>:ring`` (a capped stream of patch frames: the resume ring),
``monitor:<channel>:state`` (a hash: epoch, seq and the state JSON at that seq),
``monitor:<channel>:leader`` (the poller lock, ``<console>:<fence>``, with an expiry) and
``monitor:<channel>:fence`` (a counter, incremented by every acquisition). Every write to
the ring and state is a script that first checks the writer's lock and fence, so a deposed
leader's late writes are refused, and that the write continues the state's sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

REFUSED_FENCE = -1  # the writer no longer holds the lock, or a newer leader was elected
REFUSED_GAP = -2  # the write does not continue the state's (epoch, seq)


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The Redis keys of one channel."""

    ring: str
    state: str
    leader: str
    fence: str

    @classmethod
    def of(cls, channel: str) -> ChannelKeys:
        """The keys of ``channel``."""
        base = f"monitor:{channel}:"
        return cls(base + "ring", base + "state", base + "leader", base + "fence")


# KEYS: leader, fence. ARGV: console id, ttl ms. The fence number when acquired, else 0.
ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local fence = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence
"""

# KEYS: leader. ARGV: token, ttl ms. 1 when the lock was still ours and is extended, else 0.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: leader. ARGV: token. Let go of a lock that is still ours.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# KEYS: leader, fence, state, ring. ARGV: token, fence, epoch, seq, frame, state JSON, ring size, seed.
# A seed (ARGV[8] == '1') starts a new epoch; anything else must be the state's next seq.
WRITE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] or redis.call('get', KEYS[2]) ~= ARGV[2] then return -1 end
if ARGV[8] ~= '1' then
  local held = redis.call('hmget', KEYS[3], 'epoch', 'seq')
  if held[1] ~= ARGV[3] or tonumber(held[2]) + 1 ~= tonumber(ARGV[4]) then return -2 end
end
redis.call('hset', KEYS[3], 'epoch', ARGV[3], 'seq', ARGV[4], 'state', ARGV[6])
redis.call('xadd', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'epoch', ARGV[3], 'seq', ARGV[4], 'frame', ARGV[5])
return 1
"""
