"""The ``webhooks`` and ``webhook_deliveries`` collections.

A delivery is one (webhook, event) pair: ``dedupe_key`` (unique) is
``<webhook id>:<event id>`` for deliveries made from events, so an event handled
twice creates no second delivery. Manual deliveries (pings, redeliveries) get a
key of their own.

Claiming is an atomic conditional update (``status`` and ``attempts`` or the
previous ``claim`` in the filter): of several delivery loops that see the same
due delivery, exactly one wins it and holds a lease (``lease_until``); a loop that
dies mid-attempt leaves a lease that expires and is claimed again.

Schedules are compared on epoch milliseconds (``next_attempt_ms``,
``lease_until_ms``), not on the datetimes kept for display: the dev server
compares datetimes at whole-second precision (measured), which would make
sub-second retries and leases fire early.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.store.document import Document
from planboard.store.pagination import Position, keyset_page

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"

# Delivery states. ``delivering`` holds a lease; the others are settled or waiting.
PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"
DELIVERY_STATES = (PENDING, DELIVERING, DELIVERED, FAILED, CANCELLED)
SETTLED_STATES = (DELIVERED, FAILED, CANCELLED)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- webhooks ---------------------------------------------------------------------------


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[WEBHOOKS].insert_one(doc)


async def get(db: AsyncDatabase[Document], workspace_id: str, webhook_id: str) -> Document | None:
    return await db[WEBHOOKS].find_one({"_id": webhook_id, "workspace_id": workspace_id})


async def get_by_id(db: AsyncDatabase[Document], webhook_id: str) -> Document | None:
    return await db[WEBHOOKS].find_one({"_id": webhook_id})


async def page(
    db: AsyncDatabase[Document], workspace_id: str, *, after: Position | None, limit: int
) -> tuple[list[Document], bool]:
    """A workspace's webhooks, oldest first; ``more`` when another page follows."""
    return await keyset_page(
        db[WEBHOOKS],
        {"workspace_id": workspace_id},
        field="_id",
        descending=False,
        after=after,
        limit=limit,
    )


async def active_for_workspace(db: AsyncDatabase[Document], workspace_id: str) -> list[Document]:
    cursor = db[WEBHOOKS].find({"workspace_id": workspace_id, "active": True})
    return [doc async for doc in cursor]


async def update(
    db: AsyncDatabase[Document],
    workspace_id: str,
    webhook_id: str,
    values: Document,
    *,
    expected_version: int | None,
) -> Document | None:
    """Set ``values`` and bump the version; None when missing or (with a version) stale."""
    query: dict[str, Any] = {"_id": webhook_id, "workspace_id": workspace_id}
    if expected_version is not None:
        query["version"] = expected_version
    return await db[WEBHOOKS].find_one_and_update(
        query, {"$set": values, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER
    )


async def delete(db: AsyncDatabase[Document], workspace_id: str, webhook_id: str) -> bool:
    result = await db[WEBHOOKS].delete_one({"_id": webhook_id, "workspace_id": workspace_id})
    return result.deleted_count == 1


async def delete_for_workspace(db: AsyncDatabase[Document], workspace_id: str) -> int:
    await db[DELIVERIES].delete_many({"workspace_id": workspace_id})
    result = await db[WEBHOOKS].delete_many({"workspace_id": workspace_id})
    return result.deleted_count


async def note_success(db: AsyncDatabase[Document], webhook_id: str, now: datetime) -> None:
    await db[WEBHOOKS].update_one(
        {"_id": webhook_id},
        {
            "$set": {
                "consecutive_failures": 0,
                "last_delivery_at": now,
                "last_delivery_status": DELIVERED,
            }
        },
    )


async def note_failure(
    db: AsyncDatabase[Document], webhook_id: str, now: datetime
) -> Document | None:
    """Count one more failed delivery in a row; the webhook after the change."""
    return await db[WEBHOOKS].find_one_and_update(
        {"_id": webhook_id},
        {
            "$inc": {"consecutive_failures": 1},
            "$set": {"last_delivery_at": now, "last_delivery_status": FAILED},
        },
        return_document=ReturnDocument.AFTER,
    )


async def disable(
    db: AsyncDatabase[Document], webhook_id: str, reason: str, now: datetime
) -> Document | None:
    """Deactivate an active webhook; None when it was not active (someone else did it)."""
    return await db[WEBHOOKS].find_one_and_update(
        {"_id": webhook_id, "active": True},
        {
            "$set": {
                "active": False,
                "disabled_reason": reason,
                "disabled_at": now,
                "updated_at": now,
            },
            "$inc": {"version": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


# --- deliveries -------------------------------------------------------------------------


async def insert_delivery(db: AsyncDatabase[Document], doc: Document) -> bool:
    """Store a new delivery; False when its ``dedupe_key`` already exists."""
    try:
        await db[DELIVERIES].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def get_delivery(
    db: AsyncDatabase[Document], webhook_id: str, delivery_id: str
) -> Document | None:
    return await db[DELIVERIES].find_one({"_id": delivery_id, "webhook_id": webhook_id})


async def get_delivery_by_id(db: AsyncDatabase[Document], delivery_id: str) -> Document | None:
    return await db[DELIVERIES].find_one({"_id": delivery_id})


async def deliveries_page(
    db: AsyncDatabase[Document],
    webhook_id: str,
    *,
    after: Position | None,
    limit: int,
    status: str | None = None,
    event_type: str | None = None,
) -> tuple[list[Document], bool]:
    """A webhook's deliveries, newest first (ids are time-ordered)."""
    query: dict[str, Any] = {"webhook_id": webhook_id}
    if status is not None:
        query["status"] = status
    if event_type is not None:
        query["event_type"] = event_type
    return await keyset_page(
        db[DELIVERIES], query, field="_id", descending=True, after=after, limit=limit
    )


async def many(db: AsyncDatabase[Document], webhook_ids: list[str]) -> dict[str, Document]:
    cursor = db[WEBHOOKS].find({"_id": {"$in": webhook_ids}})
    return {str(doc["_id"]): doc async for doc in cursor}


async def due(
    db: AsyncDatabase[Document], now: datetime, limit: int, *, stale_leases: bool = True
) -> list[Document]:
    """Deliveries whose next attempt is due, then (optionally) those whose lease expired."""
    if limit <= 0:
        return []
    cursor = (
        db[DELIVERIES]
        .find({"status": PENDING, "next_attempt_ms": {"$lte": epoch_ms(now)}})
        .sort("next_attempt_ms", ASCENDING)
        .limit(limit)
    )
    found = [doc async for doc in cursor]
    if stale_leases and len(found) < limit:
        stale = db[DELIVERIES].find(
            {"status": DELIVERING, "lease_until_ms": {"$lt": epoch_ms(now)}}
        )
        found += [doc async for doc in stale.limit(limit - len(found))]
    return found


async def claim(
    db: AsyncDatabase[Document],
    delivery: Document,
    *,
    owner: str,
    token: str,
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Take ``delivery`` for one attempt; False when another loop took it first."""
    query: dict[str, Any] = {"_id": delivery["_id"], "status": delivery["status"]}
    if delivery["status"] == PENDING:
        query["attempts"] = delivery["attempts"]
        query["next_attempt_ms"] = {"$lte": epoch_ms(now)}
    else:  # an expired lease: only the holder of that claim may be replaced
        query["claim"] = delivery["claim"]
        query["lease_until_ms"] = {"$lt": epoch_ms(now)}
    result = await db[DELIVERIES].update_one(
        query,
        {
            "$set": {
                "status": DELIVERING,
                "claim": token,
                "lease_owner": owner,
                "lease_until": lease_until,
                "lease_until_ms": epoch_ms(lease_until),
                "last_attempt_at": now,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
        },
    )
    return result.modified_count == 1


async def settle(
    db: AsyncDatabase[Document], delivery_id: str, token: str, values: Document
) -> bool:
    """Write an attempt's outcome, if this claim still holds the delivery."""
    result = await db[DELIVERIES].update_one(
        {"_id": delivery_id, "claim": token, "status": DELIVERING}, {"$set": values}
    )
    return result.modified_count == 1


async def release(db: AsyncDatabase[Document], delivery_id: str, token: str, now: datetime) -> None:
    """Give back a claim whose attempt never started (shutdown)."""
    await db[DELIVERIES].update_one(
        {"_id": delivery_id, "claim": token, "status": DELIVERING},
        {
            "$set": {
                "status": PENDING,
                "next_attempt_at": now,
                "next_attempt_ms": epoch_ms(now),
                "updated_at": now,
            },
            "$inc": {"attempts": -1},
        },
    )


async def delete_deliveries_of(db: AsyncDatabase[Document], webhook_id: str) -> int:
    result = await db[DELIVERIES].delete_many({"webhook_id": webhook_id})
    return result.deleted_count


async def purge_settled(db: AsyncDatabase[Document], older_than: datetime) -> int:
    """Forget settled deliveries created before ``older_than`` (the log's retention)."""
    result = await db[DELIVERIES].delete_many(
        {"created_at": {"$lt": older_than}, "status": {"$in": list(SETTLED_STATES)}}
    )
    return result.deleted_count
