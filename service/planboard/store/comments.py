"""The ``comments`` collection: one document per comment on a task."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.pagination import keyset_page

COMMENTS = "comments"


async def insert(
    db: AsyncDatabase[Document], doc: Document, *, session: AsyncClientSession | None = None
) -> None:
    await db[COMMENTS].insert_one(doc, session=session)


async def get(db: AsyncDatabase[Document], comment_id: str) -> Document | None:
    return await db[COMMENTS].find_one({"_id": comment_id})


async def page_of_task(
    db: AsyncDatabase[Document],
    task_id: str,
    *,
    after: tuple[Any, str] | None,
    limit: int,
    descending: bool = False,
) -> tuple[list[Document], bool]:
    return await keyset_page(
        db[COMMENTS],
        {"task_id": task_id},
        field="_id",
        descending=descending,
        after=after,
        limit=limit,
    )


async def update_guarded(
    db: AsyncDatabase[Document],
    comment_id: str,
    version: int,
    values: Document,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    result = await db[COMMENTS].update_one(
        {"_id": comment_id, "version": version},
        {"$set": values, "$inc": {"version": 1}},
        session=session,
    )
    return result.matched_count == 1


async def delete(
    db: AsyncDatabase[Document], comment_id: str, *, session: AsyncClientSession | None = None
) -> bool:
    result = await db[COMMENTS].delete_one({"_id": comment_id}, session=session)
    return result.deleted_count == 1


async def delete_of_task(
    db: AsyncDatabase[Document], task_id: str, *, session: AsyncClientSession | None = None
) -> int:
    result = await db[COMMENTS].delete_many({"task_id": task_id}, session=session)
    return result.deleted_count


async def delete_of_project(
    db: AsyncDatabase[Document], project_id: str, *, session: AsyncClientSession | None = None
) -> int:
    result = await db[COMMENTS].delete_many({"project_id": project_id}, session=session)
    return result.deleted_count
