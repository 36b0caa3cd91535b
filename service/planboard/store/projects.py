"""The ``projects`` collection."""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

PROJECTS = "projects"


async def insert(
    db: AsyncDatabase[Document], doc: Document, *, session: AsyncClientSession | None = None
) -> None:
    await db[PROJECTS].insert_one(doc, session=session)


async def get(db: AsyncDatabase[Document], project_id: str) -> Document | None:
    return await db[PROJECTS].find_one({"_id": project_id})


async def find_by_key(db: AsyncDatabase[Document], workspace_id: str, key: str) -> Document | None:
    return await db[PROJECTS].find_one({"workspace_id": workspace_id, "key": key})


async def keys_in_workspace(db: AsyncDatabase[Document], workspace_id: str) -> set[str]:
    cursor = db[PROJECTS].find({"workspace_id": workspace_id}, {"key": 1})
    return {str(doc["key"]) async for doc in cursor}


async def allocate_task_seqs(
    db: AsyncDatabase[Document],
    project_id: str,
    count: int,
    *,
    session: AsyncClientSession | None = None,
) -> int:
    """Reserve ``count`` task numbers atomically; returns the first one."""
    doc = await db[PROJECTS].find_one_and_update(
        {"_id": project_id},
        {"$inc": {"task_seq": count}},
        projection={"task_seq": 1},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if doc is None:
        raise LookupError(project_id)
    return int(str(doc["task_seq"])) - count + 1
