"""A Redis cache of search answers that never outlives the index it was read from.

Every workspace has a **search generation** (``planboard:search-gen:<workspace>``), and
there is one for the whole index (``planboard:search-gen:*``). The ``search`` worker
increments the workspace's after each change it applies to the index, ``planboard
reindex`` increments the whole index's. An answer is stored under a key made of the
question (caller, result types, query, filters, cursor, limit) **and the generations of
every workspace searched, read before the search ran**: a change to the index makes new
keys, so a cached answer is never older than the index it was read from (the same
read-generation-then-load order as services/cache.py; an answer computed while the index
changed is stored under the old generation and never served).

Redis failing is never an error: the search then runs uncached. Answers also expire
after ``TTL_S`` (and so do generations, after a week without changes: a generation that
starts again from 1 cannot meet an answer stored under an old 1, long expired).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from planboard.services.cache import REDIS_ERRORS, CacheMetrics

log = logging.getLogger(__name__)

PREFIX = "planboard:search-gen:"
WHOLE_INDEX = PREFIX + "*"
ANSWER_PREFIX = "planboard:search:"
TTL_S = 60
GENERATION_TTL_S = 7 * 86_400

Answer = dict[str, Any]


async def bump(
    redis: Redis, workspace_ids: Iterable[str | None] = (), *, everything: bool = False
) -> None:
    """A change reached the index (of these workspaces, or all of it): new generations."""
    keys = [WHOLE_INDEX] if everything else [PREFIX + w for w in dict.fromkeys(workspace_ids) if w]
    if not keys:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, GENERATION_TTL_S)
        await pipe.execute()


async def bump_quietly(
    redis: Redis, workspace_ids: Iterable[str | None] = (), *, everything: bool = False
) -> None:
    try:
        await bump(redis, workspace_ids, everything=everything)
    except REDIS_ERRORS as exc:  # answers then live at most TTL_S
        log.warning("search cache generation bump failed: %s", exc)


async def answer(
    redis: Redis,
    workspace_ids: Sequence[str],
    question: dict[str, Any],
    compute: Callable[[], Awaitable[Answer]],
    metrics: CacheMetrics | None = None,
) -> Answer:
    """The cached answer to ``question`` over ``workspace_ids``, else ``compute()``'s."""

    def count(result: str) -> None:
        if metrics is not None:
            metrics.requests.labels("search", result).inc()

    names = [WHOLE_INDEX, *(PREFIX + w for w in sorted(workspace_ids))]
    try:
        generations = await redis.mget(names)
    except REDIS_ERRORS:
        count("error")
        return await compute()
    stamp = [g.decode() if isinstance(g, bytes) else (g or "0") for g in generations]
    digest = hashlib.sha256(
        orjson.dumps(
            {"q": question, "ws": sorted(workspace_ids), "g": stamp},
            option=orjson.OPT_SORT_KEYS,
        )
    ).hexdigest()[:40]
    key = ANSWER_PREFIX + digest
    try:
        raw = await redis.get(key)
    except REDIS_ERRORS:
        count("error")
        return await compute()
    if raw is not None:
        try:
            cached = orjson.loads(raw)
        except orjson.JSONDecodeError:
            cached = None
        if isinstance(cached, dict):
            count("hit")
            return cached
    count("miss")
    if metrics is not None:
        metrics.loads.labels("search").inc()
    fresh = await compute()
    with contextlib.suppress(*REDIS_ERRORS):
        await redis.set(key, orjson.dumps(fresh), ex=TTL_S)
    return fresh
