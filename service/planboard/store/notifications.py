"""In-app notifications; the id is ``<event id>:<user id>``, so an event notifies once."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.store.counting import count
from planboard.store.document import Document
from planboard.store.pagination import Position, keyset_page

NOTIFICATIONS = "notifications"


async def insert_once(db: AsyncDatabase[Document], doc: Document) -> bool:
    """True if stored now; False if this event already notified this user."""
    try:
        await db[NOTIFICATIONS].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def page(
    db: AsyncDatabase[Document],
    user_id: str,
    *,
    unread_only: bool,
    after: Position | None,
    limit: int,
) -> tuple[list[Document], bool]:
    """A page of the user's visible notifications, newest first (``seq``, unique and
    time-ordered). Hidden ones (kept for the record, the in-app channel being off) are
    left out by the query itself, so a page is full whenever more visible ones exist."""
    query: dict[str, object] = {"user_id": user_id, "hidden": False}
    if unread_only:
        query["read"] = False
    return await keyset_page(
        db[NOTIFICATIONS],
        query,
        field="seq",
        unique=True,
        descending=True,
        after=after,
        limit=limit,
    )


async def unread_count(db: AsyncDatabase[Document], user_id: str) -> int:
    return await count(db[NOTIFICATIONS], {"user_id": user_id, "read": False})


async def mark_read(
    db: AsyncDatabase[Document], user_id: str, notification_id: str, now: datetime
) -> bool:
    result = await db[NOTIFICATIONS].update_one(
        {"_id": notification_id, "user_id": user_id}, {"$set": {"read": True, "read_at": now}}
    )
    return result.matched_count == 1


async def mark_all_read(db: AsyncDatabase[Document], user_id: str, now: datetime) -> int:
    result = await db[NOTIFICATIONS].update_many(
        {"user_id": user_id, "read": False}, {"$set": {"read": True, "read_at": now}}
    )
    return result.modified_count
