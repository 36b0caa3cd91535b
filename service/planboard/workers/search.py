"""The ``search`` group: keeps ``search_index`` current from project, task and comment
events (re-reads the entity each time, so redeliveries and reordering are harmless; a
poll's events are applied together, ``apply_events``)."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services import search_cache
from planboard.services.search import apply_event, apply_events
from planboard.store.document import Document


def search_group(db: AsyncDatabase[Document], redis: Redis) -> ConsumerGroup:
    async def handle(event: Event) -> None:
        await apply_event(db, event)
        # cached search answers of the workspace die with its old generation
        if event.workspace_id:
            await search_cache.bump_quietly(redis, [event.workspace_id])
        else:
            await search_cache.bump_quietly(redis, everything=True)

    async def handle_batch(events: Sequence[Event]) -> None:
        await apply_events(db, events)
        workspaces = [e.workspace_id for e in events]
        if any(w is None for w in workspaces):
            await search_cache.bump_quietly(redis, everything=True)
        else:
            await search_cache.bump_quietly(redis, workspaces)

    return ConsumerGroup(
        name="search",
        families=("project", "task", "comment"),
        handle=handle,
        handle_batch=handle_batch,
        markers=False,  # entries are rebuilt from the entity's current state
    )
