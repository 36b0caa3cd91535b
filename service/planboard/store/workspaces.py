"""The ``workspaces`` collection."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

WORKSPACES = "workspaces"


async def find_by_name(db: AsyncDatabase[Document], name: str) -> Document | None:
    return await db[WORKSPACES].find_one({"name": name})


async def create(db: AsyncDatabase[Document], name: str) -> Document:
    now = utcnow()
    doc: Document = {
        "_id": new_id(),
        "name": name,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    await db[WORKSPACES].insert_one(doc)
    return doc
