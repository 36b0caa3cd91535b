"""The ``rollups`` group: drops cached project roll-ups when a project's work changes."""

from __future__ import annotations

from redis.asyncio import Redis

from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services.cache import invalidate_project


def rollups_group(redis: Redis) -> ConsumerGroup:
    async def handle(event: Event) -> None:
        # Events are keyed by project id; a stale roll-up must never outlive a change.
        await invalidate_project(redis, event.key)

    return ConsumerGroup(name="rollups", families=("project", "task"), handle=handle)
