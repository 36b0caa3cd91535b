"""Leases in MongoDB: one holder at a time across processes (relay leader, scheduler)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.store.document import Document

LOCKS = "locks"


async def acquire(db: AsyncDatabase[Document], name: str, owner: str, ttl: timedelta) -> bool:
    """Take or renew the lease ``name`` for ``owner``; False if someone else holds it."""
    now = datetime.now(UTC)
    try:
        await db[LOCKS].update_one(
            # $and: nx-27017 applies fields beside an $or to its first branch only
            # (docs/devstack.md), which let a second owner take a held lease
            {"$and": [{"_id": name}, {"$or": [{"owner": owner}, {"expires_at": {"$lt": now}}]}]},
            {"$set": {"owner": owner, "expires_at": now + ttl, "renewed_at": now}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False  # the lease exists and is held by another owner
    return True  # matched (held by us or expired) or newly inserted


async def release(db: AsyncDatabase[Document], name: str, owner: str) -> None:
    await db[LOCKS].delete_one({"_id": name, "owner": owner})
