"""The ``activity`` collection: who changed what, per task and per project.

An entry: ``{_id, workspace_id, project_id, task_id?, task_key?, entity, entity_id,
action, actor_id, changes: [{field, before, after}], at}``. Entries are inserted
whole (never ``$push``-ed) and listed newest first by ``_id`` (time-ordered ids).
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.pagination import keyset_page

ACTIVITY = "activity"
#: How many status changes the forecast and the schedule read (the newest).
STATUS_HISTORY_LIMIT = 5000


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


async def status_changes(
    db: AsyncDatabase[Document], scope: str, scope_id: str, *, limit: int = STATUS_HISTORY_LIMIT
) -> list[tuple[str, Any, Any]]:
    """The newest ``limit`` task status changes of a project or workspace (``scope`` is
    ``project_id`` or ``workspace_id``), newest first, as ``(task_id, status, at)``.

    A status change is any task entry with a ``status`` change (``status_changed``, or
    ``updated`` with other fields); the ``by_*_status`` indexes (migration 16) find them.
    """
    cursor = (
        db[ACTIVITY]
        .find(
            # $elemMatch, not "changes.field": the dev server matches no dotted path into
            # an array (real MongoDB serves both from the multikey index)
            {scope: scope_id, "entity": "task", "changes": {"$elemMatch": {"field": "status"}}},
            {"entity_id": 1, "changes": 1, "at": 1},
        )
        .sort("_id", DESCENDING)
        .limit(limit)
    )
    found: list[tuple[str, Any, Any]] = []
    async for doc in cursor:
        changes = doc.get("changes")
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict) and change.get("field") == "status":
                found.append((str(doc["entity_id"]), change.get("after"), doc.get("at")))
    return found
