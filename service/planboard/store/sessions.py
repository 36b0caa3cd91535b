"""Login sessions (refresh-token families) and their refresh tokens.

A session is one login; each refresh rotates its refresh token. A token that is
presented twice reveals theft, and the whole session is revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.documents import SessionDoc

SESSIONS = "sessions"
REFRESH_TOKENS = "refresh_tokens"


def collection(db: AsyncDatabase[Document]) -> AsyncCollection[SessionDoc]:
    """The ``sessions`` collection, typed by its documents' shape."""
    return cast("AsyncCollection[SessionDoc]", db[SESSIONS])


async def create_session(db: AsyncDatabase[Document], doc: SessionDoc) -> None:
    await collection(db).insert_one(doc)


async def get_session(db: AsyncDatabase[Document], session_id: str) -> SessionDoc | None:
    return await collection(db).find_one({"_id": session_id})


async def revoke_session(
    db: AsyncDatabase[Document], session_id: str, reason: str, now: datetime
) -> bool:
    result = await db[SESSIONS].update_one(
        {"_id": session_id, "revoked": False},
        {"$set": {"revoked": True, "revoked_at": now, "revoked_reason": reason}},
    )
    return result.modified_count == 1


async def open_sessions_of(db: AsyncDatabase[Document], user_id: str) -> list[str]:
    cursor = db[SESSIONS].find({"user_id": user_id, "revoked": False}, {"_id": 1})
    return [str(doc["_id"]) async for doc in cursor]


async def insert_refresh(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[REFRESH_TOKENS].insert_one(doc)


async def get_refresh(db: AsyncDatabase[Document], token_id: str) -> Document | None:
    return await db[REFRESH_TOKENS].find_one({"_id": token_id})


async def claim_refresh(db: AsyncDatabase[Document], token_id: str, now: datetime) -> bool:
    """Mark a refresh token used; False if it already was (a concurrent or repeated use)."""
    result = await db[REFRESH_TOKENS].update_one(
        {"_id": token_id, "used": False}, {"$set": {"used": True, "used_at": now}}
    )
    return result.modified_count == 1


async def touch_session(db: AsyncDatabase[Document], session_id: str, now: datetime) -> None:
    await db[SESSIONS].update_one({"_id": session_id}, {"$set": {"last_used_at": now}})
