"""Single-use, expiring tokens sent by mail (password reset, email verification)."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

ACTION_TOKENS = "action_tokens"


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[ACTION_TOKENS].insert_one(doc)


async def get(db: AsyncDatabase[Document], token_id: str, kind: str) -> Document | None:
    return await db[ACTION_TOKENS].find_one({"_id": token_id, "kind": kind})


async def consume(db: AsyncDatabase[Document], token_id: str, now: datetime) -> bool:
    """Use a token once; False when it was already used (single use, even under races)."""
    result = await db[ACTION_TOKENS].update_one(
        {"_id": token_id, "used": False, "expires_at": {"$gt": now}},
        {"$set": {"used": True, "used_at": now}},
    )
    return result.modified_count == 1


async def retire_unused(
    db: AsyncDatabase[Document], user_id: str, kind: str, now: datetime
) -> None:
    """A new token of a kind makes the older unused ones worthless."""
    await db[ACTION_TOKENS].update_many(
        {"user_id": user_id, "kind": kind, "used": False},
        {"$set": {"used": True, "used_at": now, "superseded": True}},
    )


async def purge_expired(db: AsyncDatabase[Document], now: datetime) -> int:
    result = await db[ACTION_TOKENS].delete_many({"expires_at": {"$lt": now}})
    return result.deleted_count
