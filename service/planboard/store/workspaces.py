"""The ``workspaces`` collection."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store import attachments
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

WORKSPACES = "workspaces"

# Everything that belongs to a workspace, deleted with it.
OWNED_COLLECTIONS = (
    "comments",
    "baselines",
    "activity",
    "tasks",
    "projects",
    "webhook_deliveries",
    "webhooks",
    "notifications",
    "jobs",
    "invitations",
    "memberships",
)


async def find_by_name(db: AsyncDatabase[Document], name: str) -> Document | None:
    return await db[WORKSPACES].find_one({"name": name})


async def create(
    db: AsyncDatabase[Document], name: str, *, created_by: str | None = None
) -> Document:
    now = utcnow()
    doc: Document = {
        "_id": new_id(),
        "name": name,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        # store/quotas.py: its creator is its first owner (the membership follows)
        "owner_count": 1 if created_by else 0,
        "webhook_count": 0,
        "invitation_count": 0,
    }
    await db[WORKSPACES].insert_one(doc)
    return doc


async def get(db: AsyncDatabase[Document], workspace_id: str) -> Document | None:
    return await db[WORKSPACES].find_one({"_id": workspace_id})


async def many(db: AsyncDatabase[Document], workspace_ids: list[str]) -> dict[str, Document]:
    cursor = db[WORKSPACES].find({"_id": {"$in": workspace_ids}})
    return {str(doc["_id"]): doc async for doc in cursor}


async def rename(
    db: AsyncDatabase[Document], workspace_id: str, name: str, now: datetime
) -> Document | None:
    return await db[WORKSPACES].find_one_and_update(
        {"_id": workspace_id},
        {"$set": {"name": name, "updated_at": now}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
    )


async def update(
    db: AsyncDatabase[Document], workspace_id: str, values: Document, now: datetime
) -> Document | None:
    """Set ``values`` (name, calendar) and bump the version."""
    return await db[WORKSPACES].find_one_and_update(
        {"_id": workspace_id},
        {"$set": {**values, "updated_at": now}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
    )


async def delete_cascade(db: AsyncDatabase[Document], workspace_id: str) -> None:
    """Children first, the workspace last: a crash midway leaves a deletable workspace."""
    # Attachments are hidden, not deleted: the scheduler's sweep removes their content too.
    await attachments.mark_deleted_where(db, {"workspace_id": workspace_id}, utcnow())
    for name in OWNED_COLLECTIONS:
        await db[name].delete_many({"workspace_id": workspace_id})
    await db[WORKSPACES].delete_one({"_id": workspace_id})
