"""Sliding-window rate limiting in Redis: one atomic Lua script per hit.

Each bucket is a sorted set of the hits counted in the current window, scored by the
Redis server's clock in microseconds (never the client's, so several API processes with
skewed clocks share one consistent window). A refused hit is not recorded: a client that
keeps hammering regains access as soon as its oldest counted hit slides out.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from planboard.config import RateLimit

KEY_PREFIX = "planboard:rl:"

# KEYS[1] bucket; ARGV[1] limit; ARGV[2] window in µs; ARGV[3] random member suffix.
# Returns {allowed (0/1), hits counted in the window, µs until the oldest hit leaves it}.
_SLIDING_WINDOW_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now_us - window_us))
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  local score = string.format('%.0f', now_us)
  redis.call('ZADD', key, score, score .. '-' .. ARGV[3])
  count = count + 1
  allowed = 1
end
local reset_us = 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset_us = tonumber(oldest[2]) + window_us - now_us
end
if count > 0 then
  redis.call('PEXPIRE', key, math.ceil(window_us / 1000))
end
return {allowed, count, reset_us}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit against a bucket."""

    allowed: bool
    limit: int
    remaining: int  # hits still allowed in the current window
    reset_s: int  # seconds until the oldest counted hit leaves the window
    retry_after_s: int  # 0 when allowed; >= 1 when refused


def storage_key(key: str) -> str:
    """The Redis key of a bucket: hashed, so any caller input maps to a bounded, safe key."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return KEY_PREFIX + digest


class SlidingWindowLimiter:
    """Counts hits per key in a sliding window kept in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW_LUA)

    async def hit(self, key: str, policy: RateLimit) -> Decision:
        """Record one hit for ``key`` if ``policy`` still allows it; never blocks."""
        window_us = policy.window_s * 1_000_000
        raw = await self._script(
            keys=[storage_key(key)],
            args=[policy.limit, window_us, secrets.token_hex(8)],
        )
        allowed_flag, count, reset_us = (int(value) for value in raw)
        reset_s = min(policy.window_s, max(1, math.ceil(reset_us / 1_000_000)))
        allowed = allowed_flag == 1
        return Decision(
            allowed=allowed,
            limit=policy.limit,
            remaining=max(0, policy.limit - count),
            reset_s=reset_s,
            retry_after_s=0 if allowed else reset_s,
        )
