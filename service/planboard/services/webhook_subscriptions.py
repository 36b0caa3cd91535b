"""The webhooks worker's cache of each workspace's active webhooks (its subscriptions).

The fan-out needs a workspace's active webhooks for every event; reading them from
MongoDB per event (or per batch) was a round trip each. The worker keeps them in
process, per workspace, and learns of changes through a **subscription generation** in
Redis (``planboard:webhooks-gen:<workspace>``): every change to a workspace's webhooks —
created, updated (URL, filters, secret, enabled/disabled), deleted, auto-disabled by the
worker — increments it *after* the MongoDB write (``bump``). An entry remembers the
generation read *before* it was loaded; each batch reads the generations of its
workspaces with one ``MGET`` and reloads (one ``find`` for all of them) the entries
whose generation moved. So an event consumed after a change's generation bump always
sees the change, whichever replica made it.

Bounded staleness: an entry is also reloaded once it is ``ttl_s`` old
(``PLANBOARD_WEBHOOK_SUBSCRIPTION_TTL_S``, 10 s by default). That is the longest a
change can go unseen, which happens only if its bump failed (Redis unreachable for the
writer; the write itself still succeeds). While the worker cannot read Redis it reads
MongoDB for every batch (no caching), and a worker without Redis never caches.
Deliveries the fan-out hands straight to its own delivery loop (services/webhooks.py
``HandOff``) are sent with the webhook as that batch read it; every other attempt re-reads
its webhook when it is claimed, so a disabled or deleted webhook's pending deliveries
are cancelled, not sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.services.cache import REDIS_ERRORS
from planboard.store import webhooks as store
from planboard.store.document import Document

log = logging.getLogger(__name__)

PREFIX = "planboard:webhooks-gen:"
GENERATION_TTL_S = 7 * 86_400
DEFAULT_TTL_S = 10.0
MAX_WORKSPACES = 10_000  # entries kept; past that the oldest are dropped


async def bump(redis: Redis, workspace_ids: Iterable[str]) -> None:
    """The webhooks of these workspaces changed: new subscription generations."""
    keys = [PREFIX + w for w in dict.fromkeys(workspace_ids) if w]
    if not keys:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, GENERATION_TTL_S)
        await pipe.execute()


async def bump_quietly(redis: Redis, workspace_ids: Iterable[str]) -> None:
    """``bump``; a Redis failure is logged (workers then see the change within the TTL)."""
    try:
        await bump(redis, workspace_ids)
    except REDIS_ERRORS as exc:
        log.warning("webhook subscription generation bump failed: %s", exc)


@dataclass(slots=True)
class _Entry:
    generation: object  # the Redis value read before loading (None: no key yet)
    loaded_at: float
    webhooks: list[Document]


class SubscriptionCache:
    """Active webhooks per workspace, fresh by generation, at most ``ttl_s`` old."""

    def __init__(self, redis: Redis | None, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}
        self.loads = 0  # workspaces read from MongoDB (for tests and metrics)

    def forget(self, workspace_ids: Iterable[str]) -> None:
        for workspace_id in workspace_ids:
            self._entries.pop(workspace_id, None)

    async def _generations(self, workspace_ids: Sequence[str]) -> dict[str, object] | None:
        if self.redis is None:
            return None
        try:
            values = await self.redis.mget([PREFIX + w for w in workspace_ids])
        except REDIS_ERRORS as exc:
            log.warning("webhook subscription generations unreadable (%s); reading MongoDB", exc)
            return None
        return dict(zip(workspace_ids, values, strict=True))

    async def active(
        self, db: AsyncDatabase[Document], workspace_ids: Iterable[str]
    ) -> dict[str, list[Document]]:
        """Each workspace's active webhooks: one ``MGET``, and one ``find`` for what moved."""
        wanted = list(dict.fromkeys(workspace_ids))
        if not wanted:
            return {}
        generations = await self._generations(wanted)
        now = time.monotonic()
        found: dict[str, list[Document]] = {}
        stale: list[str] = []
        for workspace_id in wanted:
            entry = self._entries.get(workspace_id)
            if (
                generations is not None
                and entry is not None
                and entry.generation == generations[workspace_id]
                and now - entry.loaded_at < self.ttl_s
            ):
                found[workspace_id] = entry.webhooks
            else:
                stale.append(workspace_id)
        if stale:
            loaded = await store.active_for_workspaces(db, stale)
            self.loads += len(stale)
            for workspace_id in stale:
                webhooks = loaded.get(workspace_id, [])
                found[workspace_id] = webhooks
                if generations is not None:
                    self._entries.pop(workspace_id, None)  # re-inserted as the newest
                    self._entries[workspace_id] = _Entry(generations[workspace_id], now, webhooks)
            while len(self._entries) > MAX_WORKSPACES:
                del self._entries[next(iter(self._entries))]
        return found
