"""Personal access tokens (stored hashed, scoped, expiring, revocable)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

PATS = "personal_access_tokens"
LAST_USED_GRANULARITY = timedelta(minutes=1)


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[PATS].insert_one(doc)


async def get(db: AsyncDatabase[Document], token_id: str) -> Document | None:
    return await db[PATS].find_one({"_id": token_id})


async def of_user(db: AsyncDatabase[Document], user_id: str) -> list[Document]:
    cursor = db[PATS].find({"user_id": user_id}, {"secret_hash": 0}).sort("created_at", DESCENDING)
    return [doc async for doc in cursor]


async def revoke(db: AsyncDatabase[Document], user_id: str, token_id: str, now: datetime) -> bool:
    result = await db[PATS].update_one(
        {"_id": token_id, "user_id": user_id, "revoked": False},
        {"$set": {"revoked": True, "revoked_at": now}},
    )
    return result.modified_count == 1


async def touch(db: AsyncDatabase[Document], token_id: str, now: datetime) -> None:
    """Record use, at most once a minute (no write on every request)."""
    await db[PATS].update_one(
        {  # $and: nx-27017 applies fields beside an $or to its first branch only
            "$and": [
                {"_id": token_id},
                {"$or": [{"used": False}, {"last_used_at": {"$lt": now - LAST_USED_GRANULARITY}}]},
            ]
        },
        {"$set": {"used": True, "last_used_at": now}},
    )
