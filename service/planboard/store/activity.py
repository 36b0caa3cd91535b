"""The ``activity`` collection: who changed what, per task and per project.

An entry: ``{_id, workspace_id, project_id, task_id?, task_key?, entity, entity_id,
action, actor_id, changes: [{field, before, after}], at}``. Entries are inserted
whole (never ``$push``-ed) and listed newest first by ``_id`` (time-ordered ids).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.pagination import keyset_page

ACTIVITY = "activity"


async def insert_many(
    db: AsyncDatabase[Document],
    entries: list[Document],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    if entries:
        await db[ACTIVITY].insert_many(entries, ordered=True, session=session)


async def page(
    db: AsyncDatabase[Document],
    query: dict[str, object],
    *,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[Document], bool]:
    """Newest first."""
    return await keyset_page(
        db[ACTIVITY], query, field="_id", descending=True, after=after, limit=limit
    )


async def delete_of_project(
    db: AsyncDatabase[Document], project_id: str, *, session: AsyncClientSession | None = None
) -> int:
    result = await db[ACTIVITY].delete_many({"project_id": project_id}, session=session)
    return result.deleted_count
