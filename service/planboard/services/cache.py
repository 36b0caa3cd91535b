"""Cache keys, invalidation and the Redis read-through cache, in one place for the API
and the workers.

Values are JSON ``{"g": generation, "p": project id, "ws": workspace id, ...}``. Every
project has a **generation** (``planboard:gen:<project>``, a random token): a value is
served only while its ``g`` equals the project's current generation. Invalidation
replaces the generation (and deletes the project's own keys), so:

- a fill that read the generation *before* loading from MongoDB and stores after an
  invalidation stores a value nobody will ever serve (no stale data from races);
- a task's value (keyed by task id) and a page of a project's task list (keyed by a
  digest of the query) die with the project's generation, so no list of keys is kept;
- a missing (expired or evicted) generation invalidates everything of the project.

Single flight: concurrent misses of one key and generation share one load — in a
process through an ``asyncio`` future, across processes through a short Redis lock
(``SET NX PX``) whose losers poll for the value, then load themselves if it is late.

Redis failing is never an error: reads then come from MongoDB (fail open), counted as
``result="error"``. The API invalidates synchronously after its own writes; the
``rollups`` worker invalidates again from the events (writes of other processes).

An invalidation Redis missed (it was down or unreachable when the write happened) is
remembered by the process that made the write and replayed before that process serves
anything from the cache again: a Redis that comes back with the values it held before the
outage (a partition, or a restart from a snapshot) never hides a write made meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from planboard.domain.encoding import dumps, json_default
from planboard.services import near_cache

log = logging.getLogger(__name__)

PREFIX = "planboard:"
TTL_S = 60
GENERATION_TTL_S = 86_400  # outlives every value; refreshed on each invalidation
LOCK_MS = 5_000
WAIT_S = 2.0
POLL_S = 0.02
#: Invalidations missed during an outage that a process remembers one by one; past this
#: many it drops every generation when Redis returns instead (bounded memory).
MAX_PENDING = 10_000
REPLAY_BATCH = 500

Value = dict[str, Any]
Loader = Callable[[], Awaitable[Value | None]]
Fill = Literal["filled", "present", "absent", "busy", "loaded"]
REDIS_ERRORS = near_cache.REDIS_ERRORS


def project_keys(project_id: str) -> list[str]:
    """Every cached read keyed by the project itself."""
    return [f"{PREFIX}progress:{project_id}", f"{PREFIX}project:{project_id}"]


def generation_key(project_id: str) -> str:
    return f"{PREFIX}gen:{project_id}"


def project_key(project_id: str) -> str:
    return f"{PREFIX}project:{project_id}"


def progress_key(project_id: str) -> str:
    return f"{PREFIX}progress:{project_id}"


def task_key(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def task_list_key(project_id: str, request: dict[str, Any]) -> str:
    """One page of a project's task list, named by everything that shapes the answer
    (filters with ``me`` resolved to the caller, sort, cursor, limit, sparse fields)."""
    digest = hashlib.sha256(
        orjson.dumps(request, default=json_default, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:32]
    return f"{PREFIX}tasks:{project_id}:{digest}"


async def invalidate_project(redis: Redis, project_id: str) -> int:
    """A new generation for the project (kills every value of it), its keys deleted, and
    the news published to every process's near cache (services/near_cache.py)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(generation_key(project_id), secrets.token_hex(8), ex=GENERATION_TTL_S)
        pipe.delete(*project_keys(project_id))
        near_cache.publish(pipe, (near_cache.project_tag(project_id),))
        results = await pipe.execute()
    return int(results[1])


async def invalidate_projects(redis: Redis, project_ids: list[str]) -> None:
    """:func:`invalidate_project` for many projects in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for project_id in project_ids:
            pipe.set(generation_key(project_id), secrets.token_hex(8), ex=GENERATION_TTL_S)
            pipe.delete(*project_keys(project_id))
        near_cache.publish(pipe, map(near_cache.project_tag, project_ids))
        await pipe.execute()


async def drop_all_generations(redis: Redis) -> int:
    """Delete every project's generation: every cached value of every project dies."""
    dropped = 0
    batch: list[bytes | str] = []
    async for key in redis.scan_iter(match=f"{PREFIX}gen:*", count=1000):
        batch.append(key)
        if len(batch) >= REPLAY_BATCH:
            dropped += int(await redis.delete(*batch))
            batch = []
    if batch:
        dropped += int(await redis.delete(*batch))
    await redis.publish(near_cache.CHANNEL, near_cache.ALL)
    return dropped


def _decode(raw: bytes | str | None) -> Value | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "planboard_cache_requests_total",
            "Read-through cache lookups by kind and result (hit, miss, error, off).",
            ("kind", "result"),
            registry=registry,
        )
        self.loads = Counter(
            "planboard_cache_loads_total",
            "Values loaded from MongoDB to fill the cache (single flight: one per miss burst).",
            ("kind",),
            registry=registry,
        )


class ReadThrough:
    """The read-through cache of one process (one per API app)."""

    def __init__(
        self,
        redis: Redis,
        metrics: CacheMetrics,
        *,
        ttl_s: int = TTL_S,
        lock_ms: int = LOCK_MS,
        wait_s: float = WAIT_S,
        enabled: bool = True,
        near: near_cache.NearCache | None = None,
    ) -> None:
        self.redis = redis
        # the process-local tier in front of Redis (services/near_cache.py)
        self.near = near if enabled else None
        self.enabled = enabled  # off: every read loads from MongoDB (PLANBOARD_CACHE_ENABLED)
        self.metrics = metrics
        self.ttl_s = ttl_s
        self.lock_ms = lock_ms
        self.wait_s = wait_s
        self._inflight: dict[tuple[str, str], asyncio.Future[Value | None]] = {}
        # Projects written while Redis was unavailable, whose values Redis may still hold.
        self._pending: set[str] = set()
        self._pending_all = False  # more than MAX_PENDING: drop every generation instead
        self._near_hits: dict[str, Any] = {}  # kind -> its counter child (hot path)

    @property
    def pending(self) -> int:
        """How many missed invalidations wait for Redis (``MAX_PENDING + 1`` once all do)."""
        return MAX_PENDING + 1 if self._pending_all else len(self._pending)

    async def invalidate(self, project_id: str) -> None:
        """Invalidation on the API's write path, after the database write. A Redis outage
        does not fail the write: the project is remembered and invalidated before this
        process serves anything from the cache again (:meth:`replay`)."""
        tags = (near_cache.project_tag(project_id),)
        if self.near is not None:
            self.near.invalidate(tags)
        try:
            await self.replay()
            await invalidate_project(self.redis, project_id)
        except REDIS_ERRORS as exc:
            self._remember(project_id)
            log.warning("cache invalidation of project %s failed: %s", project_id, exc)
        if self.near is not None:
            # again: a read that ran between the first drop and the new generation in
            # Redis may have stored the old value here (read your writes, near_cache.py)
            self.near.invalidate(tags)

    def _remember(self, project_id: str) -> None:
        if self._pending_all:
            return
        self._pending.add(project_id)
        if len(self._pending) > MAX_PENDING:
            self._pending_all = True
            self._pending.clear()

    async def replay(self) -> None:
        """Apply the invalidations Redis missed; raises a Redis error while it still fails
        (what is not yet applied stays remembered)."""
        if self._pending_all:
            await drop_all_generations(self.redis)
            self._pending_all = False
            log.info("cache: dropped every generation after missed invalidations")
        while self._pending:
            batch = list(self._pending)[:REPLAY_BATCH]
            await invalidate_projects(self.redis, batch)
            self._pending.difference_update(batch)
            log.info("cache: replayed %d missed invalidation(s)", len(batch))

    async def get(
        self,
        kind: str,
        key: str,
        project_id: str | Callable[[], Awaitable[str | None]],
        load: Loader,
    ) -> Value | None:
        """The value under ``key``, else ``load()``'s (stored); None when load finds none.

        ``project_id`` names the project whose generation guards the value, or resolves
        it (for a task by id) — called only on a miss, before the load.
        """
        if not self.enabled:
            self.metrics.requests.labels(kind, "off").inc()
            return await self._load(kind, load)
        near = self.near
        stamp = -1
        if near is not None and near.live:
            found: Value | None = near.get(key)
            if found is not None:
                self._near_hit(kind)
                return found
            stamp = near.stamp()  # before anything is read that the near cache may keep
        try:
            if self._pending or self._pending_all:
                await self.replay()  # never serve what a missed invalidation should have killed
            value, generation, size = await self._lookup(key, project_id)
        except REDIS_ERRORS as exc:
            self.metrics.requests.labels(kind, "error").inc()
            log.debug("cache %s unavailable (%s): reading MongoDB", kind, exc)
            return await self._load(kind, load)
        if value is not None:
            self.metrics.requests.labels(kind, "hit").inc()
            if near is not None:
                near.put(key, value, (near_cache.project_tag(value["p"]),), stamp=stamp, size=size)
            return value
        self.metrics.requests.labels(kind, "miss").inc()
        pid = project_id if isinstance(project_id, str) else None
        try:
            if generation is None:
                if pid is None and not isinstance(project_id, str):
                    pid = await project_id()  # a task: its project is known only now
                if pid is None:
                    return await self._load(kind, load)
                generation = await self._generation(pid)
        except REDIS_ERRORS:
            return await self._load(kind, load)
        flight = (key, generation)
        running = self._inflight.get(flight)
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this request was cancelled
                return await self._load(kind, load)  # the leader's request was cancelled
        future: asyncio.Future[Value | None] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            result, fill = await self._fill_as(kind, key, generation, load, strict=False)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            # "filled"/"present": a value of the generation read after the stamp
            if near is not None and pid and result is not None and fill in ("filled", "present"):
                tags = (near_cache.project_tag(pid),)
                near.put(key, result, tags, stamp=stamp, size=len(dumps(result)))
            return result
        finally:
            del self._inflight[flight]

    def _near_hit(self, kind: str) -> None:
        counter = self._near_hits.get(kind)
        if counter is None:
            counter = self._near_hits[kind] = self.metrics.requests.labels(kind, "near")
        counter.inc()

    async def _lookup(
        self, key: str, project_id: str | Callable[[], Awaitable[str | None]]
    ) -> tuple[Value | None, str | None, int]:
        """The valid value (or None), the current generation when it was read, and the
        value's size in bytes."""
        if isinstance(project_id, str):
            raw, gen_raw = await self.redis.mget([key, generation_key(project_id)])
            value, generation = _decode(raw), _text(gen_raw)
            if value is not None and generation is not None and value.get("g") == generation:
                value.setdefault("p", project_id)
                return value, generation, len(raw or b"")
            return None, generation, 0
        raw = await self.redis.get(key)
        value = _decode(raw)
        if raw is None or value is None or not isinstance(value.get("p"), str):
            return None, None, 0
        generation = _text(await self.redis.get(generation_key(value["p"])))
        if generation is not None and value.get("g") == generation:
            return value, generation, len(raw)
        return None, None, 0

    async def _generation(self, project_id: str) -> str:
        """The project's generation, created when missing (all old values die with it)."""
        gen_key = generation_key(project_id)
        await self.redis.set(gen_key, secrets.token_hex(8), nx=True, ex=GENERATION_TTL_S)
        found = _text(await self.redis.get(gen_key))
        return found or ""

    async def _load(self, kind: str, load: Loader) -> Value | None:
        self.metrics.loads.labels(kind).inc()
        return await load()

    async def _fill_as(
        self, kind: str, key: str, generation: str, load: Loader, *, strict: bool
    ) -> tuple[Value | None, Fill]:
        """Load and store under the single-flight lock. ``strict`` (a warm) lets Redis
        errors propagate and never loads without storing."""
        lock = f"{key}:lock:{generation}"
        token = secrets.token_hex(8)
        try:
            leader = bool(await self.redis.set(lock, token, nx=True, px=self.lock_ms))
        except REDIS_ERRORS:
            if strict:
                raise
            return await self._load(kind, load), "loaded"
        if not leader:
            waited = await self._wait_for(key, generation)
            if waited is not None:
                return waited, "present"  # another process filled it
            if strict:
                return None, "busy"
            return await self._load(kind, load), "loaded"  # the leader is slow or gone
        try:
            # Double check under the lock: a request that missed before another filler
            # stored the value (and released the lock) must not load it a second time.
            try:
                filled = await self._stored(key, generation)
            except REDIS_ERRORS:
                if strict:
                    raise
                filled = None
            if filled is not None:
                return filled, "present"
            value = await self._load(kind, load)  # read after the generation: never stale
            if value is None:
                return None, "absent"
            value["g"] = generation
            try:
                await self.redis.set(key, dumps(value), ex=self.ttl_s)
            except REDIS_ERRORS:
                if strict:
                    raise
                return value, "loaded"
            return value, "filled"
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                if _text(await self.redis.get(lock)) == token:
                    await self.redis.delete(lock)

    async def warm(self, kind: str, key: str, project_id: str, load: Loader) -> Fill:
        """Fill ``key`` now unless a valid value is there (``planboard cache-warm``).

        The same path as a miss of :meth:`get` — the generation read before the load,
        the single-flight lock, the TTL — so a warm racing a write stores a value of the
        old generation that is never served. Redis errors propagate (a warm without
        Redis is a failure, not a fallback). Returns ``"filled"``, ``"present"`` (valid
        already, or filled meanwhile by another process), ``"absent"`` (nothing to
        cache: gone from MongoDB) or ``"busy"`` (another filler held the lock too long).
        """
        value, generation, _ = await self._lookup(key, project_id)
        if value is not None:
            return "present"
        if generation is None:
            generation = await self._generation(project_id)
        _, outcome = await self._fill_as(kind, key, generation, load, strict=True)
        return outcome

    async def _wait_for(self, key: str, generation: str) -> Value | None:
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(POLL_S)
            try:
                value = await self._stored(key, generation)
            except REDIS_ERRORS:
                return None
            if value is not None:
                return value
        return None

    async def _stored(self, key: str, generation: str) -> Value | None:
        """The value stored under ``key`` if it is of ``generation`` (Redis errors raise)."""
        value = _decode(await self.redis.get(key))
        return value if value is not None and value.get("g") == generation else None
