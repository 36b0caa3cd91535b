"""The ``attachments`` collection: one document per file attached to a task.

``state`` follows the content: ``uploading`` (content being written), ``stored``
(visible), ``deleted`` (hidden; its content is removed, then the document). Only
``stored`` attachments are ever shown; the scheduler sweeps the other two. The first two
count against the task's limit (``attachment_count`` on the task, store/quotas.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.pagination import keyset_page

ATTACHMENTS = "attachments"
UPLOADING, STORED, DELETED = "uploading", "stored", "deleted"
COUNTED = (UPLOADING, STORED)  # against the per-task limit


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[ATTACHMENTS].insert_one(doc)


async def get(db: AsyncDatabase[Document], attachment_id: str) -> Document | None:
    """A stored attachment (uploading and deleted ones do not exist for readers)."""
    return await db[ATTACHMENTS].find_one({"_id": attachment_id, "state": STORED})


async def get_any(db: AsyncDatabase[Document], attachment_id: str) -> Document | None:
    return await db[ATTACHMENTS].find_one({"_id": attachment_id})


async def page_of_task(
    db: AsyncDatabase[Document], task_id: str, *, after: tuple[Any, str] | None, limit: int
) -> tuple[list[Document], bool]:
    return await keyset_page(
        db[ATTACHMENTS],
        {"task_id": task_id, "state": STORED},
        field="_id",
        descending=False,
        after=after,
        limit=limit,
    )


async def mark_stored(
    db: AsyncDatabase[Document],
    attachment_id: str,
    values: Document,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    result = await db[ATTACHMENTS].update_one(
        {"_id": attachment_id, "state": UPLOADING},
        {"$set": {**values, "state": STORED}},
        session=session,
    )
    return result.matched_count == 1


async def mark_deleted(
    db: AsyncDatabase[Document],
    attachment_id: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    """stored → deleted, once (a second delete finds nothing)."""
    result = await db[ATTACHMENTS].update_one(
        {"_id": attachment_id, "state": STORED},
        {"$set": {"state": DELETED, "deleted_at": now, "updated_at": now}},
        session=session,
    )
    return result.matched_count == 1


async def mark_deleted_where(
    db: AsyncDatabase[Document],
    query: Document,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> int:
    """Hide every attachment matching ``query`` (its task, project or workspace is gone);
    the scheduler's sweep removes their content."""
    result = await db[ATTACHMENTS].update_many(
        {**query, "state": {"$in": [UPLOADING, STORED]}},
        {"$set": {"state": DELETED, "deleted_at": now, "updated_at": now}},
        session=session,
    )
    return result.modified_count


async def set_thumbnail(
    db: AsyncDatabase[Document], attachment_id: str, values: Document, now: datetime
) -> bool:
    result = await db[ATTACHMENTS].update_one(
        {"_id": attachment_id, "state": STORED}, {"$set": {**values, "updated_at": now}}
    )
    return result.matched_count == 1


async def remove(db: AsyncDatabase[Document], attachment_id: str) -> Document | None:
    """Delete the document; returns it as it was (None: it was already gone)."""
    return await db[ATTACHMENTS].find_one_and_delete({"_id": attachment_id})


async def sweepable(
    db: AsyncDatabase[Document], abandoned_before: datetime, limit: int
) -> list[Document]:
    """Deleted attachments, and uploads that never finished (their process died)."""
    cursor = db[ATTACHMENTS].find(
        {
            "$or": [
                {"state": DELETED},
                {"state": UPLOADING, "created_at": {"$lt": abandoned_before}},
            ]
        },
        limit=limit,
    )
    return [doc async for doc in cursor]
