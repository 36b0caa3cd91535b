"""The ``search`` group: keeps ``search_index`` current from project, task and comment
events (re-reads the entity each time, so redeliveries and reordering are harmless)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services import search_cache
from planboard.services.search import apply_event
from planboard.store.document import Document


def search_group(db: AsyncDatabase[Document], redis: Redis) -> ConsumerGroup:
    async def handle(event: Event) -> None:
        await apply_event(db, event)
        # cached search answers of the workspace die with its old generation
        if event.workspace_id:
            await search_cache.bump_quietly(redis, [event.workspace_id])
        else:
            await search_cache.bump_quietly(redis, everything=True)

    return ConsumerGroup(name="search", families=("project", "task", "comment"), handle=handle)
