"""The near cache: a process-local tier in front of Redis, kept correct by invalidations
pushed over Redis pub/sub.

A cached read that reaches Redis costs one or two network round trips, and the checks
around it (is the session revoked? is the caller a member?) one more each; together they
were most of a cached request's time. The near cache keeps the answers in the process's
memory instead, and every write that could change one of them says so on one pub/sub
channel (:data:`CHANNEL`) that each API process listens to:

- ``p:<project>`` — the project's generation changed (services/cache.py): its project,
  progress, task and task-list values;
- ``m:<workspace>`` — a membership of the workspace was added, changed or removed, or
  the workspace was deleted;
- ``s:<session>`` — the session was revoked (logout, password reset, refresh reuse);
- ``*`` — everything (every project generation dropped).

Correctness rests on four rules:

1. **Served only while listening.** Values are served only while the process holds a
   confirmed subscription (and its pings are answered). The moment the listener loses
   Redis, or before it has subscribed again, the near cache is emptied and every read
   goes to Redis or MongoDB as before; no message can be missed unnoticed.
2. **No stale fill.** A reader takes a :meth:`NearCache.stamp` before it reads what it
   will store; :meth:`NearCache.put` refuses the value if one of its tags was
   invalidated since (an invalidation that raced the read), so a value is never stored
   after the message that should have killed it.
3. **Read your writes.** The process that writes invalidates its own near cache before
   and again after its Redis invalidation (which publishes the message), so a request
   that follows the write's response in the same process never sees the old value.
   Other processes drop the value when the message reaches them: on one Redis, after a
   delay of the order of a network round trip.
4. **Bounded.** Entries live at most ``ttl_s`` seconds (a backstop: a process cut off
   from Redis in a way its pings have not yet shown serves nothing older than that), and
   the tier holds at most ``max_bytes`` of values (oldest first out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "planboard:invalidations"
ALL = "*"
TTL_S = 5.0
MAX_BYTES = 64 * 1024 * 1024
#: Tags whose last invalidation is remembered for racing fills; past this many, every
#: fill stamped before the newest invalidation is refused instead (bounded memory).
MAX_TAGS = 100_000
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def project_tag(project_id: str) -> str:
    return f"p:{project_id}"


def members_tag(workspace_id: str) -> str:
    return f"m:{workspace_id}"


def session_tag(session_id: str) -> str:
    return f"s:{session_id}"


def publish(pipe: Pipeline, tags: Iterable[str]) -> None:
    """Queue the message that invalidates ``tags`` in every process (on a pipeline, so it
    leaves with the write it announces)."""
    message = "\n".join(tags)
    if message:
        pipe.publish(CHANNEL, message)


async def announce(redis: Redis, near: NearCache | None, tags: tuple[str, ...]) -> None:
    """After a write whose source of truth is MongoDB (a membership): drop ``tags`` here
    and in every process. A Redis failure is logged, not raised: the write is done, the
    other processes' near caches are off while they cannot reach Redis, and one that still
    can serves the old answer for at most its ``ttl_s``."""
    if near is not None:
        near.invalidate(tags)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            publish(pipe, tags)
            await pipe.execute()
    except REDIS_ERRORS as exc:
        log.warning("could not announce invalidation of %s: %s", ", ".join(tags), exc)
    if near is not None:
        near.invalidate(tags)


@dataclass(slots=True)
class _Entry:
    value: Any
    expires: float
    size: int
    tags: tuple[str, ...]


class NearCache:
    """The near cache of one process. Not thread-safe: one per event loop."""

    def __init__(
        self,
        *,
        max_bytes: int = MAX_BYTES,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_tag: dict[str, set[str]] = {}
        self._invalidated_at: dict[str, int] = {}  # tag -> sequence number
        self._seq = 0
        self._floor = 0  # stamps below it are refused
        self._bytes = 0
        self._live = False

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.ttl_s > 0

    @property
    def live(self) -> bool:
        """Whether values are served (the invalidation listener is subscribed)."""
        return self._live

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def set_live(self, live: bool) -> None:
        """Start or stop serving; either way everything held so far is dropped."""
        self._reset()
        self._live = live and self.enabled

    def stamp(self) -> int:
        """Take before reading a value to :meth:`put`."""
        return self._seq

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        return entry.value

    def put(self, key: str, value: Any, tags: tuple[str, ...], *, stamp: int, size: int) -> bool:
        """Hold ``value`` unless the tier is not live, it is too big, or one of ``tags``
        was invalidated after ``stamp`` was taken."""
        if not self._live or size > self.max_bytes // 8 or stamp < self._floor:
            return False
        for tag in tags:
            if self._invalidated_at.get(tag, -1) > stamp:
                return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(value, self._clock() + self.ttl_s, size, tags)
        self._bytes += size
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))  # the oldest
        return True

    def invalidate(self, tags: Iterable[str]) -> None:
        """Drop every value carrying one of ``tags`` (``*``: everything) and refuse fills
        stamped before now."""
        for tag in tags:
            if tag == ALL:
                self._reset()
                continue
            self._seq += 1
            self._invalidated_at[tag] = self._seq
            for key in self._by_tag.pop(tag, ()):
                self._drop(key)
        if len(self._invalidated_at) > MAX_TAGS:
            self._invalidated_at.clear()
            self._floor = self._seq + 1
            self._seq += 1

    def _reset(self) -> None:
        self._entries.clear()
        self._by_tag.clear()
        self._invalidated_at.clear()
        self._bytes = 0
        self._seq += 1
        self._floor = self._seq

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]


class Listener:
    """Keeps a :class:`NearCache` live: subscribes to :data:`CHANNEL`, applies each
    message, pings when quiet, and on any failure stops the near cache serving and
    subscribes again (with backoff)."""

    def __init__(
        self,
        redis: Redis,
        near: NearCache,
        *,
        ping_s: float = 1.0,
        dead_s: float = 3.0,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.near = near
        self.ping_s = ping_s
        self.dead_s = dead_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.messages = 0
        self.subscriptions = 0
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop after the current wait (at most ``ping_s``). Cancelling the task alone is
        not enough: redis-py can swallow a cancellation that lands while it connects."""
        self._stopped = True
        self.near.set_live(False)

    async def run(self) -> None:
        """Listen until :meth:`stop` (or cancelled)."""
        delay = self.retry_s
        while not self.stopped:
            subscribed = self.subscriptions
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop serving, retry
                log.warning("near cache off: no invalidation channel (%s)", exc)
            if self.subscriptions != subscribed:  # it had worked: retry soon
                delay = self.retry_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_s)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            loop = asyncio.get_running_loop()
            heard = loop.time()
            pinged = heard
            while not self.stopped:
                message = await pubsub.get_message(timeout=self.ping_s)
                now = loop.time()
                if message is not None:
                    heard = now
                    self._apply(message)
                elif now - heard >= self.dead_s:
                    raise TimeoutError(f"no answer on the invalidation channel in {self.dead_s} s")
                if now - pinged >= self.ping_s and now - heard >= self.ping_s:
                    pinged = now
                    await pubsub.ping()
        finally:
            self.near.set_live(False)
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.stopped:
            return
        if kind == "subscribe":
            self.subscriptions += 1
            self.near.set_live(True)  # from here on no message is missed
            log.info("near cache on: listening for invalidations")
            return
        if kind != "message":
            return  # a pong
        data = message.get("data")
        text = data.decode() if isinstance(data, bytes) else str(data)
        self.messages += 1
        self.near.invalidate(text.split("\n"))
