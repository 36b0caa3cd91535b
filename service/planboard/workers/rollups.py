"""The ``rollups`` group: drops cached project roll-ups when a project's work changes."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services.cache import invalidate_project, invalidate_projects


def rollups_group(redis: Redis) -> ConsumerGroup:
    async def handle(event: Event) -> None:
        # Events are keyed by project id; a stale roll-up must never outlive a change.
        await invalidate_project(redis, event.key)

    async def handle_batch(events: Sequence[Event]) -> None:
        # once per project of the poll, in one round trip (order is irrelevant)
        await invalidate_projects(redis, list(dict.fromkeys(e.key for e in events)))

    return ConsumerGroup(
        name="rollups",
        families=("project", "task"),
        handle=handle,
        handle_batch=handle_batch,
        markers=False,  # dropping a cache entry twice is harmless
    )
