"""The ``webhooks`` and ``webhook_deliveries`` collections.

A delivery is one (webhook, event) pair: ``dedupe_key`` (unique) is
``<webhook id>:<event id>`` for deliveries made from events, so an event handled
twice creates no second delivery. Manual deliveries (pings, redeliveries) get a
key of their own.

Claiming is one conditional ``update_many`` over the due deliveries a loop found
(``status`` pending and due, or delivering with an expired lease, in the filter),
stamping them with a claim token unique to that claim: each document's update is
atomic, so of several delivery loops that see the same due delivery exactly one wins
it (its token is on it) and holds a lease (``lease_until``); a loop that dies
mid-attempt leaves a lease that expires and is claimed again. Outcomes are written
with the claim token in the filter, many at once (``settle_many``), so a loop whose
lease was taken over cannot overwrite the new holder's outcome.

Schedules are compared on epoch milliseconds (``next_attempt_ms``,
``lease_until_ms``), not on the datetimes kept for display: the dev server
compares datetimes at whole-second precision (measured), which would make
sub-second retries and leases fire early.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.store import bulk
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


async def active_for_workspaces(
    db: AsyncDatabase[Document], workspace_ids: list[str]
) -> dict[str, list[Document]]:
    """The active webhooks of each workspace (one ``find``); absent: none."""
    found: dict[str, list[Document]] = {}
    cursor = db[WEBHOOKS].find({"workspace_id": {"$in": workspace_ids}, "active": True})
    async for doc in cursor:
        found.setdefault(str(doc["workspace_id"]), []).append(doc)
    return found


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


async def insert_deliveries(db: AsyncDatabase[Document], docs: list[Document]) -> list[Document]:
    """Store many deliveries in one unordered insert; those stored now (others' keys existed)."""
    return [docs[n] for n in await bulk.insert_new(db[DELIVERIES], docs)]


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


def claim_stamp(*, owner: str, token: str, now: datetime, lease_until: datetime) -> Document:
    """The fields a claim sets (``attempts`` is counted apart)."""
    return {
        "status": DELIVERING,
        "claim": token,
        "lease_owner": owner,
        "lease_until": lease_until,
        "lease_until_ms": epoch_ms(lease_until),
        "last_attempt_at": now,
        "updated_at": now,
    }


async def claim_due(
    db: AsyncDatabase[Document],
    *,
    limit: int,
    owner: str,
    token: str,
    now: datetime,
    lease_until: datetime,
    stale_leases: bool = True,
) -> list[Document]:
    """Claim up to ``limit`` due deliveries for ``token``; those it won, as they are now.

    Due: pending with ``next_attempt_ms`` reached, then (optionally)
    delivering with an expired lease. Three round trips whatever ``limit`` (five when
    leases expired too).
    """
    if limit <= 0:
        return []
    now_ms = epoch_ms(now)
    due = {"status": PENDING, "next_attempt_ms": {"$lte": now_ms}}
    expired = {"status": DELIVERING, "lease_until_ms": {"$lt": now_ms}}
    # No sort: MongoDB's (status, next_attempt_ms) index yields them soonest first anyway,
    # and nx-27017 sorts every pending delivery in Python first (23 ms vs 3 ms at 5,000).
    cursor = db[DELIVERIES].find(due, {"_id": 1}).limit(limit)
    ready = [doc["_id"] async for doc in cursor]
    lapsed: list[Any] = []
    if stale_leases and len(ready) < limit:
        cursor = db[DELIVERIES].find(expired, {"_id": 1}).limit(limit - len(ready))
        lapsed = [doc["_id"] async for doc in cursor]
    stamp = claim_stamp(owner=owner, token=token, now=now, lease_until=lease_until)
    won = 0
    # one update per kind, never an $or beside other fields (docs/devstack.md: nx-27017
    # applies the other fields of an update filter to the first $or branch only)
    for ids, condition in ((ready, due), (lapsed, expired)):
        if ids:
            result = await db[DELIVERIES].update_many(
                {"_id": {"$in": ids}, **condition}, {"$set": stamp, "$inc": {"attempts": 1}}
            )
            won += result.modified_count
    if not won:
        return []  # nothing due, or another loop won every one
    # read back what this token won, as it is now (attempts, body: not our earlier copy)
    return [doc async for doc in db[DELIVERIES].find({"status": DELIVERING, "claim": token})]


async def settle(
    db: AsyncDatabase[Document], delivery_id: str, token: str, values: Document
) -> bool:
    """Write an attempt's outcome, if this claim still holds the delivery."""
    result = await db[DELIVERIES].update_one(
        {"_id": delivery_id, "claim": token, "status": DELIVERING}, {"$set": values}
    )
    return result.modified_count == 1


async def settle_many(
    db: AsyncDatabase[Document], outcomes: list[tuple[str, str, Document]]
) -> int:
    """``settle`` for many ``(delivery id, claim token, values)`` in one bulk write;
    how many were still held by their claim (and so written)."""
    if not outcomes:
        return 0
    result = await db[DELIVERIES].bulk_write(
        [
            UpdateOne({"_id": delivery_id, "claim": token, "status": DELIVERING}, {"$set": values})
            for delivery_id, token, values in outcomes
        ],
        ordered=False,
    )
    return result.modified_count


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
