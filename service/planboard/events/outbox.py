"""The transactional outbox: events stored in MongoDB with the change that caused them.

The outbox is a queue, not a log: the relay deletes the events Kafka acknowledged
(``remove_published``), so it holds only what is still to be published, plus the
documents it could not publish (``quarantine``: kept, marked, for inspection). Kafka
keeps the history. ``PLANBOARD_OUTBOX_KEEP_PUBLISHED`` keeps published events too,
marked (``mark_published``), until the cleanup purges them. A delete of a batch is one
cheap statement where marking each event published rewrites every document (on the dev
server 0.005 against 0.12 ms of server CPU per event, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from planboard import tracing
from planboard.events.envelope import Event, family_of
from planboard.store.counting import count
from planboard.store.document import Document

OUTBOX = "outbox"
log = logging.getLogger(__name__)


def outbox(db: AsyncDatabase[Document]) -> AsyncCollection[Document]:
    return db[OUTBOX]


def to_document(event: Event) -> Document:
    return {
        "_id": event.id,
        "type": event.type,
        "family": family_of(event.type),
        "key": event.key,
        "workspace_id": event.workspace_id,
        "occurred_at": event.occurred_at,
        "actor_id": event.actor_id,
        "request_id": event.request_id,
        "data": event.data,
        "trace": event.trace,
        # A boolean, not a null test on published_at: the dev server's count of
        # null equality is wrong (docs/devstack.md), and booleans index well.
        "published": False,
        "published_at": None,
    }


def from_document(doc: Document) -> Event:
    data: Any = doc.get("data") or {}
    occurred: Any = doc["occurred_at"]
    return Event(
        id=str(doc["_id"]),
        type=str(doc["type"]),
        key=str(doc["key"]),
        workspace_id=doc.get("workspace_id"),  # type: ignore[arg-type]
        occurred_at=occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC),
        actor_id=doc.get("actor_id"),  # type: ignore[arg-type]
        request_id=doc.get("request_id"),  # type: ignore[arg-type]
        data=dict(data),
        trace=doc.get("trace") or None,  # type: ignore[arg-type]
    )


async def record(
    db: AsyncDatabase[Document],
    events: list[Event],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Store events in the outbox, inside the caller's session/transaction if any."""
    if events:
        carrier = tracing.current_carrier()  # the request's trace context, when tracing is on
        if carrier:
            events = [e if e.trace else replace(e, trace=carrier) for e in events]
        await outbox(db).insert_many([to_document(e) for e in events], session=session)


async def pending(db: AsyncDatabase[Document], limit: int) -> list[Event]:
    """The oldest unpublished events, in the order they were written."""
    cursor = (
        outbox(db)
        .find({"published": False})
        .sort([("occurred_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    events: list[Event] = []
    async for doc in cursor:
        try:
            events.append(from_document(doc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A malformed document must not stall the whole outbox behind it.
            await quarantine(db, str(doc.get("_id")), f"{type(exc).__name__}: {exc}")
    return events


async def quarantine(db: AsyncDatabase[Document], event_id: str, reason: str) -> None:
    """Take an unpublishable document out of the queue, keeping it for inspection."""
    log.error("quarantined outbox document %s: %s", event_id, reason)
    await outbox(db).update_one(
        {"_id": event_id},
        {"$set": {"published": True, "quarantined": reason, "published_at": datetime.now(UTC)}},
    )


async def mark_published(db: AsyncDatabase[Document], ids: list[str]) -> None:
    """Mark events Kafka has acknowledged (``PLANBOARD_OUTBOX_KEEP_PUBLISHED``): kept
    until ``purge_published``."""
    if ids:
        await outbox(db).update_many(
            {"_id": {"$in": ids}}, {"$set": {"published": True, "published_at": datetime.now(UTC)}}
        )


async def remove_published(db: AsyncDatabase[Document], ids: list[str]) -> None:
    """Forget events Kafka has acknowledged (one ``delete_many``)."""
    if ids:
        await outbox(db).delete_many({"_id": {"$in": ids}})


async def backlog(db: AsyncDatabase[Document]) -> int:
    return await count(outbox(db), {"published": False})


async def purge_published(db: AsyncDatabase[Document], older_than: timedelta) -> int:
    """Forget quarantined documents and kept published events (``mark_published``)
    after a retention period."""
    cutoff = datetime.now(UTC) - older_than
    result = await outbox(db).delete_many({"published": True, "published_at": {"$lt": cutoff}})
    return result.deleted_count
