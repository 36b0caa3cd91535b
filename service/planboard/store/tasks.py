"""The ``tasks`` collection."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

TASKS = "tasks"


async def insert_many(
    db: AsyncDatabase[Document],
    docs: list[Document],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    if docs:
        await db[TASKS].insert_many(docs, ordered=True, session=session)


async def in_project(db: AsyncDatabase[Document], project_id: str) -> list[Document]:
    cursor = db[TASKS].find({"project_id": project_id}).sort("seq", ASCENDING)
    return [doc async for doc in cursor]
