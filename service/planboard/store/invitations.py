"""Workspace invitations (accepted with a single-use token sent by mail)."""

from __future__ import annotations

from datetime import datetime

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

INVITATIONS = "invitations"


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[INVITATIONS].insert_one(doc)


async def get(db: AsyncDatabase[Document], invitation_id: str) -> Document | None:
    return await db[INVITATIONS].find_one({"_id": invitation_id})


async def of_workspace(db: AsyncDatabase[Document], workspace_id: str) -> list[Document]:
    cursor = (
        db[INVITATIONS]
        .find({"workspace_id": workspace_id}, {"secret_hash": 0})
        .sort("created_at", DESCENDING)
    )
    return [doc async for doc in cursor]


async def transition(
    db: AsyncDatabase[Document], invitation_id: str, to_status: str, now: datetime, **fields: object
) -> bool:
    """pending → accepted/revoked, once."""
    result = await db[INVITATIONS].update_one(
        {"_id": invitation_id, "status": "pending"},
        {"$set": {"status": to_status, "updated_at": now, **fields}},
    )
    return result.modified_count == 1
